// `npm run bench -- fleet [--n 50000] [--duration 600] [--cache 4000] [--quiet-cache <WORKER_QUIET_CACHED_WORKFLOWS default>]
//   [--per-instance 250] [--rps 1000]
//   [--seed 5] [--concurrency 50] [--window 0] [--startup-timeout 3000] [--window-from 0] [--progress 10]
//   [--via track|restore] [--synced] [--profile] [--node-flags '--single-threaded-gc'] [--no-append]`
// Issue 13's fleet target: N communities tracked with the adaptive policy (60–3600 s) and the
// realistic mix of the freshness bench (80 % post about once a day, 15 % once an hour, 5 % once a
// minute), one worker child process with a sticky cache sized for the busy communities (--cache)
// and one for the quiet runs' task queue (--quiet-cache),
// a file-backed Temporal dev server and embedded Postgres (catalog + 2 shards), as scale.ts runs
// them. Each fake community is seeded with a page at its own rate, so that the first sync samples
// it; new posts then keep appearing as Poisson arrivals. Start-up (every first sync done) is
// timed with progress on stderr (syncs/s by class); then `duration` seconds of steady state, from
// `--window-from` s after the first start if start-up ends sooner (3600: the quiet communities synced
// during start-up are due again): syncs/s, scheduling lag (sync start seen by the fake − due time
// the catalog recorded), overdue communities, CPU/RSS per process, CPU-ms per sync and the worker's
// sticky cache. `--profile`: the worker under `node --cpu-prof`, each thread summarised over start-up.
// `--via restore`: the catalog is filled first (not timed), and start-up is the restoreTracking
// workflow starting every community's workflow from the worker (eager starts), until every first sync.
// `--synced` (with `--via restore`): the catalog as a fleet in step leaves it, every row's last sync
// a success at a random moment of its interval (the adaptive one for its class), so that restored
// runs resume their schedules; start-up is then the restore itself (every workflow running).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { defaultPayloadConverter } from '@temporalio/common';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { insertCommunity, saveSyncSuccess, syncedCommunityCount } from '../src/db/communities.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { startTracking } from '../src/tracking.js';
import { RESTORE_WORKFLOW_ID } from '../workflows/restoreTracking.js';
import { intervalFor } from '../workflows/refreshPolicy.js';
import { SYNCS_PER_RUN } from '../workflows/trackCommunity.js';
import type { FakeLemmy } from '../test/fake-lemmy.js';
import { flag, freePort, hasFlag, startBenchEnv, type BenchEnv } from './support/env.js';
import { ProcMonitor, sampleProc, treeCpuSeconds } from './support/proc.js';
import { threadProfileNotes } from './support/profile.js';
import { appendResults } from './support/results.js';
import { fmt, mapLimit, mb, percentile, table } from './support/stats.js';
import { treePssBytes } from './support/temporal-server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`[fleet] ${line}\n`);

/** The freshness bench's mix (posts per hour). */
const CLASSES = {
  quiet: { share: 0.8, perHour: 1 / 24 },
  hourly: { share: 0.15, perHour: 1 },
  busy: { share: 0.05, perHour: 60 },
} as const;
type Cls = keyof typeof CLASSES;
const CLASS_NAMES = Object.keys(CLASSES) as Cls[];

/** Every community's refresh policy (the bench env sets the same adaptive bounds). */
const FLEET_POLICY = { mode: 'adaptive', minSeconds: 60, maxSeconds: 3600 } as const;

/** Interleaved (1 busy and 3 hourly in every 20), so that start-up meets busy communities all along, as a growing fleet would. */
function classOf(i: number): Cls {
  const k = i % 20;
  return k === 0 ? 'busy' : k <= 3 ? 'hourly' : 'quiet';
}

interface Source {
  fake: FakeLemmy;
  name: string;
  cls: Cls;
  instance: string;
  host: string;
}

/** Sums of the samples of a Prometheus exposition by metric name (labels matching `labels`, if given). */
function metricSums(text: string, labels?: RegExp): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || (labels && !labels.test(m[2] ?? ''))) continue;
    out.set(m[1], (out.get(m[1]) ?? 0) + Number(m[3]));
  }
  return out;
}

/** Busy and total CPU time of the whole machine (/proc/stat), to tell this bench's load from anything else running. */
function machineCpu(): { busy: number; total: number } {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - v[3] - (v[4] ?? 0), total };
}

/** Machine CPU % (100 = one core) since `from`. */
const machinePercent = (from: { busy: number; total: number }) => {
  const now = machineCpu();
  return (100 * os.availableParallelism() * (now.busy - from.busy)) / Math.max(1, now.total - from.total);
};

