// The admin surface (/api/admin and the /admin page) against a real stack (Temporal dev server,
// Postgres, a worker) and HTTP fakes of Lemmy: pause and resume (no sync while paused, a sync at
// once on resume, the catalog and lists say paused, a restarted workflow starts paused), the list
// of communities that need attention with their last error, a per-host request budget that slows
// and speeds that one host for every worker, the page and its forms, the token, and bad input.
import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApp } from '../api/app.js';
import type { ApiDeps } from '../api/deps.js';
import { communityByRef } from '../src/db/communities.js';
import { createLogger } from '../src/log.js';
import { REBALANCE_WORKFLOW_ID } from '../src/rebalancing.js';
import { requestRefresh } from '../src/tracking.js';
import { startWorker, type WorkerHandle } from '../src/worker-runtime.js';
import { workflowIdOf } from '../workflows/trackCommunity.js';
import { FakeLemmy } from './fake-lemmy.js';
import { call, type Json } from './support/api.js';
import { createStack, eventually, queryStatus, type Stack, apiDeps } from './support/stack.js';

const TOKEN = 'admin-test-token';
const DEFAULT_RATE = 10;

let stack: Stack;
let fake: FakeLemmy;
/** A second instance: the budget override of the first must not touch it. */
let other: FakeLemmy;
let deps: ApiDeps;
let app: Hono;
let secured: Hono;
/** A second worker on the same task queue: an override must hold for every worker together. */
let second: WorkerHandle;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const refOf = (name: string, f = fake) => `${name}@${f.hostPort}`;
const postLists = (f: FakeLemmy, name: string, since: number) =>
  f.requests.filter((r) => r.community === name && r.path.endsWith('/post/list') && r.at >= since).length;

async function track(name: string, refreshSeconds: number, f = fake): Promise<Json> {
  const res = await call(app, 'POST', '/api/communities', { instance: f.url, name, refreshSeconds });
  expect(res.status, JSON.stringify(res.json)).toBe(201);
  return res.json;
}

const liveState = async (ref: string) => (await queryStatus(deps as never, ref))?.state;

/** A form post to the website (urlencoded), with optional headers (a login cookie). */
async function post(a: Hono, path: string, fields: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await a.request(path, {
    method: 'POST',
    body: new URLSearchParams(fields).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
  });
  return { status: res.status, html: await res.text(), location: res.headers.get('location') };
}

async function page(a: Hono, path: string, headers: Record<string, string> = {}) {
  const res = await a.request(path, { headers });
  return { status: res.status, html: await res.text(), location: res.headers.get('location') };
}

beforeAll(async () => {
  [stack, fake, other] = await Promise.all([
    createStack({ env: { INSTANCE_REQUESTS_PER_SECOND: String(DEFAULT_RATE), INSTANCE_BUDGET_MAX_WAIT_SECONDS: '2' } }),
    FakeLemmy.start(),
    FakeLemmy.start(),
  ]);
  deps = apiDeps(stack, createLogger({ level: process.env.ADMIN_TEST_LOG ?? 'silent' }));
  app = createApp(deps);
  secured = createApp({ ...deps, config: { ...stack.config, API_TOKEN: TOKEN } });
  second = await startWorker({
    config: stack.config,
    catalog: stack.storage.catalog,
    router: stack.storage.router,
    address: stack.config.TEMPORAL_ADDRESS!,
    log: createLogger({ level: 'warn' }),
    bundle: { code: readFileSync(inject('workflowBundlePath'), 'utf8') },
  });
});
afterAll(async () => {
  await second?.shutdown();
  await stack?.stop();
  await fake?.close();
  await other?.close();
});

