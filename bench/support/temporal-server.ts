// The real Temporal server for the benches, beside the dev server: go.temporal.io/server (all four
// services in one process) with PostgreSQL persistence and SQL visibility on an embedded Postgres
// node of its own, as docker-compose.yml runs it (temporalio/server + temporal-sql-tool).
// `ensureTemporalServer` builds the server and temporal-sql-tool at the server version the Temporal
// CLI embeds (with the CLI's own dependency versions, so that only the server differs from the
// dev server) into a per-version cache outside the clone; `npm run temporal-server` runs it alone.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import { stringify } from 'yaml';
import { EmbeddedPostgresNode } from '../../src/db/embedded.js';
import type { Logger } from '../../src/log.js';
import { eachLine, terminate } from '../../src/process.js';
import { acquireLock, ensureTemporalCli, runGo, type Progress } from '../../src/temporal/cli.js';
import { DEV_SERVER_DYNAMIC_CONFIG, portOpen } from '../../src/temporal/devserver.js';
import { freePorts } from '../../test/support/ports.js';
import { descendants } from './proc.js';

const execFileAsync = promisify(execFile);

/** When the CLI's build info cannot be read (no Go): the version docker-compose.yml's image runs. */
export const FALLBACK_SERVER_VERSION = 'v1.29.1';
const SERVER_MODULE = 'go.temporal.io/server';
const CLI_MODULE = 'github.com/temporalio/cli';

export interface TemporalServerBinaries {
  /** go.temporal.io/server version, e.g. v1.29.1. */
  version: string;
  server: string;
  sqlTool: string;
  /** schema/postgresql/v12 of that version: temporal/versioned and visibility/versioned. */
  schemaDir: string;
}

export function serverCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'lemmy-fetcher', 'temporal-server');
}

export function cachedServerBinaries(version: string, env: NodeJS.ProcessEnv = process.env): TemporalServerBinaries {
  const dir = path.join(serverCacheRoot(env), version);
  return {
    version,
    server: path.join(dir, 'bin', 'temporal-server'),
    sqlTool: path.join(dir, 'bin', 'temporal-sql-tool'),
    schemaDir: path.join(dir, 'schema', 'postgresql', 'v12'),
  };
}

function complete(b: TemporalServerBinaries): boolean {
  return [b.server, b.sqlTool, path.join(b.schemaDir, 'temporal', 'versioned'), path.join(b.schemaDir, 'visibility', 'versioned')].every(
    (f) => existsSync(f),
  );
}

/** The server and CLI module versions in a Go binary's build info (`go version -m`), if Go can read them. */
export function embeddedVersions(binary: string): { server?: string; cli?: string } {
  try {
    const info = execFileSync('go', ['version', '-m', binary], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const version = (kind: string, mod: string) =>
      new RegExp(`^\\s*${kind}\\s+${mod.replace(/[./]/g, '\\$&')}\\s+(v\\S+)`, 'm').exec(info)?.[1];
    return { server: version('dep', SERVER_MODULE), cli: version('mod', CLI_MODULE) };
  } catch {
    return {};
  }
}

/**
 * TEMPORAL_SERVER_VERSION, else the go.temporal.io/server version the Temporal CLI embeds; the
 * cached build of it, else builds it (minutes the first time; most packages come from the Go build
 * cache the CLI's build filled).
 */
export async function ensureTemporalServer(progress: Progress = (l) => process.stderr.write(`${l}\n`)): Promise<TemporalServerBinaries> {
  const cli = await ensureTemporalCli(progress);
  const embedded = embeddedVersions(cli);
  const version = process.env.TEMPORAL_SERVER_VERSION || embedded.server || FALLBACK_SERVER_VERSION;
  const cached = cachedServerBinaries(version);
  if (complete(cached)) return cached;
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`temporal-server ${version} is not built in ${path.dirname(cached.schemaDir)} and Go is not installed to build it`);
  }
  // Same dependency versions as the CLI binary when it embeds this very server version.
  return build(version, embedded.server === version ? embedded.cli : undefined, progress);
}

