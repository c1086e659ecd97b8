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
  type LocalActivityOptions,
  continueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  isCancellation,
  log,
  makeContinueAsNewFunc,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { SyncInput, SyncSummary } from '../activities/sync.js';
import { failureCode, isNotFoundFailure, isPermanentFailure, PERMANENT_FAILURE_TYPES } from '../src/failures.js';
import {
  CommunityTracker,
  refreshPolicyProblem,
  refreshSecondsProblem,
  type CommunityStatus,
  type QuietRuns,
  type TrackCommunityInput,
} from './communityTracker.js';
import type { RefreshPolicy } from './refreshPolicy.js';
import { sleepUnlessInterrupted, waitForDeadline, waitForDeadlineByTimer } from './deadline.js';

export {
  DEFAULT_POLICY,
  DEFAULT_REFRESH_SECONDS,
  MAX_REFRESH_SECONDS,
  MIN_REFRESH_SECONDS,
  refreshPolicyProblem,
  refreshSecondsProblem,
  type CarriedState,
  type CommunityState,
  type OutcomeState,
  type CommunityStatus,
  type QuietRuns,
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
/** A new refresh policy: `{mode, minSeconds, maxSeconds, refreshSeconds?}` (refreshSeconds: the fixed interval). */
export interface RefreshPolicyChange extends RefreshPolicy {
  refreshSeconds?: number;
}
/** By signal (the API: accepted while no worker runs); a bad value is logged and ignored. */
export const setRefreshPolicySignal = defineSignal<[RefreshPolicyChange]>('setRefreshPolicy');
/** By update (the CLI): a bad value is refused by the validator; a good one answers with the new status. */
export const setRefreshPolicyUpdate = defineUpdate<CommunityStatus, [RefreshPolicyChange]>('setRefreshPolicy');
export const statusQuery = defineQuery<CommunityStatus>('status');
/**
 * Stop syncing until `resume`: a sync under way finishes, none starts (refreshes and due times are
 * ignored); the status shows state `paused` and no nextSyncAt. Carried through continue-as-new.
 */
export const pauseSignal = defineSignal('pause');
/** Start syncing again: a sync at once, then the interval as before. Nothing when not paused. */
export const resumeSignal = defineSignal('resume');

/** Why a policy change is refused, or undefined. */
export function policyChangeProblem(change: RefreshPolicyChange): string | undefined {
  return refreshPolicyProblem(change) ?? (change?.refreshSeconds === undefined ? undefined : refreshSecondsProblem(change.refreshSeconds));
}

/** Sync cycles per run of a run whose input names none (started before SYNCS_PER_RUN): it replays as recorded. */
export const MAX_CYCLES_PER_RUN = 200;

/**
 * Sync cycles per run for runs started, or continued, from now on (their input names it). A
 * workflow evicted from the worker's sticky cache replays its run before its next sync, so a
 * short run keeps that replay cheap: ~175 events at most instead of ~1,650, for ~10 events each
 * new run costs. bench/RESULTS.md ("Replay of an evicted workflow") has the numbers.
 */
export const SYNCS_PER_RUN = 20;

/** Runs of a community synced every 15 minutes or less often hold 4 syncs (QUIET_RUN_* configure what starts get). */
export const QUIET_RUNS: QuietRuns = { fromSeconds: 900, syncs: 4 };

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

/**
 * The quick attempt: most syncs take milliseconds (a request, a write), and as a local activity
 * one runs inside the workflow task that the timer woke, recorded as one marker, instead of an
 * activity task and a second workflow task (three events and a round trip through the server
 * fewer). One that cannot finish in time (paging back, a budget wait, a slow or failing source)
 * ends with HandedOver, and the regular activity (retries, heartbeats) runs the sync.
 */
const QUICK_SYNC_OPTIONS: LocalActivityOptions = {
  startToCloseTimeout: '5 seconds',
  retry: { maximumAttempts: 1 },
};

const SCHEDULE_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '5 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 3 },
};

/**
 * One patch for every change below: a run started from this version on records this one marker
 * (and the SDK's one TemporalChangeVersion upsert) instead of five of each, 8 events fewer per run
 * (a run is 4 to 20 syncs). Runs started before it replay through the separate patches. A later
 * change adds a patch of its own as usual.
 */
const CHANGES_THROUGH_WAIT_BY_TIMER = 'changes-through-wait-by-timer';

