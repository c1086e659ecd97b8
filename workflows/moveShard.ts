// Moves one logical shard to another node: copy (resumable), catch up + flip the map under the
// shard's write lock, delete from the old node. Each step is its own activity with a summary, so
// the Web UI shows where a move is; each is idempotent, so a crashed worker just means a retry.
// Started with workflow id `move-shard-<n>` (moveShardWorkflowId) so one shard never has two moves.
import { log, proxyActivities, sleep, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { CleanupResult, CopyResult, FlipResult, MoveShardInput } from '../activities/shards.js';

export const moveShardWorkflowId = (shard: number) => `move-shard-${shard}`;

export interface MoveShardResult extends MoveShardInput {
  copy: CopyResult;
  flip: FlipResult;
  cleanup: CleanupResult;
}

/** Pause between the flip and the delete from the old node, ms. */
export const READ_GRACE_MS = 3000;

const RETRY: ActivityOptions['retry'] = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
  nonRetryableErrorTypes: ['ShardMoveConflict'],
};

export async function moveShard(input: MoveShardInput): Promise<MoveShardResult> {
  const { shard, from, to } = input;
  const { copyShard } = proxyActivities<Activities>({
    startToCloseTimeout: '2 hours',
    // A dead worker is noticed after this; the retry resumes from the last heartbeated key.
    heartbeatTimeout: '10 seconds',
    retry: RETRY,
    summary: `1/3 copy shard ${shard}: ${from} → ${to}`,
  });
  const { flipShard } = proxyActivities<Activities>({
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '30 seconds',
    retry: RETRY,
    summary: `2/3 catch up and flip shard ${shard} to ${to} (writes held)`,
  });
  const { cleanupShard } = proxyActivities<Activities>({
    startToCloseTimeout: '1 hour',
    heartbeatTimeout: '20 seconds',
    retry: RETRY,
    summary: `3/3 delete shard ${shard} from ${from}`,
  });

  const copy = await copyShard(input);
  log.info('copied', { shard, copied: copy.copied, alreadyMoved: copy.alreadyMoved });
  const flip = await flipShard(input);
  log.info('flipped', { shard, caughtUp: flip.caughtUp, heldMs: flip.heldMs, alreadyFlipped: flip.alreadyFlipped });
  // Cross-shard reads that looked up the map just before the flip may still be reading the old
  // node; give them a moment before the rows they read disappear from it.
  if (!flip.alreadyFlipped) await sleep(READ_GRACE_MS);
  const cleanup = await cleanupShard(input);
  log.info('cleaned up', { shard, deleted: cleanup.deleted });
  return { ...input, copy, flip, cleanup };
}
