// restoreTracking on a catalog whose communities have no workflows (as after Temporal's state was
// lost): every one is started, a paused one paused, and the restore paces itself, starting a page
// only once the runs it started before have had their first sync (its window). A community that had
// synced resumes its schedule: it waits for the next sync the catalog recorded, or syncs at once
// when that has passed; the restore starts the soonest due first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  communityByRef,
  insertCommunity,
  listCommunities,
  saveSyncError,
  saveSyncSuccess,
  setCommunityPaused,
} from '../src/db/communities.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { createLogger } from '../src/log.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { stopTracking, workflowTaskBacklog } from '../src/tracking.js';
import type { RestoreProgress } from '../activities/restore.js';
import { RESTORE_WORKFLOW_ID, restoreTracking } from '../workflows/restoreTracking.js';
import { workflowIdOf } from '../workflows/trackCommunity.js';
import { FakeLemmy } from './fake-lemmy.js';
import { apiDeps, createStack, eventually, queryStatus, type Stack } from './support/stack.js';

let stack: Stack;
let fake: FakeLemmy;

beforeAll(async () => {
  [stack, fake] = await Promise.all([createStack(), FakeLemmy.start()]);
});
afterAll(async () => {
  if (stack) {
    const deps = apiDeps(stack, createLogger({ level: 'silent' }));
    for (const row of await listCommunities(stack.storage.catalog).catch(() => [])) await stopTracking(deps, row).catch(() => {});
    await stack.stop();
  }
  await fake?.close();
});

