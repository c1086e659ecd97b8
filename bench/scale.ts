// `npm run bench -- scale [--n 500,2000] [--interval 60] [--warmup 70] [--duration 120]
//   [--per-instance 50] [--rps 1000] [--cache <WORKER_MAX_CACHED_WORKFLOWS default>]
//   [--compare eager|gogc|gomaxprocs | --before <git rev> [--before-as-shipped]] [--profile] [--no-append]
//   [--temporal-server dev|postgres|dev,postgres] [--temporal-shards 4] [--try '<dynamic config JSON>']
//   [--try-no-vm-timeout] [--try-worker 'WORKER_X=1,WORKER_Y=2;WORKER_X=3']
//   [--try-go 'GOMAXPROCS=1;GOGC=200'] [--try-node '--single-threaded-gc;--max-semi-space-size=32'] [--try-together]
//   [--quiet-runs <from seconds>:<syncs>] [--first-sync-timeout 900]`
// The warm-up starts once every community has synced once (at most --first-sync-timeout seconds
// after the first start); a community that never synced counts as overdue, not left out.
// `--quiet-runs`: the workflows are started with QUIET_RUN_FROM_SECONDS / QUIET_RUN_SYNCS (e.g.
// `60:4` with `--interval 60` and a small `--cache`: every sync of an evicted workflow, as the
// hourly communities of a large fleet; an earlier revision's worker ignores them).
// `--compare <lever>` runs each N twice, the lever off ("before") and as shipped ("after"), so that
// one run of the bench shows what it buys (levers: LEVERS below); `--before <rev>` runs each N with
// that revision's worker (a git worktree) and every lever off (`--before-as-shipped`: the dev
// server as shipped), then as shipped. `--temporal-server postgres` runs each of these against the
// real Temporal server with Postgres persistence instead of the dev server (`dev,postgres`: both,
// one after the other; `--temporal-shards`: its numHistoryShards), see support/temporal-server.ts.
// Tracks N communities on fake Lemmy instances (50 per instance, distinct loopback ports), one
// worker as a child process, a file-backed Temporal dev server and embedded Postgres (one catalog,
// two shards). After the load and a warm-up it measures for `duration` seconds: syncs/s, scheduling
// lag, CPU/RSS per process and history events per sync. Each N runs in a fresh environment.
import type { CommunityStatus } from '../workflows/trackCommunity.js';
import { loadConfig } from '../src/config.js';
import { syncedCommunityCount } from '../src/db/communities.js';
import { DEV_SERVER_DYNAMIC_CONFIG, DEV_SERVER_GO_RUNTIME, type GoRuntime } from '../src/temporal/devserver.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { SYNCS_PER_RUN, workflowIdOf } from '../workflows/trackCommunity.js';
import { liveStatus, startTracking } from '../src/tracking.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { quickSyncOf } from '../test/support/history.js';
import { checkoutOf, flag, hasFlag, startBenchEnv, TEMPORAL_SERVER_KINDS, type TemporalServerKind } from './support/env.js';
import { threadProfileNotes } from './support/profile.js';
import { ProcMonitor, treeCpuSeconds, treeRssBytes } from './support/proc.js';
import { appendResults } from './support/results.js';
import { fmt, mapLimit, mb, percentile, table } from './support/stats.js';
import { ensureTemporalServer, PostgresTemporalServer, treePssBytes } from './support/temporal-server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The worker's flags for `--try-no-vm-timeout`: plain CommonJS, so that it also loads in the workflow thread. */
const NO_VM_TIMEOUT = ['--require', fileURLToPath(new URL('./support/no-vm-timeout.cjs', import.meta.url))];

/** What turns a lever off: the dev server's dynamic config, or its Go runtime settings. */
interface LeverOff {
  temporal?: Record<string, unknown>;
  goRuntime?: Partial<GoRuntime>;
}

/** Levers that can be measured off against the shipped defaults. */
const LEVERS: Record<string, LeverOff> = {
  eager: { temporal: { 'system.enableActivityEagerExecution': false } },
  // The dev server's collector (the real server of --temporal-server postgres keeps Go's defaults, as in docker-compose.yml).
  gogc: { goRuntime: { GOGC: '100', GOMEMLIMIT: 'off' } },
  // The dev server on half the cores (as shipped) against Go's default of one thread per core.
  gomaxprocs: { goRuntime: { GOMAXPROCS: String(os.availableParallelism()) } },
};

