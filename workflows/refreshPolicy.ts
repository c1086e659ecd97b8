// How often to sync a source: a fixed interval, or one adapted to how often the source posts.
// Pure arithmetic (no Temporal calls) so that the workflow stays deterministic and these rules
// can be tested on their own (test/refresh-policy.test.ts).

export type RefreshMode = 'fixed' | 'adaptive';

export interface RefreshPolicy {
  mode: RefreshMode;
  /** Bounds of an adaptive interval, and of the back-off of a failing source, in seconds. */
  minSeconds: number;
  maxSeconds: number;
}

/** New items one sync should find on average: the interval is the expected time between posts. */
export const TARGET_POSTS_PER_SYNC = 1;
/** Weight of the latest observation in the posting rate (an exponentially weighted average). */
export const RATE_SMOOTHING = 0.3;
/** ± share of the interval added at random, so that sources added together do not sync together. */
export const JITTER = 0.1;
/**
 * How the jitter meets the policy's bounds. `withinBounds`: the interval is clamped first, then
 * jittered, and a jitter past a bound is reflected back inside it, so sources at the maximum (most
 * quiet ones) still spread over its last 10 %, and the wait after a source's first sync is spread
 * wider (IntervalInput.firstWait). `beforeClamp` (runs planned before it): jittered,
 * then clamped, so every source at a bound got exactly the bound, and a fleet's quiet first syncs
 * came due again together one maximum later.
 */
export type JitterRule = 'withinBounds' | 'beforeClamp';
/** After this many failed syncs in a row a source is `dormant`: tried rarely, never given up. */
export const DORMANT_AFTER_FAILURES = 3;
/** An adaptive source's interval before its posting rate is known. */
export const UNKNOWN_RATE_SECONDS = 300;

export const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

/**
 * The posting rate (posts per hour) after a successful sync that found `newPosts` in
 * `elapsedHours`; `sample` is the rate read from the publication times of a first sync's page.
 */
export function nextRate(previous: number | null, newPosts: number, elapsedHours: number | null, sample?: number): number | null {
  if (elapsedHours === null || !(elapsedHours > 0)) return sample ?? previous;
  const observed = newPosts / elapsedHours;
  if (previous === null) return sample ?? observed;
  return previous + RATE_SMOOTHING * (observed - previous);
}

export interface IntervalInput {
  policy: RefreshPolicy;
  /** The fixed interval (seconds). */
  fixedSeconds: number;
  /** Posts per hour; null when not known yet. */
  rate: number | null;
  consecutiveFailures: number;
  /** The source asks not to be asked sooner (seconds). */
  hintSeconds?: number;
  /** A uniform random number in [0, 1): the workflow's own Math.random(), deterministic on replay. */
  random: number;
  /** Default `withinBounds`. */
  jitter?: JitterRule;
  /**
   * The wait after a source's first successful sync (`withinBounds` only): anywhere in the interval
   * at random (a random phase, at least the minimum) instead of ±JITTER. A fleet tracked together
   * then syncs at its long-run pace from its first hour on, as if it had always been tracked:
   * ±10 % alone left start-up's pace, which is faster, to come due again an hour later, and for
   * many hours after.
   */
  firstWait?: boolean;
}

export interface Interval {
  seconds: number;
  reason: string;
  /** A first wait's full interval (longer than `seconds`): which task queue the run belongs on. */
  regularSeconds?: number;
}

const fmtRate = (r: number) => (r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r >= 0.01 ? r.toFixed(2) : r.toExponential(1));

/** `base` seconds jittered by `random` (uniform in [0, 1)) by `rule`, within [min, max], whole. */
function jittered(base: number, random: number, min: number, max: number, rule: JitterRule): number {
  const factor = 1 + JITTER * (2 * random - 1);
  if (rule === 'beforeClamp') return Math.round(clamp(base * factor, min, max));
  const x = clamp(base, min, max) * factor;
  // Reflected at the bound it passes: at the maximum, uniform over its last 10 %.
  return Math.round(clamp(x > max ? 2 * max - x : x < min ? 2 * min - x : x, min, max));
}

