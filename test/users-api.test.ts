// The users contract (/api/users and /u/:name) against a real stack: users and their keys, follows
// of communities and users, who may change them, the feed merged across both shard nodes, and
// activities (own and friends').
import { createHash } from 'node:crypto';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import type { ApiDeps } from '../api/deps.js';
import type { Services } from '../api/service.js';
import { listCommunities } from '../src/db/communities.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { createLogger } from '../src/log.js';
import { createSourceClients } from '../src/sources/factory.js';
import { stopTracking } from '../src/tracking.js';
import { FakeLemmy } from './fake-lemmy.js';
import { call, type Json } from './support/api.js';
import { expectConforms } from './support/openapi.js';
import { createStack, eventually, type Stack, apiDeps } from './support/stack.js';

const ADMIN = 'admintoken123';

let stack: Stack;
let fake: FakeLemmy;
let deps: ApiDeps;
let app: Hono;
/** The same stack with API_TOKEN set. */
let adminApp: Hono;
let services: Services;
const keys: Record<string, string> = {};

/** A request with an Authorization header (a bearer key, or the raw header) and a JSON body. */
async function send(
  a: Hono,
  method: string,
  path: string,
  opts: { key?: string; authorization?: string; body?: unknown } = {},
): Promise<{ status: number; json: Json; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  if (opts.authorization) headers.authorization = opts.authorization;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await a.request(path, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  await expectConforms(a, method, path, { status: res.status, headers: res.headers, text });
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** `name` follows (or stops following) with their own key. */
const as = (name: string, method: 'PUT' | 'DELETE', path: string) =>
  send(app, method, `/api/users/${name}/follows/${path}`, { key: keys[name] });

/** Communities on both shard nodes: two on each (a*, b*), plus one nobody follows (c). */
const communities: Record<'a1' | 'a2' | 'b1' | 'b2' | 'c', Json> = {} as Record<'a1' | 'a2' | 'b1' | 'b2' | 'c', Json>;
const POSTS_EACH = 6;

beforeAll(async () => {
  [stack, fake] = await Promise.all([createStack(), FakeLemmy.start()]);
  const log = createLogger({ level: 'silent' });
  deps = apiDeps(stack, log);
  app = createApp(deps);
  adminApp = createApp({ ...deps, config: { ...stack.config, API_TOKEN: ADMIN } });
  services = { ...deps, sources: createSourceClients(stack.config, stack.storage.catalog) };

  // Names whose logical shards the map gives to different nodes.
  const map = await stack.storage.router.shardMap();
  const [nodeA, nodeB] = stack.storage.router.nodeNames();
  const nodeOf = (name: string) => map.get(logicalShardOf(`${name}@${fake.hostPort}`));
  const candidates = Array.from({ length: 200 }, (_, i) => `news_${i}`);
  const onA = candidates.filter((n) => nodeOf(n) === nodeA);
  const onB = candidates.filter((n) => nodeOf(n) === nodeB);
  const names = { a1: onA[0], a2: onA[1], b1: onB[0], b2: onB[1], c: onA[2] };
  for (const name of Object.values(names)) fake.addCommunity(name);
  // Interleaved rounds: every community's posts alternate in time with the others'.
  for (let round = 0; round < POSTS_EACH / 2; round++) for (const name of Object.values(names)) fake.addPosts(name, 2);
  for (const [key, name] of Object.entries(names) as [keyof typeof communities, string][]) {
    const added = await call(app, 'POST', '/api/communities', { instance: fake.url, name, refreshSeconds: 3600 });
    expect(added.status).toBe(201);
    expect(added.json.ref).toBe(`${name}@${fake.hostPort}`);
    expect(map.get(added.json.shard)).toBe(key.startsWith('b') ? nodeB : nodeA);
    communities[key] = added.json;
  }
  for (const c of Object.values(communities)) {
    await eventually(async () => (await call(app, 'GET', `/api/communities/${c.id}`)).json.postsStored === POSTS_EACH, 30_000);
  }
});

afterAll(async () => {
  if (stack) {
    for (const row of await listCommunities(stack.storage.catalog).catch(() => [])) await stopTracking(deps, row).catch(() => {});
    await stack.stop();
  }
  await services?.sources.close();
  await fake?.close();
});

describe('users', () => {
  it('POST /api/users creates a user and shows the key once (201); a taken name is a 409', async () => {
    for (const name of ['alice', 'bob', 'carol', 'dave', 'erin']) {
      const r = await call(app, 'POST', '/api/users', { name });
      expect(r.status).toBe(201);
      expect(r.json.user).toEqual({ name, createdAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/) });
      expect(r.json.apiKey).toMatch(/^lf_[A-Za-z0-9_-]{43}$/);
      keys[name] = r.json.apiKey;
    }
    expect(new Set(Object.values(keys)).size).toBe(5);

    const again = await call(app, 'POST', '/api/users', { name: 'alice' });
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe('user_exists');

    // Only the key's sha256 is kept; the profile does not show it.
    const [row] = await stack.storage.catalog<{ api_key_hash: string }[]>`select api_key_hash from users where name = 'alice'`;
    expect(row.api_key_hash).toBe(createHash('sha256').update(keys.alice).digest('hex'));
    const profile = await call(app, 'GET', '/api/users/alice');
    expect(JSON.stringify(profile.json)).not.toContain(keys.alice);
  });

  it('bad names are a 400 invalid_input, in a body or a path', async () => {
    for (const body of [
      { name: 'Alice' },
      { name: '' },
      { name: 'a'.repeat(65) },
      { name: 'a-b' },
      { name: 'al ice' },
      { name: 42 },
      {},
      { name: 'zed', extra: 1 },
    ]) {
      const r = await call(app, 'POST', '/api/users', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error.code).toBe('invalid_input');
    }
    expect((await call(app, 'POST', '/api/users', ['alice'])).json.error.code).toBe('invalid_json');
    for (const path of [
      '/api/users/Alice',
      '/api/users/a-b',
      `/api/users/${'a'.repeat(65)}`,
      '/api/users/Bad/feed',
      '/api/users/x%00/follows',
    ]) {
      const r = await call(app, 'GET', path);
      expect(r.status, path).toBe(400);
      expect(r.json.error.code).toBe('invalid_input');
    }
    const bad = await send(app, 'PUT', '/api/users/alice/follows/users/Bob', { key: keys.alice });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('invalid_input');
  });

  it('GET /api/users/:name: the profile, 404 for an unknown user', async () => {
    const r = await call(app, 'GET', '/api/users/alice');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      user: { name: 'alice', createdAt: expect.stringMatching(/^\d{4}-/), follows: { communities: 0, users: 0 }, followers: 0 },
    });
    for (const path of ['/api/users/nobody', '/api/users/nobody/follows', '/api/users/nobody/feed', '/api/users/nobody/activities']) {
      const missing = await call(app, 'GET', path);
      expect(missing.status, path).toBe(404);
      expect(missing.json.error.code).toBe('user_not_found');
    }
    expect((await call(app, 'GET', '/api/users/nobody/friends/activities')).status).toBe(404);
  });
});

