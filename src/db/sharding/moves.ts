// Storage side of moving logical shards between post-shard nodes (workflows/moveShard.ts runs the
// steps as activities): bulk copy, reconcile, the map flip under the shard's write lock, cleanup;
// and the per-shard loads and node status that planning and `npm run shards -- status` read.
import type { Sql } from '../pool.js';
import { LOGICAL_SHARDS, SHARD_WRITE_LOCK, isConnectionError, type ShardRouter } from './router.js';
import type { ShardLoad } from './planner.js';

/** The move cannot go on as asked (wrong source, unknown shard): not worth retrying. */
export class ShardMoveConflict extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShardMoveConflict';
  }
}

export interface CopyProgress {
  /** Last (community_id, lemmy_id) copied; the next batch starts after it. */
  lastKey: [number, number] | null;
  copied: number;
  /** Source-node clock when the first attempt started copying (ISO). */
  startedAt: string;
}

export interface FlipResult {
  alreadyFlipped: boolean;
  /** Rows inserted or updated on the target by the final catch-up (under the lock). */
  caughtUp: number;
  /** Stale rows removed from the target (e.g. posts of a community deleted during the copy). */
  removed: number;
  rows: number;
  /** How long writes into the shard were held, ms. */
  heldMs: number;
}

export interface ShardLoadReport {
  nodes: string[];
  shards: ShardLoad[];
}

export const COPY_BATCH = 1000;
const DIFF_BATCH = 10_000;
export const DELETE_BATCH = 5000;
/** How long the flip waits for in-flight writes of the shard before giving up (and retrying). */
const FLIP_LOCK_TIMEOUT_MS = 5000;

const UPSERT_ALL = `
  on conflict (community_id, lemmy_id) do update set
    shard = excluded.shard, ap_id = excluded.ap_id, title = excluded.title, url = excluded.url,
    body = excluded.body, author = excluded.author, thumbnail = excluded.thumbnail,
    published = excluded.published, updated = excluded.updated, score = excluded.score,
    upvotes = excluded.upvotes, downvotes = excluded.downvotes, comments = excluded.comments,
    nsfw = excluded.nsfw, featured = excluded.featured, fetched_at = excluded.fetched_at`;

/**
 * Rows travel as JSON (`json_agg` on the source, `json_populate_recordset` on the target) so every
 * column, timestamps with their microseconds included, arrives exactly as stored.
 */
async function insertJsonRows(target: Sql, json: string): Promise<number> {
  // Copies are not new posts: the post_events trigger skips them (shard migration 003).
  const count = await target.begin(async (tx) => {
    await tx`set local lemmy_fetcher.replaying = 'on'`;
    const res = await tx.unsafe(`insert into posts select * from json_populate_recordset(null::posts, $1::text::json) ${UPSERT_ALL}`, [
      json,
    ]);
    return res.count;
  });
  return count as number;
}

/** The node shard_map gives a logical shard. */
export async function shardNode(catalog: Sql, shard: number): Promise<string> {
  const [row] = await catalog<{ node: string }[]>`select node from shard_map where shard = ${shard}`;
  if (!row) throw new ShardMoveConflict(`logical shard ${shard} is not in shard_map`);
  return row.node;
}

/** The source node's clock, as the start mark of a copy. */
export async function nodeNow(sql: Sql): Promise<string> {
  const [{ now }] = await sql<{ now: string }[]>`select now()::text as now`;
  return now;
}

/** Copies `shard`'s rows from `source` to `target` in keyset batches, starting after `progress.lastKey`. */
export async function bulkCopy(
  source: Sql,
  target: Sql,
  shard: number,
  progress: CopyProgress,
  onBatch: (p: CopyProgress) => void = () => {},
  batch = COPY_BATCH,
): Promise<CopyProgress> {
  let { lastKey, copied } = progress;
  for (;;) {
    const after = lastKey ? source`and (community_id, lemmy_id) > (${lastKey[0]}, ${lastKey[1]})` : source``;
    const [page] = await source<{ j: string | null; n: number; last_c: number | null; last_l: number | null }[]>`
      with page as (
        select * from posts where shard = ${shard} ${after}
        order by community_id, lemmy_id limit ${batch})
      select json_agg(page)::text as j, count(*)::int as n,
             (array_agg(community_id order by community_id desc, lemmy_id desc))[1] as last_c,
             (array_agg(lemmy_id order by community_id desc, lemmy_id desc))[1] as last_l
      from page`;
    if (!page.n || !page.j) break;
    await insertJsonRows(target, page.j);
    copied += page.n;
    lastKey = [Number(page.last_c), Number(page.last_l)];
    const p = { ...progress, lastKey, copied };
    onBatch(p);
    if (page.n < batch) break;
  }
  return { ...progress, lastKey, copied };
}

