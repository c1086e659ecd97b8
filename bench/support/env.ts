// A throw-away lemmy-fetcher environment for benches: embedded Postgres nodes (one catalog, two
// post shards) and a Temporal dev server (file-backed by default, like `npm start`; or the real
// server with Postgres persistence, see ./temporal-server.ts) on free loopback ports under a temp
// dir, a Storage + Temporal client in this process, the workflow bundle written once, fake Lemmy
// instances on distinct ports, and workers as child processes.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { loadConfig, type Config } from '../../src/config.js';
import { EmbeddedPostgresNode } from '../../src/db/embedded.js';
import { openStorage, type Storage } from '../../src/db/index.js';
import { createLogger, type Logger } from '../../src/log.js';
import { onShutdown } from '../../src/shutdown.js';
import { connectClient } from '../../src/temporal/client.js';
import { ensureTemporalCli } from '../../src/temporal/cli.js';
import { TemporalDevServer, type GoRuntime } from '../../src/temporal/devserver.js';
import { bundleWorkflows } from '../../src/worker-runtime.js';
import { FakeLemmy } from '../../test/fake-lemmy.js';
import { freePort } from '../../test/support/ports.js';
import { ROOT, spawnWorkerProcess, type WorkerProcess } from './proc.js';
import { ensureTemporalServer, PostgresTemporalServer } from './temporal-server.js';

export { freePort };

export interface BenchEnv {
  dir: string;
  log: Logger;
  temporal: TemporalDevServer | PostgresTemporalServer;
  nodes: EmbeddedPostgresNode[];
  /** Environment for `npm run worker` / `npm run api` child processes. */
  env: Record<string, string>;
  config: Config;
  storage: Storage;
  client: Client;
  workers: WorkerProcess[];
  fakes: FakeLemmy[];
  /**
   * `root`: run the worker from that checkout (see checkoutOf), with its own workflow bundle;
   * `nodeFlags`: e.g. `--cpu-prof`.
   */
  startWorker(extraEnv?: Record<string, string>, opts?: { root?: string; nodeFlags?: string[] }): Promise<WorkerProcess>;
  startFakes(n: number): Promise<FakeLemmy[]>;
  close(): Promise<void>;
}

export interface BenchEnvOptions {
  /** Temporal persisted to SQLite under the temp dir (default true, as `npm start` does). */
  fileBacked?: boolean;
  /** Extra environment for the worker (and config of this process). */
  env?: Record<string, string>;
  /** Postgres durability off (fsync etc.); default false = embedded defaults. */
  fastPostgres?: boolean;
  /** Dynamic config of the dev server over DEV_SERVER_DYNAMIC_CONFIG (e.g. to measure a lever off). */
  temporalDynamicConfig?: Record<string, unknown>;
  /** The dev server's Go runtime settings over DEV_SERVER_GO_RUNTIME. */
  temporalGoRuntime?: Partial<GoRuntime>;
  /**
   * `dev` (default): `temporal server start-dev`; `postgres`: the real server (go.temporal.io/server,
   * built by `npm run temporal-server`) with PostgreSQL persistence and SQL visibility on an embedded
   * Postgres node of its own, as docker-compose.yml runs it. fileBacked does not apply to it;
   * fastPostgres and temporalDynamicConfig do.
   */
  temporalServer?: TemporalServerKind;
  /** numHistoryShards of the `postgres` server (default 4, the official image's). */
  temporalHistoryShards?: number;
}

export type TemporalServerKind = 'dev' | 'postgres';
export const TEMPORAL_SERVER_KINDS: readonly TemporalServerKind[] = ['dev', 'postgres'];

/** Environments not closed yet: what Ctrl-C must stop (the servers run in process groups of their own). */
const openEnvs = new Set<BenchEnv>();
let stopOnSignal = false;

/** Once per bench process: SIGINT/SIGTERM close every open environment, or kill what they run when forced. */
function closeOnShutdown(log: Logger): void {
  if (stopOnSignal) return;
  stopOnSignal = true;
  onShutdown(
    log,
    async () => {
      for (const be of [...openEnvs]) await be.close();
    },
    () => {
      for (const be of openEnvs) {
        for (const w of be.workers) w.child.kill('SIGKILL');
        if ('killSync' in be.temporal) be.temporal.killSync();
        for (const node of be.nodes) node.killSync();
      }
    },
  );
}

