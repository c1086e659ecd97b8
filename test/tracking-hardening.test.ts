// The list shows what the catalog knows, and a PATCH keeps that consistent: the next sync moves
// with the new interval at once (it counts from the last sync, as the workflow does), and the list
// never needs Temporal to show it.
import { Client, Connection } from '@temporalio/client';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import { communityByRef, saveSyncSuccess, setRefreshPolicy } from '../src/db/communities.js';
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
    await new Promise((r) => setTimeout(r, 300)); // nothing writes another time a moment later
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

  it("a sync's schedule saved as a PATCH lands does not undo the PATCH; one saved after it is the newer", async () => {
    fake.addCommunity('racing');
    fake.addPosts('racing', 1);
    const added = await call(app, 'POST', '/api/communities', { instance: fake.url, name: 'racing', refreshSeconds: 3600 });
    expect(added.status).toBe(201);
    await eventually(async () => (await listed('racing'))?.status.state === 'waiting', 20_000);
    const catalog = stack.storage.catalog;
    const row = (await communityByRef(catalog, added.json.ref))!;
    const policy = { mode: 'fixed' as const, refreshSeconds: 600, minRefreshSeconds: 60, maxRefreshSeconds: 3600 };
    const patchedRow = (await setRefreshPolicy(catalog, row.id, policy))!;
    const schedule = { intervalSeconds: 3600, reason: 'fixed: 3600 s', postsPerHour: 1 };

    // A sync whose time is before the PATCH: its (stale) interval is not written.
    const before = new Date(Date.now() - 1000);
    await saveSyncSuccess(catalog, row.id, { state: {}, inserted: 0, at: before, schedule });
    const kept = (await communityByRef(catalog, row.ref))!;
    expect({ interval: kept.interval_seconds, next: kept.next_sync_at?.getTime(), reason: kept.refresh_reason }).toEqual({
      interval: patchedRow.interval_seconds,
      next: before.getTime() + (patchedRow.interval_seconds ?? 600) * 1000,
      reason: patchedRow.refresh_reason,
    });

    // A sync after it: its schedule is the newest decision.
    const after = new Date(Date.now() + 1000);
    await saveSyncSuccess(catalog, row.id, {
      state: {},
      inserted: 0,
      at: after,
      schedule: { ...schedule, intervalSeconds: 600, reason: 'fixed: 600 s' },
    });
    const newer = (await communityByRef(catalog, row.ref))!;
    expect({
      interval: newer.interval_seconds,
      next: newer.next_sync_at?.getTime(),
      reason: newer.refresh_reason,
      at: newer.last_update?.getTime(),
    }).toEqual({
      interval: 600,
      next: after.getTime() + 600_000,
      reason: 'fixed: 600 s',
      at: after.getTime(),
    });
  });
});