/** Every lever off at once (the dev server of `--before`). */
const allLeversOff = (): LeverOff => ({
  temporal: Object.assign({}, ...Object.values(LEVERS).map((l) => l.temporal ?? {})) as Record<string, unknown>,
  goRuntime: Object.assign({}, ...Object.values(LEVERS).map((l) => l.goRuntime ?? {})) as Partial<GoRuntime>,
});

/** One configuration measured: the shipped one, one lever off, or an earlier revision's worker. */
interface Variant {
  name: string;
  /** Dev server dynamic config over the shipped one. */
  temporal?: Record<string, unknown>;
  /** Dev server Go runtime settings over the shipped ones. */
  goRuntime?: Partial<GoRuntime>;
  /** Checkout to run the worker from (an earlier revision). */
  root?: string;
  /** Profile the worker (`--cpu-prof`) into this directory; the window starts this long after its spawn. */
  profileDir?: string;
  profileFromMs?: number;
  /** Node flags for the worker (before its `--import tsx`). */
  workerFlags?: string[];
  /** The worker's environment over the bench's (its settings: `--try-worker`). */
  workerEnv?: Record<string, string>;
  /** Which Temporal server (default the dev server); `temporalShards`: numHistoryShards of the real one. */
  server?: TemporalServerKind;
  temporalShards?: number;
}

/** How a variant's name says which Temporal server it ran against. */
const SERVER_LABELS: Record<TemporalServerKind, string> = { dev: 'dev server', postgres: 'temporal server + postgres' };

export interface ScaleResult {
  /** 'as shipped', or which lever was turned off. */
  variant: string;
  n: number;
  instances: number;
  interval: number;
  loadSeconds: number;
  /** From the first start until every community had synced once (or the timeout). */
  firstSyncSeconds: number;
  /** Communities without a single sync by the window's end (counted as overdue too). */
  neverSynced: number;
  windowSeconds: number;
  syncsPerSecond: number;
  expectedPerSecond: number;
  lagP50: number;
  lagP99: number;
  lagMax: number;
  overdue: number;
  cpu: Record<string, number>;
  rss: Record<string, number>;
  eventsPerSync: number;
  historyLagP50: number;
  historyLagP99: number;
  historyLagN: number;
  /**
   * The real server's own Postgres (postmaster + backends), already counted in cpu.temporal and
   * rss.temporal: rss is its PSS (shared buffers once), rssSum the sum of RSS as for `postgres`.
   */
  temporalPostgres?: { cpu: number; rss: number; rssSum: number };
}

/** A protobuf Timestamp or Duration in ms. */
function ms(t: { seconds?: unknown; nanos?: number | null } | null | undefined): number {
  if (!t) return 0;
  return Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6;
}

/** `K=V,K=V` (a group of `--try-worker` or `--try-go`) → { K: V, … }. */
function settingsOf(group: string): Record<string, string> {
  return Object.fromEntries(group.split(',').map((kv) => kv.split('=').map((x) => x.trim()) as [string, string]));
}

/** `--quiet-runs 60:4` → the config that starts workflows with those quiet runs. */
function quietRunsEnv(spec: string): Record<string, string> {
  if (!spec) return {};
  const [from, syncs] = spec.split(':');
  return { QUIET_RUN_FROM_SECONDS: from, QUIET_RUN_SYNCS: syncs };
}

