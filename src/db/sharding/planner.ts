// Pure planning of shard moves: given how many posts each logical shard holds and which node holds
// it, choose moves until nodes hold about equal numbers of posts. No I/O and no imports, so the
// rebalanceShards workflow can run it deterministically and tests can call it directly.

export interface ShardLoad {
  shard: number;
  node: string;
  posts: number;
}

export interface PlannedMove {
  shard: number;
  from: string;
  to: string;
  posts: number;
}

export interface PlanOptions {
  /** Stop once every node is within this fraction of the average (default 0.1). */
  tolerance?: number;
  /** Never plan more moves than this (default: the number of shards). */
  maxMoves?: number;
}

/**
 * Greedy: repeatedly move, from the heaviest node to the lightest, the shard whose size is closest
 * to half their gap (so the spread shrinks as much as possible), as long as the move strictly
 * lowers the heavier of the two. `nodes` lists every node that may hold shards, including empty
 * new ones. Ties are broken by node name and shard number, so the plan is deterministic.
 */
export function planMoves(nodes: string[], shards: ShardLoad[], opts: PlanOptions = {}): PlannedMove[] {
  const tolerance = opts.tolerance ?? 0.1;
  const maxMoves = opts.maxMoves ?? shards.length;
  const names = [...new Set([...nodes, ...shards.map((s) => s.node)])].sort();
  if (names.length < 2) return [];
  const placement = new Map(shards.map((s) => [s.shard, { ...s }]));
  const load = new Map(names.map((n) => [n, 0]));
  for (const s of placement.values()) load.set(s.node, (load.get(s.node) ?? 0) + s.posts);
  const total = [...load.values()].reduce((a, b) => a + b, 0);
  const avg = total / names.length;
  const moved = new Set<number>();
  const moves: PlannedMove[] = [];

  while (moves.length < maxMoves) {
    const ordered = [...names].sort((a, b) => load.get(b)! - load.get(a)! || a.localeCompare(b));
    const heavy = ordered[0];
    const light = ordered[ordered.length - 1];
    const gap = load.get(heavy)! - load.get(light)!;
    if (gap <= 0 || (load.get(heavy)! <= avg * (1 + tolerance) && load.get(light)! >= avg * (1 - tolerance))) break;
    let best: { shard: number; posts: number } | undefined;
    for (const s of placement.values()) {
      if (s.node !== heavy || moved.has(s.shard) || s.posts <= 0 || s.posts >= gap) continue;
      const score = Math.abs(gap / 2 - s.posts);
      const bestScore = best ? Math.abs(gap / 2 - best.posts) : Infinity;
      if (score < bestScore || (score === bestScore && best && s.shard < best.shard)) best = s;
    }
    if (!best) break;
    const s = placement.get(best.shard)!;
    moves.push({ shard: s.shard, from: heavy, to: light, posts: s.posts });
    load.set(heavy, load.get(heavy)! - s.posts);
    load.set(light, load.get(light)! + s.posts);
    s.node = light;
    moved.add(s.shard);
  }
  return moves;
}

/** Posts per node after applying `moves` (for status output and tests). */
export function loadsAfter(nodes: string[], shards: ShardLoad[], moves: PlannedMove[]): Map<string, number> {
  const where = new Map(shards.map((s) => [s.shard, s.node]));
  for (const m of moves) where.set(m.shard, m.to);
  const load = new Map<string, number>([...new Set([...nodes, ...shards.map((s) => s.node)])].sort().map((n) => [n, 0]));
  for (const s of shards) {
    const node = where.get(s.shard)!;
    load.set(node, (load.get(node) ?? 0) + s.posts);
  }
  return load;
}
