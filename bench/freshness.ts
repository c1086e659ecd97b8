// `npm run bench -- freshness [--sources 200] [--minutes 10] [--modes before,adaptive] [--no-append]`
// Freshness per request: N communities on fake Lemmy instances post with a heavy-tailed rate
// (most quiet, a few busy), and the same workload is tracked once per mode, each in a fresh
// environment (embedded Postgres, file-backed Temporal dev server, one worker process):
//   before   — fixed 60 s polling with metadata on every sync (the previous release's behaviour)
//   fixed    — fixed 60 s polling, metadata only when stale (hourly)
//   adaptive — adaptive refresh within 60–3600 s, metadata only when stale
// After every community's first sync, posts appear as Poisson arrivals for `minutes`; then
// nothing new for a 90 s drain. Figures: requests the instances saw in the window per new post
// stored, freshness (published → readable through GET /api/communities/:ref/posts, i.e. the
// post's fetchedAt) for busy and quiet communities, syncs/s and CPU.
import { createApp } from '../api/app.js';
import { communityByRef } from '../src/db/communities.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { startTracking } from '../src/tracking.js';
import type { FakeLemmy } from '../test/fake-lemmy.js';
import { flag, hasFlag, startBenchEnv } from './support/env.js';
import { ProcMonitor, treeCpuSeconds } from './support/proc.js';
import { appendResults } from './support/results.js';
import { fmt, mapLimit, percentile, table } from './support/stats.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`[freshness] ${line}\n`);

type Mode = 'before' | 'fixed' | 'adaptive';

/** Posts per hour: 80 % a post a day, 15 % a post an hour, 5 % a post a minute. */
const CLASSES = [
  { name: 'quiet', share: 0.8, perHour: 1 / 24 },
  { name: 'hourly', share: 0.15, perHour: 1 },
  { name: 'busy', share: 0.05, perHour: 60 },
] as const;

interface Source {
  fake: FakeLemmy;
  name: string;
  ref: string;
  cls: (typeof CLASSES)[number]['name'];
  perHour: number;
  /** Posts generated in the window: id → published (ms). */
  generated: Map<number, number>;
}

interface ModeResult {
  mode: Mode;
  requests: number;
  listRequests: number;
  metadataRequests: number;
  stored: number;
  generated: number;
  freshness: Record<string, { n: number; unread: number; p50: number; p95: number }>;
  syncsPerSecond: number;
  cpu: { worker: number; temporal: number; postgres: number };
}

function classOf(i: number, n: number): (typeof CLASSES)[number] {
  const x = (i + 0.5) / n;
  let acc = 0;
  for (const c of CLASSES) {
    acc += c.share;
    if (x < acc) return c;
  }
  return CLASSES[0];
}

/** Exponential inter-arrival time (ms) for a rate in posts per hour. */
const nextGapMs = (perHour: number) => (-Math.log(1 - Math.random()) / perHour) * 3_600_000;