/**
 * Makes the target's rows of `shard` exactly equal to the source's: copies rows missing on the
 * target or whose fetched_at differs (every upsert that changes a row bumps it), deletes target
 * rows the source no longer has. Walks both key sets in keyset chunks, so memory stays bounded.
 */
export async function reconcile(
  source: Sql,
  target: Sql,
  shard: number,
  onChunk: (rows: number) => void = () => {},
): Promise<{ copied: number; removed: number; rows: number }> {
  let copied = 0;
  let removed = 0;
  let rows = 0;
  let lastKey: [number, number] | null = null;
  type K = { c: number; l: number; f: string };
  for (;;) {
    const after = (sql: Sql) => (lastKey ? sql`and (community_id, lemmy_id) > (${lastKey[0]}, ${lastKey[1]})` : sql``);
    const src = await source<K[]>`
      select community_id as c, lemmy_id as l, (extract(epoch from fetched_at) * 1000000)::bigint::text as f from posts
      where shard = ${shard} ${after(source)} order by community_id, lemmy_id limit ${DIFF_BATCH}`;
    const last = src.length === DIFF_BATCH ? src[src.length - 1] : undefined;
    // The target's keys in the same range; after the source's final chunk, everything beyond.
    const upTo = last ? target`and (community_id, lemmy_id) <= (${last.c}, ${last.l})` : target``;
    const dst = await target<K[]>`
      select community_id as c, lemmy_id as l, (extract(epoch from fetched_at) * 1000000)::bigint::text as f from posts
      where shard = ${shard} ${after(target)} ${upTo}`;
    rows += src.length;
    const onTarget = new Map(dst.map((r) => [`${r.c}:${r.l}`, r.f]));
    const onSource = new Set(src.map((r) => `${r.c}:${r.l}`));
    const need = src.filter((r) => onTarget.get(`${r.c}:${r.l}`) !== r.f);
    const stale = dst.filter((r) => !onSource.has(`${r.c}:${r.l}`));
    for (let i = 0; i < need.length; i += COPY_BATCH) {
      const part = need.slice(i, i + COPY_BATCH);
      const [{ j }] = await source<{ j: string | null }[]>`
        select json_agg(p)::text as j from posts p
        where shard = ${shard}
          and (community_id, lemmy_id) in (select * from unnest(${part.map((r) => r.c)}::bigint[], ${part.map((r) => r.l)}::bigint[]))`;
      if (j) copied += await insertJsonRows(target, j);
    }
    if (stale.length) {
      const res = await target`
        delete from posts where shard = ${shard}
          and (community_id, lemmy_id) in (select * from unnest(${stale.map((r) => r.c)}::bigint[], ${stale.map((r) => r.l)}::bigint[]))`;
      removed += res.count;
    }
    onChunk(rows);
    if (!last) break;
    lastKey = [last.c, last.l];
  }
  return { copied, removed, rows };
}

