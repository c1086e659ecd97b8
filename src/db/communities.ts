// Catalog queries about tracked sources ("communities": a Lemmy community, a feed, a Mastodon timeline).
import type { SourceKind, SourceMetadata, SourceState } from '../sources/types.js';
import type { PendingQuery } from 'postgres';
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
  sync_state: 'waiting' | 'failing' | 'not_found' | 'dormant' | null;
  last_attempt_at: Date | null;
  next_sync_at: Date | null;
  syncs: number;
  posts_stored: number;
  created_at: Date;
  updated_at: Date;
  kind: SourceKind;
  source_url: string | null;
  source_state: SourceState;
  metadata_fetched_at: Date | null;
  refresh_policy: RefreshMode;
  min_refresh_seconds: number;
  max_refresh_seconds: number;
  interval_seconds: number | null;
  refresh_reason: string | null;
  consecutive_failures: number;
  posts_per_hour: number | null;
  policy_changed_at: Date | null;
  /** Tracking paused since (the workflow waits for `resume`); null when tracking. */
  paused_at: Date | null;
}

export type RefreshMode = 'fixed' | 'adaptive';

export interface NewCommunity {
  ref: string;
  instance: string;
  host: string;
  name: string;
  refreshSeconds: number;
  shard: number;
  /** Default 'lemmy'. */
  kind?: SourceKind;
  url?: string | null;
  /** Default 'fixed'. */
  refreshPolicy?: RefreshMode;
  /** Defaults 60 and 3600 (the catalog's). */
  minRefreshSeconds?: number;
  maxRefreshSeconds?: number;
  /** What the add-time check learnt (metadata, the adapter's initial state). */
  metadata?: SourceMetadata;
  state?: SourceState;
}

