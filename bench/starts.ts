// `npm run bench -- starts [--n 1500] [--rounds 2] [--concurrency 50] [--window 400] [--per-instance 50] [--workflow-slots 40] [--no-append]`
// What Temporal's eager workflow start would save when many communities are tracked at once (the
// start-up of a fleet). Eager start hands a new workflow's first task back in the answer to its
// start, to a worker in the starting process, instead of through the task queue; the dev server
// runs with `system.enableEagerWorkflowStart`. The worker runs in this process on its own
// NativeConnection, and rounds of `--n` new communities alternate between a client on another
// connection (the API's way: `startTracking` over gRPC) and a client on the worker's connection
// asking for eager start. Each round counts from its first start to its last first sync, with at
// most `--window` started and not yet synced (as the fleet bench), and reports CPU per new
// community by process. A fixed hourly interval keeps earlier rounds from syncing again during later ones.
import { Client, type WorkflowClientInterceptor } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { syncedCommunityCount } from '../src/db/communities.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { startTracking, type TrackingDeps } from '../src/tracking.js';
import { installTemporalRuntime, startWorker } from '../src/worker-runtime.js';
import { flag, hasFlag, startBenchEnv } from './support/env.js';
import { processCpuMsSince, sampleProc, treeCpuSeconds } from './support/proc.js';
import { appendResults } from './support/results.js';
import { fmt, mapLimit, table } from './support/stats.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`[starts] ${line}\n`);

interface Round {
  variant: 'over gRPC (the API’s way)' | 'eager, on the worker’s connection (restoreTracking’s way)';
  n: number;
  eagerly: number;
  seconds: number;
  temporal: number;
  bench: number;
  postgres: number;
}

