// A user's feed: the newest posts of the communities they follow, across the shard nodes.
import type { FollowedCommunity } from './follows.js';
import { newestAcrossNodes, type MergedPostPage, type PostCursor } from './posts.js';
import type { ShardRouter } from './sharding/router.js';

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

  return newestAcrossNodes(router, new Map([...idsByNode].map(([node, communityIds]) => [node, { communityIds }])), limit, before);
}
