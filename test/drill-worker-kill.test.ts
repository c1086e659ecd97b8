// Failure drill: the worker process is SIGKILLed again and again at random moments while many
// communities sync every second and new posts keep appearing. Afterwards every post the fake
// published is stored exactly once. CI size: 20 communities, 8 kills; DRILL_SIZE=large: 50, 20.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { communityByRef, type CommunityRow } from '../src/db/communities.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { startTracking } from '../src/tracking.js';
import { spawnWorkerProcess, type WorkerProcess } from '../bench/support/proc.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack, queryStatus } from './support/stack.js';

const LARGE = process.env.DRILL_SIZE === 'large';
const COMMUNITIES = LARGE ? 50 : 20;
const KILLS = LARGE ? 20 : 8;
const FAKES = 3;

let stack: Stack;
const fakes: FakeLemmy[] = [];
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  // High per-instance budget: the drill is about crashes, not politeness.
  // BACKFILL_PAGES=1: the first sync of a community also stores older posts (up to 50), so the 5
  // posts each community has before tracking begins are expected too. Without it, a first sync
  // delayed by the kills stores the newest 20, and pre-tracking posts beyond those are (by
  // design) not fetched.
  stack = await createStack({ worker: false, env: { INSTANCE_REQUESTS_PER_SECOND: '1000', BACKFILL_PAGES: '1' } });
  for (let i = 0; i < FAKES; i++) fakes.push(await FakeLemmy.start());
});
afterAll(async () => {
  for (const w of workers) w.child.kill('SIGKILL');
  await stack?.stop();
  for (const f of fakes) await f.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it(
  `stores every published post exactly once across ${KILLS} worker SIGKILLs (${COMMUNITIES} communities, 1 s interval)`,
  async () => {
    const deps = { config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: stack.client };
    const tracked: { fake: FakeLemmy; name: string; row: CommunityRow }[] = [];
    for (let i = 0; i < COMMUNITIES; i++) {
      const fake = fakes[i % FAKES];
      const name = `drill${i}`;
      fake.addCommunity(name);
      fake.addPosts(name, 5);
      const { instance, host } = normalizeInstance(fake.url);
      const { row } = await startTracking(deps, { instance, host, name, refreshSeconds: 1 });
      tracked.push({ fake, name, row });
    }

    // Publisher: a new post somewhere every 100 ms, bursts of up to 3 in one community now and then.
    let publishing = true;
    let published = 0;
    const publisher = (async () => {
      while (publishing) {
        const t = tracked[Math.floor(Math.random() * tracked.length)];
        const n = Math.random() < 0.1 ? 3 : 1;
        t.fake.addPosts(t.name, n);
        published += n;
        await sleep(100);
      }
    })();

    let kills = 0;
    while (kills < KILLS) {
      const w = await spawnWorkerProcess(stack.env);
      workers.push(w);
      // Random moment: sometimes right after ready (mid first poll), sometimes mid-sync.
      await sleep(200 + Math.random() * 2500);
      w.child.kill('SIGKILL');
      await w.exited;
      kills++;
    }
    publishing = false;
    await publisher;
    expect(published).toBeGreaterThan(0);

    // A surviving worker catches everything up.
    workers.push(await spawnWorkerProcess(stack.env));
    const missing = async () => {
      let total = 0;
      for (const t of tracked) {
        const r = (await communityByRef(stack.storage.catalog, t.row.ref))!;
        const stored = await stack.storage.router.read(
          r.shard,
          async (sql) =>
            sql<
              { n: number; d: number }[]
            >`select count(*)::int as n, count(distinct lemmy_id)::int as d from posts where community_id = ${r.id}`,
        );
        total += t.fake.community(t.name).posts.length - stored[0].d;
      }
      return total;
    };
    // Syncs in flight at the last kill are retried after the heartbeat timeout (10 s) and their
    // backoff; on a loaded 2-core CI box that can take a minute or two.
    await eventually(async () => (await missing()) === 0, 180_000, 500).catch(async (err) => {
      const detail: string[] = [];
      for (const t of tracked) {
        const r = (await communityByRef(stack.storage.catalog, t.row.ref))!;
        const ids = new Set(
          await stack.storage.router.read(r.shard, async (sql) =>
            (await sql<{ lemmy_id: number }[]>`select lemmy_id from posts where community_id = ${r.id}`).map((x) => Number(x.lemmy_id)),
          ),
        );
        const lost = t.fake
          .community(t.name)
          .posts.filter((p) => !ids.has(p.id))
          .map((p) => p.id);
        const status = await queryStatus(deps, r.ref);
        if (lost.length)
          detail.push(`${t.name}: missing ${lost.join(',')}; status ${JSON.stringify(status)}; created ${r.created_at.toISOString()}`);
      }
      throw new Error(`${(err as Error).message}\n${detail.join('\n')}`);
    });

    for (const t of tracked) {
      const r = (await communityByRef(stack.storage.catalog, t.row.ref))!;
      const ids = await stack.storage.router.read(r.shard, async (sql) =>
        (await sql<{ lemmy_id: number }[]>`select lemmy_id from posts where community_id = ${r.id} order by lemmy_id`).map((x) =>
          Number(x.lemmy_id),
        ),
      );
      const expected = t.fake
        .community(t.name)
        .posts.map((p) => p.id)
        .sort((a, b) => a - b);
      expect(ids, t.name).toEqual(expected); // each exactly once, none missing, none extra
    }
  },
  LARGE ? 600_000 : 300_000,
);