/** The source's failure behind an activity's: wrapped in an ActivityFailure, or bare (a local activity's). */
function applicationFailureOf(err: unknown): ApplicationFailure | undefined {
  if (err instanceof ApplicationFailure) return err;
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : undefined;
}

/**
 * The pause before a roll-over lasts until the run is this old. The server holds the first task of
 * a run continued sooner after its predecessor started (`history.workflowIdReuseMinimalInterval`,
 * 1 s by default), and a refresh carried into such a run waited that long.
 */
const RUN_MIN_AGE_MS = 1000;
/**
 * A first sync runs as a quick (local) attempt too: one page and the metadata (a few requests, one
 * write) fit its 5 s, and each new community's first run is one activity and one workflow task
 * lighter (start-up). Runs started before ask for it at their first sync and replay as regular.
 */
const QUICK_FIRST_SYNC = 'quick-first-sync';
/** A refresh ends the pause before a roll-over (pauseBeforeRollOver) instead of waiting for its timer. */
const REFRESH_ENDS_ROLL_OVER_PAUSE = 'refresh-ends-roll-over-pause';
/**
 * An interval the workflow plans itself follows JitterRule `withinBounds` (refreshPolicy.ts): a
 * source at a bound jittered inside the bounds, a first wait anywhere in the interval. Asked only
 * where the rules plan differently, so most runs record no marker.
 */
const JITTER_WITHIN_BOUNDS = 'jitter-within-bounds';

