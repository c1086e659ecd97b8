// The per-instance request budget holds for all workers together, measured at the fake instance;
// a request with a deadline takes no slot it could not wait for.
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { readFileSync } from 'node:fs';
import { inject } from 'vitest';
import { BudgetExhaustedError, InstanceBudget } from '../src/db/instance-budget.js';
import { createLogger } from '../src/log.js';
import { withDeadline } from '../src/net/deadline.js';
import { createSourceHttp } from '../src/sources/factory.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { startTracking } from '../src/tracking.js';
import { startWorker, type WorkerHandle } from '../src/worker-runtime.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, type Stack } from './support/stack.js';

const RATE = 4; // requests per second per instance
let stack: Stack;
let fake: FakeLemmy;
let second: WorkerHandle;

beforeAll(async () => {
  stack = await createStack({ env: { INSTANCE_REQUESTS_PER_SECOND: String(RATE) } });
  // A second worker on the same task queue: the budget lives in the catalog, not in a worker.
  // A smaller one, with its own poll settings (checked below).
  second = await startWorker({
    config: { ...stack.config, WORKER_MAX_CONCURRENT_ACTIVITIES: 4, WORKER_WORKFLOW_TASK_POLLS: 3 },
    catalog: stack.storage.catalog,
    router: stack.storage.router,
    address: stack.config.TEMPORAL_ADDRESS!,
    log: createLogger({ level: 'warn' }),
    bundle: { code: readFileSync(inject('workflowBundlePath'), 'utf8') },
  });
  fake = await FakeLemmy.start();
});
afterAll(async () => {
  await second?.shutdown();
  await stack?.stop();
  await fake?.close();
});

it('never sends an instance more than its budget, however many communities and workers', async () => {
  // The worker settings reach the SDK (its maxConcurrent*TaskPolls options would be ignored).
  expect(second.worker.options.workflowTaskPollerBehavior).toEqual({ type: 'simple-maximum', maximum: 3 });
  expect(second.worker.options.activityTaskPollerBehavior).toEqual({ type: 'simple-maximum', maximum: 4 });
  const { instance, host } = normalizeInstance(fake.url);
  const deps = { config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: stack.client };
  for (let i = 0; i < 12; i++) {
    fake.addCommunity(`c${i}`);
    fake.addPosts(`c${i}`, 3);
  }
  const started = Date.now();
  await Promise.all(Array.from({ length: 12 }, (_, i) => startTracking(deps, { instance, host, name: `c${i}`, refreshSeconds: 1 })));
  await new Promise((r) => setTimeout(r, 8000));
  const times = fake.requests
    .filter((r) => r.at >= started)
    .map((r) => r.at)
    .sort((a, b) => a - b);
  // 12 communities syncing every second want ~24 requests/s; the budget allows RATE.
  let maxInWindow = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i] - times[j] >= 1000) j++;
    maxInWindow = Math.max(maxInWindow, i - j + 1);
  }
  expect(times.length).toBeGreaterThan(RATE * 5); // it did run at about the budget
  expect(maxInWindow).toBeLessThanOrEqual(RATE + 1); // +1: arrival jitter at window edges
  const overall = (times.length - 1) / ((times[times.length - 1] - times[0]) / 1000);
  expect(overall).toBeLessThanOrEqual(RATE * 1.1);
});

it('a request with little time left takes no slot it could not wait for: refused at once, the instance booked as before', async () => {
  // An instance of its own: the communities above still sync against the first one.
  const own = await FakeLemmy.start();
  onTestFinished(() => own.close());
  const { host } = normalizeInstance(own.url);
  const budget = new InstanceBudget(stack.storage.catalog, { requestsPerSecond: RATE, maxWaitMs: 30_000 });
  for (let i = 0; i < 8; i++) await budget.reserve(host); // booked ~2 s ahead
  const bookedUntil = async () =>
    (await stack.storage.catalog<{ at: Date }[]>`select next_slot as at from instance_budget where host = ${host}`)[0].at.getTime();
  const before = await bookedUntil();
  const http = createSourceHttp(stack.config, stack.storage.catalog);
  try {
    const signal = withDeadline(AbortSignal.timeout(500), Date.now() + 500);
    const started = Date.now();
    await expect(http.get(new URL('/api/v3/site', own.url), { accept: 'application/json', signal })).rejects.toBeInstanceOf(
      BudgetExhaustedError,
    );
    expect(Date.now() - started).toBeLessThan(400);
    expect(await bookedUntil()).toBe(before);
    // Without a deadline, the same request waits for its slot (INSTANCE_BUDGET_MAX_WAIT_SECONDS).
    expect((await http.get(new URL('/api/v3/site', own.url), { accept: 'application/json' })).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
  } finally {
    await http.close();
  }
});