async function scrape(address: string): Promise<string> {
  try {
    const res = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(10_000) });
    return res.ok ? await res.text() : '';
  } catch {
    return '';
  }
}

interface FleetResult {
  n: number;
  instances: number;
  cache: number;
  /** Workflows started before the start-up deadline (all of them unless it passed first). */
  started: number;
  startedSeconds: number;
  startupSeconds: number;
  firstSynced: number;
  windowSeconds: number;
  syncsPerSecond: number;
  bySyncClass: Record<Cls, { syncs: number; lagP99: number }>;
  steadyPerSecond: number;
  lagP50: number;
  lagP99: number;
  lagMax: number;
  lagUnmatched: number;
  overdue: number;
  workerWithin5s: number;
  cpu: Record<string, number>;
  startupCpu: Record<string, number>;
  /** Every process on the machine (this bench's and any other). */
  machineCpu: number;
  startupMachineCpu: number;
  rssWindow: Record<string, number>;
  rssRun: Record<string, number>;
  temporalPss: number;
  sticky: { size: number; hits: number; misses: number; evictions: number };
  /** The part of `sticky` that is the quiet task queue's worker. */
  quietSticky: { size: number; hits: number; misses: number; evictions: number };
  quietCache: number;
  /** Start-up (the first start to the last first sync), in ms after the worker was spawned. */
  startupSinceWorkerMs: { from: number; to: number };
}

const PROCS = ['worker', 'temporal', 'postgres', 'bench (fakes, client)'] as const;