async function runMode(mode: Mode, n: number, minutes: number): Promise<ModeResult> {
  const env: Record<string, string> = {
    INSTANCE_REQUESTS_PER_SECOND: '100',
    METADATA_REFRESH_SECONDS: mode === 'before' ? '0' : '3600',
    ADAPTIVE_MIN_REFRESH_SECONDS: '60',
    ADAPTIVE_MAX_REFRESH_SECONDS: '3600',
  };
  const be = await startBenchEnv({ env });
  try {
    const fakes = await be.startFakes(4);
    const worker = await be.startWorker();
    const deps = { config: be.config, catalog: be.storage.catalog, router: be.storage.router, temporal: be.client };
    const app = createApp({ ...deps, log: be.log });
    const sources: Source[] = Array.from({ length: n }, (_, i) => {
      const fake = fakes[i % fakes.length];
      const cls = classOf(i, n);
      const name = `${cls.name}${i}`;
      fake.addCommunity(name);
      // A history at the community's own rate, so a first sync sees how often it posts.
      const gap = 3_600_000 / cls.perHour;
      fake.addPosts(name, 20, (k) => ({ published: new Date(Date.now() - (20 - k) * gap) }));
      return { fake, name, ref: `${name}@${fake.hostPort}`, cls: cls.name, perHour: cls.perHour, generated: new Map() };
    });
    await mapLimit(sources, 20, async (s) => {
      const { instance, host } = normalizeInstance(s.fake.url);
      await startTracking(deps, {
        instance,
        host,
        name: s.name,
        ...(mode === 'adaptive' ? { policy: { mode: 'adaptive', minSeconds: 60, maxSeconds: 3600 } } : { refreshSeconds: 60 }),
      });
    });
    log(`${mode}: ${n} communities tracked; waiting for every first sync`);
    const deadline = Date.now() + 5 * 60_000;
    for (;;) {
      const [row] = await be.storage.catalog<{ n: number }[]>`select count(*)::int as n from communities where last_update is null`;
      if (row.n === 0) break;
      if (Date.now() > deadline) throw new Error(`${row.n} communities without a first sync after 5 min`);
      await sleep(500);
    }

    const syncsNow = async () =>
      (await be.storage.catalog<{ s: number }[]>`select coalesce(sum(syncs), 0)::int as s from communities`)[0].s;
    const pgPids = be.nodes.map((x) => x.pid!).filter(Boolean);
    const monitor = new ProcMonitor({ worker: worker.pid, temporal: be.temporal.pid }, 1000).start();
    const windowStart = Date.now();
    const windowEnd = windowStart + minutes * 60_000;
    const syncs0 = await syncsNow();
    monitor.markCpu();
    const pgCpu0 = treeCpuSeconds(pgPids);
    log(`${mode}: measuring for ${minutes} min`);
    // Poisson arrivals per community, checked every 250 ms.
    const due = sources.map((s) => windowStart + nextGapMs(s.perHour));
    while (Date.now() < windowEnd) {
      const now = Date.now();
      sources.forEach((s, i) => {
        while (due[i] <= now && due[i] < windowEnd) {
          const [p] = s.fake.addPosts(s.name, 1);
          s.generated.set(p.id, p.publishedMs);
          due[i] += nextGapMs(s.perHour);
        }
      });
      await sleep(250);
    }
    const cpu = monitor.cpuPercent();
    const pgCpu = (100 * (treeCpuSeconds(pgPids) - pgCpu0)) / ((Date.now() - windowStart) / 1000);
    const syncsPerSecond = ((await syncsNow()) - syncs0) / ((Date.now() - windowStart) / 1000);
    monitor.stop();
    const inWindow = fakes.flatMap((f) => f.requests.filter((r) => r.at >= windowStart && r.at < windowEnd));
    log(`${mode}: window over; draining 90 s`);
    await sleep(90_000);
    const endedAt = Date.now();

    const freshnessByClass: Record<string, number[]> = {};
    const unreadByClass: Record<string, number> = {};
    let stored = 0;
    let generated = 0;
    for (const s of sources) {
      if (s.generated.size === 0) continue;
      const res = await app.request(`/api/communities/${encodeURIComponent(s.ref)}/posts?limit=100`);
      const posts = ((await res.json()) as { posts: { lemmyId: number; fetchedAt: string }[] }).posts;
      const readAt = new Map(posts.map((p) => [p.lemmyId, Date.parse(p.fetchedAt)]));
      const list = (freshnessByClass[s.cls] ??= []);
      for (const [id, published] of s.generated) {
        generated++;
        const at = readAt.get(id);
        if (at !== undefined) {
          stored++;
          list.push(at - published);
        } else {
          // Not readable yet: its age at the end is a lower bound of its freshness.
          unreadByClass[s.cls] = (unreadByClass[s.cls] ?? 0) + 1;
          list.push(endedAt - published);
        }
      }
    }
    const freshness = Object.fromEntries(
      CLASSES.map((c) => {
        const v = freshnessByClass[c.name] ?? [];
        return [c.name, { n: v.length, unread: unreadByClass[c.name] ?? 0, p50: percentile(v, 50), p95: percentile(v, 95) }];
      }),
    );
    const row = await communityByRef(be.storage.catalog, sources[0].ref);
    log(`${mode}: done (a quiet community's reason: ${row?.refresh_reason ?? '?'})`);
    return {
      mode,
      requests: inWindow.length,
      listRequests: inWindow.filter((r) => r.path.endsWith('/post/list')).length,
      metadataRequests: inWindow.filter((r) => r.path.endsWith('/community')).length,
      stored,
      generated,
      freshness,
      syncsPerSecond,
      cpu: { worker: cpu.worker ?? Number.NaN, temporal: cpu.temporal ?? Number.NaN, postgres: pgCpu },
    };
  } finally {
    await be.close();
  }
}

