// Sharding benchmark (not a test): `npx tsx bench/shards.ts [--posts 1000000]`.
//  1. upserted posts/s through the shard router (batched upsertPosts, 8 concurrent writers) into
//     one node and into three nodes;
//  2. cross-shard newest-posts latency (src/db/posts.ts newestPosts, what GET /api/posts runs)
//     with 1, 2 and 3 nodes holding the same posts (default 1M).
// Starts its own embedded Postgres servers (one catalog + three shard servers) under a temp dir
// on free ports, removes them afterwards, prints a table and appends it to bench/RESULTS.md.
import { execSync } from 'node:child_process';
import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EmbeddedPostgresNode } from '../src/db/embedded.js';
import { migrate } from '../src/db/migrate.js';
import { openPool } from '../src/db/pool.js';
import { decodeCursor, newestPosts, upsertPosts, type PostInput } from '../src/db/posts.js';
import { logicalShardOf, ShardRouter } from '../src/db/sharding/router.js';
import { bulkCopy, reconcile } from '../src/db/sharding/moves.js';
import { createLogger } from '../src/log.js';
import { createDatabase } from '../test/support/databases.js';
import { freePort } from '../test/support/ports.js';
import { recordSection } from './support/results.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const TOTAL_POSTS = arg('posts', 1_000_000);
const INGEST_POSTS = arg('ingest', 200_000);
const BATCH = 500;
const WRITERS = 8;
const COMMUNITIES = 2000;
const log = createLogger({ level: 'warn', format: 'pretty' });

async function cluster(tag: string, catalogServer: string, shardServers: string[], n: number) {
  const catalogUrl = await createDatabase(catalogServer, `${tag}_catalog`);
  const catalog = openPool(catalogUrl, { max: 20 });
  await migrate(catalog, 'catalog');
  const nodes = [];
  for (let i = 0; i < n; i++) nodes.push({ name: `node-${i + 1}`, url: await createDatabase(shardServers[i], `${tag}_shard`) });
  const router = await ShardRouter.open(catalog, nodes, { log, poolMax: 20 });
  return {
    catalog,
    router,
    async close() {
      await router.close();
      await catalog.end({ timeout: 2 });
    },
  };
}

function fakePost(id: number): PostInput {
  return {
    lemmyId: id,
    apId: `https://bench.test/post/${id}`,
    title: `Post number ${id} with a title of typical length`,
    url: `https://example.com/articles/${id}`,
    body: null,
    author: 'bench_user',
    thumbnail: null,
    published: new Date(Date.parse('2026-01-01T00:00:00Z') + id * 1000).toISOString(),
    updated: null,
    score: id % 100,
    upvotes: id % 100,
    downvotes: 0,
    comments: id % 7,
    nsfw: false,
    featured: false,
  };
}

async function ingest(router: ShardRouter): Promise<number> {
  const communities = Array.from({ length: 64 }, (_, i) => ({ id: i + 1, shard: logicalShardOf(`ingest_${i}@bench.test`) }));
  let next = 0;
  const batches = Math.ceil(INGEST_POSTS / BATCH);
  const start = performance.now();
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      for (;;) {
        const b = next++;
        if (b >= batches) return;
        const c = communities[b % communities.length];
        const posts = Array.from({ length: BATCH }, (_, k) => fakePost(b * BATCH + k));
        await router.write(c.shard, (sql) => upsertPosts(sql, c.shard, c.id, posts));
      }
    }),
  );
  return INGEST_POSTS / ((performance.now() - start) / 1000);
}