async function build(version: string, cliVersion: string | undefined, progress: Progress): Promise<TemporalServerBinaries> {
  const target = cachedServerBinaries(version);
  const versionDir = path.join(serverCacheRoot(), version);
  mkdirSync(versionDir, { recursive: true });
  const lock = await acquireLock(path.join(versionDir, 'build.lock'), progress, 'temporal-server');
  try {
    if (complete(target)) return target;
    const staging = path.join(versionDir, `staging-${process.pid}`);
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    progress(
      `Building temporal-server and temporal-sql-tool ${version}${cliVersion ? ` (with the dependencies of Temporal CLI ${cliVersion})` : ''} into ${path.dirname(target.server)} (minutes the first time; later runs reuse them)`,
    );
    const started = Date.now();
    // A throw-away module that requires the server (and the CLI, whose dependency versions then win).
    const env = { ...process.env, GOFLAGS: '-mod=mod', CGO_ENABLED: '0' };
    const go = (args: string[]) => execFileAsync('go', args, { cwd: staging, env, maxBuffer: 16 << 20 });
    await go(['mod', 'init', 'lemmy-fetcher.local/temporal-server-build']);
    await go([
      'get',
      `${SERVER_MODULE}/cmd/server@${version}`,
      `${SERVER_MODULE}/cmd/tools/sql@${version}`,
      ...(cliVersion ? [`${CLI_MODULE}@${cliVersion}`] : []),
    ]);
    const { stdout: got } = await go(['list', '-m', SERVER_MODULE]);
    if (got.trim() !== `${SERVER_MODULE} ${version}`)
      throw new Error(`expected ${SERVER_MODULE} ${version}, the module resolved to ${got.trim()}`);
    await runGo(
      ['build', '-v', '-o', path.join(staging, 'out') + path.sep, `${SERVER_MODULE}/cmd/server`, `${SERVER_MODULE}/cmd/tools/sql`],
      { cwd: staging, env },
      progress,
    );
    // The schema files temporal-sql-tool applies, from the module cache, kept beside the binaries.
    const { stdout: moduleDir } = await go(['list', '-m', '-f', '{{.Dir}}', SERVER_MODULE]);
    const schemaStaging = path.join(staging, 'schema');
    cpSync(path.join(moduleDir.trim(), 'schema', 'postgresql', 'v12'), schemaStaging, { recursive: true });
    execFileSync('chmod', ['-R', 'u+w,go+rX', schemaStaging]); // the module cache is read-only
    rmSync(target.schemaDir, { recursive: true, force: true });
    mkdirSync(path.dirname(target.schemaDir), { recursive: true });
    renameSync(schemaStaging, target.schemaDir);
    mkdirSync(path.dirname(target.server), { recursive: true });
    renameSync(path.join(staging, 'out', 'sql'), target.sqlTool);
    renameSync(path.join(staging, 'out', 'server'), target.server);
    rmSync(staging, { recursive: true, force: true });
    progress(`temporal-server ${version} built in ${Math.round((Date.now() - started) / 1000)} s: ${target.server}`);
    return target;
  } finally {
    rmSync(path.join(versionDir, `staging-${process.pid}`), { recursive: true, force: true });
    lock();
  }
}

/**
 * Proportional set size of each process tree, summed (/proc/<pid>/smaps_rollup): shared memory is
 * divided among the processes that map it, so Postgres's shared buffers count once rather than
 * once per backend as in a sum of RSS (the real server keeps ~50 backends open).
 */
export function treePssBytes(roots: number[]): number {
  let total = 0;
  for (const root of roots) {
    for (const p of [root, ...descendants(root)]) {
      try {
        total += Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024;
      } catch {
        /* gone */
      }
    }
  }
  return total;
}

/**
 * Free ports for the services' membership (ringpop): the server stores each in cluster_membership,
 * a SMALLINT column, so above 32767 (where the kernel's ephemeral range starts) it fails to start.
 */
async function membershipPorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  for (let tries = 0; out.size < n; tries++) {
    if (tries > 1000) throw new Error('no free port below 32768 for the membership of temporal-server');
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (out.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) out.add(port);
  }
  return [...out];
}

export interface PostgresTemporalServerOptions {
  binaries: TemporalServerBinaries;
  /** Holds Temporal's Postgres data and the server's config; the caller removes it. */
  dir: string;
  /** Frontend gRPC port (the address clients use). */
  port: number;
  /** 4 is the default of the official image (NUM_HISTORY_SHARDS). */
  numHistoryShards?: number;
  namespace?: string;
  /** On top of DEV_SERVER_DYNAMIC_CONFIG (a key set here wins), as for the dev server. */
  dynamicConfig?: Record<string, unknown>;
  /** Extra `-c` settings of Temporal's Postgres node (default: the embedded defaults, 300 connections). */
  postgresSettings?: Record<string, string>;
  log: Logger;
}

