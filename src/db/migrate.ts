// Numbered SQL files per node role, applied in order on start and recorded per node.
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Sql } from 'postgres';

export type NodeRole = 'catalog' | 'shard';

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));
// Any constant works; it only has to be the same for every process migrating the same node.
export const MIGRATION_LOCK = 7_346_021;

export async function migrate(sql: Sql, role: NodeRole): Promise<string[]> {
  const dir = `${MIGRATIONS_DIR}${role}/`;
  const files = (await readdir(dir)).filter((f) => /^\d+_.+\.sql$/.test(f)).sort();
  const applied: string[] = [];
  await sql.begin(async (tx) => {
    // Exempt from the connection's statement_timeout (see pool.ts): a migration may rewrite or
    // index a large table, and a replica waiting for another one's migration must not give up.
    await tx`set local statement_timeout = 0`;
    // Worker and API replicas may start together: one migrates, the others wait and find it done.
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`create table if not exists schema_migrations (
      version integer primary key, name text not null, role text not null, applied_at timestamptz not null default now())`;
    const done = new Set((await tx<{ version: number }[]>`select version from schema_migrations`).map((r) => r.version));
    for (const file of files) {
      const version = Number.parseInt(file, 10);
      if (done.has(version)) continue;
      await tx.unsafe(await readFile(dir + file, 'utf8'));
      await tx`insert into schema_migrations (version, name, role) values (${version}, ${file}, ${role})`;
      applied.push(file);
    }
  });
  return applied;
}
