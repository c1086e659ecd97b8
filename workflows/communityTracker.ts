// The state of one tracked community, the "entity" of the trackCommunity entity workflow: what
// the status query shows, what the message handlers change, and what continue-as-new carries to
// the next run. Plain data and arithmetic on the workflow clock (Date.now() in a workflow is
// Temporal's deterministic time); no Temporal calls, so the workflow file reads as its flow.
import type { SyncSummary } from '../activities/sync.js';
import {
  DORMANT_AFTER_FAILURES,
  intervalFor,
  rateAfterSync,
  type PlannedSchedule,
  type RefreshMode,
  type RefreshPolicy,
  type SchedulePlan,
} from './refreshPolicy.js';

export type CommunityState = 'syncing' | 'waiting' | 'failing' | 'not_found' | 'dormant' | 'paused';
/** What the last sync attempt left: the state shown when not syncing and not paused. */
export type OutcomeState = 'waiting' | 'failing' | 'not_found' | 'dormant';

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
  /** The current interval: the fixed one, the adapted one, or a failing source's back-off. */
  refreshSeconds: number;
  refreshPolicy: RefreshMode;
  minRefreshSeconds: number;
  maxRefreshSeconds: number;
  /** Why the interval is what it is, e.g. `adaptive: 0.4 posts/h → 900 s`. */
  reason: string;
  consecutiveFailures: number;
  /** The source's observed posting rate; null until known. */
  postsPerHour: number | null;
}

/** What one run hands to the next through continue-as-new. */
export interface CarriedState {
  status: CommunityStatus;
  /** A refresh was pending when the previous run rolled over: sync at once. */
  syncNow: boolean;
  /** When the current wait began (end of the last sync attempt), epoch ms. */
  waitStartedAt: number;
  cycles: number;
  /** The source's last "not sooner than" hint (seconds). */
  hintSeconds?: number;
  /** Paused (set only while paused, so runs that never paused carry what they always did). */
  paused?: true;
  /** While paused: what the last sync attempt left, shown again on resume. */
  outcome?: OutcomeState;
}

export interface TrackCommunityInput {
  ref: string;
  instance: string;
  name: string;
  /** The fixed interval (also kept while adaptive, for a switch back). */
  refreshSeconds: number;
  /** Absent in runs started before adaptive refresh: fixed, within the default bounds. */
  policy?: RefreshPolicy;
  /** Rolls over to a new run after this many syncs (default MAX_CYCLES_PER_RUN). */
  maxCyclesPerRun?: number;
  /** Shorter runs while the interval is long (absent in runs started before: one length for all). */
  quietRuns?: QuietRuns;
  /** This run is on `quietRuns.taskQueues.quiet` (set by the hand-over; absent: on the active queue). */
  onQuietTaskQueue?: true;
  /** Start paused (the catalog says so): no sync until a `resume`. A carried state decides instead. */
  paused?: boolean;
  /** Set by continue-as-new only. */
  carried?: CarriedState;
}

/**
 * While the interval is at least `fromSeconds`, a run rolls over after `syncs` syncs. A community
 * synced that rarely is out of a busy worker's sticky cache by its next sync, which replays its
 * run first: a replay costs about 7 CPU-ms per sync in the run (bench/RESULTS.md, "Replay of an
 * evicted workflow"), a roll-over one workflow task and a new run's start.
 */
