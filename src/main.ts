// `npm start`: the whole system on embedded defaults: a Temporal dev server (unless
// TEMPORAL_ADDRESS), embedded Postgres nodes (unless CATALOG_DATABASE_URL and POST_SHARD_URLS),
// the worker as a supervised child process, and the API/website in this process. Ctrl-C stops
// everything in order; a failed start stops whatever it had started.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { startApiServer } from '../api/server.js';
import { loadConfigOrExit } from './config.js';
import { openStorage, type Storage } from './db/index.js';
import { createLogger } from './log.js';
import { onShutdown } from './shutdown.js';
import { Supervisor } from './supervisor.js';
import { ensureTemporalCli } from './temporal/cli.js';
import { connectClient } from './temporal/client.js';
import { TemporalDevServer } from './temporal/devserver.js';

const config = loadConfigOrExit();
const log = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT });

let devServer: TemporalDevServer | undefined;
let storage: Storage | undefined;
let worker: Supervisor | undefined;
let temporal: Client | undefined;
let api: { close(): Promise<void> } | undefined;

const shutdown = onShutdown(
  log,
  async () => {
    await api?.close();
    await worker?.stop();
    await temporal?.connection.close().catch(() => {});
    await storage?.close();
    await devServer?.stop();
    log.info('stopped');
  },
  () => {
    worker?.killSync();
    for (const node of storage?.embedded ?? []) node.killSync();
    devServer?.killSync();
  },
);

async function startDevServer(): Promise<string> {
  if (config.TEMPORAL_ADDRESS) return config.TEMPORAL_ADDRESS;
  const binary = await ensureTemporalCli((line) => log.info({ role: 'temporal' }, line));
  devServer = new TemporalDevServer({
    binary,
    dbFile: path.join(config.DATA_DIR, 'temporal', 'temporal.db'),
    port: config.TEMPORAL_DEV_PORT,
    uiPort: config.TEMPORAL_DEV_UI_PORT,
    metricsPort: config.TEMPORAL_DEV_METRICS_PORT,
    goRuntime: {
      ...(config.TEMPORAL_DEV_GOGC ? { GOGC: config.TEMPORAL_DEV_GOGC } : {}),
      ...(config.TEMPORAL_DEV_GOMEMLIMIT ? { GOMEMLIMIT: config.TEMPORAL_DEV_GOMEMLIMIT } : {}),
      ...(config.TEMPORAL_DEV_GOMAXPROCS ? { GOMAXPROCS: String(config.TEMPORAL_DEV_GOMAXPROCS) } : {}),
    },
    namespace: config.TEMPORAL_NAMESPACE,
    log: log.child({ role: 'temporal' }),
  });
  await devServer.start();
  log.info({ role: 'temporal', ui: `http://localhost:${config.TEMPORAL_DEV_UI_PORT}` }, 'Temporal dev server ready');
  return devServer.address;
}

try {
  // Both starts run to the end, failed or not, so that shutdown knows everything that is running.
  const [address, opened] = await Promise.allSettled([
    startDevServer(),
    openStorage(config, log.child({ role: 'db' }), { allowEmbedded: true }),
  ]);
  if (opened.status === 'fulfilled') storage = opened.value;
  if (address.status === 'rejected') throw address.reason;
  if (opened.status === 'rejected') throw opened.reason;
  const { catalogUrl, shardNodes } = storage!.urls;
  worker = new Supervisor({
    name: 'worker',
    script: fileURLToPath(new URL('./worker.ts', import.meta.url)),
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: address.value,
      CATALOG_DATABASE_URL: catalogUrl,
      POST_SHARD_URLS: shardNodes.map((n) => `${n.name}=${n.url}`).join(','),
    },
    log,
  });
  worker.start();
  temporal = await connectClient(address.value, config.TEMPORAL_NAMESPACE);
  api = await startApiServer({ config, catalog: storage!.catalog, router: storage!.router, temporal, log: log.child({ role: 'api' }) });
  log.info(
    {
      api: `http://localhost:${config.PORT}`,
      temporalUi: config.TEMPORAL_ADDRESS ? config.TEMPORAL_UI_URL : `http://localhost:${config.TEMPORAL_DEV_UI_PORT}`,
    },
    'lemmy-fetcher is up',
  );
} catch (err) {
  log.fatal({ err: (err as Error).message }, 'start failed; stopping what was started');
  process.exitCode = 1;
  shutdown('start failed');
}
