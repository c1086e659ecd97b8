// `npm start` as a user runs it: everything comes up on embedded defaults, Ctrl-C (SIGINT to the
// process group) stops all of it, and a second start keeps the data. The data dir is a fresh
// 0700 directory, like a clone in root's home: as root, Postgres (run as `postgres`) cannot reach
// it and keeps its data under EMBEDDED_PG_SYSTEM_DIR instead. A worker that dies is restarted
// while the API keeps answering; a start that fails stops everything it had started.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { embeddedNodeDir } from '../src/db/embedded.js';
import { portOpen } from '../src/temporal/devserver.js';
import { FakeLemmy } from './fake-lemmy.js';
import { freePort, freePortRange } from './support/ports.js';
import { eventually } from './support/stack.js';

let dataDir: string;
let systemDir: string;
let fake: FakeLemmy;
let env: Record<string, string>;
let running: ChildProcess | undefined;

type Started = ChildProcess & { log: () => string };

function start(extraEnv: Record<string, string> = {}): Started {
  // Its own process group, like a terminal's foreground job.
  const child = spawn('npm', ['start'], {
    env: { ...process.env, ...env, ...extraEnv },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  }) as Started;
  let log = '';
  child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  child.log = () => log;
  running = child;
  return child;
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Ctrl-C: SIGINT to every process of the group, then wait until none is left. */
async function ctrlC(child: ChildProcess): Promise<void> {
  process.kill(-child.pid!, 'SIGINT');
  await eventually(() => !groupAlive(child.pid!), 30_000, 100);
  running = undefined;
}

async function health(): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${env.PORT}/healthz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-start-')); // 0700, like a root home
  systemDir = mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-system-'));
  chmodSync(systemDir, 0o755);
  fake = await FakeLemmy.start();
  fake.addCommunity('persist', { title: 'Kept across restarts' });
  fake.addPosts('persist', 3);
  env = {
    DATA_DIR: dataDir,
    PORT: String(await freePort()),
    TEMPORAL_DEV_PORT: String(await freePort()),
    TEMPORAL_DEV_UI_PORT: String(await freePort()),
    EMBEDDED_PG_PORT: String(await freePortRange(3)),
    EMBEDDED_PG_SYSTEM_DIR: systemDir,
    ALLOW_PRIVATE_INSTANCES: 'true',
    LOG_FORMAT: 'json',
    TEMPORAL_DEV_GOGC: '250',
  };
});

afterAll(async () => {
  // After a failure: stop it as a user would; SIGKILL would orphan the dev server and Postgres
  // (they run in their own process groups, stopped by npm start itself).
  if (running?.pid && groupAlive(running.pid)) await ctrlC(running).catch(() => process.kill(-running!.pid!, 'SIGKILL'));
  await fake?.close();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(systemDir, { recursive: true, force: true });
});

/** The pids `npm start` logged for its supervised worker processes, in order. */
function workerPids(child: Started): number[] {
  return child
    .log()
    .split('\n')
    .filter((l) => l.includes('"msg":"worker process started"'))
    .map((l) => (JSON.parse(l) as { pid: number }).pid);
}

