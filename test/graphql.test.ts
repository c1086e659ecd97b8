// GraphQL (/graphql) against a real stack: the queries answer what the REST API answers (same
// communities, posts, cursors and pages), the mutations track, refresh, change the interval and
// policy and remove, behind the same API token; depth and cost limits refuse before anything runs;
// bad input is a GraphQL error with the REST API's code, never a 500; a list of 50 communities
// with 5 posts each takes a bounded number of SQL statements (counted by the driver's hook); and
// GraphiQL renders in Debian's chromium with every request staying on the site.
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { GraphQLError } from 'graphql';
import { createGraphQLError } from 'graphql-yoga';
import { Hono } from 'hono';
import { pino } from 'pino';
import type { Browser, Request as PwRequest } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import type { ApiDeps } from '../api/deps.js';
import { ApiError } from '../api/errors.js';
import { maskError } from '../api/graphql/errors.js';
import { GRAPHIQL_CSP } from '../api/graphql/graphiql.js';
import { graphqlRoutes } from '../api/graphql/index.js';
import { startApiServer } from '../api/server.js';
import { insertCommunity, listCommunities } from '../src/db/communities.js';
import { observeStatements } from '../src/db/pool.js';
import { upsertPosts, type PostInput } from '../src/db/posts.js';
import { logicalShardOf, ShardUnavailableError } from '../src/db/sharding/router.js';
import { createLogger } from '../src/log.js';
import { createSourceClients } from '../src/sources/factory.js';
import { stopTracking } from '../src/tracking.js';
import { haveChromium as haveChromiumFor, launchChromium } from './support/browser.js';
import { FakeLemmy } from './fake-lemmy.js';
import { call, type Json } from './support/api.js';
import { createStack, eventually, type Stack, apiDeps } from './support/stack.js';

const TOKEN = 'graphqltoken123';

/** Statements per database, while `counting` is on (the hook sees every pool opened from here on). */
let counting = false;
const statements = new Map<string, string[]>();
observeStatements((_pool, query, database) => {
  if (counting) statements.set(database, [...(statements.get(database) ?? []), query]);
});

/** The app as createApp makes it. */
type App = ReturnType<typeof createApp>;

interface GqlAnswer {
  status: number;
  json: Json;
  headers: Headers;
}

