// `npm run worker`: one worker against the configured Temporal and Postgres (any number of
// replicas). `npm start` runs this same file as a supervised child process. Serves its metrics on
// WORKER_METRICS_HOST:WORKER_METRICS_PORT and the Temporal SDK's on TEMPORAL_METRICS_ADDRESS.
import { loadConfigOrExit } from './config.js';
import { openStorage } from './db/index.js';
import { createLogger } from './log.js';
import { onShutdown } from './shutdown.js';
import { startMetricsServer, type MetricsServer } from './metrics/server.js';
import { installTemporalRuntime, startWorker } from './worker-runtime.js';

const config = loadConfigOrExit();
const log = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT }).child({ role: 'worker' });
let metrics: MetricsServer | undefined;
try {
  installTemporalRuntime(log, { metricsAddress: config.TEMPORAL_METRICS_ADDRESS });
  if (config.WORKER_METRICS_PORT > 0) {
    metrics = await startMetricsServer({
      host: config.WORKER_METRICS_HOST,
      port: config.WORKER_METRICS_PORT,
      allowedNetworks: config.METRICS_ALLOWED_NETWORKS,
      log,
    });
  }
  const storage = await openStorage(config, log, { allowEmbedded: false });
  const worker = await startWorker({
    config,
    catalog: storage.catalog,
    router: storage.router,
    address: config.TEMPORAL_ADDRESS ?? `localhost:${config.TEMPORAL_DEV_PORT}`,
    log,
  });
  let asked = false;
  const shutdown = onShutdown(log, async () => {
    asked = true;
    await worker.shutdown();
    await storage.close();
    await metrics?.close();
  });
  // Under a supervisor (`npm start`): it asks us to stop over IPC, and if it dies we stop too.
  process.on('message', (m) => {
    if ((m as { type?: string })?.type === 'shutdown') shutdown('supervisor');
  });
  process.on('disconnect', () => shutdown('supervisor gone'));
  await worker.run.catch((err) => log.fatal({ err }, 'worker stopped with an error'));
  // Asked to stop: onShutdown finishes and exits 0. Stopped by itself: a failure to be seen.
  if (!asked) {
    await storage.close().catch(() => {});
    process.exit(1);
  }
} catch (err) {
  log.fatal({ err: (err as Error).message }, 'worker failed');
  process.exit(1);
}
