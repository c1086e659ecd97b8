// trackCommunity end to end: real Temporal dev server, real Postgres, a real HTTP fake of Lemmy.
import { spawn, type ChildProcess } from 'node:child_process';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { communityByRef } from '../src/db/communities.js';
import { countPosts } from '../src/db/posts.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { QUIET_RUNS, SYNCS_PER_RUN, workflowIdOf } from '../workflows/trackCommunity.js';
import { requestRefresh, startTracking, stopTracking } from '../src/tracking.js';
import {
  refreshSignal,
  setRefreshIntervalSignal,
  setRefreshIntervalUpdate,
  statusQuery,
  trackCommunity,
  type CommunityStatus,
  type TrackCommunityInput,
} from '../workflows/trackCommunity.js';
import { FakeLemmy } from './fake-lemmy.js';
import { completesSync, failedWorkflowTasks, inPauseBeforeRollover, localActivityOf, quickSyncOf } from './support/history.js';
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

/** Replaces a tracked community's workflow by a run started with this input (ref, instance and name from its row). */
async function restartWorkflow(
  row: { ref: string; instance: string; name: string },
  why: string,
  input: Omit<TrackCommunityInput, 'ref' | 'instance' | 'name'>,
) {
  await stack.client.workflow.getHandle(workflowIdOf(row.ref)).terminate(why);
  return stack.client.workflow.start(trackCommunity, {
    workflowId: workflowIdOf(row.ref),
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    args: [{ ref: row.ref, instance: row.instance, name: row.name, ...input }],
  });
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
    const args = [
      'workflow',
      'signal',
      '--address',
      inject('temporalAddress'),
      '--namespace',
      'default',
      '--workflow-id',
      workflowIdOf(row.ref),
      '--name',
      'refresh',
    ];
    const code = await new Promise<number | null>((resolve) =>
      spawn(inject('temporalCli'), args, { stdio: 'inherit' }).on('exit', resolve),
    );
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

  it('syncs as a quick local activity, the first sync too; one meeting a server error or a slow answer hands over and succeeds', async () => {
    fake.addCommunity('quick');
    fake.addPosts('quick', 3);
    // Under QUIET_RUN_FROM_SECONDS, so that every sync is in this one run (on the active queue).
    const { row } = await track('quick', 600);
    await settled(row.ref);
    const syncOnce = async (fault?: Parameters<FakeLemmy['fail']>[0]) => {
      if (fault) fake.fail(fault, { community: 'quick', path: 'post/list' });
      const [post] = fake.addPosts('quick', 1);
      await requestRefresh(deps(), row);
      await eventually(async () => (await storedIds(row.ref)).includes(post.id), 20_000, 50);
    };
    await syncOnce(); // quick
    await syncOnce({ kind: 'status500' }); // handed over, then regular
    await syncOnce({ kind: 'slow', delayMs: 8000 }); // ended by the stack's 2 s HTTP timeout: handed over
    const status = await eventually(async () => {
      const s = await queryStatus(deps(), row.ref);
      return s?.syncs === 4 && s.state === 'waiting' ? s : undefined;
    });
    expect(status).toMatchObject({ lastError: null, consecutiveFailures: 0 });
    const stored = await communityByRef(stack.storage.catalog, row.ref);
    expect({ state: stored?.sync_state, error: stored?.last_error_code ?? null }).toEqual({ state: 'waiting', error: null });
    // The list shows the schedule the workflow keeps, which each sync saved with its result.
    expect({
      lastSyncAt: stored?.last_update?.toISOString(),
      nextSyncAt: stored?.next_sync_at?.toISOString(),
      refreshSeconds: stored?.interval_seconds,
      reason: stored?.refresh_reason,
    }).toEqual({ lastSyncAt: status.lastSyncAt, nextSyncAt: status.nextSyncAt, refreshSeconds: 600, reason: status.reason });

    // In the history: every sync's first attempt is a local activity (a marker), the first sync's
    // too; two of them failed and handed over to the regular activity. No sync needed a second
    // write for its schedule (a local activity of its own).
    const events = (await stack.client.workflow.getHandle(workflowIdOf(row.ref)).fetchHistory()).events ?? [];
    const regular = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'syncCommunity').length;
    const quick = events.map((e) => quickSyncOf(e.markerRecordedEventAttributes)).filter((q) => q !== undefined);
    const scheduleWrites = events.filter((e) => localActivityOf(e.markerRecordedEventAttributes) === 'recordSchedule').length;
    expect({ regular, quick: quick.map((q) => q.failed), scheduleWrites }).toEqual({
      regular: 2,
      quick: [false, false, true, true],
      scheduleWrites: 0,
    });
  }, 60_000);

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
    // A failed sync saves no schedule: the workflow records its back-off itself (a moment later).
    const listed = await eventually(async () => {
      const r = await communityByRef(stack.storage.catalog, row.ref);
      return r?.refresh_reason === status.reason ? r : undefined;
    });
    expect({ state: listed.sync_state, reason: listed.refresh_reason }).toEqual({
      state: 'not_found',
      reason: expect.stringMatching(/^backing off: 1 failed sync/),
    });
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
    const first = await restartWorkflow(row, 'test: restart with maxCyclesPerRun=1', { refreshSeconds: 3600, maxCyclesPerRun: 1 });
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
    // The run rolls over once it is a second old (the pause before a rollover), carrying the rest.
    const desc = await eventually(async () => {
      const d = await handle.describe();
      return d.runId !== first.firstExecutionRunId ? d : undefined;
    }, 10_000);
    expect(desc.runId).not.toBe(first.firstExecutionRunId);
    const status = (await queryStatus(deps(), row.ref))!;
    expect(status.syncs).toBeGreaterThanOrEqual(2);
    expect(status.state).toBe('waiting');
  });

  it('serves a refresh that arrives in the pause before a rollover at once, not when the pause ends, and no run starts late', async () => {
    fake.addCommunity('pause-before-rollover');
    fake.addPosts('pause-before-rollover', 1);
    const { row } = await track('pause-before-rollover', 3600);
    await eventually(async () => (await queryStatus(deps(), row.ref))?.syncs === 1);
    // A run of one sync: it syncs at once, then pauses before its rollover (a timer, until the run is
    // a second old: the server would hold the first task of a run continued sooner).
    const first = await restartWorkflow(row, 'test: restart with maxCyclesPerRun=1', { refreshSeconds: 3600, maxCyclesPerRun: 1 });
    const run = stack.client.workflow.getHandle(first.workflowId, first.firstExecutionRunId);
    const historyOf = async () => (await run.fetchHistory()).events ?? [];
    await eventually(async () => inPauseBeforeRollover(await historyOf()), 10_000, 5);
    const added = fake.addPosts('pause-before-rollover', 1)[0].id;
    await first.signal(refreshSignal);
    await eventually(async () => (await storedIds(row.ref)).includes(added), 10_000);
    await eventually(async () => (await historyOf()).at(-1)?.workflowExecutionContinuedAsNewEventAttributes, 10_000);
    // The refresh ended the pause: served in this run (younger than a second) or carried into the
    // next at once, never after the pause's timer fired.
    const events = await historyOf();
    const signalAt = events.findIndex((e) => e.workflowExecutionSignaledEventAttributes);
    const servedAt = events.findIndex((e, i) => i > signalAt && (completesSync(e) || e.workflowExecutionContinuedAsNewEventAttributes));
    expect(signalAt).toBeGreaterThan(0);
    expect(events.slice(signalAt, servedAt).filter((e) => e.timerFiredEventAttributes)).toEqual([]);
    // And the next run's first task was not held back by the server.
    const next = (await stack.client.workflow.getHandle(first.workflowId).fetchHistory()).events ?? [];
    const started = next[0].workflowExecutionStartedEventAttributes!;
    expect(started.continuedExecutionRunId).toBe(first.firstExecutionRunId);
    const backoff = started.firstWorkflowTaskBackoff;
    expect(Number(backoff?.seconds ?? 0) * 1000 + Number(backoff?.nanos ?? 0) / 1e6).toBe(0);
    expect(await failedWorkflowTasks(stack.client.workflow.getHandle(first.workflowId))).toEqual([]);
  });

  it(`rolls a tracked community's run over after ${SYNCS_PER_RUN} syncs, so a workflow out of the worker's cache replays a short history`, async () => {
    fake.addCommunity('short-runs');
    fake.addPosts('short-runs', 1);
    // Synced more often than QUIET_RUN_FROM_SECONDS (900): runs of the full length.
    const { row } = await track('short-runs', 600);
    const handle = stack.client.workflow.getHandle(workflowIdOf(row.ref));
    await eventually(async () => (await queryStatus(deps(), row.ref))?.syncs === 1);
    const firstRunId = (await handle.describe()).runId;
    const added: number[] = [];
    for (let k = 2; k <= SYNCS_PER_RUN + 1; k++) {
      // A refresh right after the last sync of a run younger than a second is served in that run
      // (the pause before a rollover): this one waits for the rollover, to find the run's bound.
      if (k === SYNCS_PER_RUN + 1) await eventually(async () => (await handle.describe()).runId !== firstRunId, 10_000);
      added.push(fake.addPosts('short-runs', 1)[0].id);
      await handle.signal(refreshSignal);
      await eventually(async () => (await queryStatus(deps(), row.ref))?.syncs === k, 10_000, 20);
    }
    const firstRun = await stack.client.workflow.getHandle(workflowIdOf(row.ref), firstRunId).fetchHistory();
    const events = firstRun.events ?? [];
    const syncs = events.filter(completesSync);
    expect(syncs).toHaveLength(SYNCS_PER_RUN);
    expect(events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes).toBeTruthy();
    // The next run carries the bound (its input names it) and everything the first knew.
    const next = await handle.fetchHistory();
    const input = JSON.parse(
      Buffer.from(next.events![0].workflowExecutionStartedEventAttributes!.input!.payloads![0].data!).toString('utf8'),
    );
    expect(input.maxCyclesPerRun).toBe(SYNCS_PER_RUN);
    const status = (await queryStatus(deps(), row.ref))!;
    expect(status).toMatchObject({ syncs: SYNCS_PER_RUN + 1, lastError: null });
    expect(await storedIds(row.ref)).toEqual(expect.arrayContaining(added));
  });
});

