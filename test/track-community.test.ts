// trackCommunity end to end: real Temporal dev server, real Postgres, a real HTTP fake of Lemmy.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { communityByRef } from '../src/db/communities.js';
import { countPosts } from '../src/db/posts.js';
import { logicalShardOf } from '../src/db/shards.js';
import { normalizeInstance, workflowIdOf } from '../src/lemmy/refs.js';
import { queryStatus, requestRefresh, startTracking, stopTracking } from '../src/tracking.js';
import { refreshSignal, trackCommunity } from '../workflows/trackCommunity.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack } from './support/stack.js';

let stack: Stack;
let fake: FakeLemmy;

beforeAll(async () => {
  stack = await createStack();
  fake = await FakeLemmy.start();
});
afterAll(async () => {
  await stack?.stop();
  await fake?.close();
});

const deps = () => ({ config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: stack.client });

async function track(name: string, refreshSeconds = 300) {
  const { instance, host } = normalizeInstance(fake.url);
  return startTracking(deps(), { instance, host, name, refreshSeconds });
}

/** Lemmy ids of a community's stored posts, read from the node the shard map gives it. */
async function storedIds(ref: string): Promise<number[]> {
  const row = await communityByRef(stack.storage.catalog, ref);
  if (!row) return [];
  return stack.storage.router.read(row.shard, async (sql) =>
    (await sql<{ lemmy_id: number }[]>`select lemmy_id from posts where community_id = ${row.id} order by lemmy_id`).map((r) => r.lemmy_id),
  );
}

const refOf = (name: string) => `${name}@${fake.hostPort}`;

/** The status once the workflow has taken in its sync's result (posts land a moment before). */
const settled = (ref: string) =>
  eventually(async () => {
    const s = await queryStatus(deps(), ref);
    return s && s.syncs > 0 && s.state !== 'syncing' ? s : undefined;
  });

