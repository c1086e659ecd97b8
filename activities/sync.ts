// syncCommunity: fetch a community and its newest posts from its home instance and store them.
// Idempotent: posts are upserted by (community, Lemmy id), so a retried or repeated sync writes
// no duplicates. Returns a small summary only, to keep workflow history small.
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Config } from '../src/config.js';
import { communityByRef, lockCommunityForWrite, saveSyncError, saveSyncSuccess } from '../src/db/communities.js';
import { isNotFoundFailure } from '../src/failures.js';
import type { Sql } from '../src/db/pool.js';
import { countPosts, newestStored, storedLemmyIds, upsertPosts, type PostInput } from '../src/db/posts.js';
import { ShardUnavailableError, type ShardRouter } from '../src/db/sharding/router.js';
import { BudgetExhaustedError } from '../src/db/instance-budget.js';
import { LemmyError, type LemmyClient } from '../src/lemmy/client.js';
import type { LemmyPost } from '../src/lemmy/schema.js';

export interface SyncInput {
  ref: string;
  /**
   * Ignored: the catalog row is the source of truth for where the community lives and how often
   * it is synced (kept optional so that histories of older runs still replay).
   */
  instance?: string;
  name?: string;
  refreshSeconds?: number;
}

export interface SyncSummary {
  /** False when the community is no longer in the catalog: nothing was written. */
  tracked: boolean;
  fetched: number;
  inserted: number;
  updated: number;
  pages: number;
  postsStored: number;
}

export interface SyncDeps {
  catalog: Sql;
  router: ShardRouter;
  lemmy: LemmyClient;
  config: Pick<Config, 'SYNC_MAX_PAGES' | 'BACKFILL_PAGES'>;
}

/** A sync gives up this long before its start-to-close timeout, so that no attempt outlives it. */
export const DEADLINE_MARGIN_MS = 5000;

/** The newest page a first sync stores; later syncs page back with the API maximum. */
export const FIRST_PAGE_SIZE = 20;
export const BACKFILL_PAGE_SIZE = 50;

export function toPostInput(p: LemmyPost): PostInput {
  return {
    lemmyId: p.post.id,
    apId: p.post.ap_id,
    title: p.post.name,
    url: p.post.url,
    body: p.post.body,
    author: p.creator?.name ?? null,
    thumbnail: p.post.thumbnail_url,
    published: p.post.published,
    updated: p.post.updated,
    score: p.counts.score,
    upvotes: p.counts.upvotes,
    downvotes: p.counts.downvotes,
    comments: p.counts.comments,
    nsfw: p.post.nsfw,
    featured: p.post.featured_community || p.post.featured_local,
  };
}

