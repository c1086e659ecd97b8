// Refresh policies as a state machine, explored with random command sequences (fast-check) on the
// real Temporal dev server, a worker and the HTTP fake of Lemmy, with short real intervals.
//
// Commands: bursts of new posts; `refresh`; a new policy (adaptive within random bounds of 1–4 s,
// or fixed at 1–4 s) by signal or by update; an invalid policy (min above max, 0 s) by signal
// (ignored) or update (refused); an outage (the community is gone for a while, so syncs fail
// permanently, back off and may turn dormant, then it is back); waits of 0.2–2.5 s.
//
// Invariants, checked after every command and at the end:
// - the `status` query answers, and its interval keeps the policy: within [min, max] when
//   adaptive, the fixed one when fixed, never above max(max, fixed) while backing off;
// - the next sync is on time: a waiting workflow's nextSyncAt is never more than 3 s in the past;
// - no workflow task ever fails (every run's history is scanned);
// - after a last refresh, every post on the instance is stored, none twice.
// Quiet runs start at 3 s here (QUIET_RUN_FROM_SECONDS), so intervals of 3–4 s move a workflow to
// the quiet runs' task queue and shorter ones back: at the end, some run must have been there.
//
//   PROPERTY_RUNS (default 3) sequences; PROPERTY_SEED (default 20261123).
import type { WorkflowHandle } from '@temporalio/client';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { communityByRef } from '../src/db/communities.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { changeRefreshPolicy, requestRefresh, startTracking } from '../src/tracking.js';
import type { RefreshPolicy } from '../workflows/refreshPolicy.js';
import { setRefreshPolicySignal, setRefreshPolicyUpdate, workflowIdOf, type CommunityStatus } from '../workflows/trackCommunity.js';
import { FakeLemmy } from './fake-lemmy.js';
import { failedWorkflowTasks } from './support/history.js';
import { createStack, eventually, queryStatus, type Stack } from './support/stack.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 3);
const SEED = Number(process.env.PROPERTY_SEED ?? 20261123);
const LATE_MS = 3000;

let stack: Stack;
let fake: FakeLemmy;
let sequence = 0;

beforeAll(async () => {
  [stack, fake] = await Promise.all([createStack({ env: { QUIET_RUN_FROM_SECONDS: '3' } }), FakeLemmy.start()]);
});
afterAll(async () => {
  await stack?.stop();
  await fake?.close();
});

const deps = () => ({ config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: stack.client });

type PolicyChange = RefreshPolicy & { refreshSeconds: number };
type Command =
  | { kind: 'posts'; n: number }
  | { kind: 'refresh' }
  | { kind: 'policy'; via: 'signal' | 'update'; change: PolicyChange }
  | { kind: 'badPolicy'; via: 'signal' | 'update'; change: PolicyChange }
  | { kind: 'outage'; ms: number }
  | { kind: 'wait'; ms: number };

const bounds = fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })).map(([a, b]) => [Math.min(a, b), Math.max(a, b)]);
const goodChange: fc.Arbitrary<PolicyChange> = fc.oneof(
  bounds.map(([min, max]) => ({ mode: 'adaptive' as const, minSeconds: min, maxSeconds: max, refreshSeconds: 2 })),
  fc.integer({ min: 1, max: 4 }).map((s) => ({ mode: 'fixed' as const, minSeconds: 1, maxSeconds: 4, refreshSeconds: s })),
);
const badChange: fc.Arbitrary<PolicyChange> = fc.constantFrom(
  { mode: 'adaptive' as const, minSeconds: 4, maxSeconds: 2, refreshSeconds: 2 },
  { mode: 'fixed' as const, minSeconds: 1, maxSeconds: 4, refreshSeconds: 0 },
);
const via = fc.constantFrom('signal' as const, 'update' as const);
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('posts' as const), n: fc.integer({ min: 1, max: 30 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'refresh' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('policy' as const), via, change: goodChange }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('badPolicy' as const), via, change: badChange }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('outage' as const), ms: fc.integer({ min: 1000, max: 5000 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 200, max: 2500 }) }) },
);
const scenario = fc.record({ initial: goodChange, commands: fc.array(command, { minLength: 4, maxLength: 9 }) });

/** The interval a status may show under the policy the model knows. */
function checkInterval(s: CommunityStatus, policy: PolicyChange, what: string): void {
  if (s.consecutiveFailures > 0) {
    expect(s.refreshSeconds, what).toBeLessThanOrEqual(Math.max(policy.maxSeconds, policy.mode === 'fixed' ? policy.refreshSeconds : 0));
  } else if (policy.mode === 'fixed') {
    expect(s.refreshSeconds, what).toBe(policy.refreshSeconds);
  } else {
    expect(s.refreshSeconds, what).toBeGreaterThanOrEqual(policy.minSeconds);
    expect(s.refreshSeconds, what).toBeLessThanOrEqual(policy.maxSeconds);
  }
  if (s.state !== 'syncing' && s.nextSyncAt) {
    expect(Date.now() - Date.parse(s.nextSyncAt), `${what}: the next sync is late`).toBeLessThan(LATE_MS);
  }
}

