// Catalog queries about users. A user's API key is never stored, only its sha256 (hex).
import type { Sql } from './pool.js';

export interface UserRow {
  id: number;
  name: string;
  api_key_hash: string;
  created_at: Date;
}

export interface FollowCounts {
  communities: number;
  users: number;
  followers: number;
}

/** Inserts a user; undefined when the name is taken (concurrent creates make one row). */
export async function insertUser(sql: Sql, name: string, apiKeyHash: string): Promise<UserRow | undefined> {
  const [row] = await sql<UserRow[]>`
    insert into users (name, api_key_hash) values (${name}, ${apiKeyHash})
    on conflict (name) do nothing
    returning *`;
  return row;
}

export async function userByName(sql: Sql, name: string): Promise<UserRow | undefined> {
  const [row] = await sql<UserRow[]>`select * from users where name = ${name}`;
  return row;
}

/**
 * The user holding a key, by its hash: who is calling (api/callers.ts, cached for a short while),
 * and, when a key does not open the user it was sent for, "another user's key" (403) rather than
 * "no key" (401). Indexed (catalog migration 006).
 */
export async function userByKeyHash(sql: Sql, apiKeyHash: string): Promise<UserRow | undefined> {
  const [row] = await sql<UserRow[]>`select * from users where api_key_hash = ${apiKeyHash} limit 1`;
  return row;
}

export async function followCounts(sql: Sql, userId: number): Promise<FollowCounts> {
  const [row] = await sql<FollowCounts[]>`
    select
      (select count(*)::int from community_follows where user_id = ${userId}) as communities,
      (select count(*)::int from user_follows where user_id = ${userId}) as users,
      (select count(*)::int from user_follows where followed_id = ${userId}) as followers`;
  return row;
}
