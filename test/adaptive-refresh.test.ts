// Adaptive refresh end to end, with a real worker and short real intervals: the interval follows
// the source's posting rate (shorter on a burst, longer on silence) within its bounds, a refresh
// still syncs at once, failing sources back off and turn dormant and recover by themselves,
// failures that are our own connectivity's are told apart, and a quiet sync costs one request
// and writes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { communityByRef } from '../src/db/communities.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { requestRefresh, startTracking } from '../src/tracking.js';
import type { CommunityStatus } from '../workflows/trackCommunity.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, queryStatus, type Stack } from './support/stack.js';

let stack: Stack;
let fake: FakeLemmy;

beforeAll(async () => {
  [stack, fake] = await Promise.all([createStack({ env: { OFFLINE_WINDOW_SECONDS: '10' } }), FakeLemmy.start()]);
});
afterAll(async () => {
  await stack?.stop();
  await fake?.close();
});

const deps = () => ({ config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: stack.client });

async function trackAdaptive(f: FakeLemmy, name: string, minSeconds: number, maxSeconds: number) {
  const { instance, host } = normalizeInstance(f.url);
  const { row } = await startTracking(deps(), { instance, host, name, policy: { mode: 'adaptive', minSeconds, maxSeconds } });
  return row;
}

/** Statuses seen while waiting for `until`: every one must respect the bounds. */
async function watch(ref: string, until: (s: CommunityStatus) => boolean, timeoutMs: number, seen: CommunityStatus[] = []) {
  return eventually(
    async () => {
      const s = await queryStatus(deps(), ref);
      if (s) seen.push(s);
      return s && until(s) ? s : undefined;
    },
    timeoutMs,
    200,
  );
}

