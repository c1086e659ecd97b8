// Ordered, once-only shutdown on SIGINT/SIGTERM; a second signal forces an immediate exit.
import type { Logger } from './log.js';

export function onShutdown(log: Logger, stop: () => Promise<void>, kill: () => void = () => {}): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      kill();
      process.exit(130);
    }
    stopping = true;
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
