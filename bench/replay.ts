// `npm run bench -- replay [--syncs 200] [--rounds 30] [--save history.json] [--no-append]`
// What a worker pays to replay a trackCommunity run it no longer holds in its sticky cache (more
// communities than WORKER_MAX_CACHED_WORKFLOWS): before its next sync, an evicted workflow replays
// its current run's history. Records one real run of `--syncs` syncs (a refresh signal each, as a
// timer would wake it: quick syncs), then replays its history cut after k syncs, `--rounds` times
// each, through one replay worker in this process (the worker's workflow code, bundled), and
// reports CPU per replay by the run's age, with the bundle as the worker runs it
// (WORKER_WORKFLOW_STACK_FRAMES), with V8's default stack depth, and without the SDK's vm
// timeout (support/no-vm-timeout.cjs, not shipped). Runs roll over every
// SYNCS_PER_RUN syncs (before: MAX_CYCLES_PER_RUN); an evicted workflow is on average half way
// through its run.
import type { temporal } from '@temporalio/proto';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { MAX_CYCLES_PER_RUN, refreshSignal, statusQuery, SYNCS_PER_RUN } from '../workflows/trackCommunity.js';
import { withWorkflowStackFrames } from '../src/worker-runtime.js';
import { flag, hasFlag, startBenchEnv } from './support/env.js';
import { cutAfterSyncs, replayCpuMs, startRecordedRun } from './support/recorded-run.js';
import { appendResults } from './support/results.js';
import { fmt, table } from './support/stats.js';

type History = temporal.api.history.v1.IHistory;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`[replay] ${line}\n`);

export async function run(argv: string[]): Promise<void> {
  const total = flag(argv, 'syncs', MAX_CYCLES_PER_RUN);
  const rounds = flag(argv, 'rounds', 30);
  const be = await startBenchEnv({ env: { INSTANCE_REQUESTS_PER_SECOND: '1000' } });
  try {
    await be.startWorker();
    // One long run: it never rolls over while recorded.
    const { fake, handle } = await startRecordedRun(be, { name: 'replay', refreshSeconds: 3600, maxCycles: total + 10 });
    const lastSync = async () => (await handle.query(statusQuery)).lastSyncAt;
    const waitForSyncAfter = async (previous: string | null) => {
      const end = Date.now() + 30_000;
      for (;;) {
        const now = await lastSync().catch(() => previous);
        if (now && now !== previous) return now;
        if (Date.now() > end) throw new Error('a sync did not finish within 30 s');
        await sleep(20);
      }
    };
    let last = await waitForSyncAfter(null);
    // One more than the longest cut: a cut ends at the workflow task after its last sync.
    for (let i = 1; i <= total; i++) {
      fake.addPosts('replay', 1);
      await handle.signal(refreshSignal);
      last = await waitForSyncAfter(last);
      if ((i + 1) % 50 === 0) log(`${i + 1}/${total} syncs recorded`);
    }
    const history: History = await handle.fetchHistory();
    const events = history.events ?? [];
    const save = flag(argv, 'save', '');
    if (save) writeFileSync(save, historyToJSON(history));
    await handle.terminate('bench: recorded');

    // The bundle as the worker runs it (WORKER_WORKFLOW_STACK_FRAMES), and with V8's default depth.
    const frames = be.config.WORKER_WORKFLOW_STACK_FRAMES;
    const plain = { code: readFileSync(be.env.WORKFLOW_BUNDLE_PATH, 'utf8') };
    const variants = [
      { name: `${frames} stack frames (as shipped)`, code: withWorkflowStackFrames(plain, frames).code },
      { name: "10 stack frames (V8's default)", code: plain.code },
      // The SDK's guard against workflow code that never yields, a watchdog thread per entry into
      // the workflow's vm context, left out (support/no-vm-timeout.cjs; not shipped).
      { name: `${frames} stack frames, no vm timeout (not shipped)`, code: withWorkflowStackFrames(plain, frames).code, noVmTimeout: true },
    ];
    const ages = [...new Set([1, SYNCS_PER_RUN / 2, SYNCS_PER_RUN, MAX_CYCLES_PER_RUN / 2, MAX_CYCLES_PER_RUN].filter((k) => k <= total))];
    const rows: { variant: string; syncs: number; events: number; ms: number }[] = [];
    for (const [i, variant] of variants.entries()) {
      const noVmTimeout = variant.noVmTimeout
        ? (createRequire(import.meta.url)('./support/no-vm-timeout.cjs') as { uninstall(): void })
        : undefined;
      try {
        // Warm the replayer (bundle load, V8 compilation) before anything is timed.
        await replayCpuMs(variant.code, events, 10, `warm-up-${i}`);
        // The other variants at the run ages of today's runs and at the old runs' half only.
        for (const k of i === 0 ? ages : [1, SYNCS_PER_RUN / 2, MAX_CYCLES_PER_RUN / 2]) {
          const cut = cutAfterSyncs(events, k);
          if (!cut) continue;
          const ms = await replayCpuMs(variant.code, cut, rounds, `age-${k}-${i}`);
          rows.push({ variant: variant.name, syncs: k, events: cut.length, ms });
          log(`${variant.name}, after ${k} syncs: ${cut.length} events, ${ms.toFixed(2)} CPU-ms per replay`);
        }
      } finally {
        noVmTimeout?.uninstall();
      }
    }
    const at = (variant: number, k: number) => rows.find((r) => r.variant === variants[variant].name && r.syncs === k);
    const before = at(1, MAX_CYCLES_PER_RUN / 2);
    const after = at(0, SYNCS_PER_RUN / 2);
    const shallow = at(0, MAX_CYCLES_PER_RUN / 2);
    const unguarded = at(2, SYNCS_PER_RUN / 2);
    const md = table(
      ['bundle', 'run age (syncs)', 'history events', 'CPU ms per replay', 'µs per event'],
      rows.map((r) => [r.variant, r.syncs, r.events, fmt(r.ms, 2), fmt((r.ms * 1000) / r.events, 1)]),
    );
    const summary =
      before && after && shallow
        ? `replay of an evicted workflow half way through its run: ${MAX_CYCLES_PER_RUN} syncs per run and V8's 10 stack frames (before) ${fmt(before.ms, 2)} CPU-ms → ${frames} frames ${fmt(shallow.ms, 2)} CPU-ms → and ${SYNCS_PER_RUN} syncs per run (after) ${fmt(after.ms, 2)} CPU-ms${unguarded ? ` (without the SDK's vm timeout, not shipped: ${fmt(unguarded.ms, 2)})` : ''}`
        : '';
    process.stdout.write(`\n${md}\n${summary}\n`);
    if (!hasFlag(argv, 'no-append')) {
      appendResults('Replay of an evicted workflow (`npm run bench -- replay`)', md, {
        command: `npm run bench -- replay ${argv.join(' ')}`.trim(),
        notes: [
          `one trackCommunity run of ${total} syncs (a refresh signal each, quick syncs, a new post each) on the file-backed dev server, its history cut after the workflow task that followed the k-th sync, replayed ${rounds} times per cut by one replay worker in this process (Worker.runReplayHistories, the worker's bundle); CPU = this process's user + system time per replay, after a warm-up`,
          'a workflow evicted from the sticky cache replays its run before its next sync; on average it is half way through its run',
          ...(summary ? [summary] : []),
        ],
      });
    }
  } finally {
    await be.close();
  }
}
