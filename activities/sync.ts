// syncCommunity: fetch a source's newest items (and its metadata, when stale) through its adapter and
// store them. Idempotent: posts are upserted by (source, item id), so a retried or repeated sync
// writes no duplicates. Returns a small summary only, to keep workflow history small.
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Config } from '../src/config.js';
import {
  communityByRef,
  communityRowLock,
  metadataIsStale,
  saveSyncError,
  saveSyncSuccess,
  type CommunityRow,
} from '../src/db/communities.js';
import { CONNECTIVITY_FAILURE_TYPES, isNotFoundFailure, isPermanentFailure } from '../src/failures.js';
import type { Sql } from '../src/db/pool.js';
import { contentHashOf, newestStored, storedHashes, storedLemmyIds, upsertPosts, type PostInput } from '../src/db/posts.js';
import { ShardUnavailableError, type ShardRouter } from '../src/db/sharding/router.js';
import { BudgetExhaustedError, connectivityLost, recordHostOutcome } from '../src/db/instance-budget.js';
import { SourceError } from '../src/sources/errors.js';
import { withDeadline } from '../src/net/deadline.js';
import { observeScheduleLag, postsInserted, postsUpdated, recordSync } from '../src/metrics/index.js';
import type { Sources } from '../src/sources/registry.js';
import { postingRateOf, type SourceTarget, type SyncContext } from '../src/sources/types.js';
import { scheduleAfterSuccess, type PlannedSchedule, type SchedulePlan } from '../workflows/refreshPolicy.js';

export interface SyncInput {
  ref: string;
  /**
   * Ignored: the catalog row is the source of truth for where the community lives and how often
   * it is synced (kept optional so that histories of older runs still replay).
   */
  instance?: string;
  name?: string;
  refreshSeconds?: number;
  /** A quick attempt came first (and measured the schedule lag). */
  afterQuickAttempt?: boolean;
  /**
   * The workflow's state for deciding the next interval (absent from runs started before): on
   * success the sync decides it, saves it with its result and returns it (`schedule`), which
   * spares the workflow a second write.
   */
  plan?: SchedulePlan;
}

export interface SyncSummary {
  /** False when the community is no longer in the catalog: nothing was written. */
  tracked: boolean;
  fetched: number;
  inserted: number;
  updated: number;
  /** HTTP requests made (named pages before other sources; kept for older histories). */
  pages: number;
  postsStored: number;
  /** The source said nothing changed (HTTP 304). */
  notModified?: boolean;
  /** Items per hour, from the publication times of what was fetched: a first estimate of the posting rate. */
  sampleRatePerHour?: number;
  /** The source asks not to be asked again sooner (seconds). */
  minIntervalSeconds?: number;
  /**
   * When the sync was saved, as the catalog holds it (absent in results recorded before): the
   * workflow shows this lastSyncAt and counts the interval from it, so that lists never see the
   * catalog's time and then the workflow's a moment later.
   */
  syncedAt?: string;
  /** The next interval, decided from the input's plan and saved with the result. */
  schedule?: PlannedSchedule;
}

export interface SyncDeps {
  catalog: Sql;
  router: ShardRouter;
  sources: Sources;
  config: Pick<Config, 'SYNC_MAX_PAGES' | 'BACKFILL_PAGES' | 'METADATA_REFRESH_SECONDS' | 'OFFLINE_WINDOW_SECONDS'>;
}

/** A sync gives up this long before its start-to-close timeout, so that no attempt outlives it. */
export const DEADLINE_MARGIN_MS = 5000;
/** The same margin for a quick (local) attempt, whose whole timeout is a few seconds. */
export const QUICK_DEADLINE_MARGIN_MS = 500;

/**
 * A quick attempt (the workflow's local activity) that could not finish: the workflow runs the
 * sync again as a regular activity, with retries and heartbeats. Nothing of it is recorded as a
 * failure: the regular attempt's outcome is the sync's.
 */
export const HANDED_OVER = 'HandedOver';

export function targetOf(row: CommunityRow): SourceTarget {
  return {
    kind: row.kind,
    ref: row.ref,
    instance: row.instance,
    host: row.host,
    name: row.name,
    url: row.source_url,
    state: row.source_state ?? {},
    trackedSince: row.created_at,
  };
}

