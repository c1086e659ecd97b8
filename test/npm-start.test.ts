// `npm start` as a user runs it: everything comes up on embedded defaults, Ctrl-C (SIGINT to the
// process group) stops all of it, and a second start keeps the data.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FakeLemmy } from './fake-lemmy.js';
import { freePort } from './support/ports.js';
import { eventually } from './support/stack.js';

let dataDir: string;
let fake: FakeLemmy;
let env: Record<string, string>;
let running: ChildProcess | undefined;

/** Three consecutive free ports for the embedded Postgres nodes. */
async function freePortRange(n: number): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const checks = await Promise.all(
      Array.from({ length: n }, (_, i) => new Promise<boolean>((resolve) => {
        const srv = net.createServer();
        srv.once('error', () => resolve(false));
        srv.listen(base + i, '127.0.0.1', () => srv.close(() => resolve(true)));
      })),
    );
    if (checks.every(Boolean)) return base;
  }
}

function start(): ChildProcess {
  // Its own process group, like a terminal's foreground job.
  const child = spawn('npm', ['start'], { env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  (child as ChildProcess & { log: () => string }).log = () => log;
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
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-start-'));
  chmodSync(dataDir, 0o755); // as root, Postgres runs as `postgres` and must reach its data
  fake = await FakeLemmy.start();
  fake.addCommunity('persist', { title: 'Kept across restarts' });
  fake.addPosts('persist', 3);
  env = {
    DATA_DIR: dataDir,
    PORT: String(await freePort()),
    TEMPORAL_DEV_PORT: String(await freePort()),
    TEMPORAL_DEV_UI_PORT: String(await freePort()),
    EMBEDDED_PG_PORT: String(await freePortRange(3)),
    ALLOW_PRIVATE_INSTANCES: 'true',
    LOG_FORMAT: 'json',
  };
});

afterAll(async () => {
  // After a failure: stop it as a user would; SIGKILL would orphan the dev server and Postgres
  // (they run in their own process groups, stopped by npm start itself).
  if (running?.pid && groupAlive(running.pid)) await ctrlC(running).catch(() => process.kill(-running!.pid!, 'SIGKILL'));
  await fake?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

it('runs everything, stops cleanly on Ctrl-C, and keeps its data across a restart', async () => {
  let child = start();
  const up = await eventually(async () => {
    const h = await health();
    return h.status === 200 ? h : undefined;
  }, 90_000, 250).catch((err) => {
    throw new Error(`${err.message}\n--- npm start output ---\n${(child as ChildProcess & { log: () => string }).log().slice(-3000)}`);
  });
  expect(up.body).toMatchObject({ checks: { catalog: { ok: true }, shards: { 'shard-1': { ok: true }, 'shard-2': { ok: true } }, temporal: { ok: true } } });
  const ui = await fetch(`http://127.0.0.1:${env.TEMPORAL_DEV_UI_PORT}/`);
  expect(ui.status).toBe(200);

  const added = await fetch(`http://127.0.0.1:${env.PORT}/api/communities`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ instance: fake.url, name: 'persist', refreshSeconds: 3600 }),
  });
  expect(added.status).toBe(201);
  const ref = `persist@${fake.hostPort}`;
  await eventually(async () => {
    const res = await fetch(`http://127.0.0.1:${env.PORT}/api/communities/${encodeURIComponent(ref)}/posts`);
    return res.status === 200 && ((await res.json()) as { posts: unknown[] }).posts.length === 3;
  }, 30_000, 250);

  const pids = [
    ...['catalog', 'shard-1', 'shard-2'].map((n) => Number(readFileSync(path.join(dataDir, 'pg', n, 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0])),
    Number(readFileSync(path.join(dataDir, 'temporal', 'temporal.db.pid'), 'utf8')),
  ];
  await ctrlC(child);
  for (const pid of pids) expect(() => process.kill(pid, 0), `pid ${pid} still running`).toThrow();

  child = start();
  await eventually(async () => (await health()).status === 200, 90_000, 250);
  // The workflow survived in the file-backed dev server and answers its status query again once
  // the new worker has replayed it (until then the API says "unknown" and answers from Postgres).
  const community = await eventually(async () => {
    const res = await fetch(`http://127.0.0.1:${env.PORT}/api/communities/${encodeURIComponent(ref)}`);
    expect(res.status).toBe(200);
    const c = (await res.json()) as { title: string; status: { state: string } };
    return ['waiting', 'syncing'].includes(c.status.state) ? c : undefined;
  }, 30_000, 500);
  expect(community.title).toBe('Kept across restarts');
  await ctrlC(child);
}, 240_000);
