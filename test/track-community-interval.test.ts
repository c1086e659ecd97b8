// Changing the refresh interval, including to less than the time already waited: the next sync
// happens at once and the workflow goes on, it never spins (a spin trips the SDK's deadlock
// detector, which aborts the worker's whole process, and replays into the same spin on restart).
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeInstance } from '../src/lemmy/refs.js';
import { startTracking } from '../src/tracking.js';
import { setRefreshIntervalSignal, setRefreshIntervalUpdate, trackCommunity, workflowIdOf, type CommunityStatus } from '../workflows/trackCommunity.js';
import { FakeLemmy } from './fake-lemmy.js';
import { failedWorkflowTasks } from './support/history.js';
import { createStack, eventually, type Stack, queryStatus } from './support/stack.js';

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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function track(name: string, refreshSeconds: number) {
  fake.addCommunity(name);
  fake.addPosts(name, 3);
  const { instance, host } = normalizeInstance(fake.url);
  const { row } = await startTracking(deps(), { instance, host, name, refreshSeconds });
  const handle = stack.client.workflow.getHandle(workflowIdOf(row.ref));
  const first = await eventually(async () => {
    const s = await queryStatus(deps(), row.ref);
    return s && s.syncs === 1 && s.state === 'waiting' ? s : undefined;
  });
  return { row, handle, first };
}

/** Syncs go on: the status answers and counts at least `n` syncs within `ms`. */
async function syncsReach(ref: string, n: number, ms: number): Promise<CommunityStatus> {
  return eventually(async () => {
    const s = await queryStatus(deps(), ref);
    return s && s.syncs >= n ? s : undefined;
  }, ms);
}

describe('changing the refresh interval', () => {
  it('shortened below the time already waited (300 s → 3 s after 6 s): syncs at once, then every 3 s', async () => {
    const { row, handle } = await track('shorten', 300);
    await sleep(6000);
    const changedAt = Date.now();
    await handle.signal(setRefreshIntervalSignal, 3);
    const second = await syncsReach(row.ref, 2, 5000);
    expect(Date.parse(second.lastSyncAt!) - changedAt).toBeLessThan(3000);
    // And the interval keeps going at the new value.
    await syncsReach(row.ref, 3, 6000);
    expect(stack.worker!.worker.getState()).toBe('RUNNING');
    expect(await failedWorkflowTasks(handle)).toEqual([]);
  });

  it('through the update: a good value answers with the new status, a bad one is refused', async () => {
    const { row, handle } = await track('updated', 300);
    const status = await handle.executeUpdate(setRefreshIntervalUpdate, { args: [600] });
    expect(status).toMatchObject({ refreshSeconds: 600 });
    expect(Date.parse(status.nextSyncAt!) - Date.parse(status.lastSyncAt!)).toBeGreaterThan(590_000);
    for (const bad of [0, -5, 1.5, 86_401, Number.NaN]) {
      await expect(handle.executeUpdate(setRefreshIntervalUpdate, { args: [bad] })).rejects.toThrow(WorkflowUpdateFailedError);
    }
    expect(await queryStatus(deps(), row.ref)).toMatchObject({ refreshSeconds: 600, syncs: 1 });
    // A shortened interval through the update syncs at once too.
    await handle.executeUpdate(setRefreshIntervalUpdate, { args: [2] });
    await syncsReach(row.ref, 2, 4000);
    expect(await failedWorkflowTasks(handle)).toEqual([]);
  });

  it('a bad value by signal (as from the CLI) is ignored and tracking goes on', async () => {
    const { row, handle } = await track('badsignal', 2);
    await handle.signal(setRefreshIntervalSignal, 0);
    await handle.signal(setRefreshIntervalSignal, 'ten' as unknown as number);
    await syncsReach(row.ref, 3, 8000);
    expect(await queryStatus(deps(), row.ref)).toMatchObject({ refreshSeconds: 2 });
    expect(await failedWorkflowTasks(handle)).toEqual([]);
  });

  it('a run continued as new past its due time syncs at once instead of spinning', async () => {
    fake.addCommunity('overdue');
    fake.addPosts('overdue', 2);
    const { instance, host } = normalizeInstance(fake.url);
    const { row } = await startTracking(deps(), { instance, host, name: 'overdue', refreshSeconds: 300 });
    const handle = stack.client.workflow.getHandle(workflowIdOf(row.ref));
    await handle.terminate('replaced by a run that starts overdue');
    const started = Date.now();
    const overdue = await stack.client.workflow.start(trackCommunity, {
      workflowId: `${workflowIdOf(row.ref)}:overdue`,
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      args: [
        {
          ref: row.ref,
          instance: row.instance,
          name: row.name,
          refreshSeconds: 300,
          carried: {
            status: { state: 'waiting', lastSyncAt: new Date(started - 600_000).toISOString(), nextSyncAt: null, lastError: null, syncs: 1, postsStored: 2, refreshSeconds: 300 },
            syncNow: false,
            waitStartedAt: started - 600_000,
            cycles: 0,
          },
        },
      ],
    });
    const status = await eventually(async () => {
      const s = await overdue.query('status');
      return (s as CommunityStatus).syncs >= 2 ? (s as CommunityStatus) : undefined;
    }, 5000);
    expect(Date.parse(status.lastSyncAt!)).toBeGreaterThanOrEqual(started - 1000);
    expect(stack.worker!.worker.getState()).toBe('RUNNING');
    expect(await failedWorkflowTasks(overdue)).toEqual([]);
    await overdue.terminate();
  });
});