/** Only new posts and posts whose content changed: a sync that finds nothing new writes nothing. */
async function changedPosts(router: ShardRouter, row: CommunityRow, posts: PostInput[]): Promise<PostInput[]> {
  if (posts.length === 0) return [];
  const stored = await router.read(row.shard, (sql) =>
    storedHashes(
      sql,
      row.id,
      posts.map((p) => p.lemmyId),
    ),
  );
  return posts.filter((p) => stored.get(p.lemmyId) !== contentHashOf(p));
}

export function createSyncActivity(deps: SyncDeps) {
  const { catalog, router, sources, config } = deps;
  // A host's last success is written at most this often by one worker (not once per sync): only
  // connectivityLost reads it, over the last OFFLINE_WINDOW_SECONDS. A failure is written at once
  // and clears the mark, so the next success after it is written at once too.
  const okMarkEveryMs = Math.min(30_000, (config.OFFLINE_WINDOW_SECONDS * 1000) / 4);
  const okMarkedAt = new Map<string, number>();
  const hostAnswered = async (host: string) => {
    const now = Date.now();
    if ((okMarkedAt.get(host) ?? Number.NEGATIVE_INFINITY) > now - okMarkEveryMs) return;
    okMarkedAt.set(host, now);
    await recordHostOutcome(catalog, host, true).catch(() => okMarkedAt.delete(host));
  };
  const hostFailed = async (host: string) => {
    okMarkedAt.delete(host);
    await recordHostOutcome(catalog, host, false).catch(() => {});
  };

  return async function syncCommunity(input: SyncInput): Promise<SyncSummary> {
    const ctx = Context.current();
    // A local activity: the workflow's quick attempt, inside its workflow task (no heartbeats).
    const quick = ctx.info.isLocal;
    // Every request and budget wait stops when the activity is cancelled (the workflow was
    // cancelled, or the heartbeat timed out) or just before its start-to-close timeout: a
    // timed-out attempt must not run on beside its retry. The budget reads the deadline too.
    const ownTimeMs = Math.max(
      quick ? 100 : 1000,
      ctx.info.startToCloseTimeoutMs - (quick ? QUICK_DEADLINE_MARGIN_MS : DEADLINE_MARGIN_MS),
    );
    const signal = withDeadline(AbortSignal.any([ctx.cancellationSignal, AbortSignal.timeout(ownTimeMs)]), Date.now() + ownTimeMs);
    const untracked: SyncSummary = { tracked: false, fetched: 0, inserted: 0, updated: 0, pages: 0, postsStored: 0 };
    const started = performance.now();
    const row = await communityByRef(catalog, input.ref);
    const done = (outcome: string, errorType = 'none') =>
      recordSync(row?.kind ?? 'unknown', outcome, errorType, (performance.now() - started) / 1000);
    if (!row) {
      done('untracked');
      return untracked;
    }
    if (!input.afterQuickAttempt) observeScheduleLag(row.kind, row.next_sync_at, ctx.info.attempt);
    // Heartbeat while slow requests are in flight too, so a dead worker is noticed within the
    // heartbeat timeout rather than the start-to-close timeout. (A local activity cannot: its
    // workflow task's timeout notices a dead worker.)
    const ticker = quick ? undefined : setInterval(() => ctx.heartbeat(), 2000);
    try {
      const adapter = sources.adapter(row.kind);
      const source = targetOf(row);
      const syncCtx: SyncContext = {
        signal,
        heartbeat: (detail) => (quick ? undefined : ctx.heartbeat(detail)),
        newestStored: async () => (await router.read(row.shard, (sql) => newestStored(sql, row.id)))?.published,
        storedIds: (ids) => router.read(row.shard, (sql) => storedLemmyIds(sql, row.id, ids)),
        maxPages: config.SYNC_MAX_PAGES,
        backfillPages: config.BACKFILL_PAGES,
      };
      // Metadata changes slowly: ask for it only when it is stale, not on every sync.
      const metadata = metadataIsStale(row, config.METADATA_REFRESH_SECONDS) ? await adapter.fetchMetadata(source, syncCtx) : undefined;
      const fetched = await adapter.fetchNewest(source, syncCtx);
      const requests = fetched.requests + (metadata ? 1 : 0);

      const byId = new Map<number, PostInput>();
      for (const p of fetched.posts) if (!byId.has(p.lemmyId)) byId.set(p.lemmyId, p);
      const posts = [...byId.values()];
      const changed = await changedPosts(router, row, posts);
      let inserted = 0;
      let updated = 0;
      if (changed.length > 0) {
        // The community may have been removed while we were fetching: then its row is gone and
        // nothing is written. The row lock holds off a concurrent removal until these posts are
        // committed (see stopTracking).
        const written = await router.write(
          row.shard,
          async (sql, _node, _tx, [still]) => (still ? upsertPosts(sql, row.shard, row.id, changed) : undefined),
          { lockRows: (tx) => communityRowLock(tx, row.id, 'key share') },
        );
        if (!written) {
          done('untracked');
          return untracked;
        }
        ({ inserted, updated } = written);
      }
      // A first sync's page tells how often the source posts (later syncs count new posts instead).
      const sampleRate = row.syncs === 0 ? postingRateOf(posts) : undefined;
      const at = new Date();
      const schedule = input.plan
        ? scheduleAfterSuccess(input.plan, {
            inserted,
            syncedAtMs: at.getTime(),
            sampleRatePerHour: sampleRate,
            minIntervalSeconds: fetched.minIntervalSeconds,
          })
        : undefined;
      const saved = await saveSyncSuccess(catalog, row.id, {
        metadata: metadata ?? fetched.metadata,
        state: fetched.state,
        inserted,
        ...(schedule
          ? { at, schedule: { intervalSeconds: schedule.refreshSeconds, reason: schedule.reason, postsPerHour: schedule.postsPerHour } }
          : {}),
      });
      if (!saved) {
        done('untracked');
        return untracked;
      }
      done(fetched.notModified ? 'not_modified' : 'ok');
      postsInserted.inc({ kind: row.kind }, inserted);
      postsUpdated.inc({ kind: row.kind }, updated);
      await hostAnswered(row.host);
      return {
        tracked: true,
        fetched: posts.length,
        inserted,
        updated,
        pages: requests,
        postsStored: saved.postsStored,
        syncedAt: saved.syncedAt,
        ...(schedule ? { schedule } : {}),
        ...(fetched.notModified ? { notModified: true } : {}),
        ...(sampleRate !== undefined ? { sampleRatePerHour: sampleRate } : {}),
        ...(fetched.minIntervalSeconds ? { minIntervalSeconds: fetched.minIntervalSeconds } : {}),
      };
    } catch (err) {
      // Cancelled (the community was removed, its run terminated, or the heartbeat timed out):
      // this attempt is abandoned, not a sync outcome. Nothing is recorded, and Temporal is told
      // it was cancelled rather than that it failed.
      if (ctx.cancellationSignal.aborted) {
        done('cancelled', 'Cancelled');
        throw ctx.cancellationSignal.reason;
      }
      let failure = toFailure(err);
      const type = failure.type ?? 'Error';
      // A permanent failure (not found, not Lemmy…) is as final from a quick attempt as from a
      // regular one: recorded below and not retried. Anything else may pass: the regular activity
      // runs the sync, with its retries.
      if (quick && !isPermanentFailure(type)) {
        done('handed_over', type);
        throw ApplicationFailure.create({ type: HANDED_OVER, message: `${type}: ${failure.message}`, nonRetryable: true });
      }
      if ((CONNECTIVITY_FAILURE_TYPES as readonly string[]).includes(type)) {
        await hostFailed(row.host);
        if (await connectivityLost(catalog, config.OFFLINE_WINDOW_SECONDS).catch(() => false)) {
          failure = ApplicationFailure.create({
            type: 'Offline',
            message: `no source has answered for ${config.OFFLINE_WINDOW_SECONDS} s: our connectivity, not ${row.host}, is at fault (${failure.message})`,
          });
        }
      }
      // Shown on the community row while Temporal retries; best effort, the catalog may be down too.
      await saveSyncError(catalog, row.id, {
        type: failure.type ?? type,
        message: failure.message,
        state: isNotFoundFailure(type) ? 'not_found' : 'failing',
      }).catch(() => {});
      done('failed', failure.type ?? type);
      throw failure;
    } finally {
      if (ticker) clearInterval(ticker);
    }
  };
}

/** Maps our errors onto Temporal's retry policy: permanent ones are non-retryable. */
export function toFailure(err: unknown): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof SourceError) {
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
