// A sync attempt of a community that was removed (and added again at once) must not write its
// outcome onto the new row: the row it read is gone, so it records nothing.
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import { communityByRef } from '../src/db/communities.js';
import { createLogger } from '../src/log.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack, apiDeps } from './support/stack.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

let stack: Stack;
let fake: FakeLemmy;
let app: Hono;

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const res = await app.request(path, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

beforeAll(async () => {
  // HTTP_TIMEOUT_MS 2000 (the stack's): the old attempt's hanging request fails on its own
  // within 2 s, whether or not the cancellation reaches it first.
  [stack, fake] = await Promise.all([createStack(), FakeLemmy.start()]);
  app = createApp(apiDeps(stack, createLogger({ level: 'silent' })));
});
afterAll(async () => {
  await stack?.stop();
  await fake?.close();
});

describe('a sync attempt that outlives its community', () => {
  it("removed and added again while a sync hangs: the new row shows the new sync, not the old attempt's failure", async () => {
    fake.addCommunity('readded');
    fake.addPosts('readded', 2);
    const ref = `readded@${fake.hostPort}`;
    const path = `/api/communities/${encodeURIComponent(ref)}`;
    expect((await call('POST', '/api/communities', { instance: fake.url, name: 'readded', refreshSeconds: 300 })).status).toBe(201);
    await eventually(async () => (await communityByRef(stack.storage.catalog, ref))?.sync_state === 'waiting');

    // The next sync hangs on its post list ...
    fake.fail({ kind: 'slow', delayMs: 30_000 }, { path: 'post/list', community: 'readded', times: 1 });
    const before = fake.requests.length;
    expect((await call('POST', `${path}/refresh`)).status).toBe(202);
    const inFlight = await eventually(
      () => fake.requests.slice(before).find((r) => r.community === 'readded' && r.path === '/api/v3/post/list'),
      10_000,
      20,
    );

    // ... when the user removes the community and adds it again.
    expect((await call('DELETE', path)).status).toBe(204);
    const again = await call('POST', '/api/communities', { instance: fake.url, name: 'readded', refreshSeconds: 300 });
    expect(again.status).toBe(201);
    await eventually(async () => (await communityByRef(stack.storage.catalog, ref))?.syncs === 1, 20_000);

    // The old attempt ends (cancelled, or its own HTTP timeout) after the new run's sync.
    await eventually(() => inFlight.abortedAt, 10_000, 50);
    await new Promise((r) => setTimeout(r, 1500));

    const row = await communityByRef(stack.storage.catalog, ref);
    expect(row?.id).toBe(again.json.id);
    expect({ state: row?.sync_state, error: row?.last_error }).toEqual({ state: 'waiting', error: null });
    const listed = ((await call('GET', '/api/communities?limit=100')).json.communities as Json[]).find((c) => c.ref === ref);
    expect(listed.status).toMatchObject({ state: 'waiting', lastError: null, syncs: 1 });
    const shown = (await call('GET', path)).json;
    expect(shown.status.lastError).toBeNull();
    expect(shown.status.state).toMatch(/waiting|syncing/);
  }, 60_000);
});
