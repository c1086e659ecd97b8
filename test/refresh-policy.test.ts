// The rules of refresh policies on their own (the workflow applies them; test/adaptive-refresh
// covers that end to end): the interval follows the posting rate within its bounds, is jittered,
// backs off on failures, and honours the source's hints.
import fc from 'fast-check';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { CommunityTracker } from '../workflows/communityTracker.js';
import {
  DORMANT_AFTER_FAILURES,
  intervalFor,
  JITTER,
  nextRate,
  scheduleAfterSuccess,
  type JitterRule,
  type RefreshPolicy,
} from '../workflows/refreshPolicy.js';

const adaptive: RefreshPolicy = { mode: 'adaptive', minSeconds: 60, maxSeconds: 3600 };
const base = { policy: adaptive, fixedSeconds: 300, rate: null, consecutiveFailures: 0, random: 0.5 };

describe('refresh policy', () => {
  it('syncs a busy source often and a quiet one rarely, and says why', () => {
    const busy = intervalFor({ ...base, rate: 60 }); // a post a minute
    expect(busy).toEqual({ seconds: 60, reason: 'adaptive: 60 posts/h → 60 s' });
    const moderate = intervalFor({ ...base, rate: 4 });
    expect(moderate.seconds).toBe(900);
    expect(moderate.reason).toBe('adaptive: 4.0 posts/h → 900 s');
    const quiet = intervalFor({ ...base, rate: 1 / 24 }); // a post a day
    expect(quiet.seconds).toBe(3600);
    expect(intervalFor({ ...base, rate: 0 }).seconds).toBe(3600);
  });

  it('stays within its bounds, whatever the rate and the jitter', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        fc.integer({ min: 1, max: 86_400 }),
        fc.integer({ min: 1, max: 86_400 }),
        fc.constantFrom<JitterRule>('withinBounds', 'beforeClamp'),
        fc.boolean(),
        (rate, random, a, b, jitter, firstWait) => {
          const policy: RefreshPolicy = { mode: 'adaptive', minSeconds: Math.min(a, b), maxSeconds: Math.max(a, b) };
          const { seconds } = intervalFor({ ...base, policy, rate, random, jitter, firstWait });
          expect(seconds).toBeGreaterThanOrEqual(policy.minSeconds);
          expect(seconds).toBeLessThanOrEqual(policy.maxSeconds);
          expect(Number.isInteger(seconds)).toBe(true);
        },
      ),
    );
  });

  it('jitters adaptive intervals by up to ±10 %, fixed ones not at all', () => {
    const at = (random: number) => intervalFor({ ...base, rate: 4, random }).seconds;
    expect(at(0)).toBe(Math.round(900 * (1 - JITTER)));
    expect(at(0.999999)).toBe(Math.round(900 * (1 + JITTER)));
    expect(intervalFor({ ...base, policy: { ...adaptive, mode: 'fixed' }, random: 0 })).toEqual({ seconds: 300, reason: 'fixed: 300 s' });
  });

  it('jitters a source at a bound inside the bounds: quiet sources started together do not come due together', () => {
    const quiet = (random: number, jitter?: JitterRule) => intervalFor({ ...base, rate: 1 / 24, random, jitter }).seconds;
    expect(quiet(0)).toBe(3240); // 3,600 less 10 %
    expect(quiet(0.5)).toBe(3600);
    expect(quiet(0.999999)).toBe(3240); // 10 % past the maximum, reflected back inside it
    const busy = (random: number) => intervalFor({ ...base, rate: 600, random }).seconds; // base 6 s, min 60 s
    expect([busy(0), busy(0.5), busy(0.999999)]).toEqual([66, 60, 66]);
    // 10,000 quiet first syncs in the same second: the busiest second of their next syncs holds
    // under 1 % of them (the old rule put every one at exactly 3,600 s).
    const dueIn = (jitter: JitterRule) => {
      const perSecond = new Map<number, number>();
      for (let i = 0; i < 10_000; i++) {
        const s = quiet(Math.random(), jitter);
        perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
      }
      return { busiest: Math.max(...perSecond.values()), first: Math.min(...perSecond.keys()), last: Math.max(...perSecond.keys()) };
    };
    expect(dueIn('beforeClamp')).toEqual({ busiest: 10_000, first: 3600, last: 3600 });
    const spread = dueIn('withinBounds');
    expect(spread.busiest).toBeLessThan(100);
    expect(spread.first).toBeLessThanOrEqual(3250);
    expect(spread.last).toBe(3600);
  });

  it('plans by the old jitter rule where the workflow says so (replay), asking only where the rules differ', () => {
    const quietInput = { ref: 'x@h', instance: 'https://h', name: 'x', refreshSeconds: 300, policy: adaptive };
    const asked: boolean[] = [];
    const tracker = (allows: boolean) =>
      new CommunityTracker(quietInput, true, () => {
        asked.push(allows);
        return allows;
      });
    vi.spyOn(Math, 'random').mockReturnValue(0);
    onTestFinished(() => void vi.restoreAllMocks());
    // A new run: the rate is not known yet (300 s, within the bounds): both rules agree, nothing asked.
    expect(tracker(false).refreshSeconds).toBe(270);
    expect(asked).toEqual([]);
    // Known to be quiet, at the maximum: the rules differ and the workflow's answer decides.
    const carried = (allows: boolean) => {
      const t = tracker(allows);
      t.status.postsPerHour = 1 / 24;
      return t.setRefreshPolicy({ ...adaptive, maxSeconds: 1800 }).refreshSeconds;
    };
    expect(carried(true)).toBe(1620);
    expect(carried(false)).toBe(1800);
    expect(asked).toEqual([true, false]);
    // The sync decides by the plan's rule; plans made before the rule had a name use the old one.
    const first = tracker(true).planForSync();
    expect(first.jitter).toBe('withinBounds');
    const plan = { ...first, lastSyncAt: new Date(Date.now() - 3_600_000).toISOString(), postsPerHour: 1 / 24 };
    const after = { inserted: 0, syncedAtMs: Date.now() };
    expect(scheduleAfterSuccess(plan, after).refreshSeconds).toBe(3240);
    expect(scheduleAfterSuccess({ ...plan, jitter: undefined }, after).refreshSeconds).toBe(3600);
  });

  it("puts a source's first wait anywhere in its interval: a fleet tracked together syncs at its long-run pace from its first hour", () => {
    const firstSync = { inserted: 3, syncedAtMs: Date.now(), sampleRatePerHour: 1 / 24 };
    const plan = (random: number, jitter?: JitterRule) =>
      ({ policy: adaptive, fixedSeconds: 300, postsPerHour: null, lastSyncAt: null, random, jitter }) as const;
    expect(scheduleAfterSuccess(plan(0, 'withinBounds'), firstSync)).toMatchObject({
      refreshSeconds: 3600,
      reason: 'adaptive: 0.04 posts/h → 3600 s; the first wait 3600 s (at random within it)',
    });
    expect(scheduleAfterSuccess(plan(0.75, 'withinBounds'), firstSync)).toMatchObject({ refreshSeconds: 900, regularSeconds: 3600 });
    // The workflow takes it, and is still as quiet as its full interval (its runs' length and queue).
    vi.spyOn(Math, 'random').mockReturnValue(0.75);
    onTestFinished(() => void vi.restoreAllMocks());
    const tracker = new CommunityTracker({ ref: 'x@h', instance: 'https://h', name: 'x', refreshSeconds: 300, policy: adaptive });
    tracker.startSync();
    const schedule = scheduleAfterSuccess(tracker.planForSync(), firstSync);
    tracker.syncSucceeded({
      tracked: true,
      fetched: 3,
      inserted: 3,
      updated: 0,
      pages: 1,
      postsStored: 3,
      syncedAt: new Date().toISOString(),
      schedule,
    });
    tracker.startWaiting();
    expect([tracker.refreshSeconds, tracker.regularRefreshSeconds, tracker.scheduleSaved]).toEqual([900, 3600, true]);
    // Its next interval is a regular one again.
    tracker.startSync();
    tracker.syncSucceeded({ tracked: true, fetched: 0, inserted: 0, updated: 0, pages: 1, postsStored: 3 });
    tracker.startWaiting();
    expect(tracker.regularRefreshSeconds).toBe(tracker.refreshSeconds);
    vi.restoreAllMocks();
    expect(scheduleAfterSuccess(plan(0.999999, 'withinBounds'), firstSync).refreshSeconds).toBe(60); // the minimum
    expect(scheduleAfterSuccess(plan(0.999999), firstSync).refreshSeconds).toBe(3600); // a plan of before: the old rule
    // Within the bounds all the same: a busy source's first wait is its minimum.
    expect(scheduleAfterSuccess(plan(0.999999, 'withinBounds'), { ...firstSync, sampleRatePerHour: 600 }).refreshSeconds).toBe(60);
    // 20,000 quiet sources whose first syncs are spread over 30 minutes (as a fleet's start-up): a
    // window of 10 minutes an hour in gets their long-run share of syncs (a sixth), not a third.
    const dueInWindow = (jitter: JitterRule, wait: (random: number) => number) => {
      let n = 0;
      for (let i = 0; i < 20_000; i++) {
        const at = (i / 20_000) * 1800 + wait(Math.random());
        if (at >= 3600 && at < 4200) n++;
      }
      return n / 20_000;
    };
    const firstWait = (jitter: JitterRule) => (random: number) => scheduleAfterSuccess(plan(random, jitter), firstSync).refreshSeconds;
    expect(dueInWindow('beforeClamp', firstWait('beforeClamp'))).toBeCloseTo(1 / 3, 1);
    expect(dueInWindow('withinBounds', firstWait('withinBounds'))).toBeLessThan(0.2);
    expect(dueInWindow('withinBounds', firstWait('withinBounds'))).toBeGreaterThan(0.1);
  });

  it('learns the rate: a burst raises it at once, silence lowers it sync by sync', () => {
    expect(nextRate(null, 20, null, 2.5)).toBe(2.5); // first sync: the page's own publication times
    let rate = nextRate(0.1, 30, 0.5)!; // 30 new posts in half an hour
    expect(rate).toBeGreaterThan(15);
    const intervals: number[] = [];
    for (let i = 0; i < 8; i++) {
      rate = nextRate(rate, 0, 1)!;
      intervals.push(intervalFor({ ...base, rate }).seconds);
    }
    for (let i = 1; i < intervals.length; i++) expect(intervals[i]).toBeGreaterThanOrEqual(intervals[i - 1]);
    expect(intervals.at(-1)).toBeGreaterThan(intervals[0] * 5);
  });

  it('backs off a failing source exponentially up to the max, dormant after a few failures', () => {
    const after = (consecutiveFailures: number) => intervalFor({ ...base, rate: 60, consecutiveFailures });
    expect(after(1)).toEqual({ seconds: 120, reason: 'backing off: 1 failed sync in a row → 120 s' });
    expect(after(2).seconds).toBe(240);
    expect(after(DORMANT_AFTER_FAILURES).reason).toMatch(/^dormant: 3 failed syncs in a row/);
    expect(after(40).seconds).toBe(3600);
    // A fixed interval longer than the max is not shortened by a back-off.
    expect(intervalFor({ ...base, policy: { ...adaptive, mode: 'fixed' }, fixedSeconds: 7200, consecutiveFailures: 2 }).seconds).toBe(7200);
  });

  it("honours the source's own hint (ttl, Cache-Control, Retry-After), even past the max", () => {
    expect(intervalFor({ ...base, rate: 60, hintSeconds: 1800 })).toEqual({
      seconds: 1800,
      reason: 'adaptive: 60 posts/h → 60 s; the source asks for at least 1800 s',
    });
    expect(intervalFor({ ...base, rate: 60, hintSeconds: 30 }).seconds).toBe(60);
    expect(intervalFor({ ...base, rate: 60, hintSeconds: 7200 }).seconds).toBe(7200);
  });
});

