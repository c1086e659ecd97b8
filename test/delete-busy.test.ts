// A DELETE refused as busy (a shard move holds the community's shard) changes nothing: the
// community stays tracked, its workflow keeps running, and the same DELETE later removes it.
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import { openPool } from '../src/db/pool.js';
import { logicalShardOf, SHARD_WRITE_LOCK } from '../src/db/sharding/router.js';
import { createLogger } from '../src/log.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack, apiDeps } from './support/stack.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

let stack: Stack;
let fake: FakeLemmy;
let app: Hono;

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json; headers: Headers }> {
  const res = await app.request(path, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

beforeAll(async () => {
  [stack, fake] = await Promise.all([createStack(), FakeLemmy.start()]);
  app = createApp(apiDeps(stack, createLogger({ level: 'silent' })));
});
afterAll(async () => {
  await stack?.stop();
  await fake?.close();
});

/** Holds the shard's write lock exclusively, as a shard move's flip does, until `release()`. */
async function holdShard(shard: number): Promise<{ release(): Promise<void> }> {
  const mover = openPool(stack.config.CATALOG_DATABASE_URL!, { max: 1 });
  let done!: () => void;
  const held = new Promise<void>((r) => (done = r));
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => (locked = r));
  const move = mover.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${SHARD_WRITE_LOCK}, ${shard})`;
    locked();
    await held;
  });
  await isLocked;
  return {
    async release() {
      done();
      await move;
      await mover.end();
    },
  };
}

describe('DELETE refused while the shard is busy', () => {
  it('503 database_busy, and the community is still tracked: its workflow runs and still syncs', async () => {
    fake.addCommunity('kept');
    fake.addPosts('kept', 2);
    const ref = `kept@${fake.hostPort}`;
    const path = `/api/communities/${encodeURIComponent(ref)}`;
    expect((await call('POST', '/api/communities', { instance: fake.url, name: 'kept', refreshSeconds: 300 })).status).toBe(201);
    await eventually(async () => (await call('GET', path)).json?.status?.syncs >= 1);

    const move = await holdShard(logicalShardOf(ref));
    try {
      const refused = await call('DELETE', path);
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('2');
      expect(refused.json.error.code).toBe('database_busy');
    } finally {
      await move.release();
    }

    // Nothing happened: still tracked, still running (not "stopped"), and a refresh still syncs.
    const shown = (await call('GET', path)).json;
    expect(shown.status.state).toMatch(/waiting|syncing/);
    fake.addPosts('kept', 1);
    expect((await call('POST', `${path}/refresh`)).status).toBe(202);
    await eventually(async () => (await call('GET', `${path}/posts`)).json?.posts?.length === 3, 15_000);

    // The same DELETE, once the move is done, removes it.
    expect((await call('DELETE', path)).status).toBe(204);
    expect((await call('GET', path)).status).toBe(404);
  }, 60_000);
});
