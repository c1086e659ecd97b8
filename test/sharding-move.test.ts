// Adding a node and moving logical shards online while syncs keep running: a rebalance with the
// worker alive, and a move whose worker (a child process) is SIGKILLed in the middle of the copy.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { defaultPayloadConverter } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startRebalance } from '../src/rebalancing.js';
import { communityByRef, insertCommunity } from '../src/db/communities.js';
import { countPosts } from '../src/db/posts.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { communityRef } from '../src/sources/lemmy/refs.js';
import { createLogger } from '../src/log.js';
import { startTracking } from '../src/tracking.js';
import type { MoveShardResult } from '../workflows/moveShard.js';
import type { RebalanceResult } from '../workflows/rebalanceShards.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createDatabase, createStack, eventually, type Stack } from './support/stack.js';

const log = createLogger({ level: 'silent' });

/** Tracks communities on a fake and keeps adding posts to them; knows how many each should have. */
class Traffic {
  readonly expected = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private i = 0;
  constructor(
    readonly stack: Stack,
    readonly fake: FakeLemmy,
  ) {}

  async track(names: string[], posts: number) {
    for (const name of names) {
      this.fake.addCommunity(name);
      this.fake.addPosts(name, posts);
      this.expected.set(name, posts);
      const { config, storage, client } = this.stack;
      await startTracking(
        { config, catalog: storage.catalog, router: storage.router, temporal: client },
        { instance: this.fake.url, host: this.fake.hostPort, name, refreshSeconds: 1 },
      );
    }
  }

  start(everyMs = 100) {
    const names = [...this.expected.keys()];
    this.timer = setInterval(() => {
      const name = names[this.i++ % names.length];
      this.fake.addPosts(name, 1);
      this.expected.set(name, this.expected.get(name)! + 1);
    }, everyMs);
  }

  stop() {
    clearInterval(this.timer);
  }

  async stored(name: string): Promise<number> {
    const { catalog, router } = this.stack.storage;
    const row = await communityByRef(catalog, communityRef(name, this.fake.hostPort));
    return row ? router.read(row.shard, (sql) => countPosts(sql, row.id)) : 0;
  }

  async allStored(): Promise<boolean> {
    for (const [name, n] of this.expected) if ((await this.stored(name)) !== n) return false;
    return true;
  }
}

/** Every node holds only rows of the shards the map gives it, each row once; returns rows per community. */
async function checkPlacement(stack: Stack): Promise<Map<number, number>> {
  const { router } = stack.storage;
  await router.refreshNodes();
  const map = await router.shardMap();
  const perCommunity = new Map<number, number>();
  for (const node of router.nodeNames()) {
    const rows = await router.pool(node)<{ shard: number; community_id: number; n: number }[]>`
      select shard, community_id, count(*)::int as n from posts group by shard, community_id`;
    for (const r of rows) {
      expect({ shard: r.shard, node: map.get(r.shard) }).toEqual({ shard: r.shard, node });
      expect(perCommunity.has(r.community_id)).toBe(false); // on exactly one node
      perCommunity.set(r.community_id, r.n);
    }
  }
  return perCommunity;
}

