// The Temporal worker: polls the task queue, runs trackCommunity (and the shard and restore workflows) and
// their activities, and polls the quiet task queue (quiet runs, their own sticky cache) likewise.
// Workflow code is bundled once per process.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import {
  bundleWorkflowCode,
  NativeConnection,
  Runtime,
  Worker,
  makeTelemetryFilterString,
  type WorkerOptions,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import type { Config } from './config.js';
import type { Sql } from './db/pool.js';
import type { ShardRouter } from './db/sharding/router.js';
import { createSourceClients } from './sources/factory.js';
import type { Logger } from './log.js';
import { restoreWorkflow, workflowTaskBacklog, type TrackingDeps } from './tracking.js';
import { temporalLogger } from './temporal/logger.js';

let runtimeInstalled = false;

/**
 * Routes the SDK's and workflows' logs (with workflow ids) into our pino logger, and with
 * `metricsAddress` (host:port) serves the SDK's metrics (`temporal_*`) to Prometheus there. Once
 * per process: the first call decides (the worker's entry point calls it with the address before
 * any worker starts; in-process test workers call it without). An address that cannot be bound is
 * logged and the runtime installed without the exporter.
 */
export function installTemporalRuntime(log: Logger, opts: { metricsAddress?: string | null } = {}): void {
  if (runtimeInstalled) return;
  const install = (metricsAddress?: string) =>
    Runtime.install({
      logger: temporalLogger(log),
      telemetryOptions: {
        logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
        ...(metricsAddress ? { metrics: { prometheus: { bindAddress: metricsAddress } } } : {}),
      },
    });
  if (opts.metricsAddress) {
    try {
      install(opts.metricsAddress);
      runtimeInstalled = true;
      log.info({ url: `http://${opts.metricsAddress}/metrics` }, 'Temporal SDK metrics listening');
      return;
    } catch (err) {
      log.warn(
        { address: opts.metricsAddress, err: (err as Error).message },
        'Temporal SDK metrics: cannot listen (set TEMPORAL_METRICS_ADDRESS, or off); running without them',
      );
    }
  }
  install();
  runtimeInstalled = true;
}

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export async function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never,
  });
}

/**
 * The workflow bundle with V8 recording at most `frames` stack frames in workflow code. The SDK
 * takes (and formats) a stack trace of every promise a workflow makes, for the `__stack_trace`
 * query the Web UI shows; with 3 frames instead of V8's 10 a replayed activation costs 7–14 %
 * less (`npm run bench -- replay`). A failure's stack is as deep. Set on the bundle's
 * first line, so a source map still matches.
 */
export function withWorkflowStackFrames<B extends { code: string }>(bundle: B, frames: number): B {
  return { ...bundle, code: `Error.stackTraceLimit = ${frames};${bundle.code}` };
}

/**
 * Where workflow code runs. `own`: the SDK's worker thread, which activations are posted to and
 * back from. `main`: the worker's main thread, with the activities (the SDK's in-thread VM, which
 * it calls debug mode): no hop between threads, 6–9 % less worker CPU per sync at 2,000
 * communities, but at 50,000 a start-up 25 % slower and a worker 475 MB larger, as the sticky
 * cache then shares the main thread's heap (bench/RESULTS.md, "Workflows on the worker's main
 * thread"). Either way a workflow task that runs longer than 5 s without yielding fails (the
 * SDK's guard; debug mode alone would lift it), but on the main thread it holds the activities'
 * event loop for those 5 s.
 */
export function workflowThreadOptions(
  thread: Config['WORKER_WORKFLOW_THREAD'],
): Pick<WorkerOptions, 'debugMode'> & { isolateExecutionTimeout?: string } {
  // isolateExecutionTimeout is not in SDK 1.24's WorkerOptions type ("not exposed at the moment"),
  // but its option compiler takes it from the options given (test/workflow-sandbox.test.ts checks).
  return thread === 'main' ? { debugMode: true, isolateExecutionTimeout: '5s' } : {};
}

/** At most `polls` long polls, and no more than task slots (as the SDK's default is). */
const pollers = (polls: number, slots: number): NonNullable<WorkerOptions['workflowTaskPollerBehavior']> => ({
  type: 'simple-maximum',
  maximum: Math.min(polls, slots),
});

export interface WorkerHandle {
  /** The worker on TEMPORAL_TASK_QUEUE: every workflow but the quiet runs. */
  worker: Worker;
  /** The worker on TEMPORAL_QUIET_TASK_QUEUE (its own small sticky cache), unless that is the same queue. */
  quietWorker?: Worker;
  run: Promise<void>;
  shutdown(): Promise<void>;
}

