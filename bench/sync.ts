// `npm run bench -- sync [--n 500] [--rounds 5] [--syncs 60] [--replays 40] [--no-append]`
// What one steady sync costs, part by part, without the Temporal server: the part that is ours
// and the part that is the SDK's, so that the scale bench's CPU per sync can be split.
// 1. The sync activity alone: `--n` communities on fake Lemmy instances (served by this process),
//    each given one new post per round and synced as the workflow's quick attempt runs it (a
//    local activity, through MockActivityEnvironment), 20 at a time; CPU of this process and of
//    the three Postgres nodes per sync, over `--rounds` rounds after a first (backfill) sync.
// 2. The workflow's side of a sync: one real run is recorded on the dev server (1 s interval, so
//    its timer wakes it as in production, `--syncs` syncs), then replayed `--replays` times through
//    a replay worker in this process (the worker's bundle); CPU per sync = (replay of the whole run
//    − replay of its first sync) ÷ the syncs between. This is the worker's SDK (its Rust core, the
//    workflow thread, the bridge between them) for the two activations of a sync, with no server.
import { MockActivityEnvironment } from '@temporalio/testing';
import { createSyncActivity, type SyncSummary } from '../activities/sync.js';
import { insertCommunity } from '../src/db/communities.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { createSourceClients } from '../src/sources/factory.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { bundleWorkflows, withWorkflowStackFrames } from '../src/worker-runtime.js';
import type { FakeLemmy } from '../test/fake-lemmy.js';
import { CommunityTracker } from '../workflows/communityTracker.js';
import { statusQuery } from '../workflows/trackCommunity.js';
import { flag, hasFlag, startBenchEnv, type BenchEnv } from './support/env.js';
import { processCpuMsSince, treeCpuSeconds } from './support/proc.js';
import { cutAfterSyncs, replayCpuMs, startRecordedRun } from './support/recorded-run.js';
import { appendResults } from './support/results.js';
import { fmt, mapLimit, table } from './support/stats.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`[sync] ${line}\n`);

export async function run(argv: string[]): Promise<void> {
  const n = flag(argv, 'n', 500);
  const rounds = flag(argv, 'rounds', 5);
  const syncs = flag(argv, 'syncs', 60);
  const replays = flag(argv, 'replays', 40);
  const be = await startBenchEnv({ env: { INSTANCE_REQUESTS_PER_SECOND: '1000' } });
  try {
    const activity = await activityAlone(be, n, rounds);
    const workflow = await workflowSide(be, syncs, replays);
    const md = table(
      ['part of a steady sync (one new post)', 'CPU ms per sync', 'measured over'],
      [
        [
          'the sync activity as the quick local activity, with the fake Lemmy instances serving it (this process)',
          fmt(activity.process, 2),
          `${n} communities × ${rounds} rounds`,
        ],
        ['Postgres (catalog + 2 shard nodes, default durability)', fmt(activity.postgres, 2), `the same syncs`],
        [
          "the workflow's side: the SDK's two activations (core, bridge, workflow thread), replayed",
          fmt(workflow.perSync, 2),
          `${syncs - 1} syncs of a timer-driven run, ${replays} replays`,
        ],
      ],
    );
    process.stdout.write(`\n${md}\n`);
    if (!hasFlag(argv, 'no-append')) {
      appendResults('Sync parts (`npm run bench -- sync`)', md, {
        command: `npm run bench -- sync ${argv.join(' ')}`.trim(),
        notes: [
          `the activity: createSyncActivity as the worker builds it, run through MockActivityEnvironment as a local activity (isLocal, 5 s start-to-close) with the plan a workflow hands it, 20 at a time; each round gives every community one new post first; the fakes run in this process, so its CPU includes serving the requests (the scale bench puts them at ~1 CPU-ms per sync)`,
          `the workflow side: a replay of the recorded run's whole history minus a replay of its first sync, ÷ ${syncs - 1}; in a live worker the same activations also travel to and from the server (the scale bench's worker CPU per sync − the activity above)`,
        ],
      });
    }
  } finally {
    await be.close();
  }
}

