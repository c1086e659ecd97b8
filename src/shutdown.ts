// Ordered, once-only shutdown on SIGINT/SIGTERM; a second signal forces an immediate exit.
import type { Logger } from './log.js';

/**
 * Runs `stop` once on SIGINT/SIGTERM (or when the returned function is called, e.g. by a
 * supervisor's message), then exits. `kill` is the last resort: it runs on a forced exit and on
 * any process exit, so that no child process is left behind.
 */
export function onShutdown(log: Logger, stop: () => Promise<void>, kill: () => void = () => {}): (reason: string) => void {
  let stoppingSince = 0;
  const handle = (reason: string, forceable: boolean) => {
    // Ctrl-C reaches the whole process group and `tsx` relays it once more: a repeat within a
    // second is the same keypress, not a request to force.
    if (stoppingSince && (!forceable || Date.now() - stoppingSince < 1000)) return;
    if (stoppingSince) {
      log.warn({ signal: reason }, 'second signal: exiting now');
      kill();
      process.exit(130);
    }
    stoppingSince = Date.now();
    log.info({ signal: reason }, 'shutting down (press Ctrl-C again to force)');
    stop()
      .then(() => process.exit(process.exitCode ?? 0))
      .catch((err) => {
        log.error({ err }, 'error during shutdown');
        kill();
        process.exit(1);
      });
  };
  process.on('SIGINT', () => handle('SIGINT', true));
  process.on('SIGTERM', () => handle('SIGTERM', true));
  // Whatever happens, do not leave child processes behind.
  process.on('exit', kill);
  return (reason) => handle(reason, false);
}