export async function startWorker(opts: {
  config: Config;
  catalog: Sql;
  router: ShardRouter;
  address: string;
  log: Logger;
  bundle?: WorkflowBundleWithSourceMap | { code: string };
  identity?: string;
  /** A connection the caller owns and closes (a client on it can start workflows eagerly on this worker); default: one of its own. */
  connection?: NativeConnection;
}): Promise<WorkerHandle> {
  const { config, catalog, router, log } = opts;
  installTemporalRuntime(log);
  const sources = createSourceClients(config, catalog);
  const connection = opts.connection ?? (await NativeConnection.connect({ address: opts.address }));
  const closeConnection = () => (opts.connection ? Promise.resolve() : connection.close());
  const started = Date.now();
  const bundle =
    opts.bundle ?? (config.WORKFLOW_BUNDLE_PATH ? { code: await readFile(config.WORKFLOW_BUNDLE_PATH, 'utf8') } : await bundleWorkflows());
  // Restored workflows are started on this worker's own connection, so their first tasks can come
  // back with the start (eager workflow start) instead of through the task queue.
  const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const tracking: TrackingDeps = { config, catalog, router, temporal, eagerStart: true };
  const activities = createActivities({
    config,
    catalog,
    router,
    sources,
    restoreWorkflow: (row) => restoreWorkflow(tracking, row),
    workflowTaskBacklog: () => workflowTaskBacklog(tracking),
  });
  // One bundle for both workers (a copy of a multi-megabyte string each otherwise).
  const workflowBundle = withWorkflowStackFrames(bundle, config.WORKER_WORKFLOW_STACK_FRAMES);
  const create = (taskQueue: string, maxCachedWorkflows: number) =>
    Worker.create({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      taskQueue,
      workflowBundle,
      activities,
      ...(opts.identity ? { identity: opts.identity } : {}),
      maxCachedWorkflows,
      ...workflowThreadOptions(config.WORKER_WORKFLOW_THREAD),
      maxConcurrentActivityTaskExecutions: config.WORKER_MAX_CONCURRENT_ACTIVITIES,
      maxConcurrentWorkflowTaskExecutions: config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
      // As poller behaviours: SDK 1.24 ignores its maxConcurrent*TaskPolls options.
      workflowTaskPollerBehavior: pollers(config.WORKER_WORKFLOW_TASK_POLLS, config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS),
      activityTaskPollerBehavior: pollers(config.WORKER_ACTIVITY_TASK_POLLS, config.WORKER_MAX_CONCURRENT_ACTIVITIES),
      // Activities get this long to finish on SIGINT/SIGTERM before they are cancelled.
      shutdownGraceTime: '10s',
      // A cancellation reaches an activity with the answer to its next heartbeat: send them at
      // least this often (default: 80 % of the heartbeat timeout), so a removed community's sync
      // stops its requests within seconds. Only syncs that last longer pay for it.
      maxHeartbeatThrottleInterval: '2 seconds',
    });
  const queues = { taskQueue: config.TEMPORAL_TASK_QUEUE, quietTaskQueue: config.TEMPORAL_QUIET_TASK_QUEUE };
  const separateQuiet = queues.quietTaskQueue !== queues.taskQueue;
  let worker: Worker;
  let quietWorker: Worker | undefined;
  try {
    worker = await create(queues.taskQueue, config.WORKER_MAX_CACHED_WORKFLOWS);
    quietWorker = separateQuiet ? await create(queues.quietTaskQueue, config.WORKER_QUIET_CACHED_WORKFLOWS) : undefined;
  } catch (err) {
    await sources.close().catch(() => {});
    await closeConnection().catch(() => {});
    throw err;
  }
  log.info({ ...queues, address: opts.address, ms: Date.now() - started }, 'worker ready');
  const workers = quietWorker ? [worker, quietWorker] : [worker];
  // One stops (a fatal error): the other stops too, so the process ends as one worker would.
  const stopAll = () => {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  };
  const run = Promise.allSettled(workers.map((w) => w.run().finally(stopAll))).then(async (results) => {
    await sources.close().catch(() => {});
    await closeConnection().catch(() => {});
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  });
  return {
    worker,
    ...(quietWorker ? { quietWorker } : {}),
    run,
    async shutdown() {
      stopAll();
      await run.catch((err) => log.error({ err }, 'worker stopped with an error'));
    },
  };
}
