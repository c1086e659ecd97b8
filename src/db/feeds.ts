// A user's feed: the newest posts of the communities they follow, across the shard nodes.
import type { FollowedCommunity } from './follows.js';
import { encodeCursor, type MergedPostPage, type PostCursor, type PostRow } from './posts.js';
import { isConnectionError, type ShardRouter } from './sharding/router.js';

/**
 * Newest posts of these communities, keyset-paged like newestPosts: the communities are grouped
 * by the node the shard map gives their logical shard, each node is asked (in parallel) for its
 * next `limit + 1` posts of its own communities past the cursor, and the per-node lists (each
 * sorted already) are merged. A node that does not answer is reported, not fatal.
 *
 * Per node: `community_id = any($ids)` with `order by published desc, community_id desc,
 * lemmy_id desc limit n+1` walks the posts_newest index (published, community_id, lemmy_id, all
 * descending) from the cursor and stops after n+1 matches, so following hundreds of communities
 * costs one index walk per node, not one query per community.
 */
export async function userFeed(
  router: ShardRouter,
  communities: readonly Pick<FollowedCommunity, 'id' | 'shard'>[],
  limit: number,
  before?: PostCursor,
): Promise<MergedPostPage> {
  if (communities.length === 0) return { posts: [], next: null, partial: false, missingNodes: [] };
  const nodeOfShard = new Map<number, string>();
  for (const { node, shards } of await router.placements()) for (const shard of shards) nodeOfShard.set(shard, node);
  const idsByNode = new Map<string, number[]>();
  for (const c of communities) {
    const node = nodeOfShard.get(c.shard);
    if (node === undefined) continue; // a shard without a node holds no posts to show
    idsByNode.set(node, [...(idsByNode.get(node) ?? []), c.id]);
  }

  const missingNodes: string[] = [];
  const perNode = await Promise.all(
    [...idsByNode].map(async ([node, ids]) => {
      try {
        const sql = router.pool(node);
        return await sql<PostRow[]>`
          select *, to_char(published at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as published_iso from posts
          where community_id = any(${ids}::bigint[])
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
  const last = posts[posts.length - 1];
  return {
    posts,
    next:
      merged.length > limit
        ? encodeCursor({ published: last.published_iso, communityId: last.community_id, lemmyId: last.lemmy_id })
        : null,
    partial: missingNodes.length > 0,
    missingNodes: missingNodes.sort(),
  };
}

/** Merges lists sorted newest first into one, keeping the first `take`. */
export function mergeNewestFirst(lists: readonly PostRow[][], take: number): PostRow[] {
  const heads = lists.map(() => 0);
  const out: PostRow[] = [];
  while (out.length < take) {
    let best = -1;
    for (let i = 0; i < lists.length; i++) {
      if (heads[i] < lists[i].length && (best < 0 || newerFirst(lists[i][heads[i]], lists[best][heads[best]]) < 0)) best = i;
    }
    if (best < 0) break;
    out.push(lists[best][heads[best]++]);
  }
  return out;
}

/** The feed's order: (published, community_id, lemmy_id), all descending, as the cursor. */
function newerFirst(a: PostRow, b: PostRow): number {
  // ISO strings of equal length compare like the timestamps they hold.
  if (a.published_iso !== b.published_iso) return a.published_iso < b.published_iso ? 1 : -1;
  if (a.community_id !== b.community_id) return b.community_id - a.community_id;
  return b.lemmy_id - a.lemmy_id;
}
