// Post queries on the shard nodes. All access goes through the ShardRouter.
import { createHash } from 'node:crypto';
import DataLoader from 'dataloader';
import type { Sql } from './pool.js';
import { isConnectionError, type ShardRouter } from './sharding/router.js';

export interface PostInput {
  lemmyId: number;
  apId: string;
  title: string;
  url: string | null;
  body: string | null;
  author: string | null;
  thumbnail: string | null;
  published: string; // ISO timestamp
  updated: string | null;
  score: number;
  upvotes: number;
  downvotes: number;
  comments: number;
  nsfw: boolean;
  featured: boolean;
}

export interface PostRow {
  community_id: number;
  lemmy_id: number;
  shard: number;
  ap_id: string;
  title: string;
  url: string | null;
  body: string | null;
  author: string | null;
  thumbnail: string | null;
  /** Not read by pages (they read published_iso). */
  published?: Date;
  updated: Date | null;
  score: number;
  upvotes: number;
  downvotes: number;
  comments: number;
  nsfw: boolean;
  featured: boolean;
  fetched_at: Date;
  /** Exact published timestamp (microseconds) for cursors. */
  published_iso: string;
}

/** A hash of everything stored of a post: equal hashes, nothing to write. */
export function contentHashOf(p: PostInput): string {
  const fields = [
    p.apId,
    p.title,
    p.url,
    p.body,
    p.author,
    p.thumbnail,
    p.published,
    p.updated,
    p.score,
    p.upvotes,
    p.downvotes,
    p.comments,
    p.nsfw,
    p.featured,
  ];
  return createHash('sha256').update(JSON.stringify(fields)).digest('base64url').slice(0, 22);
}

/** The stored content hash of these posts (null for posts stored before hashes were kept). */
export async function storedHashes(sql: Sql, communityId: number, lemmyIds: number[]): Promise<Map<number, string | null>> {
  if (lemmyIds.length === 0) return new Map();
  const rows = await sql<{ lemmy_id: string | number; content_hash: string | null }[]>`
    select lemmy_id, content_hash from posts where community_id = ${communityId} and lemmy_id = any(${lemmyIds}::bigint[])`;
  return new Map(rows.map((r) => [Number(r.lemmy_id), r.content_hash]));
}

/**
 * Inserts new posts and updates re-fetched ones in one statement; rows whose content did not
 * change are not rewritten. Returns how many were inserted and updated.
 */
export async function upsertPosts(
  sql: Sql,
  shard: number,
  communityId: number,
  posts: PostInput[],
): Promise<{ inserted: number; updated: number }> {
  if (posts.length === 0) return { inserted: 0, updated: 0 };
  const rows = posts.map((p) => ({
    community_id: communityId,
    lemmy_id: p.lemmyId,
    shard,
    ap_id: p.apId,
    title: p.title,
    url: p.url,
    body: p.body,
    author: p.author,
    thumbnail: p.thumbnail,
    published: p.published,
    updated: p.updated,
    score: p.score,
    upvotes: p.upvotes,
    downvotes: p.downvotes,
    comments: p.comments,
    nsfw: p.nsfw,
    featured: p.featured,
    content_hash: contentHashOf(p),
  }));
  const result = await sql<{ inserted: boolean }[]>`
    insert into posts ${sql(rows)}
    on conflict (community_id, lemmy_id) do update set
      ap_id = excluded.ap_id, title = excluded.title, url = excluded.url, body = excluded.body,
      author = excluded.author, thumbnail = excluded.thumbnail, published = excluded.published,
      updated = excluded.updated, score = excluded.score, upvotes = excluded.upvotes,
      downvotes = excluded.downvotes, comments = excluded.comments, nsfw = excluded.nsfw,
      featured = excluded.featured, content_hash = excluded.content_hash, fetched_at = now()
    where posts.content_hash is distinct from excluded.content_hash
    returning (xmax = 0) as inserted`;
  const inserted = result.filter((r) => r.inserted).length;
  return { inserted, updated: result.length - inserted };
}