describe('pause and resume', () => {
  it('pause stops syncing (refreshes too) and lists say paused; resume syncs at once', async () => {
    fake.addCommunity('quiet');
    fake.addPosts('quiet', 3);
    const added = await track('quiet', 1);
    const ref = added.ref as string;
    await eventually(async () => postLists(fake, 'quiet', 0) >= 2); // syncing every second

    const paused = await call(app, 'POST', `/api/admin/communities/${encodeURIComponent(ref)}/pause`);
    expect(paused.status).toBe(200);
    expect(paused.json.ref).toBe(ref);
    expect(paused.json.status.state).toBe('paused');
    expect(paused.json.status.nextSyncAt).toBeNull();
    expect(Date.parse(paused.json.pausedAt)).toBeGreaterThan(0);
    await eventually(async () => (await liveState(ref)) === 'paused');
    const one = await call(app, 'GET', `/api/communities/${encodeURIComponent(ref)}`);
    expect(one.json.status.state).toBe('paused');
    expect(one.json.status.nextSyncAt).toBeNull();

    // No sync while paused: not by the 1 s interval, not by a refresh (ignored while paused).
    const since = Date.now() + 300; // a request already on its way may still land
    expect((await call(app, 'POST', `/api/communities/${encodeURIComponent(ref)}/refresh`)).status).toBe(202);
    await sleep(3000);
    expect(postLists(fake, 'quiet', since), 'syncs while paused').toBe(0);
    expect(await liveState(ref)).toBe('paused');

    // Lists show it: the communities list, and the admin list filtered to paused and "needs attention".
    const list = await call(app, 'GET', '/api/communities');
    expect(list.json.communities.find((c: Json) => c.ref === ref).status.state).toBe('paused');
    for (const state of ['paused', 'failing']) {
      const admin = await call(app, 'GET', `/api/admin/communities?state=${state}`);
      expect(admin.status).toBe(200);
      expect(
        admin.json.communities.map((c: Json) => c.ref),
        state,
      ).toContain(ref);
    }
    // Pausing again changes nothing (same pausedAt).
    const again = await call(app, 'POST', `/api/admin/communities/${encodeURIComponent(ref)}/pause`);
    expect(again.json.pausedAt).toBe(paused.json.pausedAt);

    // Resume: a sync at once (well before the next interval would matter), then on as before.
    const resumedAt = Date.now();
    const resumed = await call(app, 'POST', `/api/admin/communities/${encodeURIComponent(ref)}/resume`);
    expect(resumed.status).toBe(200);
    expect(resumed.json.pausedAt).toBeNull();
    expect(resumed.json.status.state).not.toBe('paused');
    await eventually(async () => postLists(fake, 'quiet', resumedAt) >= 1, 3000);
    await eventually(async () => postLists(fake, 'quiet', resumedAt) >= 3, 6000); // and every second again
    expect(await liveState(ref)).not.toBe('paused');
    const pausedList = await call(app, 'GET', '/api/admin/communities?state=paused');
    expect(pausedList.json.communities.map((c: Json) => c.ref)).not.toContain(ref);
    await call(app, 'DELETE', `/api/communities/${encodeURIComponent(ref)}`);
  }, 40_000);

  it('a workflow started again for a paused community (a refresh after it was terminated) starts paused', async () => {
    fake.addCommunity('restarted');
    fake.addPosts('restarted', 2);
    const { ref } = await track('restarted', 300);
    await eventually(async () => (await queryStatus(deps as never, ref))?.syncs === 1);
    expect((await call(app, 'POST', `/api/admin/communities/${encodeURIComponent(ref)}/pause`)).status).toBe(200);
    await stack.client.workflow.getHandle(workflowIdOf(ref)).terminate('test');
    const since = Date.now();
    await requestRefresh(deps, (await communityByRef(stack.storage.catalog, ref))!);
    await eventually(async () => (await liveState(ref)) === 'paused');
    await sleep(1500);
    expect(postLists(fake, 'restarted', since), 'a sync by a run started paused').toBe(0);
    // Resume works on the new run.
    await call(app, 'POST', `/api/admin/communities/${encodeURIComponent(ref)}/resume`);
    await eventually(async () => postLists(fake, 'restarted', since) >= 1, 5000);
    await call(app, 'DELETE', `/api/communities/${encodeURIComponent(ref)}`);
  }, 30_000);
});