describe('who may change follows', () => {
  const path = '/api/users/dave/follows/users/erin';

  it('no key or an unknown key: 401 with a Bearer challenge; another user’s key: 403; the own key: 204', async () => {
    for (const opts of [{}, { key: 'lf_not-a-key' }, { authorization: 'Basic ZGF2ZTpwdw==' }, { authorization: 'Bearer' }]) {
      const r = await send(app, 'PUT', path, opts);
      expect(r.status, JSON.stringify(opts)).toBe(401);
      expect(r.json.error.code).toBe('unauthorized');
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    const other = await send(app, 'PUT', path, { key: keys.erin });
    expect(other.status).toBe(403);
    expect(other.json.error.code).toBe('forbidden');
    expect((await send(app, 'DELETE', '/api/users/dave/follows/communities/1', { key: keys.erin })).status).toBe(403);
    // Without API_TOKEN configured, a bearer that is not a key opens nothing.
    expect((await send(app, 'PUT', path, { key: ADMIN })).status).toBe(401);

    expect((await send(app, 'PUT', path, { key: keys.dave })).status).toBe(204);
    expect((await call(app, 'GET', '/api/users/erin')).json.user.followers).toBe(1);
    expect((await send(app, 'DELETE', path, { key: keys.dave })).status).toBe(204);
    expect((await call(app, 'GET', '/api/users/erin')).json.user.followers).toBe(0);
  });

  it('with API_TOKEN set: the token may change anyone’s follows, the user’s key still works, POST /api/users needs the token', async () => {
    expect((await send(adminApp, 'PUT', path, { key: ADMIN })).status).toBe(204);
    expect((await call(adminApp, 'GET', '/api/users/dave/follows')).json.users.map((u: Json) => u.name)).toEqual(['erin']);
    expect((await send(adminApp, 'DELETE', path, { key: keys.dave })).status).toBe(204);
    expect((await send(adminApp, 'PUT', path, { key: keys.erin })).status).toBe(403);
    expect((await send(adminApp, 'PUT', path)).status).toBe(401);

    const unknown = await send(adminApp, 'PUT', '/api/users/nobody/follows/users/erin', { key: ADMIN });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.code).toBe('user_not_found');

    const noToken = await send(adminApp, 'POST', '/api/users', { body: { name: 'frank' } });
    expect(noToken.status).toBe(401);
    expect(noToken.json.error.code).toBe('unauthorized');
    const withToken = await send(adminApp, 'POST', '/api/users', { key: ADMIN, body: { name: 'frank' } });
    expect(withToken.status).toBe(201);
    expect(withToken.json.user.name).toBe('frank');
    // GETs stay open.
    expect((await call(adminApp, 'GET', '/api/users/frank')).status).toBe(200);
  });
});