/** Which of these Lemmy post ids are already stored for the community. */
export async function storedLemmyIds(sql: Sql, communityId: number, lemmyIds: number[]): Promise<Set<number>> {
  if (lemmyIds.length === 0) return new Set();
  const rows = await sql<{ lemmy_id: number }[]>`
    select lemmy_id from posts where community_id = ${communityId} and lemmy_id = any(${lemmyIds}::bigint[])`;
  return new Set(rows.map((r) => r.lemmy_id));
}

/** Newest stored non-pinned post of a community, or undefined when none is stored yet. */
export async function newestStored(sql: Sql, communityId: number): Promise<{ lemmyId: number; published: string } | undefined> {
  const [row] = await sql<{ lemmy_id: number; published_iso: string }[]>`
    select lemmy_id, ${publishedIso(sql)} as published_iso from posts
    where community_id = ${communityId} and not featured
    order by published desc, lemmy_id desc limit 1`;
  return row ? { lemmyId: row.lemmy_id, published: row.published_iso } : undefined;
}

export async function countPosts(sql: Sql, communityId: number): Promise<number> {
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from posts where community_id = ${communityId}`;
  return row.n;
}

export async function deleteCommunityPosts(sql: Sql, communityId: number): Promise<number> {
  const rows = await sql`delete from posts where community_id = ${communityId}`;
  return rows.count;
}

function publishedIso(sql: Sql) {
  return sql`to_char(published at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

/**
 * What a page of posts reads: every column a post shows, `published` as its exact ISO text only
 * (no Date to parse) and not the content hash, which only syncs compare. Pages are the API's
 * hottest reads, and the driver's per-column parsing is most of their cost.
 */
function pageColumns(sql: Sql) {
  return sql`community_id, lemmy_id, shard, ap_id, title, url, body, author, thumbnail, updated, score, upvotes,
    downvotes, comments, nsfw, featured, fetched_at, ${publishedIso(sql)} as published_iso`;
}

/** Keyset position: newest first by (published, community_id, lemmy_id), all descending. */
export interface PostCursor {
  published: string; // ISO with microseconds
  communityId: number;
  lemmyId: number;
}

export function encodeCursor(c: PostCursor): string {
  return Buffer.from(`${c.published}|${c.communityId}|${c.lemmyId}`, 'utf8').toString('base64url');
}

/** Returns undefined for anything that is not a cursor this service produced. */
export function decodeCursor(s: string): PostCursor | undefined {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(s)) return undefined;
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)\|(\d{1,15})\|(\d{1,15})$/.exec(Buffer.from(s, 'base64url').toString('utf8'));
  if (!m || Number.isNaN(Date.parse(m[1]))) return undefined;
  return { published: m[1], communityId: Number(m[2]), lemmyId: Number(m[3]) };
}

const cursorOf = (r: PostRow): PostCursor => ({ published: r.published_iso, communityId: r.community_id, lemmyId: r.lemmy_id });

export interface PostPage {
  posts: PostRow[];
  next: string | null;
}

/** One community's posts, newest first. */
export async function communityPosts(
  router: ShardRouter,
  shard: number,
  communityId: number,
  limit: number,
  before?: PostCursor,
): Promise<PostPage> {
  return router.read(shard, async (sql) => {
    const rows = await pageReaderOf(sql).load({ communityId, limit, before });
    const more = rows.length > limit;
    const posts = rows.slice(0, limit);
    return { posts, next: more ? encodeCursor(cursorOf(posts[posts.length - 1])) : null };
  });
}

interface PageRequest {
  communityId: number;
  limit: number;
  before?: PostCursor;
}

/**
 * The page reads of one node, gathered across requests: every page asked for in the same turn of
 * the event loop (the requests one poll of the sockets brought) goes to the node as one statement,
 * not one each. Under load a node then parses, plans and answers one message for many pages, and
 * the driver writes and reads one; alone, a page waits one turn and is read as before.
 */
const pageReaders = new WeakMap<Sql, DataLoader<PageRequest, PostRow[]>>();