describe('communities that need attention', () => {
  it('lists failing, not found and paused ones with their last error, not healthy ones; keyset paged', async () => {
    fake.addCommunity('healthy');
    fake.addPosts('healthy', 2);
    const healthy = await track('healthy', 300);
    fake.addCommunity('vanishing');
    fake.addPosts('vanishing', 2);
    const vanishing = await track('vanishing', 300);
    await eventually(async () => (await queryStatus(deps as never, vanishing.ref))?.syncs === 1);
    fake.removeCommunity('vanishing');
    await call(app, 'POST', `/api/communities/${encodeURIComponent(vanishing.ref)}/refresh`);
    await eventually(async () => (await communityByRef(stack.storage.catalog, vanishing.ref))?.sync_state === 'not_found');

    const res = await call(app, 'GET', '/api/admin/communities');
    expect(res.status).toBe(200);
    const refs = res.json.communities.map((c: Json) => c.ref);
    expect(refs).toContain(vanishing.ref);
    expect(refs).not.toContain(healthy.ref);
    const item = res.json.communities.find((c: Json) => c.ref === vanishing.ref);
    expect(item.status.state).toBe('not_found');
    expect(item.status.lastError.code).toBe('community_not_found');
    expect(item.status.lastError.message).toBeTruthy();
    expect(item.pausedAt).toBeNull();

    const all = await call(app, 'GET', '/api/admin/communities?state=all&limit=1');
    expect(all.status).toBe(200);
    expect(all.json.communities).toHaveLength(1);
    expect(all.json.next).toBeTruthy();
    const page2 = await call(app, 'GET', `/api/admin/communities?state=all&limit=1&before=${all.json.next}`);
    expect(page2.json.communities[0].id).toBeLessThan(all.json.communities[0].id);

    // Temporal down: pausing is refused (503) and leaves the catalog as it was (not paused).
    const down = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1', connectTimeout: '500ms' }) });
    const noTemporal = createApp({ ...deps, temporal: down });
    const refused = await call(noTemporal, 'POST', `/api/admin/communities/${encodeURIComponent(healthy.ref)}/pause`);
    expect(refused.status).toBe(503);
    expect(refused.json.error.code).toBe('temporal_unavailable');
    expect((await communityByRef(stack.storage.catalog, healthy.ref))!.paused_at).toBeNull();
    expect((await call(app, 'GET', '/api/admin/communities?state=paused')).json.communities.map((c: Json) => c.ref)).not.toContain(
      healthy.ref,
    );
  }, 30_000);
});