/** Inserts the community unless its ref is already tracked; concurrent adds create one row. */
export async function insertCommunity(sql: Sql, c: NewCommunity): Promise<{ row: CommunityRow; created: boolean }> {
  const [inserted] = await sql<CommunityRow[]>`
    insert into communities (kind, ref, instance, host, name, source_url, source_state, refresh_seconds, refresh_policy,
      min_refresh_seconds, max_refresh_seconds, shard, title, description, icon, banner, nsfw, subscribers, posts_count,
      lemmy_id, actor_id, metadata_fetched_at)
    values (${c.kind ?? 'lemmy'}, ${c.ref}, ${c.instance}, ${c.host}, ${c.name}, ${c.url ?? null}, ${sql.json(c.state ?? {})},
      ${c.refreshSeconds}, ${c.refreshPolicy ?? 'fixed'}, ${c.minRefreshSeconds ?? 60}, ${c.maxRefreshSeconds ?? 3600}, ${c.shard}, ${c.metadata?.title ?? null},
      ${c.metadata?.description ?? null}, ${c.metadata?.icon ?? null}, ${c.metadata?.banner ?? null}, ${c.metadata?.nsfw ?? false},
      ${c.metadata?.subscribers ?? null}, ${c.metadata?.postsCount ?? null}, ${c.metadata?.remoteId ?? null},
      ${c.metadata?.actorId ?? null}, ${c.metadata ? sql`now()` : null})
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

/** Where a walk in due order stands: the last row's next sync (as the catalog's text, exact to the microsecond) and id. */
export interface DueOrderKey {
  due: string;
  id: number;
}

/** The walk's start: before every row (never synced ones have no next sync and come first). */
export const FIRST_DUE_ORDER_KEY: DueOrderKey = { due: '-infinity', id: 0 };

/**
 * A page of the communities with no sync attempt since `since`, soonest due first (never synced
 * ones first), keyset by (next sync, id) after `after`; each row with its key. A row that syncs
 * while the walk goes on moves its next sync ahead of the walk, but leaves it as well, so no row
 * is visited twice.
 */
export async function communitiesByDueAfter(
  sql: Sql,
  after: DueOrderKey,
  since: Date,
  limit: number,
): Promise<Array<CommunityRow & { due_key: string }>> {
  return sql<Array<CommunityRow & { due_key: string }>>`
    select *, coalesce(next_sync_at, '-infinity')::text as due_key from communities
    where (last_attempt_at is null or last_attempt_at < ${since})
      and (coalesce(next_sync_at, '-infinity'), id) > (${after.due}::timestamptz, ${after.id})
    order by coalesce(next_sync_at, '-infinity'), id limit ${limit}`;
}

/** The catalog's clock, for comparing with times it wrote. */
export async function catalogNow(sql: Sql): Promise<Date> {
  const [row] = await sql<{ now: Date }[]>`select now()`;
  return row.now;
}

/** Of these communities, the ids of those not paused with no sync attempt ended since `since`. */
export async function unattemptedSince(sql: Sql, ids: number[], since: Date): Promise<number[]> {
  if (ids.length === 0) return [];
  const rows = await sql<{ id: number }[]>`
    select id from communities
    where id = any(${ids}::bigint[]) and paused_at is null and (last_attempt_at is null or last_attempt_at < ${since})`;
  return rows.map((r) => Number(r.id));
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

/** Which communities the admin list shows: those that need attention, the paused ones, or all. */
export type AttentionFilter = 'failing' | 'paused' | 'all';

/**
 * A page of communities for the admin list, most recently tracked first, keyset by id:
 * `failing` = the last sync failed, found nothing, or the source is dormant, or tracking is paused
 * (with their last error); `paused` = paused only; `all` = every one.
 */
export async function attentionPage(
  sql: Sql,
  filter: AttentionFilter,
  limit: number,
  beforeId?: number,
): Promise<{ rows: CommunityRow[]; nextBeforeId: number | null }> {
  const which =
    filter === 'failing'
      ? sql`(sync_state in ('failing', 'not_found', 'dormant') or paused_at is not null)`
      : filter === 'paused'
        ? sql`paused_at is not null`
        : sql`true`;
  const rows = await sql<CommunityRow[]>`
    select * from communities where ${which} ${beforeId ? sql`and id < ${beforeId}` : sql``}
    order by id desc limit ${limit + 1}`;
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  return { rows: page, nextBeforeId: more ? page[page.length - 1].id : null };
}

/**
 * Records tracking as paused (now, unless it already was) or not. By id, so a row removed and
 * added again meanwhile is left alone. The row after the change; undefined when it is gone.
 */
export async function setCommunityPaused(sql: Sql, id: number, paused: boolean): Promise<CommunityRow | undefined> {
  const [row] = await sql<CommunityRow[]>`
    update communities set paused_at = ${paused ? sql`coalesce(paused_at, now())` : null}, updated_at = now()
    where id = ${id} returning *`;
  return row;
}

export interface SyncOutcome {
  /** Fresh metadata, when this sync fetched it. */
  metadata?: SourceMetadata;
  /** The adapter's state after the sync (its cursor, validators). */
  state: SourceState;
  /** Posts this sync inserted (the stored count grows by as many). */
  inserted: number;
  /** When the sync is saved (its clock: the next interval counts from it); the database's now() when absent. */
  at?: Date;
  /**
   * The next interval as the workflow will have it (decided by the sync from the workflow's
   * plan): written here, with the result, rather than by a second write of the workflow.
   */
  schedule?: { intervalSeconds: number; reason: string; postsPerHour: number | null };
}

/**
 * A successful sync: metadata (when fetched), the adapter's state and the list's status (with the
 * next interval, when given), in one statement. `syncedAt`: the sync's time as written
 * (last_update), which the workflow then shows and counts its wait from.
 */
export async function saveSyncSuccess(
  sql: Sql,
  id: number,
  o: SyncOutcome,
): Promise<{ postsStored: number; syncedAt: string } | undefined> {
  const m = o.metadata;
  const at = o.at ? sql`${o.at}::timestamptz` : sql`now()`;
  const s = o.schedule;
  // A policy changed after this sync's time (a PATCH as it ended) is newer: keep what it wrote, as
  // saveSchedule does; the workflow has the change and records its own schedule.
  const newer = o.at ? sql`policy_changed_at > ${o.at}::timestamptz` : sql`false`;
  const [row] = await sql<{ posts_stored: number; last_update: Date }[]>`
    update communities set
      ${
        m
          ? sql`lemmy_id = ${m.remoteId}, actor_id = ${m.actorId}, title = ${m.title}, description = ${m.description},
      icon = ${m.icon}, banner = ${m.banner}, nsfw = ${m.nsfw}, subscribers = ${m.subscribers},
      posts_count = ${m.postsCount}, metadata_fetched_at = now(),`
          : sql``
      }
      ${
        s
          ? sql`interval_seconds = case when ${newer} then interval_seconds else ${s.intervalSeconds} end,
      refresh_reason = case when ${newer} then refresh_reason else ${s.reason} end, posts_per_hour = ${s.postsPerHour},`
          : sql``
      }
      source_state = ${sql.json(o.state)}, last_update = ${at}, last_error = null, last_error_code = null,
      last_error_at = null, sync_state = 'waiting', last_attempt_at = ${at}, consecutive_failures = 0,
      next_sync_at = ${at} + ${
        s
          ? sql`case when ${newer} then coalesce(interval_seconds, refresh_seconds) else ${s.intervalSeconds} end`
          : sql`coalesce(interval_seconds, refresh_seconds)`
      } * interval '1 second', syncs = syncs + 1,
      posts_stored = posts_stored + ${o.inserted}, updated_at = now()
    where id = ${id}
    returning posts_stored, last_update`;
  return row ? { postsStored: row.posts_stored, syncedAt: row.last_update.toISOString() } : undefined;
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
      sync_state = case when sync_state = 'dormant' then sync_state else ${e.state} end, last_attempt_at = now(),
      next_sync_at = now() + coalesce(interval_seconds, refresh_seconds) * interval '1 second', updated_at = now()
    where id = ${id}`;
}

