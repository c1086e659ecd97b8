// Catalog queries about tracked communities.
import type { Sql } from './pool.js';
import { deleteCommunityPosts } from './posts.js';
import type { ShardRouter } from './sharding/router.js';

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
  /** Outcome of the last sync (null before the first one ends). */
  sync_state: 'waiting' | 'failing' | 'not_found' | null;
  last_attempt_at: Date | null;
  next_sync_at: Date | null;
  syncs: number;
  posts_stored: number;
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

/** One page of communities, most recently tracked first, keyset by id (`beforeId` excluded). */
export async function communitiesPage(
  sql: Sql,
  limit: number,
  beforeId?: number,
): Promise<{ rows: CommunityRow[]; nextBeforeId: number | null }> {
  const rows = await sql<CommunityRow[]>`
    select * from communities ${beforeId ? sql`where id < ${beforeId}` : sql``}
    order by id desc limit ${limit + 1}`;
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  return { rows: page, nextBeforeId: more ? page[page.length - 1].id : null };
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

/** A successful sync: the metadata and the list's status, in one statement. */
export async function saveSyncSuccess(sql: Sql, id: number, m: CommunityMetadata, postsStored: number): Promise<void> {
  await sql`
    update communities set
      lemmy_id = ${m.lemmyId}, actor_id = ${m.actorId}, title = ${m.title}, description = ${m.description},
      icon = ${m.icon}, banner = ${m.banner}, nsfw = ${m.nsfw}, subscribers = ${m.subscribers},
      posts_count = ${m.postsCount}, last_update = now(), last_error = null, last_error_code = null,
      last_error_at = null, sync_state = 'waiting', last_attempt_at = now(),
      next_sync_at = now() + refresh_seconds * interval '1 second', syncs = syncs + 1,
      posts_stored = ${postsStored}, updated_at = now()
    where id = ${id}`;
}

/**
 * A failed sync attempt (Temporal may retry it): shown on the row until a sync succeeds. By id, the
 * row the attempt read: if the community was removed and added again meanwhile, the new row (same
 * ref) is not the old attempt's to mark.
 */
export async function saveSyncError(
  sql: Sql,
  id: number,
  e: { type: string; message: string; state: 'failing' | 'not_found' },
): Promise<void> {
  await sql`
    update communities set last_error = ${e.message}, last_error_code = ${e.type}, last_error_at = now(),
      sync_state = ${e.state}, last_attempt_at = now(), next_sync_at = now() + refresh_seconds * interval '1 second',
      updated_at = now()
    where id = ${id}`;
}

/** The new interval counts from the last sync attempt, as the workflow counts it. */
export async function setRefreshSeconds(sql: Sql, id: number, seconds: number): Promise<CommunityRow | undefined> {
  const [row] = await sql<CommunityRow[]>`
    update communities set refresh_seconds = ${seconds}, updated_at = now(),
      next_sync_at = case when last_attempt_at is null then next_sync_at
                          else greatest(now(), last_attempt_at + ${seconds} * interval '1 second') end
    where id = ${id} returning *`;
  return row;
}

export async function deleteCommunityRow(sql: Sql, id: number): Promise<boolean> {
  const rows = await sql`delete from communities where id = ${id} returning id`;
  return rows.length > 0;
}

/**
 * Removes a community's posts and its row together. The row is locked while its posts are
 * deleted, so a sync still in flight (which takes the row's key-share lock before writing, see
 * lockCommunityForWrite) cannot leave posts behind; if anything fails, the row stays and the
 * removal can be retried. `beforeDelete` runs once the row is locked (not at all when the row is
 * gone already); if it throws, nothing is removed. False when the row was gone.
 */
export async function deleteCommunity(
  router: ShardRouter,
  row: Pick<CommunityRow, 'id' | 'shard'>,
  beforeDelete?: () => Promise<void>,
): Promise<boolean> {
  return router.write(row.shard, async (sql, _node, tx) => {
    const [locked] = await tx`select id from communities where id = ${row.id} for update`;
    if (!locked) return false;
    await beforeDelete?.();
    await deleteCommunityPosts(sql, row.id);
    await tx`delete from communities where id = ${row.id}`;
    return true;
  });
}

/** Inside a shard write: false when the community was removed meanwhile; else holds off its removal until commit. */
export async function lockCommunityForWrite(catalogTx: Sql, id: number): Promise<boolean> {
  const [still] = await catalogTx`select id from communities where id = ${id} for key share`;
  return Boolean(still);
}

/** id → ref for the communities of a page of posts. */
export async function communityRefsByIds(sql: Sql, ids: number[]): Promise<Map<number, string>> {
  if (ids.length === 0) return new Map();
  const rows = await sql<{ id: number; ref: string }[]>`select id, ref from communities where id = any(${ids}::bigint[])`;
  return new Map(rows.map((r) => [r.id, r.ref]));
}
