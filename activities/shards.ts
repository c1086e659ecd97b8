// Activities that move logical shards between post-shard nodes (see workflows/moveShard.ts).
// Each step is idempotent: re-running it after a crash, a retry or a completed run is safe.
//   copyShard     bulk copy in keyset batches; heartbeats the last copied key, a retry resumes there
//   flipShard     under the shard's exclusive write lock: make the target exactly equal to the
//                 source for that shard, verify, and point shard_map at the target (one transaction)
//   cleanupShard  delete the shard's rows from the source once the map no longer points at it
// The SQL is in src/db/shard-moves.ts; here are only Temporal's concerns: heartbeats, resuming
// from heartbeat details, and which failures are not worth retrying.
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Sql } from '../src/db/pool.js';
import {
  COPY_BATCH,
  ShardMoveConflict,
  bulkCopy,
  deleteShardPostsBatch,
  DELETE_BATCH,
  flipShardMap,
  nodeNow,
  reconcile,
  shardLoads,
  shardNode,
  type CopyProgress,
  type FlipResult,
  type ShardLoadReport,
} from '../src/db/sharding/moves.js';
import { LOGICAL_SHARDS, type ShardRouter } from '../src/db/sharding/router.js';

export type { CopyProgress, FlipResult, ShardLoadReport };

export interface MoveShardInput {
  shard: number;
  from: string;
  to: string;
  /** Rows per copy batch (default COPY_BATCH). */
  batchSize?: number;
}

export interface CopyResult {
  alreadyMoved: boolean;
  copied: number;
  startedAt: string | null;
  /** Rows already copied by an earlier attempt when this one started (resumed from its heartbeat). */
  resumedFrom: number;
}

export interface CleanupResult {
  deleted: number;
}

/** Errors that mean the move cannot go on as asked: not retried. */
export const MOVE_CONFLICT = 'ShardMoveConflict';

export interface ShardActivityDeps {
  catalog: Sql;
  router: ShardRouter;
}

function conflict(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: MOVE_CONFLICT, message, nonRetryable: true });
}

/** Storage's "cannot go on as asked" becomes a non-retryable failure; anything else is retried. */
async function asActivity<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof ShardMoveConflict) throw conflict(err.message);
    throw err;
  }
}

function validate(router: ShardRouter, input: MoveShardInput): void {
  const { shard, from, to } = input;
  if (!Number.isInteger(shard) || shard < 0 || shard >= LOGICAL_SHARDS) throw conflict(`shard must be 0..${LOGICAL_SHARDS - 1}`);
  if (from === to) throw conflict('source and target are the same node');
  for (const node of [from, to]) {
    if (!router.nodeNames().includes(node)) throw new Error(`unknown post-shard node "${node}"`); // retried after refreshNodes
  }
}

function heartbeat(details?: unknown): void {
  Context.current().heartbeat(details);
}

export function createShardActivities({ router, catalog }: ShardActivityDeps) {
  return {
    /** Per-node, per-shard post counts for planning. */
    async shardLoads(): Promise<ShardLoadReport> {
      return shardLoads(router);
    },

    /** Step 1: bulk copy, resumable from the last heartbeated key. */
    copyShard: (input: MoveShardInput): Promise<CopyResult> =>
      asActivity(async () => {
        await router.refreshNodes();
        validate(router, input);
        const { shard, from, to } = input;
        const node = await shardNode(catalog, shard);
        if (node === to) return { alreadyMoved: true, copied: 0, startedAt: null, resumedFrom: 0 };
        if (node !== from) throw new ShardMoveConflict(`shard ${shard} is on "${node}", not on "${from}"`);
        const source = router.pool(from);
        let progress = Context.current().info.heartbeatDetails as CopyProgress | undefined;
        if (!progress?.startedAt) progress = { lastKey: null, copied: 0, startedAt: await nodeNow(source) };
        const resumedFrom = progress.copied;
        heartbeat(progress);
        const batch = Math.min(Math.max(Math.floor(input.batchSize ?? COPY_BATCH), 1), 10_000);
        const done = await bulkCopy(source, router.pool(to), shard, progress, (p) => heartbeat(p), batch);
        return { alreadyMoved: false, copied: done.copied, startedAt: done.startedAt, resumedFrom };
      }),

    /**
     * Step 2: catch up and flip. A first reconcile without the lock copies most of what changed
     * during the bulk copy; then the flip holds the shard's writes for the final, exact catch-up.
     */
    flipShard: (input: MoveShardInput): Promise<FlipResult> =>
      asActivity(async () => {
        await router.refreshNodes();
        validate(router, input);
        const { shard, from, to } = input;
        if ((await shardNode(catalog, shard)) === to) return { alreadyFlipped: true, caughtUp: 0, removed: 0, rows: 0, heldMs: 0 };
        const source = router.pool(from);
        const target = router.pool(to);
        const progress = (rows: number) => heartbeat({ reconciled: rows });
        await reconcile(source, target, shard, progress);
        heartbeat('locking');
        return flipShardMap(catalog, source, target, { shard, from, to }, progress);
      }),

    /** Step 3: delete the shard's rows from the old node, in batches. */
    cleanupShard: (input: MoveShardInput): Promise<CleanupResult> =>
      asActivity(async () => {
        await router.refreshNodes();
        const { shard, from } = input;
        if ((await shardNode(catalog, shard)) === from)
          throw new ShardMoveConflict(`shard ${shard} still maps to "${from}": refusing to delete its rows`);
        const source = router.pool(from);
        let deleted = 0;
        for (;;) {
          const n = await deleteShardPostsBatch(source, shard);
          deleted += n;
          heartbeat({ deleted });
          if (n < DELETE_BATCH) break;
        }
        return { deleted };
      }),
  };
}
