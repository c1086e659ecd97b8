// trackCommunity as a state machine, explored with random command sequences (fast-check) on the
// real dev server, a real worker and the HTTP fake of Lemmy, with short real intervals (no
// time-skipping server here). Commands: refresh; setRefreshInterval by signal and by update, with
// valid and invalid values, shorter and longer than the time already waited; new posts; waits;
// continue-as-new forced by a small maxCyclesPerRun; and cancel at the end.
//
// Invariants, checked for every sequence:
// - no workflow task ever fails, and the worker stays up;
// - the `status` query always answers, with the interval the model expects;
// - every sync starts on time: within 2 s of when the model says it is due (the interval after
//   the last sync, as changed meanwhile; or a refresh);
// - no refresh is lost (a refresh is a due time too), and nothing is synced after a cancel;
// - every post of the community is stored, once.
//
// Size: PROPERTY_RUNS sequences (default 4 in CI; try PROPERTY_RUNS=50 locally), seeded by
// PROPERTY_SEED (default fixed, so CI is repeatable; a failure prints the seed and the shrunk path).
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { insertCommunity } from '../src/db/communities.js';
import { logicalShardOf } from '../src/db/shards.js';
import { normalizeInstance } from '../src/lemmy/refs.js';
import {
  refreshSignal,
  setRefreshIntervalSignal,
  setRefreshIntervalUpdate,
  statusQuery,
  trackCommunity,
  workflowIdOf,
} from '../workflows/trackCommunity.js';
import { FakeLemmy } from './fake-lemmy.js';
import { failedWorkflowTasks } from './support/history.js';
import { createStack, eventually, type Stack } from './support/stack.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 4);
const SEED = Number(process.env.PROPERTY_SEED ?? 20261123);
/** How late a sync may start after it is due: scheduling, the activity's catalog read, loopback. */
const TOLERANCE_MS = 2000;

let stack: Stack;
let fake: FakeLemmy;
let sequence = 0;

beforeAll(async () => {
  stack = await createStack();
  fake = await FakeLemmy.start();
});
afterAll(async () => {
  await stack?.stop();
  await fake?.close();
});

type Command =
  | { kind: 'refresh' }
  | { kind: 'interval'; via: 'signal' | 'update'; seconds: number }
  | { kind: 'posts'; n: number }
  | { kind: 'wait'; ms: number };

const validSeconds = fc.integer({ min: 1, max: 4 });
const invalidSeconds = fc.constantFrom(0, -3, 1.5, 86_401, Number.NaN);
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'refresh' as const }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('interval' as const), via: fc.constantFrom('signal' as const, 'update' as const), seconds: validSeconds }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('interval' as const), via: fc.constantFrom('signal' as const, 'update' as const), seconds: invalidSeconds }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('posts' as const), n: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 100, max: 2500 }) }) },
);
const scenario = fc.record({
  initialSeconds: validSeconds,
  maxCyclesPerRun: fc.integer({ min: 1, max: 3 }),
  commands: fc.array(command, { minLength: 3, maxLength: 9 }),
  cancel: fc.boolean(),
});

/** What the workflow was told, when (client-side time; the workflow sees it a little later). */
type Told = { at: number; kind: 'refresh' } | { at: number; kind: 'interval'; seconds: number };

/**
 * The latest time the sync after the one that started at `from` may start: the first moment
 * the interval in force says it is due, or the first refresh after `from`, plus the tolerance.
 */
function dueBy(from: number, initialSeconds: number, told: Told[]): number {
  let seconds = initialSeconds;
  for (const t of told) if (t.at <= from && t.kind === 'interval') seconds = t.seconds;
  const later = told.filter((t) => t.at > from);
  let due = Number.POSITIVE_INFINITY;
  let segmentStart = from;
  for (let i = 0; i <= later.length; i++) {
    const segmentEnd = later[i]?.at ?? Number.POSITIVE_INFINITY;
    const candidate = Math.max(segmentStart, from + seconds * 1000);
    if (candidate < segmentEnd) {
      due = candidate;
      break;
    }
    const t = later[i];
    if (t.kind === 'interval') seconds = t.seconds;
    segmentStart = t.at;
  }
  const refresh = later.find((t) => t.kind === 'refresh');
  return Math.min(due, refresh?.at ?? Number.POSITIVE_INFINITY) + TOLERANCE_MS;
}

const isValid = (s: number) => Number.isInteger(s) && s >= 1 && s <= 86_400;