describe('per-instance request budget', () => {
  it('an override slows one host for every worker, leaves the others alone, and dropping it speeds it up again', async () => {
    const host = fake.hostPort;
    // Six busy communities on each host, syncing every second: far more than 2 requests/s wanted.
    const names = Array.from({ length: 6 }, (_, i) => `busy${i}`);
    for (const f of [fake, other])
      for (const n of names) {
        f.addCommunity(n);
        f.addPosts(n, 3);
      }
    const refs: string[] = [];
    try {
      // Added at the default rate (an add's check waits for the budget like a sync, and would be
      // refused once six busy communities keep a slowed host booked beyond the 2 s max wait).
      for (const f of [other, fake]) for (const n of names) refs.push((await track(n, 1, f)).ref);
      const put = await call(app, 'PUT', `/api/admin/instances/${host}/budget`, { requestsPerSecond: 2 });
      expect(put.status, JSON.stringify(put.json)).toBe(200);
      expect(put.json).toMatchObject({ host, requestsPerSecond: 2, override: 2 });
      const listed = await call(app, 'GET', '/api/admin/instances');
      expect(listed.json.defaultRequestsPerSecond).toBe(DEFAULT_RATE);
      expect(listed.json.instances.find((i: Json) => i.host === host)).toMatchObject({ requestsPerSecond: 2, override: 2 });
      // Slots booked at the old rate stand: at most the 2 s max wait ahead.
      await sleep(2500);
      const start = Date.now();
      await sleep(5000);
      const rateOf = (f: FakeLemmy, from: number, to: number) =>
        f.requests.filter((r) => r.at >= from && r.at < to).length / ((to - from) / 1000);
      const slowed = rateOf(fake, start, Date.now());
      const untouched = rateOf(other, start, Date.now());
      expect(slowed, 'requests/s to the host with an override of 2').toBeLessThanOrEqual(2.3);
      expect(untouched, 'requests/s to the other host (default 10)').toBeGreaterThan(3.5);
      // No 1 s window above the override (+1 for arrival jitter at the edges).
      const times = fake.requests.filter((r) => r.at >= start).map((r) => r.at);
      let maxInWindow = 0;
      for (let i = 0, j = 0; i < times.length; i++) {
        while (times[i] - times[j] >= 1000) j++;
        maxInWindow = Math.max(maxInWindow, i - j + 1);
      }
      expect(maxInWindow).toBeLessThanOrEqual(3);

      // Dropped: the default applies again (after the slots already booked, at most the 2 s max wait).
      expect((await call(app, 'DELETE', `/api/admin/instances/${host}/budget`)).status).toBe(204);
      expect((await call(app, 'DELETE', `/api/admin/instances/${host}/budget`)).status).toBe(404);
      await sleep(3000);
      const from = Date.now();
      await sleep(3000);
      expect(rateOf(fake, from, Date.now()), 'requests/s once the override is gone').toBeGreaterThan(3.5);
      const after = await call(app, 'GET', '/api/admin/instances');
      expect(after.json.instances.find((i: Json) => i.host === host)).toMatchObject({ requestsPerSecond: DEFAULT_RATE, override: null });
    } finally {
      await call(app, 'DELETE', `/api/admin/instances/${host}/budget`);
      for (const ref of refs) await call(app, 'DELETE', `/api/communities/${encodeURIComponent(ref)}`);
    }
  }, 60_000);

  it('a host whose budget is booked beyond the max wait answers an add with 503 and Retry-After, not a 500', async () => {
    const slow = await FakeLemmy.start();
    try {
      slow.addCommunity('one');
      slow.addCommunity('two');
      // One request every 100 s: the first add's check takes the slots there are, the second must wait too long (max wait 2 s).
      expect((await call(app, 'PUT', `/api/admin/instances/${slow.hostPort}/budget`, { requestsPerSecond: 0.01 })).status).toBe(200);
      await call(app, 'POST', '/api/communities', { instance: slow.url, name: 'one', refreshSeconds: 3600 });
      const res = await app.request('/api/communities', {
        method: 'POST',
        body: JSON.stringify({ instance: slow.url, name: 'two', refreshSeconds: 3600 }),
        headers: { 'content-type': 'application/json' },
      });
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: { code: 'instance_budget_exhausted' } });
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await call(app, 'DELETE', `/api/admin/instances/${slow.hostPort}/budget`);
      for (const name of ['one', 'two']) await call(app, 'DELETE', `/api/communities/${encodeURIComponent(`${name}@${slow.hostPort}`)}`);
      await slow.close();
    }
  }, 60_000);
});

