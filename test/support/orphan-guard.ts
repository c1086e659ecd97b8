// The shared test servers must not outlive the test run. vitest's teardown stops them, and an
// 'exit' hook covers most crashes, but a run whose output pipe closes (`npm test | head`) ends
// with no 'exit' event at all, mid-setup or mid-run. So a small detached watchdog process watches
// the run's pid and, once it is gone, stops every process started for the run: those whose
// command line names the run's temp dir (the Postgres servers, `-D <tmpDir>/pg-N`) or the dev
// server's port, then removes the temp dir. The teardown stops the watchdog first.
import { spawn } from 'node:child_process';

const WATCHDOG = `
const fs = require('node:fs');
const [owner, tmpDir, port] = process.argv.slice(1);
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const ours = (cmd) => cmd.includes(tmpDir) || (cmd.includes('start-dev') && cmd.includes('--port\\0' + port + '\\0'));
const timer = setInterval(() => {
  if (alive(Number(owner))) return;
  clearInterval(timer);
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\\d+$/.test(d))) {
    let cmd = '';
    try { cmd = fs.readFileSync('/proc/' + pid + '/cmdline', 'utf8'); } catch { continue; }
    // Postgres: SIGINT is its fast shutdown; the dev server stops on SIGTERM.
    if (ours(cmd) && Number(pid) !== process.pid) try { process.kill(Number(pid), cmd.includes('postgres') ? 'SIGINT' : 'SIGTERM'); } catch {}
  }
  setTimeout(() => { try { fs.rmSync(tmpDir, { recursive: true, force: true }); } catch {} process.exit(0); }, 3000);
}, 500);
`;

/** Starts the watchdog for this run; call the answer to stop it (the normal teardown). */
export function guardAgainstOrphans(tmpDir: string, temporalPort: number): () => void {
  const child = spawn(process.execPath, ['-e', WATCHDOG, String(process.pid), tmpDir, String(temporalPort)], {
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
  return () => {
    try {
      if (child.pid) process.kill(child.pid, 'SIGTERM');
    } catch {
      // gone already
    }
  };
}
