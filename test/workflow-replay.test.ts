// Replays recorded histories of real trackCommunity runs against the current workflow code (the
// bundle the worker runs). A change that would make a running workflow take a different path on
// replay (a non-deterministic change) fails here, in CI, instead of in production, where every
// tracked community would be stuck on its next workflow task. Such a change must be guarded with
// patched() (see the versioning rule in README).
//
// The fixtures (test/fixtures/histories/*.json) come from real runs on a dev server:
//   npm run record-histories     (scripts/record-histories.ts; then commit the JSON files)
// Unprefixed files are from the current code; `v1-*` from the version before the interval fix
// (git ec78da1^, the one whose loop could spin), `v2-*` from its first rework (ec78da1..4db4106),
// `v3-*` from the last fixed-interval version (before adaptive refresh, e0bb64a), `v4-*` from the
// version that rolled over in the task a sync ended in (before the 'roll-over-in-own-task' patch,
// bfa1fd8: a message arriving during that roll-over could be lost), `v5-*` from the version whose
// every sync was a regular activity (before the 'quick-sync-first' patch, 5293090), `v6-*` from the
// version that saved the schedule by a local activity of its own (before 'schedule-in-sync',
// b37d79b), `v7-*` from the version that waited with `condition` and a timeout (before
// 'wait-by-timer': a timer in a scope that messages interrupt), `v8-*` from the version whose runs
// recorded a patch marker for each of those changes (before 'changes-through-wait-by-timer', one
// marker for all of them). The current
// `retried.json` also holds a quick attempt that hands its sync over to the regular activity.
// `pause-*` (recorded with `-- --only pause`) exercise pause and resume: paused while waiting, a
// refresh and an interval change while paused, resumed, paused mid-sync, a rollover while paused,
// and a run started paused. `quiet-runs-*` (`-- --only quiet-runs`): a run rolled over after 2
// syncs at an interval at its quiet threshold, and the next going on past 2 at a shorter one.
// `quiet-queue-*` (`-- --only quiet-queue`): a run that names the quiet runs' task queue hands over
// to it after a sync at its quiet threshold, rolls over there after 2 syncs, and goes back to the
// active queue after a sync at a shorter interval (4 runs). `rollover-refresh-*` (`-- --only
// rollover-refresh`): a refresh that arrives in the pause before a rollover, in a run younger than a
// second (synced in that run, which pauses again) and, `-late-*`, in an older one (it rolls over at
// once and carries the refresh); `v9-*` from the version that held such a refresh until the pause's
// 1 ms timer fired (about a second on the dev server). `v10-*` from the version whose first sync
// was a regular activity (before 'quick-first-sync'). The patch 'refresh-ends-roll-over-pause' is
// recorded only by runs that met such a refresh. `quiet-bound` (`-- --only quiet-bound`): an
// adaptive community whose interval is its maximum, the maximum raised while it waits; `v11-*` from
// the version that jittered before clamping to the bounds and had no random first wait (before
// 'jitter-within-bounds', recorded only by runs whose workflow planned such an interval itself). The other histories never paused:
// they must replay unchanged, which is why the paused wait is a path only a pause takes.
// Workflows started by those versions may still be running, so their histories stay here. Record
// new ones when the workflow gains a path worth guarding (give the previous files a prefix);
// never re-record to make this test pass.
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, Worker, type ReplayResult } from '@temporalio/worker';
import { describe, expect, inject, it } from 'vitest';