describe('runs of a community synced rarely', () => {
  it(`start on the quiet task queue at ${QUIET_RUNS.fromSeconds} s or more, roll over there after QUIET_RUN_SYNCS (${QUIET_RUNS.syncs}) syncs, move to the active queue after a sync at a shorter interval and back after one at a longer`, async () => {
    expect(stack.config).toMatchObject({ QUIET_RUN_FROM_SECONDS: QUIET_RUNS.fromSeconds, QUIET_RUN_SYNCS: QUIET_RUNS.syncs });
    const queues = { active: stack.config.TEMPORAL_TASK_QUEUE, quiet: stack.config.TEMPORAL_QUIET_TASK_QUEUE };
    expect(queues.quiet).not.toBe(queues.active);
    fake.addCommunity('quiet-runs');
    fake.addPosts('quiet-runs', 1);
    const { row } = await track('quiet-runs', 3600);
    const handle = stack.client.workflow.getHandle(workflowIdOf(row.ref)) as WorkflowHandle<typeof trackCommunity>;
    const runAfter = (runId: string) =>
      eventually(async () => {
        const d = await handle.describe();
        return d.runId !== runId ? d : undefined;
      });
    const historyOf = async (runId: string) =>
      (await stack.client.workflow.getHandle(workflowIdOf(row.ref), runId).fetchHistory()).events ?? [];
    /** A run's history once its first workflow task completed (where it records its versioning). */
    const startedHistoryOf = (runId: string) =>
      eventually(async () => {
        const events = await historyOf(runId);
        return events.some((e) => e.workflowTaskCompletedEventAttributes) ? events : undefined;
      });
    const inputOf = (events: Awaited<ReturnType<typeof historyOf>>): TrackCommunityInput =>
      JSON.parse(Buffer.from(events[0].workflowExecutionStartedEventAttributes!.input!.payloads![0].data!).toString('utf8'));
    const added: number[] = [];
    const syncOnce = async (k: number) => {
      added.push(fake.addPosts('quiet-runs', 1)[0].id);
      await handle.signal(refreshSignal);
      await eventually(async () => (await queryStatus(deps(), row.ref))?.syncs === k, 10_000, 20);
    };

    // An hourly community starts on the quiet queue, whose worker keeps a small sticky cache of its
    // own: on the active queue it would hold a slot of the busy communities' cache for an hour.
    await eventually(async () => (await queryStatus(deps(), row.ref))?.syncs === 1);
    const firstRun = await handle.describe();
    expect(firstRun.taskQueue).toBe(queues.quiet);
    expect(inputOf(await startedHistoryOf(firstRun.runId))).toMatchObject({
      quietRuns: { ...QUIET_RUNS, taskQueues: queues },
      onQuietTaskQueue: true,
    });

    // There it syncs as before, in runs of QUIET_RUN_SYNCS.
    for (let k = 2; k <= QUIET_RUNS.syncs; k++) await syncOnce(k);
    const secondRun = await runAfter(firstRun.runId);
    expect(secondRun.taskQueue).toBe(queues.quiet);
    const quiet = await historyOf(firstRun.runId);
    expect(quiet.filter(completesSync)).toHaveLength(QUIET_RUNS.syncs);
    expect(quiet.some((e) => e.workflowTaskFailedEventAttributes)).toBe(false);
    // A run's history opens with one patch marker for every change to date, and the SDK's one
    // TemporalChangeVersion upsert, not one of each per change: each rollover pays for them. The
    // first run has one more pair, for its first sync ('quick-first-sync').
    const next = await startedHistoryOf(secondRun.runId);
    const versioning = (events: typeof next) => ({
      patches: events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch').length,
      upserts: events.filter((e) => e.upsertWorkflowSearchAttributesEventAttributes).length,
    });
    expect([versioning(quiet), versioning(next)]).toEqual([
      { patches: 2, upserts: 2 },
      { patches: 1, upserts: 1 },
    ]);
    // Nothing was lost on the way: the count, the interval and every post.
    expect(await queryStatus(deps(), row.ref)).toMatchObject({ syncs: QUIET_RUNS.syncs, refreshSeconds: 3600, lastError: null });
    expect(await storedIds(row.ref)).toEqual(expect.arrayContaining(added));

    // Every 10 minutes: after its next sync the run moves to the active queue, and there it goes
    // on past QUIET_RUN_SYNCS syncs.
    await handle.executeUpdate(setRefreshIntervalUpdate, { args: [600] });
    await syncOnce(QUIET_RUNS.syncs + 1);
    const activeRun = await runAfter(secondRun.runId);
    expect(activeRun.taskQueue).toBe(queues.active);
    expect((await historyOf(secondRun.runId)).filter(completesSync)).toHaveLength(1);
    expect(inputOf(await startedHistoryOf(activeRun.runId)).onQuietTaskQueue).toBeUndefined();
    for (let k = QUIET_RUNS.syncs + 2; k <= 2 * QUIET_RUNS.syncs + 2; k++) await syncOnce(k);
    expect((await handle.describe()).runId).toBe(activeRun.runId);
    expect((await historyOf(activeRun.runId)).filter(completesSync)).toHaveLength(QUIET_RUNS.syncs + 1);

    // Hourly again: back to the quiet queue after the next sync.
    await handle.executeUpdate(setRefreshIntervalUpdate, { args: [3600] });
    await syncOnce(2 * QUIET_RUNS.syncs + 3);
    expect((await runAfter(activeRun.runId)).taskQueue).toBe(queues.quiet);
    expect(await queryStatus(deps(), row.ref)).toMatchObject({ syncs: 2 * QUIET_RUNS.syncs + 3, refreshSeconds: 3600, lastError: null });
    expect(await storedIds(row.ref)).toEqual(expect.arrayContaining(added));
  });

  it('never hand over without a sync, even when a hand-started run asks for runs of 0 syncs', async () => {
    fake.addCommunity('zero-runs');
    fake.addPosts('zero-runs', 1);
    const { row } = await track('zero-runs', 3600);
    await eventually(async () => (await queryStatus(deps(), row.ref))?.syncs === 1);
    await restartWorkflow(row, 'test: restart with runs of 0 syncs', {
      refreshSeconds: 3600,
      maxCyclesPerRun: 0,
      quietRuns: { fromSeconds: 1, syncs: 0 },
    });
    // The new run syncs at once, then rolls over once (after that one sync): the next run waits
    // the hour out instead of handing over again at once, run after run.
    const handedOver = async () => {
      const runs: string[] = [];
      const query = `WorkflowId = '${workflowIdOf(row.ref)}' AND ExecutionStatus = 'ContinuedAsNew'`;
      for await (const run of stack.client.workflow.list({ query })) runs.push(run.runId);
      return runs.length;
    };
    await eventually(async () => (await handedOver()) >= 1);
    await new Promise((r) => setTimeout(r, 3000)); // without the floor: several more by now
    expect(await handedOver()).toBe(1);
    expect(await queryStatus(deps(), row.ref)).toMatchObject({ syncs: 1, state: 'waiting', lastError: null });
  });
});

