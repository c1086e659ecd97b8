// Pure rebalance planning (src/db/rebalance.ts).
import { describe, expect, it } from 'vitest';
import { loadsAfter, planMoves, type ShardLoad } from '../src/db/sharding/planner.js';

const spread = (nodes: string[], sizes: number[]): ShardLoad[] =>
  sizes.map((posts, shard) => ({ shard, node: nodes[shard % nodes.length], posts }));

describe('planMoves', () => {
  it('moves shards onto a new empty node until loads are about equal', () => {
    const shards = spread(
      ['a', 'b'],
      Array.from({ length: 64 }, (_, i) => 100 + ((i * 37) % 50)),
    );
    const moves = planMoves(['a', 'b', 'c'], shards);
    expect(moves.length).toBeGreaterThan(0);
    expect(moves.every((m) => m.to === 'c' || m.from !== m.to)).toBe(true);
    const loads = [...loadsAfter(['a', 'b', 'c'], shards, moves).values()];
    const avg = loads.reduce((a, b) => a + b, 0) / 3;
    for (const l of loads) expect(Math.abs(l - avg) / avg).toBeLessThan(0.1);
    expect(new Set(moves.map((m) => m.shard)).size).toBe(moves.length); // each shard at most once
  });

  it('plans nothing when balanced, for one node, or when no move helps', () => {
    expect(planMoves(['a', 'b'], spread(['a', 'b'], Array(64).fill(10)))).toEqual([]);
    expect(planMoves(['a'], spread(['a'], Array(64).fill(10)))).toEqual([]);
    // one huge shard: moving it would only swap the imbalance
    expect(
      planMoves(
        ['a', 'b'],
        [
          { shard: 0, node: 'a', posts: 1000 },
          { shard: 1, node: 'b', posts: 10 },
        ],
      ),
    ).toEqual([]);
    expect(planMoves(['a', 'b', 'c'], spread(['a', 'b'], Array(64).fill(0)))).toEqual([]);
  });

  it('is deterministic and respects maxMoves', () => {
    const shards = spread(
      ['a', 'b', 'c'],
      Array.from({ length: 64 }, (_, i) => (i < 20 ? 500 : 5)),
    );
    const one = planMoves(['a', 'b', 'c', 'd'], shards);
    expect(planMoves(['a', 'b', 'c', 'd'], shards)).toEqual(one);
    expect(planMoves(['a', 'b', 'c', 'd'], shards, { maxMoves: 1 })).toEqual(one.slice(0, 1));
    // every move lowers the heaviest-loaded pair's maximum
    const before = Math.max(...loadsAfter(['a', 'b', 'c', 'd'], shards, []).values());
    const after = Math.max(...loadsAfter(['a', 'b', 'c', 'd'], shards, one).values());
    expect(after).toBeLessThan(before);
  });
});