async function gql(
  a: Pick<App, 'request'>,
  query: string,
  variables?: Record<string, unknown>,
  opts: { token?: string; authorization?: string } = {},
): Promise<GqlAnswer> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.authorization) headers.authorization = opts.authorization;
  const res = await a.request('/graphql', { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** An answer without errors: its data. */
function dataOf(r: GqlAnswer): Json {
  expect(r.json.errors, JSON.stringify(r.json.errors)).toBeUndefined();
  expect(r.status).toBe(200);
  return r.json.data;
}

/** An answer with errors: the first error's code (and the answer is never a 500). */
function errorOf(r: GqlAnswer): { code: string; message: string; status?: number; field?: string } {
  expect(r.status).toBeLessThan(500);
  expect(r.json.errors?.length, JSON.stringify(r.json)).toBeGreaterThan(0);
  const e = r.json.errors[0];
  return { code: e.extensions?.code, message: e.message, status: e.extensions?.status, field: e.extensions?.field };
}

const POST_FIELDS =
  'id communityId communityRef lemmyId apId title url body author thumbnail published updated score upvotes downvotes comments nsfw featured fetchedAt';

let stack: Stack;
let fake: FakeLemmy;
let deps: ApiDeps;
let app: App;
let tokenApp: App;
const refs: string[] = [];

beforeAll(async () => {
  [stack, fake] = await Promise.all([createStack(), FakeLemmy.start()]);
  deps = apiDeps(stack, createLogger({ level: 'silent' }));
  app = createApp(deps);
  tokenApp = createApp({ ...deps, config: { ...stack.config, API_TOKEN: TOKEN } });
  for (let i = 0; i < 4; i++) {
    fake.addCommunity(`topic${i}`, { title: `Topic ${i}` });
    fake.addPosts(`topic${i}`, 7);
  }
});

afterAll(async () => {
  if (stack) {
    for (const row of await listCommunities(stack.storage.catalog).catch(() => [])) await stopTracking(deps, row).catch(() => {});
    await stack.stop();
  }
  await fake?.close();
});

describe('GraphQL mutations and queries over the REST API', () => {
  it('tracks through the mutation (created, then already tracked), the same object as REST', async () => {
    for (let i = 0; i < 4; i++) {
      const r = dataOf(
        await gql(
          app,
          `mutation ($input: TrackInput!) { track(input: $input) { created community { id ref kind title refreshSeconds refreshPolicy } } }`,
          {
            input:
              i % 2
                ? { url: `${fake.url}/c/topic${i}`, refreshSeconds: 3600 }
                : { instance: fake.url, name: `topic${i}`, refreshSeconds: 3600 },
          },
        ),
      );
      expect(r.track.created).toBe(true);
      expect(r.track.community).toMatchObject({
        ref: `topic${i}@${fake.hostPort}`,
        kind: 'lemmy',
        refreshSeconds: 3600,
        refreshPolicy: 'fixed',
      });
      refs.push(r.track.community.ref);
    }
    const again = dataOf(await gql(app, `mutation { track(input: {url: "${fake.url}/c/topic0"}) { created community { ref } } }`));
    expect(again.track).toEqual({ created: false, community: { ref: refs[0] } });
    // Every sync has stored its posts.
    for (const ref of refs) {
      await eventually(async () => {
        const d = dataOf(await gql(app, `query ($ref: String!) { community(ref: $ref) { postsStored status { state } } }`, { ref }));
        return d.community.postsStored === 7 && d.community.status.state === 'waiting';
      });
    }
  });

  it('community(ref) answers what GET /api/communities/:ref answers', async () => {
    const rest = await call(app, 'GET', `/api/communities/${refs[1]}`);
    const d = dataOf(
      await gql(
        app,
        `query ($ref: String!) { community(ref: $ref) { id kind ref url instance host name title description icon banner nsfw subscribers postsCount postsStored
          refreshSeconds refreshPolicy minRefreshSeconds maxRefreshSeconds shard workflowId lastUpdate createdAt updatedAt
          status { state lastSyncAt nextSyncAt lastError { code message at } syncs reason consecutiveFailures postsPerHour } } }`,
        { ref: refs[1] },
      ),
    );
    expect(d.community).toEqual(rest.json);
    // By id too; unknown is null, not an error.
    expect(dataOf(await gql(app, `{ community(ref: "${rest.json.id}") { ref } }`)).community).toEqual({ ref: refs[1] });
    expect(dataOf(await gql(app, `{ community(ref: "nothing@${fake.hostPort}") { ref } }`)).community).toBeNull();
  });

  it('Community.posts pages like GET /api/communities/:ref/posts, with the same cursors', async () => {
    const q = `query ($ref: String!, $after: String) { community(ref: $ref) { posts(first: 3, after: $after) {
      edges { cursor node { ${POST_FIELDS} } } pageInfo { hasNextPage hasPreviousPage endCursor } } } }`;
    let after: string | undefined;
    let before = '';
    const seen: string[] = [];
    for (let page = 0; page < 3; page++) {
      const rest = await call(app, 'GET', `/api/communities/${refs[0]}/posts?limit=3${before ? `&before=${before}` : ''}`);
      const conn = dataOf(await gql(app, q, { ref: refs[0], after })).community.posts;
      expect(conn.edges.map((e: Json) => e.node)).toEqual(rest.json.posts);
      expect(conn.pageInfo.hasNextPage).toBe(rest.json.next !== null);
      expect(conn.pageInfo.hasPreviousPage).toBe(page > 0);
      if (rest.json.next) expect(conn.pageInfo.endCursor).toBe(rest.json.next);
      seen.push(...conn.edges.map((e: Json) => e.node.id));
      after = conn.pageInfo.endCursor;
      before = rest.json.next ?? '';
    }
    expect(seen).toHaveLength(7);
    expect(new Set(seen).size).toBe(7);
  });

  it('communities(first, after) pages like GET /api/communities', async () => {
    const q = `query ($after: String) { communities(first: 3, after: $after) { edges { cursor node { ref status { state } } } pageInfo { hasNextPage endCursor } } }`;
    const first = dataOf(await gql(app, q)).communities;
    const rest1 = await call(app, 'GET', '/api/communities?limit=3');
    expect(first.edges.map((e: Json) => e.node.ref)).toEqual(rest1.json.communities.map((c: Json) => c.ref));
    expect(first.pageInfo).toEqual({ hasNextPage: true, endCursor: rest1.json.next });
    const second = dataOf(await gql(app, q, { after: first.pageInfo.endCursor })).communities;
    const rest2 = await call(app, 'GET', `/api/communities?limit=3&before=${rest1.json.next}`);
    expect(second.edges.map((e: Json) => e.node.ref)).toEqual(rest2.json.communities.map((c: Json) => c.ref));
    expect(second.pageInfo.hasNextPage).toBe(false);
    expect([...first.edges, ...second.edges].map((e: Json) => e.node.ref).sort()).toEqual([...refs].sort());
  });

  it('posts(first, after) pages across shards like GET /api/posts', async () => {
    const q = `query ($after: String) { posts(first: 10, after: $after) { edges { node { id communityRef title } } pageInfo { hasNextPage endCursor } partial missingNodes } }`;
    let after: string | undefined;
    let before = '';
    const all: string[] = [];
    for (;;) {
      const conn = dataOf(await gql(app, q, { after })).posts;
      const rest = await call(app, 'GET', `/api/posts?limit=10${before ? `&before=${before}` : ''}`);
      expect(conn.edges.map((e: Json) => e.node.id)).toEqual(rest.json.posts.map((p: Json) => p.id));
      expect(conn.partial).toBe(false);
      expect(conn.missingNodes).toEqual([]);
      all.push(...conn.edges.map((e: Json) => e.node.id));
      if (!conn.pageInfo.hasNextPage) break;
      expect(conn.pageInfo.endCursor).toBe(rest.json.next);
      after = conn.pageInfo.endCursor;
      before = rest.json.next;
    }
    expect(all).toHaveLength(28);
    expect(new Set(all).size).toBe(28);
    // Communities of both shard nodes are in it.
    const nodes = new Set(await Promise.all(refs.map(async (ref) => (await stack.storage.router.shardMap()).get(logicalShardOf(ref)))));
    expect(nodes.size).toBe(2);
  });

  it('user(name) { feed follows counts } answers what the users API answers', async () => {
    const created = await call(app, 'POST', '/api/users', { name: 'gqlreader' });
    expect(created.status).toBe(201);
    const key = created.json.apiKey as string;
    await call(app, 'POST', '/api/users', { name: 'gqlfriend' });
    for (const path of [`communities/${refs[0]}`, `communities/${refs[3]}`, 'users/gqlfriend']) {
      const res = await app.request(`/api/users/gqlreader/follows/${path}`, { method: 'PUT', headers: { authorization: `Bearer ${key}` } });
      expect(res.status).toBe(204);
    }
    const d = dataOf(
      await gql(
        app,
        `{ user(name: "gqlreader") { name createdAt counts { communities users followers }
            follows { communities { ref } users { name } }
            feed(first: 5) { edges { node { id communityRef } } pageInfo { hasNextPage endCursor } } } }`,
      ),
    ).user;
    const restFeed = await call(app, 'GET', '/api/users/gqlreader/feed?limit=5');
    const restFollows = await call(app, 'GET', '/api/users/gqlreader/follows');
    expect(d.name).toBe('gqlreader');
    expect(d.counts).toEqual({ communities: 2, users: 1, followers: 0 });
    expect(d.follows.communities.map((c: Json) => c.ref).sort()).toEqual(restFollows.json.communities.map((c: Json) => c.ref).sort());
    expect(d.follows.users).toEqual([{ name: 'gqlfriend' }]);
    expect(d.feed.edges.map((e: Json) => e.node.id)).toEqual(restFeed.json.posts.map((p: Json) => p.id));
    expect(d.feed.pageInfo.endCursor).toBe(restFeed.json.next);
    const page2 = dataOf(
      await gql(
        app,
        `{ user(name: "gqlreader") { feed(first: 5, after: "${d.feed.pageInfo.endCursor}") { edges { node { id communityRef } } } } }`,
      ),
    );
    const restPage2 = await call(app, 'GET', `/api/users/gqlreader/feed?limit=5&before=${restFeed.json.next}`);
    expect(page2.user.feed.edges.map((e: Json) => e.node.id)).toEqual(restPage2.json.posts.map((p: Json) => p.id));
    // Posts of both followed communities (on both shard nodes), none of the others.
    const feedRefs = new Set([...d.feed.edges, ...page2.user.feed.edges].map((e: Json) => e.node.communityRef));
    expect(feedRefs).toEqual(new Set([refs[0], refs[3]]));
    expect(dataOf(await gql(app, '{ user(name: "nobody") { name } }')).user).toBeNull();
  });

  it('refresh, setRefreshInterval, setRefreshPolicy and remove do what the REST writes do', async () => {
    const ref = refs[2];
    const synced = dataOf(await gql(app, `{ community(ref: "${ref}") { status { syncs } } }`)).community.status.syncs as number;
    expect(dataOf(await gql(app, `mutation { refresh(ref: "${ref}") { ref refreshRequested } }`)).refresh).toEqual({
      ref,
      refreshRequested: true,
    });
    await eventually(async () => (await call(app, 'GET', `/api/communities/${ref}`)).json.status.syncs > synced);

    const fixed = dataOf(await gql(app, `mutation { setRefreshInterval(ref: "${ref}", seconds: 900) { refreshSeconds refreshPolicy } }`));
    expect(fixed.setRefreshInterval).toEqual({ refreshSeconds: 900, refreshPolicy: 'fixed' });
    expect((await call(app, 'GET', `/api/communities/${ref}`)).json).toMatchObject({ refreshSeconds: 900, refreshPolicy: 'fixed' });

    const adaptive = dataOf(
      await gql(
        app,
        `mutation { setRefreshPolicy(ref: "${ref}", input: {refreshPolicy: adaptive, minRefreshSeconds: 120, maxRefreshSeconds: 2400}) {
          refreshPolicy minRefreshSeconds maxRefreshSeconds } }`,
      ),
    );
    expect(adaptive.setRefreshPolicy).toEqual({ refreshPolicy: 'adaptive', minRefreshSeconds: 120, maxRefreshSeconds: 2400 });

    expect(dataOf(await gql(app, `mutation { remove(ref: "${ref}") { ref removed } }`)).remove).toEqual({ ref, removed: true });
    expect((await call(app, 'GET', `/api/communities/${ref}`)).status).toBe(404);
    expect(dataOf(await gql(app, `{ community(ref: "${ref}") { ref } }`)).community).toBeNull();
    expect(errorOf(await gql(app, `mutation { remove(ref: "${ref}") { ref } }`))).toMatchObject({
      code: 'community_not_found',
      status: 404,
    });
    refs.splice(2, 1);
  });
});

describe('GraphQL auth, limits and bad input', () => {
  it('with API_TOKEN set, mutations need the bearer token (401 unauthorized), queries do not', async () => {
    const mutation = `mutation { refresh(ref: "${refs[0]}") { refreshRequested } }`;
    for (const opts of [{}, { token: 'wrongtoken123' }, { authorization: 'Basic abc' }]) {
      const r = await gql(tokenApp, mutation, undefined, opts);
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
      if (r.json.error) {
        // A key no one holds is refused in front of /graphql already (the rate limiter looks keys up).
        expect(r.json.error.code).toBe('unauthorized');
        continue;
      }
      expect(errorOf(r)).toMatchObject({ code: 'unauthorized', status: 401 });
      expect(r.json.data).toBeNull();
    }
    expect(dataOf(await gql(tokenApp, mutation, undefined, { token: TOKEN })).refresh).toEqual({ refreshRequested: true });
    expect(dataOf(await gql(tokenApp, `{ community(ref: "${refs[0]}") { ref } }`)).community.ref).toBe(refs[0]);
    // Nothing was added without the token.
    const before = (await listCommunities(stack.storage.catalog)).length;
    const r = await gql(tokenApp, `mutation { track(input: {instance: "${fake.url}", name: "topic9"}) { created } }`);
    expect(r.status).toBe(401);
    expect(errorOf(r).code).toBe('unauthorized');
    expect((await listCommunities(stack.storage.catalog)).length).toBe(before);
  });

  it('refuses queries deeper than GRAPHQL_MAX_DEPTH (8) or costlier than GRAPHQL_MAX_COST (5000) before they run', async () => {
    // user > follows > communities > posts > edges > node > title: 7 levels, allowed.
    const seven = await gql(app, `{ user(name: "gqlreader") { follows { communities { posts { edges { node { title } } } } } } }`);
    expect(seven.json.errors).toBeUndefined();
    expect(seven.json.data.user.follows.communities.length).toBe(2);
    // 9 levels: refused.
    const nine = await gql(
      app,
      `{ user(name: "gqlreader") { follows { users { follows { communities { posts { edges { node { title } } } } } } } } }`,
    );
    expect(errorOf(nine)).toMatchObject({ code: 'query_too_deep' });
    expect(nine.json.data).toBeUndefined();
    const costly = await gql(
      app,
      `{ communities(first: 100) { edges { node { ref posts(first: 100) { edges { node { title body url } } } } } } }`,
    );
    expect(errorOf(costly)).toMatchObject({ code: 'query_too_complex' });
    expect(costly.json.errors[0].message).toMatch(/Cost limit of 5000 exceeded/);
    expect(costly.json.data).toBeUndefined();
    // Introspection is exempt from both (GraphiQL's introspection query is deeper than 8).
    const intro = await gql(
      app,
      `{ __schema { types { name fields { name type { name ofType { name ofType { name ofType { name ofType { name } } } } } } } } }`,
    );
    expect(intro.json.errors).toBeUndefined();
    expect(intro.json.data.__schema.types.map((t: Json) => t.name)).toEqual(
      expect.arrayContaining(['Community', 'Post', 'PostConnection', 'PageInfo']),
    );
  });

  it('answers bad input with GraphQL errors carrying the REST codes, never a 500', async () => {
    const cases: [string, Record<string, unknown> | undefined, Partial<ReturnType<typeof errorOf>>][] = [
      ['{ communities(first: 0) { edges { cursor } } }', undefined, { code: 'invalid_limit', status: 400 }],
      ['{ posts(first: 101) { edges { cursor } } }', undefined, { code: 'invalid_limit', status: 400 }],
      ['{ posts(after: "garbage") { edges { cursor } } }', undefined, { code: 'invalid_cursor', status: 400 }],
      ['{ communities(after: "not-a-cursor") { edges { cursor } } }', undefined, { code: 'invalid_cursor', status: 400 }],
      ['{ community(ref: "no such thing!") { ref } }', undefined, { code: 'invalid_ref', status: 400 }],
      ['{ user(name: "Not A Name") { name } }', undefined, { code: 'invalid_input', status: 400 }],
      ['mutation { track(input: {}) { created } }', undefined, { code: 'invalid_input', status: 400 }],
      ['mutation ($i: TrackInput!) { track(input: $i) { created } }', { i: { url: 'ftp://x/y' } }, { code: 'invalid_input', field: 'url' }],
      [
        'mutation ($i: TrackInput!) { track(input: $i) { created } }',
        { i: { community: `topic1@${fake.hostPort}`, refreshSeconds: 0 } },
        { code: 'invalid_input', field: 'refreshSeconds' },
      ],
      [`mutation { setRefreshInterval(ref: "${refs[0]}", seconds: 86401) { ref } }`, undefined, { code: 'invalid_input', status: 400 }],
      [
        `mutation { track(input: {instance: "${fake.url}", name: "absent"}) { created } }`,
        undefined,
        { code: 'community_not_found', status: 422 },
      ],
      ['{ posts(first: 5000000000) { edges { cursor } } }', undefined, {}],
      ['{ nope }', undefined, {}],
      ['{ communities { ', undefined, {}],
    ];
    for (const [query, variables, expected] of cases) {
      const r = await gql(app, query, variables);
      const e = errorOf(r);
      expect(e, query).toMatchObject(expected);
      expect(e.message.length, query).toBeGreaterThan(5);
    }
    // Not JSON: 415 (a form post is what another site could send); GET cannot mutate; broken JSON is a 400.
    const form = await app.request('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'query={__typename}',
    });
    expect(form.status).toBe(415);
    expect((await form.json()).error.code).toBe('unsupported_media_type');
    const getMutation = await app.request(`/graphql?query=${encodeURIComponent('mutation { remove(ref: "x@y") { ref } }')}`);
    expect(getMutation.status).toBe(405);
    const broken = await app.request('/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":' });
    expect(broken.status).toBe(400);
    // A GET query works.
    const get = await app.request(`/graphql?query=${encodeURIComponent(`{ community(ref: "${refs[0]}") { ref } }`)}`, {
      headers: { accept: 'application/json' },
    });
    expect(get.status).toBe(200);
    expect((await get.json()).data.community.ref).toBe(refs[0]);
  });
});

