// The post change log on each shard node (migrations/shard/003_post_events.sql), as the live
// stream reads it: events since a seq (with the post as it is now), the log's bounds for resume
// checks, and pruning by age and size. Also the catalog lookup of a user's followed communities.
import type { Sql } from './pool.js';
import type { PostRow } from './posts.js';

/** The channel the trigger notifies on commit; the payload is the community id. */
export const POST_EVENTS_CHANNEL = 'post_events';

/** Advisory-lock keys on a shard node: (20549, 0) orders commits (the trigger), (20549, 1) is held while pruning. */
const POST_EVENTS_LOCK = 20549;

export interface PostEvent {
  seq: number;
  communityId: number;
  lemmyId: number;
  /** The post as stored now; undefined when it has been deleted since (community removed, shard moved away). */
  post: PostRow | undefined;
}

export interface PostEventPage {
  events: PostEvent[];
  /** Seq of the page's last event (also when its post is gone), undefined for an empty page. */
  lastSeq: number | undefined;
  /** The page was full: read again after lastSeq. */
  more: boolean;
}

type EventRow = PostRow & { event_seq: number; event_community_id: number; event_lemmy_id: number };

/**
 * Events with seq > `afterSeq` in seq order, only of `communityIds` when given. Paged on the
 * events themselves, so events whose post is gone still move the reader on.
 */
export async function postEventsSince(
  sql: Sql,
  afterSeq: number,
  opts: { communityIds?: readonly number[]; limit?: number } = {},
): Promise<PostEventPage> {
  const limit = opts.limit ?? 1000;
  const ids = opts.communityIds;
  if (ids && ids.length === 0) return { events: [], lastSeq: undefined, more: false };
  const rows = await sql<EventRow[]>`
    select e.seq as event_seq, e.community_id as event_community_id, e.lemmy_id as event_lemmy_id, p.*,
           to_char(p.published at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as published_iso
    from (select seq, community_id, lemmy_id from post_events
          where seq > ${afterSeq} ${ids ? sql`and community_id = any(${ids as number[]}::bigint[])` : sql``}
          order by seq limit ${limit}) e
    left join posts p on p.community_id = e.community_id and p.lemmy_id = e.lemmy_id
    order by e.seq`;
  const events = rows.map((r): PostEvent => {
    const { event_seq, event_community_id, event_lemmy_id, ...post } = r;
    return { seq: event_seq, communityId: event_community_id, lemmyId: event_lemmy_id, post: post.lemmy_id == null ? undefined : post };
  });
  return { events, lastSeq: events.at(-1)?.seq, more: rows.length === limit };
}

/**
 * Posts by key on a node: for events whose post has moved to another node with its shard (the
 * copy made no event there, and the source's copy is deleted after the move).
 */
export async function postsByKeys(sql: Sql, keys: ReadonlyArray<{ communityId: number; lemmyId: number }>): Promise<PostRow[]> {
  if (keys.length === 0) return [];
  return sql<PostRow[]>`
    select *, to_char(published at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as published_iso from posts
    where (community_id, lemmy_id) in (
      select * from unnest(${keys.map((k) => k.communityId)}::bigint[], ${keys.map((k) => k.lemmyId)}::bigint[]))`;
}

/** Community id → logical shard (catalog); removed communities are absent. */
export async function communityShards(catalog: Sql, ids: readonly number[]): Promise<Map<number, number>> {
  if (ids.length === 0) return new Map();
  const rows = await catalog<
    { id: number; shard: number }[]
  >`select id, shard from communities where id = any(${ids as number[]}::bigint[])`;
  return new Map(rows.map((r) => [Number(r.id), r.shard]));
}

/** The newest committed seq (0 for an empty log): "now" for a new reader. */
export async function latestPostEventSeq(sql: Sql): Promise<number> {
  const [row] = await sql<{ seq: number }[]>`select coalesce(max(seq), 0)::bigint as seq from post_events`;
  return Number(row.seq);
}

