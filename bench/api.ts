// `npm run bench -- api [--posts 1000000] [--communities 1000] [--hot 10] [--concurrency 32] [--duration 15] [--only <name part>] [--profile <name part>] [--before <git rev>] [--processes 1,2] [--no-profile] [--no-append]`
// Requests/s and latency of the read endpoints with `posts` posts over the two shard nodes, before
// → after in one run: the API with the response cache off (API_RESPONSE_CACHE=false), then on,
// each with every middleware of app.ts on (validation, keys, rate limits, ETag, metrics); with
// `--before <rev>`, that revision's API (a git worktree) then this one's, both cache on. Loads
// communities and posts straight into the catalog and shards, makes a user whose key every request
// sends (its limit raised via RATE_LIMIT_KEY_PER_MINUTE), starts `npm run api` as a child process
// and drives it over loopback HTTP (undici, fixed concurrency, fixed duration):
//   1. hot: GET /api/communities/:ref/posts?limit=20 over a small hot set of communities (--hot)
//   2. hot: GET /api/posts?limit=20 (newest across every shard)
//   3. cold keyset pages: a random community, a `before` cursor deep in its list
//   4. 1 and 2 mixed with 25 % bad input (bad limits, cursors, refs): must give no 5xx.
// Then a CPU profile of the API (`node --cpu-prof`) under the hot community page, cache on,
// summarised (self time by package and function) into the results notes.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { insertCommunity } from '../src/db/communities.js';
import { encodeCursor, upsertPosts, type PostInput } from '../src/db/posts.js';
import { insertUser } from '../src/db/users.js';
import { apiKeyHash, newApiKey } from '../api/users.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { communityRef } from '../src/sources/lemmy/refs.js';
import { checkoutOf, flag, freePort, hasFlag, startBenchEnv } from './support/env.js';
import { treeCpuSeconds, treeRssBytes } from './support/proc.js';
import { profileNotes, summarizeCpuProfile } from './support/profile.js';
import { appendResults } from './support/results.js';
import { fmt, mapLimit, mb, percentile, table } from './support/stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface LoadResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  statuses: Record<string, number>;
  apiCpu: number;
  pgCpu: number;
  /** The load generator's own CPU (this process), % of one core. */
  loadCpu: number;
  apiRss: number;
}

async function load(
  pool: Pool,
  next: () => string,
  o: { concurrency: number; durationMs: number; apiPid: number; pgPids: number[]; headers?: Record<string, string> },
): Promise<LoadResult> {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const end = Date.now() + o.durationMs;
  const cpu0 = treeCpuSeconds([o.apiPid]);
  const pg0 = treeCpuSeconds(o.pgPids);
  const load0 = process.cpuUsage();
  const t0 = Date.now();
  let apiRss = 0;
  const sampler = setInterval(() => (apiRss = Math.max(apiRss, treeRssBytes([o.apiPid]))), 500);
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (Date.now() < end) {
        const path = next();
        const s = performance.now();
        try {
          const res = await pool.request({ method: 'GET', path, headers: o.headers });
          await res.body.dump();
          latencies.push(performance.now() - s);
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        } catch (err) {
          statuses[`error ${(err as Error).name}`] = (statuses[`error ${(err as Error).name}`] ?? 0) + 1;
        }
      }
    }),
  );
  clearInterval(sampler);
  const secs = (Date.now() - t0) / 1000;
  return {
    requests: latencies.length,
    rps: latencies.length / secs,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    statuses,
    apiCpu: (100 * (treeCpuSeconds([o.apiPid]) - cpu0)) / secs,
    pgCpu: (100 * (treeCpuSeconds(o.pgPids) - pg0)) / secs,
    loadCpu: (() => {
      const u = process.cpuUsage(load0);
      return (100 * (u.user + u.system)) / 1e6 / secs;
    })(),
    apiRss,
  };
}

