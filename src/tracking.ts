// Starting, signalling and stopping the trackCommunity workflows, together with the catalog row
// and posts they own. The API, the website and the tests all go through these functions.
import {
  QueryRejectedError,
  WorkflowClient,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
} from '@temporalio/client';
import proto from '@temporalio/proto';
import type { Config } from './config.js';
import {
  deleteCommunity,
  deleteCommunityRow,
  insertCommunity,
  setCommunityPaused,
  setRefreshPolicy,
  type CommunityRow,
} from './db/communities.js';
import type { Sql } from './db/pool.js';
import { logicalShardOf, type ShardRouter } from './db/sharding/router.js';
import type { DetectedSource, SourceMetadata, SourceState } from './sources/types.js';
import {
  pauseSignal,
  refreshSignal,
  resumeSignal,
  setRefreshPolicySignal,
  statusQuery,
  SYNCS_PER_RUN,
  trackCommunity,
  workflowIdOf,
  type CarriedState,
  type CommunityStatus,
  type QuietRuns,
} from '../workflows/trackCommunity.js';
import type { RefreshPolicy } from '../workflows/refreshPolicy.js';

export interface TrackingDeps {
  config: Pick<
    Config,
    'TEMPORAL_TASK_QUEUE' | 'TEMPORAL_QUIET_TASK_QUEUE' | 'REFRESH_SECONDS' | 'QUIET_RUN_FROM_SECONDS' | 'QUIET_RUN_SYNCS'
  >;
  catalog: Sql;
  router: ShardRouter;
  temporal: Client;
  /**
   * Ask for eager workflow start: the new workflow's first task comes back with the start, to a
   * worker in this process. Only for a client on that worker's own NativeConnection (the restore
   * activity's); any other client cannot ask.
   */
  eagerStart?: boolean;
}

/** Starting, signalling and cancelling workflows: a Temporal that does not answer is an error (a 503), not a hang. */
export const TEMPORAL_CALL_TIMEOUT_MS = 5000;

const { temporal } = proto;

function bounded<T>(deps: Pick<TrackingDeps, 'temporal'>, fn: () => Promise<T>): Promise<T> {
  return deps.temporal.withDeadline(Date.now() + TEMPORAL_CALL_TIMEOUT_MS, fn);
}

export interface NewTracking extends Omit<DetectedSource, 'ref' | 'kind' | 'url'> {
  /** Default `name@host`, a Lemmy community. */
  ref?: string;
  kind?: DetectedSource['kind'];
  url?: string | null;
  /** The fixed interval (default REFRESH_SECONDS). */
  refreshSeconds?: number;
  /** Default: fixed within the default bounds. */
  policy?: RefreshPolicy;
  /** What the add-time check learnt. */
  metadata?: SourceMetadata;
  state?: SourceState;
}

export function policyOf(row: CommunityRow): RefreshPolicy {
  return { mode: row.refresh_policy, minSeconds: row.min_refresh_seconds, maxSeconds: row.max_refresh_seconds };
}

/** What a new workflow's runs do while its interval is long (QUIET_RUN_*, TEMPORAL_QUIET_TASK_QUEUE). */
export function quietRunsOf(config: TrackingDeps['config']): QuietRuns {
  const { TEMPORAL_TASK_QUEUE: active, TEMPORAL_QUIET_TASK_QUEUE: quiet } = config;
  return {
    fromSeconds: config.QUIET_RUN_FROM_SECONDS,
    syncs: config.QUIET_RUN_SYNCS,
    ...(quiet !== active ? { taskQueues: { active, quiet } } : {}),
  };
}

/**
 * Where a first run runs: on the quiet runs' queue when the interval may be long. An adaptive
 * interval is known only after the first sync, and most sources turn out to post less than
 * hourly (the busy ones hand over to the active queue after that sync: one hop for a few, where
 * starting on the active queue costs a hop for most).
 */
function startsOnQuietQueue(row: CommunityRow, quietRuns: QuietRuns): boolean {
  if (!quietRuns.taskQueues) return false;
  const longest = row.refresh_policy === 'adaptive' ? row.max_refresh_seconds : row.refresh_seconds;
  return longest >= quietRuns.fromSeconds;
}