const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));
const FIXTURES = fileURLToPath(new URL('./fixtures/histories/', import.meta.url));
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/replay/${name}`, import.meta.url));
const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never;

/** What the fixtures must cover; a missing one means the recording script changed or failed. */
const SCENARIOS = ['signals.json', 'rollover-run1.json', 'rollover-run2.json', 'not-found.json', 'retried.json', 'removed.json'];
/** The scenarios of a version, once it had pause and resume; then once it had quiet runs too. */
const WITH_PAUSE = [...SCENARIOS, 'pause-run1.json', 'pause-run2.json', 'pause-start.json'];
const WITH_QUIET_RUNS = [...WITH_PAUSE, 'quiet-runs-run1.json', 'quiet-runs-run2.json'];
const QUIET_QUEUE = ['quiet-queue-run1.json', 'quiet-queue-run2.json', 'quiet-queue-run3.json', 'quiet-queue-run4.json'];
/** A refresh in the pause before a rollover: `v9-*` waited for the pause's timer, the current ones end it. */
const ROLLOVER_REFRESH = ['rollover-refresh-run1.json', 'rollover-refresh-run2.json'];
const ROLLOVER_REFRESH_LATE = ['rollover-refresh-late-run1.json', 'rollover-refresh-late-run2.json'];
/** An adaptive community at its maximum, the maximum raised while it waits (the jitter at a bound). */
const QUIET_BOUND = ['quiet-bound.json'];
/** Every scenario the recording script has today. */
const CURRENT = [...WITH_QUIET_RUNS, ...QUIET_QUEUE, ...ROLLOVER_REFRESH, ...ROLLOVER_REFRESH_LATE, ...QUIET_BOUND];
const EXPECTED = [
  ...['', 'v11-'].flatMap((v) => CURRENT.map((f) => `${v}${f}`)),
  ...CURRENT.filter((f) => !QUIET_BOUND.includes(f)).map((f) => `v10-${f}`),
  ...ROLLOVER_REFRESH.map((f) => `v9-${f}`),
  ...SCENARIOS.map((f) => `v1-${f}`),
  ...SCENARIOS.filter((f) => f !== 'removed.json').map((f) => `v2-${f}`),
  ...SCENARIOS.map((f) => `v3-${f}`),
  ...['v4', 'v5', 'v6'].flatMap((v) => WITH_PAUSE.map((f) => `${v}-${f}`)),
  ...['v7', 'v8'].flatMap((v) => WITH_QUIET_RUNS.map((f) => `${v}-${f}`)),
];

function histories() {
  return readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ workflowId: f, history: JSON.parse(readFileSync(`${FIXTURES}${f}`, 'utf8')) as unknown }));
}

async function replayAll(code: string): Promise<{ file: string; error?: string }[]> {
  const results: { file: string; error?: string }[] = [];
  const iterable: AsyncIterable<ReplayResult> = Worker.runReplayHistories(
    { workflowBundle: { code }, replayName: 'fixtures' },
    histories(),
  );
  for await (const r of iterable)
    results.push({ file: r.workflowId, ...(r.error ? { error: `${r.error.name}: ${r.error.message}` } : {}) });
  return results;
}

/** The workflows bundled with one extra workflow interceptor module (a fixture under test/fixtures/replay). */
async function bundleWith(interceptor: string): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    workflowInterceptorModules: [fixture(interceptor)],
    logger: quiet,
  });
  return code;
}

describe('recorded trackCommunity histories', () => {
  it('are all there: signals and updates, a rollover (two runs), not found, a retried failure, a removal; of each version; pause and resume', () => {
    const files = histories().map((h) => h.workflowId);
    expect(files).toEqual(expect.arrayContaining(EXPECTED));
    for (const { workflowId, history } of histories()) {
      const events = (
        history as { events: { eventType: string; workflowExecutionStartedEventAttributes?: { workflowType?: { name?: string } } }[] }
      ).events;
      expect(events[0].workflowExecutionStartedEventAttributes?.workflowType?.name, workflowId).toBe('trackCommunity');
      expect(events.length, workflowId).toBeGreaterThan(10);
    }
  });

  it('replay on the current workflow code without non-determinism', async () => {
    const results = await replayAll(readFileSync(inject('workflowBundlePath'), 'utf8'));
    expect(results.map((r) => r.file).sort()).toEqual(histories().map((h) => h.workflowId));
    expect(results.filter((r) => r.error)).toEqual([]);
  }, 60_000);

  // The check itself can fail: one extra command before the first sync breaks every history...
  it('fail to replay after a non-deterministic change (an extra step before the first sync)', async () => {
    const results = await replayAll(await bundleWith('extra-step.ts'));
    expect(results).toHaveLength(histories().length);
    for (const r of results) expect(r.error, r.file).toMatch(/Nondeterminism|DeterminismViolation/i);
  }, 120_000);

  // ...and the same change guarded by patched() replays, as the versioning rule says.
  it('replay after the same change guarded by patched()', async () => {
    const results = await replayAll(await bundleWith('patched-extra-step.ts'));
    expect(results).toHaveLength(histories().length);
    expect(results.filter((r) => r.error)).toEqual([]);
  }, 120_000);
});