export async function run(argv: string[]): Promise<void> {
  const totalPosts = flag(argv, 'posts', 1_000_000);
  const communities = flag(argv, 'communities', 1000);
  const concurrency = flag(argv, 'concurrency', 32);
  const durationMs = flag(argv, 'duration', 15) * 1000;
  const hot = flag(argv, 'hot', 10);
  // Only the scenarios whose name contains this (e.g. `--only cold`), for quick comparisons.
  const only = flag(argv, 'only', '');
  // The scenario the CPU profile is taken under (name part; default the hot community page).
  const profiled = flag(argv, 'profile', 'hot: GET /api/communities');
  const perCommunity = Math.ceil(totalPosts / communities);
  const log = (m: string) => process.stderr.write(`[api] ${m}\n`);
  const beforeRev = flag(argv, 'before', '');
  const processCounts = flag(argv, 'processes', '')
    .split(',')
    .filter(Boolean)
    .map((n) => Math.max(1, Number(n) || 1));
  const checkout = beforeRev ? checkoutOf(beforeRev) : undefined;
  const be = await startBenchEnv({});
  let api: ChildProcess | undefined;
  try {
    // Data: communities on a (never contacted) instance, posts straight into their shards.
    const loadStart = Date.now();
    const refs: string[] = [];
    const rows = await mapLimit(
      Array.from({ length: communities }, (_, i) => i),
      16,
      async (i) => {
        const ref = communityRef(`bench${i}`, 'lemmy.example');
        refs.push(ref);
        return (
          await insertCommunity(be.storage.catalog, {
            ref,
            instance: 'https://lemmy.example',
            host: 'lemmy.example',
            name: `bench${i}`,
            refreshSeconds: 300,
            shard: logicalShardOf(ref),
          })
        ).row;
      },
    );
    const base = Date.now() - perCommunity * communities * 1000;
    let loaded = 0;
    await mapLimit(rows, 8, async (row, ci) => {
      for (let from = 0; from < perCommunity; from += 500) {
        const batch: PostInput[] = [];
        for (let k = from; k < Math.min(perCommunity, from + 500); k++) {
          const id = ci * perCommunity + k + 1;
          batch.push({
            lemmyId: id,
            apId: `https://lemmy.example/post/${id}`,
            title: `Post ${id} in ${row.name}: a title of ordinary length for a link aggregator`,
            url: `https://example.com/articles/${id}`,
            body: k % 4 === 0 ? 'A short body. '.repeat(10) : null,
            author: `user${id % 997}`,
            thumbnail: null,
            published: new Date(base + (k * communities + ci) * 1000).toISOString(),
            updated: null,
            score: id % 100,
            upvotes: id % 100,
            downvotes: 0,
            comments: id % 17,
            nsfw: false,
            featured: false,
          });
        }
        await be.storage.router.write(row.shard, (sql) => upsertPosts(sql, row.shard, row.id, batch));
        loaded += batch.length;
      }
      if ((ci + 1) % 100 === 0) log(`${loaded} posts loaded`);
    });
    const loadSeconds = (Date.now() - loadStart) / 1000;
    log(`${loaded} posts in ${communities} communities loaded in ${loadSeconds.toFixed(0)} s`);
    for (const n of be.nodes.slice(1)) {
      const sql = (await import('../src/db/pool.js')).openPool(n.url, { max: 1 });
      await sql`vacuum analyze posts`;
      await sql.end();
    }

    // A user whose key every request sends: the keyed path (lookup cached, bucket per key) is what
    // integrators take; its limit is raised so the bench measures cost, not refusals.
    const apiKey = newApiKey();
    await insertUser(be.storage.catalog, 'bench', apiKeyHash(apiKey));
    const headers = { authorization: `Bearer ${apiKey}` };
    const pgPids = be.nodes.map((n) => n.pid!).filter(Boolean);

    const hotRefs = rows.slice(0, Math.max(1, Math.min(hot, rows.length))).map((r) => r.ref);
    const enc = (ref: string) => encodeURIComponent(ref);
    const pick = () => enc(refs[Math.floor(Math.random() * refs.length)]);
    const pickHot = () => enc(hotRefs[Math.floor(Math.random() * hotRefs.length)]);
    // A cursor deep in a random community's list (its second half): the page before post k.
    const coldPage = () => {
      const ci = Math.floor(Math.random() * rows.length);
      const k = Math.floor(perCommunity / 2 + Math.random() * (perCommunity / 2));
      const published = new Date(base + (k * communities + ci) * 1000).toISOString().replace(/Z$/, '000Z');
      const before = encodeCursor({ published, communityId: rows[ci].id, lemmyId: ci * perCommunity + k + 1 });
      return `/api/communities/${enc(rows[ci].ref)}/posts?limit=20&before=${before}`;
    };
    const bad = [
      () => `/api/communities/${pick()}/posts?limit=0`,
      () => `/api/communities/${pick()}/posts?limit=abc`,
      () => `/api/communities/${pick()}/posts?before=%FF%FE`,
      () => `/api/posts?before=not-a-cursor`,
      () => `/api/posts?limit=100000`,
      () => `/api/communities/nope@nowhere.example/posts`,
      () => `/api/communities/${'x'.repeat(5000)}/posts`,
      () => `/api/communities/%00%01/posts`,
      () => `/api/communities/99999999999999999999999/posts`,
    ];
    const scenarios: [string, () => string][] = [
      [
        `hot: GET /api/communities/:ref/posts?limit=20 (${hotRefs.length} communities)`,
        () => `/api/communities/${pickHot()}/posts?limit=20`,
      ],
      ['hot: GET /api/posts?limit=20', () => '/api/posts?limit=20'],
      [`cold keyset: GET /api/communities/:ref/posts?limit=20&before=… (random of ${communities}, deep)`, coldPage],
      [
        'hot pages + 25 % bad input',
        () =>
          Math.random() < 0.25
            ? bad[Math.floor(Math.random() * bad.length)]()
            : Math.random() < 0.5
              ? `/api/communities/${pickHot()}/posts?limit=20`
              : '/api/posts?limit=20',
      ],
    ];

    const rowsOut: (string | number)[][] = [];
    const results = new Map<string, LoadResult>();
    // `--processes 1,2`: after the first row group, the API as that many processes (API_PROCESSES),
    // cache on, one row group each.
    const byProcesses = processCounts.map((n) => ({
      name: `cache on, ${n} process${n === 1 ? '' : 'es'}`,
      root: ROOT,
      env: { API_RESPONSE_CACHE: 'true', API_PROCESSES: String(n) },
    }));
    const variants = [
      checkout
        ? { name: `${checkout.commit}, cache on (before)`, root: checkout.root, env: { API_RESPONSE_CACHE: 'true' } }
        : {
            name: byProcesses.length ? 'cache off, 1 process (before)' : 'cache off (before)',
            root: ROOT,
            env: { API_RESPONSE_CACHE: 'false' },
          },
      ...(byProcesses.length
        ? byProcesses
        : [{ name: checkout ? 'this tree, cache on (after)' : 'cache on (after)', root: ROOT, env: { API_RESPONSE_CACHE: 'true' } }]),
    ];
    for (const { name: cache, root, env } of variants) {
      const started = await startApi(be.env, env, concurrency, [], root);
      api = started.api;
      try {
        for (const [name, next] of scenarios.filter(([n]) => n.includes(only))) {
          const o = { concurrency, apiPid: api.pid!, pgPids, headers };
          await load(started.pool, next, { ...o, durationMs: 2000 }); // warm-up
          const r = await load(started.pool, next, { ...o, durationMs });
          log(`${cache}: ${name}: ${JSON.stringify(r)}`);
          results.set(`${cache} ${name}`, r);
          const fivexx = Object.entries(r.statuses)
            .filter(([k]) => k.startsWith('5') || k.startsWith('error'))
            .reduce((a, [, v]) => a + v, 0);
          rowsOut.push([
            name,
            cache,
            concurrency,
            r.requests,
            fmt(r.rps),
            fmt(r.p50, 1),
            fmt(r.p99, 1),
            Object.entries(r.statuses)
              .map(([k, v]) => `${k}: ${v}`)
              .join(', '),
            fivexx,
            fmt(r.apiCpu),
            fmt(r.pgCpu),
            fmt(r.loadCpu),
            mb(r.apiRss),
          ]);
        }
        if (api.exitCode !== null) throw new Error(`the API process exited (${api.exitCode}) under load`);
      } finally {
        await started.pool.close();
        await stopApi(api);
        api = undefined;
      }
    }

    // The hot path's profile: the hot community page, cache on.
    const notes: string[] = [];
    if (!hasFlag(argv, 'no-profile')) {
      const profDir = mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-prof-'));
      try {
        const spawnedAt = Date.now();
        const started = await startApi(be.env, { API_RESPONSE_CACHE: 'true' }, concurrency, ['--cpu-prof', '--cpu-prof-dir', profDir]);
        api = started.api;
        const [name, next] = scenarios.find(([n]) => n.includes(profiled)) ?? scenarios[0];
        await load(started.pool, next, { concurrency, durationMs: 2000, apiPid: api.pid!, pgPids, headers });
        const measuredFrom = Date.now() - spawnedAt;
        await load(started.pool, next, { concurrency, durationMs: Math.min(durationMs, 10_000), apiPid: api.pid!, pgPids, headers });
        await started.pool.close();
        await stopApi(api);
        api = undefined;
        const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
        if (process.env.BENCH_KEEP_PROFILE && file) copyFileSync(path.join(profDir, file), process.env.BENCH_KEEP_PROFILE);
        if (file)
          notes.push(
            ...profileNotes(
              summarizeCpuProfile(path.join(profDir, file), { fromMs: measuredFrom }),
              `the API under "${name}", cache on, after warm-up`,
            ),
          );
        else log('no CPU profile was written');
      } finally {
        rmSync(profDir, { recursive: true, force: true });
      }
    }

    const md = table(
      [
        'endpoint',
        'API',
        'concurrency',
        'requests',
        'req/s',
        'p50 ms',
        'p99 ms',
        'statuses',
        '5xx/errors',
        'CPU % API',
        'CPU % postgres',
        'CPU % load generator',
        'RSS API',
      ],
      rowsOut,
    );
    process.stdout.write(`\n${md}\n`);
    const beforeAfter = scenarios
      .filter(([n]) => results.has(`${variants.at(-1)!.name} ${n}`))
      .map(([name]) => {
        // The first row group against the last (with --processes: cache off → the most processes).
        const off = results.get(`${variants[0].name} ${name}`)!;
        const on = results.get(`${variants.at(-1)!.name} ${name}`)!;
        return `${name}: ${fmt(off.rps)} → ${fmt(on.rps)} req/s, p99 ${fmt(off.p99, 1)} → ${fmt(on.p99, 1)} ms`;
      });
    for (const line of [...beforeAfter, ...notes]) process.stdout.write(`${line}\n`);
    if (!hasFlag(argv, 'no-append')) {
      appendResults('API reads (`npm run bench -- api`)', md, {
        command: `npm run bench -- api ${argv.join(' ')}`.trim(),
        notes: [
          `${loaded.toLocaleString('en')} posts in ${communities} communities over 2 shard nodes (embedded Postgres, default durability; loaded in ${loadSeconds.toFixed(0)} s, then VACUUM ANALYZE)`,
          `one \`npm run api\` process per row group: ${variants.map((v) => v.name).join(', then ')}; every middleware on; every request sends a user's API key (RATE_LIMIT_KEY_PER_MINUTE raised)`,
          `load generator: undici Pool in the bench process over loopback HTTP, ${concurrency} connections, ${durationMs / 1000} s per row after a 2 s warm-up`,
          'CPU % is of one core (200 % = both cores); the load generator shares the same 2 CPUs',
          `before → after: ${beforeAfter.join('; ')}`,
          'targets: hot pages ≥ 5,000 req/s with p99 < 10 ms; cold keyset pages ≥ 2,000 req/s',
          ...notes,
        ],
      });
    }
  } finally {
    if (api) await stopApi(api);
    await be.close();
    checkout?.remove();
  }
}

/** Starts `npm run api` (src/api.ts) against the bench env and waits for /healthz. */
async function startApi(
  env: Record<string, string>,
  extra: Record<string, string>,
  concurrency: number,
  nodeFlags: string[] = [],
  root = ROOT,
): Promise<{ api: ChildProcess; pool: Pool }> {
  const port = await freePort();
  const api = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', 'src/api.ts'], {
    cwd: root,
    env: {
      ...process.env,
      ...env,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      RATE_LIMIT_KEY_PER_MINUTE: '100000000',
      ...extra,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: concurrency, pipelining: 1 });
  const ready = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await pool.request({ method: 'GET', path: '/healthz' });
      await res.body.dump();
      break;
    } catch {
      if (Date.now() > ready || api.exitCode !== null) throw new Error('API did not start');
      await sleep(200);
    }
  }
  return { api, pool };
}

/** SIGTERM (a clean exit writes a --cpu-prof profile), SIGKILL after 10 s. */
async function stopApi(api: ChildProcess): Promise<void> {
  if (api.exitCode !== null || api.signalCode !== null) return;
  const exited = new Promise((r) => api.once('exit', r));
  api.kill('SIGTERM');
  const timer = setTimeout(() => api.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