describe('restoreTracking', () => {
  it('starts every community of the catalog, paused ones paused, a page at a time once the last one has synced', async () => {
    const { instance, host } = normalizeInstance(fake.url);
    const names = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'];
    for (const name of names) {
      fake.addCommunity(name);
      fake.addPosts(name, 2);
      const ref = `${name}@${host}`;
      const { row } = await insertCommunity(stack.storage.catalog, {
        ref,
        instance,
        host,
        name,
        refreshSeconds: 600,
        shard: logicalShardOf(ref),
      });
      if (name === 'r6') await setCommunityPaused(stack.storage.catalog, row.id, true);
    }
    // Each first sync takes a while, so that starting before the previous page synced would show.
    fake.fail({ kind: 'slow', delayMs: 300 }, { path: 'post/list' });

    const handle = await stack.client.workflow.start(restoreTracking, {
      workflowId: `${RESTORE_WORKFLOW_ID}-${stack.id}`,
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      args: [{ pageSize: 2, window: 2, concurrency: 2 }],
    });
    const result: RestoreProgress = await handle.result();
    expect(result).toMatchObject({ restored: 6, resumed: 0, running: 0 });

    const refs = names.map((n) => `${n}@${host}`);
    const deps = { temporal: stack.client };
    for (const ref of refs.slice(0, 5)) await eventually(async () => (await queryStatus(deps, ref))?.syncs === 1, 30_000);
    expect((await queryStatus(deps, refs[5]))?.state).toBe('paused');

    // Pacing: a page's workflows started only after every run started before had its first attempt.
    const rows = new Map((await listCommunities(stack.storage.catalog)).map((r) => [r.ref, r]));
    const startedAt = await Promise.all(
      refs.map(async (ref) => (await stack.client.workflow.getHandle(workflowIdOf(ref)).describe()).startTime),
    );
    for (let page = 1; page < 3; page++) {
      const firstStart = Math.min(...startedAt.slice(2 * page, 2 * page + 2).map((d) => d.getTime()));
      for (const ref of refs.slice(0, 2 * page).filter((r) => !r.startsWith('r6'))) {
        expect(rows.get(ref)!.last_attempt_at!.getTime(), `${ref} before page ${page + 1}`).toBeLessThanOrEqual(firstStart);
      }
    }
  });

  it('resumes a community that had synced: it waits for the next sync the catalog recorded, or syncs at once when that has passed', async () => {
    const { instance, host } = normalizeInstance(fake.url);
    const catalog = stack.storage.catalog;
    const minute = 60_000;
    // r7: synced 1 min ago, due in 9; r8: synced 11 min ago, due 1 min ago; r9: its last attempt failed.
    const rows = new Map<string, { syncedAgoMs?: number; failing?: true }>([
      ['r7', { syncedAgoMs: minute }],
      ['r8', { syncedAgoMs: 11 * minute }],
      ['r9', { failing: true }],
    ]);
    for (const [name, how] of rows) {
      fake.addCommunity(name);
      fake.addPosts(name, 2);
      const ref = `${name}@${host}`;
      const { row } = await insertCommunity(catalog, { ref, instance, host, name, refreshSeconds: 600, shard: logicalShardOf(ref) });
      if (how.syncedAgoMs) {
        const at = new Date(Date.now() - how.syncedAgoMs);
        await saveSyncSuccess(catalog, row.id, {
          state: {},
          inserted: 2,
          at,
          schedule: { intervalSeconds: 600, reason: 'fixed: 600 s', postsPerHour: 0.5 },
        });
      } else {
        await saveSyncSuccess(catalog, row.id, { state: {}, inserted: 2 });
        await saveSyncError(catalog, row.id, { type: 'SourceUnavailable', message: 'down', state: 'failing' });
      }
    }
    fake.clearFaults();
    fake.resetRequests();
    const before = new Map(
      await Promise.all([...rows.keys()].map(async (n) => [n, (await communityByRef(catalog, `${n}@${host}`))!] as const)),
    );

    const handle = await stack.client.workflow.start(restoreTracking, {
      workflowId: `${RESTORE_WORKFLOW_ID}-${stack.id}-resume`,
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      args: [{ pageSize: 1, concurrency: 1 }],
    });
    // r1–r6 of the test before still run.
    expect(await handle.result()).toMatchObject({ restored: 3, resumed: 2, running: 6 });

    const deps = { temporal: stack.client };
    const ref = (n: string) => `${n}@${host}`;
    // Overdue: synced at once, counting on from the catalog's syncs.
    const r8 = await eventually(async () => {
      const st = await queryStatus(deps, ref('r8'));
      return st?.syncs === before.get('r8')!.syncs + 1 && st.state === 'waiting' ? st : undefined;
    }, 30_000);
    expect(Date.parse(r8.lastSyncAt!)).toBeGreaterThan(before.get('r8')!.last_update!.getTime());
    // Failing: starts as a new run does, a sync at once.
    await eventually(async () => (await queryStatus(deps, ref('r9')))?.state === 'waiting', 30_000);
    // Not yet due: waits, showing what the catalog recorded; its source was not asked.
    const r7 = await queryStatus(deps, ref('r7'));
    const row7 = before.get('r7')!;
    expect(r7).toMatchObject({
      state: 'waiting',
      syncs: row7.syncs,
      postsStored: row7.posts_stored,
      lastSyncAt: row7.last_update!.toISOString(),
      nextSyncAt: row7.next_sync_at!.toISOString(),
      refreshSeconds: 600,
    });
    expect(fake.requestsFor('r7')).toBe(0);
    // Soonest due first, whatever the order they were tracked in: r8 (overdue), r7 (due in 9 min), r9 (in 10).
    const startedAt = async (n: string) => (await stack.client.workflow.getHandle(workflowIdOf(ref(n))).describe()).startTime.getTime();
    const [t7, t8, t9] = await Promise.all(['r7', 'r8', 'r9'].map(startedAt));
    expect(t8).toBeLessThan(t7);
    expect(t7).toBeLessThan(t9);
    expect(fake.requestsFor('r8', 'post/list')).toBeGreaterThan(0);
  });

  it("counts the workflow tasks waiting in the workers' task queues, which paces the restore's starts", async () => {
    const queue = `no-worker-${stack.id}`;
    const config = { ...stack.config, TEMPORAL_TASK_QUEUE: queue, TEMPORAL_QUIET_TASK_QUEUE: queue };
    expect(await workflowTaskBacklog({ config, temporal: stack.client })).toBe(0);
    const ids = ['b1', 'b2', 'b3'].map((n) => `${n}-${stack.id}`);
    for (const workflowId of ids) await stack.client.workflow.start('trackCommunity', { taskQueue: queue, workflowId, args: [] });
    try {
      // Approximate: the server refreshes its count every few seconds.
      await eventually(async () => (await workflowTaskBacklog({ config, temporal: stack.client })) >= 2, 30_000, 500);
    } finally {
      for (const id of ids)
        await stack.client.workflow
          .getHandle(id)
          .terminate()
          .catch(() => {});
    }
  });
});