async function runOne(
  n: number,
  o: {
    interval: number;
    warmup: number;
    duration: number;
    perInstance: number;
    rps: number;
    cache: number;
    quietRuns: string;
    firstSyncTimeout: number;
  },
  variant: Variant = { name: 'as shipped' },
): Promise<ScaleResult> {
  const log = (m: string) => process.stderr.write(`[scale n=${n}, ${variant.name}] ${m}\n`);
  const be = await startBenchEnv({
    env: {
      INSTANCE_REQUESTS_PER_SECOND: String(o.rps),
      WORKER_MAX_CACHED_WORKFLOWS: String(o.cache),
      ...quietRunsEnv(o.quietRuns),
    },
    ...(variant.temporal ? { temporalDynamicConfig: variant.temporal } : {}),
    ...(variant.goRuntime ? { temporalGoRuntime: variant.goRuntime } : {}),
    ...(variant.server ? { temporalServer: variant.server } : {}),
    ...(variant.temporalShards ? { temporalHistoryShards: variant.temporalShards } : {}),
  });
  try {
    const instances = Math.ceil(n / o.perInstance);
    const fakes = await be.startFakes(instances);
    const spawnedAt = Date.now();
    const worker = await be.startWorker(variant.workerEnv ?? {}, {
      root: variant.root,
      nodeFlags: [...(variant.workerFlags ?? []), ...(variant.profileDir ? ['--cpu-prof', '--cpu-prof-dir', variant.profileDir] : [])],
    });
    const pgPids = be.nodes.map((x) => x.pid!).filter(Boolean);
    // The real server's Postgres counts as part of Temporal, as the dev server's SQLite does.
    const temporalPgPid = be.temporal instanceof PostgresTemporalServer ? be.temporal.postgresPid : undefined;
    const monitor = new ProcMonitor({ worker: worker.pid, temporal: be.temporal.pid, 'bench (fakes, client)': process.pid }, 1000).start();
    const deps = { config: be.config, catalog: be.storage.catalog, router: be.storage.router, temporal: be.client };
    const items = Array.from({ length: n }, (_, i) => {
      const fake = fakes[i % instances];
      const name = `c${i}`;
      fake.addCommunity(name);
      fake.addPosts(name, 5);
      return { fake, name, ...normalizeInstance(fake.url) };
    });
    const loadStart = Date.now();
    let started = 0;
    await mapLimit(items, 50, async (it) => {
      await startTracking(deps, { instance: it.instance, host: it.host, name: it.name, refreshSeconds: o.interval });
      if (++started % 500 === 0) log(`${started} started`);
    });
    const loadSeconds = (Date.now() - loadStart) / 1000;
    log(`${n} workflows started in ${loadSeconds.toFixed(1)} s; waiting for every first sync`);
    // Steady state starts once every community has synced once: started faster than the dev
    // server hands out their first workflow tasks, some wait in its task queue's backlog for
    // minutes, and a window measured meanwhile would not see them (they have no sync to lag).
    let firstSynced = 0;
    for (let lastLog = Date.now(); ; await sleep(1000)) {
      firstSynced = await syncedCommunityCount(be.storage.catalog);
      if (firstSynced >= n || Date.now() - loadStart > o.firstSyncTimeout * 1000) break;
      if (Date.now() - lastLog >= 10_000) {
        lastLog = Date.now();
        log(`${firstSynced} of ${n} synced once`);
      }
    }
    const firstSyncSeconds = (Date.now() - loadStart) / 1000;
    log(
      firstSynced >= n
        ? `every first sync done ${firstSyncSeconds.toFixed(1)} s after the first start; warming up ${o.warmup} s`
        : `${firstSynced} of ${n} synced once after ${o.firstSyncTimeout} s (--first-sync-timeout); warming up ${o.warmup} s anyway`,
    );

    // New posts keep appearing: on average one per community per interval.
    let publishing = true;
    const publisher = (async () => {
      let carry = 0;
      while (publishing) {
        carry += n / o.interval;
        for (; carry >= 1; carry--) {
          const it = items[Math.floor(Math.random() * n)];
          it.fake.addPosts(it.name, 1);
        }
        await sleep(1000);
      }
    })();

    await sleep(o.warmup * 1000);
    const windowStart = Date.now();
    if (variant.profileDir) variant.profileFromMs = windowStart - spawnedAt;
    monitor.markCpu();
    const pgCpu0 = treeCpuSeconds(pgPids);
    const temporalPgCpu0 = temporalPgPid ? treeCpuSeconds([temporalPgPid]) : 0;
    log(`measuring for ${o.duration} s`);
    await sleep(o.duration * 1000);
    const windowEnd = Date.now();
    const cpu = monitor.cpuPercent();
    cpu.postgres = (100 * (treeCpuSeconds(pgPids) - pgCpu0)) / ((windowEnd - windowStart) / 1000);
    const rss: Record<string, number> = {
      worker: monitor.peakRss('worker'),
      temporal: monitor.peakRss('temporal'),
      'bench (fakes, client)': monitor.peakRss('bench (fakes, client)'),
      postgres: treeRssBytes(pgPids),
    };
    let temporalPostgres: ScaleResult['temporalPostgres'];
    if (temporalPgPid) {
      temporalPostgres = {
        cpu: (100 * (treeCpuSeconds([temporalPgPid]) - temporalPgCpu0)) / ((windowEnd - windowStart) / 1000),
        rss: treePssBytes([temporalPgPid]),
        rssSum: treeRssBytes([temporalPgPid]),
      };
      cpu.temporal = (cpu.temporal ?? Number.NaN) + temporalPostgres.cpu;
      rss.temporal += temporalPostgres.rss;
    }
    publishing = false;
    await publisher;

    // Sync starts are the first newest-posts page each sync asks for (metadata only when stale).
    const lags: number[] = [];
    let syncs = 0;
    let overdue = 0;
    const intervalMs = o.interval * 1000;
    const startsByFake = new Map<(typeof fakes)[number], Map<string, number[]>>();
    for (const fake of fakes) {
      const byCommunity = new Map<string, number[]>();
      for (const r of fake.requests) {
        if (!r.path.endsWith('/post/list') || r.query.page !== '1' || !r.community) continue;
        let list = byCommunity.get(r.community);
        if (!list) byCommunity.set(r.community, (list = []));
        list.push(r.at);
      }
      startsByFake.set(fake, byCommunity);
    }
    let neverSynced = 0;
    for (const it of items) {
      const times = startsByFake.get(it.fake)?.get(it.name);
      // Never synced at all: overdue since the window began (at least), not left out.
      if (!times) {
        neverSynced++;
        overdue++;
        lags.push(windowEnd - windowStart);
        continue;
      }
      times.sort((a, b) => a - b);
      for (let k = 1; k < times.length; k++) {
        if (times[k] < windowStart || times[k] >= windowEnd) continue;
        syncs++;
        lags.push(times[k] - (times[k - 1] + intervalMs));
      }
      const last = times[times.length - 1];
      // Due inside the window but not started by its end: count its lag so far, not hide it.
      if (last + intervalMs + 2000 < windowEnd) {
        overdue++;
        lags.push(windowEnd - (last + intervalMs));
      }
    }

    // History events per sync, and the exact lag from history (timer due → sync started) on a sample.
    const sample = items.filter((_, i) => i % Math.max(1, Math.floor(n / 20)) === 0).slice(0, 20);
    let events = 0;
    let sampleSyncs = 0;
    const historyLags: number[] = [];
    for (const it of sample) {
      const ref = `${it.name}@${it.host}`;
      const history = await be.client.workflow.getHandle(workflowIdOf(ref)).fetchHistory();
      const live = await liveStatus(deps, ref, 5000);
      const status: CommunityStatus | undefined = typeof live === 'object' ? live : undefined;
      if (!status) continue;
      // Every run of the chain (runs roll over): the syncs the status counts were made in all of
      // them. The current run's history is the one above; the earlier ones are closed.
      events += history.events?.length ?? 0;
      const earlier = `WorkflowId = '${workflowIdOf(ref)}' AND ExecutionStatus != 'Running'`;
      for await (const run of be.client.workflow.list({ query: earlier })) {
        events += (await be.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory()).events?.length ?? 0;
      }
      sampleSyncs += status.syncs;
      // A regular sync starts at its ActivityTaskStarted; a quick one (a local activity) at the
      // start of the workflow task that ran it, the one its marker completes.
      let due: number | undefined;
      let taskStartedAt: number | undefined;
      for (const e of history.events ?? []) {
        const type = String(e.eventType);
        const at = ms(e.eventTime);
        const lagFrom = (startedAt: number | undefined) => {
          if (due === undefined || startedAt === undefined) return;
          if (startedAt >= windowStart && startedAt < windowEnd) historyLags.push(startedAt - due);
          due = undefined;
        };
        if (type === '17' || type === 'EVENT_TYPE_TIMER_STARTED') {
          due = at + ms(e.timerStartedEventAttributes?.startToFireTimeout);
        } else if (type === '6' || type === 'EVENT_TYPE_WORKFLOW_TASK_STARTED') {
          taskStartedAt = at;
        } else if (type === '11' || type === 'EVENT_TYPE_ACTIVITY_TASK_STARTED') {
          lagFrom(at);
        } else if (quickSyncOf(e.markerRecordedEventAttributes)) {
          lagFrom(taskStartedAt);
        }
      }
    }
    monitor.stop();
    const windowSeconds = (windowEnd - windowStart) / 1000;
    return {
      variant: variant.name,
      n,
      instances,
      interval: o.interval,
      loadSeconds,
      firstSyncSeconds,
      neverSynced,
      windowSeconds,
      syncsPerSecond: syncs / windowSeconds,
      expectedPerSecond: n / o.interval,
      lagP50: percentile(lags, 50) / 1000,
      lagP99: percentile(lags, 99) / 1000,
      lagMax: (lags.length ? Math.max(...lags) : Number.NaN) / 1000,
      overdue,
      cpu,
      rss,
      eventsPerSync: sampleSyncs ? events / sampleSyncs : Number.NaN,
      historyLagP50: percentile(historyLags, 50) / 1000,
      historyLagP99: percentile(historyLags, 99) / 1000,
      historyLagN: historyLags.length,
      ...(temporalPostgres ? { temporalPostgres } : {}),
    };
  } finally {
    await be.close();
  }
}

