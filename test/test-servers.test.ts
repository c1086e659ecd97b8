// The test run's own start path: when one server cannot start (here a Postgres port is taken),
// the ones that did start are stopped before the error is reported, so the next `npm test`
// does not fail on ports left busy by this one; and a run that ends abruptly leaves nothing.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, inject, it } from 'vitest';
import { createLogger } from '../src/log.js';
import { portOpen } from '../src/temporal/devserver.js';
import { freePorts } from './support/ports.js';
import { startTestServers } from './support/servers.js';

const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-servers-'));
afterAll(() => rmSync(tmpDir, { recursive: true, force: true }));

it('a failed start leaves no dev server or Postgres running', async () => {
  const [temporalPort, pg1, busy, pg3] = await freePorts(4);
  const blocker = net.createServer().listen(busy, '127.0.0.1');
  await new Promise((r) => blocker.once('listening', r));
  try {
    const log = createLogger({ level: 'silent', format: 'json' });
    await expect(startTestServers({ binary: inject('temporalCli'), tmpDir, temporalPort, pgPorts: [pg1, busy, pg3], log })).rejects.toThrow(
      /exited|bind|use/i,
    );
    for (const port of [temporalPort, pg1, pg3]) expect(await portOpen(port), `port ${port} still open`).toBe(false);
  } finally {
    blocker.close();
  }
}, 120_000);

/** Processes whose command line names a test run's temp dir other than this run's. */
function otherRunsProcesses(): string[] {
  const ours = inject('tmpDir');
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    if (/lemmy-fetcher-test-\w+/.test(cmd) && !cmd.includes(ours) && Number(pid) !== process.pid)
      found.push(`${pid}: ${cmd.slice(0, 160)}`);
  }
  return found;
}

it('a run whose output pipe closes (`npm test | head`) leaves no dev server or Postgres running', async () => {
  const before = new Set(readdirSync(os.tmpdir()).filter((d) => d.startsWith('lemmy-fetcher-test-')));
  // A nested run of one quick test file, its output closed as soon as it says it runs: vitest
  // then ends without an 'exit' event, while its global setup is still starting the servers.
  const child = spawn(process.execPath, [path.join('node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/refs.test.ts'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve) => {
    let seen = '';
    const close = () => {
      child.stdout.destroy();
      child.stderr.destroy();
      resolve();
    };
    child.stdout.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes('RUN')) close();
    });
    child.once('exit', close);
  });
  await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
  const deadline = Date.now() + 20_000;
  while (otherRunsProcesses().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  expect(otherRunsProcesses()).toEqual([]);
  const left = readdirSync(os.tmpdir()).filter((d) => d.startsWith('lemmy-fetcher-test-') && !before.has(d));
  expect(left).toEqual([]);
}, 120_000);