export async function countShardPosts(sql: Sql, shard: number): Promise<number> {
  const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from posts where shard = ${shard}`;
  return n;
}

/** Posts per logical shard as the map places them (rows left over on other nodes are not counted). */
export async function shardLoads(router: ShardRouter): Promise<ShardLoadReport> {
  await router.refreshNodes();
  const map = await router.shardMap();
  const placements = await router.placements();
  const counts = new Map<number, number>();
  await Promise.all(
    placements.map(async ({ node, shards }) => {
      const rows = await router.pool(node)<{ shard: number; n: number }[]>`
        select shard, count(*)::int as n from posts where shard = any(${shards}::int[]) group by shard`;
      for (const r of rows) counts.set(r.shard, r.n);
    }),
  );
  return {
    nodes: router.nodeNames(),
    shards: [...map.entries()].sort((a, b) => a[0] - b[0]).map(([shard, node]) => ({ shard, node, posts: counts.get(shard) ?? 0 })),
  };
}

export interface NodeStatus {
  node: string;
  url: string;
  up: boolean;
  error?: string;
  shards: number[];
  communities: number;
  posts: number | null;
}

/** Each registered node with its logical shards, communities and post counts (down nodes flagged). */
export async function shardStatus(
  router: ShardRouter,
  redact: (url: string) => string,
): Promise<{ logicalShards: number; nodes: NodeStatus[] }> {
  await router.refreshNodes();
  const urls = await router.catalog<{ name: string; url: string }[]>`select name, url from shard_nodes order by name`;
  const map = await router.shardMap();
  const perShard = await router.catalog<{ shard: number; n: number }[]>`select shard, count(*)::int as n from communities group by shard`;
  const communitiesOf = new Map(perShard.map((r) => [r.shard, r.n]));
  const nodes = await Promise.all(
    urls.map(async ({ name, url }): Promise<NodeStatus> => {
      const shards = [...map.entries()]
        .filter(([, n]) => n === name)
        .map(([s]) => s)
        .sort((a, b) => a - b);
      const communities = shards.reduce((sum, s) => sum + (communitiesOf.get(s) ?? 0), 0);
      try {
        const [{ n }] = await router.pool(name)<{ n: number }[]>`select count(*)::int as n from posts where shard = any(${shards}::int[])`;
        return { node: name, url: redact(url), up: true, shards, communities, posts: n };
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        return { node: name, url: redact(url), up: false, error: (err as Error).message, shards, communities, posts: null };
      }
    }),
  );
  return { logicalShards: LOGICAL_SHARDS, nodes };
}

/**
 * Under the shard's exclusive write lock (syncs of the shard wait or fail fast and are retried),
 * a final reconcile makes the target exact, counts are verified, and shard_map points at the
 * target, all in one catalog transaction.
 */
export async function flipShardMap(
  catalog: Sql,
  source: Sql,
  target: Sql,
  move: { shard: number; from: string; to: string },
  onChunk?: (rows: number) => void,
): Promise<FlipResult> {
  const { shard, from, to } = move;
  return (await catalog.begin(async (tx) => {
    await tx.unsafe(`set local lock_timeout = ${FLIP_LOCK_TIMEOUT_MS}`);
    await tx`select pg_advisory_xact_lock(${SHARD_WRITE_LOCK}, ${shard})`;
    const held = Date.now();
    const [row] = await tx<{ node: string }[]>`select node from shard_map where shard = ${shard} for update`;
    if (row?.node === to) return { alreadyFlipped: true, caughtUp: 0, removed: 0, rows: 0, heldMs: 0 };
    if (row?.node !== from) throw new ShardMoveConflict(`shard ${shard} is on "${row?.node}", not on "${from}"`);
    const { copied, removed, rows } = await reconcile(source, target, shard, onChunk);
    const [onSource, onTarget] = await Promise.all([countShardPosts(source, shard), countShardPosts(target, shard)]);
    if (onSource !== onTarget || onSource !== rows) {
      throw new Error(`shard ${shard}: ${onSource} rows on "${from}" but ${onTarget} on "${to}" after catch-up`);
    }
    await tx`update shard_map set node = ${to} where shard = ${shard}`;
    return { alreadyFlipped: false, caughtUp: copied, removed, rows, heldMs: Date.now() - held };
  })) as FlipResult;
}

/** Deletes up to `limit` of the shard's rows from a node; returns how many. */
export async function deleteShardPostsBatch(sql: Sql, shard: number, limit = DELETE_BATCH): Promise<number> {
  const res = await sql`delete from posts where ctid = any(array(select ctid from posts where shard = ${shard} limit ${limit}))`;
  return res.count;
}
