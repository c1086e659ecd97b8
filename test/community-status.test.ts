// One community's status when its workflow cannot tell: Temporal down ("unknown") or the workflow
// stopped. The API then answers from the catalog, and shows what the catalog knows (the same as the
// list), rather than blanks.
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
let noTemporal: Hono;
const log = createLogger({ level: 'silent' });

beforeAll(async () => {
  [stack, fake] = await Promise.all([createStack(), FakeLemmy.start()]);
  app = createApp(apiDeps(stack, log));
  const dead = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1', connectTimeout: '200ms' }) });
  noTemporal = createApp({ config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: dead, log });
});
afterAll(async () => {
  await stack?.stop();
  await fake?.close();
});

describe("one community without its workflow's answer", () => {
  it('Temporal down: state "unknown", with the catalog\'s postsStored, syncs, lastSyncAt and nextSyncAt (as the list shows them)', async () => {
    fake.addCommunity('fallback');
    fake.addPosts('fallback', 4);
    const added = await call(app, 'POST', '/api/communities', { instance: fake.url, name: 'fallback', refreshSeconds: 600 });
    expect(added.status).toBe(201);
    const listed = await eventually(async () => {
      const c = ((await call(noTemporal, 'GET', '/api/communities?limit=100')).json.communities as Json[]).find(
        (x) => x.name === 'fallback',
      );
      // Synced, and its schedule recorded: the workflow writes that (with the posting rate its
      // first sync measured) just after the sync's own catalog write; read between the two, the
      // list and the answer below would differ by a few ms of lastSyncAt.
      return c?.status.state === 'waiting' && c.status.postsPerHour !== null ? c : undefined;
    }, 20_000);

    const one = await call(noTemporal, 'GET', `/api/communities/${added.json.id}`);
    expect(one.status).toBe(200);
    expect(one.json.status.state).toBe('unknown');
    expect(one.json.postsStored).toBe(4);
    expect(one.json.status).toEqual({ ...listed.status, state: 'unknown' });
    expect(one.json.status.syncs).toBe(1);
    expect(Date.parse(one.json.status.nextSyncAt) - Date.parse(one.json.status.lastSyncAt)).toBe(600_000);
  });

  it('workflow stopped by hand: state "stopped", no next sync, the posts it stored still counted', async () => {
    fake.addCommunity('halted');
    fake.addPosts('halted', 3);
    const added = await call(app, 'POST', '/api/communities', { instance: fake.url, name: 'halted', refreshSeconds: 600 });
    expect(added.status).toBe(201);
    await eventually(async () => (await call(app, 'GET', `/api/communities/${added.json.id}`)).json?.status?.syncs === 1, 20_000);
    await stack.client.workflow.getHandle(added.json.workflowId).terminate('operator stopped it');

    const one = await eventually(async () => {
      const r = await call(app, 'GET', `/api/communities/${added.json.id}`);
      return r.json?.status?.state === 'stopped' ? r.json : undefined;
    });
    expect(one.postsStored).toBe(3);
    expect(one.status.syncs).toBe(1);
    expect(one.status.nextSyncAt).toBeNull();
    expect(one.status.lastSyncAt).toMatch(/^\d{4}-/);
  });
});
