// GET /metrics across the processes of one `npm run api` with API_PROCESSES > 1 (node:cluster):
// whichever process a scrape lands on asks the primary, which gathers every process's registry
// (prom-client's AggregatorRegistry: counters and histograms summed, process gauges per their
// aggregator) and answers with the one exposition. A scrape thus sees the whole API, not the
// share of connections that happened to reach one process.
import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { registry, useExposition } from './index.js';

const REQUEST = 'lemmy-fetcher:metrics-req';
const RESPONSE = 'lemmy-fetcher:metrics-res';
const TIMEOUT_MS = 5000;

interface MetricsRequest {
  type: typeof REQUEST;
  id: number;
}
interface MetricsResponse {
  type: typeof RESPONSE;
  id: number;
  body?: string;
  error?: string;
}

/** In the primary: answers the processes' requests for the whole cluster's metrics. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: MetricsRequest) => {
    if (message?.type !== REQUEST) return;
    const reply = (r: Omit<MetricsResponse, 'type' | 'id'>) => {
      if (worker.isConnected()) worker.send({ type: RESPONSE, id: message.id, ...r } satisfies MetricsResponse);
    };
    aggregator.clusterMetrics().then(
      (body) => reply({ body }),
      (err: Error) => reply({ error: err.message }),
    );
  });
}

let nextId = 0;
const pending = new Map<number, { resolve: (body: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
let joined = false;

/** In a cluster process: lets the primary collect this process's registry. */
export function joinClusterMetrics(): void {
  if (joined || !cluster.isWorker) return;
  joined = true;
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // its constructor answers the primary's collection requests
  process.on('message', (message: MetricsResponse) => {
    if (message?.type !== RESPONSE) return;
    const p = pending.get(message.id);
    if (!p) return;
    pending.delete(message.id);
    clearTimeout(p.timer);
    if (message.error !== undefined || message.body === undefined) p.reject(new Error(message.error ?? 'no metrics'));
    else p.resolve(message.body);
  });
  useExposition(clusterExposition);
}

/** The whole cluster's exposition, from the primary. */
function clusterExposition(): Promise<string> {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    const timer = setTimeout(() => {
      pending.delete(id);
      reject(new Error('the API primary did not answer with metrics in time'));
    }, TIMEOUT_MS);
    pending.set(id, { resolve, reject, timer });
    process.send!({ type: REQUEST, id } satisfies MetricsRequest);
  });
}