describe('bad input', () => {
  const expectError = (res: { status: number; json: Json }, status: number, code: string, field?: string) => {
    expect(res.status, JSON.stringify(res.json)).toBe(status);
    expect(res.json.error.code).toBe(code);
    if (field) expect(res.json.error.field).toBe(field);
  };

  it('is a clear 4xx, never a 500', async () => {
    expectError(await call(app, 'GET', '/api/admin/communities?state=broken'), 400, 'invalid_input', 'state');
    expectError(await call(app, 'GET', '/api/admin/communities?limit=0'), 400, 'invalid_limit');
    expectError(await call(app, 'GET', '/api/admin/communities?before=nope'), 400, 'invalid_cursor');
    expectError(await call(app, 'POST', `/api/admin/communities/${encodeURIComponent(refOf('nobody'))}/pause`), 404, 'community_not_found');
    expectError(await call(app, 'POST', '/api/admin/communities/not%20a%20ref/resume'), 400, 'invalid_ref');
    for (const body of [{ requestsPerSecond: 0 }, { requestsPerSecond: 5000 }, { requestsPerSecond: 'fast' }, {}, { rps: 1 }])
      expectError(await call(app, 'PUT', '/api/admin/instances/lemmy.world/budget', body), 400, 'invalid_input');
    expectError(await call(app, 'PUT', '/api/admin/instances/lemmy.world/budget', [1]), 400, 'invalid_json');
    const text = await app.request('/api/admin/instances/lemmy.world/budget', {
      method: 'PUT',
      body: 'requestsPerSecond=1',
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.status).toBe(415);
    expectError(await call(app, 'PUT', '/api/admin/instances/bad%20host/budget', { requestsPerSecond: 1 }), 400, 'invalid_input', 'host');
    expectError(await call(app, 'DELETE', '/api/admin/instances/never.example/budget'), 404, 'override_not_found');
  });
});

describe('the token', () => {
  it('guards the REST writes and the whole admin page', async () => {
    expect((await call(secured, 'GET', '/api/admin/communities')).status).toBe(200);
    expect((await call(secured, 'PUT', '/api/admin/instances/lemmy.world/budget', { requestsPerSecond: 1 })).status).toBe(401);
    const ok = await secured.request('/api/admin/instances/lemmy.world/budget', {
      method: 'PUT',
      body: JSON.stringify({ requestsPerSecond: 1 }),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    });
    expect(ok.status).toBe(200);
    await call(app, 'DELETE', '/api/admin/instances/lemmy.world/budget');

    const anonymous = await page(secured, '/admin');
    expect(anonymous.status).toBe(302);
    expect(anonymous.location).toMatch(/^\/login/);
    expect((await page(secured, '/admin', { authorization: 'Bearer wrong' })).status).toBe(302);
    expect((await page(secured, '/admin', { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await post(secured, '/admin/shards/rebalance', {})).status).toBe(401);
    const res = await secured.request('/login', {
      method: 'POST',
      body: new URLSearchParams({ token: TOKEN, next: '/admin' }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(303);
    const session = res.headers.get('set-cookie')!.split(';')[0];
    const shown = await page(secured, '/admin', { cookie: session });
    expect(shown.status).toBe(200);
    expect(shown.html).toContain('<h1>Admin</h1>');
    const rebalance = await post(secured, '/admin/shards/rebalance', {}, { cookie: session });
    expect(rebalance.status).toBe(303);
    // Its id is one per namespace: left running (on this file's task queue, whose workers stop
    // with it), a later file's rebalance would join it and wait for ever.
    await stack.client.workflow
      .getHandle(REBALANCE_WORKFLOW_ID)
      .terminate('test cleanup')
      .catch(() => {});
    // Without a token configured the page is open (like every page).
    expect((await page(app, '/admin')).status).toBe(200);
  });
});

describe('the admin page', () => {
  it('shows failing communities with their last error, budgets and shard nodes; its forms work', async () => {
    fake.addCommunity('broken');
    fake.addPosts('broken', 1);
    const broken = await track('broken', 300);
    await eventually(async () => (await queryStatus(deps as never, broken.ref))?.syncs === 1);
    fake.fail({ kind: 'html200' }, { community: 'broken', times: 1000 }); // a bot wall from now on: a permanent failure
    await call(app, 'POST', `/api/communities/${encodeURIComponent(broken.ref)}/refresh`);
    await eventually(async () => (await communityByRef(stack.storage.catalog, broken.ref))?.sync_state === 'failing');

    let shown = await page(app, '/admin');
    expect(shown.status).toBe(200);
    expect(shown.html).toContain(broken.ref);
    expect(shown.html).toMatch(/state-failing/);
    expect(shown.html).toContain('invalid_response'); // the last error, with its message
    expect(shown.html).toContain('instead of JSON');
    expect(shown.html).toContain('Rebalance shards');
    for (const node of stack.storage.router.nodeNames()) expect(shown.html).toContain(node);
    expect(shown.html).toContain(fake.hostPort); // a host with sources has a budget row
    expect(shown.html).toContain('href="/admin"'); // the nav link

    // Pause from the page: back to the page with a flash, and the row offers Resume.
    const paused = await post(app, `/admin/communities/${encodeURIComponent(broken.ref)}/pause`, { back: '/admin' });
    expect(paused.status).toBe(303);
    expect(paused.location).toMatch(/^\/admin\?flash=paused/);
    shown = await page(app, paused.location!);
    expect(shown.html).toContain(`Paused ${broken.ref}`);
    expect(shown.html).toContain(`aria-label="Resume ${broken.ref}"`);
    expect(shown.html).toMatch(/state-paused/);
    const resumed = await post(app, `/admin/communities/${encodeURIComponent(broken.ref)}/resume`, { back: '/admin?state=all' });
    expect(resumed.location).toMatch(/^\/admin\?state=all&flash=resumed/);
    expect((await communityByRef(stack.storage.catalog, broken.ref))!.paused_at).toBeNull();

    // Interval: saved, or refused with the reason and a 400.
    const interval = await post(app, `/admin/communities/${encodeURIComponent(broken.ref)}/interval`, { refreshSeconds: '600' });
    expect(interval.status).toBe(303);
    expect((await communityByRef(stack.storage.catalog, broken.ref))!.refresh_seconds).toBe(600);
    const badInterval = await post(app, `/admin/communities/${encodeURIComponent(broken.ref)}/interval`, { refreshSeconds: '0' });
    expect(badInterval.status).toBe(400);
    expect(badInterval.html).toContain('refreshSeconds: must be at least 1');

    // Budget: set from the form, listed, dropped; a bad rate is refused.
    const set = await post(app, '/admin/instances/budget', { host: 'Lemmy.Example', requestsPerSecond: '0.5' });
    expect(set.status).toBe(303);
    shown = await page(app, '/admin');
    expect(shown.html).toContain('data-host="lemmy.example"');
    expect((await call(app, 'GET', '/api/admin/instances')).json.instances.find((i: Json) => i.host === 'lemmy.example').override).toBe(
      0.5,
    );
    expect((await post(app, '/admin/instances/budget', { host: 'lemmy.example', requestsPerSecond: 'lots' })).status).toBe(400);
    expect((await post(app, '/admin/instances/budget/delete', { host: 'lemmy.example' })).status).toBe(303);
    expect((await post(app, '/admin/instances/budget/delete', { host: 'lemmy.example' })).status).toBe(404);

    // Shard nodes: bad input refused; rebalance starts (or joins) the workflow.
    const badNode = await post(app, '/admin/shards/nodes', { name: 'Bad Name', url: 'postgres://x/y' });
    expect(badNode.status).toBe(400);
    expect(badNode.html).toContain('name must be');
    const unreachable = await post(app, '/admin/shards/nodes', { name: 'nowhere', url: 'postgres://u:secret@127.0.0.1:1/none' });
    expect(unreachable.status).toBe(422);
    expect(unreachable.html).not.toContain('secret');
    await call(app, 'DELETE', `/api/communities/${encodeURIComponent(broken.ref)}`);
  }, 90_000);
});