export interface RefreshPolicyRow {
  mode: RefreshMode;
  /** The fixed interval (kept while adaptive, for a switch back). */
  refreshSeconds: number;
  minRefreshSeconds: number;
  maxRefreshSeconds: number;
}

/**
 * A new policy. A fixed interval counts from the last sync attempt, as the workflow counts it; an
 * adaptive one is chosen by the workflow (which writes it back with saveSchedule).
 */
export async function setRefreshPolicy(sql: Sql, id: number, p: RefreshPolicyRow): Promise<CommunityRow | undefined> {
  const fixed = p.mode === 'fixed';
  const [row] = await sql<CommunityRow[]>`
    update communities set refresh_seconds = ${p.refreshSeconds}, refresh_policy = ${p.mode},
      min_refresh_seconds = ${p.minRefreshSeconds}, max_refresh_seconds = ${p.maxRefreshSeconds}, updated_at = now(),
      policy_changed_at = now()
      ${
        fixed
          ? sql`, interval_seconds = ${p.refreshSeconds}, refresh_reason = ${`fixed: ${p.refreshSeconds} s`},
      next_sync_at = case when last_attempt_at is null then next_sync_at
                          else greatest(now(), last_attempt_at + ${p.refreshSeconds} * interval '1 second') end`
          : sql``
      }
    where id = ${id} returning *`;
  return row;
}

export interface Schedule {
  state: 'waiting' | 'failing' | 'not_found' | 'dormant';
  /** The workflow's clock: the last success, and the end of the last attempt (the interval counts from there). */
  lastSyncAt: string | null;
  waitStartedAt: string;
  intervalSeconds: number;
  nextSyncAt: string;
  reason: string;
  consecutiveFailures: number;
  postsPerHour: number | null;
}

/** What the workflow decided after a sync: shown by lists, which do not ask every workflow. */
export async function saveSchedule(sql: Sql, ref: string, s: Schedule): Promise<void> {
  await sql`
    update communities set sync_state = ${s.state}, consecutive_failures = ${s.consecutiveFailures}, posts_per_hour = ${s.postsPerHour ?? null},
      -- A policy changed after this decision (a PATCH as the sync ended) is newer: keep what it wrote
      -- (the interval and the times it counted from); the workflow has the change and agrees.
      interval_seconds = case when policy_changed_at > ${s.waitStartedAt}::timestamptz then interval_seconds else ${s.intervalSeconds} end,
      next_sync_at = case when policy_changed_at > ${s.waitStartedAt}::timestamptz then next_sync_at else ${s.nextSyncAt}::timestamptz end,
      refresh_reason = case when policy_changed_at > ${s.waitStartedAt}::timestamptz then refresh_reason else ${s.reason} end,
      last_attempt_at = case when policy_changed_at > ${s.waitStartedAt}::timestamptz then last_attempt_at else ${s.waitStartedAt}::timestamptz end,
      last_update = case when policy_changed_at > ${s.waitStartedAt}::timestamptz then last_update
                         else coalesce(${s.lastSyncAt}::timestamptz, last_update) end,
      updated_at = now()
    where ref = ${ref}`;
}

