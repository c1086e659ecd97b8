// Ordered, once-only shutdown on SIGINT/SIGTERM; a second signal forces an immediate exit.
import type { Logger } from './log.js';

export function onShutdown(log: Logger, stop: () => Promise<void>, kill: () => void = () => {}): void {
  let stoppingSince = 0;
  const handle = (signal: NodeJS.Signals) => {
    // Ctrl-C reaches the whole process group and `tsx` relays it once more: a repeat within a
    // second is the same keypress, not a request to force.
    if (stoppingSince && Date.now() - stoppingSince < 1000) return;
    if (stoppingSince) {
      log.warn({ signal }, 'second signal: exiting now');
      kill();
      process.exit(130);
    }
    stoppingSince = Date.now();
    log.info({ signal }, 'shutting down (press Ctrl-C again to force)');
    stop()
      .then(() => process.exit(0))
      .catch((err) => {
        log.error({ err }, 'error during shutdown');
        kill();
        process.exit(1);
      });
  };
  process.on('SIGINT', handle);
  process.on('SIGTERM', handle);
  // Whatever happens, do not leave child processes behind.
  process.on('exit', kill);
}