describe('CommunityTracker failures', () => {
  const input = { ref: 'x@h', instance: 'https://h', name: 'x', refreshSeconds: 300, policy: adaptive };
  const error = { code: 'network_error', message: 'down', at: new Date().toISOString() };

  it('counts failures in a row, turns dormant, and starts over on a success', () => {
    const t = new CommunityTracker(input);
    for (let i = 1; i <= 3; i++) {
      t.startSync();
      t.syncFailed(error, false);
      t.startWaiting();
      expect(t.status.consecutiveFailures).toBe(i);
    }
    expect(t.status.state).toBe('dormant');
    expect(t.status.refreshSeconds).toBeGreaterThan(300);
    t.startSync();
    t.syncSucceeded({ tracked: true, fetched: 0, inserted: 0, updated: 0, pages: 1, postsStored: 0 });
    t.startWaiting();
    expect(t.status).toMatchObject({ state: 'waiting', consecutiveFailures: 0, lastError: null });
  });

  it('does not count a failure that is our own connectivity (offline)', () => {
    const t = new CommunityTracker(input);
    t.startSync();
    t.syncFailed({ ...error, code: 'offline' }, false, false);
    t.startWaiting();
    expect(t.status).toMatchObject({ state: 'failing', consecutiveFailures: 0 });
  });

  it('replays runs from before refresh policies unchanged: fixed interval, no back-off', () => {
    const t = new CommunityTracker({ ...input, policy: undefined }, false);
    for (let i = 0; i < 5; i++) {
      t.startSync();
      t.syncFailed(error, false);
      t.startWaiting();
    }
    expect(t.status).toMatchObject({ state: 'failing', refreshSeconds: 300, consecutiveFailures: 0 });
  });
});

