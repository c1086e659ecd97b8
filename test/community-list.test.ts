// The list of tracked communities (REST and website) reads status from the catalog, written by
// each sync, and is paged: no Temporal query per community, so it stays fast with thousands and
// answers while Temporal is down. A single community still shows its workflow's live status.
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import { insertCommunity } from '../src/db/communities.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { createLogger } from '../src/log.js';
import { startTracking } from '../src/tracking.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack } from './support/stack.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

let stack: Stack;
let fake: FakeLemmy;
let deadTemporal: Client;
const log = createLogger({ level: 'silent' });

beforeAll(async () => {
  [stack, fake] = await Promise.all([createStack(), FakeLemmy.start()]);
  // A Temporal that does not answer: the list must not need it.
  deadTemporal = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1', connectTimeout: '200ms' }) });
});
afterAll(async () => {
  await stack?.stop();
  await fake?.close();
});

const appWith = (temporal: Client) =>
  createApp({ config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal, log });
const get = async (app: ReturnType<typeof createApp>, path: string): Promise<{ status: number; json: Json; text: string }> => {
  const res = await app.request(path);
  const text = await res.text();
  return { status: res.status, json: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined, text };
};

describe('the list of communities', () => {
  it('shows the outcome of each sync from the catalog, with Temporal down', async () => {
    fake.addCommunity('healthy');
    fake.addPosts('healthy', 4);
    const { instance, host } = normalizeInstance(fake.url);
    const deps = { config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: stack.client };
    await startTracking(deps, { instance, host, name: 'healthy', refreshSeconds: 600 });
    await startTracking(deps, { instance, host, name: 'vanished', refreshSeconds: 600 }); // the fake has no such community
    const app = appWith(deadTemporal);
    const listed = await eventually(async () => {
      const r = await get(app, '/api/communities?limit=100');
      const byName = Object.fromEntries((r.json.communities as Json[]).map((c) => [c.name, c]));
      return byName.healthy?.status.state === 'waiting' && byName.vanished?.status.state === 'not_found' ? byName : undefined;
    }, 20_000);
    expect(listed.healthy.status).toMatchObject({ state: 'waiting', syncs: 1, lastError: null });
    expect(listed.healthy.postsStored).toBe(4);
    expect(Date.parse(listed.healthy.status.nextSyncAt) - Date.parse(listed.healthy.status.lastSyncAt)).toBeGreaterThan(590_000);
    expect(listed.vanished.status.lastError).toMatchObject({ code: 'community_not_found', message: expect.any(String) });

    // The website's list, too.
    const page = await get(app, '/');
    expect(page.status).toBe(200);
    expect(page.text).toContain('not_found');
  });

  it('pages with limit and an opaque cursor: every community once, newest first', async () => {
    const refs: string[] = [];
    for (let i = 0; i < 25; i++) {
      const ref = `paged${i}@example.test`;
      refs.push(ref);
      await insertCommunity(stack.storage.catalog, {
        ref,
        instance: 'https://example.test',
        host: 'example.test',
        name: `paged${i}`,
        refreshSeconds: 300,
        shard: logicalShardOf(ref),
      });
    }
    const app = appWith(deadTemporal);
    const seen: string[] = [];
    let before: string | null = null;
    let pages = 0;
    do {
      const r = await get(app, `/api/communities?limit=10${before ? `&before=${encodeURIComponent(before)}` : ''}`);
      expect(r.status).toBe(200);
      expect(r.json.communities.length).toBeLessThanOrEqual(10);
      seen.push(...r.json.communities.map((c: Json) => c.ref));
      before = r.json.next;
      pages += 1;
    } while (before && pages < 20);
    expect(new Set(seen).size).toBe(seen.length);
    for (const ref of refs) expect(seen).toContain(ref);
    expect(seen.indexOf('paged24@example.test')).toBeLessThan(seen.indexOf('paged0@example.test'));
    expect(pages).toBeGreaterThanOrEqual(3);
    const first = await get(app, '/api/communities');
    expect(first.json.communities).toHaveLength(20); // default limit
    expect(typeof first.json.next).toBe('string');
  });

  it('refuses bad paging input with a clear 400', async () => {
    const app = appWith(deadTemporal);
    for (const q of ['limit=0', 'limit=101', 'limit=x', 'before=nonsense', 'before=%FF', 'before=YzE5OTk5OTk5OTk5OTk5OTk5OTk5']) {
      const r = await get(app, `/api/communities?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.json.error.code).toMatch(/invalid_(limit|cursor)/);
    }
    expect((await get(app, '/?before=nonsense')).status).toBe(400);
  });
});
