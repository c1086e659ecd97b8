// Distribution of communities over logical shards and nodes, cross-shard pagination, and the
// /api/shards routes, on three real post-shard nodes; concurrent page reads batched per node.
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createApp } from '../api/app.js';
import type { ApiDeps } from '../api/server.js';
import { insertCommunity, type CommunityRow } from '../src/db/communities.js';
import fc from 'fast-check';
import { communityPosts, newestPosts, upsertPosts, decodeCursor, type PostCursor, type PostInput } from '../src/db/posts.js';
import { observeStatements } from '../src/db/pool.js';
import { LOGICAL_SHARDS, logicalShardOf } from '../src/db/sharding/router.js';
import { createLogger } from '../src/log.js';
import { createDatabase, createStack, type Stack } from './support/stack.js';
import { inject } from 'vitest';

const COMMUNITIES = 200;

const POSTS_EACH = 6;
const BASE = Date.parse('2026-01-01T00:00:00Z');

/** Shard-node statements, while `counting` is on (the hook sees every pool opened from here on). */
let counting = false;
const statements: string[] = [];
observeStatements((pool, query) => {
  if (counting && pool !== 'catalog') statements.push(query);
});

function post(lemmyId: number, publishedMs: number): PostInput {
  return {
    lemmyId,
    apId: `https://x.test/post/${lemmyId}`,
    title: `p${lemmyId}`,
    url: null,
    body: null,
    author: 'a',
    thumbnail: null,
    published: new Date(publishedMs)
      .toISOString()
      .replace('Z', '123Z')
      .replace(/\.(\d{3})123Z$/, '.$1123Z'),
    updated: null,
    score: 1,
    upvotes: 1,
    downvotes: 0,
    comments: 0,
    nsfw: false,
    featured: false,
  };
}