describe('adaptive refresh', () => {
  it('shortens the interval on a burst, lengthens it on silence, within its bounds, and says why', async () => {
    const hour = 3_600_000;
    fake.addCommunity('bursty');
    fake.addPosts('bursty', 4, (i) => ({ published: new Date(Date.now() - (4 - i) * hour) })); // a post an hour
    const row = await trackAdaptive(fake, 'bursty', 1, 30);
    const seen: CommunityStatus[] = [];

    // The first sync reads the rate from the posts' own times: ~1 post/h → the max interval, and
    // the first wait is a random share of it (sources tracked together spread out).
    const quiet = await watch(row.ref, (s) => s.syncs >= 1 && s.state === 'waiting', 20_000, seen);
    expect(quiet.refreshPolicy).toBe('adaptive');
    expect(quiet.postsPerHour).toBeCloseTo(1, 0);
    expect(quiet.reason).toMatch(/^adaptive: 1\.0 posts\/h → 30 s; the first wait \d+ s \(at random within it\)$/);
    expect(quiet.refreshSeconds).toBe(Number(/first wait (\d+) s/.exec(quiet.reason)![1]));

    // A burst: many posts at once. A refresh still syncs now (not in 30 s), and the interval drops to the min.
    fake.addPosts('bursty', 40);
    await requestRefresh(deps(), row);
    const busy = await watch(row.ref, (s) => s.state === 'waiting' && (s.postsPerHour ?? 0) > 1000, 10_000, seen);
    expect(busy.refreshSeconds).toBeLessThanOrEqual(2);
    expect(busy.postsPerHour).toBeGreaterThan(1000);

    // Silence: every sync finds nothing, the rate decays and the interval grows again.
    const calmer = await watch(row.ref, (s) => s.refreshSeconds >= 8, 60_000, seen);
    expect(calmer.syncs).toBeGreaterThan(busy.syncs + 3);
    expect(calmer.reason).toMatch(/^adaptive: [\d.e+-]+ posts\/h → \d+ s$/);
    for (const s of seen) {
      expect(s.refreshSeconds).toBeGreaterThanOrEqual(1);
      expect(s.refreshSeconds).toBeLessThanOrEqual(30);
    }
    // The list (the catalog) shows the interval and the reason the workflow chose.
    const listed = await eventually(async () => {
      const r = await communityByRef(stack.storage.catalog, row.ref);
      return r?.refresh_reason?.startsWith('adaptive:') ? r : undefined;
    });
    expect(listed.interval_seconds).toBeGreaterThanOrEqual(1);
  });

  it('backs off a failing source, marks it dormant, and it recovers by itself', async () => {
    fake.addCommunity('flaky');
    fake.addPosts('flaky', 3);
    const row = await trackAdaptive(fake, 'flaky', 1, 6);
    await watch(row.ref, (s) => s.syncs >= 1 && s.state === 'waiting', 20_000);
    fake.removeCommunity('flaky'); // now a permanent "not found": no retries, every sync fails
    await requestRefresh(deps(), row);
    const seen: CommunityStatus[] = [];
    const dormant = await watch(row.ref, (s) => s.state === 'dormant', 30_000, seen);
    expect(dormant.consecutiveFailures).toBe(3);
    expect(dormant.lastError?.code).toBe('community_not_found');
    expect(dormant.reason).toMatch(/^dormant: 3 failed syncs in a row → [1-6] s$/);
    const failing = seen.filter((s) => s.consecutiveFailures > 0 && s.state !== 'syncing');
    expect(failing.some((s) => /^backing off: 1 failed sync in a row/.test(s.reason))).toBe(true);
    const dormantRow = await eventually(async () => {
      const r = await communityByRef(stack.storage.catalog, row.ref);
      return r?.sync_state === 'dormant' ? r : undefined;
    });
    expect(dormantRow.consecutive_failures).toBeGreaterThanOrEqual(3);

    // It comes back: the next (backed-off) sync succeeds, with no one asking.
    fake.addCommunity('flaky');
    fake.addPosts('flaky', 2);
    const recovered = await watch(row.ref, (s) => s.state === 'waiting' && s.consecutiveFailures === 0, 20_000);
    expect(recovered.lastError).toBeNull();
    expect(recovered.reason).toMatch(/^adaptive:/);
  });

  it('a sync that finds nothing new costs one request and writes nothing to the shard', async () => {
    fake.addCommunity('still');
    fake.addPosts('still', 5);
    const { instance, host } = normalizeInstance(fake.url);
    const { row } = await startTracking(deps(), { instance, host, name: 'still', refreshSeconds: 3600 });
    await watch(row.ref, (s) => s.syncs >= 1 && s.state === 'waiting', 20_000);
    const rowsOnShard = () =>
      stack.storage.router.read(
        row.shard,
        (sql) => sql`select lemmy_id, xmin::text as x, fetched_at from posts where community_id = ${row.id} order by lemmy_id`,
      );
    const before = await rowsOnShard();
    expect(before).toHaveLength(5);
    const requestsBefore = fake.requestsFor('still');
    await requestRefresh(deps(), row);
    await watch(row.ref, (s) => s.syncs >= 2 && s.state === 'waiting', 20_000);
    expect(fake.requestsFor('still') - requestsBefore).toBe(1); // the post list; metadata is fresh
    expect(await rowsOnShard()).toEqual(before); // not one row rewritten
  });

  it("does not count failures that are our own connectivity's: when every host fails at once, that is us", async () => {
    const [a, b] = await Promise.all([FakeLemmy.start(), FakeLemmy.start()]);
    a.addCommunity('one');
    b.addCommunity('two');
    const rows = [await trackAdaptive(a, 'one', 1, 3600), await trackAdaptive(b, 'two', 1, 3600)];
    for (const r of rows) await watch(r.ref, (s) => s.syncs >= 1 && s.state === 'waiting', 20_000);
    // A single host failing is that host's failure, counted against its sources…
    await a.close();
    await requestRefresh(deps(), rows[0]);
    const down = await eventually(async () => {
      const c = await communityByRef(stack.storage.catalog, rows[0].ref);
      return c?.last_error_code === 'NetworkError' ? c : undefined;
    }, 20_000);
    expect(down.last_error).toMatch(/cannot reach/);
    // …but once every host (all three fakes here) fails and none has answered for the window
    // (10 s here), the fault is ours: the failure says so, and it is not counted.
    await Promise.all([b.close(), fake.close()]);
    for (const r of rows) await requestRefresh(deps(), r);
    for (const r of rows) {
      const offline = await eventually(async () => {
        const c = await communityByRef(stack.storage.catalog, r.ref);
        return c?.last_error_code === 'Offline' ? c : undefined;
      }, 45_000);
      expect(offline.last_error).toMatch(/our connectivity/);
    }
  });
});
