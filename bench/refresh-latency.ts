// `npm run bench -- refresh-latency [--tries 200] [--via api|db] [--poll 10] [--no-append]`
// Time from the `refresh` signal to the new post being readable: a post appears on a fake Lemmy,
// the bench signals `refresh` (src/tracking.ts requestRefresh, what POST /api/.../refresh does)
// and polls GET /api/communities/:ref/posts?limit=1 (in-process Hono app, no socket) or the shard
// directly (src/db/posts.ts communityPosts) every `poll` ms until the post is there.
import { createApp } from '../api/app.js';
import { communityByRef } from '../src/db/communities.js';
import { communityPosts } from '../src/db/posts.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { requestRefresh, startTracking } from '../src/tracking.js';
import { flag, hasFlag, startBenchEnv } from './support/env.js';
import { appendResults } from './support/results.js';
import { fmt, percentile, table } from './support/stats.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function run(argv: string[]): Promise<void> {
  const tries = flag(argv, 'tries', 200);
  const via = flag(argv, 'via', 'api');
  const pollMs = flag(argv, 'poll', 10);
  if (via !== 'api' && via !== 'db') throw new Error('--via must be api or db');
  // The bench polls the API every `poll` ms from one address: its per-address limit is raised.
  const be = await startBenchEnv({ env: { INSTANCE_REQUESTS_PER_SECOND: '1000', RATE_LIMIT_ANONYMOUS_PER_MINUTE: '10000000' } });
  try {
    const [fake] = await be.startFakes(1);
    await be.startWorker();
    const deps = { config: be.config, catalog: be.storage.catalog, router: be.storage.router, temporal: be.client };
    const app = createApp({ ...deps, log: be.log });
    const { instance, host } = normalizeInstance(fake.url);
    fake.addCommunity('latency');
    fake.addPosts('latency', 5);
    const { row } = await startTracking(deps, { instance, host, name: 'latency', refreshSeconds: 3600 });
    const deadline = Date.now() + 60_000;
    while (!(await communityByRef(deps.catalog, row.ref))?.last_update) {
      if (Date.now() > deadline) throw new Error('first sync did not finish within 60 s');
      await sleep(100);
    }
    const newest = async (): Promise<number | undefined> => {
      if (via === 'db') return (await communityPosts(deps.router, row.shard, row.id, 1)).posts[0]?.lemmy_id;
      const res = await app.request(`/api/communities/${encodeURIComponent(row.ref)}/posts?limit=1`);
      if (res.status !== 200) throw new Error(`API answered ${res.status}: ${await res.text()}`);
      return ((await res.json()) as { posts: { lemmyId: number }[] }).posts[0]?.lemmyId;
    };
    const latencies: number[] = [];
    let timeouts = 0;
    for (let i = 0; i < tries; i++) {
      const [post] = fake.addPosts('latency', 1);
      const t0 = performance.now();
      await requestRefresh(deps, row);
      const end = Date.now() + 30_000;
      for (;;) {
        if (Number(await newest()) === post.id) {
          latencies.push(performance.now() - t0);
          break;
        }
        if (Date.now() > end) {
          timeouts++;
          break;
        }
        await sleep(pollMs);
      }
      if ((i + 1) % 50 === 0) process.stderr.write(`[refresh-latency] ${i + 1}/${tries}\n`);
    }
    const md = table(
      ['tries', 'read via', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'timeouts (>30 s)'],
      [
        [
          tries,
          via === 'api' ? 'GET /api/communities/:ref/posts' : 'communityPosts (shard)',
          fmt(percentile(latencies, 50)),
          fmt(percentile(latencies, 90)),
          fmt(percentile(latencies, 99)),
          fmt(Math.max(...latencies)),
          timeouts,
        ],
      ],
    );
    process.stdout.write(`\n${md}\n`);
    if (!hasFlag(argv, 'no-append')) {
      appendResults('Refresh latency (`npm run bench -- refresh-latency`)', md, {
        command: `npm run bench -- refresh-latency ${argv.join(' ')}`.trim(),
        notes: [
          'one community on a fake Lemmy (loopback), one idle worker (child process), file-backed Temporal dev server, embedded Postgres (catalog + 2 shards, default durability); tries run one after another',
          `latency = from sending the \`refresh\` signal to the new post being the newest one read back (polled every ${pollMs} ms, so up to ${pollMs} ms of it is polling granularity)`,
        ],
      });
    }
  } finally {
    await be.close();
  }
}