describe('following users', () => {
  it('follow, unfollow (204s, harmless twice), 404 unknown, 400 oneself, counted in profiles', async () => {
    expect((await as('alice', 'PUT', 'users/bob')).status).toBe(204);
    expect((await as('alice', 'PUT', 'users/bob')).status).toBe(204);
    expect((await call(app, 'GET', '/api/users/alice')).json.user.follows).toEqual({ communities: 0, users: 1 });
    expect((await call(app, 'GET', '/api/users/bob')).json.user.followers).toBe(1);

    expect((await as('alice', 'DELETE', 'users/bob')).status).toBe(204);
    expect((await as('alice', 'DELETE', 'users/bob')).status).toBe(204);
    expect((await call(app, 'GET', '/api/users/alice')).json.user.follows.users).toBe(0);
    expect((await call(app, 'GET', '/api/users/bob')).json.user.followers).toBe(0);

    const self = await as('alice', 'PUT', 'users/alice');
    expect(self.status).toBe(400);
    expect(self.json.error.code).toBe('self_follow');
    const unknown = await as('alice', 'PUT', 'users/nobody');
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.code).toBe('user_not_found');
    expect((await as('alice', 'DELETE', 'users/nobody')).status).toBe(404);

    expect((await as('alice', 'PUT', 'users/bob')).status).toBe(204);
    expect((await as('alice', 'PUT', 'users/carol')).status).toBe(204);
    const [{ n }] = await stack.storage.catalog<{ n: number }[]>`
      select count(*)::int as n from user_follows f join users u on u.id = f.user_id where u.name = 'alice'`;
    expect(n).toBe(2);
  });
});

describe('following communities', () => {
  it('by id or by name@host (204s, harmless twice), 404 for a community that is not tracked, 400 for a bad ref', async () => {
    const { a1, a2, b1, b2, c } = communities;
    expect((await as('alice', 'PUT', `communities/${a1.id}`)).status).toBe(204);
    expect((await as('alice', 'PUT', `communities/${encodeURIComponent(a2.ref)}`)).status).toBe(204);
    expect((await as('alice', 'PUT', `communities/${b1.id}`)).status).toBe(204);
    expect((await as('alice', 'PUT', `communities/${encodeURIComponent(b2.ref)}`)).status).toBe(204);
    expect((await as('alice', 'PUT', `communities/${a1.id}`)).status).toBe(204); // again: no second row, no activity
    expect((await as('alice', 'DELETE', `communities/${c.id}`)).status).toBe(204); // never followed: harmless

    for (const ref of ['nope@example.com', '99999', '99999999999999']) {
      const r = await as('alice', 'PUT', `communities/${encodeURIComponent(ref)}`);
      expect(r.status, ref).toBe(404);
      expect(r.json.error.code).toBe('community_not_found');
      expect((await as('alice', 'DELETE', `communities/${encodeURIComponent(ref)}`)).status).toBe(404);
    }
    const bad = await as('alice', 'PUT', `communities/${encodeURIComponent('no spaces here')}`);
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('invalid_ref');
    const noUser = await send(adminApp, 'PUT', `/api/users/nobody/follows/communities/${a1.id}`, { key: ADMIN });
    expect(noUser.status).toBe(404);
    expect(noUser.json.error.code).toBe('user_not_found');

    expect((await call(app, 'GET', '/api/users/alice')).json.user.follows).toEqual({ communities: 4, users: 2 });
  });

  it('GET /api/users/:name/follows: communities as the community list shows them, and users', async () => {
    const r = await call(app, 'GET', '/api/users/alice/follows');
    expect(r.status).toBe(200);
    const listed = (await call(app, 'GET', '/api/communities?limit=100')).json.communities as Json[];
    const ids = [communities.a1, communities.a2, communities.b1, communities.b2].map((c) => c.id);
    expect(r.json.communities.map((c: Json) => c.id).sort()).toEqual([...ids].sort());
    for (const c of r.json.communities) expect(c).toEqual(listed.find((l) => l.id === c.id));
    expect(r.json.users).toEqual([
      { name: 'carol', createdAt: expect.any(String) },
      { name: 'bob', createdAt: expect.any(String) },
    ]);
    expect(await call(app, 'GET', '/api/users/carol/follows')).toEqual({ status: 200, json: { communities: [], users: [] } });
  });
});

