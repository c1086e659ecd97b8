// `npm start`: the whole system in one foreground process, on embedded defaults: a Temporal dev
// server (unless TEMPORAL_ADDRESS), embedded Postgres nodes (unless CATALOG_DATABASE_URL and
// POST_SHARD_URLS), the worker and the API/website. Ctrl-C stops everything in order.
import path from 'node:path';
import { startApiServer } from '../api/server.js';
import { loadConfigOrExit } from './config.js';
import { openStorage, type Storage } from './db/index.js';
import { createLogger } from './log.js';
import { onShutdown } from './shutdown.js';
import { ensureTemporalCli } from './temporal/cli.js';
import { connectClient } from './temporal/client.js';
import { TemporalDevServer } from './temporal/devserver.js';
import { startWorker, type WorkerHandle } from './worker-runtime.js';

const config = loadConfigOrExit();
const log = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT });

let devServer: TemporalDevServer | undefined;
let storage: Storage | undefined;
let worker: WorkerHandle | undefined;
let api: { close(): Promise<void> } | undefined;

onShutdown(
  log,
  async () => {
    await api?.close();
    await worker?.shutdown();
    await storage?.close();
    await devServer?.stop();
    log.info('stopped');
  },
  () => {
    for (const node of storage?.embedded ?? []) node.killSync();
    devServer?.killSync();
  },
);

try {
  const temporalReady = (async () => {
    if (config.TEMPORAL_ADDRESS) return config.TEMPORAL_ADDRESS;
    const binary = await ensureTemporalCli((line) => log.info({ role: 'temporal' }, line));
    devServer = new TemporalDevServer({
      binary,
      dbFile: path.join(config.DATA_DIR, 'temporal', 'temporal.db'),
      port: config.TEMPORAL_DEV_PORT,
      uiPort: config.TEMPORAL_DEV_UI_PORT,
      namespace: config.TEMPORAL_NAMESPACE,
      log: log.child({ role: 'temporal' }),
    });
    await devServer.start();
    log.info({ role: 'temporal', ui: `http://localhost:${config.TEMPORAL_DEV_UI_PORT}` }, 'Temporal dev server ready');
    return devServer.address;
  })();
  const [address, opened] = await Promise.all([temporalReady, openStorage(config, log.child({ role: 'db' }), { allowEmbedded: true })]);
  storage = opened;
  worker = await startWorker({ config, catalog: storage.catalog, router: storage.router, address, log: log.child({ role: 'worker' }) });
  worker.run.catch((err) => {
    log.fatal({ err }, 'worker failed');
    process.kill(process.pid, 'SIGTERM');
  });
  const temporal = await connectClient(address, config.TEMPORAL_NAMESPACE);
  api = await startApiServer({ config, catalog: storage.catalog, router: storage.router, temporal, log: log.child({ role: 'api' }) });
  log.info(
    { api: `http://localhost:${config.PORT}`, temporalUi: config.TEMPORAL_ADDRESS ? config.TEMPORAL_UI_URL : `http://localhost:${config.TEMPORAL_DEV_UI_PORT}` },
    'lemmy-fetcher is up',
  );
} catch (err) {
  log.fatal({ err: (err as Error).message }, 'start failed');
  process.kill(process.pid, 'SIGTERM');
}
