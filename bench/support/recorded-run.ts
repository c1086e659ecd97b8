// One trackCommunity run recorded for replay (bench/replay.ts, bench/sync.ts): a community on a
// fake Lemmy instance of its own, its workflow started as one long run (no roll-over while
// recorded), and what replaying its history, or the history cut after k syncs, costs.
import type { WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { insertCommunity } from '../../src/db/communities.js';
import { logicalShardOf } from '../../src/db/sharding/router.js';
import { normalizeInstance } from '../../src/sources/lemmy/refs.js';
import type { FakeLemmy } from '../../test/fake-lemmy.js';
import { completesSync } from '../../test/support/history.js';
import { trackCommunity, workflowIdOf } from '../../workflows/trackCommunity.js';
import type { BenchEnv } from './env.js';
import { processCpuMsSince } from './proc.js';

export type Event = temporal.api.history.v1.IHistoryEvent;

export interface RecordedRun {
  fake: FakeLemmy;
  handle: WorkflowHandle<typeof trackCommunity>;
}

/** Tracks `name` (5 posts) on a new fake instance and starts its workflow, `maxCycles` syncs per run. */
export async function startRecordedRun(be: BenchEnv, o: { name: string; refreshSeconds: number; maxCycles: number }): Promise<RecordedRun> {
  const [fake] = await be.startFakes(1);
  const { instance, host } = normalizeInstance(fake.url);
  fake.addCommunity(o.name);
  fake.addPosts(o.name, 5);
  const ref = `${o.name}@${host}`;
  await insertCommunity(be.storage.catalog, {
    ref,
    instance,
    host,
    name: o.name,
    refreshSeconds: o.refreshSeconds,
    shard: logicalShardOf(ref),
  });
  const handle = await be.client.workflow.start(trackCommunity, {
    workflowId: workflowIdOf(ref),
    taskQueue: be.config.TEMPORAL_TASK_QUEUE,
    args: [{ ref, instance, name: o.name, refreshSeconds: o.refreshSeconds, maxCyclesPerRun: o.maxCycles }],
  });
  return { fake, handle };
}

/** The history up to the workflow task that completed after its k-th sync (k = 0: the run's start). */
export function cutAfterSyncs(events: Event[], k: number): Event[] | undefined {
  let syncs = 0;
  for (let i = 0; i < events.length; i++) {
    if (completesSync(events[i])) syncs++;
    if (syncs >= k && events[i].workflowTaskCompletedEventAttributes) return events.slice(0, i + 1);
  }
  return undefined;
}

/** CPU ms of this process per replay of these events, `times` times through one replay worker. */
export async function replayCpuMs(code: string, events: Event[], times: number, name: string): Promise<number> {
  async function* histories() {
    for (let i = 0; i < times; i++) yield { workflowId: `${name}-${i}`, history: { events } };
  }
  const cpu0 = process.cpuUsage();
  for await (const r of Worker.runReplayHistories({ workflowBundle: { code }, replayName: name }, histories())) {
    if (r.error) throw new Error(`replay failed: ${r.error.message}`);
  }
  return processCpuMsSince(cpu0) / times;
}
