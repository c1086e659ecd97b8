// A post-shard node stopped and restarted: cross-shard reads answer partial, syncs of communities
// on that node fail and are retried by Temporal, and complete once it is back; nothing is lost.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { countPosts, newestPosts } from '../src/db/posts.js';
import { EmbeddedPostgresNode } from '../src/db/embedded.js';
import { communityByRef } from '../src/db/communities.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { communityRef } from '../src/sources/lemmy/refs.js';
import { createLogger } from '../src/log.js';
import { startTracking } from '../src/tracking.js';
import { FakeLemmy } from './fake-lemmy.js';
import { freePort } from './support/ports.js';
import { createDatabase, createStack, eventually, type Stack } from './support/stack.js';

describe('sharding: a node goes down and comes back', () => {
  let stack: Stack;
  let fake: FakeLemmy;
  let own: EmbeddedPostgresNode;
  const expected = new Map<string, number>();
  const onNode = new Map<string, string>(); // name -> node

  beforeAll(async () => {
    own = new EmbeddedPostgresNode({
      name: 'failover-b',
      dir: path.join(inject('tmpDir'), `failover-${Date.now()}`),
      port: await freePort(),
      log: createLogger({ level: 'warn' }),
      settings: { fsync: 'off' },
    });
    await own.start();
    const shared = await createDatabase(inject('pgUrls')[1], `failover_${Date.now()}_a`);
    stack = await createStack({ shards: 1, env: { POST_SHARD_URLS: `a=${shared},b=${own.url}`, BACKFILL_PAGES: '5' } });
    fake = await FakeLemmy.start();
    // Four communities on each node (shard map alternates a, b over the 64 logical shards).
    const map = await stack.storage.router.shardMap();
    const picked = { a: 0, b: 0 } as Record<string, number>;
    for (let i = 0; picked.a + picked.b < 8; i++) {
      const name = `fo_${i}`;
      const node = map.get(logicalShardOf(communityRef(name, fake.hostPort)))!;
      if (picked[node] >= 4) continue;
      picked[node] += 1;
      onNode.set(name, node);
      fake.addCommunity(name);
      fake.addPosts(name, 15);
      expected.set(name, 15);
    }
    for (const name of onNode.keys()) {
      await startTracking(
        { config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: stack.client },
        { instance: fake.url, host: fake.hostPort, name, refreshSeconds: 1 },
      );
    }
  });
  afterAll(async () => {
    await stack?.stop();
    await fake?.close();
    await own?.stop();
  });

  const stored = async (name: string) => {
    const row = await communityByRef(stack.storage.catalog, communityRef(name, fake.hostPort));
    return row ? stack.storage.router.read(row.shard, (sql) => countPosts(sql, row.id)) : 0;
  };
  const allStored = async () => {
    for (const [name, n] of expected) if ((await stored(name)) !== n) return false;
    return true;
  };

  it('keeps reads and the other node working, and catches up after the restart', async () => {
    await eventually(allStored, 30_000);
    const full = await newestPosts(stack.storage.router, 100);
    expect(full).toMatchObject({ partial: false, missingNodes: [] });
    expect(full.posts).toHaveLength(100); // 120 stored, first page of 100

    await own.stop();
    const partial = await newestPosts(stack.storage.router, 100);
    expect(partial.partial).toBe(true);
    expect(partial.missingNodes).toEqual(['b']);
    expect(partial.posts.length).toBe(60); // the 4 × 15 posts on node a
    expect(new Set(partial.posts.map((p) => p.shard)).size).toBeGreaterThan(0);

    // New posts everywhere while b is down: a's communities keep syncing, b's fail and retry.
    for (const name of expected.keys()) {
      fake.addPosts(name, 5);
      expected.set(name, expected.get(name)! + 5);
    }
    const onA = [...onNode].filter(([, n]) => n === 'a').map(([name]) => name);
    const onB = [...onNode].filter(([, n]) => n === 'b').map(([name]) => name);
    await eventually(async () => {
      for (const name of onA) if ((await stored(name)) !== expected.get(name)) return false;
      return true;
    }, 20_000);
    await expect(stored(onB[0])).rejects.toThrow(/unavailable/);
    await eventually(async () => {
      const row = await communityByRef(stack.storage.catalog, communityRef(onB[0], fake.hostPort));
      return row?.last_error_code === 'ShardUnavailable';
    }, 20_000);

    await own.start();
    await eventually(allStored, 60_000);
    const after = await newestPosts(stack.storage.router, 100);
    expect(after.partial).toBe(false);
    // Every post exactly once across both nodes.
    let total = 0;
    for (const node of ['a', 'b']) {
      const [{ n, d }] = await stack.storage.router.pool(node)<{ n: number; d: number }[]>`
        select count(*)::int as n, count(distinct (community_id, lemmy_id))::int as d from posts`;
      expect(n).toBe(d);
      total += n;
    }
    expect(total).toBe([...expected.values()].reduce((a, b) => a + b, 0));
  });
});
