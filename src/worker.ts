// `npm run worker`: one worker against the configured Temporal and Postgres (any number of replicas).
import { loadConfigOrExit } from './config.js';
import { openStorage } from './db/index.js';
import { createLogger } from './log.js';
import { onShutdown } from './shutdown.js';
import { startWorker } from './worker-runtime.js';

const config = loadConfigOrExit();
const log = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT }).child({ role: 'worker' });
try {
  const storage = await openStorage(config, log, { allowEmbedded: false });
  const worker = await startWorker({
    config,
    catalog: storage.catalog,
    router: storage.router,
    address: config.TEMPORAL_ADDRESS ?? `localhost:${config.TEMPORAL_DEV_PORT}`,
    log,
  });
  onShutdown(log, async () => {
    await worker.shutdown();
    await storage.close();
  });
  await worker.run;
  await storage.close();
} catch (err) {
  log.fatal({ err: (err as Error).message }, 'worker failed');
  process.exit(1);
}
