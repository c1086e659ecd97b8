// Catalog queries about tracked communities.
import type { Sql } from './pool.js';

export interface CommunityRow {
  id: number;
  ref: string;
  instance: string;
  host: string;
  name: string;
  lemmy_id: number | null;
  actor_id: string | null;
  title: string | null;
  description: string | null;
  icon: string | null;
  banner: string | null;
  nsfw: boolean;
  subscribers: number | null;
  posts_count: number | null;
  refresh_seconds: number;
  shard: number;
  last_update: Date | null;
  last_error: string | null;
  last_error_code: string | null;
  last_error_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface NewCommunity {
  ref: string;
  instance: string;
  host: string;
  name: string;
  refreshSeconds: number;
  shard: number;
}

/** Inserts the community unless its ref is already tracked; concurrent adds create one row. */
export async function insertCommunity(sql: Sql, c: NewCommunity): Promise<{ row: CommunityRow; created: boolean }> {
  const [inserted] = await sql<CommunityRow[]>`
    insert into communities (ref, instance, host, name, refresh_seconds, shard)
    values (${c.ref}, ${c.instance}, ${c.host}, ${c.name}, ${c.refreshSeconds}, ${c.shard})
    on conflict (ref) do nothing
    returning *`;
  if (inserted) return { row: inserted, created: true };
  const existing = await communityByRef(sql, c.ref);
  if (!existing) throw new Error(`community ${c.ref} vanished while being added`);
  return { row: existing, created: false };
}

export async function communityByRef(sql: Sql, ref: string): Promise<CommunityRow | undefined> {
  const [row] = await sql<CommunityRow[]>`select * from communities where ref = ${ref}`;
  return row;
}

export async function communityById(sql: Sql, id: number): Promise<CommunityRow | undefined> {
  const [row] = await sql<CommunityRow[]>`select * from communities where id = ${id}`;
  return row;
}

export async function listCommunities(sql: Sql): Promise<CommunityRow[]> {
  return sql<CommunityRow[]>`select * from communities order by ref`;
}

export interface CommunityMetadata {
  lemmyId: number;
  actorId: string;
  title: string;
  description: string | null;
  icon: string | null;
  banner: string | null;
  nsfw: boolean;
  subscribers: number;
  postsCount: number;
}

export async function saveSyncSuccess(sql: Sql, id: number, m: CommunityMetadata): Promise<void> {
  await sql`
    update communities set
      lemmy_id = ${m.lemmyId}, actor_id = ${m.actorId}, title = ${m.title}, description = ${m.description},
      icon = ${m.icon}, banner = ${m.banner}, nsfw = ${m.nsfw}, subscribers = ${m.subscribers},
      posts_count = ${m.postsCount}, last_update = now(), last_error = null, last_error_code = null,
      last_error_at = null, updated_at = now()
    where id = ${id}`;
}

export async function saveSyncError(sql: Sql, ref: string, code: string, message: string): Promise<void> {
  await sql`
    update communities set last_error = ${message}, last_error_code = ${code}, last_error_at = now(), updated_at = now()
    where ref = ${ref}`;
}

export async function setRefreshSeconds(sql: Sql, id: number, seconds: number): Promise<CommunityRow | undefined> {
  const [row] = await sql<CommunityRow[]>`
    update communities set refresh_seconds = ${seconds}, updated_at = now() where id = ${id} returning *`;
  return row;
}

export async function deleteCommunityRow(sql: Sql, id: number): Promise<boolean> {
  const rows = await sql`delete from communities where id = ${id} returning id`;
  return rows.length > 0;
}
