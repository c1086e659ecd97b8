// The state of one tracked community, the "entity" of the trackCommunity entity workflow: what
// the status query shows, what the message handlers change, and what continue-as-new carries to
// the next run. Plain data and arithmetic on the workflow clock (Date.now() in a workflow is
// Temporal's deterministic time); no Temporal calls, so the workflow file reads as its flow.
import type { SyncSummary } from '../activities/sync.js';

export type CommunityState = 'syncing' | 'waiting' | 'failing' | 'not_found';

export interface SyncError {
  code: string;
  message: string;
  at: string;
}

/** The `status` query's answer (contract: the API, the website and the CLI show it). */
export interface CommunityStatus {
  state: CommunityState;
  lastSyncAt: string | null;
  nextSyncAt: string | null;
  lastError: SyncError | null;
  syncs: number;
  postsStored: number;
  refreshSeconds: number;
}

/** What one run hands to the next through continue-as-new. */
export interface CarriedState {
  status: CommunityStatus;
  /** A refresh was pending when the previous run rolled over: sync at once. */
  syncNow: boolean;
  /** When the current wait began (end of the last sync attempt), epoch ms. */
  waitStartedAt: number;
  cycles: number;
}

export interface TrackCommunityInput {
  ref: string;
  instance: string;
  name: string;
  refreshSeconds: number;
  /** Rolls over to a new run after this many syncs (default MAX_CYCLES_PER_RUN). */
  maxCyclesPerRun?: number;
  /** Set by continue-as-new only. */
  carried?: CarriedState;
}

export const MIN_REFRESH_SECONDS = 1;
export const MAX_REFRESH_SECONDS = 86_400;
/** Used when a run is started with an unusable interval (the API never does that). */
export const DEFAULT_REFRESH_SECONDS = 300;

/** Why a refresh interval is refused, or undefined when it is fine. */
export function refreshSecondsProblem(seconds: unknown): string | undefined {
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < MIN_REFRESH_SECONDS || seconds > MAX_REFRESH_SECONDS) {
    return `refreshSeconds must be a whole number from ${MIN_REFRESH_SECONDS} to ${MAX_REFRESH_SECONDS}, not ${JSON.stringify(seconds) ?? String(seconds)}`;
  }
  return undefined;
}

const iso = (ms: number) => new Date(ms).toISOString();

export class CommunityTracker {
  readonly status: CommunityStatus;
  /** A refresh is pending: sync as soon as the current step ends. Several collapse into one. */
  refreshRequested: boolean;
  /** End of the last sync attempt (epoch ms): the interval counts from here. */
  waitStartedAt: number;
  /** Sync attempts in this run (bounds the run's history). */
  cycles: number;
  /** Counts accepted interval changes: a wait in progress looks at its deadline again when it moves on. */
  intervalChanges = 0;

  constructor(input: TrackCommunityInput) {
    const seconds = refreshSecondsProblem(input.refreshSeconds) ? DEFAULT_REFRESH_SECONDS : input.refreshSeconds;
    const carried = input.carried;
    // A new run syncs at once; a run continued as new resumes the wait of the previous one (a
    // wait whose deadline has already passed ends at once: see waitForDeadline).
    this.refreshRequested = carried ? carried.syncNow : true;
    this.waitStartedAt = carried?.waitStartedAt ?? Date.now();
    this.cycles = carried?.cycles ?? 0;
    this.status = carried?.status ?? {
      state: 'syncing',
      lastSyncAt: null,
      nextSyncAt: null,
      lastError: null,
      syncs: 0,
      postsStored: 0,
      refreshSeconds: seconds,
    };
    this.status.refreshSeconds = seconds;
  }

  get refreshSeconds(): number {
    return this.status.refreshSeconds;
  }

  /** When the next sync is due without a refresh (epoch ms). */
  get dueAt(): number {
    return this.waitStartedAt + this.refreshSeconds * 1000;
  }

  requestRefresh(): void {
    this.refreshRequested = true;
  }

  /** A validated interval; counts from the end of the last sync, like the one it replaces. */
  setRefreshSeconds(seconds: number): CommunityStatus {
    this.status.refreshSeconds = seconds;
    this.intervalChanges += 1; // even to the same value: the wait restarts its timer, as it always has
    if (this.status.state !== 'syncing') this.status.nextSyncAt = iso(this.dueAt);
    return this.status;
  }

  startSync(): void {
    this.refreshRequested = false; // a refresh that arrives during the sync asks for another one
    this.status.state = 'syncing';
  }

  syncSucceeded(summary: SyncSummary): void {
    this.status.syncs += 1;
    this.status.lastSyncAt = iso(Date.now());
    this.status.lastError = null;
    this.status.postsStored = summary.postsStored;
    this.status.state = 'waiting';
  }

  syncFailed(error: SyncError, notFound: boolean): void {
    this.status.lastError = error;
    this.status.state = notFound ? 'not_found' : 'failing';
  }

  /** After a sync attempt, failed or not: the interval starts again from now. */
  startWaiting(): void {
    this.cycles += 1;
    this.waitStartedAt = Date.now();
    if (this.status.state === 'syncing') this.status.state = 'waiting';
    this.status.nextSyncAt = iso(this.dueAt);
  }

  /** The state for the next run; a pending refresh goes with it, so none is lost. */
  carry(): CarriedState {
    return { status: this.status, syncNow: this.refreshRequested, waitStartedAt: this.waitStartedAt, cycles: 0 };
  }
}