async function runFleet(
  be: BenchEnv,
  o: {
    n: number;
    duration: number;
    cache: number;
    quietCache: number;
    perInstance: number;
    seed: number;
    concurrency: number;
    window: number;
    /** `track`: startTracking per community (the API's way); `restore`: the catalog filled first, then the restoreTracking workflow. */
    via: 'track' | 'restore';
    /** With `restore`: every row saved as synced before (a fleet in step), not new. */
    synced: boolean;
    startupTimeout: number;
    windowFrom: number;
    progress: number;
    profileDir?: string;
    /** Node flags for the worker (a lever to weigh: `--node-flags`). */
    nodeFlags: string[];
  },
): Promise<FleetResult> {
  const instances = Math.ceil(o.n / o.perInstance);
  const fakes = await be.startFakes(instances);
  const sdkMetrics = `127.0.0.1:${await freePort()}`;
  const appMetrics = `127.0.0.1:${await freePort()}`;
  const workerSpawnedAt = Date.now();
  const worker = await be.startWorker(
    { TEMPORAL_METRICS_ADDRESS: sdkMetrics, WORKER_METRICS_PORT: appMetrics.split(':')[1] },
    { nodeFlags: [...o.nodeFlags, ...(o.profileDir ? ['--cpu-prof', '--cpu-prof-dir', o.profileDir] : [])] },
  );
  const pgPids = be.nodes.map((x) => x.pid!).filter(Boolean);
  const temporalPid = be.temporal.pid!;
  const pids = { worker: worker.pid, temporal: temporalPid, 'bench (fakes, client)': process.pid };
  // Peaks over the whole run (start-up included), and another monitor for the window alone.
  const runMonitor = new ProcMonitor({ ...pids }, 1000).start();
  const deps = { config: be.config, catalog: be.storage.catalog, router: be.storage.router, temporal: be.client };

  const now0 = Date.now();
  const sources: Source[] = Array.from({ length: o.n }, (_, i) => {
    // Consecutive communities share an instance, so that each instance has the whole mix.
    const fake = fakes[Math.floor(i / o.perInstance)];
    const cls = classOf(i);
    const name = `c${i}`;
    fake.addCommunity(name);
    // A first page at the community's own rate: the adaptive first sync samples it from these times.
    const gap = 3_600_000 / CLASSES[cls].perHour;
    fake.addPosts(name, o.seed, (k) => ({ published: new Date(now0 - (o.seed - k) * gap) }));
    return { fake, name, cls, ...normalizeInstance(fake.url) };
  });
  const byClass = Object.fromEntries(CLASS_NAMES.map((c) => [c, sources.filter((s) => s.cls === c)])) as Record<Cls, Source[]>;
  const clsOf = new Map(sources.map((s) => [s.name, s.cls]));

  // Poisson arrivals per class, spread uniformly over its communities: the same as one Poisson
  // process per community, at a cost per post rather than per community (the fakes share the CPU).
  let publishing = true;
  const publisher = (async () => {
    const rate = (c: Cls) => (byClass[c].length * CLASSES[c].perHour) / 3_600_000; // posts per ms
    const gapMs = (c: Cls) => -Math.log(1 - Math.random()) / rate(c);
    const next = Object.fromEntries(CLASS_NAMES.map((c) => [c, Date.now() + gapMs(c)])) as Record<Cls, number>;
    while (publishing) {
      const now = Date.now();
      for (const c of CLASS_NAMES) {
        if (byClass[c].length === 0) continue;
        for (; next[c] <= now; next[c] += gapMs(c)) {
          const s = byClass[c][Math.floor(Math.random() * byClass[c].length)];
          s.fake.addPosts(s.name, 1);
        }
      }
      await sleep(250);
    }
  })();

  // Due times as the catalog records them (next_sync_at, written with each sync's result), by
  // community: the sync that starts after a sync at s was due at the first of them after s.
  const dues = new Map<string, number[]>();
  let since = new Date(0);
  const pollDues = async () => {
    const [{ t }] = await be.storage.catalog<{ t: Date }[]>`select now() as t`;
    const rows = await be.storage.catalog<{ name: string; next_sync_at: Date }[]>`
      select name, next_sync_at from communities
      where updated_at > ${since}::timestamptz - interval '10 seconds' and next_sync_at is not null`;
    since = t;
    for (const r of rows) {
      const at = r.next_sync_at.getTime();
      let list = dues.get(r.name);
      if (!list) dues.set(r.name, (list = []));
      if (!list.includes(at)) list.push(at);
    }
  };

  // Progress every `progress` s; due times polled every 5 s (an interval is ≥ 60 s, so none is missed).
  let started = 0;
  let firstSynced = 0;
  let totalSyncs = 0;
  let pgPssMax = 0;
  let polling = true;
  /** `--synced`: each community's last sync as seeded, which its first resumed sync follows. */
  const seededSyncs = new Map<string, number>();
  if (o.via === 'restore') {
    // The catalog as a lost Temporal would leave it: every row, no workflow (not timed).
    await mapLimit(sources, 50, async (s) => {
      const ref = `${s.name}@${s.host}`;
      const { row } = await insertCommunity(be.storage.catalog, {
        ref,
        instance: s.instance,
        host: s.host,
        name: s.name,
        refreshSeconds: be.config.REFRESH_SECONDS,
        refreshPolicy: FLEET_POLICY.mode,
        minRefreshSeconds: FLEET_POLICY.minSeconds,
        maxRefreshSeconds: FLEET_POLICY.maxSeconds,
        shard: logicalShardOf(ref),
      });
      if (!o.synced) return;
      // Its last sync a random moment of its interval ago, as the workflow would have planned it.
      const rate = CLASSES[s.cls].perHour;
      const { seconds, reason } = intervalFor({
        policy: FLEET_POLICY,
        fixedSeconds: be.config.REFRESH_SECONDS,
        rate,
        consecutiveFailures: 0,
        random: Math.random(),
      });
      const at = new Date(Date.now() - Math.random() * seconds * 1000);
      seededSyncs.set(s.name, at.getTime());
      await saveSyncSuccess(be.storage.catalog, row.id, {
        state: {},
        inserted: 0,
        at,
        schedule: { intervalSeconds: seconds, reason, postsPerHour: rate },
      });
    });
    log(`catalog filled with ${o.n} communities${o.synced ? ' (as synced before)' : ''}; restoring their workflows`);
  }
  // The restore's progress as an operator sees it (`temporal workflow describe`): its activity's heartbeat.
  const restoreProgress = async () => {
    try {
      const d = await be.client.workflow.getHandle(RESTORE_WORKFLOW_ID).describe();
      const payload = d.raw.pendingActivities?.[0]?.heartbeatDetails?.payloads?.[0];
      const p = payload ? defaultPayloadConverter.fromPayload<{ restored: number; resumed?: number; running: number }>(payload) : undefined;
      return p ? `restoreTracking: ${p.restored} restored (${p.resumed ?? 0} resumed), ${p.running} running` : 'restoreTracking running';
    } catch {
      return 'restoreTracking running';
    }
  };
  const loadStart = Date.now();
  const poller = (async () => {
    let last = { at: Date.now(), started: 0, firstSynced: 0, syncs: 0, busy: 0, hourly: 0, cpu: {} as Record<string, number> };
    const cpuNow = (): Record<string, number> => ({
      worker: sampleProc(worker.pid)?.cpuSeconds ?? 0,
      temporal: sampleProc(temporalPid)?.cpuSeconds ?? 0,
      postgres: treeCpuSeconds(pgPids),
      bench: sampleProc(process.pid)?.cpuSeconds ?? 0,
    });
    last.cpu = cpuNow();
    let lastPrint = Date.now();
    while (polling) {
      await sleep(5000);
      try {
        await pollDues();
        if (Date.now() - lastPrint < o.progress * 1000 - 100) continue;
        lastPrint = Date.now();
        // The class is the name's index modulo 20 (classOf).
        const [row] = await be.storage.catalog<{ synced: number; syncs: number; busy: number; hourly: number }[]>`
          select count(*) filter (where last_update is not null)::int as synced, coalesce(sum(syncs), 0)::int as syncs,
            coalesce(sum(syncs) filter (where substr(name, 2)::int % 20 = 0), 0)::int as busy,
            coalesce(sum(syncs) filter (where substr(name, 2)::int % 20 between 1 and 3), 0)::int as hourly
          from communities`;
        firstSynced = row.synced;
        totalSyncs = row.syncs;
        pgPssMax = Math.max(pgPssMax, treePssBytes(pgPids));
        const now = { at: Date.now(), started, firstSynced, syncs: totalSyncs, busy: row.busy, hourly: row.hourly, cpu: cpuNow() };
        const dt = (now.at - last.at) / 1000;
        const per = (a: number, b: number) => fmt((a - b) / dt, 0);
        const cpu = Object.keys(now.cpu)
          .map((k) => `${k} ${fmt((100 * (now.cpu[k] - last.cpu[k])) / dt, 0)}`)
          .join(' ');
        log(
          `t=${fmt((now.at - loadStart) / 1000)} s: ${
            // restoreTracking reports its count when it ends (its progress is its heartbeat, in the Temporal UI).
            o.via === 'restore' && started === 0 ? await restoreProgress() : `started ${started}/${o.n} (${per(started, last.started)}/s)`
          }, ` +
            `first syncs ${firstSynced} (${per(firstSynced, last.firstSynced)}/s), syncs ${totalSyncs} (${per(totalSyncs, last.syncs)}/s: ` +
            `busy ${per(now.busy, last.busy)}, hourly ${per(now.hourly, last.hourly)}, ` +
            `quiet ${per(now.syncs - now.busy - now.hourly, last.syncs - last.busy - last.hourly)}); ` +
            `CPU % ${cpu}; RSS worker ${mb(sampleProc(worker.pid)?.rssBytes ?? 0)}, temporal ${mb(sampleProc(temporalPid)?.rssBytes ?? 0)}`,
        );
        last = now;
      } catch (err) {
        log(`progress: ${(err as Error).message}`);
      }
    }
  })();

  let startedSeconds: number;
  let startupSeconds = Number.NaN;
  try {
    runMonitor.markCpu();
    const pgStartCpu0 = treeCpuSeconds(pgPids);
    const machineStart = machineCpu();
    // `--window N`: at most N communities started and not yet synced once. Unbounded, the starts
    // outrun the first syncs and the dev server's task queue turns into a backlog it matches from
    // its database (4–6 first workflow tasks/s while the starts ran at ~115/s in the first run).
    let counting: Promise<void> | undefined;
    const countFirstSyncs = () =>
      (counting ??= (async () => {
        firstSynced = await syncedCommunityCount(be.storage.catalog);
        await sleep(500);
      })().finally(() => (counting = undefined)));
    // The deadline bounds the whole start-up, the starts included: with `--window` they can take longer than it.
    const deadline = loadStart + o.startupTimeout * 1000;
    const pastDeadline = () => Date.now() > deadline;
    if (o.via === 'restore') {
      const restore = await be.client.workflow.start('restoreTracking', {
        taskQueue: be.config.TEMPORAL_TASK_QUEUE,
        workflowId: RESTORE_WORKFLOW_ID,
        args: [{ concurrency: o.concurrency, ...(o.window > 0 ? { window: o.window } : {}) }],
      });
      started = ((await restore.result()) as { restored: number }).restored;
    }
    await mapLimit(o.via === 'restore' ? [] : sources, o.concurrency, async (s) => {
      while (o.window > 0 && started - firstSynced >= o.window && !pastDeadline()) await countFirstSyncs();
      if (pastDeadline()) return;
      await startTracking(deps, {
        instance: s.instance,
        host: s.host,
        name: s.name,
        policy: FLEET_POLICY,
      });
      started++;
    });
    startedSeconds = (Date.now() - loadStart) / 1000;
    if (started < o.n) log(`start-up deadline (${o.startupTimeout} s) passed with ${started} of ${o.n} workflows started`);
    else log(`all ${o.n} workflows started in ${fmt(startedSeconds, 1)} s; waiting for every first sync`);
    for (;;) {
      firstSynced = await syncedCommunityCount(be.storage.catalog);
      if (firstSynced >= o.n) {
        startupSeconds = (Date.now() - loadStart) / 1000;
        break;
      }
      if (pastDeadline()) {
        log(`start-up not done after ${o.startupTimeout} s (${firstSynced} of ${o.n} first syncs); measuring anyway`);
        break;
      }
      await sleep(2000);
    }
    const startupCpu = runMonitor.cpuPercent();
    startupCpu.postgres = (100 * (treeCpuSeconds(pgPids) - pgStartCpu0)) / ((Date.now() - loadStart) / 1000);
    const startupMachineCpu = machinePercent(machineStart);
    if (Number.isFinite(startupSeconds)) log(`start-up: every first sync done in ${fmt(startupSeconds, 1)} s`);

    // Steady state, from `--window-from` s after the first start at the earliest.
    const settle = loadStart + o.windowFrom * 1000 - Date.now();
    if (settle > 0) {
      log(`waiting ${fmt(settle / 1000, 0)} s for the window (--window-from ${o.windowFrom})`);
      await sleep(settle);
    }
    const windowMonitor = new ProcMonitor({ ...pids }, 1000).start();
    const sdkText0 = await scrape(sdkMetrics);
    const appText0 = await scrape(appMetrics);
    const windowStart = Date.now();
    windowMonitor.markCpu();
    const pgCpu0 = treeCpuSeconds(pgPids);
    const machineWindow = machineCpu();
    log(`measuring for ${o.duration} s`);
    await sleep(o.duration * 1000);
    const windowEnd = Date.now();
    const windowSeconds = (windowEnd - windowStart) / 1000;
    const cpu = windowMonitor.cpuPercent();
    cpu.postgres = (100 * (treeCpuSeconds(pgPids) - pgCpu0)) / windowSeconds;
    const windowMachineCpu = machinePercent(machineWindow);
    pgPssMax = Math.max(pgPssMax, treePssBytes(pgPids));
    const sdkText1 = await scrape(sdkMetrics);
    const appText1 = await scrape(appMetrics);
    const temporalPss = treePssBytes([temporalPid]);
    windowMonitor.stop();
    polling = false;
    await poller;
    await pollDues();
    const [steady] = await be.storage.catalog<{ r: number }[]>`
      select coalesce(sum(1.0 / interval_seconds), 0)::float8 as r from communities where interval_seconds > 0`;
    runMonitor.stop();

    // Sync starts: the first newest-posts page each sync asks for (metadata only when stale); a
    // seeded sync counts as one, so that a resumed run's first sync is measured against its due time.
    const starts = new Map<string, number[]>([...seededSyncs].map(([name, at]) => [name, [at]]));
    for (const fake of fakes) {
      for (const r of fake.requests) {
        if (!r.path.endsWith('/post/list') || r.query.page !== '1' || !r.community) continue;
        let list = starts.get(r.community);
        if (!list) starts.set(r.community, (list = []));
        list.push(r.at);
      }
    }
    const lags: number[] = [];
    const lagsByClass = Object.fromEntries(CLASS_NAMES.map((c) => [c, [] as number[]])) as Record<Cls, number[]>;
    const syncsByClass = Object.fromEntries(CLASS_NAMES.map((c) => [c, 0])) as Record<Cls, number>;
    let syncs = 0;
    let overdue = 0;
    let lagUnmatched = 0;
    const dueAfter = (name: string, t: number) => {
      let best: number | undefined;
      for (const d of dues.get(name) ?? []) if (d > t && (best === undefined || d < best)) best = d;
      return best;
    };
    for (const [name, times] of starts) {
      const cls = clsOf.get(name) ?? 'quiet';
      times.sort((a, b) => a - b);
      for (let k = 1; k < times.length; k++) {
        if (times[k] < windowStart || times[k] >= windowEnd) continue;
        syncs++;
        syncsByClass[cls]++;
        const due = dueAfter(name, times[k - 1]);
        if (due === undefined) {
          lagUnmatched++;
          continue;
        }
        lags.push(times[k] - due);
        lagsByClass[cls].push(times[k] - due);
      }
      // Due inside the window but not started by its end: its lag so far counts, not hidden.
      const due = dueAfter(name, times[times.length - 1]);
      if (due !== undefined && due + 2000 < windowEnd) {
        overdue++;
        lags.push(windowEnd - due);
        lagsByClass[cls].push(windowEnd - due);
      }
    }
    // The worker's own schedule-lag histogram over the window: a cross-check of the lag above.
    const histogram = (text: string, labels: RegExp | undefined, suffix: string) =>
      metricSums(text, labels).get(`lemmy_fetcher_sync_schedule_lag_seconds_${suffix}`) ?? 0;
    const within5 = histogram(appText1, /le="5"/, 'bucket') - histogram(appText0, /le="5"/, 'bucket');
    const lagCount = histogram(appText1, undefined, 'count') - histogram(appText0, undefined, 'count');
    // A counter not incremented yet is absent from the exposition: 0 if the scrape answered at all.
    const sticky = (name: string, m: Map<string, number>) => {
      for (const [k, v] of m) if (k.includes(name)) return v;
      return m.size ? 0 : Number.NaN;
    };
    const stickyOver = (m0: Map<string, number>, m1: Map<string, number>) => ({
      size: sticky('sticky_cache_size', m1),
      hits: sticky('sticky_cache_hit', m1) - sticky('sticky_cache_hit', m0),
      misses: sticky('sticky_cache_miss', m1) - sticky('sticky_cache_miss', m0),
      evictions: sticky('sticky_cache_total_forced_eviction', m1) - sticky('sticky_cache_total_forced_eviction', m0),
    });
    const quietQueue = new RegExp(`task_queue="${be.config.TEMPORAL_QUIET_TASK_QUEUE}"`);
    return {
      n: o.n,
      instances,
      cache: o.cache,
      started,
      startedSeconds,
      startupSeconds,
      firstSynced,
      windowSeconds,
      startupSinceWorkerMs: {
        from: loadStart - workerSpawnedAt,
        to: loadStart - workerSpawnedAt + (Number.isFinite(startupSeconds) ? startupSeconds : startedSeconds) * 1000,
      },
      syncsPerSecond: syncs / windowSeconds,
      bySyncClass: Object.fromEntries(
        CLASS_NAMES.map((c) => [c, { syncs: syncsByClass[c], lagP99: percentile(lagsByClass[c], 99) / 1000 }]),
      ) as FleetResult['bySyncClass'],
      steadyPerSecond: steady.r,
      lagP50: percentile(lags, 50) / 1000,
      lagP99: percentile(lags, 99) / 1000,
      lagMax: (lags.length ? Math.max(...lags) : Number.NaN) / 1000,
      lagUnmatched,
      overdue,
      workerWithin5s: lagCount ? within5 / lagCount : Number.NaN,
      cpu,
      startupCpu,
      machineCpu: windowMachineCpu,
      startupMachineCpu,
      rssWindow: {
        worker: windowMonitor.peakRss('worker'),
        temporal: windowMonitor.peakRss('temporal'),
        'bench (fakes, client)': windowMonitor.peakRss('bench (fakes, client)'),
        postgres: treePssBytes(pgPids),
      },
      rssRun: {
        worker: runMonitor.peakRss('worker'),
        temporal: runMonitor.peakRss('temporal'),
        'bench (fakes, client)': runMonitor.peakRss('bench (fakes, client)'),
        postgres: pgPssMax,
      },
      temporalPss,
      sticky: stickyOver(metricSums(sdkText0), metricSums(sdkText1)),
      quietSticky: stickyOver(metricSums(sdkText0, quietQueue), metricSums(sdkText1, quietQueue)),
      quietCache: o.quietCache,
    };
  } finally {
    publishing = false;
    polling = false;
    await publisher;
    await poller;
    runMonitor.stop();
  }
}

