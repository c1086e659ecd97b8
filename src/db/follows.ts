// Catalog queries about follows: of communities (whose posts make a user's feed) and of users
// (whose activities make the friends' list). A change and its activity are one transaction, and
// only a change that happened is told: following twice writes one row and one activity.
import { insertActivity } from './activities.js';
import type { CommunityRow } from './communities.js';
import type { Sql } from './pool.js';
import type { UserRow } from './users.js';

/** What the feed needs of a followed community: where its posts live. */
export interface FollowedCommunity {
  id: number;
  shard: number;
  ref: string;
}

export const communityObject = (ref: string) => `community:${ref}`;
export const userObject = (name: string) => `user:${name}`;

/** True when the follow is new. */
export async function followCommunity(sql: Sql, userId: number, community: Pick<CommunityRow, 'id' | 'ref'>): Promise<boolean> {
  return sql.begin(async (tx) => {
    const inserted = await tx`
      insert into community_follows (user_id, community_id) values (${userId}, ${community.id})
      on conflict do nothing returning user_id`;
    if (inserted.length === 0) return false;
    await insertActivity(tx, { actorId: userId, verb: 'follow', object: communityObject(community.ref) });
    return true;
  });
}

/** True when there was a follow to remove. */
export async function unfollowCommunity(sql: Sql, userId: number, community: Pick<CommunityRow, 'id' | 'ref'>): Promise<boolean> {
  return sql.begin(async (tx) => {
    const deleted = await tx`
      delete from community_follows where user_id = ${userId} and community_id = ${community.id} returning user_id`;
    if (deleted.length === 0) return false;
    await insertActivity(tx, { actorId: userId, verb: 'unfollow', object: communityObject(community.ref) });
    return true;
  });
}

export async function followUser(sql: Sql, userId: number, followed: Pick<UserRow, 'id' | 'name'>): Promise<boolean> {
  return sql.begin(async (tx) => {
    const inserted = await tx`
      insert into user_follows (user_id, followed_id) values (${userId}, ${followed.id})
      on conflict do nothing returning user_id`;
    if (inserted.length === 0) return false;
    await insertActivity(tx, { actorId: userId, verb: 'follow', object: userObject(followed.name) });
    return true;
  });
}

export async function unfollowUser(sql: Sql, userId: number, followed: Pick<UserRow, 'id' | 'name'>): Promise<boolean> {
  return sql.begin(async (tx) => {
    const deleted = await tx`
      delete from user_follows where user_id = ${userId} and followed_id = ${followed.id} returning user_id`;
    if (deleted.length === 0) return false;
    await insertActivity(tx, { actorId: userId, verb: 'unfollow', object: userObject(followed.name) });
    return true;
  });
}

/** The followed communities' ids with their logical shard (to find their node) and ref. */
export async function followedCommunityIds(sql: Sql, userId: number): Promise<FollowedCommunity[]> {
  return sql<FollowedCommunity[]>`
    select c.id, c.shard, c.ref from community_follows f join communities c on c.id = f.community_id
    where f.user_id = ${userId}`;
}

/** Followed communities, most recently followed first. */
export async function followedCommunities(sql: Sql, userId: number): Promise<CommunityRow[]> {
  return sql<CommunityRow[]>`
    select c.* from community_follows f join communities c on c.id = f.community_id
    where f.user_id = ${userId}
    order by f.created_at desc, c.id desc`;
}

/** Followed users, most recently followed first. */
export async function followedUsers(sql: Sql, userId: number): Promise<UserRow[]> {
  return sql<UserRow[]>`
    select u.* from user_follows f join users u on u.id = f.followed_id
    where f.user_id = ${userId}
    order by f.created_at desc, u.id desc`;
}

/** Whether the user follows the community. */
export async function followsCommunity(sql: Sql, userId: number, communityId: number): Promise<boolean> {
  const rows = await sql`select 1 from community_follows where user_id = ${userId} and community_id = ${communityId}`;
  return rows.length > 0;
}
