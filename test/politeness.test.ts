// The per-instance request budget holds for all workers together, measured at the fake instance.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { inject } from 'vitest';
import { createLogger } from '../src/log.js';
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
  second = await startWorker({
    config: stack.config,
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
