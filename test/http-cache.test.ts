// Conditional GETs and the response cache, against real parts (Temporal, Postgres nodes, a
// worker, a FakeLemmy): ETag + 304 on every GET kind, Cache-Control, the ETag moving when a sync
// adds a post, no stale page after a sync (cache hits before, the new post right after), and no
// page of a removed community, from this app or from another "replica" sharing the databases.
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import type { ApiDeps } from '../api/server.js';
import { listCommunities } from '../src/db/communities.js';
import { createLogger } from '../src/log.js';
import { stopStreamHub } from '../src/stream/hub.js';
import { stopTracking } from '../src/tracking.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack, apiDeps } from './support/stack.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

async function get(app: Hono, path: string, headers: Record<string, string> = {}) {
  const res = await app.request(path, { headers });
  const text = await res.text();
  return { status: res.status, text, json: text ? (JSON.parse(text) as Json) : undefined, headers: res.headers };
}

async function send(app: Hono, method: string, path: string, body?: unknown) {
  const res = await app.request(path, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Json) : undefined };
}

describe('conditional GETs and the response cache', () => {
  let stack: Stack;
  let fake: FakeLemmy;
  let deps: ApiDeps;
  let app: Hono;
  const log = createLogger({ level: 'silent' });
  const refOf = (name: string) => `${name}@${fake.hostPort}`;
  const postsPath = (name: string) => `/api/communities/${encodeURIComponent(refOf(name))}/posts?limit=5`;

  beforeAll(async () => {
    [stack, fake] = await Promise.all([createStack(), FakeLemmy.start({ siteName: 'Cache' })]);
    deps = apiDeps(stack, log);
    app = createApp(deps);
  });

  afterAll(async () => {
    if (stack) {
      for (const row of await listCommunities(stack.storage.catalog).catch(() => [])) await stopTracking(deps, row).catch(() => {});
      await stopStreamHub(stack.storage.router);
      await stack.stop();
    }
    await fake?.close();
  });

  /** Tracks `name` (no syncs but asked for) and waits until its first sync stored `posts`. */
  async function track(name: string, posts: number) {
    const r = await send(app, 'POST', '/api/communities', { instance: fake.url, name, refreshSeconds: 86400 });
    expect([200, 201], JSON.stringify(r.json)).toContain(r.status);
    await waitStored(name, posts);
    return r.json.id as number;
  }

  const waitStored = (name: string, posts: number) =>
    eventually(async () => {
      const r = await get(app, `/api/communities/${encodeURIComponent(refOf(name))}`);
      return r.status === 200 && r.json.postsStored === posts && r.json.status.state === 'waiting' ? r.json : undefined;
    }, 30_000);

  /** GETs `path` until it comes from the cache (the change listeners start with the first request). */
  const waitHit = (a: Hono, path: string) =>
    eventually(async () => {
      const r = await get(a, path);
      return r.headers.get('x-cache') === 'hit' ? r : undefined;
    }, 10_000);

  it('sends ETag and Cache-Control on every GET kind, and 304 without a body for If-None-Match', async () => {
    fake.addCommunity('etags');
    fake.addPosts('etags', 7);
    await track('etags', 7);
    await send(app, 'POST', '/api/users', { name: 'etag_user' });
    const paths = [
      postsPath('etags'),
      `${postsPath('etags')}&before=${(await get(app, postsPath('etags'))).json.next}`,
      '/api/posts?limit=3',
      `/api/communities/${encodeURIComponent(refOf('etags'))}`,
      '/api/communities',
      '/api/users/etag_user',
    ];
    for (const path of paths) {
      const first = await get(app, path);
      expect(first.status, path).toBe(200);
      const tag = first.headers.get('etag');
      expect(tag, path).toMatch(/^"[^"]+"$/);
      expect(first.headers.get('cache-control'), path).toBe('no-cache');
      const again = await app.request(path, { headers: { 'if-none-match': tag! } });
      expect(again.status, path).toBe(304);
      expect(await again.text(), path).toBe('');
      expect(again.headers.get('etag'), path).toBe(tag);
      expect(again.headers.get('cache-control'), path).toBe('no-cache');
      // Another tag (or a list without this one) gets the page.
      const other = await get(app, path, { 'if-none-match': '"something-else", W/"x"' });
      expect(other.status, path).toBe(200);
      expect(other.text, path).toBe(first.text);
    }
    // Served from the cache, the same bytes and tag; 304 from the cache too.
    const hit = await waitHit(app, postsPath('etags'));
    const fresh = await get(createApp({ ...deps, config: { ...deps.config, API_RESPONSE_CACHE: false } }), postsPath('etags'));
    expect(fresh.headers.get('x-cache')).toBeNull();
    expect(hit.text).toBe(fresh.text);
    expect(hit.headers.get('etag')).toBe(fresh.headers.get('etag'));
    const notModified = await app.request(postsPath('etags'), { headers: { 'if-none-match': hit.headers.get('etag')! } });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.get('x-cache')).toBe('hit');
    // Errors are neither tagged nor cached.
    const missing = await get(app, '/api/communities/nothing@nowhere.example/posts');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('etag')).toBeNull();
  });

  it('after each sync that adds a post, the next GET shows it: new ETag, no stale page (3 rounds)', async () => {
    fake.addCommunity('fresh');
    fake.addPosts('fresh', 3);
    const id = await track('fresh', 3);
    const byId = `/api/communities/${id}/posts?limit=5`;
    let stored = 3;
    for (let round = 0; round < 3; round++) {
      // Cached before the sync (so a stale page could be served)...
      const before = await waitHit(app, postsPath('fresh'));
      await waitHit(app, byId);
      const crossBefore = await waitHit(app, '/api/posts?limit=5');
      const [added] = fake.addPosts('fresh', 1);
      expect((await send(app, 'POST', `/api/communities/${encodeURIComponent(refOf('fresh'))}/refresh`)).status).toBe(202);
      await waitStored('fresh', ++stored);
      // ...and right after it, the new post on the community's pages (either ref) and across communities.
      for (const path of [postsPath('fresh'), byId]) {
        const after = await get(app, path);
        expect(after.json.posts[0].lemmyId, `round ${round} ${path}`).toBe(added.id);
        expect(after.headers.get('etag')).not.toBe(before.headers.get('etag'));
        const stale = await app.request(path, { headers: { 'if-none-match': before.headers.get('etag')! } });
        expect(stale.status).toBe(200);
      }
      const cross = await get(app, '/api/posts?limit=5');
      expect(cross.json.posts[0].lemmyId).toBe(added.id);
      expect(cross.headers.get('etag')).not.toBe(crossBefore.headers.get('etag'));
    }
  });

  it('a removed community’s pages are gone, here and on another replica; added again, its new posts show', async () => {
    fake.addCommunity('gone');
    const old = fake.addPosts('gone', 4);
    await track('gone', 4);
    const replica = createApp(deps); // another API process: its own cache, the same databases
    for (const a of [app, replica]) {
      const hit = await waitHit(a, postsPath('gone'));
      expect(hit.json.posts.map((p: Json) => p.lemmyId)).toContain(old[3].id);
      await waitHit(a, '/api/posts?limit=20');
    }
    expect((await send(app, 'DELETE', `/api/communities/${encodeURIComponent(refOf('gone'))}`)).status).toBe(204);
    // This app at once; the replica when the catalog's notification arrives (well under a second).
    expect((await get(app, postsPath('gone'))).status).toBe(404);
    await eventually(async () => (await get(replica, postsPath('gone'))).status === 404, 2000, 10);
    for (const a of [app, replica]) {
      const cross = await get(a, '/api/posts?limit=20');
      expect(cross.json.posts.some((p: Json) => p.communityRef === refOf('gone'))).toBe(false);
    }

    // Added again under the same ref: a new id, and the posts Lemmy has now.
    fake.removeCommunity('gone');
    fake.addCommunity('gone');
    const fresh = fake.addPosts('gone', 2);
    await track('gone', 2);
    for (const a of [app, replica]) {
      const r = await get(a, postsPath('gone'));
      expect(r.status).toBe(200);
      expect(r.json.posts.map((p: Json) => p.lemmyId)).toEqual(fresh.map((p) => p.id).reverse());
    }
  });

  it('a lost LISTEN connection empties the cache: a change committed while it was down shows', async () => {
    fake.addCommunity('relisten');
    fake.addPosts('relisten', 2);
    const id = await track('relisten', 2);
    const cached = await waitHit(app, postsPath('relisten'));
    const newest = cached.json.posts[0].lemmyId as number;
    // The node's LISTEN connection dies, and a post changes before it listens again: that
    // notification is lost, so only emptying the cache on the reconnect keeps the page right.
    const [row] = await stack.storage.catalog<{ shard: number }[]>`select shard from communities where id = ${id}`;
    const sql = stack.storage.router.pool(await stack.storage.router.nodeOf(row.shard));
    await sql.begin(async (tx) => {
      const [killed] = await tx<{ n: number }[]>`
        select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
        where datname = current_database() and query ilike 'listen%' and pid <> pg_backend_pid()`;
      expect(killed.n).toBeGreaterThan(0);
      await tx`update posts set title = 'changed while nobody listened' where community_id = ${id} and lemmy_id = ${newest}`;
    });
    await eventually(async () => (await get(app, postsPath('relisten'))).json.posts[0].title === 'changed while nobody listened', 5000, 20);
    await waitHit(app, postsPath('relisten'));
  });

  it('API_RESPONSE_CACHE=false: no cache, still ETag and 304', async () => {
    const plain = createApp({ ...deps, config: { ...deps.config, API_RESPONSE_CACHE: false } });
    const first = await get(plain, postsPath('etags'));
    const second = await get(plain, postsPath('etags'));
    expect(first.headers.get('x-cache')).toBeNull();
    expect(second.headers.get('x-cache')).toBeNull();
    expect(second.headers.get('etag')).toBe(first.headers.get('etag'));
    expect((await plain.request(postsPath('etags'), { headers: { 'if-none-match': first.headers.get('etag')! } })).status).toBe(304);
  });
});
