// `npm run api` with API_PROCESSES=2 (node:cluster), against real parts (Temporal, a worker, two
// shard nodes, a FakeLemmy). What an operator notices: both processes answer on the one port; a
// sync's new post is on every page right after it, whichever process answers (each process's
// response cache hears the change events); one scrape of GET /metrics counts the requests of
// both; a process that dies is replaced without the port going dark; SIGTERM stops them all; a
// start that cannot work exits non-zero instead of restarting forever.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { descendants } from '../bench/support/proc.js';
import { listCommunities } from '../src/db/communities.js';
import { createLogger } from '../src/log.js';
import { stopTracking } from '../src/tracking.js';
import { FakeLemmy } from './fake-lemmy.js';
import { freePort } from './support/ports.js';
import { apiDeps, createStack, eventually, type Stack } from './support/stack.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

interface ApiCluster {
  child: ChildProcess;
  port: number;
  /** What it logged (stdout and stderr). */
  output: () => string;
  exited: Promise<number | null>;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The API processes under a primary (not the esbuild services that tsx starts). */
const apiProcesses = (primary: number) =>
  descendants(primary).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('src/api.ts');
    } catch {
      return false;
    }
  });

function spawnApi(env: Record<string, string>, port: number): ApiCluster {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/api.ts'], {
    env: { ...process.env, ...env, PORT: String(port), API_PROCESSES: '2', LOG_LEVEL: 'info', LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, port, output: () => output, exited };
}

describe('API_PROCESSES=2', () => {
  let stack: Stack;
  let fake: FakeLemmy;
  let api: ApiCluster;
  const base = () => `http://127.0.0.1:${api.port}`;
  // A new connection per request: the primary hands connections to the processes in turn.
  const get = (path: string) =>
    new Promise<{ status: number; headers: Headers; text: string; json: Json }>((resolve, reject) => {
      http
        .get(`${base()}${path}`, { agent: false, timeout: 5000 }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => {
            const headers = new Headers(res.headers as Record<string, string>);
            const json = (headers.get('content-type') ?? '').includes('json') ? (JSON.parse(text) as Json) : undefined;
            resolve({ status: res.statusCode!, headers, text, json });
          });
        })
        .on('timeout', function (this: http.ClientRequest) {
          this.destroy(new Error(`GET ${path}: no answer in 5 s`));
        })
        .on('error', reject);
    });
  const processes = () => apiProcesses(api.child.pid!);

  beforeAll(async () => {
    [stack, fake] = await Promise.all([createStack(), FakeLemmy.start({ siteName: 'Cluster' })]);
    api = spawnApi(stack.env, await freePort());
    await eventually(
      async () => (await get('/healthz').catch(() => undefined))?.status === 200 && processes().length === 2,
      60_000,
      200,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${api.output()}`);
    });
  });

  afterAll(async () => {
    if (api && api.child.exitCode === null) {
      api.child.kill('SIGTERM');
      await api.exited;
    }
    if (stack) {
      const deps = apiDeps(stack, createLogger({ level: 'silent' }));
      for (const row of await listCommunities(stack.storage.catalog).catch(() => [])) await stopTracking(deps, row).catch(() => {});
      await stack.stop();
    }
    await fake?.close();
  });

  it('runs two processes on one port, and one scrape of /metrics counts the requests of both', async () => {
    expect(processes()).toHaveLength(2);
    const before = await get('/metrics');
    expect(before.status).toBe(200);
    const count = (text: string) =>
      Number(
        /lemmy_fetcher_http_request_duration_seconds_count\{[^}]*route="\/api\/communities"[^}]*status="200"[^}]*\} (\d+)/.exec(
          text,
        )?.[1] ?? 0,
      );
    const from = count(before.text);
    for (let i = 0; i < 20; i++) expect((await get('/api/communities')).status).toBe(200);
    // Each process served some of them (in turn), yet the one scrape has all 20.
    expect(count((await get('/metrics')).text) - from).toBe(20);
  });

  it("shows a sync's new post right after it, whichever process answers", async () => {
    fake.addCommunity('both');
    fake.addPosts('both', 3);
    const ref = encodeURIComponent(`both@${fake.hostPort}`);
    const track = await fetch(`${base()}/api/communities`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instance: fake.url, name: 'both', refreshSeconds: 86400 }),
    });
    expect([200, 201]).toContain(track.status);
    const stored = (n: number) =>
      eventually(async () => {
        const r = await get(`/api/communities/${ref}`);
        return r.json?.postsStored === n && r.json.status?.state === 'waiting';
      }, 30_000);
    await stored(3);
    // The catalog gauges: both processes count the same one community; the scrape shows it once, not summed.
    const gauge = (text: string, state: string) =>
      Number(new RegExp(`^lemmy_fetcher_communities\\{state="${state}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
    for (let i = 0; i < 2; i++) {
      const { text } = await get('/metrics');
      expect([gauge(text, 'waiting'), gauge(text, 'syncing')]).toEqual([1, 0]);
    }
    for (let round = 0; round < 2; round++) {
      // Both processes have the page cached...
      await eventually(async () => {
        const hits = await Promise.all(Array.from({ length: 6 }, () => get(`/api/communities/${ref}/posts?limit=5`)));
        return hits.every((r) => r.headers.get('x-cache') === 'hit');
      }, 15_000);
      const [added] = fake.addPosts('both', 1);
      expect((await fetch(`${base()}/api/communities/${ref}/refresh`, { method: 'POST' })).status).toBe(202);
      await stored(4 + round);
      // ...and every answer after the sync, from either, has the new post.
      for (let i = 0; i < 6; i++) {
        const page = await get(`/api/communities/${ref}/posts?limit=5`);
        expect(page.json.posts[0].lemmyId, `round ${round}, request ${i}`).toBe(added.id);
        expect((await get('/api/posts?limit=5')).json.posts[0].lemmyId).toBe(added.id);
      }
    }
  });

  it('replaces a process that dies, and keeps answering meanwhile', async () => {
    const [victim, survivor] = processes();
    process.kill(victim, 'SIGKILL');
    // Once the primary has seen the death, new connections go to the survivor until the
    // replacement listens (a connection handed over in the instant of the crash dies with it).
    await eventually(() => api.output().includes('an API process died; starting another'), 10_000, 20);
    for (let i = 0; i < 10; i++) expect((await get('/healthz')).status).toBe(200);
    await eventually(() => {
      const now = processes();
      return now.length === 2 && now.includes(survivor) && !now.includes(victim);
    }, 30_000);
    expect((await get('/api/communities')).status).toBe(200);
  });

  it('stops every process on SIGTERM', async () => {
    const pids = processes();
    expect(pids).toHaveLength(2);
    api.child.kill('SIGTERM');
    expect(await api.exited).toBe(0);
    await eventually(() => pids.every((pid) => !alive(pid)), 15_000);
  });

  it('exits non-zero, leaving nothing behind, when its processes cannot start', async () => {
    const dead = await freePort(); // nothing listens there
    const failing = spawnApi({ ...stack.env, CATALOG_DATABASE_URL: `postgres://nobody@127.0.0.1:${dead}/nothing` }, await freePort());
    const seen = new Set<number>();
    const watch = setInterval(() => apiProcesses(failing.child.pid!).forEach((p) => seen.add(p)), 50);
    const code = await Promise.race([failing.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 60_000))]);
    clearInterval(watch);
    if (code === 'still running') failing.child.kill('SIGKILL');
    expect(code).not.toBe('still running');
    expect(code).not.toBe(0);
    expect(failing.output()).toContain('an API process failed to start');
    expect([...seen].filter(alive)).toEqual([]);
  });
});