// Changing the interval moves the deadline of the wait in progress (workflows/deadline.ts): later,
// earlier but still ahead, or into the past. The last case used to spin the workflow without ever
// awaiting: the SDK's deadlock detector then fails every workflow task of it (and aborts the
// worker process), nothing syncs any more and the status query stops answering.
describe('changing the refresh interval', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const handleOf = (ref: string) => stack.client.workflow.getHandle(workflowIdOf(ref)) as WorkflowHandle<typeof trackCommunity>;

  /** Tracks a new community with a few posts and waits for its first sync to be taken in. */
  async function trackSynced(name: string, refreshSeconds: number) {
    fake.addCommunity(name);
    fake.addPosts(name, 3);
    const { row } = await track(name, refreshSeconds);
    const first = await eventually(async () => {
      const s = await queryStatus(deps(), row.ref);
      return s?.syncs === 1 && s.state === 'waiting' ? s : undefined;
    });
    return { row, handle: handleOf(row.ref), first };
  }

  /** The status, asked with a deadline: throws when the workflow does not answer within 3 s. */
  async function statusNow(handle: WorkflowHandle<typeof trackCommunity>): Promise<CommunityStatus> {
    return stack.client.withDeadline(Date.now() + 3000, () => handle.query(statusQuery));
  }

  /** Every WorkflowTaskFailed event of the run (cause and message); none is acceptable here. */
  async function failedTasks(handle: WorkflowHandle): Promise<string[]> {
    const history = await handle.fetchHistory();
    return (history.events ?? [])
      .filter((e) => e.workflowTaskFailedEventAttributes)
      .map((e) => `${String(e.workflowTaskFailedEventAttributes!.cause)}: ${e.workflowTaskFailedEventAttributes!.failure?.message ?? ''}`);
  }

  /** `npm run worker`'s entry point as its own process, on `on`'s databases and task queue; resolves once it polls. */
  async function spawnWorker(on: Stack): Promise<ChildProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
      env: { ...process.env, ...on.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info' }, // info: to see 'worker ready'
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const onData = (c: Buffer) => {
        out += c.toString();
        if (!out.includes('worker ready')) return;
        child.stdout!.off('data', onData).resume(); // ready: its further logs are not kept
        resolve();
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code, signal) => reject(new Error(`worker exited with ${code ?? signal}: ${out}`)));
    });
    return child;
  }

  it('300 s shortened to 3 s after a few seconds (signal): syncs at once, keeps answering, no failed task, worker up', async () => {
    // The worker in its own process, as `npm start` runs it: if the workflow brings the worker
    // down (it used to), the test sees that and says so instead of dying with it.
    const own = await createStack({ worker: false });
    const worker = await spawnWorker(own);
    const ownDeps = { config: own.config, catalog: own.storage.catalog, router: own.storage.router, temporal: own.client };
    const alive = () => {
      if (worker.exitCode !== null || worker.signalCode !== null)
        throw new Error(`the worker process died (${worker.exitCode ?? worker.signalCode})`);
    };
    try {
      fake.addCommunity('shorten');
      fake.addPosts('shorten', 3);
      const { instance, host } = normalizeInstance(fake.url);
      const { row } = await startTracking(ownDeps, { instance, host, name: 'shorten', refreshSeconds: 300 });
      const handle = own.client.workflow.getHandle(workflowIdOf(row.ref)) as WorkflowHandle<typeof trackCommunity>;
      const askStatus = () => own.client.withDeadline(Date.now() + 3000, () => handle.query(statusQuery));
      const first = await eventually(async () => {
        const s = await askStatus();
        return s.syncs === 1 && s.state === 'waiting' ? s : undefined;
      });
      expect(Date.parse(first.nextSyncAt!) - Date.parse(first.lastSyncAt!)).toBeGreaterThan(290_000);

      await sleep(5000); // more than the new interval has passed since the last sync
      const [fresh] = fake.addPosts('shorten', 1);
      const changedAt = Date.now();
      await handle.signal(setRefreshIntervalSignal, 3);

      // The next sync is due already: it happens now (not in 300 s, nor never), and the status
      // query keeps answering.
      const stored = () =>
        own.storage.router.read(row.shard, async (sql) =>
          (await sql<{ lemmy_id: number }[]>`select lemmy_id from posts where community_id = ${row.id}`).map((r) => r.lemmy_id),
        );
      await eventually(
        async () => {
          alive();
          return (await stored()).includes(fresh.id);
        },
        6000,
        50,
      );
      const second = await eventually(async () => {
        alive();
        const s = await askStatus();
        return s.syncs >= 2 && s.state !== 'syncing' ? s : undefined;
      }, 3000);
      expect(Date.parse(second.lastSyncAt!) - changedAt).toBeLessThan(3000);
      expect(second).toMatchObject({ refreshSeconds: 3, state: 'waiting', lastError: null });
      expect(Date.parse(second.nextSyncAt!) - Date.parse(second.lastSyncAt!)).toBeLessThan(3500);
      // And then every 3 s: the workflow goes on, it is not stuck after one sync.
      await eventually(async () => {
        alive();
        return (await askStatus()).syncs >= 3;
      }, 6000);
      alive();
      expect(await failedTasks(handle)).toEqual([]);
    } finally {
      worker.kill('SIGKILL');
      await own.stop();
    }
  });

  it('shortened to a time still ahead: syncs then, counted from the last sync, not at once', async () => {
    const { handle, first } = await trackSynced('ahead', 300);
    await handle.signal(setRefreshIntervalSignal, 4);
    const changed = await statusNow(handle);
    expect(changed).toMatchObject({ refreshSeconds: 4, syncs: 1 });
    expect(Date.parse(changed.nextSyncAt!) - Date.parse(first.lastSyncAt!)).toBeLessThan(4500);
    await sleep(2000);
    expect((await statusNow(handle)).syncs).toBe(1); // not yet: 4 s have not passed
    await eventually(async () => ((await statusNow(handle)).syncs >= 2 ? true : undefined), 5000);
    expect(await failedTasks(handle)).toEqual([]);
  });

  it('lengthened while waiting: the sync due under the old interval does not happen', async () => {
    const { handle, first } = await trackSynced('lengthen', 3);
    const status = await handle.executeUpdate(setRefreshIntervalUpdate, { args: [120] });
    expect(status).toMatchObject({ refreshSeconds: 120, syncs: 1 });
    expect(Date.parse(status.nextSyncAt!) - Date.parse(first.lastSyncAt!)).toBeGreaterThan(115_000);
    await sleep(4000);
    expect(await statusNow(handle)).toMatchObject({ syncs: 1, refreshSeconds: 120, state: 'waiting' });
    // A refresh still wakes it.
    await handle.signal(refreshSignal);
    await eventually(async () => ((await statusNow(handle)).syncs >= 2 ? true : undefined), 5000);
    expect(await failedTasks(handle)).toEqual([]);
  });

  it('through the update: a good value answers with the new status, a bad one is refused and changes nothing', async () => {
    const { row, handle } = await trackSynced('updated', 300);
    const status = await handle.executeUpdate(setRefreshIntervalUpdate, { args: [600] });
    expect(status).toMatchObject({ refreshSeconds: 600, syncs: 1, state: 'waiting' });
    expect(Date.parse(status.nextSyncAt!) - Date.parse(status.lastSyncAt!)).toBeGreaterThan(590_000);
    for (const bad of [0, -5, 1.5, 86_401, Number.NaN, '60' as unknown as number]) {
      const refused = await handle.executeUpdate(setRefreshIntervalUpdate, { args: [bad] }).catch((err: unknown) => err);
      expect(refused, `update with ${String(bad)}`).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(((refused as WorkflowUpdateFailedError).cause as Error).message).toMatch(/whole number from 1 to 86400/);
    }
    expect(await queryStatus(deps(), row.ref)).toMatchObject({ refreshSeconds: 600, syncs: 1 });
    // The update shortening below the time waited syncs at once too, by the same path as the signal.
    await sleep(2100);
    await handle.executeUpdate(setRefreshIntervalUpdate, { args: [2] });
    await eventually(async () => ((await statusNow(handle)).syncs >= 2 ? true : undefined), 3000);
    expect(await failedTasks(handle)).toEqual([]);
  });

  it('a bad value by signal (as from the CLI) is ignored and tracking goes on', async () => {
    const { row, handle } = await trackSynced('badsignal', 2);
    await handle.signal(setRefreshIntervalSignal, 0);
    await handle.signal(setRefreshIntervalSignal, 'ten' as unknown as number);
    await eventually(async () => ((await statusNow(handle)).syncs >= 3 ? true : undefined), 8000);
    expect(await queryStatus(deps(), row.ref)).toMatchObject({ refreshSeconds: 2 });
    expect(await failedTasks(handle)).toEqual([]);
  });

  it('a run continued as new after its due time syncs at once instead of spinning', async () => {
    // What continue-as-new hands over when the new run starts late (worker down, a backlog):
    // the wait began 10 minutes ago with a 5-minute interval, no refresh pending.
    const { row } = await trackSynced('overdue', 300);
    const startedAt = Date.now();
    const overdue = await restartWorkflow(row, 'replaced by a run that starts overdue', {
      refreshSeconds: 300,
      carried: {
        status: {
          state: 'waiting',
          lastSyncAt: new Date(startedAt - 600_000).toISOString(),
          nextSyncAt: null,
          lastError: null,
          syncs: 1,
          postsStored: 3,
          refreshSeconds: 300,
          // as carried by a run from before refresh policies: the tracker fills in the rest
        } as CommunityStatus,
        syncNow: false,
        waitStartedAt: startedAt - 600_000,
        cycles: 0,
      },
    });
    const status = await eventually(async () => {
      const s = await statusNow(overdue);
      return s.syncs >= 2 && s.state === 'waiting' ? s : undefined;
    }, 5000);
    expect(Date.parse(status.lastSyncAt!)).toBeGreaterThanOrEqual(startedAt - 1000);
    expect(Date.parse(status.nextSyncAt!)).toBeGreaterThan(Date.now() + 250_000); // then the interval again
    expect(stack.worker!.worker.getState()).toBe('RUNNING');
    expect(await failedTasks(overdue)).toEqual([]);
  });
});