describe('sharding: add a node and rebalance while syncing', () => {
  let stack: Stack;
  let fake: FakeLemmy;
  let traffic: Traffic;

  beforeAll(async () => {
    stack = await createStack({ shards: 2, env: { BACKFILL_PAGES: '5' } });
    fake = await FakeLemmy.start();
    traffic = new Traffic(stack, fake);
    await traffic.track(
      Array.from({ length: 16 }, (_, i) => `rb_${i}`),
      30,
    );
  });
  afterAll(async () => {
    traffic?.stop();
    await stack?.stop();
    await fake?.close();
  });

  it('moves shards onto the new node; every post ends up once, where the map says', async () => {
    await eventually(() => traffic.allStored(), 30_000);
    const url = await createDatabase(inject('pgUrls')[0], `t${stack.id}_shard3`);
    await stack.storage.router.addNode('shard-3', url, log);

    traffic.start(50);
    const handle = await startRebalance(stack.client, stack.config.TEMPORAL_TASK_QUEUE);
    const result = (await handle.result()) as RebalanceResult;
    if (result.moves.some((m) => !m.ok)) console.log(result);
    await new Promise((r) => setTimeout(r, 1500)); // syncs keep running after the moves
    traffic.stop();

    expect(result.moves.length).toBeGreaterThan(0);
    expect(result.moves.filter((m) => !m.ok)).toEqual([]);
    expect(result.moves.filter((m) => m.to === 'shard-3').length).toBeGreaterThan(0);
    const loads = Object.values(result.after);
    const avg = loads.reduce((a, b) => a + b, 0) / loads.length;
    expect(Math.min(...loads)).toBeGreaterThan(avg * 0.5); // about equal (shards are coarse: 16 communities)
    expect(result.after['shard-3']).toBeGreaterThan(0);
    const placements = await stack.storage.router.placements();
    expect(placements.map((p) => p.node)).toContain('shard-3');

    await eventually(() => traffic.allStored(), 30_000);
    const perCommunity = await checkPlacement(stack);
    const total = [...perCommunity.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe([...traffic.expected.values()].reduce((a, b) => a + b, 0));
    expect(perCommunity.size).toBe(traffic.expected.size);
  });
});

describe('sharding: worker killed in the middle of a move', () => {
  let stack: Stack;
  let fake: FakeLemmy;
  let traffic: Traffic;
  const workers: ChildProcess[] = [];
  const BULK = 60_000;

  function startWorkerProcess(): Promise<ChildProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
      cwd: process.cwd(),
      env: { ...process.env, ...stack.env, LOG_LEVEL: 'info', LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    workers.push(child);
    return new Promise((resolve, reject) => {
      let out = '';
      const onData = (b: Buffer) => {
        out += b.toString();
        if (out.includes('worker ready')) resolve(child);
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
      child.once('exit', (code) => reject(new Error(`worker exited (${code}) before it was ready:\n${out.slice(-2000)}`)));
    });
  }

  beforeAll(async () => {
    stack = await createStack({ shards: 2, worker: false, env: { BACKFILL_PAGES: '5' } });
    fake = await FakeLemmy.start();
    traffic = new Traffic(stack, fake);
    await startWorkerProcess();
  });
  afterAll(async () => {
    traffic?.stop();
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
    await Promise.all(
      workers.map((w) => (w.exitCode === null && w.signalCode === null ? new Promise((r) => w.once('exit', r)) : undefined)),
    );
    await stack?.stop();
    await fake?.close();
  });

  it('resumes the copy on another worker and completes: nothing lost or duplicated', async () => {
    const { router, catalog } = stack.storage;
    // The shard to move: a bulk community with BULK synthetic posts plus a tracked, syncing one.
    const bulkRef = 'bulk@example.test';
    const shard = logicalShardOf(bulkRef);
    const from = await router.nodeOf(shard);
    const { row: bulk } = await insertCommunity(catalog, {
      ref: bulkRef,
      instance: 'https://example.test',
      host: 'example.test',
      name: 'bulk',
      refreshSeconds: 86400,
      shard,
    });
    await router.write(
      shard,
      (sql) => sql`
      insert into posts (community_id, lemmy_id, shard, ap_id, title, published, fetched_at)
      select ${bulk.id}, g, ${shard}, 'https://example.test/post/' || g, 'bulk post ' || g,
             timestamptz '2025-01-01' + g * interval '1 second', now()
      from generate_series(1, ${BULK}) g`,
    );
    const names: string[] = [];
    for (let i = 0; names.length < 2; i++) if (logicalShardOf(communityRef(`mv_${i}`, fake.hostPort)) === shard) names.push(`mv_${i}`);
    // Two more on other shards (a name can hash onto the moved shard: skip those).
    for (let i = 0; names.length < 4; i++)
      if (logicalShardOf(communityRef(`mv_other_${i}`, fake.hostPort)) !== shard) names.push(`mv_other_${i}`);
    await traffic.track(names, 25);
    await eventually(() => traffic.allStored(), 30_000);

    // The new node, added through the CLI, which also reports status.
    const url = await createDatabase(inject('pgUrls')[0], `t${stack.id}_shard3`);
    const cli = (...args: string[]) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/shards-cli.ts', ...args], {
        env: { ...process.env, ...stack.env },
        cwd: process.cwd(),
      });
    const added = await cli('add', 'shard-3', url);
    expect(added.stdout).toMatch(/registered node "shard-3"/);
    expect(added.stdout).not.toContain(new URL(url).password);
    await router.refreshNodes();

    traffic.start(100);
    const handle = await stack.client.workflow.start('moveShard', {
      workflowId: `move-shard-${shard}`,
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      args: [{ shard, from, to: 'shard-3', batchSize: 100 }],
    });
    // Kill the worker once the copy has heartbeated progress.
    const progress = await eventually(
      async () => {
        const d = await handle.describe();
        const payloads = d.raw.pendingActivities?.[0]?.heartbeatDetails?.payloads;
        if (!payloads?.length) return undefined;
        const details = defaultPayloadConverter.fromPayload<{ copied?: number }>(payloads[0]);
        return (details?.copied ?? 0) > 0 ? details : undefined;
      },
      30_000,
      50,
    );
    workers[0].kill('SIGKILL');
    await new Promise((r) => workers[0].once('exit', r));
    await startWorkerProcess();

    const result = (await handle.result()) as MoveShardResult;
    await new Promise((r) => setTimeout(r, 1500));
    traffic.stop();

    expect(progress.copied).toBeGreaterThan(0);
    expect(result.copy.resumedFrom).toBeGreaterThan(0); // the retry resumed from the heartbeat
    expect(result.copy.copied).toBeGreaterThanOrEqual(BULK);
    expect(result.flip.alreadyFlipped).toBe(false);
    expect(result.cleanup.deleted).toBeGreaterThanOrEqual(BULK);
    const history = await handle.fetchHistory();
    const attempts = history
      .events!.filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt);
    expect(Math.max(...attempts.map(Number))).toBeGreaterThanOrEqual(2);
    expect(await router.nodeOf(shard)).toBe('shard-3');

    await eventually(() => traffic.allStored(), 30_000);
    const perCommunity = await checkPlacement(stack);
    expect(perCommunity.get(bulk.id)).toBe(BULK);
    const fakeTotal = [...traffic.expected.values()].reduce((a, b) => a + b, 0);
    expect([...perCommunity.values()].reduce((a, b) => a + b, 0)).toBe(fakeTotal + BULK);

    const status = await cli('status');
    expect(status.stdout).toMatch(
      new RegExp(`shard-3\\s+yes\\s+${shard}\\s+1\\s+3\\s+${BULK + (await traffic.stored(names[0])) + (await traffic.stored(names[1]))}`),
    );
  });
});