describe('GraphQL error masking', () => {
  it('shows ApiErrors with their code, masks anything else as internal_error and logs it', () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }));
    const mask = maskError(log);
    const unexpected = mask(
      createGraphQLError('boom', { originalError: new TypeError('secret detail: x is undefined'), path: ['community'] }),
      'Unexpected error.',
    );
    expect(unexpected.message).toBe('Unexpected error.');
    expect(JSON.stringify(unexpected)).not.toContain('secret');
    expect((unexpected as GraphQLError).extensions).toMatchObject({ code: 'internal_error', status: 500 });
    expect(lines.join('')).toContain('secret detail: x is undefined');
    const known = mask(
      createGraphQLError('x', { originalError: new ApiError(404, 'community_not_found', 'No such community is tracked') }),
      'Unexpected error.',
    );
    expect(known.message).toBe('No such community is tracked');
    expect((known as GraphQLError).extensions).toMatchObject({ code: 'community_not_found', status: 404 });
    // What the REST API maps (a shard node that does not answer) is mapped here too, not masked.
    const shard = mask(
      createGraphQLError('x', { originalError: new ShardUnavailableError('shard-2', new Error('ECONNREFUSED')) }),
      'Unexpected error.',
    );
    expect((shard as GraphQLError).extensions).toMatchObject({ code: 'shard_unavailable', status: 503 });
  });
});