export async function run(argv: string[]): Promise<void> {
  const o = {
    n: flag(argv, 'n', 50_000),
    duration: flag(argv, 'duration', 600),
    cache: flag(argv, 'cache', 4000),
    quietCache: flag(argv, 'quiet-cache', loadConfig({}).WORKER_QUIET_CACHED_WORKFLOWS),
    perInstance: flag(argv, 'per-instance', 250),
    rps: flag(argv, 'rps', 1000),
    seed: flag(argv, 'seed', 5),
    concurrency: flag(argv, 'concurrency', 50),
    window: flag(argv, 'window', 0),
    startupTimeout: flag(argv, 'startup-timeout', 3000),
    windowFrom: flag(argv, 'window-from', 0),
    progress: flag(argv, 'progress', 10),
    via: flag(argv, 'via', 'track') === 'restore' ? ('restore' as const) : ('track' as const),
    synced: hasFlag(argv, 'synced'),
    profileDir: hasFlag(argv, 'profile') ? mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-prof-')) : undefined,
    nodeFlags: flag(argv, 'node-flags', '').split(/\s+/).filter(Boolean),
  };
  if (o.seed < 3) throw new Error('--seed: at least 3 posts, or a first sync cannot sample the posting rate');
  if (o.synced && o.via !== 'restore') throw new Error('--synced: only with --via restore (new communities have never synced)');
  const be = await startBenchEnv({
    env: {
      INSTANCE_REQUESTS_PER_SECOND: String(o.rps),
      WORKER_MAX_CACHED_WORKFLOWS: String(o.cache),
      WORKER_QUIET_CACHED_WORKFLOWS: String(o.quietCache),
      ADAPTIVE_MIN_REFRESH_SECONDS: '60',
      ADAPTIVE_MAX_REFRESH_SECONDS: '3600',
    },
  });
  let r: FleetResult;
  const profileLines: string[] = [];
  try {
    try {
      r = await runFleet(be, o);
    } finally {
      await be.close(); // the worker writes its profiles as it exits
    }
    if (o.profileDir)
      profileLines.push(
        ...threadProfileNotes(
          o.profileDir,
          { fromMs: r.startupSinceWorkerMs.from, toMs: r.startupSinceWorkerMs.to },
          (thread) => `the worker, ${thread}, over start-up`,
        ),
      );
  } finally {
    if (o.profileDir) rmSync(o.profileDir, { recursive: true, force: true });
  }
  process.stdout.write(`${JSON.stringify(r)}\n`);

  const targets = { rss: 2 * 1024 ** 3, lagP99: 5 };
  const ok = (pass: boolean) => (pass ? '✓' : '✗');
  const totalCpu = Object.values(r.cpu).reduce((a, b) => a + b, 0);
  const md = table(
    [
      'N',
      'instances',
      'sticky cache',
      'all started s',
      'start-up s (first syncs)',
      'syncs/s in window (long-run)',
      'lag p50 s',
      'lag p99 s',
      'lag max s',
      'overdue',
      ...PROCS.map((p) => `CPU % ${p}`),
      'RSS worker max (run / window)',
      'RSS temporal max (run / window; PSS end)',
      'PSS postgres (max)',
      'RSS bench',
      'CPU ms/sync (machine)',
    ],
    [
      [
        r.n,
        r.instances,
        `${r.cache} (size at end ${fmt(r.sticky.size)})`,
        r.started < r.n ? `not all (${r.started} of ${r.n})` : fmt(r.startedSeconds, 0),
        Number.isFinite(r.startupSeconds) ? fmt(r.startupSeconds, 0) : `not done (${r.firstSynced} of ${r.n})`,
        `${fmt(r.syncsPerSecond, 1)} (${fmt(r.steadyPerSecond, 1)})`,
        fmt(r.lagP50, 2),
        `${fmt(r.lagP99, 2)} ${ok(r.lagP99 < targets.lagP99)}`,
        fmt(r.lagMax, 2),
        r.overdue,
        ...PROCS.map((p) => fmt(r.cpu[p] ?? Number.NaN, 0)),
        `${mb(r.rssRun.worker)} / ${mb(r.rssWindow.worker)} ${ok(r.rssRun.worker <= targets.rss)}`,
        `${mb(r.rssRun.temporal)} / ${mb(r.rssWindow.temporal)}; ${mb(r.temporalPss)} ${ok(r.rssRun.temporal <= targets.rss)}`,
        mb(r.rssRun.postgres),
        mb(r.rssRun['bench (fakes, client)']),
        fmt((totalCpu * 10) / r.syncsPerSecond, 1),
      ],
    ],
  );
  const per = CLASS_NAMES.map(
    (c) => `${c} ${fmt(r.bySyncClass[c].syncs / r.windowSeconds, 1)}/s (lag p99 ${fmt(r.bySyncClass[c].lagP99, 2)} s)`,
  ).join(', ');
  const defaults = loadConfig({});
  const notes = [
    `${r.n} communities on ${r.instances} fake Lemmy instances (loopback ports, served by the bench process), mix of the freshness bench interleaved (per 20: 1 busy ~1 post/min, 3 hourly ~1 post/h, 16 quiet ~1 post/day); each seeded with ${o.seed} posts at its own rate so that the adaptive first sync samples it, then Poisson arrivals; INSTANCE_REQUESTS_PER_SECOND=${o.rps}`,
    `adaptive policy 60–3600 s for every community; one worker child process with WORKER_MAX_CACHED_WORKFLOWS=${r.cache} and WORKER_QUIET_CACHED_WORKFLOWS=${r.quietCache} (the quiet runs' task queue) (defaults otherwise: ${defaults.WORKER_MAX_CONCURRENT_ACTIVITIES} concurrent activities), runs of at most ${SYNCS_PER_RUN} syncs (SYNCS_PER_RUN), ${defaults.QUIET_RUN_SYNCS} from an interval of ${defaults.QUIET_RUN_FROM_SECONDS} s on (QUIET_RUN_SYNCS, QUIET_RUN_FROM_SECONDS); file-backed Temporal dev server; embedded Postgres catalog + 2 shards`,
    `start-up: ${o.via === 'restore' ? `the restoreTracking workflow over ${r.n} catalog rows${o.synced ? " saved as synced before (`--synced`: each one's last sync at a random moment of its interval, so restored runs resume their schedules)" : ''}, ${o.concurrency} starts at a time${o.window > 0 ? `, at most ${o.window} waiting for their first sync` : ' (its default window)'}` : `${r.n} startTracking calls with concurrency ${o.concurrency}${o.window > 0 ? `, at most ${o.window} started and not yet synced` : ''}`} (${r.started < r.n ? `${r.started} of ${r.n} started before the deadline` : `all started after ${fmt(r.startedSeconds, 0)} s`}), until every community had its first sync (${Number.isFinite(r.startupSeconds) ? `${fmt(r.startupSeconds, 0)} s` : `not done within ${o.startupTimeout} s: ${r.firstSynced} of ${r.n}`}); CPU % over start-up: ${PROCS.map((p) => `${p} ${fmt(r.startupCpu[p] ?? Number.NaN, 0)}`).join(', ')}; the whole machine ${fmt(r.startupMachineCpu, 0)} (window: ${fmt(r.machineCpu, 0)}; the difference to the sum of the columns is anything else running)`,
    `window of ${fmt(r.windowSeconds, 0)} s ${o.windowFrom > 0 ? `from ${o.windowFrom} s after the first start or right after start-up, whichever came later` : 'right after start-up'}: syncs/s by class ${per}. Long-run = Σ 1/interval over the catalog at the end; quiet and hourly communities synced during start-up are next due up to an hour later, so a window shortly after start-up sees mostly the busy ones`,
    `lag = sync start (first newest-posts request the fake saw) − the due time the catalog recorded with the previous sync (next_sync_at, polled every 5 s; ${r.lagUnmatched} syncs without a recorded due time left out); a community due > 2 s before the end of the window and not started counts with its lag so far ("overdue"). The worker's own histogram (lemmy_fetcher_sync_schedule_lag_seconds): ${fmt(100 * r.workerWithin5s, 1)} % of the window's scheduled syncs started within 5 s`,
    `sticky cache (Temporal SDK metrics) over the window: ${fmt(r.sticky.hits)} hits, ${fmt(r.sticky.misses)} misses, ${fmt(r.sticky.evictions)} forced evictions; size ${fmt(r.sticky.size)} at the end; of which the quiet runs' queue: ${fmt(r.quietSticky.hits)} hits, ${fmt(r.quietSticky.misses)} misses, ${fmt(r.quietSticky.evictions)} forced evictions, size ${fmt(r.quietSticky.size)}`,
    'CPU % is of one core (200 % = both cores), averaged over the window; postgres = the three servers with their backends (memory: their PSS, sampled with the progress lines, so shared buffers count once). RSS max "run" = peak from the worker\'s start to the end of the window, "window" = peak in the window; PSS end = the dev server\'s proportional set size at the end. CPU ms/sync = the CPU of every process on the box over the window ÷ syncs',
    ...profileLines,
    `targets (issue 13): worker RSS ≤ 2 GB ${ok(r.rssRun.worker <= targets.rss)}, Temporal server RSS ≤ 2 GB ${ok(r.rssRun.temporal <= targets.rss)}, p99 lag < 5 s ${ok(r.lagP99 < targets.lagP99)}, start-up in minutes: ${Number.isFinite(r.startupSeconds) ? `${fmt(r.startupSeconds / 60, 1)} min` : 'not done'}`,
  ];
  process.stdout.write(`\n${md}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
  if (!hasFlag(argv, 'no-append')) {
    appendResults('Fleet (`npm run bench -- fleet`)', md, { command: `npm run bench -- fleet ${argv.join(' ')}`.trim(), notes });
  }
}