const secs = (ms: number) => (Number.isFinite(ms) ? `${fmt(ms / 1000)} s` : '–');

export async function run(argv: string[]): Promise<void> {
  const n = flag(argv, 'sources', 200);
  const minutes = flag(argv, 'minutes', 10);
  const modes = flag(argv, 'modes', 'before,adaptive')
    .split(',')
    .map((m) => m.trim()) as Mode[];
  for (const m of modes) if (!['before', 'fixed', 'adaptive'].includes(m)) throw new Error(`unknown mode ${m}`);
  const results: ModeResult[] = [];
  for (const mode of modes) results.push(await runMode(mode, n, minutes));

  const label: Record<Mode, string> = {
    before: 'fixed 60 s, metadata every sync (before)',
    fixed: 'fixed 60 s, metadata hourly',
    adaptive: 'adaptive 60–3600 s, metadata hourly',
  };
  const fresh = (r: ModeResult, cls: string) => {
    const f = r.freshness[cls];
    return `${secs(f.p50)} / ${f.unread ? '≥' : ''}${secs(f.p95)} (${f.n}${f.unread ? `, ${f.unread} unread` : ''})`;
  };
  const md = table(
    [
      'mode',
      'requests in window (list + metadata + other)',
      'new posts stored',
      'requests per new post',
      'busy p50 / p95 (posts)',
      'hourly p50 / p95 (posts)',
      'quiet p50 / p95 (posts)',
      'syncs/s',
      'CPU % worker / temporal / postgres',
    ],
    results.map((r) => [
      label[r.mode],
      `${r.requests} (${r.listRequests} + ${r.metadataRequests} + ${r.requests - r.listRequests - r.metadataRequests})`,
      `${r.stored} of ${r.generated}`,
      fmt(r.requests / Math.max(1, r.stored), 2),
      fresh(r, 'busy'),
      fresh(r, 'hourly'),
      fresh(r, 'quiet'),
      fmt(r.syncsPerSecond, 2),
      `${fmt(r.cpu.worker)} / ${fmt(r.cpu.temporal)} / ${fmt(r.cpu.postgres)}`,
    ]),
  );
  const base = results.find((r) => r.mode === 'before');
  const adaptive = results.find((r) => r.mode === 'adaptive');
  const ratio = base && adaptive ? `${fmt(base.requests / Math.max(1, adaptive.requests), 1)}× fewer requests than fixed 60 s polling` : '';
  process.stdout.write(`\n${md}\n${ratio}\n`);
  if (!hasFlag(argv, 'no-append')) {
    appendResults('Freshness per request (`npm run bench -- freshness`)', md, {
      command: `npm run bench -- freshness ${argv.join(' ')}`.trim(),
      notes: [
        `${n} communities on 4 fake Lemmy instances (loopback); posting rates heavy-tailed: 80 % a post a day, 15 % a post an hour, 5 % a post a minute (busy), Poisson arrivals; each seeded with 20 posts at its own rate`,
        `window of ${minutes} min after every community's first sync, then a 90 s drain with no new posts; each mode in a fresh environment (embedded Postgres catalog + 2 shards, file-backed Temporal dev server, one worker process)`,
        'freshness = published on the instance → readable through GET /api/communities/:ref/posts (the fetchedAt of the post); a post still unread at the end counts with its age then (a lower bound, marked ≥)',
        ratio ? `${ratio} in the window` : '',
        'CPU % is of one core, averaged over the window; postgres = all three servers with their backends',
      ].filter(Boolean),
    });
  }
}