function pageReaderOf(sql: Sql): DataLoader<PageRequest, PostRow[]> {
  let reader = pageReaders.get(sql);
  if (!reader) {
    reader = new DataLoader((requests) => readPages(sql, requests), {
      cache: false, // pages change with every sync: each load is a read
      batchScheduleFn: (run) => setImmediate(run),
      maxBatchSize: 64,
    });
    pageReaders.set(sql, reader);
  }
  return reader;
}

/** Each request's rows (`limit + 1` at most, newest first), in the order asked. */
async function readPages(sql: Sql, requests: readonly PageRequest[]): Promise<PostRow[][]> {
  if (requests.length === 1) {
    const [{ communityId, limit, before }] = requests;
    return [
      await sql<PostRow[]>`
        select ${pageColumns(sql)} from posts
        where community_id = ${communityId}
          ${before ? sql`and (published, lemmy_id) < (${before.published}::timestamptz, ${before.lemmyId})` : sql``}
        order by published desc, lemmy_id desc
        limit ${limit + 1}`,
    ];
  }
  // One LATERAL walk of posts_community_newest per request; no cursor reads from the top.
  const rows = await sql<(PostRow & { request: number })[]>`
    select r.request, p.* from unnest(
      ${requests.map((r) => r.communityId)}::bigint[],
      ${requests.map((r) => r.before?.published ?? 'infinity')}::timestamptz[],
      ${requests.map((r) => r.before?.lemmyId ?? MAX_BIGINT)}::bigint[],
      ${requests.map((r) => r.limit + 1)}::int[]
    ) with ordinality as r(community_id, published, lemmy_id, take, request)
    cross join lateral (
      select ${pageColumns(sql)} from posts
      where posts.community_id = r.community_id and (posts.published, posts.lemmy_id) < (r.published, r.lemmy_id)
      order by posts.published desc, posts.lemmy_id desc
      limit r.take
    ) p
    order by r.request, p.published_iso desc, p.lemmy_id desc`;
  const pages = requests.map((): PostRow[] => []);
  for (const { request, ...row } of rows) pages[Number(request) - 1].push(row);
  return pages;
}

const MAX_BIGINT = '9223372036854775807';

export interface MergedPostPage extends PostPage {
  partial: boolean;
  missingNodes: string[];
}

/** Which posts of a node a merged read takes: those of its logical shards, or of some communities. */
export type NodeFilter = { shards: number[] } | { communityIds: number[] };

/**
 * Newest posts across nodes: each node returns its next `limit + 1` rows past the cursor (of the
 * logical shards the map gives it, so rows mid-move are not seen twice, or of the communities
 * asked for), all nodes at once, then the per-node lists (each sorted already) are merged and the
 * newest `limit` kept. Either filter walks the posts_newest index from the cursor and stops after
 * `limit + 1` matches: the work is bounded by nodes × limit. A node that does not answer is
 * reported, not fatal.
 */
export async function newestAcrossNodes(
  router: ShardRouter,
  filters: ReadonlyMap<string, NodeFilter>,
  limit: number,
  before?: PostCursor,
): Promise<MergedPostPage> {
  const missingNodes: string[] = [];
  const perNode = await Promise.all(
    [...filters].map(async ([node, filter]) => {
      try {
        const sql = router.pool(node);
        return await sql<PostRow[]>`
          select ${pageColumns(sql)} from posts
          where ${'shards' in filter ? sql`shard = any(${filter.shards}::int[])` : sql`community_id = any(${filter.communityIds}::bigint[])`}
            ${before ? sql`and (published, community_id, lemmy_id) < (${before.published}::timestamptz, ${before.communityId}, ${before.lemmyId})` : sql``}
          order by published desc, community_id desc, lemmy_id desc
          limit ${limit + 1}`;
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        missingNodes.push(node);
        return [] as PostRow[];
      }
    }),
  );
  const merged = mergeNewestFirst(perNode, limit + 1);
  const posts = merged.slice(0, limit);
  return {
    posts,
    next: merged.length > limit ? encodeCursor(cursorOf(posts[posts.length - 1])) : null,
    partial: missingNodes.length > 0,
    missingNodes: missingNodes.sort(),
  };
}