export interface PostEventBounds {
  /** Every seq up to this one has been pruned. */
  prunedThrough: number;
  /** The last seq handed out (0 before the first); a cursor beyond it is from another log. */
  lastIssued: number;
  /** The oldest seq still kept, if any. */
  minSeq: number | undefined;
}

export async function postEventBounds(sql: Sql): Promise<PostEventBounds> {
  const [row] = await sql<{ pruned_through: number; last_issued: number; min_seq: number | null }[]>`
    select pruned_through,
           (select case when is_called then last_value else 0 end from post_events_seq_seq) as last_issued,
           (select min(seq) from post_events) as min_seq
    from post_events_pruned`;
  return { prunedThrough: Number(row.pruned_through), lastIssued: Number(row.last_issued), minSeq: row.min_seq ?? undefined };
}

export interface PruneOptions {
  /** Events older than this go. */
  maxAgeSeconds: number;
  /** At most this many of the newest seqs are kept. */
  maxEvents: number;
  /** Rows per delete, so each transaction is short. */
  batch?: number;
}

/**
 * Deletes a prefix of the log (everything up to the first event young enough to keep, and beyond
 * the newest `maxEvents`) in small batches, recording how far in the same statement. Only one
 * process prunes a node at a time (a session advisory lock); `undefined` means another one is.
 * Writers are not held up: they only insert new seqs, the deletes take old ones.
 */
export async function prunePostEvents(sql: Sql, opts: PruneOptions): Promise<{ deleted: number; prunedThrough: number } | undefined> {
  const batch = opts.batch ?? 5000;
  const conn = await sql.reserve();
  try {
    const [{ locked }] = await conn<{ locked: boolean }[]>`select pg_try_advisory_lock(${POST_EVENTS_LOCK}, 1) as locked`;
    if (!locked) return undefined;
    try {
      // Scans the old rows in seq order up to the first young one: the rows about to be deleted.
      const [bounds] = await conn<{ first_young: number | null; max_seq: number | null; pruned_through: number }[]>`
        select (select seq from post_events where at >= now() - make_interval(secs => ${opts.maxAgeSeconds}) order by seq limit 1) as first_young,
               (select max(seq) from post_events) as max_seq,
               pruned_through
        from post_events_pruned`;
      if (bounds.max_seq == null) return { deleted: 0, prunedThrough: Number(bounds.pruned_through) };
      const maxSeq = Number(bounds.max_seq);
      const byAge = bounds.first_young == null ? maxSeq : Number(bounds.first_young) - 1;
      const bySize = maxSeq - opts.maxEvents;
      const upTo = Math.max(byAge, bySize);
      let deleted = 0;
      let prunedThrough = Number(bounds.pruned_through);
      while (upTo > prunedThrough) {
        const [step] = await conn<{ n: number; through: number }[]>`
          with gone as (
            delete from post_events
            where seq in (select seq from post_events where seq <= ${upTo} order by seq limit ${batch})
            returning seq)
          update post_events_pruned
          set pruned_through = greatest(pruned_through, case when (select count(*) from gone) < ${batch} then ${upTo}
                                                            else (select max(seq) from gone) end)
          returning (select count(*)::int from gone) as n, pruned_through as through`;
        deleted += step.n;
        prunedThrough = Number(step.through);
      }
      return { deleted, prunedThrough };
    } finally {
      await conn`select pg_advisory_unlock(${POST_EVENTS_LOCK}, 1)`;
    }
  } finally {
    conn.release();
  }
}

/** The communities a user follows (catalog), or undefined when there is no such user. */
export async function followedCommunityIds(catalog: Sql, userName: string): Promise<number[] | undefined> {
  const rows = await catalog<{ id: number; community_id: number | null }[]>`
    select u.id, f.community_id from users u left join community_follows f on f.user_id = u.id where u.name = ${userName}`;
  if (rows.length === 0) return undefined;
  return rows.flatMap((r) => (r.community_id == null ? [] : [Number(r.community_id)]));
}
