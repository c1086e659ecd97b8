// Every connection has a statement_timeout, but migrations are exempt: a process that starts while
// another one migrates (a long index build, say) waits for it instead of failing its start when the
// wait passes the statement timeout.
import { randomBytes } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { MIGRATION_LOCK, migrate } from '../src/db/migrate.js';
import { openPool } from '../src/db/pool.js';
import { ShardRouter } from '../src/db/sharding/router.js';
import { createLogger } from '../src/log.js';
import { createDatabase } from './support/stack.js';

describe('migrations and the statement timeout', () => {
  it("a start that waits for another process's migration longer than the statement timeout still migrates", async () => {
    const url = await createDatabase(inject('pgUrls')[0], `mig_${randomBytes(4).toString('hex')}`);
    // The statement timeout scaled down (30 s in production) so the test runs in seconds.
    const starting = openPool(url, { max: 1, statementTimeoutMs: 300 });
    const other = openPool(url, { max: 1 });
    try {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => (locked = r));
      // Another replica is migrating: it holds the migration lock for a while.
      const migrating = other.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
        locked();
        await held;
      });
      await isLocked;
      const result = migrate(starting, 'catalog');
      setTimeout(release, 1200);
      expect(await result).toContain('001_communities.sql');
      await migrating;
      // The session keeps its statement timeout after migrating.
      const [{ statement_timeout }] = await starting<{ statement_timeout: string }[]>`show statement_timeout`;
      expect(statement_timeout).toBe('300ms');
    } finally {
      await starting.end({ timeout: 1 });
      await other.end({ timeout: 1 });
    }
  });

  it('the shard router gives every node connection the statement timeout it is opened with', async () => {
    const id = randomBytes(4).toString('hex');
    const catalogUrl = await createDatabase(inject('pgUrls')[0], `mig_${id}_catalog`);
    const nodeUrl = await createDatabase(inject('pgUrls')[1], `mig_${id}_shard`);
    const catalog = openPool(catalogUrl, { max: 2 });
    try {
      await migrate(catalog, 'catalog');
      const router = await ShardRouter.open(catalog, [{ name: 'shard-1', url: nodeUrl }], {
        log: createLogger({ level: 'silent' }),
        statementTimeoutMs: 1234,
      });
      try {
        const [{ statement_timeout }] = await router.pool('shard-1')<{ statement_timeout: string }[]>`show statement_timeout`;
        expect(statement_timeout).toBe('1234ms');
      } finally {
        await router.close();
      }
    } finally {
      await catalog.end({ timeout: 1 });
    }
  });
});
