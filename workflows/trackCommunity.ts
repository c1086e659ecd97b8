// One workflow per tracked community: sync, then wait for the refresh interval or a `refresh`
// signal, for as long as the community is tracked; continue-as-new keeps the history small.
// Deterministic: no I/O here, time comes from Temporal (Date.now() is the workflow clock).
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
import type { SyncSummary } from '../activities/sync.js';
import { failureCode, isNotFoundFailure, PERMANENT_FAILURE_TYPES } from '../src/failures.js';
import { waitForDeadline } from './deadline.js';

/** Sync now, then restart the interval. Several while waiting collapse into one sync. */
export const refreshSignal = defineSignal('refresh');
/** For the CLI: a bad value cannot be refused to a signal's sender, so it is logged and ignored. */
export const setRefreshIntervalSignal = defineSignal<[number]>('setRefreshInterval');
/** The same change, validated: a bad value is refused to the caller. Returns the new status. */
export const setRefreshIntervalUpdate = defineUpdate<CommunityStatus, [number]>('setRefreshInterval');
export const statusQuery = defineQuery<CommunityStatus>('status');

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

/** Bound on sync cycles per run, in case the server never suggests continue-as-new. */
export const MAX_CYCLES_PER_RUN = 200;
export const MIN_REFRESH_SECONDS = 1;
export const MAX_REFRESH_SECONDS = 86_400;

export function workflowIdOf(ref: string): string {
  return `community:${ref}`;
}

/** Why a refresh interval is refused, or undefined when it is fine. */
export function refreshSecondsProblem(seconds: unknown): string | undefined {
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < MIN_REFRESH_SECONDS || seconds > MAX_REFRESH_SECONDS) {
    return `refreshSeconds must be a whole number from ${MIN_REFRESH_SECONDS} to ${MAX_REFRESH_SECONDS}, not ${JSON.stringify(seconds)}`;
  }
  return undefined;
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

/** The state of one tracked community: what the status query shows and what continue-as-new carries. */
class CommunityTracker {
  readonly status: CommunityStatus;
  refreshSeconds: number;
  refreshRequested = false;
  /** End of the last sync attempt (epoch ms): the interval counts from here. */
  waitStartedAt: number;
  cycles: number;

  constructor(input: TrackCommunityInput) {
    this.refreshSeconds = input.refreshSeconds;
    this.waitStartedAt = input.carried?.waitStartedAt ?? Date.now();
    this.cycles = input.carried?.cycles ?? 0;
    this.status = input.carried?.status ?? {
      state: 'syncing',
      lastSyncAt: null,
      nextSyncAt: null,
      lastError: null,
      syncs: 0,
      postsStored: 0,
      refreshSeconds: input.refreshSeconds,
    };
    this.status.refreshSeconds = input.refreshSeconds;
  }

  get dueAt(): number {
    return this.waitStartedAt + this.refreshSeconds * 1000;
  }

  setRefreshSeconds(seconds: number): void {
    this.refreshSeconds = seconds;
    this.status.refreshSeconds = seconds;
    if (this.status.state !== 'syncing') this.status.nextSyncAt = new Date(this.dueAt).toISOString();
  }

  startSync(): void {
    this.refreshRequested = false;
    this.status.state = 'syncing';
  }

  syncSucceeded(summary: SyncSummary): void {
    this.status.syncs += 1;
    this.status.lastSyncAt = new Date().toISOString();
    this.status.lastError = null;
    this.status.postsStored = summary.postsStored;
    this.status.state = 'waiting';
  }

  syncFailed(error: SyncError, notFound: boolean): void {
    this.status.lastError = error;
    this.status.state = notFound ? 'not_found' : 'failing';
  }

  /** After a sync attempt: the interval starts again from now. */
  startWaiting(): void {
    this.cycles += 1;
    this.waitStartedAt = Date.now();
    if (this.status.state === 'syncing') this.status.state = 'waiting';
    this.status.nextSyncAt = new Date(this.dueAt).toISOString();
  }
}

export async function trackCommunity(input: TrackCommunityInput): Promise<void> {
  const maxCycles = input.maxCyclesPerRun ?? MAX_CYCLES_PER_RUN;
  const { syncCommunity } = proxyActivities<Activities>({ ...SYNC_OPTIONS, summary: `sync ${input.ref}` });
  const tracker = new CommunityTracker(input);

  setHandler(refreshSignal, () => {
    tracker.refreshRequested = true;
  });
  setHandler(setRefreshIntervalSignal, (seconds: number) => {
    const problem = refreshSecondsProblem(seconds);
    if (problem) log.warn(`ignoring setRefreshInterval: ${problem}`, { seconds });
    else tracker.setRefreshSeconds(seconds);
  });
  setHandler(
    setRefreshIntervalUpdate,
    (seconds: number) => {
      tracker.setRefreshSeconds(seconds);
      return tracker.status;
    },
    {
      validator: (seconds: number) => {
        const problem = refreshSecondsProblem(seconds);
        if (problem) throw new Error(problem);
      },
    },
  );
  setHandler(statusQuery, () => tracker.status);

  // A new run syncs at once; a carried-over run resumes its wait (or syncs, if it was due).
  let syncNow = input.carried?.syncNow ?? true;
  for (;;) {
    if (!syncNow) {
      await waitForDeadline(
        () => tracker.dueAt,
        () => tracker.refreshRequested,
        { summary: `wait ${tracker.refreshSeconds}s or a refresh signal` },
      );
    }
    syncNow = false;
    if (!(await sync())) {
      log.info('community is no longer tracked; stopping');
      return;
    }
    tracker.startWaiting();

    if (tracker.cycles >= maxCycles || workflowInfo().continueAsNewSuggested) {
      // Let handlers finish, then carry everything over, including a refresh that arrived.
      await condition(allHandlersFinished);
      await continueAsNew<typeof trackCommunity>({
        ...input,
        refreshSeconds: tracker.refreshSeconds,
        carried: {
          status: tracker.status,
          syncNow: tracker.refreshRequested || Date.now() >= tracker.dueAt,
          waitStartedAt: tracker.waitStartedAt,
          cycles: 0,
        },
      });
    }
  }

  /** Returns false when the community was removed from the catalog. */
  async function sync(): Promise<boolean> {
    tracker.startSync();
    let summary: SyncSummary;
    try {
      summary = await syncCommunity({ ref: input.ref, instance: input.instance, name: input.name, refreshSeconds: tracker.refreshSeconds }); // TEMP until the activity stops taking it
    } catch (err) {
      if (isCancellation(err)) throw err;
      const failure = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : undefined;
      const code = failure?.type ? failureCode(failure.type) : 'sync_failed';
      const error = { code, message: failure?.message ?? (err as Error).message, at: new Date().toISOString() };
      tracker.syncFailed(error, isNotFoundFailure(failure?.type));
      log.warn('sync failed', { code, message: error.message });
      return true;
    }
    if (!summary.tracked) return false;
    tracker.syncSucceeded(summary);
    return true;
  }
}