/**
 * What a start does when the workflow already runs. `join` (a second add, a refresh): nothing, the
 * running one goes on. `replace`: the catalog row was just created, so a workflow still open under
 * this id belongs to a removed row (a delete whose cancellation is still under way), and the new
 * row must not be "tracked" by a run about to end. `refuse`: WorkflowExecutionAlreadyStartedError,
 * to tell a start from a join.
 */
type IfRunning = 'join' | 'replace' | 'refuse';
const CONFLICT_POLICY = { join: 'USE_EXISTING', replace: 'TERMINATE_EXISTING', refuse: 'FAIL' } as const;

function startWorkflow(deps: TrackingDeps, row: CommunityRow, ifRunning: IfRunning = 'join', resumed?: CarriedState) {
  const quietRuns = quietRunsOf(deps.config);
  // A resumed run knows its interval; a new one starts where its longest may be.
  const onQuietTaskQueue = resumed
    ? quietRuns.taskQueues !== undefined && resumed.status.refreshSeconds >= quietRuns.fromSeconds
    : startsOnQuietQueue(row, quietRuns);
  return deps.temporal.workflow.start(trackCommunity, {
    workflowId: workflowIdOf(row.ref),
    taskQueue: onQuietTaskQueue ? quietRuns.taskQueues!.quiet : deps.config.TEMPORAL_TASK_QUEUE,
    args: [
      {
        ref: row.ref,
        instance: row.instance,
        name: row.name,
        refreshSeconds: row.refresh_seconds,
        policy: policyOf(row),
        maxCyclesPerRun: SYNCS_PER_RUN,
        quietRuns,
        ...(onQuietTaskQueue ? { onQuietTaskQueue } : {}),
        // A paused row's workflow starts paused (e.g. restarted by a refresh after it was terminated).
        ...(row.paused_at ? { paused: true } : {}),
        ...(resumed ? { carried: resumed } : {}),
      },
    ],
    workflowIdConflictPolicy: CONFLICT_POLICY[ifRunning],
    staticSummary: `track ${row.ref}`,
    ...(deps.eagerStart ? { requestEagerStart: true } : {}),
  });
}

/**
 * The state a restored run takes up from the catalog, as if continued from the run that was lost:
 * a community whose last sync succeeded keeps its counts, posting rate and interval, and waits for
 * the next sync the catalog recorded (syncing at once when that has passed). Undefined for any
 * other row (never synced, failing, paused), which starts as a new run does: a sync at once.
 * Resuming is what lets a fleet come back in minutes: a run that only waits costs one small
 * workflow task, where a first sync of every community at once is the box's whole capacity for
 * half an hour (bench/RESULTS.md, "Fleet").
 */
export function resumedStateOf(row: CommunityRow, nowMs: number): CarriedState | undefined {
  if (row.paused_at || row.sync_state !== 'waiting' || !row.last_update) return undefined;
  const refreshSeconds = row.interval_seconds ?? row.refresh_seconds;
  const dueMs = row.next_sync_at?.getTime() ?? nowMs;
  return {
    status: {
      state: 'waiting',
      lastSyncAt: row.last_update.toISOString(),
      nextSyncAt: new Date(dueMs).toISOString(),
      lastError: null,
      syncs: row.syncs,
      postsStored: row.posts_stored,
      refreshSeconds,
      refreshPolicy: row.refresh_policy,
      minRefreshSeconds: row.min_refresh_seconds,
      maxRefreshSeconds: row.max_refresh_seconds,
      // Empty (a row saved before reasons were): the run plans its interval afresh.
      reason: row.refresh_reason ?? '',
      consecutiveFailures: 0,
      postsPerHour: row.posts_per_hour,
    },
    syncNow: dueMs <= nowMs,
    // The run's next sync is due at waitStartedAt + its interval: the catalog's next_sync_at.
    waitStartedAt: dueMs - refreshSeconds * 1000,
    cycles: 0,
  };
}

/** What a restore did with one catalog row. */
export type RestoreOutcome =
  /** Its workflow was running: left alone. */
  | { started: false }
  /** Started: `resumed` took up the catalog's schedule (resumedStateOf); `syncsNow`: its first step is a sync. */
  | { started: true; resumed: boolean; syncsNow: boolean };

/**
 * Makes sure a catalog row's workflow runs: leaves a running one alone, starts one that is not
 * (lost with Temporal's state, terminated by hand). A row whose last sync succeeded resumes its
 * schedule (resumedStateOf); any other syncs at once, like a new one; a paused row's starts paused.
 */
