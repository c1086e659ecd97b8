// `npm run bench -- api [--posts 1000000] [--communities 1000] [--concurrency 32] [--duration 15] [--no-append]`
// Requests/s and latency of the read endpoints with `posts` posts over the two shard nodes:
// loads communities and posts straight into the catalog and shards, starts `npm run api` as a
// child process, and drives it over loopback HTTP (undici, fixed concurrency, fixed duration):
//   1. GET /api/communities/:ref/posts?limit=20 (random community)
//   2. GET /api/posts?limit=20 (newest across every shard)
//   3. the same two mixed with 25 % bad input (bad limits, cursors, refs): must give no 5xx.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { insertCommunity } from '../src/db/communities.js';
import { upsertPosts, type PostInput } from '../src/db/posts.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { communityRef } from '../src/sources/lemmy/refs.js';
import { flag, freePort, hasFlag, startBenchEnv } from './support/env.js';
import { sampleProc, treeCpuSeconds } from './support/proc.js';
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
  apiRss: number;
}

async function load(
  pool: Pool,
  next: () => string,
  o: { concurrency: number; durationMs: number; apiPid: number; pgPids: number[] },
): Promise<LoadResult> {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const end = Date.now() + o.durationMs;
  const cpu0 = sampleProc(o.apiPid)?.cpuSeconds ?? 0;
  const pg0 = treeCpuSeconds(o.pgPids);
  const t0 = Date.now();
  let apiRss = 0;
  const sampler = setInterval(() => (apiRss = Math.max(apiRss, sampleProc(o.apiPid)?.rssBytes ?? 0)), 500);
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (Date.now() < end) {
        const path = next();
        const s = performance.now();
        try {
          const res = await pool.request({ method: 'GET', path });
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
    apiCpu: (100 * ((sampleProc(o.apiPid)?.cpuSeconds ?? 0) - cpu0)) / secs,
    pgCpu: (100 * (treeCpuSeconds(o.pgPids) - pg0)) / secs,
    apiRss,
  };
}

export async function run(argv: string[]): Promise<void> {
  const totalPosts = flag(argv, 'posts', 1_000_000);
  const communities = flag(argv, 'communities', 1000);
  const concurrency = flag(argv, 'concurrency', 32);
  const durationMs = flag(argv, 'duration', 15) * 1000;
  const perCommunity = Math.ceil(totalPosts / communities);
  const log = (m: string) => process.stderr.write(`[api] ${m}\n`);
  const be = await startBenchEnv({});
  let api: ReturnType<typeof spawn> | undefined;
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

    const port = await freePort();
    api = spawn(process.execPath, ['--import', 'tsx', 'src/api.ts'], {
      cwd: ROOT,
      env: { ...process.env, ...be.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
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
    const pgPids = be.nodes.map((n) => n.pid!).filter(Boolean);
    const pick = () => encodeURIComponent(refs[Math.floor(Math.random() * refs.length)]);
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
      ['GET /api/communities/:ref/posts?limit=20', () => `/api/communities/${pick()}/posts?limit=20`],
      ['GET /api/posts?limit=20', () => '/api/posts?limit=20'],
      [
        'both + 25 % bad input',
        () =>
          Math.random() < 0.25
            ? bad[Math.floor(Math.random() * bad.length)]()
            : Math.random() < 0.5
              ? `/api/communities/${pick()}/posts?limit=20`
              : '/api/posts?limit=20',
      ],
    ];
    const rowsOut: (string | number)[][] = [];
    for (const [name, next] of scenarios) {
      await load(pool, next, { concurrency, durationMs: 2000, apiPid: api.pid!, pgPids }); // warm-up
      const r = await load(pool, next, { concurrency, durationMs, apiPid: api.pid!, pgPids });
      log(`${name}: ${JSON.stringify(r)}`);
      const fivexx = Object.entries(r.statuses)
        .filter(([k]) => k.startsWith('5') || k.startsWith('error'))
        .reduce((a, [, v]) => a + v, 0);
      rowsOut.push([
        name,
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
        mb(r.apiRss),
      ]);
    }
    await pool.close();
    const md = table(
      [
        'endpoint',
        'concurrency',
        'requests',
        'req/s',
        'p50 ms',
        'p99 ms',
        'statuses',
        '5xx/errors',
        'CPU % API',
        'CPU % postgres',
        'RSS API',
      ],
      rowsOut,
    );
    process.stdout.write(`\n${md}\n`);
    if (api.exitCode !== null) throw new Error(`the API process exited (${api.exitCode}) under load`);
    if (!hasFlag(argv, 'no-append')) {
      appendResults('API reads (`npm run bench -- api`)', md, {
        command: `npm run bench -- api ${argv.join(' ')}`.trim(),
        notes: [
          `${loaded.toLocaleString('en')} posts in ${communities} communities over 2 shard nodes (embedded Postgres, default durability; loaded in ${loadSeconds.toFixed(0)} s, then VACUUM ANALYZE)`,
          `one \`npm run api\` process; load generator: undici Pool in the bench process over loopback HTTP, ${concurrency} connections, ${durationMs / 1000} s per row after a 2 s warm-up`,
          'CPU % is of one core (200 % = both cores); the load generator shares the same 2 CPUs',
        ],
      });
    }
  } finally {
    if (api && api.exitCode === null) {
      api.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 2000));
      if (api.exitCode === null) api.kill('SIGKILL');
    }
    await be.close();
  }
}