/** Loads TOTAL_POSTS posts (COMMUNITIES communities) onto the nodes the map gives their shards. */
async function load(router: ShardRouter): Promise<number> {
  const start = performance.now();
  const per = Math.ceil(TOTAL_POSTS / COMMUNITIES);
  const map = await router.shardMap();
  const byNode = new Map<string, { ids: number[]; shards: number[] }>();
  for (let id = 1; id <= COMMUNITIES; id++) {
    const shard = logicalShardOf(`c${id}@bench.test`);
    const node = map.get(shard)!;
    const e = byNode.get(node) ?? { ids: [], shards: [] };
    e.ids.push(id);
    e.shards.push(shard);
    byNode.set(node, e);
  }
  await Promise.all(
    [...byNode].map(async ([node, { ids, shards }]) => {
      const sql = router.pool(node);
      for (let i = 0; i < ids.length; i += 200) {
        await sql`
          insert into posts (community_id, lemmy_id, shard, ap_id, title, url, author, published, score, upvotes, comments)
          select c.id, g, c.shard, 'https://bench.test/post/' || c.id || '/' || g, 'Post ' || g || ' of community ' || c.id,
                 'https://example.com/a/' || g, 'bench_user',
                 timestamptz '2025-01-01' + ((c.id * 7919 + g * 104729) % 31536000) * interval '1 second' + (g % 1000) * interval '1 microsecond',
                 g % 100, g % 100, g % 7
          from unnest(${ids.slice(i, i + 200)}::bigint[], ${shards.slice(i, i + 200)}::int[]) c(id, shard), generate_series(1, ${per}) g`;
      }
      await sql`vacuum analyze posts`;
    }),
  );
  return (performance.now() - start) / 1000;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function latency(router: ShardRouter): Promise<{ first: number[]; deep: number[] }> {
  for (let i = 0; i < 20; i++) await newestPosts(router, 20); // warm up
  const first: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    await newestPosts(router, 20);
    first.push(performance.now() - t);
  }
  // Following the cursor 100 pages deep (keyset: every page costs about the same).
  const deep: number[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 100; i++) {
    const t = performance.now();
    const page = await newestPosts(router, 20, cursor ? decodeCursor(cursor) : undefined);
    deep.push(performance.now() - t);
    cursor = page.next;
  }
  return { first, deep };
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-bench-'));
chmodSync(tmp, 0o755);
const servers: EmbeddedPostgresNode[] = [];
const cleanup = async () => {
  await Promise.all(servers.map((s) => s.stop().catch(() => {})));
  rmSync(tmp, { recursive: true, force: true });
};
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

try {
  for (let i = 0; i < 4; i++) {
    servers.push(
      new EmbeddedPostgresNode({
        name: i === 0 ? 'bench-catalog' : `bench-shard-${i}`,
        dir: path.join(tmp, `pg-${i}`),
        port: await freePort(),
        log,
        settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', shared_buffers: '256MB', max_connections: '200' },
      }),
    );
  }
  await Promise.all(servers.map((s) => s.start()));
  const [catalogServer, ...shardServers] = servers.map((s) => s.url);
  console.log(`embedded Postgres servers up under ${tmp}`);

  const ingestRows: string[] = [];
  for (const n of [1, 3]) {
    const c = await cluster(`ingest${n}`, catalogServer, shardServers, n);
    const rate = await ingest(c.router);
    ingestRows.push(
      `| ${n} | ${INGEST_POSTS.toLocaleString('en')} | ${BATCH} × ${WRITERS} writers | ${Math.round(rate).toLocaleString('en')} |`,
    );
    console.log(`ingest into ${n} node(s): ${Math.round(rate)} posts/s`);
    await c.close();
  }

  const latencyRows: string[] = [];
  let moveRow = '';
  for (const n of [1, 2, 3]) {
    const c = await cluster(`read${n}`, catalogServer, shardServers, n);
    const secs = await load(c.router);
    const { first, deep } = await latency(c.router);
    const f = (x: number) => x.toFixed(2);
    latencyRows.push(
      `| ${n} | ${TOTAL_POSTS.toLocaleString('en')} | ${f(pct(first, 50))} | ${f(pct(first, 95))} | ${f(pct(deep, 50))} | ${f(pct(deep, 95))} | ${secs.toFixed(1)} |`,
    );
    console.log(
      `newest posts with ${n} node(s): first page p50 ${f(pct(first, 50))} ms, 100 pages deep p50 ${f(pct(deep, 50))} ms (loaded in ${secs.toFixed(1)} s)`,
    );
    if (n === 3) {
      // Moving one logical shard (node-1 → node-2) with the activities' copy and catch-up code.
      const map = await c.router.shardMap();
      const shard = [...map].find(([, node]) => node === 'node-1')![0];
      const src = c.router.pool('node-1');
      const dst = c.router.pool('node-2');
      let t = performance.now();
      const copied = await bulkCopy(src, dst, shard, { lastKey: null, copied: 0, startedAt: '' });
      const copySecs = (performance.now() - t) / 1000;
      t = performance.now();
      await reconcile(src, dst, shard); // what flipShard runs while holding the shard's writes
      const heldMs = performance.now() - t;
      moveRow = `Moving one logical shard of ${copied.copied.toLocaleString('en')} posts between nodes: bulk copy ${copySecs.toFixed(1)} s (${Math.round(copied.copied / copySecs).toLocaleString('en')} rows/s, batches of 1000); the catch-up check that runs while the shard's writes are held took ${heldMs.toFixed(0)} ms with nothing left to copy.`;
      console.log(moveRow);
    }
    await c.close();
  }

  const rev = (() => {
    try {
      return execSync('git rev-parse --short HEAD', { cwd: path.dirname(fileURLToPath(import.meta.url)) })
        .toString()
        .trim();
    } catch {
      return 'unknown';
    }
  })();
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  const machine = `${os.availableParallelism()} CPUs (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
  const section = [
    `### Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, commit ${rev}`,
    '',
    `Machine: ${machine}. All Postgres servers are embedded on this one machine (fsync off), so "three nodes" shares the same CPUs and disk: it measures the routing overhead and parallelism, not extra hardware.`,
    '',
    'Upserts through `router.write` + `upsertPosts` (new posts, batches of 500, 8 concurrent writers, 64 communities):',
    '',
    '| nodes | posts | batching | posts/s |',
    '| --- | --- | --- | --- |',
    ...ingestRows,
    '',
    `Cross-shard newest posts (\`newestPosts\`, limit 20, what \`GET /api/posts\` runs; ${COMMUNITIES} communities, same posts spread by the shard map), ms over 200 first-page calls and 100 pages followed by cursor:`,
    '',
    '| nodes | posts | first page p50 | first page p95 | deep page p50 | deep page p95 | load s |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...latencyRows,
    '',
    moveRow,
    '',
  ].join('\n');
  console.log(`\n${section}`);
  recordSection('Sharding', `Run with \`npx tsx bench/shards.ts\` (options \`--posts N\`, \`--ingest N\`).\n\n${section}`);
  console.log('written to bench/RESULTS.md and bench/HISTORY.md');
} finally {
  await cleanup();
}