export async function restoreWorkflow(deps: TrackingDeps, row: CommunityRow, nowMs = Date.now()): Promise<RestoreOutcome> {
  const resumed = resumedStateOf(row, nowMs);
  try {
    await bounded(deps, () => startWorkflow(deps, row, 'refuse', resumed));
    return { started: true, resumed: resumed !== undefined, syncsNow: resumed ? resumed.syncNow : !row.paused_at };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return { started: false };
    throw err;
  }
}

/**
 * Workflow tasks waiting in each of the trackCommunity workflows' task queues (both, when quiet
 * runs have their own), by queue name: Temporal's approximate backlog, which its matching service
 * refreshes every few seconds. A queue the server did not report on (an error, no answer in time)
 * is left out.
 */
export async function workflowTaskBacklogs(deps: Pick<TrackingDeps, 'config' | 'temporal'>): Promise<Map<string, number>> {
  const { TEMPORAL_TASK_QUEUE: active, TEMPORAL_QUIET_TASK_QUEUE: quiet } = deps.config;
  const counts = await Promise.all(
    [...new Set([active, quiet])].map(async (name) => {
      try {
        const { stats } = await bounded(deps, () =>
          deps.temporal.workflowService.describeTaskQueue({
            namespace: deps.temporal.options.namespace,
            taskQueue: { name, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
            taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            reportStats: true,
          }),
        );
        return [name, Number(stats?.approximateBacklogCount ?? 0)] as const;
      } catch {
        return undefined;
      }
    }),
  );
  return new Map(counts.filter((c) => c !== undefined));
}

/** The backlogs of workflowTaskBacklogs together: 0 for a queue not reported, so that nothing waits on a count it never gets. */
export async function workflowTaskBacklog(deps: Pick<TrackingDeps, 'config' | 'temporal'>): Promise<number> {
  let total = 0;
  for (const n of (await workflowTaskBacklogs(deps)).values()) total += n;
  return total;
}

/**
 * Adds the community to the catalog (one row even under concurrent adds) and makes sure its
 * workflow runs. `created` is false when it was already tracked. If Temporal cannot start the
 * workflow, a row created by this call is removed again so a retry starts clean.
 */
export async function startTracking(deps: TrackingDeps, c: NewTracking): Promise<{ row: CommunityRow; created: boolean }> {
  const ref = c.ref ?? `${c.name}@${c.host}`;
  const { row, created } = await insertCommunity(deps.catalog, {
    kind: c.kind ?? 'lemmy',
    ref,
    instance: c.instance,
    host: c.host,
    name: c.name,
    url: c.url ?? null,
    refreshSeconds: c.refreshSeconds ?? deps.config.REFRESH_SECONDS,
    refreshPolicy: c.policy?.mode ?? 'fixed',
    minRefreshSeconds: c.policy?.minSeconds,
    maxRefreshSeconds: c.policy?.maxSeconds,
    shard: logicalShardOf(ref),
    metadata: c.metadata,
    state: c.state,
  });
  try {
    await bounded(deps, () => startWorkflow(deps, row, created ? 'replace' : 'join'));
  } catch (err) {
    if (created) await deleteCommunityRow(deps.catalog, row.id).catch(() => {});
    throw err;
  }
  return { row, created };
}

/**
 * Stops tracking, all or nothing: under the community's row lock (with the shard's write lock,
 * so a shard move is not under way), the workflow is cancelled, then posts and row are removed
 * together. A sync still in flight (which checks the row under the same lock before writing)
 * cannot leave posts behind. If the locks cannot be had (a shard move holds the shard: 503
 * database_busy) or Temporal does not take the cancel, nothing has changed, the workflow keeps
 * running, and the removal can simply be retried. A row already gone (removed meanwhile, maybe
 * added again since) is left alone, and so is whatever workflow now runs under its id.
 */
export async function stopTracking(deps: TrackingDeps, row: CommunityRow): Promise<void> {
  await deleteCommunity(deps.router, row, async () => {
    try {
      await bounded(deps, () => deps.temporal.workflow.getHandle(workflowIdOf(row.ref)).cancel());
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  });
}

/** Signals `refresh`; restarts the workflow if it is not running (e.g. terminated by hand). */
export async function requestRefresh(deps: TrackingDeps, row: CommunityRow): Promise<void> {
  await bounded(deps, async () => {
    try {
      await deps.temporal.workflow.getHandle(workflowIdOf(row.ref)).signal(refreshSignal);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      await startWorkflow(deps, row); // a fresh run syncs at once
    }
  });
}

/**
 * Pauses tracking: the workflow finishes a sync under way and starts none until resumed; lists
 * show `paused`. The catalog first, then the workflow; if Temporal does not take the signal, the
 * catalog is put back and the error thrown, so a failure leaves both as they were (a retry is
 * safe: both steps are idempotent). A workflow that is not running is left stopped: a refresh
 * starts it again, paused, since the catalog says so.
 */
export async function pauseTracking(deps: TrackingDeps, row: CommunityRow): Promise<CommunityRow> {
  return setPaused(deps, row, true);
}

/**
 * Resumes tracking: the workflow syncs at once, then keeps its interval. Catalog first, then the
 * signal (put back on failure, like pauseTracking). A workflow that is not running is started
 * (a fresh run syncs at once).
 */
export async function resumeTracking(deps: TrackingDeps, row: CommunityRow): Promise<CommunityRow> {
  return setPaused(deps, row, false);
}

async function setPaused(deps: TrackingDeps, row: CommunityRow, paused: boolean): Promise<CommunityRow> {
  const updated = await setCommunityPaused(deps.catalog, row.id, paused);
  if (!updated) return row; // removed meanwhile: nothing to pause
  try {
    await bounded(deps, async () => {
      try {
        await deps.temporal.workflow.getHandle(workflowIdOf(row.ref)).signal(paused ? pauseSignal : resumeSignal);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        if (!paused) await startWorkflow(deps, updated);
      }
    });
  } catch (err) {
    if (Boolean(row.paused_at) !== paused) await setCommunityPaused(deps.catalog, row.id, Boolean(row.paused_at)).catch(() => {});
    throw err;
  }
  return updated;
}

/**
 * A new refresh policy (and fixed interval): the catalog row first, then the workflow. By signal,
 * not the validated update: the value is validated at the edge already, and a signal is accepted
 * while no worker runs (an update would wait for one), so a PATCH works during a worker restart too.
 */
export async function changeRefreshPolicy(
  deps: TrackingDeps,
  row: CommunityRow,
  change: RefreshPolicy & { refreshSeconds: number },
): Promise<CommunityRow> {
  const updated =
    (await setRefreshPolicy(deps.catalog, row.id, {
      mode: change.mode,
      refreshSeconds: change.refreshSeconds,
      minRefreshSeconds: change.minSeconds,
      maxRefreshSeconds: change.maxSeconds,
    })) ?? row;
  await bounded(deps, async () => {
    try {
      await deps.temporal.workflow.getHandle(workflowIdOf(row.ref)).signal(setRefreshPolicySignal, change);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      await startWorkflow(deps, updated);
    }
  });
  return updated;
}

/** Per Temporal client: one whose queries closed workflows reject (a stopped run must not answer with its last state). */
const statusClients = new WeakMap<Client, WorkflowClient>();

function statusClientOf(temporal: Client): WorkflowClient {
  let client = statusClients.get(temporal);
  if (!client) {
    client = new WorkflowClient({
      connection: temporal.connection,
      namespace: temporal.options.namespace,
      queryRejectCondition: 'NOT_OPEN',
    });
    statusClients.set(temporal, client);
  }
  return client;
}

/** How long a status query may take before the answer is "unknown". */
export const STATUS_TIMEOUT_MS = 1500;

/**
 * The workflow's live status; 'stopped' when no run is open (cancelled, terminated, or gone);
 * undefined when Temporal does not answer within `timeoutMs`.
 */
export async function liveStatus(
  deps: Pick<TrackingDeps, 'temporal'>,
  ref: string,
  timeoutMs = STATUS_TIMEOUT_MS,
): Promise<CommunityStatus | 'stopped' | undefined> {
  try {
    return await deps.temporal.withDeadline(Date.now() + timeoutMs, () =>
      statusClientOf(deps.temporal).getHandle(workflowIdOf(ref)).query(statusQuery),
    );
  } catch (err) {
    if (err instanceof QueryRejectedError || err instanceof WorkflowNotFoundError) return 'stopped';
    return undefined;
  }
}