/** The followed communities' posts, as the community posts endpoint gives them, newest first (the feed's order). */
async function expectedFeed(which: (keyof typeof communities)[]): Promise<Json[]> {
  const posts: Json[] = [];
  for (const k of which) {
    const r = await call(app, 'GET', `/api/communities/${communities[k].id}/posts?limit=100`);
    expect(r.status).toBe(200);
    posts.push(...r.json.posts);
  }
  return posts.sort((x, y) =>
    x.published !== y.published
      ? x.published < y.published
        ? 1
        : -1
      : x.communityId !== y.communityId
        ? y.communityId - x.communityId
        : y.lemmyId - x.lemmyId,
  );
}

async function readFeed(name: string, limit: number): Promise<{ posts: Json[]; pages: number }> {
  const posts: Json[] = [];
  let next: string | null = null;
  let pages = 0;
  do {
    const r = await call(app, 'GET', `/api/users/${name}/feed?limit=${limit}${next ? `&before=${next}` : ''}`);
    expect(r.status).toBe(200);
    expect(r.json.partial).toBe(false);
    expect(r.json.posts.length).toBeLessThanOrEqual(limit);
    posts.push(...r.json.posts);
    next = r.json.next;
    pages++;
  } while (next && pages < 100);
  return { posts, pages };
}

