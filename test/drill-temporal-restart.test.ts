// Failure drill: a file-backed Temporal dev server of our own is stopped and restarted. While it
// is down the API still answers from Postgres (the list with the catalog's status, a single
// community with status "unknown"); afterwards every tracked
// community is still tracked and syncing, with the same workflow runs (nothing re-created).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, inject } from 'vitest';
import { createApp } from '../api/app.js';
import { communityByRef, type CommunityRow } from '../src/db/communities.js';
import { communityPosts } from '../src/db/posts.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { createLogger } from '../src/log.js';
import { TemporalDevServer } from '../src/temporal/devserver.js';
import { startTracking } from '../src/tracking.js';
import { spawnWorkerProcess, type WorkerProcess } from '../bench/support/proc.js';
import { FakeLemmy } from './fake-lemmy.js';
import { freePort } from './support/ports.js';
import { createStack, eventually, type Stack, queryStatus } from './support/stack.js';

const COMMUNITIES = 6;
const log = createLogger({ level: 'warn', format: 'pretty' });
let temporal: TemporalDevServer;
let stack: Stack;
let fake: FakeLemmy;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  const dir = path.join(inject('tmpDir'), `temporal-restart-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  temporal = new TemporalDevServer({
    binary: inject('temporalCli'),
    dbFile: path.join(dir, 'temporal.db'),
    port: await freePort(),
    headless: true,
    log,
  });
  await temporal.start();
  stack = await createStack({ worker: false, env: { TEMPORAL_ADDRESS: temporal.address, INSTANCE_REQUESTS_PER_SECOND: '1000' } });
  fake = await FakeLemmy.start();
});
afterAll(async () => {
  for (const w of workers) w.child.kill('SIGKILL');
  await stack?.stop();
  await temporal?.stop();
  await fake?.close();
});

it('keeps every community tracked and syncing across a Temporal restart; the API answers from Postgres meanwhile', async () => {
  const deps = { config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: stack.client };
  const worker = await spawnWorkerProcess(stack.env);
  workers.push(worker);
  const rows: CommunityRow[] = [];
  const { instance, host } = normalizeInstance(fake.url);
  for (let i = 0; i < COMMUNITIES; i++) {
    fake.addCommunity(`restart${i}`);
    fake.addPosts(`restart${i}`, 3);
    rows.push((await startTracking(deps, { instance, host, name: `restart${i}`, refreshSeconds: 2 })).row);
  }
  await eventually(
    async () => {
      for (const r of rows) if (!(await communityByRef(deps.catalog, r.ref))?.last_update) return false;
      return true;
    },
    30_000,
    200,
  );
  const syncsBefore = new Map<string, number>();
  for (const r of rows) syncsBefore.set(r.ref, (await queryStatus(deps, r.ref, 3000))!.syncs);

  await temporal.stop();

  // Temporal is down: status is unknown (quickly), the catalog and posts still read.
  const t0 = Date.now();
  expect(await queryStatus(deps, rows[0].ref, 1000)).toBeUndefined();
  expect(Date.now() - t0).toBeLessThan(5000);
  const app = createApp({ config: stack.config, catalog: deps.catalog, router: deps.router, temporal: stack.client, log });
  const list = await app.request('/api/communities');
  expect(list.status).toBe(200);
  const body = (await list.json()) as { communities: { ref: string; status: { state: string } }[] };
  expect(body.communities.map((c) => c.ref).sort()).toEqual(rows.map((r) => r.ref).sort());
  // The list shows the status each sync wrote to the catalog; a single community asks its workflow.
  for (const c of body.communities) expect(c.status.state).not.toBe('unknown');
  const one = await app.request(`/api/communities/${encodeURIComponent(rows[0].ref)}`);
  expect(((await one.json()) as { status: { state: string } }).status.state).toBe('unknown');
  const posts = await app.request(`/api/communities/${encodeURIComponent(rows[0].ref)}/posts`);
  expect(posts.status).toBe(200);
  expect(((await posts.json()) as { posts: unknown[] }).posts.length).toBe(3);
  const direct = await communityPosts(deps.router, rows[1].shard, rows[1].id, 20);
  expect(direct.posts.length).toBe(3);
  const health = await app.request('/healthz');
  expect(health.status).toBe(503);

  // Posts appear while Temporal is down; they must arrive after the restart.
  const late = rows.map((r) => fake.addPosts(r.name, 1)[0]);
  await new Promise((r) => setTimeout(r, 3000));
  await temporal.start();
  const restartedAt = Date.now();

  // The same workflows, still running, syncing again.
  for (const r of rows) {
    const d = await eventually(() => stack.client.workflow.getHandle(`community:${r.ref}`).describe(), 30_000, 500);
    expect(d.status.name).toBe('RUNNING');
  }
  await eventually(
    async () => {
      for (const [i, r] of rows.entries()) {
        const page = await communityPosts(deps.router, r.shard, r.id, 20);
        if (!page.posts.some((p) => Number(p.lemmy_id) === late[i].id)) return false;
      }
      return true;
    },
    60_000,
    500,
  );
  const before = rows.map((r) => fake.requestsFor(r.name, 'post/list'));
  await new Promise((r) => setTimeout(r, 5000));
  rows.forEach((r, i) => expect(fake.requestsFor(r.name, 'post/list'), r.ref).toBeGreaterThan(before[i]));
  for (const r of rows) {
    const status = await queryStatus(deps, r.ref, 3000);
    expect(status?.state, r.ref).toMatch(/waiting|syncing/);
    expect(status!.syncs, `${r.ref}: the sync count carried on (state survived the restart)`).toBeGreaterThan(syncsBefore.get(r.ref)!);
  }
  expect(worker.child.exitCode, `the worker survived the outage (restart took ${Date.now() - restartedAt} ms)`).toBeNull();
}, 180_000);
