// The list shows what the catalog knows, and a PATCH keeps that consistent: the next sync moves
// with the new interval at once (it counts from the last sync, as the workflow does), and the list
// never needs Temporal to show it.
import { Client, Connection } from '@temporalio/client';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import { createLogger } from '../src/log.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack, apiDeps } from './support/stack.js';
import { call, type Json } from './support/api.js';

let stack: Stack;
let fake: FakeLemmy;
let app: Hono;
let listApp: Hono;
const log = createLogger({ level: 'silent' });

beforeAll(async () => {
  [stack, fake] = await Promise.all([createStack(), FakeLemmy.start()]);
  app = createApp(apiDeps(stack, log));
  // The list is read through an app whose Temporal does not answer: it must not need one.
  const dead = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1', connectTimeout: '200ms' }) });
  listApp = createApp({ config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: dead, log });
});
afterAll(async () => {
  await stack?.stop();
  await fake?.close();
});

const listed = async (name: string): Promise<Json> =>
  ((await call(listApp, 'GET', '/api/communities?limit=100')).json.communities as Json[]).find((c) => c.name === name);

describe('tracking: catalog status after a PATCH', () => {
  it('the list shows the new interval and the next sync it implies, without asking Temporal', async () => {
    fake.addCommunity('interval');
    fake.addPosts('interval', 3);
    const added = await call(app, 'POST', '/api/communities', { instance: fake.url, name: 'interval', refreshSeconds: 3600 });
    expect(added.status).toBe(201);
    const synced = await eventually(async () => {
      const c = await listed('interval');
      return c?.status.state === 'waiting' ? c : undefined;
    }, 20_000);
    expect(Date.parse(synced.status.nextSyncAt) - Date.parse(synced.status.lastSyncAt)).toBe(3600_000);
    // One time for the sync: the workflow shows the one the sync saved, so the list, written by
    // the sync and then by the workflow, never shows one time and then another.
    const asked = (await call(app, 'GET', `/api/communities/${added.json.id}`)).json.status;
    expect(asked.lastSyncAt).toBe(synced.status.lastSyncAt);
    expect(Date.parse(asked.nextSyncAt) - Date.parse(asked.lastSyncAt)).toBe(3600_000);
    await new Promise((r) => setTimeout(r, 300)); // the workflow's own write of the schedule lands
    expect((await listed('interval')).status).toMatchObject({ lastSyncAt: synced.status.lastSyncAt, nextSyncAt: synced.status.nextSyncAt });

    const patched = await call(app, 'PATCH', `/api/communities/${added.json.id}`, { refreshSeconds: 600 });
    expect(patched.status).toBe(200);
    expect(patched.json.refreshSeconds).toBe(600);

    const after = await listed('interval');
    expect(after.refreshSeconds).toBe(600);
    expect(after.status.state).toBe('waiting');
    expect(after.status.lastSyncAt).toBe(synced.status.lastSyncAt);
    expect(Date.parse(after.status.nextSyncAt) - Date.parse(after.status.lastSyncAt)).toBe(600_000);
    expect(after.postsStored).toBe(3);

    // The workflow agrees (a single community asks it).
    const live = await eventually(async () => {
      const s = (await call(app, 'GET', `/api/communities/${added.json.id}`)).json?.status;
      return s?.nextSyncAt ? s : undefined;
    });
    expect(Math.abs(Date.parse(live.nextSyncAt) - Date.parse(after.status.nextSyncAt))).toBeLessThan(5000);
  });
});
