// One workflow per tracked community, for as long as it is tracked: sync, then wait for the
// refresh interval (which may change while waiting) or a `refresh`, and again; continue-as-new
// keeps each run's history small. Laid out like the entity workflows of
// temporalio/samples-typescript: the messages first, the state in a small class
// (communityTracker.ts), the wait in one helper (deadline.ts), then the flow.
// Deterministic: only @temporalio/workflow and pure modules; time is Temporal's (Date.now()).
import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  condition,
  type ActivityOptions,
  continueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { failureCode, isNotFoundFailure, PERMANENT_FAILURE_TYPES } from '../src/failures.js';
import { CommunityTracker, refreshSecondsProblem, type CommunityStatus, type TrackCommunityInput } from './communityTracker.js';
import { waitForDeadline } from './deadline.js';

export {
  DEFAULT_REFRESH_SECONDS,
  MAX_REFRESH_SECONDS,
  MIN_REFRESH_SECONDS,
  refreshSecondsProblem,
  type CarriedState,
  type CommunityState,
  type CommunityStatus,
  type SyncError,
  type TrackCommunityInput,
} from './communityTracker.js';

// ---- Messages (contract: the API, the website and `temporal workflow signal|update|query`) ----

/** Sync now, then restart the interval. Several while waiting collapse into one sync. */
export const refreshSignal = defineSignal('refresh');
/** New interval in seconds, for the CLI: a signal cannot be refused, so a bad value is logged and ignored. */
export const setRefreshIntervalSignal = defineSignal<[number]>('setRefreshInterval');
/**
 * The same change as an Update (same name; Temporal keeps signal and update names apart): a bad
 * value is refused to the caller by the validator (nothing is recorded), a good one answers with
 * the new status. Used by the API.
 */
export const setRefreshIntervalUpdate = defineUpdate<CommunityStatus, [number]>('setRefreshInterval');
export const statusQuery = defineQuery<CommunityStatus>('status');

/** Bound on sync cycles per run, in case the server never suggests continue-as-new. */
export const MAX_CYCLES_PER_RUN = 200;

export function workflowIdOf(ref: string): string {
  return `community:${ref}`;
}

const SYNC_OPTIONS: ActivityOptions = {
  // The activity keeps its requests and budget waits within this (it reads it from its context).
  // It heartbeats every 2 s, so a worker that died mid-sync is noticed after 10 s and retried.
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
    nonRetryableErrorTypes: [...PERMANENT_FAILURE_TYPES],
  },
};

export async function trackCommunity(input: TrackCommunityInput): Promise<void> {
  const tracker = new CommunityTracker(input);

  setHandler(refreshSignal, () => tracker.requestRefresh());
  setHandler(setRefreshIntervalSignal, (seconds: number) => {
    const problem = refreshSecondsProblem(seconds);
    if (problem) log.warn(`ignoring setRefreshInterval: ${problem}`, { seconds });
    else tracker.setRefreshSeconds(seconds);
  });
  setHandler(setRefreshIntervalUpdate, (seconds: number) => tracker.setRefreshSeconds(seconds), {
    validator: (seconds: number) => {
      const problem = refreshSecondsProblem(seconds);
      if (problem) throw new RangeError(problem);
    },
  });
  setHandler(statusQuery, () => tracker.status);

  const { syncCommunity } = proxyActivities<Activities>({ ...SYNC_OPTIONS, summary: `sync ${input.ref}` });
  const maxCycles = input.maxCyclesPerRun ?? MAX_CYCLES_PER_RUN;

  // Every pass syncs (awaiting the activity) or waits (awaiting a timer or a message): a
  // deadline already passed is 'due' at once and so a sync, never another pass without an await.
  // Keep the order of these steps: it decides the commands, which running workflows replay.
  for (;;) {
    if (tracker.refreshRequested) {
      if (!(await sync())) {
        log.info('community is no longer tracked; stopping');
        return;
      }
      tracker.startWaiting();
    }

    if (tracker.cycles >= maxCycles || workflowInfo().continueAsNewSuggested) {
      // Let handlers finish, then carry everything over, including a refresh that arrived.
      await condition(allHandlersFinished);
      await continueAsNew<typeof trackCommunity>({ ...input, refreshSeconds: tracker.refreshSeconds, carried: tracker.carry() });
    }

    const changes = tracker.intervalChanges;
    const outcome = await waitForDeadline(
      tracker.dueAt,
      () => tracker.refreshRequested,
      () => tracker.intervalChanges !== changes,
      { summary: `wait ${tracker.refreshSeconds}s or a refresh signal` },
    );
    if (outcome === 'due') tracker.requestRefresh();
    // 'moved': the interval was changed; wait again for the new deadline (if it has passed
    // already, that is 'due' at once, and the next pass syncs).
  }

  /** One sync attempt (with the activity's retries). Returns false when the community was removed from the catalog. */
  async function sync(): Promise<boolean> {
    tracker.startSync();
    try {
      // Which community only: the activity reads everything else (interval, shard) from the catalog.
      const summary = await syncCommunity({ ref: input.ref, instance: input.instance, name: input.name });
      if (!summary.tracked) return false;
      tracker.syncSucceeded(summary);
    } catch (err) {
      if (isCancellation(err)) throw err;
      const failure = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : undefined;
      const code = failure?.type ? failureCode(failure.type) : 'sync_failed';
      const error = { code, message: failure?.message ?? (err as Error).message, at: new Date().toISOString() };
      tracker.syncFailed(error, isNotFoundFailure(failure?.type));
      log.warn('sync failed', { code, message: error.message });
    }
    return true;
  }
}
