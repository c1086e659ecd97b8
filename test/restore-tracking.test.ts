// restoreTracking on a catalog whose communities have no workflows (as after Temporal's state was
// lost): every one is started, a paused one paused, and the restore paces itself, starting a page
// only once the runs it started before have had their first sync (its window).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertCommunity, listCommunities, setCommunityPaused } from '../src/db/communities.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { createLogger } from '../src/log.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { stopTracking } from '../src/tracking.js';
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
    expect(result).toMatchObject({ restored: 6, running: 0 });

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
});