export interface QuietRuns {
  fromSeconds: number;
  syncs: number;
  /**
   * Where quiet runs run (absent in runs started before, and when the worker has one queue): a
   * run whose interval is at least `fromSeconds` hands over to `quiet`, one whose interval is
   * shorter to `active`. A quiet community then takes a slot in the quiet queue's small sticky
   * cache, not in the one that keeps the busy communities cached between their syncs.
   */
  taskQueues?: { active: string; quiet: string };
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

/** Bounds used when a run is started without a policy (runs started before policies existed). */
export const DEFAULT_POLICY: RefreshPolicy = { mode: 'fixed', minSeconds: 60, maxSeconds: 3600 };

/** Why a policy is refused, or undefined when it is fine. */
export function refreshPolicyProblem(p: unknown): string | undefined {
  const policy = p as Partial<RefreshPolicy> | null;
  if (typeof policy !== 'object' || policy === null) return 'a refresh policy must be an object';
  if (policy.mode !== 'fixed' && policy.mode !== 'adaptive')
    return `refresh policy mode must be "fixed" or "adaptive", not ${JSON.stringify(policy.mode)}`;
  for (const field of ['minSeconds', 'maxSeconds'] as const) {
    const problem = refreshSecondsProblem(policy[field]);
    if (problem) return problem.replace('refreshSeconds', field);
  }
  if ((policy.minSeconds as number) > (policy.maxSeconds as number)) return 'minSeconds must not be above maxSeconds';
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
  /** The fixed interval (seconds), kept while adaptive for a switch back. */
  fixedSeconds: number;
  policy: RefreshPolicy;
  /** The source's last "not sooner than" hint (seconds). */
  hintSeconds: number | undefined;
  /** Paused: no sync starts (refreshes and due times are ignored) until `resume`. */
  paused: boolean;
  /** A sync attempt is under way (between startSync and startWaiting). */
  private inSync = false;
  /** What the last sync attempt left (the catalog's sync state); kept while paused. */
  private lastOutcome: OutcomeState;
  /** When the sync that just succeeded was saved (ISO, the catalog's time); until startWaiting. */
  private syncedAt: string | undefined;
  /** intervalChanges when the sync's plan was made: a change since makes the sync's schedule stale. */
  private plannedAtChange: number | undefined;
  /** The schedule the sync that just succeeded decided and saved, when still current; until startWaiting. */
  private adopted: PlannedSchedule | undefined;
  /** A first wait's full interval (Interval.regularSeconds), until the interval is planned again. */
  private regularSeconds: number | undefined;
  /** The catalog holds the schedule of the current wait already (the sync saved it): no second write. */
  scheduleSaved = false;

  /**
   * `adaptive`: the rules of policies, back-off and dormancy apply. False only while replaying
   * runs started before them (the workflow asks `patched`), which keep their fixed intervals.
   * `jittersWithinBounds`: asked only when the two jitter rules plan different intervals (a source
   * at a bound); false while replaying a run that planned by the old rule (the workflow asks
   * `patched`).
   */
  constructor(
    input: TrackCommunityInput,
    readonly adaptive = true,
    private readonly jittersWithinBounds: () => boolean = () => true,
  ) {
    const seconds = refreshSecondsProblem(input.refreshSeconds) ? DEFAULT_REFRESH_SECONDS : input.refreshSeconds;
    this.fixedSeconds = seconds;
    this.policy = input.policy && !refreshPolicyProblem(input.policy) ? { ...input.policy } : { ...DEFAULT_POLICY };
    const carried = input.carried;
    this.hintSeconds = carried?.hintSeconds;
    this.paused = carried ? carried.paused === true : input.paused === true;
    // A new run syncs at once (unless started paused); a run continued as new resumes the wait of
    // the previous one (a wait whose deadline has already passed ends at once: see waitForDeadline).
    this.refreshRequested = carried ? carried.syncNow : !this.paused;
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
      refreshPolicy: this.policy.mode,
      minRefreshSeconds: this.policy.minSeconds,
      maxRefreshSeconds: this.policy.maxSeconds,
      reason: '',
      consecutiveFailures: 0,
      postsPerHour: null,
    };
    // A status carried from a run before policies existed lacks these.
    this.status.consecutiveFailures ??= 0;
    this.status.postsPerHour ??= null;
    this.status.refreshPolicy = this.policy.mode;
    this.status.minRefreshSeconds = this.policy.minSeconds;
    this.status.maxRefreshSeconds = this.policy.maxSeconds;
    if (!adaptive || !carried) {
      this.status.refreshSeconds = seconds;
      this.status.reason = `fixed: ${seconds} s`;
    }
    if (adaptive && !carried) this.planInterval();
    else if (adaptive && carried && !this.status.reason) this.planInterval();
    const state = this.status.state;
    this.lastOutcome = carried?.outcome ?? (state === 'syncing' || state === 'paused' ? 'waiting' : state);
    if (this.paused) this.showPaused();
  }

  private showPaused(): void {
    this.status.state = 'paused';
    this.status.nextSyncAt = null;
  }

