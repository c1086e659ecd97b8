// Postgres under pressure, as a user meets it: a DELETE that arrives while a shard move holds the
// shard's writes gets a clear "busy, retry" answer, not a 500; no statement can run for ever.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import { openPool } from '../src/db/pool.js';
import { logicalShardOf, SHARD_WRITE_LOCK } from '../src/db/sharding/router.js';
import { createLogger } from '../src/log.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack, apiDeps } from './support/stack.js';

let stack: Stack;
let fake: FakeLemmy;

beforeAll(async () => {
  [stack, fake] = await Promise.all([createStack(), FakeLemmy.start()]);
});
afterAll(async () => {
  await stack?.stop();
  await fake?.close();
});

describe('storage under pressure', () => {
  it('DELETE while a shard move holds the shard: 503 database_busy with Retry-After, and the community stays', async () => {
    const app = createApp(apiDeps(stack, createLogger({ level: 'silent' })));
    fake.addCommunity('moving');
    fake.addPosts('moving', 2);
    const added = await app.request('/api/communities', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instance: fake.url, name: 'moving' }),
    });
    expect(added.status).toBe(201);
    const ref = `moving@${fake.hostPort}`;
    await eventually(
      async () =>
        ((await (await app.request(`/api/communities/${encodeURIComponent(ref)}/posts`)).json()) as { posts: unknown[] }).posts.length ===
        2,
    );

    // What a shard move's flip holds: the shard's write lock, exclusively, in a catalog transaction.
    const mover = openPool(stack.config.CATALOG_DATABASE_URL!, { max: 1 });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const move = mover.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${SHARD_WRITE_LOCK}, ${logicalShardOf(ref)})`;
      locked();
      await held;
    });
    try {
      await isLocked;
      const res = await app.request(`/api/communities/${encodeURIComponent(ref)}`, { method: 'DELETE' });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('2');
      expect(await res.json()).toEqual({ error: { code: 'database_busy', message: expect.stringMatching(/try again/) } });
    } finally {
      release();
      await move;
      await mover.end();
    }
    // Once the move is done, the same DELETE works.
    expect((await app.request(`/api/communities/${encodeURIComponent(ref)}`, { method: 'DELETE' })).status).toBe(204);
  }, 60_000);

  it('every connection has a statement_timeout', async () => {
    const sql = openPool(stack.config.CATALOG_DATABASE_URL!, { max: 1 });
    try {
      const [{ statement_timeout }] = await sql<{ statement_timeout: string }[]>`show statement_timeout`;
      expect(statement_timeout).toBe('30s');
    } finally {
      await sql.end();
    }
    const quick = openPool(stack.config.CATALOG_DATABASE_URL!, { max: 1, statementTimeoutMs: 200 });
    try {
      await expect(quick`select pg_sleep(2)`).rejects.toMatchObject({ code: '57014' });
    } finally {
      await quick.end();
    }
  });
});