describe('trackCommunity', () => {
  it('stores the 20 newest posts on the community shard node and its metadata in the catalog', async () => {
    fake.addCommunity('technology', { title: 'Technology <b>news</b>', subscribers: 1234, description: 'All about tech' });
    const posts = fake.addPosts('technology', 30);
    const pinned = fake.addPosts('technology', 1, () => ({ title: 'Rules', featured: true, published: new Date('2020-01-01T00:00:00Z') }));
    const { row, created } = await track('technology');
    expect(created).toBe(true);
    expect(row.shard).toBe(logicalShardOf(refOf('technology')));

    const newest20 = posts.slice(-20).map((p) => p.id);
    await eventually(async () => (await storedIds(row.ref)).length >= 20);
    const ids = await storedIds(row.ref);
    // The pinned post (listed first by Lemmy) is stored too, once; nothing older than the newest 20.
    expect(ids.sort((a, b) => a - b)).toEqual([...newest20, pinned[0].id].sort((a, b) => a - b));

    // Posts live on exactly the node the map gives the community's logical shard.
    const node = await stack.storage.router.nodeOf(row.shard);
    for (const other of stack.storage.router.nodeNames().filter((n) => n !== node)) {
      expect(await countPosts(stack.storage.router.pool(other), row.id)).toBe(0);
    }
    const meta = await eventually(async () => {
      const r = await communityByRef(stack.storage.catalog, row.ref);
      return r?.last_update ? r : undefined;
    });
    expect(meta).toMatchObject({ title: 'Technology <b>news</b>', subscribers: 1234, description: 'All about tech', last_error: null });
    const status = await settled(row.ref);
    expect(status).toMatchObject({ state: 'waiting', syncs: 1, postsStored: 21, lastError: null });
    expect(Date.parse(status!.nextSyncAt!)).toBeGreaterThan(Date.now() + 200_000);
  });

  it('picks up new posts after the interval, and at once after a refresh signal', async () => {
    fake.addCommunity('fast');
    fake.addPosts('fast', 5);
    const { row } = await track('fast', 1);
    await eventually(async () => (await storedIds(row.ref)).length === 5);
    const [later] = fake.addPosts('fast', 1);
    await eventually(async () => (await storedIds(row.ref)).includes(later.id), 10_000);

    fake.addCommunity('slow');
    fake.addPosts('slow', 3);
    const slow = (await track('slow', 3600)).row;
    await eventually(async () => (await storedIds(slow.ref)).length === 3);
    const [fresh] = fake.addPosts('slow', 1);
    const before = Date.now();
    await requestRefresh(deps(), slow);
    await eventually(async () => (await storedIds(slow.ref)).includes(fresh.id), 10_000, 50);
    expect(Date.now() - before).toBeLessThan(5000);
  });

  it('refreshes when signalled from the temporal CLI', async () => {
    fake.addCommunity('cli');
    fake.addPosts('cli', 2);
    const { row } = await track('cli', 3600);
    await eventually(async () => (await storedIds(row.ref)).length === 2);
    const [fresh] = fake.addPosts('cli', 1);
    const args = ['workflow', 'signal', '--address', inject('temporalAddress'), '--namespace', 'default', '--workflow-id', workflowIdOf(row.ref), '--name', 'refresh'];
    const code = await new Promise<number | null>((resolve) => spawn(inject('temporalCli'), args, { stdio: 'inherit' }).on('exit', resolve));
    expect(code).toBe(0);
    await eventually(async () => (await storedIds(row.ref)).includes(fresh.id), 10_000);
  });

  it('pages back after a burst of more posts than one page holds, without gaps', async () => {
    fake.addCommunity('burst');
    fake.addPosts('burst', 10);
    const { row } = await track('burst', 3600);
    await eventually(async () => (await storedIds(row.ref)).length === 10);
    const burst = fake.addPosts('burst', 130);
    await requestRefresh(deps(), row);
    await eventually(async () => (await storedIds(row.ref)).length === 140, 15_000);
    expect(await storedIds(row.ref)).toEqual(expect.arrayContaining(burst.map((p) => p.id)));
  });

  it('loses no post published after tracking began, even when the first sync is delayed', async () => {
    fake.addCommunity('delayed');
    fake.addPosts('delayed', 25);
    fake.fail({ kind: 'status500' }, { community: 'delayed', path: 'community', times: 2 });
    const { row } = await track('delayed', 3600);
    const during = fake.addPosts('delayed', 30); // more than a page, before the first sync lands
    await eventually(async () => (await storedIds(row.ref)).length >= 30, 20_000);
    expect(await storedIds(row.ref)).toEqual(expect.arrayContaining(during.map((p) => p.id)));
  });

  it('retries 500s, rate limits, HTML, malformed JSON and timeouts, then succeeds', async () => {
    const faults = [
      { name: 'f500', fault: { kind: 'status500' } },
      { name: 'frate', fault: { kind: 'rateLimit400' } },
      { name: 'f429', fault: { kind: 'status429', retryAfterSeconds: 1 } },
      { name: 'fhtml', fault: { kind: 'html200' } },
      { name: 'fjson', fault: { kind: 'malformedJson' } },
      { name: 'fslow', fault: { kind: 'slow', delayMs: 3000 } },
    ] as const;
    for (const f of faults) {
      fake.addCommunity(f.name);
      fake.addPosts(f.name, 4);
      fake.fail(f.fault, { community: f.name, path: 'post/list' });
    }
    const rows = await Promise.all(faults.map((f) => track(f.name, 3600)));
    for (const { row } of rows) {
      await eventually(async () => (await storedIds(row.ref)).length === 4, 30_000);
      const status = await settled(row.ref);
      expect(status).toMatchObject({ state: 'waiting', lastError: null, syncs: 1 });
    }
    for (const f of faults) expect(fake.requestsFor(f.name, 'post/list')).toBeGreaterThanOrEqual(2);
  });

  it('marks an unknown community not_found with a clear error and does not retry in a loop', async () => {
    const { row } = await track('nosuchcommunity', 3600);
    const status = await eventually(async () => {
      const s = await queryStatus(deps(), row.ref);
      return s?.state === 'not_found' ? s : undefined;
    });
    expect(status.lastError).toMatchObject({ code: 'community_not_found' });
    expect(status.lastError!.message).toContain('nosuchcommunity');
    const stored = await communityByRef(stack.storage.catalog, row.ref);
    expect(stored?.last_error_code).toBe('CommunityNotFound');
    const requests = fake.requestsFor('nosuchcommunity');
    await new Promise((r) => setTimeout(r, 2500));
    expect(fake.requestsFor('nosuchcommunity')).toBe(requests);
    expect(requests).toBe(1);
  });

  it('stops requesting when tracking is cancelled', async () => {
    fake.addCommunity('gone');
    fake.addPosts('gone', 2);
    const { row } = await track('gone', 1);
    await eventually(async () => fake.requestsFor('gone', 'post/list') >= 2, 10_000);
    await stopTracking(deps(), row);
    const handle = stack.client.workflow.getHandle(workflowIdOf(row.ref));
    await eventually(async () => (await handle.describe()).status.name === 'CANCELLED', 5000);
    const after = fake.requestsFor('gone');
    await new Promise((r) => setTimeout(r, 2500));
    expect(fake.requestsFor('gone')).toBe(after);
    expect(await communityByRef(stack.storage.catalog, row.ref)).toBeUndefined();
    expect(await countPosts(stack.storage.router.pool(await stack.storage.router.nodeOf(row.shard)), row.id)).toBe(0);
  });

  it('collapses several refreshes while waiting into one sync', async () => {
    fake.addCommunity('collapse');
    fake.addPosts('collapse', 2);
    const { row } = await track('collapse', 3600);
    await eventually(async () => (await queryStatus(deps(), row.ref))?.syncs === 1);
    const handle = stack.client.workflow.getHandle(workflowIdOf(row.ref));
    await Promise.all(Array.from({ length: 8 }, () => handle.signal(refreshSignal)));
    await eventually(async () => ((await queryStatus(deps(), row.ref))?.syncs ?? 0) >= 2);
    await new Promise((r) => setTimeout(r, 1500));
    // One more sync at most, for a signal that arrived while the second sync ran.
    expect((await queryStatus(deps(), row.ref))!.syncs).toBeLessThanOrEqual(3);
  });

  it('does not lose a refresh that arrives during a sync', async () => {
    fake.addCommunity('during');
    fake.addPosts('during', 2);
    const { row } = await track('during', 3600);
    await eventually(async () => (await queryStatus(deps(), row.ref))?.syncs === 1);
    fake.fail({ kind: 'slow', delayMs: 1200 }, { community: 'during', path: 'post/list' });
    const handle = stack.client.workflow.getHandle(workflowIdOf(row.ref));
    const seen = fake.requestsFor('during', 'post/list');
    await handle.signal(refreshSignal);
    await eventually(() => fake.requestsFor('during', 'post/list') > seen, 5000, 20); // second sync in flight
    await handle.signal(refreshSignal); // arrives while the second sync runs
    // It is not folded into the running sync: a third one follows right after.
    await eventually(async () => (await queryStatus(deps(), row.ref))?.syncs === 3, 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await queryStatus(deps(), row.ref))!.syncs).toBe(3);
  });

  it('continues as new without losing a refresh across the rollover', async () => {
    fake.addCommunity('rollover');
    fake.addPosts('rollover', 1);
    const { row } = await track('rollover', 3600);
    const handle = stack.client.workflow.getHandle(workflowIdOf(row.ref));
    await eventually(async () => (await queryStatus(deps(), row.ref))?.syncs === 1);
    // Restart the chain with a one-sync bound per run, so every refresh rolls it over.
    await handle.terminate('test: restart with maxCyclesPerRun=1');
    const first = await stack.client.workflow.start(trackCommunity, {
      workflowId: workflowIdOf(row.ref),
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      args: [{ ref: row.ref, instance: row.instance, name: row.name, refreshSeconds: 3600, maxCyclesPerRun: 1 }],
    });
    const added: number[] = [];
    for (let i = 0; i < 6; i++) {
      added.push(fake.addPosts('rollover', 1)[0].id);
      await handle.signal(refreshSignal);
      await new Promise((r) => setTimeout(r, i % 2 ? 0 : 150)); // some land mid-sync or mid-rollover
    }
    await eventually(async () => {
      const ids = await storedIds(row.ref);
      return added.every((id) => ids.includes(id));
    }, 15_000);
    const desc = await handle.describe();
    expect(desc.runId).not.toBe(first.firstExecutionRunId);
    const status = (await queryStatus(deps(), row.ref))!;
    expect(status.syncs).toBeGreaterThanOrEqual(2);
    expect(status.state).toBe('waiting');
  });
});