  /**
   * Whether the next sync should take milliseconds: it has synced before and the last sync
   * succeeded (a failing source is retried as a regular activity at once).
   */
  get expectsQuickSync(): boolean {
    return this.status.lastSyncAt !== null && this.status.lastError === null;
  }

  /** Whether the next sync is the first attempt ever: never synced, never failed. */
  get beforeFirstSync(): boolean {
    return this.status.lastSyncAt === null && this.status.lastError === null;
  }

  /** The state the last sync attempt left (never 'syncing' or 'paused'): what the catalog records. */
  get outcome(): OutcomeState {
    return this.lastOutcome;
  }

  /**
   * Stop syncing: a sync under way finishes, but none starts until `resume` (a pending refresh is
   * dropped; a refresh while paused is ignored). Idempotent.
   */
  pause(): CommunityStatus {
    this.paused = true;
    this.refreshRequested = false;
    if (!this.inSync) this.showPaused();
    return this.status;
  }

  /** Start again: sync at once, then the interval as before. Idempotent (a resume when not paused does nothing). */
  resume(): CommunityStatus {
    if (!this.paused) return this.status;
    this.paused = false;
    this.refreshRequested = true;
    if (!this.inSync) this.status.state = this.lastOutcome;
    return this.status;
  }

  /** Chooses the current interval from the policy, the posting rate, failures and the source's hint. */
  private planInterval(firstWait = false): void {
    const of = {
      policy: this.policy,
      fixedSeconds: this.fixedSeconds,
      rate: this.status.postsPerHour,
      consecutiveFailures: this.status.consecutiveFailures,
      hintSeconds: this.hintSeconds,
      random: Math.random(), // the workflow's seeded PRNG: the same on replay
    };
    const within = intervalFor({ ...of, jitter: 'withinBounds', firstWait });
    const before = intervalFor({ ...of, jitter: 'beforeClamp' });
    const { seconds, reason, regularSeconds } =
      (within.seconds === before.seconds && within.regularSeconds === before.regularSeconds) || this.jittersWithinBounds()
        ? within
        : before;
    this.regularSeconds = regularSeconds;
    this.status.refreshSeconds = seconds;
    this.status.reason = reason;
  }

  get refreshSeconds(): number {
    return this.status.refreshSeconds;
  }

  /**
   * The interval that decides how quiet the source is (its runs' length and task queue): the
   * current one, or during a first wait (a random share of it) the full one.
   */
  get regularRefreshSeconds(): number {
    return this.regularSeconds ?? this.status.refreshSeconds;
  }

  /** When the next sync is due without a refresh (epoch ms). */
  get dueAt(): number {
    return this.waitStartedAt + this.refreshSeconds * 1000;
  }

  /** Ignored while paused: the resume syncs at once anyway. */
  requestRefresh(): void {
    if (this.paused) return;
    this.refreshRequested = true;
  }

  /** A validated fixed interval; counts from the end of the last sync, like the one it replaces. */
  setRefreshSeconds(seconds: number): CommunityStatus {
    this.fixedSeconds = seconds;
    if (!this.adaptive) {
      this.status.refreshSeconds = seconds;
      this.status.reason = `fixed: ${seconds} s`;
    } else {
      this.policy.mode = 'fixed';
      this.status.refreshPolicy = 'fixed';
      this.planInterval();
    }
    return this.intervalChanged();
  }

  /** A validated policy (and, for `fixed`, maybe a new interval). */
  setRefreshPolicy(policy: RefreshPolicy, fixedSeconds?: number): CommunityStatus {
    if (fixedSeconds !== undefined) this.fixedSeconds = fixedSeconds;
    this.policy = { ...policy };
    this.status.refreshPolicy = policy.mode;
    this.status.minRefreshSeconds = policy.minSeconds;
    this.status.maxRefreshSeconds = policy.maxSeconds;
    if (this.adaptive) this.planInterval();
    else this.status.refreshSeconds = this.fixedSeconds;
    return this.intervalChanged();
  }

  private intervalChanged(): CommunityStatus {
    this.intervalChanges += 1; // even to the same value: the wait restarts its timer, as it always has
    if (this.status.state !== 'syncing' && !this.paused) this.status.nextSyncAt = iso(this.dueAt);
    return this.status;
  }

