// Every connection has a statement_timeout, but migrations are exempt: a process that starts while
// another one migrates (a long index build, say) waits for it instead of failing its start when the
// wait passes the statement timeout.
import { randomBytes } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { MIGRATION_LOCK, migrate } from '../src/db/migrate.js';
import { openPool } from '../src/db/pool.js';
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
});