describe('GraphQL batching', () => {
  let batchStack: Stack;
  let batchApp: App;
  const PER = 6;

  beforeAll(async () => {
    batchStack = await createStack({ worker: false });
    const { catalog, router } = batchStack.storage;
    const base = Date.now() - 100 * 86400_000;
    for (let i = 0; i < 50; i++) {
      const ref = `batch${i}@lemmy.example`;
      const { row } = await insertCommunity(catalog, {
        ref,
        instance: 'https://lemmy.example',
        host: 'lemmy.example',
        name: `batch${i}`,
        refreshSeconds: 300,
        shard: logicalShardOf(ref),
      });
      const posts: PostInput[] = Array.from({ length: PER }, (_, k) => ({
        lemmyId: i * 100 + k + 1,
        apId: `https://lemmy.example/post/${i * 100 + k + 1}`,
        title: `Post ${k} of batch${i}`,
        url: null,
        body: null,
        author: 'someone',
        thumbnail: null,
        // Same timestamps in pairs: the order falls back to lemmyId.
        published: new Date(base + Math.floor(k / 2) * 60_000 + i * 1000).toISOString(),
        updated: null,
        score: k,
        upvotes: k,
        downvotes: 0,
        comments: 0,
        nsfw: false,
        featured: false,
      }));
      await router.write(row.shard, (sql) => upsertPosts(sql, row.shard, row.id, posts));
    }
    batchApp = createApp({
      config: batchStack.config,
      catalog,
      router,
      temporal: batchStack.client,
      log: createLogger({ level: 'silent' }),
    });
  });

  afterAll(async () => {
    await batchStack?.stop();
  });

  it('50 communities with 5 posts each: 2 catalog statements + 1 per shard node (4 in all, not 52)', async () => {
    const query = `{ communities(first: 50) { edges { node { ref posts(first: 5) { edges { cursor node { id title published } } pageInfo { hasNextPage endCursor } } } } } }`;
    dataOf(await gql(batchApp, query)); // warm: connections opened, types fetched
    const databases = {
      catalog: new URL(batchStack.env.CATALOG_DATABASE_URL).pathname.slice(1),
      shards: batchStack.env.POST_SHARD_URLS.split(',').map((u) => new URL(u).pathname.slice(1)),
    };
    statements.clear();
    counting = true;
    let d: Json;
    try {
      d = dataOf(await gql(batchApp, query));
    } finally {
      counting = false;
    }
    const catalogCount = statements.get(databases.catalog)?.length ?? 0;
    const shardCounts = databases.shards.map((db) => statements.get(db)?.length ?? 0);
    const total = [...statements.values()].reduce((n, list) => n + list.length, 0);
    // The communities page and the shard map; one LATERAL statement per node for all 50 communities' posts.
    expect({ catalog: catalogCount, shards: shardCounts, total }).toEqual({ catalog: 2, shards: [1, 1], total: 4 });
    expect(statements.get(databases.shards[0])![0]).toMatch(/cross join lateral/);

    // And the pages are exactly the REST API's first pages.
    const edges = d.communities.edges as Json[];
    expect(edges).toHaveLength(50);
    for (const e of edges) {
      expect(e.node.posts.edges).toHaveLength(5);
      expect(e.node.posts.pageInfo.hasNextPage).toBe(true);
    }
    for (const e of [edges[0], edges[17], edges[49]]) {
      const rest = await call(batchApp, 'GET', `/api/communities/${e.node.ref}/posts?limit=5`);
      expect(e.node.posts.edges.map((p: Json) => p.node.id)).toEqual(rest.json.posts.map((p: Json) => p.id));
      expect(e.node.posts.pageInfo.endCursor).toBe(rest.json.next);
      const rest2 = await call(batchApp, 'GET', `/api/communities/${e.node.ref}/posts?limit=5&before=${rest.json.next}`);
      const page2 = dataOf(
        await gql(
          batchApp,
          `{ community(ref: "${e.node.ref}") { posts(first: 5, after: "${rest.json.next}") { edges { node { id } } pageInfo { hasNextPage } } } }`,
        ),
      );
      expect(page2.community.posts.edges.map((p: Json) => p.node.id)).toEqual(rest2.json.posts.map((p: Json) => p.id));
      expect(page2.community.posts.pageInfo.hasNextPage).toBe(false);
    }
  });

  it('a shard node that does not answer costs only its communities their posts (shard_unavailable), not the list', async () => {
    const { catalog, router } = batchStack.storage;
    const map = await router.shardMap();
    const [nodeA] = router.nodeNames();
    const moved = [...map].filter(([, node]) => node === nodeA).map(([shard]) => shard);
    await catalog`insert into shard_nodes (name, url) values ('shard-dead', 'postgres://nobody:x@127.0.0.1:1/none')`;
    await catalog`update shard_map set node = 'shard-dead' where shard = any(${moved}::int[])`;
    await router.refreshNodes();
    try {
      const r = await gql(
        batchApp,
        `{ communities(first: 50) { edges { node { ref shard posts(first: 5) { edges { node { id } } } } } } }`,
      );
      expect(r.status).toBe(200);
      const edges = r.json.data.communities.edges as Json[];
      expect(edges).toHaveLength(50);
      const down = edges.filter((e) => moved.includes(e.node.shard));
      const up = edges.filter((e) => !moved.includes(e.node.shard));
      expect(down.length).toBeGreaterThan(0);
      expect(up.length).toBeGreaterThan(0);
      for (const e of down) expect(e.node.posts).toBeNull();
      for (const e of up) expect(e.node.posts.edges).toHaveLength(5);
      expect(r.json.errors).toHaveLength(down.length);
      for (const err of r.json.errors) {
        expect(err.extensions).toMatchObject({ code: 'shard_unavailable', status: 503 });
        expect(err.message).toContain('shard-dead');
      }
    } finally {
      await catalog`update shard_map set node = ${nodeA} where shard = any(${moved}::int[])`;
    }
  });
});