describe('the feed', () => {
  it('merges the followed communities’ posts from both nodes, newest first, paged with a cursor', async () => {
    const expected = await expectedFeed(['a1', 'a2', 'b1', 'b2']);
    expect(expected).toHaveLength(4 * POSTS_EACH);
    const first = await call(app, 'GET', '/api/users/alice/feed');
    expect(first.status).toBe(200);
    expect(first.json).toEqual({ posts: expected.slice(0, 20), next: expect.any(String), partial: false, missingNodes: [] });
    // Posts of both nodes interleave on the first page.
    const refs = new Set(first.json.posts.slice(0, 8).map((p: Json) => p.communityRef));
    expect(refs).toEqual(new Set([communities.a1.ref, communities.a2.ref, communities.b1.ref, communities.b2.ref]));

    const paged = await readFeed('alice', 5);
    expect(paged.pages).toBe(5);
    expect(paged.posts).toEqual(expected);

    // The same order as the newest posts across all communities, without the unfollowed one.
    const followed = new Set(expected.map((p) => p.communityId));
    const newest = (await call(app, 'GET', '/api/posts?limit=100')).json.posts as Json[];
    expect(newest.filter((p) => followed.has(p.communityId)).map((p) => p.id)).toEqual(expected.map((p) => p.id));
    expect(newest.some((p) => p.communityId === communities.c.id)).toBe(true);
  });

  it('an empty feed without follows; bad limits and cursors are 400s', async () => {
    expect((await call(app, 'GET', '/api/users/carol/feed')).json).toEqual({ posts: [], next: null, partial: false, missingNodes: [] });
    for (const q of ['limit=0', 'limit=101', 'limit=abc', 'limit=-1']) {
      const r = await call(app, 'GET', `/api/users/alice/feed?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.json.error.code).toBe('invalid_limit');
    }
    for (const before of ['zzz', 'YQ', encodeURIComponent('a b'), 'x'.repeat(300)]) {
      const r = await call(app, 'GET', `/api/users/alice/feed?before=${before}`);
      expect(r.status, before).toBe(400);
      expect(r.json.error.code).toBe('invalid_cursor');
    }
  });
});

describe('activities', () => {
  it('a user’s own activities, newest first, one per change that happened, paged', async () => {
    const { a1, a2, b1, b2 } = communities;
    const expected = [
      ['follow', `community:${b2.ref}`],
      ['follow', `community:${b1.ref}`],
      ['follow', `community:${a2.ref}`],
      ['follow', `community:${a1.ref}`],
      ['follow', 'user:carol'],
      ['follow', 'user:bob'],
      ['unfollow', 'user:bob'],
      ['follow', 'user:bob'],
    ];
    const all = await call(app, 'GET', '/api/users/alice/activities');
    expect(all.status).toBe(200);
    expect(all.json.next).toBeNull();
    expect(all.json.activities.map((a: Json) => [a.verb, a.object])).toEqual(expected);
    for (const a of all.json.activities) {
      expect(a).toEqual({
        id: expect.any(Number),
        actor: 'user:alice',
        verb: a.verb,
        object: a.object,
        target: null,
        published: expect.any(String),
      });
      expect(Number.isNaN(Date.parse(a.published))).toBe(false);
    }
    const ids = all.json.activities.map((a: Json) => a.id);
    expect(ids).toEqual([...ids].sort((x, y) => y - x));

    const pages: Json[][] = [];
    let next: string | null = null;
    do {
      const r = await call(app, 'GET', `/api/users/alice/activities?limit=3${next ? `&before=${next}` : ''}`);
      expect(r.status).toBe(200);
      pages.push(r.json.activities);
      next = r.json.next;
    } while (next);
    expect(pages.map((p) => p.length)).toEqual([3, 3, 2]);
    expect(pages.flat()).toEqual(all.json.activities);

    for (const before of ['zzz', 'Yzk', 'YQ', '!!', 'a'.repeat(300)]) {
      const r = await call(app, 'GET', `/api/users/alice/activities?before=${before}`);
      expect(r.status, before).toBe(400);
      expect(r.json.error.code).toBe('invalid_cursor');
    }
    expect((await call(app, 'GET', '/api/users/alice/activities?limit=0')).status).toBe(400);
    expect((await call(app, 'GET', '/api/users/bob/activities')).json).toEqual({ activities: [], next: null });
  });

  it('friends’ activities: those of the users followed, newest first, paged', async () => {
    expect((await as('bob', 'PUT', `communities/${communities.a1.id}`)).status).toBe(204);
    expect((await as('carol', 'PUT', 'users/alice')).status).toBe(204);
    expect((await as('bob', 'PUT', 'users/carol')).status).toBe(204);
    expect((await as('dave', 'PUT', 'users/alice')).status).toBe(204); // alice does not follow dave

    const r = await call(app, 'GET', '/api/users/alice/friends/activities');
    expect(r.status).toBe(200);
    expect(r.json.next).toBeNull();
    expect(r.json.activities.map((a: Json) => [a.actor, a.verb, a.object, a.target])).toEqual([
      ['user:bob', 'follow', 'user:carol', null],
      ['user:carol', 'follow', 'user:alice', null],
      ['user:bob', 'follow', `community:${communities.a1.ref}`, null],
    ]);

    const first = await call(app, 'GET', '/api/users/alice/friends/activities?limit=2');
    expect(first.json.activities).toEqual(r.json.activities.slice(0, 2));
    const second = await call(app, 'GET', `/api/users/alice/friends/activities?limit=2&before=${first.json.next}`);
    expect(second.json).toEqual({ activities: r.json.activities.slice(2), next: null });
    expect((await call(app, 'GET', '/api/users/alice/friends/activities?before=nope')).json.error.code).toBe('invalid_cursor');
    expect((await call(app, 'GET', '/api/users/erin/friends/activities')).json).toEqual({ activities: [], next: null });
    expect((await call(app, 'GET', '/api/users/alice')).json.user.followers).toBe(2);
  });
});

describe('removing a community', () => {
  it('takes it out of every follow list and feed', async () => {
    const { b1, a1 } = communities;
    expect((await call(app, 'DELETE', `/api/communities/${b1.id}`)).status).toBe(204);
    expect((await call(app, 'DELETE', `/api/communities/${a1.id}`)).status).toBe(204);

    expect((await call(app, 'GET', '/api/users/alice')).json.user.follows).toEqual({ communities: 2, users: 2 });
    const follows = (await call(app, 'GET', '/api/users/alice/follows')).json.communities.map((c: Json) => c.id).sort();
    expect(follows).toEqual([communities.a2.id, communities.b2.id].sort());
    expect((await call(app, 'GET', '/api/users/bob/follows')).json.communities).toEqual([]);

    const expected = await expectedFeed(['a2', 'b2']);
    expect(expected).toHaveLength(2 * POSTS_EACH);
    expect((await readFeed('alice', 7)).posts).toEqual(expected);
    expect((await call(app, 'GET', '/api/users/bob/feed')).json.posts).toEqual([]);

    const gone = await as('alice', 'PUT', `communities/${b1.id}`);
    expect(gone.status).toBe(404);
    expect((await as('alice', 'DELETE', `communities/${encodeURIComponent(b1.ref)}`)).status).toBe(404);
    // What was done stays told.
    const verbs = (await call(app, 'GET', '/api/users/alice/activities')).json.activities.map((a: Json) => a.object);
    expect(verbs).toContain(`community:${b1.ref}`);
  });
});

describe('the user page /u/:name', () => {
  it('shows the feed and the activities; 404 for an unknown user, 400 for a bad name', async () => {
    const web = app; // mounted by the website's routes
    const feed = (await call(app, 'GET', '/api/users/alice/feed?limit=5')).json;
    const res = await web.request('/u/alice?limit=5');
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('<h1>alice</h1>');
    for (const p of feed.posts) expect(html).toContain(`data-post-id="${p.id}"`);
    expect(html).toContain(`href="/u/alice?before=${encodeURIComponent(feed.next)}&amp;limit=5"`);
    expect(html).toContain('data-verb="follow"');
    expect(html).toContain('href="/u/carol"');
    expect(html).toContain(`href="/c/${encodeURIComponent(communities.b2.ref)}"`);

    const older = await web.request(`/u/alice?limit=5&before=${encodeURIComponent(feed.next)}`);
    expect(older.status).toBe(200);
    expect(await older.text()).not.toContain(`data-post-id="${feed.posts[0].id}"`);

    expect((await web.request('/u/nobody')).status).toBe(404);
    expect((await web.request('/u/Not-A-Name')).status).toBe(400);
    expect((await web.request('/u/alice?before=zzz')).status).toBe(400);
  });

  it('signs in with the key and follows from a community page, without JavaScript', async () => {
    const form = (fields: Record<string, string>, cookie?: string) => ({
      method: 'POST',
      body: new URLSearchParams(fields).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}) },
    });
    const target = communities.c; // nobody follows it
    const page = `/c/${encodeURIComponent(target.ref)}`;
    // Not signed in: no follow button, and the follow form is refused.
    expect(await (await app.request(page)).text()).not.toContain('id="follow"');
    expect((await app.request('/u/dave/follows', form({ community: target.ref, action: 'follow', back: page }))).status).toBe(401);
    // A wrong key does not sign in.
    expect((await app.request('/u/dave/signin', form({ key: keys.alice }))).status).toBe(401);

    const signin = await app.request('/u/dave/signin', form({ key: keys.dave }));
    expect(signin.status).toBe(303);
    const cookie = (signin.headers.get('set-cookie') ?? '').split(';')[0];
    expect(signin.headers.get('set-cookie')).toMatch(/HttpOnly/i);
    expect(await (await app.request('/u/dave', { headers: { cookie } })).text()).toContain('Signed in as dave');

    const before = await (await app.request(page, { headers: { cookie } })).text();
    expect(before).toContain('Follow (as dave)');
    const follow = await app.request('/u/dave/follows', form({ community: target.ref, action: 'follow', back: page }, cookie));
    expect(follow.status).toBe(303);
    expect(follow.headers.get('location')).toBe(page);
    expect((await call(app, 'GET', '/api/users/dave/follows')).json.communities.map((c: Json) => c.ref)).toContain(target.ref);
    expect(await (await app.request(page, { headers: { cookie } })).text()).toContain('Unfollow (as dave)');
    // Someone else's follows cannot be changed with dave's cookie; an offsite "back" is not followed.
    expect((await app.request('/u/alice/follows', form({ community: target.ref, action: 'follow', back: page }, cookie))).status).toBe(403);
    const unfollow = await app.request(
      '/u/dave/follows',
      form({ community: target.ref, action: 'unfollow', back: '//evil.example/' }, cookie),
    );
    expect(unfollow.headers.get('location')).toBe('/');
    expect((await call(app, 'GET', '/api/users/dave/follows')).json.communities.map((c: Json) => c.ref)).not.toContain(target.ref);
    // Signing out forgets the cookie.
    const out = await app.request('/u/dave/signout', form({}, cookie));
    expect(out.headers.get('set-cookie')).toMatch(/Max-Age=0/i);
  });
});
