// Replays recorded histories of real trackCommunity runs against the current workflow code. A
// change that would make a running workflow take a different path on replay (a non-deterministic
// change) fails here, in CI, instead of in production where it would wedge every tracked
// community on its next workflow task. Such a change must be guarded with patched() (README,
// "Changing workflow code").
//
// The fixtures in test/fixtures/histories/ are recorded by this same file:
//   npm run record-histories     (RECORD_HISTORIES=1; then commit the new JSON files)
// Record again only when a change is meant to be incompatible (a new workflow type or version),
// never to make this test pass.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { insertCommunity } from '../src/db/communities.js';
import { logicalShardOf } from '../src/db/shards.js';
import { normalizeInstance } from '../src/lemmy/refs.js';
import { refreshSignal, setRefreshIntervalSignal, setRefreshIntervalUpdate, statusQuery, trackCommunity, workflowIdOf } from '../workflows/trackCommunity.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack } from './support/stack.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/histories/', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const recording = process.env.RECORD_HISTORIES === '1';

interface ReplayOutcome {
  code: number | null;
  results: { history: string; ok: boolean; error?: string }[];
}

/** Runs scripts/replay-histories.ts in a plain Node process (see there why not in vitest). */
function replay(...args: string[]): ReplayOutcome {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/replay-histories.ts', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  const results = run.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as ReplayOutcome['results'][number]);
  return { code: run.status, results };
}

describe.skipIf(recording)('recorded trackCommunity histories replay on the current code', () => {
  it('every fixture replays without non-determinism', () => {
    const { code, results } = replay();
    // A rollover (two runs), a not-found failure, a retried failure, signals and updates.
    expect(results.map((r) => r.history).sort()).toEqual(readdirSync(FIXTURES).filter((f) => f.endsWith('.json')).sort());
    expect(results.length).toBeGreaterThanOrEqual(5);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(code).toBe(0);
  }, 120_000);

  it('a non-deterministic change is caught (the check itself can fail)', () => {
    const { code, results } = replay('--nondeterministic');
    expect(code).toBe(1);
    expect(results.length).toBeGreaterThanOrEqual(5);
    for (const r of results) expect(r.error).toMatch(/Nondeterminism/i);
  }, 120_000);
});

describe.runIf(recording)('record histories (npm run record-histories)', () => {
  let stack: Stack;
  let fake: FakeLemmy;
  beforeAll(async () => {
    stack = await createStack();
    fake = await FakeLemmy.start();
    mkdirSync(FIXTURES, { recursive: true });
  });
  afterAll(async () => {
    await stack?.stop();
    await fake?.close();
  });

  async function start(name: string, refreshSeconds: number, maxCyclesPerRun?: number): Promise<WorkflowHandle<typeof trackCommunity>> {
    const { instance, host } = normalizeInstance(fake.url);
    const ref = `${name}@${host}`;
    await insertCommunity(stack.storage.catalog, { ref, instance, host, name, refreshSeconds, shard: logicalShardOf(ref) });
    return stack.client.workflow.start(trackCommunity, {
      workflowId: workflowIdOf(ref),
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      args: [{ ref, instance, name, refreshSeconds, ...(maxCyclesPerRun ? { maxCyclesPerRun } : {}) }],
    });
  }

  /** Writes the history of every run of the workflow, oldest first, as `temporal workflow show` does. */
  async function save(label: string, handle: WorkflowHandle): Promise<void> {
    const runs: string[] = [];
    let runId: string | undefined = (await handle.describe()).runId;
    while (runId) {
      const json: string = execFileSync(inject('temporalCli'), ['workflow', 'show', '--address', stack.config.TEMPORAL_ADDRESS!, '--workflow-id', handle.workflowId, '--run-id', runId, '--output', 'json'], { encoding: 'utf8' });
      runs.unshift(json.trim());
      const first: { workflowExecutionStartedEventAttributes?: { continuedExecutionRunId?: string } } = (JSON.parse(json) as { events: { workflowExecutionStartedEventAttributes?: { continuedExecutionRunId?: string } }[] }).events[0];
      runId = first.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
    }
    runs.forEach((json, i) => writeFileSync(path.join(FIXTURES, `${label}${runs.length > 1 ? `-run${i + 1}` : ''}.json`), `${json}\n`));
  }

  const syncs = (h: WorkflowHandle<typeof trackCommunity>, n: number) => eventually(async () => ((await h.query(statusQuery)).syncs >= n ? true : undefined), 20_000);

  it('records a run with signals, an update and a cancel', async () => {
    fake.addCommunity('signals');
    fake.addPosts('signals', 5);
    const h = await start('signals', 2);
    await syncs(h, 1);
    await h.signal(refreshSignal);
    await syncs(h, 2);
    await h.signal(setRefreshIntervalSignal, 1);
    await h.executeUpdate(setRefreshIntervalUpdate, { args: [3] });
    await h.signal(setRefreshIntervalSignal, 0); // ignored
    await syncs(h, 3);
    await h.cancel();
    await h.result().catch(() => {});
    await save('signals', h);
  });

  it('records a rollover (continue-as-new after 2 syncs) with a refresh carried over', async () => {
    fake.addCommunity('rollover');
    fake.addPosts('rollover', 3);
    const h = await start('rollover', 1, 2);
    const firstRun = (await h.describe()).runId;
    await eventually(async () => ((await stack.client.workflow.getHandle(h.workflowId).describe()).runId !== firstRun ? true : undefined), 20_000);
    await stack.client.workflow.getHandle(h.workflowId).signal(refreshSignal);
    await syncs(stack.client.workflow.getHandle(h.workflowId) as WorkflowHandle<typeof trackCommunity>, 2);
    const latest = stack.client.workflow.getHandle(h.workflowId);
    await latest.terminate('recorded');
    await save('rollover', latest);
  });

  it('records failures: not found, and a retried server error', async () => {
    const missing = await start('missing', 60);
    await eventually(async () => ((await missing.query(statusQuery)).state === 'not_found' ? true : undefined), 20_000);
    await missing.terminate('recorded');
    await save('not-found', missing);

    fake.addCommunity('flaky');
    fake.addPosts('flaky', 2);
    fake.fail({ kind: 'status500' }, { times: 2, path: 'post/list', community: 'flaky' });
    const flaky = await start('flaky', 60);
    await syncs(flaky, 1);
    await flaky.terminate('recorded');
    await save('retried', flaky);
  });
});
