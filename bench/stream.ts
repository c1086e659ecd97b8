// `npm run bench -- stream [--clients 1000] [--posts 2000] [--communities 10] [--rate 200] [--no-append]`
// The live stream under many clients: `npm run api` as a child process, `clients` SSE connections
// (GET /api/stream for every community) open at once, then `posts` posts written into the shards
// the way a sync writes them (upsertPosts under the shard's write lock, a batch per community) at
// about `rate` posts/s. Measured: latency from the post's write (its fetchedAt, the transaction's
// time) to each client's receipt, p50/p99; API RSS per connection; API CPU; events/s delivered;
// clients dropped (reset or closed).
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { insertCommunity, type CommunityRow } from '../src/db/communities.js';
import { upsertPosts, type PostInput } from '../src/db/posts.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { communityRef } from '../src/sources/lemmy/refs.js';
import { flag, freePort, hasFlag, startBenchEnv } from './support/env.js';
import { sampleProc } from './support/proc.js';
import { appendResults } from './support/results.js';
import { fmt, mb, percentile, table } from './support/stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (m: string) => process.stderr.write(`[stream] ${m}\n`);

/** One SSE client; latencies are kept for sampled clients only, so the bench is not the bottleneck. */
class Client {
  events = 0;
  dropped = false;
  connected = false;
  readonly latencies: number[] = [];
  private buf = '';
  private req?: http.ClientRequest;

  constructor(
    private readonly url: string,
    private readonly sampled: boolean,
  ) {}

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.req = http.get(this.url, { agent: false }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`stream answered ${res.statusCode}`));
        this.connected = true;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => this.onData(chunk));
        res.on('end', () => (this.dropped = true));
        res.on('error', () => (this.dropped = true));
        resolve();
      });
      this.req.on('error', (err) => (this.connected ? (this.dropped = true) : reject(err)));
    });
  }

  private onData(chunk: string): void {
    const now = Date.now();
    this.buf += chunk;
    let end = this.buf.indexOf('\n\n');
    while (end >= 0) {
      const block = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      if (block.startsWith('event: post')) {
        this.events++;
        if (this.sampled) {
          const at = block.indexOf('"fetchedAt":"');
          if (at >= 0) this.latencies.push(now - Date.parse(block.slice(at + 13, block.indexOf('"', at + 13))));
        }
      } else if (block.startsWith('event: reset')) {
        this.dropped = true;
      }
      end = this.buf.indexOf('\n\n');
    }
  }

  close(): void {
    this.req?.destroy();
  }
}

function post(id: number, row: CommunityRow): PostInput {
  return {
    lemmyId: id,
    apId: `https://lemmy.example/post/${id}`,
    title: `Post ${id} in ${row.name}: a title of ordinary length for a link aggregator`,
    url: `https://example.com/articles/${id}`,
    body: id % 4 === 0 ? 'A short body. '.repeat(10) : null,
    author: `user${id % 997}`,
    thumbnail: null,
    published: new Date().toISOString(),
    updated: null,
    score: id % 100,
    upvotes: id % 100,
    downvotes: 0,
    comments: id % 17,
    nsfw: false,
    featured: false,
  };
}

