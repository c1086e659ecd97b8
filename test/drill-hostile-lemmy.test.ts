// Failure drill: a Lemmy instance turns hostile (50 MB bodies, endless slow streams, invalid
// UTF-8, deeply nested JSON, 10,000 posts in one page). Each sync fails cleanly with a clear error
// on the community row and is retried; the worker's memory stays bounded; communities on another
// (well-behaved) instance keep syncing on time.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { communityByRef, type CommunityRow } from '../src/db/communities.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { startTracking } from '../src/tracking.js';
import { ProcMonitor, spawnWorkerProcess, type WorkerProcess } from '../bench/support/proc.js';
import { FakeLemmy, type Fault } from './fake-lemmy.js';
import { createStack, eventually, type Stack } from './support/stack.js';

const RSS_LIMIT = 600 * 1024 * 1024;
const GOOD_INTERVAL_S = 2;
const HOSTILE: Record<string, { fault: Fault; code: RegExp }> = {
  huge: { fault: { kind: 'huge', bytes: 50 * 1024 * 1024 }, code: /ResponseTooLarge/ },
  hugedeclared: { fault: { kind: 'huge', bytes: 50 * 1024 * 1024, withContentLength: true }, code: /ResponseTooLarge/ },
  endless: { fault: { kind: 'endlessStream' }, code: /Timeout|Timed|Unreachable|Network/i },
  badutf8: { fault: { kind: 'invalidUtf8' }, code: /InvalidResponse/ },
  deepjson: { fault: { kind: 'deepJson', depth: 200_000 }, code: /InvalidResponse/ },
  manyposts: { fault: { kind: 'manyPosts', count: 10_000 }, code: /InvalidResponse|ResponseTooLarge/ },
};

let stack: Stack;
let hostile: FakeLemmy;
let good: FakeLemmy;
let worker: WorkerProcess | undefined;

beforeAll(async () => {
  stack = await createStack({ worker: false, env: { INSTANCE_REQUESTS_PER_SECOND: '1000', HTTP_TIMEOUT_MS: '2000' } });
  [hostile, good] = await Promise.all([FakeLemmy.start(), FakeLemmy.start()]);
});
afterAll(async () => {
  worker?.child.kill('SIGKILL');
  await stack?.stop();
  await hostile?.close();
  await good?.close();
});

it('fails each hostile sync cleanly and retries it, with bounded worker memory and other communities on time', async () => {
  const deps = { config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: stack.client };
  worker = await spawnWorkerProcess(stack.env);
  const monitor = new ProcMonitor({ worker: worker.pid }, 200).start();

  const h = normalizeInstance(hostile.url);
  const g = normalizeInstance(good.url);
  const hostileRows: CommunityRow[] = [];
  for (const [name, { fault }] of Object.entries(HOSTILE)) {
    hostile.addCommunity(name);
    hostile.addPosts(name, 3);
    hostile.fail(fault, { community: name, path: 'post/list', times: 1_000_000 });
    hostileRows.push((await startTracking(deps, { instance: h.instance, host: h.host, name, refreshSeconds: 5 })).row);
  }
  const goodNames = ['calm0', 'calm1', 'calm2'];
  const goodRows: CommunityRow[] = [];
  for (const name of goodNames) {
    good.addCommunity(name);
    good.addPosts(name, 3);
    goodRows.push((await startTracking(deps, { instance: g.instance, host: g.host, name, refreshSeconds: GOOD_INTERVAL_S })).row);
  }
  const startedAt = Date.now();

  // Every hostile community gets a clear error on its row, and is retried.
  const errors = await eventually(
    async () => {
      const out: Record<string, { code: string; message: string }> = {};
      for (const r of hostileRows) {
        const row = (await communityByRef(deps.catalog, r.ref))!;
        if (!row.last_error_code || hostile.requestsFor(r.name, 'post/list') < 3) return undefined;
        out[r.name] = { code: row.last_error_code, message: row.last_error ?? '' };
      }
      return out;
    },
    60_000,
    500,
  );
  for (const r of hostileRows) {
    expect(errors[r.name].code, `${r.name}: ${errors[r.name].message}`).toMatch(HOSTILE[r.name].code);
    expect(errors[r.name].message.length, r.name).toBeGreaterThan(10);
    const row = (await communityByRef(deps.catalog, r.ref))!;
    expect(row.last_update, `${r.name} never synced successfully`).toBeNull();
  }
  const stored = await stack.storage.router.read(
    hostileRows[0].shard,
    async (sql) => sql`select 1 from posts where community_id = ${hostileRows[0].id}`,
  );
  expect(stored.length).toBe(0);

  // Keep the pressure on for a while so memory has a chance to grow if it would.
  const until = startedAt + 25_000;
  if (Date.now() < until) await new Promise((r) => setTimeout(r, until - Date.now()));
  monitor.stop();
  process.stderr.write(
    `[drill-hostile] errors ${JSON.stringify(Object.fromEntries(Object.entries(errors).map(([k, v]) => [k, v.code])))}, worker peak RSS ${(monitor.peakRss('worker') / 1048576).toFixed(0)} MB\n`,
  );
  expect(worker.child.exitCode, `worker died: ${worker.output().slice(-2000)}`).toBeNull();
  expect(monitor.peakRss('worker'), `peak RSS ${(monitor.peakRss('worker') / 1048576).toFixed(0)} MB`).toBeLessThan(RSS_LIMIT);

  // Communities on the good instance synced on time throughout: no gap between two post/list
  // requests much longer than the interval (sync time and scheduling slack allowed: 2.5 s).
  for (const name of goodNames) {
    const times = good.requests.filter((q) => q.community === name && q.path.endsWith('/post/list')).map((q) => q.at);
    expect(times.length, name).toBeGreaterThanOrEqual(Math.floor((Date.now() - startedAt) / 1000 / (GOOD_INTERVAL_S + 1)));
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    expect(Math.max(...gaps), `${name} gaps ${gaps.join(',')}`).toBeLessThan(GOOD_INTERVAL_S * 1000 + 2500);
    const row = (await communityByRef(deps.catalog, goodRows[goodNames.indexOf(name)].ref))!;
    expect(row.last_error_code).toBeNull();
  }
}, 120_000);