export async function trackCommunity(input: TrackCommunityInput): Promise<void> {
  const current = patched(CHANGES_THROUGH_WAIT_BY_TIMER);
  // Runs started before refresh policies replay with fixed intervals and no schedule records.
  const adaptive = current || patched('adaptive-refresh');
  // Runs roll over (continue-as-new) in a task of their own, not in the one a sync ended in.
  const rollOverInOwnTask = current || patched('roll-over-in-own-task');
  // Syncs that should be quick run as a local activity first (QUICK_SYNC_OPTIONS).
  const quickFirst = current || patched('quick-sync-first');
  // A successful sync saves the next interval with its result (the workflow's plan goes with it),
  // so the schedule's own local activity runs only after a failure or a change during the sync.
  const scheduleInSync = current || (adaptive && patched('schedule-in-sync'));
  // The wait is a timer in a scope of its own that messages interrupt, not `condition` with a timeout.
  const waitByTimer = current || patched('wait-by-timer');
  const tracker = new CommunityTracker(input, adaptive, () => patched(JITTER_WITHIN_BOUNDS));

  // With waitByTimer, the wait in progress (if any) and what ends it: every message that can
  // request a sync, move the deadline or pause calls it after changing the tracker.
  let interruptWait: (() => void) | undefined;
  /** Given to each interruptible wait: how the messages reach the wait in progress. */
  const onWait = (interrupt: (() => void) | undefined) => (interruptWait = interrupt);
  const thenInterrupt =
    <A extends unknown[], R>(handler: (...args: A) => R) =>
    (...args: A): R => {
      const result = handler(...args);
      interruptWait?.();
      return result;
    };

  setHandler(
    refreshSignal,
    thenInterrupt(() => tracker.requestRefresh()),
  );
  setHandler(
    setRefreshIntervalSignal,
    thenInterrupt((seconds: number) => {
      const problem = refreshSecondsProblem(seconds);
      if (problem) log.warn(`ignoring setRefreshInterval: ${problem}`, { seconds });
      else tracker.setRefreshSeconds(seconds);
    }),
  );
  setHandler(
    setRefreshIntervalUpdate,
    thenInterrupt((seconds: number) => tracker.setRefreshSeconds(seconds)),
    {
      validator: (seconds: number) => {
        const problem = refreshSecondsProblem(seconds);
        if (problem) throw new RangeError(problem);
      },
    },
  );
  const applyPolicy = thenInterrupt((change: RefreshPolicyChange) =>
    tracker.setRefreshPolicy({ mode: change.mode, minSeconds: change.minSeconds, maxSeconds: change.maxSeconds }, change.refreshSeconds),
  );
  setHandler(setRefreshPolicySignal, (change: RefreshPolicyChange) => {
    const problem = policyChangeProblem(change);
    if (problem) log.warn(`ignoring setRefreshPolicy: ${problem}`, { change });
    else applyPolicy(change);
  });
  setHandler(setRefreshPolicyUpdate, applyPolicy, {
    validator: (change: RefreshPolicyChange) => {
      const problem = policyChangeProblem(change);
      if (problem) throw new RangeError(problem);
    },
  });
  setHandler(statusQuery, () => tracker.status);
  setHandler(
    pauseSignal,
    thenInterrupt(() => void tracker.pause()),
  );
  setHandler(
    resumeSignal,
    thenInterrupt(() => void tracker.resume()),
  );

  const { syncCommunity } = proxyActivities<Activities>({ ...SYNC_OPTIONS, summary: `sync ${input.ref}` });
  const { syncCommunity: syncQuickly } = proxyLocalActivities<Activities>({ ...QUICK_SYNC_OPTIONS, summary: `quick sync ${input.ref}` });
  const { recordSchedule } = proxyLocalActivities<Activities>(SCHEDULE_OPTIONS);
  const maxCycles = input.maxCyclesPerRun ?? MAX_CYCLES_PER_RUN;

  // Every pass syncs (awaiting the activity) or waits (awaiting a timer or a message): a
  // deadline already passed is 'due' at once and so a sync, never another pass without an await.
  // Keep the order of these steps: it decides the commands, which running workflows replay.
  for (;;) {
    let synced = false;
    if (tracker.refreshRequested) {
      if (!(await sync())) {
        log.info('community is no longer tracked; stopping');
        return;
      }
      tracker.startWaiting();
      if (adaptive && !tracker.scheduleSaved) await saveSchedule();
      synced = true;
    }

    if (rollOverDue()) {
      // Straight after a sync, the carry would be made in the task that resolved the sync's (or the
      // schedule's) local activity. A message arriving meanwhile makes the server refuse the continue-as-new,
      // and the replay that follows could deliver it only after the carry was made: it was lost
      // (a resume, a refresh, an interval; test/track-community-property.test.ts found it). A timer
      // first puts the roll-over in a task of its own, which every message arriving by then shares,
      // and messages reach their handlers before the timer wakes the workflow.
      if (rollOverInOwnTask && synced && (await pauseBeforeRollOver()) === 'sync') continue;
      await rollOver();
    }

    if (tracker.paused) {
      // Only ever taken after a `pause` (or in a run started paused), so histories that never
      // paused replay the commands they recorded. Waits for `resume` (which asks for a sync) or
      // for the server to suggest continue-as-new (signals while paused grow the history too).
      await condition(() => !tracker.paused || workflowInfo().continueAsNewSuggested);
      continue;
    }

    const changes = tracker.intervalChanges;
    const wake = () => tracker.refreshRequested;
    // A pause ends the wait as a move would: the next pass waits for `resume` instead.
    const moved = () => tracker.intervalChanges !== changes || tracker.paused;
    const timer = { summary: `wait ${tracker.refreshSeconds}s or a refresh signal` };
    const outcome = waitByTimer
      ? await waitForDeadlineByTimer(tracker.dueAt, wake, moved, onWait, timer)
      : await waitForDeadline(tracker.dueAt, wake, moved, timer);
    if (outcome === 'due') tracker.requestRefresh();
    // 'moved': the interval was changed; wait again for the new deadline (if it has passed
    // already, that is 'due' at once, and the next pass syncs).
  }

  // A run makes at least one sync before it rolls over by count, whatever its input says (a
  // bound of 0 from a hand-started run would otherwise hand over to the next run for ever). It
  // moves to the other task queue only after a sync too: at most one hand-over per sync, whatever
  // the interval does.
  function rollOverDue(): boolean {
    const quiet = input.quietRuns;
    return (
      tracker.cycles >= Math.max(1, maxCycles) ||
      (quiet !== undefined && tracker.cycles >= Math.max(1, quiet.syncs) && tracker.regularRefreshSeconds >= quiet.fromSeconds) ||
      (tracker.cycles >= 1 && quiet?.taskQueues !== undefined && belongsOnQuietQueue() !== (input.onQuietTaskQueue === true)) ||
      workflowInfo().continueAsNewSuggested
    );
  }

  // Which queue a run is on is in its input, not read from workflowInfo() (the worker's queue,
  // which a replay does not have): the decision replays as it was made.
  function belongsOnQuietQueue(): boolean {
    return input.quietRuns !== undefined && tracker.regularRefreshSeconds >= input.quietRuns.fromSeconds;
  }

  /**
   * The timer before a roll-over after a sync: 1 ms, or until the run is RUN_MIN_AGE_MS old. A
   * refresh (or a resume) meanwhile ends it: a young run syncs first (and pauses again), an older
   * one rolls over at once and carries the refresh. Runs that recorded a refresh during the pause
   * without ending it replay it to its end: the patch is asked for only when one comes, so other
   * runs record no marker for it.
   */
  async function pauseBeforeRollOver(): Promise<'sync' | 'rollOver'> {
    const age = () => Date.now() - workflowInfo().runStartTime.getTime();
    const fired = await sleepUnlessInterrupted(
      Math.max(1, RUN_MIN_AGE_MS - age()),
      () => tracker.refreshRequested && patched(REFRESH_ENDS_ROLL_OVER_PAUSE),
      onWait,
      { summary: 'roll over in a task of its own' },
    );
    return fired || age() >= RUN_MIN_AGE_MS ? 'rollOver' : 'sync';
  }

  /** Continue as new: let handlers finish, then carry everything over, including a pending refresh. */
  async function rollOver(): Promise<never> {
    await condition(allHandlersFinished);
    const next: TrackCommunityInput = {
      ...input,
      maxCyclesPerRun: input.maxCyclesPerRun ?? SYNCS_PER_RUN,
      quietRuns: input.quietRuns ?? QUIET_RUNS,
      refreshSeconds: adaptive ? tracker.fixedSeconds : tracker.refreshSeconds,
      ...(adaptive ? { policy: tracker.policy } : {}),
      carried: tracker.carry(),
    };
    // The same queue unless the input names the queues: runs started before replay as recorded.
    const queues = input.quietRuns?.taskQueues;
    if (!queues) return continueAsNew<typeof trackCommunity>(next);
    delete next.onQuietTaskQueue;
    const quiet = belongsOnQuietQueue();
    if (quiet) next.onQuietTaskQueue = true;
    return makeContinueAsNewFunc<typeof trackCommunity>({ taskQueue: quiet ? queues.quiet : queues.active })(next);
  }

  /** The schedule as lists show it (the catalog); best effort, a list may lag a cycle. */
  async function saveSchedule(): Promise<void> {
    const st = tracker.status;
    try {
      await recordSchedule({
        ref: input.ref,
        state: tracker.outcome,
        lastSyncAt: st.lastSyncAt,
        waitStartedAt: new Date(tracker.waitStartedAt).toISOString(),
        intervalSeconds: st.refreshSeconds,
        nextSyncAt: st.nextSyncAt ?? new Date(tracker.dueAt).toISOString(), // paused: the catalog's paused_at says so
        reason: st.reason,
        consecutiveFailures: st.consecutiveFailures,
        postsPerHour: st.postsPerHour,
      });
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.warn('could not record the schedule in the catalog', { message: (err as Error).message });
    }
  }

  /**
   * The quick attempt's summary, or undefined when it handed the sync over (or failed otherwise
   * than for good). A permanent failure (not found…) is the sync's outcome, as from the regular
   * activity: no second attempt.
   */
  async function quickSync(which: SyncInput): Promise<SyncSummary | undefined> {
    try {
      return await syncQuickly(which);
    } catch (err) {
      if (isCancellation(err)) throw err;
      if (isPermanentFailure(applicationFailureOf(err)?.type)) throw err;
      return undefined;
    }
  }

  /** One sync attempt (with the activity's retries). Returns false when the community was removed from the catalog. */
  async function sync(): Promise<boolean> {
    tracker.startSync();
    try {
      // Which community only: the activity reads everything else (interval, shard) from the catalog.
      const which: SyncInput = { ref: input.ref, instance: input.instance, name: input.name };
      if (scheduleInSync) which.plan = tracker.planForSync();
      const triesQuick = quickFirst && (tracker.expectsQuickSync || (tracker.beforeFirstSync && patched(QUICK_FIRST_SYNC)));
      const quick = triesQuick ? await quickSync(which) : undefined;
      const summary = quick ?? (await syncCommunity(triesQuick ? { ...which, afterQuickAttempt: true } : which));
      if (!summary.tracked) return false;
      tracker.syncSucceeded(summary);
    } catch (err) {
      if (isCancellation(err)) throw err;
      const failure = applicationFailureOf(err);
      const code = failure?.type ? failureCode(failure.type) : 'sync_failed';
      const error = { code, message: failure?.message ?? (err as Error).message, at: new Date().toISOString() };
      // Offline: every source failed at once, so the fault is ours; it does not count against this one.
      tracker.syncFailed(error, isNotFoundFailure(failure?.type), failure?.type !== 'Offline');
      log.warn('sync failed', { code, message: error.message });
    }
    return true;
  }
}