/**
 * `temporal-server start` on 127.0.0.1 with its own embedded Postgres: databases `temporal` and
 * `temporal_visibility` made and migrated by temporal-sql-tool, then the namespace registered.
 * Like TemporalDevServer: `.address`, `.pid` (the server process), start(), stop().
 */
export class PostgresTemporalServer {
  private postgres?: EmbeddedPostgresNode;
  private child?: ChildProcess;
  private stopping = false;
  private readonly tail: string[] = [];

  constructor(readonly opts: PostgresTemporalServerOptions) {}

  get address(): string {
    return `127.0.0.1:${this.opts.port}`;
  }

  /** The server process (all four services). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Temporal's Postgres (its postmaster; the backends are its children). */
  get postgresPid(): number | undefined {
    return this.postgres?.pid;
  }

  get numHistoryShards(): number {
    return this.opts.numHistoryShards ?? 4;
  }

  /** Starts Postgres, the schemas, the server and the namespace; on any failure stops what started and throws. */
  async start(): Promise<void> {
    try {
      await this.startInner();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async startInner(): Promise<void> {
    const { binaries, dir, port, log } = this.opts;
    if (await portOpen(port)) throw new Error(`port ${port} is already in use`);
    const [pgPort, metricsPort, httpPort, historyPort, matchingPort, workerPort] = await freePorts(6);
    const [feMember, historyMember, matchingMember, workerMember] = await membershipPorts(4);
    const postgres = new EmbeddedPostgresNode({
      name: 'bench-temporal',
      dir: path.join(dir, 'postgres'),
      port: pgPort,
      log,
      settings: { max_connections: '300', ...this.opts.postgresSettings },
    });
    this.postgres = postgres;
    await postgres.start();
    const db = new URL(postgres.url);
    const password = decodeURIComponent(db.password);

    // Databases and schemas as docker-compose.yml's temporal-schema service makes them.
    const sqlEnv = {
      ...process.env,
      SQL_PLUGIN: 'postgres12',
      SQL_HOST: '127.0.0.1',
      SQL_PORT: String(pgPort),
      SQL_USER: 'postgres',
      SQL_PASSWORD: password,
    };
    const sqlTool = async (database: string, ...args: string[]) => {
      try {
        await execFileAsync(binaries.sqlTool, ['--db', database, ...args], { env: sqlEnv, maxBuffer: 16 << 20 });
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string; message: string };
        throw new Error(`temporal-sql-tool --db ${database} ${args.join(' ')} failed: ${e.stderr || e.stdout || e.message}`, {
          cause: err,
        });
      }
    };
    await Promise.all(
      [
        ['temporal', 'temporal'],
        ['temporal_visibility', 'visibility'],
      ].map(async ([database, schema]) => {
        await sqlTool(database, 'create-database');
        await sqlTool(database, 'setup-schema', '-v', '0.0');
        await sqlTool(database, 'update-schema', '-d', path.join(binaries.schemaDir, schema, 'versioned'));
      }),
    );

    // The official image's config template (docker/config_template.yaml) for postgres12, on loopback.
    const configDir = path.join(dir, 'config');
    mkdirSync(configDir, { recursive: true });
    const dynamicConfigFile = path.join(configDir, 'dynamicconfig.yaml');
    const dynamicConfig = { ...DEV_SERVER_DYNAMIC_CONFIG, ...this.opts.dynamicConfig };
    writeFileSync(dynamicConfigFile, stringify(Object.fromEntries(Object.entries(dynamicConfig).map(([k, v]) => [k, [{ value: v }]]))));
    const sql = (databaseName: string, maxConns: number) => ({
      sql: {
        pluginName: 'postgres12',
        databaseName,
        connectAddr: `127.0.0.1:${pgPort}`,
        connectProtocol: 'tcp',
        user: 'postgres',
        password,
        maxConns,
        maxIdleConns: maxConns,
        maxConnLifetime: '1h',
      },
    });
    const rpc = (grpcPort: number, membershipPort: number, extra: Record<string, unknown> = {}) => ({
      rpc: { grpcPort, membershipPort, bindOnIP: '127.0.0.1', ...extra },
    });
    const config = {
      log: { stdout: true, level: 'warn' },
      persistence: {
        numHistoryShards: this.numHistoryShards,
        defaultStore: 'default',
        visibilityStore: 'visibility',
        datastores: { default: sql('temporal', 20), visibility: sql('temporal_visibility', 10) },
      },
      global: {
        membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' },
        // docker-compose.yml sets PROMETHEUS_ENDPOINT: the server keeps its metrics for a scrape.
        metrics: { prometheus: { timerType: 'histogram', listenAddress: `127.0.0.1:${metricsPort}` } },
      },
      services: {
        frontend: rpc(port, feMember, { httpPort }),
        history: rpc(historyPort, historyMember),
        matching: rpc(matchingPort, matchingMember),
        worker: rpc(workerPort, workerMember),
      },
      clusterMetadata: {
        enableGlobalNamespace: false,
        failoverVersionIncrement: 10,
        masterClusterName: 'active',
        currentClusterName: 'active',
        clusterInformation: {
          active: {
            enabled: true,
            initialFailoverVersion: 1,
            rpcName: 'frontend',
            rpcAddress: `127.0.0.1:${port}`,
            httpAddress: `127.0.0.1:${httpPort}`,
          },
        },
      },
      dcRedirectionPolicy: { policy: 'noop' },
      dynamicConfigClient: { filepath: dynamicConfigFile, pollInterval: '60s' },
    };
    writeFileSync(path.join(configDir, 'bench.yaml'), stringify(config), { mode: 0o600 });

    // Own process group, as the dev server: we stop it after the worker has shut down.
    const child = spawn(binaries.server, ['--root', dir, '--config', 'config', '--env', 'bench', '--allow-no-auth', 'start'], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.relay(child.stdout!);
    this.relay(child.stderr!);
    let exited: number | null | undefined;
    child.once('exit', (code) => {
      exited = code;
      this.child = undefined;
    });
    const deadline = Date.now() + 90_000;
    const check = () => {
      if (exited !== undefined) throw new Error(`temporal-server exited with code ${exited}:\n${this.tail.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`temporal-server did not serve on ${this.address} within 90 s:\n${this.tail.join('\n')}`);
    };
    while (!(await portOpen(port))) {
      check();
      await new Promise((r) => setTimeout(r, 200));
    }
    child.unref();

    // The namespace, as docker-compose.yml's temporal-namespace service creates it (72 h retention).
    const namespace = this.opts.namespace ?? 'default';
    // Lazy: Connection.connect asks for the system info, which the frontend refuses (and logs as an
    // error) until it is healthy; the health service answers all along.
    const connection = Connection.lazy({ address: this.address, connectTimeout: '10s' });
    try {
      for (;;) {
        check();
        const health = await connection.healthService
          .check({ service: 'temporal.api.workflowservice.v1.WorkflowService' })
          .catch(() => undefined);
        if (health?.status === 1) break; // SERVING
        await new Promise((r) => setTimeout(r, 200));
      }
      for (;;) {
        check();
        try {
          await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('72h') });
          break;
        } catch (err) {
          if (/already exists|AlreadyExists/i.test((err as Error).message)) break;
          log.debug({ err: (err as Error).message }, 'temporal-server not ready to register the namespace yet');
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      await connection.workflowService.describeNamespace({ namespace });
    } finally {
      await connection.close();
    }
    log.info({ address: this.address, version: binaries.version, shards: this.numHistoryShards }, 'temporal-server with Postgres ready');
  }

  private relay(stream: NodeJS.ReadableStream): void {
    const { log } = this.opts;
    eachLine(stream, (raw) => {
      const line = raw.trim();
      if (!line) return;
      this.tail.push(line);
      if (this.tail.length > 30) this.tail.shift();
      if (this.stopping) return; // shutdown chatter is noise
      const level = /"level":"(\w+)"/.exec(line)?.[1];
      if (level === 'error' || level === 'dpanic' || level === 'panic' || level === 'fatal') log.error(line);
      else if (level === 'warn') log.warn(line);
      else log.info(line);
    });
  }

  /** The server (SIGTERM, then SIGKILL after 15 s), then its Postgres. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.child?.pid) await terminate(this.child.pid);
    this.child = undefined;
    await this.postgres?.stop();
  }
}
