// REST API contract (DESIGN.md) against real parts: Temporal dev server, Postgres nodes, a worker,
// and a FakeLemmy over HTTP. Every route, status code and error shape; keyset pagination across
// ties and across shard nodes; Temporal and a shard node being down.
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import type { ApiDeps } from '../api/server.js';
import { listCommunities } from '../src/db/communities.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { createLogger } from '../src/log.js';
import { stopTracking } from '../src/tracking.js';
import { FakeLemmy } from './fake-lemmy.js';
import { errorBodyLike } from './support/api.js';
import { expectConforms } from './support/openapi.js';
import { freePorts } from './support/ports.js';
import { createStack, eventually, type Stack, queryStatus, apiDeps } from './support/stack.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

async function call(app: Hono, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  const res = await app.request(path, init);
  const text = await res.text();
  await expectConforms(app, method, path, { status: res.status, headers: res.headers, text });
  let json: Json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

function expectError(r: { status: number; json: Json }, status: number, code: string) {
  expect(r.status, JSON.stringify(r.json)).toBe(status);
  expect(r.json).toEqual(errorBodyLike(code, r.json));
  expect(r.json.error.message.length).toBeGreaterThan(5);
}

describe('REST API contract', () => {
  let stack: Stack;
  let fake: FakeLemmy;
  let deps: ApiDeps;
  let app: Hono;
  const log = createLogger({ level: 'silent' });
  const refOf = (name: string) => `${name}@${fake.hostPort}`;

  beforeAll(async () => {
    [stack, fake] = await Promise.all([createStack(), FakeLemmy.start({ siteName: 'Contract' })]);
    deps = apiDeps(stack, log);
    app = createApp(deps);
  });

  afterAll(async () => {
    if (stack) {
      for (const row of await listCommunities(stack.storage.catalog).catch(() => [])) await stopTracking(deps, row).catch(() => {});
      await stack.stop();
    }
    await fake?.close();
  });

  const waitSynced = (ref: string, posts: number) =>
    eventually(async () => {
      const r = await call(app, 'GET', `/api/communities/${encodeURIComponent(ref)}`);
      return r.status === 200 && r.json.postsStored === posts && r.json.status.state === 'waiting' ? r.json : undefined;
    }, 30_000);

  it('adds by instance + name (201), again by name@host (200, same object), normalised', async () => {
    fake.addCommunity('technology', { title: 'Tech <b>news</b>', description: 'all things tech', subscribers: 42 });
    fake.addPosts('technology', 5);
    // The first sync takes milliseconds (a quick attempt): a slow first page keeps it from ending
    // before the answer, whose status is then the one of a community not synced yet.
    fake.fail({ kind: 'slow', delayMs: 1500 }, { times: 1, path: 'post/list', community: 'technology' });
    const instance = `${fake.url.replace('http://', 'HTTP://')}/`;
    const r = await call(app, 'POST', '/api/communities', { instance, name: 'Technology' });
    expect(r.status, r.text).toBe(201);
    expect(r.headers.get('location')).toBe(`/api/communities/${r.json.id}`);
    expect(r.json).toMatchObject({
      id: expect.any(Number),
      ref: refOf('technology'),
      instance: fake.url,
      name: 'technology',
      kind: 'lemmy',
      url: `${fake.url}/c/technology`,
      // No refreshSeconds asked for: adaptive, from 300 s ± 10 % until the posting rate is known.
      refreshPolicy: 'adaptive',
      refreshSeconds: expect.toSatisfy((n: number) => n >= 270 && n <= 330),
      minRefreshSeconds: 60,
      maxRefreshSeconds: 3600,
      shard: logicalShardOf(refOf('technology')),
      workflowId: `community:${refOf('technology')}`,
      status: { state: expect.any(String), lastSyncAt: null, lastError: null },
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    for (const key of ['title', 'description', 'icon', 'subscribers', 'postsCount', 'nextSyncAt']) {
      expect(key in r.json || key in r.json.status).toBe(true);
    }
    const again = await call(app, 'POST', '/api/communities', { community: `!Technology@${fake.hostPort}` });
    expect(again.status).toBe(200);
    expect(again.json.id).toBe(r.json.id);
    expect(again.json.ref).toBe(r.json.ref);

    const synced = await waitSynced(refOf('technology'), 5);
    expect(synced).toMatchObject({ title: 'Tech <b>news</b>', description: 'all things tech', subscribers: 42, postsStored: 5 });
    expect(synced.status.lastSyncAt).toMatch(/^\d{4}-/);
    expect(Date.parse(synced.status.nextSyncAt)).toBeGreaterThan(Date.now());
  });

  it('concurrent adds of one community create one row and one workflow', async () => {
    fake.addCommunity('concurrent');
    const results = await Promise.all(
      Array.from({ length: 5 }, () => call(app, 'POST', '/api/communities', { instance: fake.url, name: 'concurrent' })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 201]);
    expect(new Set(results.map((r) => r.json.id)).size).toBe(1);
    const rows = await stack.storage.catalog`select id from communities where ref = ${refOf('concurrent')}`;
    expect(rows).toHaveLength(1);
    const handle = stack.client.workflow.getHandle(`community:${refOf('concurrent')}`);
    expect((await handle.describe()).status.name).toBe('RUNNING');
    // One workflow: its runs form one chain (a run may already have handed over to the other task
    // queue after its first sync), none was terminated or started beside it.
    const runs = await eventually(async () => {
      const statuses: string[] = [];
      for await (const w of stack.client.workflow.list({ query: `WorkflowId = "community:${refOf('concurrent')}"` }))
        statuses.push(w.status.name);
      return statuses.length ? statuses : undefined;
    });
    expect(runs.filter((s) => s !== 'CONTINUED_AS_NEW')).toEqual(['RUNNING']);
  });

  it('gets one by id and by name@host, lists all with status, 404/400 for unknown and malformed refs', async () => {
    const byRef = await call(app, 'GET', `/api/communities/${refOf('technology')}`);
    expect(byRef.status).toBe(200);
    const byId = await call(app, 'GET', `/api/communities/${byRef.json.id}`);
    expect(byId.json.ref).toBe(refOf('technology'));
    const byUpper = await call(app, 'GET', `/api/communities/${encodeURIComponent(`TECHNOLOGY@${fake.hostPort}`)}`);
    expect(byUpper.json.id).toBe(byRef.json.id);

    const list = await call(app, 'GET', '/api/communities');
    expect(list.status).toBe(200);
    expect(list.json.communities.map((c: Json) => c.ref)).toEqual(expect.arrayContaining([refOf('technology'), refOf('concurrent')]));
    for (const c of list.json.communities) expect(['syncing', 'waiting', 'failing', 'not_found']).toContain(c.status.state);

    expectError(await call(app, 'GET', '/api/communities/999999'), 404, 'community_not_found');
    expectError(await call(app, 'GET', `/api/communities/nothere@${fake.hostPort}`), 404, 'community_not_found');
    expectError(await call(app, 'GET', '/api/communities/not-a-ref'), 400, 'invalid_ref');
    expectError(await call(app, 'GET', '/api/communities/999999/posts'), 404, 'community_not_found');
    expectError(await call(app, 'GET', '/api/nothing'), 404, 'not_found');
    expectError(await call(app, 'PUT', '/api/communities'), 404, 'not_found');
  });

  it('pages a community newest first with a keyset cursor that survives ties on published', async () => {
    fake.addCommunity('ties');
    const tie = '2026-01-01T12:00:00.000000Z';
    fake.addPosts('ties', 13, (i) => ({ published: i < 8 ? tie : new Date(Date.parse(tie) + (i - 7) * 60_000) }));
    const add = await call(app, 'POST', '/api/communities', { community: `${fake.url}/c/ties` });
    expect(add.status).toBe(201);
    await waitSynced(refOf('ties'), 13);

    const seen: Json[] = [];
    let next: string | null = null;
    let pages = 0;
    do {
      const r = await call(app, 'GET', `/api/communities/${refOf('ties')}/posts?limit=3${next ? `&before=${next}` : ''}`);
      expect(r.status).toBe(200);
      expect(r.json.posts.length).toBeLessThanOrEqual(3);
      seen.push(...r.json.posts);
      next = r.json.next;
      pages++;
    } while (next && pages < 20);
    expect(pages).toBe(5);
    expect(seen).toHaveLength(13);
    expect(new Set(seen.map((p) => p.id)).size).toBe(13);
    const sorted = [...seen].sort((a, b) => (a.published === b.published ? b.lemmyId - a.lemmyId : a.published < b.published ? 1 : -1));
    expect(seen.map((p) => p.id)).toEqual(sorted.map((p) => p.id));
    expect(seen.filter((p) => p.published === tie)).toHaveLength(8);

    const post = seen[0];
    expect(post).toMatchObject({
      id: `${add.json.id}:${post.lemmyId}`,
      communityRef: refOf('ties'),
      lemmyId: expect.any(Number),
      apId: `${fake.url}/post/${post.lemmyId}`,
      title: expect.any(String),
      score: expect.any(Number),
      upvotes: expect.any(Number),
      downvotes: expect.any(Number),
      comments: expect.any(Number),
      nsfw: false,
      fetchedAt: expect.stringMatching(/^\d{4}-/),
    });
    for (const key of ['url', 'body', 'author', 'published', 'updated']) expect(key in post).toBe(true);

    const dflt = await call(app, 'GET', `/api/communities/${add.json.id}/posts`);
    expect(dflt.json.posts).toHaveLength(13);
    expect(dflt.json.next).toBeNull();
  });

  it('pages the newest posts across all communities and both shard nodes', async () => {
    const router = stack.storage.router;
    const names: string[] = [];
    const perNode = new Map<string, number>();
    for (let i = 0; names.length < 4 && i < 200; i++) {
      const name = `xs${i}`;
      const node = await router.nodeOf(logicalShardOf(refOf(name)));
      if ((perNode.get(node) ?? 0) >= 2) continue;
      perNode.set(node, (perNode.get(node) ?? 0) + 1);
      names.push(name);
    }
    expect([...perNode.keys()].sort()).toEqual(['shard-1', 'shard-2']);
    const tie = '2026-02-01T08:00:00.123456Z';
    for (const name of names) {
      fake.addCommunity(name);
      fake.addPosts(name, 3, (i) => ({ published: i < 2 ? tie : new Date(Date.parse(tie) - 1000) }));
    }
    const added = await Promise.all(names.map((name) => call(app, 'POST', '/api/communities', { instance: fake.url, name })));
    expect(added.map((r) => r.status)).toEqual([201, 201, 201, 201]);
    for (const name of names) await waitSynced(refOf(name), 3);

    let total = 0;
    for (const node of router.nodeNames()) {
      const [{ n }] = await router.pool(node)<{ n: number }[]>`select count(*)::int as n from posts`;
      expect(n, `posts on ${node}`).toBeGreaterThan(0);
      total += n;
    }

    const seen: Json[] = [];
    let next: string | null = null;
    let pages = 0;
    do {
      const r = await call(app, 'GET', `/api/posts?limit=4${next ? `&before=${encodeURIComponent(next)}` : ''}`);
      expect(r.status).toBe(200);
      expect(r.json.partial).toBe(false);
      expect(r.json.missingNodes).toEqual([]);
      seen.push(...r.json.posts);
      next = r.json.next;
      pages++;
    } while (next && pages < 100);
    expect(seen).toHaveLength(total);
    expect(new Set(seen.map((p) => p.id)).size).toBe(total);
    const key = (p: Json) => [p.published, p.communityId, p.lemmyId] as const;
    for (let i = 1; i < seen.length; i++) {
      const [pa, ca, la] = key(seen[i - 1]);
      const [pb, cb, lb] = key(seen[i]);
      expect(pa > pb || (pa === pb && (ca > cb || (ca === cb && la > lb))), `order at ${i}`).toBe(true);
    }
    // (the sync stores Lemmy's timestamps at millisecond precision)
    expect(seen.filter((p) => p.published.startsWith(tie.slice(0, 23)))).toHaveLength(8);
    for (const p of seen) expect(p.communityRef).toMatch(/@/);
  });

  it('refresh signals the workflow (202) and PATCH changes the interval (200)', async () => {
    const ref = refOf('technology');
    const before = (await queryStatus(deps, ref))!;
    const r = await call(app, 'POST', `/api/communities/${ref}/refresh`);
    expect(r.status).toBe(202);
    await eventually(async () => ((await queryStatus(deps, ref))?.syncs ?? 0) > before.syncs);
    expectError(await call(app, 'POST', `/api/communities/nothere@${fake.hostPort}/refresh`), 404, 'community_not_found');

    const p = await call(app, 'PATCH', `/api/communities/${ref}`, { refreshSeconds: 1 });
    expect(p.status).toBe(200);
    expect(p.json.refreshSeconds).toBe(1);
    await eventually(async () => (await queryStatus(deps, ref))?.refreshSeconds === 1);
    const s1 = (await queryStatus(deps, ref))!.syncs;
    await eventually(async () => ((await queryStatus(deps, ref))?.syncs ?? 0) >= s1 + 2, 15_000);
    const back = await call(app, 'PATCH', `/api/communities/${ref}`, { refreshSeconds: 600 });
    expect(back.json.refreshSeconds).toBe(600);
    expectError(await call(app, 'PATCH', `/api/communities/${ref}`, { refreshSeconds: 0 }), 400, 'invalid_input');
    expectError(await call(app, 'PATCH', `/api/communities/${ref}`, {}), 400, 'invalid_input');
    expectError(await call(app, 'PATCH', `/api/communities/nothere@${fake.hostPort}`, { refreshSeconds: 5 }), 404, 'community_not_found');
  });

  it('answers 422 when the instance is unreachable, not Lemmy, or lacks the community', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    expectError(
      await call(app, 'POST', '/api/communities', { instance: `http://127.0.0.1:${port}`, name: 'x' }),
      422,
      'instance_unreachable',
    );

    fake.fail({ kind: 'html200' }, { path: 'site' });
    expectError(await call(app, 'POST', '/api/communities', { instance: fake.url, name: 'technology2' }), 422, 'not_lemmy');
    expectError(await call(app, 'POST', '/api/communities', { instance: fake.url, name: 'nosuchcommunity' }), 422, 'community_not_found');
    const rows = await stack.storage
      .catalog`select ref from communities where ref in (${refOf('nosuchcommunity')}, ${refOf('technology2')})`;
    expect(rows).toHaveLength(0);
  });

  it('deletes: cancels the workflow, removes posts and row (204), then 404', async () => {
    const ref = refOf('concurrent');
    fake.addPosts('concurrent', 2);
    await call(app, 'POST', `/api/communities/${ref}/refresh`);
    const synced = await waitSynced(ref, 2);
    const node = await stack.storage.router.nodeOf(synced.shard);
    const r = await call(app, 'DELETE', `/api/communities/${ref}`);
    expect(r.status).toBe(204);
    expect(r.text).toBe('');
    expectError(await call(app, 'GET', `/api/communities/${ref}`), 404, 'community_not_found');
    expectError(await call(app, 'DELETE', `/api/communities/${ref}`), 404, 'community_not_found');
    const [{ n }] = await stack.storage.router.pool(node)<
      { n: number }[]
    >`select count(*)::int as n from posts where community_id = ${synced.id}`;
    expect(n).toBe(0);
    await eventually(async () =>
      ['CANCELLED', 'COMPLETED'].includes((await stack.client.workflow.getHandle(`community:${ref}`).describe()).status.name),
    );
  });

  it('/healthz reports catalog, every shard node and Temporal', async () => {
    const r = await call(app, 'GET', '/healthz');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      status: 'ok',
      checks: { catalog: { ok: true }, shards: { 'shard-1': { ok: true }, 'shard-2': { ok: true } }, temporal: { ok: true } },
    });
  });

  it('requires the bearer token for mutating routes when API_TOKEN is set', async () => {
    const token = 'correct-horse-battery';
    const secured = createApp({ ...deps, config: { ...deps.config, API_TOKEN: token } });
    const ref = refOf('technology');
    expectError(await call(secured, 'POST', '/api/communities', { community: ref }), 401, 'unauthorized');
    expectError(
      await call(secured, 'POST', '/api/communities', { community: ref }, { authorization: 'Bearer wrong-token-value' }),
      401,
      'unauthorized',
    );
    expectError(await call(secured, 'PATCH', `/api/communities/${ref}`, { refreshSeconds: 5 }), 401, 'unauthorized');
    expectError(await call(secured, 'DELETE', `/api/communities/${ref}`), 401, 'unauthorized');
    expectError(await call(secured, 'POST', `/api/communities/${ref}/refresh`), 401, 'unauthorized');
    expect((await call(secured, 'GET', '/api/communities')).status).toBe(200);
    expect((await call(secured, 'GET', `/api/communities/${ref}/posts`)).status).toBe(200);
    const ok = await call(secured, 'POST', '/api/communities', { community: ref }, { authorization: `Bearer ${token}` });
    expect(ok.status).toBe(200);
  });

  it('sends CORS headers only when CORS_ORIGINS is set', async () => {
    const plain = await call(app, 'GET', '/api/communities', undefined, { origin: 'https://ui.example' });
    expect(plain.headers.get('access-control-allow-origin')).toBeNull();
    const withCors = createApp({ ...deps, config: { ...deps.config, CORS_ORIGINS: 'https://ui.example' } });
    const r = await call(withCors, 'GET', '/api/communities', undefined, { origin: 'https://ui.example' });
    expect(r.headers.get('access-control-allow-origin')).toBe('https://ui.example');
    const pre = await withCors.request('/api/communities', {
      method: 'OPTIONS',
      headers: { origin: 'https://ui.example', 'access-control-request-method': 'POST' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-methods')).toContain('POST');
  });

  it('answers from Postgres when Temporal is down (the list with the catalog status, one community as "unknown"); healthz says 503 temporal', async () => {
    const down = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1', connectTimeout: '500ms' }) });
    const noTemporal = createApp({ ...deps, temporal: down });
    const list = await call(noTemporal, 'GET', '/api/communities?limit=100');
    expect(list.status).toBe(200);
    expect(list.json.communities.length).toBeGreaterThan(0);
    // The list never asks Temporal: each community shows what its last sync wrote to the catalog.
    for (const c of list.json.communities) expect(c.status.state).not.toBe('unknown');
    const tech = list.json.communities.find((c: Json) => c.ref === refOf('technology'));
    expect(tech.status.lastSyncAt).toMatch(/^\d{4}-/); // from the catalog row
    const one = await call(noTemporal, 'GET', `/api/communities/${refOf('technology')}`);
    expect(one.json.status.state).toBe('unknown'); // a single community asks its workflow
    const h = await call(noTemporal, 'GET', '/healthz');
    expect(h.status).toBe(503);
    expect(h.json.status).toBe('degraded');
    expect(h.json.checks.temporal.ok).toBe(false);
    expect(h.json.checks.catalog.ok).toBe(true);
    expectError(await call(noTemporal, 'POST', `/api/communities/${refOf('technology')}/refresh`), 503, 'temporal_unavailable');
  });

  it('`npm run api` (src/api.ts) serves the same API from the environment and stops on SIGTERM', async () => {
    const [port] = await freePorts(1);
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/api.ts'], {
      env: { ...process.env, ...stack.env, PORT: String(port), LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      const body = await eventually(
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/api/communities`);
          return res.ok ? ((await res.json()) as Json) : undefined;
        },
        30_000,
        200,
      ).catch((err) => {
        throw new Error(`${err.message}\n${stderr}`);
      });
      expect(body.communities.map((c: Json) => c.ref)).toContain(refOf('technology'));
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('reports partial cross-shard reads and 503 shard_unavailable when a shard node is down', async () => {
    const { catalog, router } = stack.storage;
    const ties = (await call(app, 'GET', `/api/communities/${refOf('ties')}`)).json;
    const original = await router.nodeOf(ties.shard);
    await catalog`insert into shard_nodes (name, url) values ('shard-dead', 'postgres://nobody:x@127.0.0.1:1/none')`;
    await catalog`update shard_map set node = 'shard-dead' where shard = ${ties.shard}`;
    await router.refreshNodes();
    // The API hears map changes through its catalog LISTEN a moment after the commit (a busy
    // machine: later); this test changes the map behind its back and reads at once.
    router.forgetShardMap();
    try {
      const r = await call(app, 'GET', '/api/posts?limit=100');
      expect(r.status).toBe(200);
      expect(r.json.partial).toBe(true);
      expect(r.json.missingNodes).toEqual(['shard-dead']);
      expect(r.json.posts.length).toBeGreaterThan(0);
      expectError(await call(app, 'GET', `/api/communities/${refOf('ties')}/posts`), 503, 'shard_unavailable');
      const h = await call(app, 'GET', '/healthz');
      expect(h.status).toBe(503);
      expect(h.json.checks.shards['shard-dead'].ok).toBe(false);
      expect(h.json.checks.shards['shard-1'].ok).toBe(true);
    } finally {
      await catalog`update shard_map set node = ${original} where shard = ${ties.shard}`;
      router.forgetShardMap();
    }
  });
});