  startSync(): void {
    this.refreshRequested = false; // a refresh that arrives during the sync asks for another one
    this.inSync = true;
    this.status.state = 'syncing';
  }

  /**
   * What the sync needs to decide the next interval as syncSucceeded and startWaiting would, with
   * this workflow's random number. One plan per sync attempt.
   */
  planForSync(): SchedulePlan {
    this.plannedAtChange = this.intervalChanges;
    return {
      policy: { ...this.policy },
      fixedSeconds: this.fixedSeconds,
      postsPerHour: this.status.postsPerHour,
      lastSyncAt: this.status.lastSyncAt,
      random: Math.random(), // the workflow's seeded PRNG: the same on replay
      // The sync's result is recorded, so a replay takes the interval it decided whatever the rule.
      jitter: 'withinBounds',
    };
  }

  syncSucceeded(summary: SyncSummary): void {
    const planned = this.plannedAtChange;
    this.plannedAtChange = undefined;
    if (this.adaptive && summary.schedule && summary.syncedAt !== undefined && planned === this.intervalChanges) {
      // The sync decided from this workflow's state, unchanged since, and saved it: take it as is.
      this.adopted = summary.schedule;
      this.status.postsPerHour = summary.schedule.postsPerHour;
      this.status.consecutiveFailures = 0;
      this.hintSeconds = summary.minIntervalSeconds;
    } else if (this.adaptive) {
      const { postsPerHour, lastSyncAt } = this.status;
      this.status.postsPerHour = rateAfterSync(postsPerHour, lastSyncAt, Date.now(), summary.inserted, summary.sampleRatePerHour);
      this.status.consecutiveFailures = 0;
      this.hintSeconds = summary.minIntervalSeconds;
    }
    this.status.syncs += 1;
    this.status.lastSyncAt = summary.syncedAt ?? iso(Date.now());
    this.syncedAt = summary.syncedAt;
    this.status.lastError = null;
    this.status.postsStored = summary.postsStored;
    this.status.state = 'waiting';
    this.lastOutcome = 'waiting';
  }

  /** `counts`: false when the fault is ours (offline), which does not count against the source. */
  syncFailed(error: SyncError, notFound: boolean, counts = true): void {
    this.status.lastError = error;
    this.status.state = notFound ? 'not_found' : 'failing';
    if (this.adaptive && counts) {
      this.status.consecutiveFailures += 1;
      if (this.status.consecutiveFailures >= DORMANT_AFTER_FAILURES) this.status.state = 'dormant';
    }
    this.lastOutcome = this.status.state as OutcomeState;
  }

  /**
   * After a sync attempt, failed or not: the interval starts again, from when a successful sync
   * was saved (the catalog's time, which lists show) or else from now.
   */
  startWaiting(): void {
    this.cycles += 1;
    this.inSync = false;
    const adopted = this.adopted;
    this.adopted = undefined;
    this.scheduleSaved = adopted !== undefined;
    if (adopted && this.syncedAt !== undefined) {
      // Exactly what the sync saved (its time and interval), so lists and the status agree.
      this.waitStartedAt = Date.parse(this.syncedAt);
      this.status.refreshSeconds = adopted.refreshSeconds;
      this.status.reason = adopted.reason;
      this.regularSeconds = adopted.regularSeconds;
    } else {
      this.waitStartedAt = this.syncedAt !== undefined ? Math.min(Date.parse(this.syncedAt), Date.now()) : Date.now();
      // After the first success ever, the wait is a random share of the interval (firstWait).
      if (this.adaptive) this.planInterval(this.status.syncs === 1 && this.status.lastError === null);
    }
    this.syncedAt = undefined;
    if (this.status.state === 'syncing') this.status.state = 'waiting';
    this.status.nextSyncAt = iso(this.dueAt);
    if (this.paused) this.showPaused(); // paused during the sync
  }

  /** The state for the next run; a pending refresh goes with it, so none is lost. */
  carry(): CarriedState {
    return {
      status: this.status,
      syncNow: this.refreshRequested,
      waitStartedAt: this.waitStartedAt,
      cycles: 0,
      ...(this.hintSeconds ? { hintSeconds: this.hintSeconds } : {}),
      ...(this.paused ? { paused: true as const, outcome: this.lastOutcome } : {}),
    };
  }
}