export async function run(argv: string[]): Promise<void> {
  const ns = flag(argv, 'n', '500').split(',').map(Number);
  const interval = flag(argv, 'interval', 60);
  const o = {
    interval,
    warmup: flag(argv, 'warmup', interval + 10),
    duration: flag(argv, 'duration', 120),
    perInstance: flag(argv, 'per-instance', 50),
    rps: flag(argv, 'rps', 1000),
    cache: flag(argv, 'cache', loadConfig({}).WORKER_MAX_CACHED_WORKFLOWS),
    quietRuns: flag(argv, 'quiet-runs', ''),
    firstSyncTimeout: flag(argv, 'first-sync-timeout', 900),
  };
  // Checked before a long run starts.
  if (o.quietRuns) loadConfig(quietRunsEnv(o.quietRuns));
  const lever = flag(argv, 'compare', '');
  if (lever && !LEVERS[lever]) throw new Error(`--compare: no lever ${lever} (${Object.keys(LEVERS).join(', ')})`);
  const servers = flag(argv, 'temporal-server', 'dev').split(',') as TemporalServerKind[];
  for (const s of servers) {
    if (!TEMPORAL_SERVER_KINDS.includes(s)) throw new Error(`--temporal-server: no server ${s} (${TEMPORAL_SERVER_KINDS.join(', ')})`);
  }
  const temporalShards = flag(argv, 'temporal-shards', 4);
  // Built (or found) before the first run, so that a build failure does not come after a long run.
  const serverBinaries = servers.includes('postgres')
    ? await ensureTemporalServer((l) => process.stderr.write(`[temporal-server] ${l}\n`))
    : undefined;
  // --before <rev>: that revision's worker, with every lever of LEVERS off on the dev server
  // (with --before-as-shipped: the dev server as shipped, for a revision that had them already).
  const beforeRev = flag(argv, 'before', '');
  const checkout = beforeRev ? checkoutOf(beforeRev) : undefined;
  const baseVariants: Variant[] = checkout
    ? [
        {
          name: `${checkout.commit} (before)`,
          root: checkout.root,
          ...(hasFlag(argv, 'before-as-shipped') ? {} : allLeversOff()),
        },
        { name: 'as shipped (after)' },
      ]
    : lever
      ? [{ name: `${lever} off (before)`, ...LEVERS[lever] }, { name: 'as shipped (after)' }]
      : [{ name: 'as shipped' }];
  // --try '<json>': one more variant, as shipped with this dynamic config on top, to weigh a server
  // setting in the same run before shipping it.
  const trial = flag(argv, 'try', '');
  if (trial) baseVariants.push({ name: `as shipped + ${trial}`, temporal: JSON.parse(trial) as Record<string, unknown> });
  // --try-no-vm-timeout: one more variant, as shipped but without the SDK's guard against workflow
  // code that never yields (support/no-vm-timeout.cjs), to weigh what that guard costs.
  if (hasFlag(argv, 'try-no-vm-timeout'))
    baseVariants.push({ name: 'as shipped, no workflow vm timeout (not shipped)', workerFlags: NO_VM_TIMEOUT });
  // --try-worker 'K=V,K=V;K=V': one more variant per `;`-separated group, as shipped with these
  // worker settings (e.g. WORKER_MAX_CONCURRENT_WORKFLOW_TASKS, WORKER_WORKFLOW_TASK_POLLS).
  for (const group of flag(argv, 'try-worker', '').split(';').filter(Boolean)) {
    const workerEnv = settingsOf(group);
    loadConfig(workerEnv); // checked before a long run starts
    baseVariants.push({ name: `as shipped + ${group.replaceAll(',', ' ')}`, workerEnv });
  }
  // --try-go 'K=V,K=V;K=V': one more variant per group, as shipped with these Go runtime settings
  // for the dev server (GOGC, GOMEMLIMIT, GOMAXPROCS).
  const goTrials: Variant[] = [];
  for (const group of flag(argv, 'try-go', '').split(';').filter(Boolean)) {
    const goRuntime = settingsOf(group);
    for (const k of Object.keys(goRuntime))
      if (!['GOGC', 'GOMEMLIMIT', 'GOMAXPROCS'].includes(k)) throw new Error(`--try-go: ${k} is not a Go runtime setting here`);
    goTrials.push({ name: `as shipped + dev server ${group.replaceAll(',', ' ')}`, goRuntime });
  }
  // --try-node '--flag --flag;--flag': one more variant per group, as shipped with these Node flags for the worker.
  const nodeTrials: Variant[] = flag(argv, 'try-node', '')
    .split(';')
    .filter(Boolean)
    .map((group) => ({ name: `as shipped + worker ${group}`, workerFlags: group.split(/\s+/).filter(Boolean) }));
  baseVariants.push(...goTrials, ...nodeTrials);
  // --try-together: one more variant with the first --try-go group and the first --try-node group at once.
  if (hasFlag(argv, 'try-together')) {
    const [go, node] = [goTrials[0], nodeTrials[0]];
    if (!go || !node) throw new Error('--try-together needs --try-go and --try-node');
    baseVariants.push({
      name: `${go.name} + ${node.name.replace('as shipped + ', '')}`,
      goRuntime: go.goRuntime,
      workerFlags: node.workerFlags,
    });
  }
  // Each variant against each server; the name says which server unless it is the dev server alone.
  const variants: Variant[] =
    servers.length === 1 && servers[0] === 'dev'
      ? baseVariants
      : baseVariants.flatMap((v) =>
          servers.map((server) => ({
            ...v,
            name: `${v.name}, ${SERVER_LABELS[server]}`,
            server,
            ...(server === 'postgres' ? { temporalShards } : {}),
          })),
        );
  // --profile: the worker of the last variant (as shipped) under `node --cpu-prof`, summarised over the window.
  const profileDir = hasFlag(argv, 'profile') ? mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-prof-')) : undefined;
  if (profileDir) variants[variants.length - 1].profileDir = profileDir;
  const notes: string[] = [];
  const results: ScaleResult[] = [];
  try {
    for (const n of ns) {
      for (const variant of variants) {
        const r = await runOne(n, o, variant);
        results.push(r);
        process.stdout.write(`${JSON.stringify(r)}\n`);
      }
    }
    const profiled = variants[variants.length - 1];
    if (profileDir)
      notes.push(
        ...threadProfileNotes(
          profileDir,
          { fromMs: profiled.profileFromMs ?? 0 },
          (thread) => `the worker (${profiled.name}, N = ${ns[ns.length - 1]}), ${thread}, over the measured window`,
        ),
      );
    for (const line of notes) process.stdout.write(`${line}\n`);
  } finally {
    checkout?.remove();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  }
  const procs = ['worker', 'temporal', 'postgres', 'bench (fakes, client)'];
  const md = table(
    [
      'variant',
      'N',
      'instances',
      'interval s',
      'load s (every first sync)',
      'syncs/s (expected)',
      'lag p50 s',
      'lag p99 s',
      'lag max s',
      'overdue (never synced)',
      'history lag p50/p99 s (n)',
      ...procs.map((p) => `CPU % ${p}`),
      ...procs.map((p) => `RSS ${p}`),
      'events/sync',
      'CPU ms/sync (machine)',
    ],
    results.map((r) => [
      r.variant,
      r.n,
      r.instances,
      r.interval,
      `${fmt(r.loadSeconds, 1)} (${fmt(r.firstSyncSeconds, 0)})`,
      `${fmt(r.syncsPerSecond, 2)} (${fmt(r.expectedPerSecond, 2)})`,
      fmt(r.lagP50, 2),
      fmt(r.lagP99, 2),
      fmt(r.lagMax, 2),
      `${r.overdue} (${r.neverSynced})`,
      `${fmt(r.historyLagP50, 2)} / ${fmt(r.historyLagP99, 2)} (${r.historyLagN})`,
      ...procs.map((p) =>
        p === 'temporal' && r.temporalPostgres
          ? `${fmt(r.cpu[p] ?? Number.NaN, 0)} (pg ${fmt(r.temporalPostgres.cpu, 0)})`
          : fmt(r.cpu[p] ?? Number.NaN, 0),
      ),
      ...procs.map((p) =>
        p === 'temporal' && r.temporalPostgres ? `${mb(r.rss[p] ?? 0)} (pg ${mb(r.temporalPostgres.rss)})` : mb(r.rss[p] ?? 0),
      ),
      fmt(r.eventsPerSync, 1),
      // Every process on the box (the bench's fakes and client included), per sync measured.
      fmt((Object.values(r.cpu).reduce((a, b) => a + b, 0) * 10) / r.syncsPerSecond, 1),
    ]),
  );
  process.stdout.write(`\n${md}\n`);
  if (!hasFlag(argv, 'no-append')) {
    appendResults('Scale (`npm run bench -- scale`)', md, {
      command: `npm run bench -- scale ${argv.join(' ')}`.trim(),
      notes: [
        `one worker (child process, defaults: WORKER_MAX_CACHED_WORKFLOWS=${o.cache}, 50 concurrent activities, DB_POOL_MAX=10), ${serverBinaries ? 'the file-backed Temporal dev server or the Temporal server with Postgres (see below)' : 'file-backed Temporal dev server'}, embedded Postgres (catalog + 2 shard nodes, default durability), all on this machine`,
        `${o.perInstance} communities per fake Lemmy instance (distinct ports on 127.0.0.1, served by the bench process); INSTANCE_REQUESTS_PER_SECOND raised to ${o.rps} so the per-instance politeness budget is not the limit; ~1 new post per community per interval`,
        `Temporal dev server dynamic config as shipped: ${JSON.stringify(DEV_SERVER_DYNAMIC_CONFIG)}, its Go runtime ${JSON.stringify(DEV_SERVER_GO_RUNTIME)}; a "… off (before)" row turns that lever off (\`--compare\`); CPU ms/sync = the CPU of every process on the box over the window ÷ syncs`,
        `warm-up ${o.warmup} s after all workflows were started (with concurrency 50), then measured ${o.duration} s`,
        ...(o.quietRuns
          ? [
              `workflows started with QUIET_RUN_FROM_SECONDS:QUIET_RUN_SYNCS = ${o.quietRuns}: runs roll over after that many syncs at that interval or longer (a revision before quiet runs ignores it: ${SYNCS_PER_RUN} syncs per run)`,
            ]
          : []),
        'lag = sync start (the first newest-posts request of a sync seen by the fake) − (previous sync start + interval); the true due time is previous sync *end* + interval, so this overstates lag by one sync duration (a few ms here). Communities due but not started by the end of the window count with their lag so far ("overdue"), and so do those that never synced at all (in parentheses; lag: the whole window). "load s" = starting every workflow, then (in parentheses) until every community had synced once; the warm-up begins after that.',
        'history lag = sync start − (TimerStarted + timer duration) from the workflow histories of the 20 sampled workflows (sync start: ActivityTaskStarted of a regular sync; the WorkflowTaskStarted of the task that ran a quick one): the exact scheduling lag, on a sample.',
        'CPU % is of one core (200 % = both cores of a 2-CPU box), averaged over the window; postgres = all three servers with their backends; RSS is the peak (postgres: at the end). events/sync = history events of every run / syncs on a sample of 20 workflows.',
        ...(serverBinaries
          ? [
              `"temporal server + postgres" rows: go.temporal.io/server ${serverBinaries.version} (the version the Temporal CLI embeds, built with the CLI's dependency versions by \`npm run temporal-server\`), all four services in one process, PostgreSQL persistence and SQL visibility (postgres12 plugin; maxConns 20 default store, 10 visibility, as the official image) on an embedded Postgres node of its own (default durability, max_connections 300), numHistoryShards ${temporalShards}, the same dynamic config as the dev server and otherwise the server's defaults (the dev server adds its own: 1 history shard, host-level history cache 8,096, persistence QPS 10,000/45,000, search-attribute cache refresh on read); its CPU % temporal and RSS temporal include that Postgres (postmaster + backends; its share in parentheses; its memory is its PSS at the end, shared buffers counted once, where the postgres column sums RSS)`,
            ]
          : []),
        ...notes,
      ],
    });
  }
}