/** The next interval and why, e.g. `adaptive: 0.4 posts/h → 900 s`. */
export function intervalFor(i: IntervalInput): Interval {
  const { minSeconds, maxSeconds } = i.policy;
  let seconds: number;
  let reason: string;
  let regular: number | undefined;
  if (i.policy.mode === 'fixed') {
    seconds = i.fixedSeconds;
    reason = `fixed: ${seconds} s`;
  } else {
    const base = i.rate === null ? UNKNOWN_RATE_SECONDS : i.rate > 0 ? (3600 * TARGET_POSTS_PER_SYNC) / i.rate : maxSeconds;
    const rule = i.jitter ?? 'withinBounds';
    const rate = i.rate === null ? 'adaptive: posting rate not known yet' : `adaptive: ${fmtRate(i.rate)} posts/h`;
    if (i.firstWait && rule === 'withinBounds') {
      const full = Math.round(clamp(base, minSeconds, maxSeconds));
      regular = full;
      seconds = Math.round(clamp(full * (1 - i.random), minSeconds, maxSeconds));
      reason = `${rate} → ${full} s; the first wait ${seconds} s (at random within it)`;
    } else {
      // Jittered within the bounds: thousands of sources started together spread out.
      seconds = jittered(base, i.random, minSeconds, maxSeconds, rule);
      reason = `${rate} → ${seconds} s`;
    }
  }
  if (i.consecutiveFailures > 0) {
    // Exponential back-off up to the max interval (or the fixed one, if that is longer).
    const cap = Math.max(maxSeconds, i.policy.mode === 'fixed' ? i.fixedSeconds : 0);
    const backedOff = Math.round(Math.min(cap, seconds * 2 ** Math.min(i.consecutiveFailures, 30)));
    const failures = `${i.consecutiveFailures} failed sync${i.consecutiveFailures === 1 ? '' : 's'} in a row`;
    reason = `${i.consecutiveFailures >= DORMANT_AFTER_FAILURES ? 'dormant' : 'backing off'}: ${failures} → ${backedOff} s`;
    seconds = backedOff;
  }
  if (i.hintSeconds && i.hintSeconds > seconds) {
    seconds = Math.min(Math.round(i.hintSeconds), 86_400);
    reason += `; the source asks for at least ${seconds} s`;
  }
  seconds = Math.max(1, seconds);
  return regular !== undefined && regular > seconds ? { seconds, reason, regularSeconds: regular } : { seconds, reason };
}

/**
 * The posting rate after a successful sync at `atMs` that found `inserted` new items, the last one
 * at `lastSyncAt`; rounded as the status shows it (the interval is chosen from the rounded rate).
 */
export function rateAfterSync(
  previous: number | null,
  lastSyncAt: string | null,
  atMs: number,
  inserted: number,
  sample?: number,
): number | null {
  const elapsedHours = lastSyncAt === null ? null : (atMs - Date.parse(lastSyncAt)) / 3_600_000;
  const rate = nextRate(previous, inserted, elapsedHours, sample);
  return rate === null ? null : Math.round(rate * 10_000) / 10_000;
}

/**
 * What a sync needs to decide the next interval itself, exactly as the workflow would after a
 * success: the workflow's state before the sync and its random number (drawn in the workflow, so
 * the same on replay). Lets the sync write its schedule with its result in one statement.
 */
export interface SchedulePlan {
  policy: RefreshPolicy;
  fixedSeconds: number;
  postsPerHour: number | null;
  /** The last success (ISO), from which the posting rate's elapsed time counts. */
  lastSyncAt: string | null;
  random: number;
  /** Absent from plans made before the rule had a name: `beforeClamp`. */
  jitter?: JitterRule;
}

/** The interval decided after a successful sync, and the posting rate it was decided from. */
export interface PlannedSchedule {
  refreshSeconds: number;
  reason: string;
  postsPerHour: number | null;
  /** A first wait's full interval (Interval.regularSeconds); absent from syncs of before. */
  regularSeconds?: number;
}

/** The schedule after a successful sync saved at `syncedAtMs` that found `inserted` new items. */
export function scheduleAfterSuccess(
  plan: SchedulePlan,
  sync: { inserted: number; syncedAtMs: number; sampleRatePerHour?: number; minIntervalSeconds?: number },
): PlannedSchedule {
  const postsPerHour = rateAfterSync(plan.postsPerHour, plan.lastSyncAt, sync.syncedAtMs, sync.inserted, sync.sampleRatePerHour);
  const { seconds, reason, regularSeconds } = intervalFor({
    policy: plan.policy,
    fixedSeconds: plan.fixedSeconds,
    rate: postsPerHour,
    consecutiveFailures: 0,
    hintSeconds: sync.minIntervalSeconds,
    random: plan.random,
    jitter: plan.jitter ?? 'beforeClamp',
    firstWait: plan.lastSyncAt === null,
  });
  return { refreshSeconds: seconds, reason, postsPerHour, ...(regularSeconds ? { regularSeconds } : {}) };
}