export async function startBenchEnv(opts: BenchEnvOptions = {}): Promise<BenchEnv> {
  const log = createLogger({ level: process.env.BENCH_LOG_LEVEL ?? 'warn', format: 'pretty' });
  closeOnShutdown(log);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-bench-'));
  chmodSync(dir, 0o755);
  const durability: Record<string, string> = opts.fastPostgres ? { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' } : {};
  const temporal =
    opts.temporalServer === 'postgres'
      ? new PostgresTemporalServer({
          binaries: await ensureTemporalServer((l) => process.stderr.write(`[temporal-server] ${l}\n`)),
          dir: path.join(dir, 'temporal-server'),
          port: await freePort(),
          log: log.child({ role: 'temporal' }),
          postgresSettings: durability,
          ...(opts.temporalHistoryShards ? { numHistoryShards: opts.temporalHistoryShards } : {}),
          ...(opts.temporalDynamicConfig ? { dynamicConfig: opts.temporalDynamicConfig } : {}),
        })
      : new TemporalDevServer({
          binary: await ensureTemporalCli((l) => process.stderr.write(`[temporal-cli] ${l}\n`)),
          port: await freePort(),
          headless: true,
          log: log.child({ role: 'temporal' }),
          ...(opts.temporalDynamicConfig ? { dynamicConfig: opts.temporalDynamicConfig } : {}),
          ...(opts.temporalGoRuntime ? { goRuntime: opts.temporalGoRuntime } : {}),
          ...(opts.fileBacked === false ? {} : { dbFile: path.join(dir, 'temporal', 'temporal.db') }),
        });
  const nodes: EmbeddedPostgresNode[] = [];
  for (const name of ['catalog', 'shard-1', 'shard-2']) {
    nodes.push(
      new EmbeddedPostgresNode({
        name: `bench-${name}`,
        dir: path.join(dir, name),
        port: await freePort(),
        log: log.child({ role: 'pg' }),
        settings: {
          max_connections: '300',
          ...durability,
        },
      }),
    );
  }
  const bundling = bundleWorkflows();
  const started = await Promise.allSettled([temporal.start(), ...nodes.map((n) => n.start()), bundling]);
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    // Servers run in their own process groups: stop the ones that started rather than leave them.
    await Promise.allSettled([temporal.stop(), ...nodes.map((n) => n.stop())]);
    rmSync(dir, { recursive: true, force: true });
    throw failed.reason;
  }
  const bundle = await bundling;
  const bundlePath = path.join(dir, 'workflow-bundle.js');
  writeFileSync(bundlePath, bundle.code);
  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_TASK_QUEUE: 'lemmy-fetcher',
    CATALOG_DATABASE_URL: nodes[0].url,
    POST_SHARD_URLS: `shard-1=${nodes[1].url},shard-2=${nodes[2].url}`,
    ALLOW_PRIVATE_INSTANCES: 'true',
    WORKFLOW_BUNDLE_PATH: bundlePath,
    LOG_LEVEL: 'warn',
    ...opts.env,
  };
  const config = loadConfig(env);
  const storage = await openStorage(config, log, { allowEmbedded: false });
  const client = await connectClient(temporal.address, config.TEMPORAL_NAMESPACE);
  const benchEnv: BenchEnv = {
    dir,
    log,
    temporal,
    nodes,
    env,
    config,
    storage,
    client,
    workers: [],
    fakes: [],
    async startWorker(extraEnv = {}, opts = {}) {
      const w = await spawnWorkerProcess({ ...env, ...(opts.root ? { WORKFLOW_BUNDLE_PATH: '' } : {}), ...extraEnv }, opts);
      benchEnv.workers.push(w);
      return w;
    },
    async startFakes(n) {
      const out: FakeLemmy[] = [];
      for (let i = 0; i < n; i++) out.push(await FakeLemmy.start({ host: '127.0.0.1', siteName: `Fake ${i}` }));
      benchEnv.fakes.push(...out);
      return out;
    },
    // Once, however many ask (the bench's own finally and a signal); it stays in openEnvs until all
    // is stopped, so that a crash half way (a call still waiting on the closed connection rejects)
    // still kills what is left on exit.
    close() {
      return (closing ??= closeOnce());
    },
  };
  let closing: Promise<void> | undefined;
  const closeOnce = async () => {
    for (const w of benchEnv.workers) {
      if (w.child.exitCode === null) {
        w.child.kill('SIGTERM');
        await Promise.race([w.exited, new Promise((r) => setTimeout(r, 15_000))]);
        if (w.child.exitCode === null) w.child.kill('SIGKILL');
      }
    }
    await client.connection.close().catch(() => {});
    await storage.close().catch(() => {});
    for (const f of benchEnv.fakes) await f.close();
    await temporal.stop();
    for (const n of nodes) await n.stop();
    openEnvs.delete(benchEnv);
    rmSync(dir, { recursive: true, force: true });
  };
  openEnvs.add(benchEnv);
  return benchEnv;
}

/** `--name value` flags as numbers/strings with defaults. */
export function flag(argv: string[], name: string, def: number): number;
export function flag(argv: string[], name: string, def: string): string;
export function flag(argv: string[], name: string, def: number | string): number | string {
  const i = argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= argv.length) return def;
  const v = argv[i + 1];
  if (typeof def === 'number') {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${v}`);
    return n;
  }
  return v;
}

export function hasFlag(argv: string[], name: string): boolean {
  return argv.includes(`--${name}`);
}

/**
 * A detached checkout of `rev` beside this one, sharing its node_modules, to run a worker of an
 * earlier revision in the same bench run (before → after). Removed by the returned function.
 */
export function checkoutOf(rev: string): { root: string; commit: string; remove(): void } {
  const commit = execFileSync('git', ['rev-parse', '--short', rev], { cwd: ROOT, encoding: 'utf8' }).trim();
  const root = mkdtempSync(path.join(os.tmpdir(), `lemmy-fetcher-${commit}-`));
  chmodSync(root, 0o755);
  execFileSync('git', ['worktree', 'add', '--detach', '--force', root, commit], { cwd: ROOT, stdio: 'ignore' });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(root, 'node_modules'));
  return {
    root,
    commit,
    remove() {
      execFileSync('git', ['worktree', 'remove', '--force', root], { cwd: ROOT, stdio: 'ignore' });
    },
  };
}