export function createSyncActivity(deps: SyncDeps) {
  const { catalog, router, lemmy, config } = deps;

  return async function syncCommunity(input: SyncInput): Promise<SyncSummary> {
    const ctx = Context.current();
    // Every request and budget wait stops when the activity is cancelled (the workflow was
    // cancelled, or the heartbeat timed out) or just before its start-to-close timeout: a
    // timed-out attempt must not run on beside its retry.
    const signal = AbortSignal.any([
      ctx.cancellationSignal,
      AbortSignal.timeout(Math.max(1000, ctx.info.startToCloseTimeoutMs - DEADLINE_MARGIN_MS)),
    ]);
    const untracked: SyncSummary = { tracked: false, fetched: 0, inserted: 0, updated: 0, pages: 0, postsStored: 0 };
    const row = await communityByRef(catalog, input.ref);
    if (!row) return untracked;
    // Heartbeat while slow requests are in flight too, so a dead worker is noticed within the
    // heartbeat timeout rather than the start-to-close timeout.
    const ticker = setInterval(() => ctx.heartbeat(), 2000);
    try {
      const community = await lemmy.getCommunity(row.instance, row.name, { signal });
      ctx.heartbeat('community fetched');

      // Pinned posts lead Lemmy's listing even with sort=New: dedupe by id, and never use them to
      // decide whether we have caught up with what is stored.
      const byId = new Map<number, LemmyPost>();
      const known = await router.read(row.shard, (sql) => newestStored(sql, row.id));
      let pages = 0;
      const fetchPage = async (limit: number, page: number) => {
        const posts = await lemmy.listPosts(row.instance, row.name, { limit, page }, { signal });
        pages += 1;
        ctx.heartbeat(`page ${page} (${limit})`);
        for (const p of posts) if (!byId.has(p.post.id)) byId.set(p.post.id, p);
        return posts;
      };
      // Caught up once a page reaches what we already have: a stored post, or one published
      // before the newest stored one. Before the first store, "what we have" is everything
      // published before tracking began, so posts that appear while a first sync is delayed
      // (worker down, instance failing) are not lost either.
      const since = Date.parse(known?.published ?? row.created_at.toISOString());
      const reachesStored = async (posts: LemmyPost[]): Promise<boolean> => {
        const regular = posts.filter((p) => !(p.post.featured_community || p.post.featured_local));
        if (regular.some((p) => Date.parse(p.post.published) <= since)) return true;
        if (!known) return false;
        const stored = await router.read(row.shard, (sql) =>
          storedLemmyIds(
            sql,
            row.id,
            regular.map((p) => p.post.id),
          ),
        );
        return stored.size > 0;
      };

      const first = await fetchPage(FIRST_PAGE_SIZE, 1);
      if (first.length >= FIRST_PAGE_SIZE && !(await reachesStored(first))) {
        // More posts appeared than one page holds: page back until we meet what we have
        // (numbered pages: cursors are unreliable on 0.19), within SYNC_MAX_PAGES.
        for (let page = 1; page <= config.SYNC_MAX_PAGES; page++) {
          const posts = await fetchPage(BACKFILL_PAGE_SIZE, page);
          if (posts.length < BACKFILL_PAGE_SIZE || (await reachesStored(posts))) break;
        }
      } else if (!known && first.length >= FIRST_PAGE_SIZE) {
        const pinned = first.filter((p) => p.post.featured_community || p.post.featured_local).length;
        if (pinned > 0) {
          // Pinned posts took places on the first page: the next page completes the newest 20.
          const next = await lemmy.listPosts(row.instance, row.name, { limit: FIRST_PAGE_SIZE, page: 2 }, { signal });
          pages += 1;
          for (const p of next.slice(0, pinned)) if (!byId.has(p.post.id)) byId.set(p.post.id, p);
        }
        for (let page = 1; page <= config.BACKFILL_PAGES; page++) {
          const posts = await fetchPage(BACKFILL_PAGE_SIZE, page);
          if (posts.length < BACKFILL_PAGE_SIZE) break;
        }
      }

      const posts = [...byId.values()].map(toPostInput);
      const written = await router.write(row.shard, async (sql, _node, tx) => {
        // The community may have been removed while we were fetching: then write nothing. The row
        // lock holds off a concurrent removal until these posts are committed (see stopTracking).
        if (!(await lockCommunityForWrite(tx, row.id))) return undefined;
        const result = await upsertPosts(sql, row.shard, row.id, posts);
        return { ...result, postsStored: await countPosts(sql, row.id) };
      });
      if (!written) return untracked;
      const { inserted, updated, postsStored } = written;
      const c = community.community;
      await saveSyncSuccess(
        catalog,
        row.id,
        {
          lemmyId: c.id,
          actorId: c.actor_id,
          title: c.title,
          description: c.description,
          icon: c.icon,
          banner: c.banner,
          nsfw: c.nsfw,
          subscribers: community.counts.subscribers,
          postsCount: community.counts.posts,
        },
        postsStored,
      );
      return { tracked: true, fetched: posts.length, inserted, updated, pages, postsStored };
    } catch (err) {
      // Cancelled (the community was removed, its run terminated, or the heartbeat timed out):
      // this attempt is abandoned, not a sync outcome. Nothing is recorded, and Temporal is told
      // it was cancelled rather than that it failed.
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
      const failure = toFailure(err);
      // Shown on the community row while Temporal retries; best effort, the catalog may be down too.
      const type = failure.type ?? 'Error';
      await saveSyncError(catalog, row.id, {
        type,
        message: failure.message,
        state: isNotFoundFailure(type) ? 'not_found' : 'failing',
      }).catch(() => {});
      throw failure;
    } finally {
      clearInterval(ticker);
    }
  };
}

/** Maps our errors onto Temporal's retry policy: permanent ones are non-retryable. */
export function toFailure(err: unknown): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof LemmyError) {
    return ApplicationFailure.create({
      type: err.type,
      message: err.message,
      nonRetryable: !err.retryable,
      nextRetryDelay: err.opts.retryAfterMs,
    });
  }
  if (err instanceof BudgetExhaustedError) {
    return ApplicationFailure.create({ type: 'BudgetExhausted', message: err.message, nextRetryDelay: err.retryAfterMs });
  }
  if ((err as { code?: string })?.code === '55P03') {
    // lock_timeout on the shard's write lock: a shard move is flipping the map right now.
    return ApplicationFailure.create({
      type: 'ShardBusy',
      message: "the community's shard is being moved; retrying shortly",
      nextRetryDelay: '2 seconds',
    });
  }
  if (err instanceof ShardUnavailableError) {
    return ApplicationFailure.create({ type: 'ShardUnavailable', message: err.message });
  }
  const e = err as Error;
  return ApplicationFailure.create({
    type: e?.name || 'Error',
    message: e?.message ?? String(err),
    cause: e instanceof Error ? e : undefined,
  });
}