it('runs everything, stops cleanly on Ctrl-C, and keeps its data across a restart', async () => {
  let child = start();
  const up = await eventually(
    async () => {
      const h = await health();
      return h.status === 200 ? h : undefined;
    },
    90_000,
    250,
  ).catch((err) => {
    throw new Error(`${err.message}\n--- npm start output ---\n${child.log().slice(-3000)}`);
  });
  expect(up.body).toMatchObject({
    checks: { catalog: { ok: true }, shards: { 'shard-1': { ok: true }, 'shard-2': { ok: true } }, temporal: { ok: true } },
  });
  const ui = await fetch(`http://127.0.0.1:${env.TEMPORAL_DEV_UI_PORT}/`);
  expect(ui.status).toBe(200);
  // The dev server's Go runtime as configured: GOGC set; GOMEMLIMIT and GOMAXPROCS (half the
  // cores, at least one) left at their defaults.
  const devServerPid = Number(readFileSync(path.join(dataDir, 'temporal', 'temporal.db.pid'), 'utf8'));
  const goEnv = readFileSync(`/proc/${devServerPid}/environ`, 'utf8').split('\0');
  const halfTheCores = Math.max(1, Math.floor(os.availableParallelism() / 2));
  expect(goEnv).toEqual(expect.arrayContaining(['GOGC=250', 'GOMEMLIMIT=1536MiB', `GOMAXPROCS=${halfTheCores}`]));

  const added = await fetch(`http://127.0.0.1:${env.PORT}/api/communities`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ instance: fake.url, name: 'persist', refreshSeconds: 3600 }),
  });
  expect(added.status).toBe(201);
  const ref = `persist@${fake.hostPort}`;
  await eventually(
    async () => {
      const res = await fetch(`http://127.0.0.1:${env.PORT}/api/communities/${encodeURIComponent(ref)}/posts`);
      return res.status === 200 && ((await res.json()) as { posts: unknown[] }).posts.length === 3;
    },
    30_000,
    250,
  );

  if (process.getuid?.() === 0) {
    // A 0700 data dir is out of the postgres user's reach: its data went to the system dir.
    expect(embeddedNodeDir(dataDir, 'catalog', systemDir).startsWith(systemDir)).toBe(true);
  }

  // The worker dies (as when a workflow trips the SDK's deadlock detector): the API keeps
  // answering, the worker is restarted, and tracking goes on.
  const [firstWorker] = workerPids(child);
  expect(firstWorker).toBeGreaterThan(0);
  process.kill(firstWorker, 'SIGKILL');
  await eventually(() => workerPids(child).length === 2, 20_000, 100).catch((err) => {
    throw new Error(`${err.message}\n--- npm start output ---\n${child.log().slice(-3000)}`);
  });
  expect((await health()).status).toBe(200);
  expect(child.log()).toMatch(/worker process killed by SIGKILL; restarting/);
  fake.addPosts('persist', 1);
  const refreshed = await fetch(`http://127.0.0.1:${env.PORT}/api/communities/${encodeURIComponent(ref)}/refresh`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  expect(refreshed.status).toBe(202);
  await eventually(
    async () => {
      const res = await fetch(`http://127.0.0.1:${env.PORT}/api/communities/${encodeURIComponent(ref)}/posts`);
      return res.status === 200 && ((await res.json()) as { posts: unknown[] }).posts.length === 4;
    },
    60_000,
    250,
  );

  const pids = [
    workerPids(child)[1],
    ...['catalog', 'shard-1', 'shard-2'].map((n) =>
      Number(readFileSync(path.join(embeddedNodeDir(dataDir, n, systemDir), 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]),
    ),
    Number(readFileSync(path.join(dataDir, 'temporal', 'temporal.db.pid'), 'utf8')),
  ];
  await ctrlC(child);
  for (const pid of pids) expect(() => process.kill(pid, 0), `pid ${pid} still running`).toThrow();

  child = start();
  await eventually(async () => (await health()).status === 200, 90_000, 250);
  // The workflow survived in the file-backed dev server and answers its status query again once
  // the new worker has replayed it (until then the API says "unknown" and answers from Postgres).
  const community = await eventually(
    async () => {
      const res = await fetch(`http://127.0.0.1:${env.PORT}/api/communities/${encodeURIComponent(ref)}`);
      expect(res.status).toBe(200);
      const c = (await res.json()) as { title: string; status: { state: string } };
      return ['waiting', 'syncing'].includes(c.status.state) ? c : undefined;
    },
    30_000,
    500,
  );
  expect(community.title).toBe('Kept across restarts');
  await ctrlC(child);
}, 300_000);

it('stops everything it started when the start fails', async () => {
  // A shard node's port is taken: Postgres cannot start there, after the dev server and the
  // other nodes did. npm start must exit non-zero and leave none of them running.
  const base = await freePortRange(3);
  const blocker = net.createServer().listen(base + 1, '127.0.0.1');
  await new Promise((r) => blocker.once('listening', r));
  try {
    const child = start({ EMBEDDED_PG_PORT: String(base) });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    await eventually(() => !groupAlive(child.pid!), 30_000, 100);
    running = undefined;
    expect(code, child.log().slice(-2000)).not.toBe(0);
    expect(child.log()).toMatch(/start failed/);
    expect(await portOpen(Number(env.TEMPORAL_DEV_PORT))).toBe(false);
    expect(await portOpen(base)).toBe(false); // the catalog node that did start
    expect(await portOpen(base + 2)).toBe(false);
  } finally {
    blocker.close();
  }
}, 120_000);
