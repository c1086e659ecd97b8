// One workflow per tracked community: sync, then wait for the refresh interval or a `refresh`
// signal, forever; continue-as-new keeps the history small. Deterministic: no I/O here, time
// comes from Temporal (Date.now() inside a workflow is the workflow clock).
import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  condition,
  type ActivityOptions,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { SyncSummary } from '../activities/sync.js';

export type CommunityState = 'syncing' | 'waiting' | 'failing' | 'not_found';

export interface SyncError {
  code: string;
  message: string;
  at: string;
}

export interface CommunityStatus {
  state: CommunityState;
  lastSyncAt: string | null;
  nextSyncAt: string | null;
  lastError: SyncError | null;
  syncs: number;
  postsStored: number;
  refreshSeconds: number;
}

export interface TrackCommunityInput {
  ref: string;
  instance: string;
  name: string;
  refreshSeconds: number;
  /** Rolls over to a new run after this many syncs (default MAX_CYCLES_PER_RUN). */
  maxCyclesPerRun?: number;
  /** Carried over by continue-as-new. */
  carried?: {
    status: CommunityStatus;
    /** A refresh was requested (or the interval ran out) when the previous run rolled over. */
    syncNow: boolean;
    /** When the current wait began (end of the last sync attempt), epoch ms. */
    waitStartedAt: number;
    cycles: number;
  };
}

export const refreshSignal = defineSignal('refresh');
export const setRefreshIntervalSignal = defineSignal<[number]>('setRefreshInterval');
export const statusQuery = defineQuery<CommunityStatus>('status');

/** Bound on sync cycles per run, in case the server never suggests continue-as-new. */
export const MAX_CYCLES_PER_RUN = 200;

/** Error types the activities throw as non-retryable; the workflow records them and waits. */
export const NOT_FOUND_TYPES = ['CommunityNotFound'];

const SYNC_OPTIONS: ActivityOptions = {
  // Budget waits and up to SYNC_MAX_PAGES pages fit well within this. The activity heartbeats
  // every 2 s, so a worker that died mid-sync is noticed after 10 s and the sync is retried.
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '10 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    // Kept short: a worker crash fails every sync in flight (heartbeat timeout), and the next
    // retry should not be minutes away. After the last attempt the workflow records the error and
    // tries again at the next interval or refresh.
    maximumInterval: '20 seconds',
    maximumAttempts: 8,
    nonRetryableErrorTypes: ['CommunityNotFound', 'NotLemmyApi', 'InstanceRequiresLogin'],
  },
};

export async function trackCommunity(input: TrackCommunityInput): Promise<void> {
  const maxCycles = input.maxCyclesPerRun ?? MAX_CYCLES_PER_RUN;
  const { syncCommunity } = proxyActivities<Activities>({ ...SYNC_OPTIONS, summary: `sync ${input.ref}` });
  let refreshSeconds = input.refreshSeconds;
  let refreshRequested = input.carried?.syncNow ?? true;
  let intervalChanged = false;
  const status: CommunityStatus = input.carried?.status ?? {
    state: 'syncing',
    lastSyncAt: null,
    nextSyncAt: null,
    lastError: null,
    syncs: 0,
    postsStored: 0,
    refreshSeconds,
  };
  status.refreshSeconds = refreshSeconds;

  setHandler(refreshSignal, () => {
    refreshRequested = true;
  });
  setHandler(setRefreshIntervalSignal, (seconds: number) => {
    // Signals cannot be rejected; a bad value from the CLI is logged and ignored.
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 86_400) {
      log.warn('ignoring setRefreshInterval: seconds must be an integer from 1 to 86400', { seconds });
      return;
    }
    refreshSeconds = seconds;
    status.refreshSeconds = seconds;
    intervalChanged = true;
  });
  setHandler(statusQuery, () => status);

  // The interval counts from the end of the last sync; a carried-over run resumes its wait.
  let waitStartedAt = input.carried?.waitStartedAt ?? Date.now();
  let cycles = input.carried?.cycles ?? 0;

  for (;;) {
    if (refreshRequested) {
      refreshRequested = false;
      const tracked = await runSync();
      waitStartedAt = Date.now();
      if (!tracked) {
        log.info('community is no longer tracked; stopping');
        return;
      }
      cycles += 1;
    }

    if (cycles >= maxCycles || workflowInfo().continueAsNewSuggested) {
      // Let signal handlers finish, then carry everything over, including a pending refresh.
      await condition(allHandlersFinished);
      const syncNow = refreshRequested || Date.now() >= waitStartedAt + refreshSeconds * 1000;
      await continueAsNew<typeof trackCommunity>({ ...input, refreshSeconds, carried: { status, syncNow, waitStartedAt, cycles: 0 } });
    }

    const dueAt = waitStartedAt + refreshSeconds * 1000;
    status.nextSyncAt = new Date(dueAt).toISOString();
    if (status.state === 'syncing') status.state = 'waiting';
    intervalChanged = false;
    const remaining = dueAt - Date.now();
    const woken = remaining <= 0 || (await condition(() => refreshRequested || intervalChanged, remaining, {
      summary: `wait ${refreshSeconds}s or a refresh signal`,
    }));
    if (!woken) refreshRequested = true; // interval elapsed
    // intervalChanged alone: loop and wait again with the new interval from the same start.
  }

  /** Returns false when the community was removed from the catalog. */
  async function runSync(): Promise<boolean> {
    const previous = status.state;
    status.state = 'syncing';
    let summary: SyncSummary;
    try {
      summary = await syncCommunity({ ref: input.ref, instance: input.instance, name: input.name, refreshSeconds });
    } catch (err) {
      if (isCancellation(err)) throw err;
      const failure = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : undefined;
      const code = failure?.type ? snake(failure.type) : 'sync_failed';
      status.lastError = { code, message: failure?.message ?? (err as Error).message, at: new Date().toISOString() };
      status.state = failure?.type && NOT_FOUND_TYPES.includes(failure.type) ? 'not_found' : 'failing';
      log.warn('sync failed', { code, message: status.lastError.message, previous });
      return true;
    }
    if (!summary.tracked) return false;
    status.syncs += 1;
    status.lastSyncAt = new Date().toISOString();
    status.lastError = null;
    status.postsStored = summary.postsStored;
    status.state = 'waiting';
    return true;
  }
}

function snake(type: string): string {
  return type.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}