export async function run(argv: string[]): Promise<void> {
  const clients = flag(argv, 'clients', 1000);
  const posts = flag(argv, 'posts', 2000);
  const communities = flag(argv, 'communities', 10);
  const rate = flag(argv, 'rate', 200);
  const be = await startBenchEnv({ env: { STREAM_CLIENT_BUFFER: '1000' } });
  let api: ChildProcess | undefined;
  const open: Client[] = [];
  try {
    const rows: CommunityRow[] = [];
    for (let i = 0; i < communities; i++) {
      const ref = communityRef(`stream${i}`, 'lemmy.example');
      const { row } = await insertCommunity(be.storage.catalog, {
        ref,
        instance: 'https://lemmy.example',
        host: 'lemmy.example',
        name: `stream${i}`,
        refreshSeconds: 3600,
        shard: logicalShardOf(ref),
      });
      rows.push(row);
    }

    const port = await freePort();
    api = spawn(process.execPath, ['--import', 'tsx', 'src/api.ts'], {
      cwd: ROOT,
      env: { ...process.env, ...be.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const ready = Date.now() + 60_000;
    while (!(await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok) {
      if (Date.now() > ready || api.exitCode !== null) throw new Error('API did not start');
      await sleep(200);
    }
    const apiPid = api.pid!;
    const rssBefore = sampleProc(apiPid)?.rssBytes ?? 0;

    const url = `http://127.0.0.1:${port}/api/stream?communities=${rows.map((r) => encodeURIComponent(r.ref)).join(',')}`;
    const sampleEvery = Math.max(1, Math.floor(clients / 100));
    for (let i = 0; i < clients; i += 50) {
      const batch = Array.from({ length: Math.min(50, clients - i) }, (_, k) => new Client(url, (i + k) % sampleEvery === 0));
      await Promise.all(batch.map((c) => c.connect()));
      open.push(...batch);
    }
    await sleep(1000);
    const rssConnected = sampleProc(apiPid)?.rssBytes ?? 0;
    log(`${clients} clients connected; API RSS ${mb(rssBefore)} → ${mb(rssConnected)}`);

    // Writes: a batch per community per tick, like syncs finding new posts.
    // Ticks of 100 ms, or longer for rates under 10 posts/s.
    const tickMs = Math.max(100, Math.round(1000 / rate));
    const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));
    const cpu0 = sampleProc(apiPid)?.cpuSeconds ?? 0;
    const t0 = Date.now();
    let written = 0;
    let peakRss = rssConnected;
    while (written < posts) {
      const tickStart = Date.now();
      const n = Math.min(perTick, posts - written);
      const byCommunity = new Map<CommunityRow, PostInput[]>();
      for (let k = 0; k < n; k++) {
        const row = rows[(written + k) % rows.length];
        byCommunity.set(row, [...(byCommunity.get(row) ?? []), post(written + k + 1, row)]);
      }
      await Promise.all(
        [...byCommunity].map(([row, batch]) => be.storage.router.write(row.shard, (sql) => upsertPosts(sql, row.shard, row.id, batch))),
      );
      written += n;
      peakRss = Math.max(peakRss, sampleProc(apiPid)?.rssBytes ?? 0);
      await sleep(Math.max(0, tickMs - (Date.now() - tickStart)));
    }
    const writeSeconds = (Date.now() - t0) / 1000;
    const deadline = Date.now() + 60_000;
    while (open.some((c) => !c.dropped && c.events < posts) && Date.now() < deadline) {
      peakRss = Math.max(peakRss, sampleProc(apiPid)?.rssBytes ?? 0);
      await sleep(100);
    }
    const seconds = (Date.now() - t0) / 1000;
    const cpu = (100 * ((sampleProc(apiPid)?.cpuSeconds ?? 0) - cpu0)) / seconds;
    const delivered = open.reduce((a, c) => a + c.events, 0);
    const latencies = open.flatMap((c) => c.latencies);
    const dropped = open.filter((c) => c.dropped).length;
    const incomplete = open.filter((c) => !c.dropped && c.events < posts).length;
    log(`written ${written} posts in ${writeSeconds.toFixed(1)} s; delivered ${delivered} events in ${seconds.toFixed(1)} s`);

    const md = table(
      [
        'clients',
        'posts',
        'communities',
        'write rate /s',
        'p50 ms',
        'p99 ms',
        'max ms',
        'events/s delivered',
        'API CPU %',
        'API RSS per connection',
        'API peak RSS',
        'dropped',
        'incomplete',
      ],
      [
        [
          clients,
          posts,
          communities,
          fmt(written / writeSeconds),
          fmt(percentile(latencies, 50)),
          fmt(percentile(latencies, 99)),
          fmt(latencies.length ? latencies.reduce((a, b) => (b > a ? b : a), -Infinity) : Number.NaN),
          fmt(delivered / seconds),
          fmt(cpu),
          `${fmt((rssConnected - rssBefore) / Math.max(1, clients) / 1024, 1)} kB`,
          mb(peakRss),
          dropped,
          incomplete,
        ],
      ],
    );
    process.stdout.write(`\n${md}\n`);
    if (!hasFlag(argv, 'no-append')) {
      appendResults('Live stream (`npm run bench -- stream`)', md, {
        command: `npm run bench -- stream ${argv.join(' ')}`.trim(),
        notes: [
          'one `npm run api` child process; every client is an SSE connection (node:http, no pooling) to GET /api/stream for all communities, so every post goes to every client',
          'posts written straight into the shards as a sync writes them (upsertPosts under the shard write lock, one statement per community per 100 ms tick); embedded Postgres, catalog + 2 shards',
          `latency = receipt time − the post's fetchedAt (the writing transaction's start), for every ${sampleEvery}th client; RSS per connection = (API RSS with the clients connected − before) / clients`,
        ],
      });
    }
  } finally {
    for (const c of open) c.close();
    if (api && api.exitCode === null) {
      api.kill('SIGTERM');
      await Promise.race([new Promise((r) => api!.once('exit', r)), sleep(10_000)]);
      if (api.exitCode === null) api.kill('SIGKILL');
    }
    await be.close();
  }
}
