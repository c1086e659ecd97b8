// A sync never outlives what Temporal allows it: cancelling the workflow stops the request in
// flight (the instance sees the connection closed), instead of leaving it running beside retries.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { startTracking, stopTracking } from '../src/tracking.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack } from './support/stack.js';

let stack: Stack;
let fake: FakeLemmy;

beforeAll(async () => {
  // Requests may take a minute here, so that only the cancellation can end the one in flight.
  [stack, fake] = await Promise.all([createStack({ env: { HTTP_TIMEOUT_MS: '60000' } }), FakeLemmy.start()]);
});
afterAll(async () => {
  await stack?.stop();
  await fake?.close();
});

describe('sync deadline and cancellation', () => {
  it('removing a community while its sync waits on a hanging instance closes that request promptly', async () => {
    fake.addCommunity('hanging');
    fake.addPosts('hanging', 2);
    fake.fail({ kind: 'slow', delayMs: 50_000 }, { path: 'post/list', community: 'hanging', times: 5 });
    const { instance, host } = normalizeInstance(fake.url);
    const deps = { config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: stack.client };
    const { row } = await startTracking(deps, { instance, host, name: 'hanging', refreshSeconds: 300 });
    const inFlight = await eventually(
      () => fake.requests.find((r) => r.community === 'hanging' && r.path === '/api/v3/post/list'),
      10_000,
      20,
    );

    const removedAt = Date.now();
    await stopTracking(deps, row);
    // The activity learns of the cancel with its next heartbeat (every 2 s) and aborts the request.
    await eventually(() => inFlight.abortedAt, 8000, 50);
    expect(inFlight.abortedAt! - removedAt).toBeLessThan(6000);
    // And no retry goes on asking.
    await new Promise((r) => setTimeout(r, 2000));
    expect(fake.requests.filter((r) => r.community === 'hanging' && r.at > inFlight.abortedAt!)).toEqual([]);
  }, 40_000);
});