/** Whether the metadata is older than `maxAgeSeconds` (or was never fetched). */
export function metadataIsStale(row: Pick<CommunityRow, 'metadata_fetched_at'>, maxAgeSeconds: number, now = Date.now()): boolean {
  const at = row.metadata_fetched_at ?? null;
  return !at || now - at.getTime() >= maxAgeSeconds * 1000;
}

export async function deleteCommunityRow(sql: Sql, id: number): Promise<boolean> {
  const rows = await sql`delete from communities where id = ${id} returning id`;
  return rows.length > 0;
}

/**
 * Removes a community's posts and its row together. The row is locked while its posts are
 * deleted, so a sync still in flight (which takes the row's key-share lock before writing, see
 * communityRowLock) cannot leave posts behind; if anything fails, the row stays and the
 * removal can be retried. `beforeDelete` runs once the row is locked (not at all when the row is
 * gone already); if it throws, nothing is removed. False when the row was gone.
 */
export async function deleteCommunity(
  router: ShardRouter,
  row: Pick<CommunityRow, 'id' | 'shard'>,
  beforeDelete?: () => Promise<void>,
): Promise<boolean> {
  return router.write(
    row.shard,
    async (sql, _node, tx, [locked]) => {
      if (!locked) return false;
      await beforeDelete?.();
      await deleteCommunityPosts(sql, row.id);
      await tx`delete from communities where id = ${row.id}`;
      return true;
    },
    { lockRows: (tx) => communityRowLock(tx, row.id, 'update') },
  );
}

/**
 * A shard write's lock on its community's row, for router.write's `lockRows`: no row when the
 * community was removed meanwhile. A sync's posts take it `key share`, which holds off a removal
 * (`update`, deleteCommunity) until they are committed.
 */
export function communityRowLock(catalogTx: Sql, id: number, mode: 'key share' | 'update'): PendingQuery<{ id: number }[]> {
  return catalogTx<{ id: number }[]>`
    select id from communities where id = ${id} ${mode === 'update' ? catalogTx`for update` : catalogTx`for key share`}`;
}

/** The states a community's status shows from the catalog (api/presenters.ts): `syncing` until a first sync ends. */
export const COMMUNITY_STATES = ['syncing', 'waiting', 'failing', 'not_found', 'dormant', 'paused'] as const;
export type CommunityState = (typeof COMMUNITY_STATES)[number];

export interface CommunityCounts {
  byState: Record<CommunityState, number>;
  /** Not paused, and the next sync more than `overdueAfterSeconds` past due. */
  overdue: number;
}

/** Every tracked community counted by state, and the overdue ones: what an operator watches through start-up and after. */
export async function communityCounts(sql: Sql, overdueAfterSeconds: number): Promise<CommunityCounts> {
  const rows = await sql<{ state: CommunityState; n: number; overdue: number }[]>`
    select case when paused_at is not null then 'paused' else coalesce(sync_state, 'syncing') end as state, count(*)::int as n,
      count(*) filter (where paused_at is null and next_sync_at < now() - ${overdueAfterSeconds} * interval '1 second')::int as overdue
    from communities group by 1`;
  const byState = Object.fromEntries(COMMUNITY_STATES.map((s) => [s, 0])) as Record<CommunityState, number>;
  let overdue = 0;
  for (const r of rows) {
    byState[r.state] = r.n;
    overdue += r.overdue;
  }
  return { byState, overdue };
}

/** How many communities have synced at least once. */
export async function syncedCommunityCount(sql: Sql): Promise<number> {
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from communities where last_update is not null`;
  return row.n;
}

/** id → ref for the communities of a page of posts. */
export async function communityRefsByIds(sql: Sql, ids: number[]): Promise<Map<number, string>> {
  if (ids.length === 0) return new Map();
  const rows = await sql<{ id: number; ref: string }[]>`select id, ref from communities where id = any(${ids}::bigint[])`;
  return new Map(rows.map((r) => [r.id, r.ref]));
}