export async function run(argv: string[]): Promise<void> {
  const n = flag(argv, 'n', 1500);
  const rounds = flag(argv, 'rounds', 2);
  const concurrency = flag(argv, 'concurrency', 50);
  const window = flag(argv, 'window', 400);
  const perInstance = flag(argv, 'per-instance', 50);
  // An eager start needs a free workflow task slot at the time of the start (else it goes the usual way).
  const slots = flag(argv, 'workflow-slots', 0);
  const be = await startBenchEnv({
    temporalDynamicConfig: { 'system.enableEagerWorkflowStart': true },
    env: { INSTANCE_REQUESTS_PER_SECOND: '1000', ...(slots ? { WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: String(slots) } : {}) },
  });
  let connection: NativeConnection | undefined;
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  try {
    installTemporalRuntime(be.log);
    connection = await NativeConnection.connect({ address: be.temporal.address });
    worker = await startWorker({
      config: be.config,
      catalog: be.storage.catalog,
      router: be.storage.router,
      address: be.temporal.address,
      log: be.log,
      connection,
    });
    let eagerly = 0;
    // The eager rounds ask through TrackingDeps.eagerStart, as restoreTracking does; this only counts the answers.
    const countEager: WorkflowClientInterceptor = {
      async startWithDetails(input, next) {
        const out = await next(input);
        if (out.eagerlyStarted) eagerly++;
        return out;
      },
    };
    const eagerClient = new Client({ connection, namespace: be.config.TEMPORAL_NAMESPACE, interceptors: { workflow: [countEager] } });
    const fakes = await be.startFakes(Math.ceil((2 * rounds * n + 300) / perInstance));
    const pgPids = be.nodes.map((x) => x.pid!).filter(Boolean);
    const temporalPid = be.temporal.pid!;
    const cpuOfTemporal = () => {
      const s = sampleProc(temporalPid);
      return s ? s.cpuSeconds * 1000 : Number.NaN;
    };

    const results: Round[] = [];
    let next = 0;
    // Round 0 warms up the worker in this process (bundle, JIT, connections) and is not reported.
    for (let r = -1; r < 2 * rounds; r++) {
      const eager = r >= 0 && r % 2 === 1;
      const deps: TrackingDeps = {
        config: be.config,
        catalog: be.storage.catalog,
        router: be.storage.router,
        temporal: eager ? eagerClient : be.client,
        eagerStart: eager,
      };
      const size = r < 0 ? Math.min(n, 300) : n;
      const sources = Array.from({ length: size }, () => {
        const i = next++;
        const fake = fakes[Math.floor(i / perInstance)];
        const name = `c${i}`;
        fake.addCommunity(name);
        fake.addPosts(name, 3);
        return { name, ...normalizeInstance(fake.url) };
      });
      const synced0 = await syncedCommunityCount(be.storage.catalog);
      let started = 0;
      let synced = 0;
      const count = async () => {
        synced = (await syncedCommunityCount(be.storage.catalog)) - synced0;
      };
      eagerly = 0;
      const t0 = Date.now();
      const temporal0 = cpuOfTemporal();
      const pg0 = treeCpuSeconds(pgPids);
      const bench0 = process.cpuUsage();
      let counting: Promise<void> | undefined;
      await mapLimit(sources, concurrency, async (s) => {
        while (started - synced >= window) {
          await (counting ??= count()
            .then(async () => {
              await sleep(200);
            })
            .finally(() => (counting = undefined)));
        }
        started++;
        await startTracking(deps, { instance: s.instance, host: s.host, name: s.name, refreshSeconds: 3600 });
      });
      while (synced < size) {
        if (Date.now() - t0 > 600_000) throw new Error(`round ${r + 1}: ${synced} of ${size} first syncs after 600 s`);
        await sleep(200);
        await count();
      }
      if (r < 0) continue;
      const round: Round = {
        variant: eager ? 'eager, on the worker’s connection (restoreTracking’s way)' : 'over gRPC (the API’s way)',
        n,
        eagerly,
        seconds: (Date.now() - t0) / 1000,
        temporal: (cpuOfTemporal() - temporal0) / n,
        bench: processCpuMsSince(bench0) / n,
        postgres: ((treeCpuSeconds(pgPids) - pg0) * 1000) / n,
      };
      results.push(round);
      log(
        `round ${r + 1}: ${round.variant}: ${n} first syncs in ${fmt(round.seconds, 1)} s, ${eagerly} started eagerly; ` +
          `CPU-ms per new community: temporal ${fmt(round.temporal, 1)}, worker + bench ${fmt(round.bench, 1)}, postgres ${fmt(round.postgres, 1)}`,
      );
    }

    const md = table(
      [
        'variant',
        'new communities',
        'started eagerly',
        'first syncs/s',
        'CPU-ms per new community: temporal',
        'worker, fakes, client',
        'postgres',
        'all',
      ],
      results.map((x) => [
        x.variant,
        x.n,
        x.eagerly,
        fmt(x.n / x.seconds, 1),
        fmt(x.temporal, 1),
        fmt(x.bench, 1),
        fmt(x.postgres, 1),
        fmt(x.temporal + x.bench + x.postgres, 1),
      ]),
    );
    const mean = (eager: boolean, k: keyof Pick<Round, 'temporal' | 'bench' | 'postgres' | 'seconds'>) => {
      const of = results.filter((x) => x.variant.startsWith('eager') === eager);
      return of.reduce((a, x) => a + x[k], 0) / of.length;
    };
    const summary =
      `means over ${rounds} rounds each: the dev server ${fmt(mean(false, 'temporal'), 1)} → ${fmt(mean(true, 'temporal'), 1)} CPU-ms per new community, ` +
      `worker, fakes and client ${fmt(mean(false, 'bench'), 1)} → ${fmt(mean(true, 'bench'), 1)}, ` +
      `a round ${fmt(mean(false, 'seconds'), 1)} → ${fmt(mean(true, 'seconds'), 1)} s`;
    process.stdout.write(`\n${md}\n${summary}\n`);
    if (!hasFlag(argv, 'no-append')) {
      appendResults('Eager workflow start (`npm run bench -- starts`)', md, {
        command: `npm run bench -- starts ${argv.join(' ')}`.trim(),
        notes: [
          `after a warm-up round, rounds of ${n} new communities (a fixed hourly interval, 3 posts each, ${perInstance} per fake instance), alternating; at most ${window} started and not yet synced, ${concurrency} starts at a time; the worker in the bench's process (its CPU is in "worker, fakes, client"), the dev server with \`system.enableEagerWorkflowStart\`; ${slots ? `WORKER_MAX_CONCURRENT_WORKFLOW_TASKS=${slots}` : 'the worker as configured by default'}`,
          summary,
        ],
      });
    }
  } finally {
    await worker?.shutdown();
    await connection?.close().catch(() => {});
    await be.close();
  }
}