async function runScenario(sc: { initial: PolicyChange; commands: Command[] }): Promise<void> {
  const name = `ap${++sequence}`;
  fake.addCommunity(name);
  fake.addPosts(name, 3);
  const { instance, host } = normalizeInstance(fake.url);
  const { row } = await startTracking(deps(), {
    instance,
    host,
    name,
    refreshSeconds: sc.initial.refreshSeconds,
    policy: { mode: sc.initial.mode, minSeconds: sc.initial.minSeconds, maxSeconds: sc.initial.maxSeconds },
  });
  const handle: WorkflowHandle = stack.client.workflow.getHandle(workflowIdOf(row.ref));
  let policy = sc.initial;
  const log: string[] = [];
  const observe = async (what: string) => {
    // A policy sent by signal is in force once the workflow has taken it in.
    const s = await eventually(async () => {
      const st = await queryStatus(deps(), row.ref, 3000);
      return st && st.refreshPolicy === policy.mode && st.maxRefreshSeconds === policy.maxSeconds ? st : undefined;
    }, 10_000);
    checkInterval(s, policy, `${what}; so far: ${log.join(', ')}`);
  };
  await observe('after the start');
  for (const cmd of sc.commands) {
    log.push(JSON.stringify(cmd));
    switch (cmd.kind) {
      case 'posts':
        fake.addPosts(name, cmd.n);
        break;
      case 'refresh':
        await requestRefresh(deps(), (await communityByRef(stack.storage.catalog, row.ref))!);
        break;
      case 'policy':
        if (cmd.via === 'signal') await changeRefreshPolicy(deps(), (await communityByRef(stack.storage.catalog, row.ref))!, cmd.change);
        else await handle.executeUpdate(setRefreshPolicyUpdate, { args: [cmd.change] });
        policy = cmd.change;
        break;
      case 'badPolicy':
        if (cmd.via === 'signal') await handle.signal(setRefreshPolicySignal, cmd.change);
        else await expect(handle.executeUpdate(setRefreshPolicyUpdate, { args: [cmd.change] })).rejects.toThrow();
        break;
      case 'outage':
        fake.removeCommunity(name);
        await new Promise((r) => setTimeout(r, cmd.ms));
        fake.addCommunity(name);
        break;
      case 'wait':
        await new Promise((r) => setTimeout(r, cmd.ms));
        break;
    }
    await observe(`after ${JSON.stringify(cmd)}`);
  }
  // A last refresh: everything on the instance is stored, once.
  const before = (await queryStatus(deps(), row.ref))!.syncs;
  await requestRefresh(deps(), (await communityByRef(stack.storage.catalog, row.ref))!);
  await eventually(async () => {
    const s = await queryStatus(deps(), row.ref);
    return s && s.syncs > before && s.state === 'waiting' ? s : undefined;
  }, 20_000);
  const onInstance = fake.community(name).posts.map((p) => p.id);
  const stored = await stack.storage.router.read(
    row.shard,
    (sql) =>
      sql<{ n: number; distinct: number; missing: number }[]>`
      select count(*)::int as n, count(distinct lemmy_id)::int as distinct,
             (select count(*)::int from unnest(${onInstance}::bigint[]) as want(id)
               where not exists (select 1 from posts p where p.community_id = ${row.id} and p.lemmy_id = want.id)) as missing
      from posts where community_id = ${row.id}`,
  );
  expect(stored[0].n, `duplicates; ${log.join(', ')}`).toBe(stored[0].distinct);
  expect(stored[0].missing, `posts missing; ${log.join(', ')}`).toBe(0);
  expect(await failedWorkflowTasks(handle), log.join(', ')).toEqual([]);
  await handle.terminate('sequence over');
}

it(`keeps refresh policies under random bursts, refreshes, policy changes and outages (${RUNS} sequences, seed ${SEED})`, async () => {
  await fc.assert(
    fc.asyncProperty(scenario, async (sc) => runScenario(sc)),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );
  // The sequences crossed the quiet threshold: runs went to the quiet queue (and were checked there).
  const quietRuns = await stack.client.workflow.count(`TaskQueue = '${stack.config.TEMPORAL_QUIET_TASK_QUEUE}'`);
  expect(quietRuns.count).toBeGreaterThan(0);
}, 600_000);
