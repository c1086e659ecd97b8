// `npm run api`: the REST API and website against the configured Temporal and Postgres (run any
// number of replicas behind a load balancer; they keep no state of their own). API_PROCESSES > 1
// runs that many processes on the one port (src/api-cluster.ts).
import cluster from 'node:cluster';
import { startApiServer } from '../api/server.js';
import { superviseApiProcesses } from './api-cluster.js';
import { loadConfigOrExit } from './config.js';
import { openStorage } from './db/index.js';
import { createLogger } from './log.js';
import { joinClusterMetrics } from './metrics/cluster.js';
import { onShutdown } from './shutdown.js';
import { connectClient } from './temporal/client.js';

const config = loadConfigOrExit();
const root = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT }).child({ role: 'api' });
if (config.API_PROCESSES > 1 && cluster.isPrimary) superviseApiProcesses(config.API_PROCESSES, root);
else await serve(cluster.isWorker ? root.child({ process: cluster.worker!.id }) : root);

async function serve(log: typeof root): Promise<void> {
  joinClusterMetrics();
  try {
    const storage = await openStorage(config, log, { allowEmbedded: false });
    const address = config.TEMPORAL_ADDRESS ?? `localhost:${config.TEMPORAL_DEV_PORT}`;
    let temporal;
    try {
      temporal = await connectClient(address, config.TEMPORAL_NAMESPACE);
    } catch (err) {
      await storage.close();
      throw new Error(`cannot connect to Temporal at ${address}: ${(err as Error).message}`, { cause: err });
    }
    const api = await startApiServer({ config, catalog: storage.catalog, router: storage.router, temporal, log });
    onShutdown(log, async () => {
      await api.close();
      await temporal.connection.close();
      await storage.close();
    });
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'api failed to start');
    process.exit(1);
  }
}