async function runScenario(s: { initialSeconds: number; maxCyclesPerRun: number; commands: Command[]; cancel: boolean }): Promise<void> {
  const name = `prop${++sequence}`;
  fake.addCommunity(name);
  fake.addPosts(name, 2);
  const { instance, host } = normalizeInstance(fake.url);
  const ref = `${name}@${host}`;
  const { row } = await insertCommunity(stack.storage.catalog, { ref, instance, host, name, refreshSeconds: s.initialSeconds, shard: logicalShardOf(ref) });
  const started = Date.now();
  const handle = await stack.client.workflow.start(trackCommunity, {
    workflowId: workflowIdOf(ref),
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    args: [{ ref, instance, name, refreshSeconds: s.initialSeconds, maxCyclesPerRun: s.maxCyclesPerRun }],
  });
  const told: Told[] = [];
  let seconds = s.initialSeconds;

  const queryAnswers = async (when: string) => {
    const status = await stack.client.withDeadline(Date.now() + 3000, () => handle.query(statusQuery)).catch((err: Error) => {
      throw new Error(`status query did not answer ${when}: ${err.message}`);
    });
    expect(status.refreshSeconds, `interval ${when}`).toBe(seconds);
    return status;
  };

  for (const c of s.commands) {
    if (c.kind === 'refresh') {
      told.push({ at: Date.now(), kind: 'refresh' });
      await handle.signal(refreshSignal);
    } else if (c.kind === 'interval') {
      const at = Date.now();
      if (c.via === 'signal') await handle.signal(setRefreshIntervalSignal, c.seconds);
      else {
        const answer = handle.executeUpdate(setRefreshIntervalUpdate, { args: [c.seconds] });
        if (isValid(c.seconds)) expect((await answer).refreshSeconds).toBe(c.seconds);
        else await expect(answer).rejects.toThrow();
      }
      if (isValid(c.seconds)) {
        seconds = c.seconds;
        told.push({ at, kind: 'interval', seconds: c.seconds });
      }
    } else if (c.kind === 'posts') {
      fake.addPosts(name, c.n);
    } else {
      await new Promise((r) => setTimeout(r, c.ms));
    }
    await queryAnswers(`after ${JSON.stringify(c)}`);
  }
  // Let the last due sync happen, then stop.
  await new Promise((r) => setTimeout(r, seconds * 1000 + TOLERANCE_MS));
  const end = Date.now();
  await queryAnswers('at the end');

  if (s.cancel) {
    await handle.cancel();
    const closed = await eventually(async () => {
      const d = await handle.describe();
      return d.status.name !== 'RUNNING' ? d.status.name : undefined;
    }, 10_000);
    expect(closed).toBe('CANCELLED');
    const cancelledAt = Date.now();
    await new Promise((r) => setTimeout(r, 1500));
    const after = fake.requests.filter((r) => r.community === name && r.at > cancelledAt + 200);
    expect(after, 'requests after cancel').toEqual([]);
  }

  // Every sync on time: consecutive sync starts (seen by the fake) never further apart than due.
  const syncs = fake.requests.filter((r) => r.community === name && r.path === '/api/v3/community').map((r) => r.at);
  expect(syncs.length).toBeGreaterThan(0);
  expect(syncs[0] - started, 'first sync starts at once').toBeLessThan(TOLERANCE_MS);
  for (let i = 0; i < syncs.length; i++) {
    const next = syncs[i + 1] ?? end;
    const limit = dueBy(syncs[i], s.initialSeconds, told);
    expect(next, `sync after the one at +${syncs[i] - started} ms is late (due by +${limit - started} ms); told: ${JSON.stringify(told.map((t) => ({ ...t, at: t.at - started })))}`).toBeLessThanOrEqual(limit);
  }

  expect(await failedWorkflowTasks(handle)).toEqual([]);
  expect(stack.worker!.worker.getState()).toBe('RUNNING');

  // Everything the fake has was stored, once (posts added after the last sync may be missing).
  const lastSync = syncs[syncs.length - 1];
  const expected = fake.community(name).posts.filter((p) => Date.parse(p.published) < lastSync - 50).map((p) => p.id);
  await eventually(async () => {
    const stored = await stack.storage.router.read(row.shard, (sql) => sql<{ lemmy_id: number }[]>`select lemmy_id from posts where community_id = ${row.id}`);
    const ids = stored.map((r) => r.lemmy_id);
    expect(new Set(ids).size).toBe(ids.length);
    return expected.every((id) => ids.includes(id));
  }, 5000);

  if (!s.cancel) await handle.terminate('property run done');
}

it(`trackCommunity keeps its invariants under random signals, updates and rollovers (${RUNS} sequences, seed ${SEED})`, async () => {
  await fc.assert(fc.asyncProperty(scenario, runScenario), { numRuns: RUNS, seed: SEED, endOnFailure: true });
}, 60_000 + RUNS * 60_000);

// The oracle itself: a test that cannot fail is a defect, so check that dueBy does demand syncs.
it('the on-time oracle: due after the interval, earlier after a shortening or a refresh', () => {
  expect(dueBy(0, 3, [])).toBe(3000 + TOLERANCE_MS);
  expect(dueBy(0, 300, [{ at: 6000, kind: 'interval', seconds: 3 }])).toBe(6000 + TOLERANCE_MS);
  expect(dueBy(0, 3, [{ at: 1000, kind: 'interval', seconds: 10 }])).toBe(10_000 + TOLERANCE_MS);
  expect(dueBy(0, 10, [{ at: 500, kind: 'refresh' }])).toBe(500 + TOLERANCE_MS);
  expect(dueBy(5000, 2, [{ at: 1000, kind: 'interval', seconds: 4 }])).toBe(9000 + TOLERANCE_MS);
});
