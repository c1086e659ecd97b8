// API_PROCESSES > 1: `npm run api` as a node:cluster primary and that many API processes sharing
// its port (the primary accepts connections and hands them out in turn). The processes keep what
// separate replicas keep: their own response cache (each listens to the change events), rate-limit
// buckets and key cache. The primary serves none of the API; it gathers GET /metrics for the
// processes (src/metrics/cluster.ts), replaces a process that dies, and on SIGINT/SIGTERM stops
// them all before it exits.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from './log.js';
import { serveClusterMetrics } from './metrics/cluster.js';
import { onShutdown } from './shutdown.js';

/** How long a process may take to close its connections before it is killed. */
const STOP_TIMEOUT_MS = 15_000;
/** A process that dies sooner than this after it started is replaced after a growing delay. */
const SHORT_LIFE_MS = 10_000;

export function superviseApiProcesses(count: number, log: Logger): void {
  serveClusterMetrics();
  let stopping = false;
  let restartDelayMs = 0;
  /** Once every process has listened, a replacement that cannot start is retried, not fatal. */
  let started = false;
  const startedAt = new Map<Worker, number>();
  const listening = new Set<Worker>();

  const fork = () => startedAt.set(cluster.fork(), Date.now());

  cluster.on('listening', (worker) => {
    listening.add(worker);
    if (listening.size === count && !started) log.info({ processes: count }, 'every API process is listening');
    if (listening.size === count) started = true;
  });
  cluster.on('exit', (worker, code, signal) => {
    const since = startedAt.get(worker) ?? Date.now();
    const served = listening.delete(worker);
    startedAt.delete(worker);
    if (stopping) return;
    if (!served && !started) {
      // It never listened: bad configuration, an unreachable database or Temporal. Its siblings
      // would fail the same way, and restarting would only repeat the error.
      log.fatal({ pid: worker.process.pid, code, signal }, 'an API process failed to start; stopping the others');
      stop(1);
      return;
    }
    restartDelayMs = Date.now() - since < SHORT_LIFE_MS ? Math.min(30_000, Math.max(1000, restartDelayMs * 2)) : 0;
    log.error({ pid: worker.process.pid, code, signal, restartInMs: restartDelayMs }, 'an API process died; starting another');
    setTimeout(() => !stopping && fork(), restartDelayMs);
  });

  const killAll = () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
  };
  const stopAll = async () => {
    stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && !w.isDead());
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => w.process.kill('SIGKILL'), STOP_TIMEOUT_MS);
            w.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            w.process.kill('SIGTERM');
          }),
      ),
    );
  };
  const stop = (code: number) => {
    process.exitCode = code;
    requestStop('an API process failed');
  };
  const requestStop = onShutdown(log, stopAll, killAll);

  log.info({ processes: count }, 'starting API processes');
  for (let i = 0; i < count; i++) fork();
}