describe('sharding: distribution and cross-shard reads', () => {
  let stack: Stack;
  const rows: CommunityRow[] = [];

  beforeAll(async () => {
    stack = await createStack({ shards: 3, worker: false, env: { API_TOKEN: 'secret-token-123' } });
    const { catalog, router } = stack.storage;
    for (let i = 0; i < COMMUNITIES; i++) {
      const ref = `community_${i}@example.test`;
      const { row } = await insertCommunity(catalog, {
        ref,
        instance: 'https://example.test',
        host: 'example.test',
        name: `community_${i}`,
        refreshSeconds: 300,
        shard: logicalShardOf(ref),
      });
      rows.push(row);
    }
    // Posts: many share a published time across communities (and so across nodes) to exercise ties.
    await Promise.all(
      rows.map((row, i) =>
        router.write(row.shard, (sql) =>
          upsertPosts(
            sql,
            row.shard,
            row.id,
            Array.from({ length: POSTS_EACH }, (_, k) => post(i * 100 + k, BASE + ((i * 7 + k * 13) % 97) * 1000)),
          ),
        ),
      ),
    );
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('places each community on the node the map gives its logical shard, and only there', async () => {
    const { router, catalog } = stack.storage;
    const map = await router.shardMap();
    expect(map.size).toBe(LOGICAL_SHARDS);
    expect(new Set(map.values())).toEqual(new Set(router.nodeNames()));
    const used = new Set(rows.map((r) => r.shard));
    expect(used.size).toBeGreaterThan(50); // 200 refs spread over most of the 64 shards
    const [{ n }] = await catalog<{ n: number }[]>`select count(distinct shard)::int as n from communities`;
    expect(n).toBe(used.size);
    const seenOn = new Map<number, string[]>();
    for (const node of router.nodeNames()) {
      const onNode = await router.pool(node)<{ community_id: number; shard: number; n: number }[]>`
        select community_id, shard, count(*)::int as n from posts group by community_id, shard`;
      expect(onNode.length).toBeGreaterThan(20); // every node holds a fair part
      for (const r of onNode) {
        expect(map.get(r.shard)).toBe(node);
        expect(r.n).toBe(POSTS_EACH);
        seenOn.set(r.community_id, [...(seenOn.get(r.community_id) ?? []), node]);
      }
    }
    for (const row of rows) {
      expect(seenOn.get(row.id)).toEqual([map.get(row.shard)]);
      expect(row.shard).toBe(logicalShardOf(row.ref));
    }
  });

  it('pages through every post exactly once, newest first, across nodes', async () => {
    const { router } = stack.storage;
    const seen: string[] = [];
    let cursor: string | null = null;
    let last: [string, number, number] | undefined;
    let pages = 0;
    do {
      const page = await newestPosts(router, 37, cursor ? decodeCursor(cursor) : undefined);
      expect(page.partial).toBe(false);
      for (const p of page.posts) {
        const key: [string, number, number] = [p.published_iso, p.community_id, p.lemmy_id];
        if (last) {
          const newerOrEqual = last[0] > key[0] || (last[0] === key[0] && (last[1] > key[1] || (last[1] === key[1] && last[2] > key[2])));
          expect(newerOrEqual).toBe(true);
        }
        last = key;
        seen.push(`${p.community_id}:${p.lemmy_id}`);
      }
      cursor = page.next;
      pages += 1;
    } while (cursor && pages < 1000);
    expect(seen.length).toBe(COMMUNITIES * POSTS_EACH);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('reads concurrent pages of many communities as one statement per node, each exactly the page it is alone', async () => {
    const { router } = stack.storage;
    const nodes = (await router.placements()).length;
    // As the API routes (its catalog LISTEN vouches for the copy): no catalog read per page first.
    router.cacheShardMap(true);
    onTestFinished(() => router.cacheShardMap(false));
    // Every post's cursor, from each community read whole, one page at a time (alone, so unbatched).
    const cursors = new Map<number, PostCursor[]>();
    for (const row of rows.slice(0, 40)) {
      const list: PostCursor[] = [];
      for (let k = 1; k < POSTS_EACH; k++) list.push(decodeCursor((await communityPosts(router, row.shard, row.id, k)).next!)!);
      cursors.set(row.id, list);
    }
    const request = fc.record({
      community: fc.integer({ min: 0, max: 39 }),
      limit: fc.integer({ min: 1, max: 8 }),
      cursor: fc.option(fc.integer({ min: 0, max: POSTS_EACH - 2 }), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 2, maxLength: 30 }), async (requests) => {
        const args = requests.map((r) => {
          const row = rows[r.community];
          return [row.shard, row.id, r.limit, r.cursor === undefined ? undefined : cursors.get(row.id)![r.cursor]] as const;
        });
        const alone = [];
        for (const a of args) alone.push(await communityPosts(router, ...a));
        statements.length = 0;
        counting = true;
        let together;
        try {
          together = await Promise.all(args.map((a) => communityPosts(router, ...a)));
        } finally {
          counting = false;
        }
        expect(together).toEqual(alone);
        expect(statements.length).toBeLessThanOrEqual(nodes);
      }),
      { numRuns: 25 },
    );
  });

  it('serves /api/shards: status, node registration behind the token, rebalance', async () => {
    const { router, catalog } = stack.storage;
    const log = createLogger({ level: 'silent' });
    // Through the whole app: the API token is checked for all of /api there (app.ts), not by the shard routes.
    const full = createApp({ config: stack.config, catalog, router, temporal: stack.client, log } as ApiDeps);
    const app = { request: (path: string, init?: RequestInit) => full.request(`/api/shards${path === '/' ? '' : path}`, init) };
    const status = await app.request('/');
    expect(status.status).toBe(200);
    const body = (await status.json()) as {
      logicalShards: number;
      nodes: Array<{ node: string; posts: number; shards: number[]; communities: number; url: string }>;
    };
    expect(body.logicalShards).toBe(64);
    expect(body.nodes.reduce((s, n) => s + n.posts, 0)).toBe(COMMUNITIES * POSTS_EACH);
    expect(body.nodes.reduce((s, n) => s + n.communities, 0)).toBe(COMMUNITIES);
    // No password is shown: the catalog keeps none, and anything else would be redacted.
    expect(body.nodes.every((n) => new URL(n.url).password === '' || new URL(n.url).password === '***')).toBe(true);

    const noAuth = await app.request('/nodes', {
      method: 'POST',
      body: JSON.stringify({ name: 'x', url: 'postgres://x' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(noAuth.status).toBe(401);
    expect(((await noAuth.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    const auth = { authorization: 'Bearer secret-token-123', 'content-type': 'application/json' };
    const bad = await app.request('/nodes', {
      method: 'POST',
      body: JSON.stringify({ name: 'Bad Name!', url: 'postgres://x' }),
      headers: auth,
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'invalid_name' });
    const badUrl = await app.request('/nodes', { method: 'POST', body: JSON.stringify({ name: 'n4', url: 'mysql://x' }), headers: auth });
    expect(badUrl.status).toBe(400);
    const notJson = await app.request('/nodes', { method: 'POST', body: '{', headers: auth });
    expect(notJson.status).toBe(400);

    const url = await createDatabase(inject('pgUrls')[0], `t${stack.id}_extra`);
    const added = await app.request('/nodes', { method: 'POST', body: JSON.stringify({ name: 'extra', url }), headers: auth });
    expect(added.status).toBe(201);
    expect(await added.json()).toMatchObject({ node: 'extra', up: true, shards: [], posts: 0 });
    expect(router.nodeNames()).toContain('extra');
    const clash = await app.request('/nodes', {
      method: 'POST',
      body: JSON.stringify({ name: 'extra', url: `${url}?x=1` }),
      headers: auth,
    });
    expect(clash.status).toBe(409);
    expect(((await clash.json()) as { error: { code: string } }).error.code).toBe('node_exists');
    const [{ n }] = await router.pool('extra')<{ n: number }[]>`select count(*)::int as n from posts`;
    expect(n).toBe(0);

    const rebalance = await app.request('/rebalance', { method: 'POST', headers: auth });
    expect(rebalance.status).toBe(202);
    expect(await rebalance.json()).toMatchObject({ workflowId: 'rebalance-shards' });
    // No worker runs in this file: end the queued workflow so it does not linger on the server.
    await stack.client.workflow.getHandle('rebalance-shards').terminate('test cleanup');
  });
});