/** CPU per sync of the activity (this process) and of Postgres, over rounds of one new post each. */
async function activityAlone(be: BenchEnv, n: number, rounds: number): Promise<{ process: number; postgres: number }> {
  const fakes = await be.startFakes(Math.max(1, Math.ceil(n / 50)));
  const sources = createSourceClients(be.config, be.storage.catalog);
  const sync = createSyncActivity({ catalog: be.storage.catalog, router: be.storage.router, sources, config: be.config });
  try {
    const communities: { fake: FakeLemmy; name: string; ref: string }[] = [];
    for (let i = 0; i < n; i++) {
      const fake = fakes[i % fakes.length];
      const name = `sync-${i}`;
      fake.addCommunity(name);
      fake.addPosts(name, 5);
      const { instance, host } = normalizeInstance(fake.url);
      const ref = `${name}@${host}`;
      await insertCommunity(be.storage.catalog, { ref, instance, host, name, refreshSeconds: 60, shard: logicalShardOf(ref) });
      communities.push({ fake, name, ref });
    }
    // What a workflow hands its sync: the plan of a community at a fixed 60 s, made as trackCommunity makes it.
    const plan = new CommunityTracker({ ref: communities[0].ref, instance: '', name: '', refreshSeconds: 60 }).planForSync();
    const syncAll = (isLocal: boolean) =>
      mapLimit(communities, 20, async (c) => {
        const env = new MockActivityEnvironment({ isLocal, startToCloseTimeoutMs: isLocal ? 5000 : 300_000 });
        const summary = (await env.run(sync, { ref: c.ref, plan })) as SyncSummary;
        if (!summary.tracked) throw new Error(`${c.ref} is not tracked`);
      });
    await syncAll(false); // the first sync pages back, as a regular activity
    const pg = be.nodes.map((node) => node.pid!);
    let processMs = 0;
    let postgresMs = 0;
    for (let r = 0; r < rounds; r++) {
      for (const c of communities) c.fake.addPosts(c.name, 1);
      const cpu0 = process.cpuUsage();
      const pg0 = treeCpuSeconds(pg);
      await syncAll(true);
      const round = processCpuMsSince(cpu0) / n;
      const roundPg = ((treeCpuSeconds(pg) - pg0) * 1000) / n;
      processMs += round;
      postgresMs += roundPg;
      log(`activity round ${r + 1}/${rounds}: ${fmt(round, 2)} CPU-ms per sync, Postgres ${fmt(roundPg, 2)}`);
    }
    return { process: processMs / rounds, postgres: postgresMs / rounds };
  } finally {
    await sources.close();
  }
}

/** Records a timer-driven run on the dev server, then CPU per sync of replaying it. */
async function workflowSide(be: BenchEnv, syncs: number, replays: number): Promise<{ perSync: number }> {
  const worker = await be.startWorker();
  const { fake, handle } = await startRecordedRun(be, { name: 'replayed', refreshSeconds: 1, maxCycles: syncs + 10 });
  const posting = setInterval(() => fake.addPosts('replayed', 1), 1000);
  try {
    const end = Date.now() + (syncs * 2 + 60) * 1000;
    while ((await handle.query(statusQuery)).syncs < syncs + 1) {
      if (Date.now() > end) throw new Error(`the recorded run did not reach ${syncs} syncs`);
      await sleep(500);
    }
  } finally {
    clearInterval(posting);
  }
  const events = (await handle.fetchHistory()).events ?? [];
  await handle.terminate('bench: recorded');
  worker.child.kill('SIGTERM');
  await worker.exited;
  log(`recorded ${events.length} events`);

  const code = withWorkflowStackFrames(await bundleWorkflows(), be.config.WORKER_WORKFLOW_STACK_FRAMES).code;
  const first = cutAfterSyncs(events, 1);
  const whole = cutAfterSyncs(events, syncs);
  if (!first || !whole) throw new Error(`the recorded run has fewer than ${syncs} syncs`);
  await replayCpuMs(code, whole, 5, 'warm-up');
  const one = await replayCpuMs(code, first, replays, 'first');
  const all = await replayCpuMs(code, whole, replays, 'whole');
  const perSync = (all - one) / (syncs - 1);
  log(`replay: first sync ${fmt(one, 2)} ms, ${syncs} syncs ${fmt(all, 2)} ms: ${fmt(perSync, 2)} CPU-ms per sync`);
  return { perSync };
}