/** Newest posts across every node. */
export async function newestPosts(router: ShardRouter, limit: number, before?: PostCursor): Promise<MergedPostPage> {
  const placements = await router.placements();
  return newestAcrossNodes(router, new Map(placements.map(({ node, shards }) => [node, { shards }])), limit, before);
}

/** Merges lists sorted newest first into one, keeping the first `take`. */
export function mergeNewestFirst(lists: readonly PostRow[][], take: number): PostRow[] {
  const heads = lists.map(() => 0);
  const out: PostRow[] = [];
  while (out.length < take) {
    let best = -1;
    for (let i = 0; i < lists.length; i++) {
      if (heads[i] < lists[i].length && (best < 0 || comparePostsDesc(lists[i][heads[i]], lists[best][heads[best]]) < 0)) best = i;
    }
    if (best < 0) break;
    out.push(lists[best][heads[best]++]);
  }
  return out;
}

function comparePostsDesc(a: PostRow, b: PostRow): number {
  // ISO strings of equal length compare like the timestamps they hold.
  if (a.published_iso !== b.published_iso) return a.published_iso < b.published_iso ? 1 : -1;
  if (a.community_id !== b.community_id) return b.community_id - a.community_id;
  return b.lemmy_id - a.lemmy_id;
}

export interface PostsOfCommunities {
  /** Community id → its first page (newest `perCommunity` posts, `next` as communityPosts gives it). */
  pages: Map<number, PostPage>;
  /** Community id → the node that did not answer for it. */
  unavailable: Map<number, string>;
}

/**
 * The first page of posts of each of these communities, with one statement per node (not one per
 * community): the communities are grouped by the node the shard map gives their logical shard, and
 * each node walks the posts_community_newest index once per community in a LATERAL join over
 * `unnest($ids)`, taking `perCommunity + 1` rows each. Pages are exactly what communityPosts
 * answers for `limit = perCommunity` without a cursor. A node that does not answer is reported
 * for its communities, not fatal for the others.
 */
export async function newestPostsOfCommunities(
  router: ShardRouter,
  communities: readonly { id: number; shard: number }[],
  perCommunity: number,
): Promise<PostsOfCommunities> {
  const pages = new Map<number, PostPage>(communities.map((c) => [c.id, { posts: [], next: null }]));
  const unavailable = new Map<number, string>();
  if (communities.length === 0) return { pages, unavailable };
  const nodeOfShard = new Map<number, string>();
  for (const { node, shards } of await router.placements()) for (const shard of shards) nodeOfShard.set(shard, node);
  const idsByNode = new Map<string, number[]>();
  for (const c of communities) {
    const node = nodeOfShard.get(c.shard);
    if (node !== undefined && !idsByNode.get(node)?.includes(c.id)) idsByNode.set(node, [...(idsByNode.get(node) ?? []), c.id]);
  }
  await Promise.all(
    [...idsByNode].map(async ([node, ids]) => {
      let rows: PostRow[];
      try {
        const sql = router.pool(node);
        rows = await sql<PostRow[]>`
          select p.*, ${publishedIso(sql)} as published_iso
          from unnest(${ids}::bigint[]) as c(community_id)
          cross join lateral (
            select * from posts where posts.community_id = c.community_id
            order by published desc, lemmy_id desc
            limit ${perCommunity + 1}
          ) p
          order by p.community_id, p.published desc, p.lemmy_id desc`;
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        for (const id of ids) unavailable.set(id, node);
        return;
      }
      const byCommunity = new Map<number, PostRow[]>();
      for (const row of rows) byCommunity.set(row.community_id, [...(byCommunity.get(row.community_id) ?? []), row]);
      for (const [id, list] of byCommunity) {
        const posts = list.slice(0, perCommunity);
        pages.set(id, { posts, next: list.length > perCommunity ? encodeCursor(cursorOf(posts[posts.length - 1])) : null });
      }
    }),
  );
  return { pages, unavailable };
}
