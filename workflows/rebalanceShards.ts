// Moves logical shards until nodes hold about equal numbers of posts. Plans from fresh counts
// before every move (posts keep arriving; a node may be added meanwhile) and runs the moves one
// at a time as moveShard children. Started with id `rebalance-shards`, conflict policy USE_EXISTING.
import { ApplicationFailure, ChildWorkflowFailure, executeChild, log, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { planMoves, type PlannedMove } from '../src/db/sharding/planner.js';
import { moveShard, moveShardWorkflowId } from './moveShard.js';

export interface RebalanceInput {
  /** Fraction above the average post count a node may hold (default 0.1). */
  tolerance?: number;
  /** Upper bound on moves in this run (default 64). */
  maxMoves?: number;
}

export interface RebalanceResult {
  moves: Array<PlannedMove & { ok: boolean; error?: string }>;
  before: Record<string, number>;
  after: Record<string, number>;
}

export async function rebalanceShards(input: RebalanceInput = {}): Promise<RebalanceResult> {
  const { shardLoads } = proxyActivities<Activities>({
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
    summary: 'count posts per node and logical shard',
  });
  const maxMoves = input.maxMoves ?? 64;
  const moves: RebalanceResult['moves'] = [];
  const failed = new Set<number>();
  let before: Record<string, number> | undefined;
  let after: Record<string, number> = {};

  while (moves.length < maxMoves) {
    const report = await shardLoads();
    after = totals(report.nodes, report.shards);
    before ??= after;
    const shards = report.shards.filter((s) => !failed.has(s.shard));
    const [next] = planMoves(report.nodes, shards, { tolerance: input.tolerance, maxMoves: 1 });
    if (!next) break;
    try {
      await executeChild(moveShard, {
        workflowId: moveShardWorkflowId(next.shard),
        args: [{ shard: next.shard, from: next.from, to: next.to }],
        staticSummary: `move shard ${next.shard} (${next.posts} posts): ${next.from} → ${next.to}`,
      });
      moves.push({ ...next, ok: true });
    } catch (err) {
      if (
        !(err instanceof ChildWorkflowFailure) &&
        !(err instanceof ApplicationFailure) &&
        !(err as Error)?.name?.includes('AlreadyStarted')
      )
        throw err;
      const message = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
      log.warn('shard move failed; skipping this shard', { shard: next.shard, message });
      failed.add(next.shard);
      moves.push({ ...next, ok: false, error: message });
    }
  }
  return { moves, before: before ?? {}, after };
}

function totals(nodes: string[], shards: Array<{ node: string; posts: number }>): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(nodes.map((n) => [n, 0]));
  for (const s of shards) out[s.node] = (out[s.node] ?? 0) + s.posts;
  return out;
}
