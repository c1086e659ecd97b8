// Tracking as a user drives it through the REST API, on the paths the first release got wrong:
// removing and adding a community again at once, and changing its interval while a sync runs.
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
  [stack, fake] = await Promise.all([createStack(), FakeLemmy.start()]);
  app = createApp(apiDeps(stack, createLogger({ level: 'silent' })));
});
afterAll(async () => {
  await stack?.stop();
  await fake?.close();
});

const path = (name: string) => `/api/communities/${encodeURIComponent(`${name}@${fake.hostPort}`)}`;

describe('tracking lifecycle', () => {
  it('delete, then add again at once: a fresh run tracks it (not the one being cancelled)', async () => {
    fake.addCommunity('again');
    fake.addPosts('again', 3);
    const first = await call('POST', '/api/communities', { instance: fake.url, name: 'again', refreshSeconds: 300 });
    expect(first.status).toBe(201);
    await eventually(async () => (await call('GET', `${path('again')}/posts`)).json?.posts?.length === 3);

    // The worker is busy elsewhere (here: stopped) when the user deletes and adds again, so the
    // cancelled run is still open when the new add arrives.
    await stack.worker!.shutdown();
    expect((await call('DELETE', path('again'))).status).toBe(204);
    fake.addPosts('again', 2);
    const again = await call('POST', '/api/communities', { instance: fake.url, name: 'again', refreshSeconds: 300 });
    expect(again.status).toBe(201);
    await stack.startWorker();

    // The new run syncs (all five posts come back) and stays running, waiting for its interval.
    await eventually(async () => (await call('GET', `${path('again')}/posts`)).json?.posts?.length === 5, 20_000);
    const shown = await eventually(async () => {
      const r = await call('GET', path('again'));
      return ['waiting', 'syncing'].includes(r.json?.status?.state) && r.json.status.syncs >= 1 ? r.json : undefined;
    });
    expect(shown.status.lastError).toBeNull();
    await new Promise((r) => setTimeout(r, 1500));
    expect((await call('GET', path('again'))).json.status.state).toMatch(/waiting|syncing/);
  });

  it('a PATCH during a sync is not undone when that sync finishes', async () => {
    fake.addCommunity('patched');
    fake.addPosts('patched', 2);
    expect((await call('POST', '/api/communities', { instance: fake.url, name: 'patched', refreshSeconds: 300 })).status).toBe(201);
    await eventually(async () => (await communityByRef(stack.storage.catalog, `patched@${fake.hostPort}`))?.last_update);

    // The next sync is slow (its post list takes 1.5 s, within the 2 s HTTP timeout, so this very
    // attempt succeeds). Change the interval while it runs.
    fake.fail({ kind: 'slow', delayMs: 1500 }, { path: 'post/list', community: 'patched', times: 1 });
    const before = fake.requestsFor('patched', 'post/list');
    expect((await call('POST', `${path('patched')}/refresh`)).status).toBe(202);
    await eventually(() => fake.requestsFor('patched', 'post/list') > before, 10_000, 20);
    const patched = await call('PATCH', path('patched'), { refreshSeconds: 120 });
    expect(patched.status).toBe(200);
    expect(patched.json.refreshSeconds).toBe(120);

    // The slow sync finishes and writes its metadata; the interval stays what the user set.
    await eventually(async () => {
      const s = (await call('GET', path('patched'))).json?.status;
      return s?.syncs >= 2 && s.state === 'waiting';
    }, 15_000);
    const row = await communityByRef(stack.storage.catalog, `patched@${fake.hostPort}`);
    expect(row?.refresh_seconds).toBe(120);
    const shown = (await call('GET', path('patched'))).json;
    expect(shown.refreshSeconds).toBe(120);
    expect(shown.status.refreshSeconds ?? 120).toBe(120);
  });
});