describe("a sync's own schedule", () => {
  // The sync decides the next interval from the workflow's plan and saves it with its result; the
  // workflow takes it instead of deciding (and writing) again. Both must be the same decision.
  const input = { ref: 'x@h', instance: 'https://h', name: 'x', refreshSeconds: 300, policy: adaptive };
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  /** A tracker after `syncs` earlier successes finding `before` new posts each, `gapMs` apart. */
  function trackerAt(policy: RefreshPolicy, start: number, before: number[], gapMs: number): CommunityTracker {
    vi.setSystemTime(start);
    const t = new CommunityTracker({ ...input, policy });
    for (const inserted of before) {
      vi.setSystemTime(Date.now() + gapMs);
      t.startSync();
      t.syncSucceeded({
        tracked: true,
        fetched: inserted,
        inserted,
        updated: 0,
        pages: 1,
        postsStored: 0,
        syncedAt: new Date().toISOString(),
      });
      t.startWaiting();
    }
    return t;
  }

  it('is the interval, reason, rate and due time the workflow would have chosen itself', () => {
    vi.useFakeTimers();
    fc.assert(
      fc.property(
        fc.record({
          mode: fc.constantFrom('fixed' as const, 'adaptive' as const),
          minSeconds: fc.integer({ min: 1, max: 600 }),
          span: fc.integer({ min: 0, max: 7200 }),
          before: fc.array(fc.nat(50), { maxLength: 4 }),
          gapMs: fc.integer({ min: 1000, max: 4 * 3_600_000 }),
          inserted: fc.nat(100),
          sample: fc.option(fc.double({ min: 0, max: 500, noNaN: true }), { nil: undefined }),
          hint: fc.option(fc.integer({ min: 1, max: 20_000 }), { nil: undefined }),
          random: fc.double({ min: 0, max: 0.999_999, noNaN: true }),
        }),
        (c) => {
          const policy: RefreshPolicy = { mode: c.mode, minSeconds: c.minSeconds, maxSeconds: c.minSeconds + c.span };
          const start = Date.UTC(2026, 11, 1);
          const summary = {
            tracked: true,
            fetched: c.inserted,
            inserted: c.inserted,
            updated: 0,
            pages: 1,
            postsStored: 7,
            ...(c.sample !== undefined ? { sampleRatePerHour: c.sample } : {}),
            ...(c.hint !== undefined ? { minIntervalSeconds: c.hint } : {}),
          };
          // The workflow deciding after the sync (as before), its random number fixed.
          const itself = trackerAt(policy, start, c.before, c.gapMs);
          vi.setSystemTime(Date.now() + c.gapMs);
          const syncedAt = new Date().toISOString();
          vi.spyOn(Math, 'random').mockReturnValue(c.random);
          itself.startSync();
          itself.syncSucceeded({ ...summary, syncedAt });
          itself.startWaiting();
          vi.restoreAllMocks();

          // The same history, the sync deciding from the plan, the workflow taking its decision.
          const taking = trackerAt(policy, start, c.before, c.gapMs);
          vi.setSystemTime(Date.now() + c.gapMs);
          vi.spyOn(Math, 'random').mockReturnValue(c.random);
          taking.startSync();
          const plan = taking.planForSync();
          vi.restoreAllMocks();
          const schedule = scheduleAfterSuccess(plan, { ...summary, syncedAtMs: Date.parse(syncedAt) });
          taking.syncSucceeded({ ...summary, syncedAt, schedule });
          taking.startWaiting();

          expect(taking.scheduleSaved).toBe(true);
          expect(itself.scheduleSaved).toBe(false);
          expect(taking.status).toEqual(itself.status);
          expect(taking.dueAt).toBe(itself.dueAt);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is not taken when the interval changed during the sync: the workflow decides and records it', () => {
    const t = new CommunityTracker(input);
    t.startSync();
    t.syncSucceeded({ tracked: true, fetched: 0, inserted: 0, updated: 0, pages: 1, postsStored: 0, syncedAt: new Date().toISOString() });
    t.startWaiting();
    t.startSync();
    const plan = t.planForSync();
    const syncedAt = new Date().toISOString();
    const schedule = scheduleAfterSuccess(plan, { inserted: 0, syncedAtMs: Date.parse(syncedAt) });
    t.setRefreshSeconds(42); // a PATCH while the sync ran: the sync's decision is stale
    t.syncSucceeded({ tracked: true, fetched: 0, inserted: 0, updated: 0, pages: 1, postsStored: 0, syncedAt, schedule });
    t.startWaiting();
    expect(t.scheduleSaved).toBe(false);
    expect(t.status).toMatchObject({ refreshSeconds: 42, reason: 'fixed: 42 s', refreshPolicy: 'fixed' });
  });
});