const haveChromium = haveChromiumFor('graphql.test.ts');

describe.skipIf(!haveChromium)('GraphiQL in a real browser', () => {
  let browser: Browser;
  let server: { close(): Promise<void>; port: number };
  /** /graphql alone (no site-wide headers in front): the page's own Content-Security-Policy applies. */
  let bare: ServerType;
  let barePort: number;

  beforeAll(async () => {
    browser = await launchChromium();
    server = await startApiServer({ ...deps, config: { ...stack.config, PORT: 0, HOST: '127.0.0.1' } });
    const only = new Hono().route(
      '/graphql',
      graphqlRoutes({ ...deps, sources: createSourceClients(stack.config, stack.storage.catalog) }),
    );
    barePort = await new Promise<number>((resolve) => {
      bare = serve({ fetch: only.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) => resolve(info.port));
    });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await new Promise((r) => (bare ? bare.close(r) : r(undefined)));
  });

  /** Opens GraphiQL at `base`, runs its default query, and reports what the browser saw. */
  async function runGraphiql(base: string, shot: string) {
    const res = await fetch(`${base}/graphql`, { headers: { accept: 'text/html' } });
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(html).toContain('<div id="root"');
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(html).not.toMatch(/<script>/); // no inline script: it runs under script-src 'self'
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const requests: string[] = [];
    const failed: string[] = [];
    const pageErrors: string[] = [];
    const csp: string[] = [];
    page.on('request', (r: PwRequest) => requests.push(r.url()));
    page.on('requestfailed', (r: PwRequest) => failed.push(`${r.url()} ${r.failure()?.errorText}`));
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy/.test(m.text())) csp.push(m.text());
    });
    try {
      await page.goto(`${base}/graphql`);
      await page.locator('.graphiql-container').first().waitFor({ timeout: 30_000 });
      const answer = page.waitForResponse((r) => r.url() === `${base}/graphql` && (r.request().postData() ?? '').includes('query Newest'));
      await page.locator('.graphiql-execute-button').first().click();
      const body = await (await answer).json();
      // What the browser got is the list the REST API gives; the first of it is on screen.
      const listed = (await call(app, 'GET', '/api/communities?limit=10')).json.communities.map((c: Json) => c.ref);
      expect(body.data.communities.edges.map((e: Json) => e.node.ref)).toEqual(listed);
      const onScreen = listed[0] ?? '"communities"';
      await eventually(async () => (await page.locator('.graphiql-response').first().innerText()).includes(onScreen), 30_000);
      await page.screenshot({ path: `test-artifacts/${shot}` });
      const offsite = requests.filter((u) => !u.startsWith(`${base}/`) && !u.startsWith('data:') && !u.startsWith('blob:'));
      return { policy: res.headers.get('content-security-policy') ?? '', requests, offsite, failed, pageErrors, csp };
    } finally {
      await page.close();
    }
  }

  it('renders GraphiQL from this site only under its own policy (no inline script), runs a query, no request leaves', async () => {
    const base = `http://127.0.0.1:${barePort}`;
    const seen = await runGraphiql(base, 'graphiql.png');
    expect(seen.policy).toBe(GRAPHIQL_CSP);
    expect(seen.policy).toContain("script-src 'self';");
    expect(seen.pageErrors).toEqual([]);
    expect(seen.failed).toEqual([]);
    expect(seen.csp).toEqual([]);
    expect(seen.offsite).toEqual([]);
    expect(seen.requests).toContain(`${base}/graphql`);
    expect(seen.requests.filter((u) => u.includes('.worker.js')).length).toBeGreaterThan(0);
  });

  it('inside the whole app, GraphiQL runs queries with no request leaving the site and no script refused', async () => {
    const base = `http://127.0.0.1:${server.port}`;
    const seen = await runGraphiql(base, 'graphiql-app.png');
    expect(seen.pageErrors).toEqual([]);
    expect(seen.failed).toEqual([]);
    expect(seen.offsite).toEqual([]);
    expect(seen.requests).toContain(`${base}/graphql`);
    // The app gives /graphql the docs' policy: inline styles for the editor, scripts and workers from 'self' only.
    expect(seen.policy).toContain("script-src 'self';");
    expect(seen.policy).toContain("'unsafe-inline'");
    expect(seen.csp).toEqual([]);
  });
});
