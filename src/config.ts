// Configuration comes from the environment only (12-factor). Every variable is optional and
// documented in README.md; bad values stop the process at start with a message naming them.
import path from 'node:path';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import pkg from '../package.json' with { type: 'json' };

export const VERSION: string = pkg.version;
export const PROJECT_URL = 'https://github.com/lemmy-fetcher/lemmy-fetcher';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) =>
  z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(min).max(max));
const num = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+(\.\d+)?$/, 'must be a number')
    .transform(Number)
    .pipe(z.number().min(min).max(max));
/** `ALLOWED_HOSTS`: host names without ports, lower-case, IPv6 in brackets; `*` allows any. */
const hostList = z.string().transform((value, ctx) => {
  const hosts: string[] = [];
  for (const part of value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const host = normalizeHostName(part);
    if (!host) {
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(part)} is not a host name or IP address (list names like localhost,api.example.org, or *)`,
      });
      return z.NEVER;
    }
    if (!hosts.includes(host)) hosts.push(host);
  }
  if (hosts.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'must list at least one host name, or *' });
    return z.NEVER;
  }
  return hosts;
});

/** `TRUSTED_PROXIES`: IP addresses or CIDR ranges, normalised to `address/bits`; `none` for none. */
const cidrList = z.string().transform((value, ctx) => {
  if (value.trim().toLowerCase() === 'none') return [];
  const ranges: string[] = [];
  for (const part of value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    try {
      const [addr, bits] = part.includes('/')
        ? ipaddr.parseCIDR(part)
        : (() => {
            const a = ipaddr.parse(part);
            return [a, a.kind() === 'ipv4' ? 32 : 128] as const;
          })();
      ranges.push(`${addr.toString()}/${bits}`);
    } catch {
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(part)} is not an IP address or CIDR range (e.g. 10.0.0.0/8, ::1/128), or none`,
      });
      return z.NEVER;
    }
  }
  return ranges;
});

/**
 * A Host header's or ALLOWED_HOSTS entry's name without port, lower-case, without a trailing dot,
 * IPv6 literals in brackets; `*` stays `*`; undefined when it is no host name at all.
 */
export function normalizeHostName(value: string): string | undefined {
  let v = value.trim().toLowerCase();
  if (v === '*') return v;
  if (v.startsWith('[')) {
    const end = v.indexOf(']');
    if (end === -1 || !/^(:\d{1,5})?$/.test(v.slice(end + 1))) return undefined;
    v = v.slice(1, end);
    return ipaddr.IPv6.isValid(v) ? `[${v}]` : undefined;
  }
  // Bare IPv6, e.g. ::1 (two colons at least; `host:port`, one, is far more common and the check is dear).
  if (v.indexOf(':') !== v.lastIndexOf(':') && ipaddr.IPv6.isValid(v)) return `[${v}]`;
  v = v.replace(/:\d{1,5}$/, '').replace(/\.$/, '');
  return /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/.test(v) && v.length <= 253 ? v : undefined;
}

/** True when HOST only accepts connections from this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  try {
    return ipaddr.process(h).range() === 'loopback';
  } catch {
    return false;
  }
}

const postgresUrl = z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL');

const schema = z.object({
  PORT: int(1, 65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['pretty', 'json']).optional(),
  DATA_DIR: z.string().min(1).default('data'),

  TEMPORAL_ADDRESS: z
    .string()
    .regex(/^[^\s:]+:\d+$/, 'must be host:port')
    .optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('lemmy-fetcher'),
  TEMPORAL_UI_URL: z.string().url().default('http://localhost:8233'),
  TEMPORAL_DEV_PORT: int(1, 65535).default(7233),
  TEMPORAL_DEV_UI_PORT: int(1, 65535).default(8233),
  TEMPORAL_CLI: z.string().optional(),

  CATALOG_DATABASE_URL: postgresUrl.optional(),
  POST_SHARD_URLS: z.string().optional(),
  EMBEDDED_PG_PORT: int(1024, 65000).default(54320),
  // As root, embedded Postgres runs as `postgres`; what that user cannot reach (binaries in
  // node_modules, data in a 0700 home) is kept here instead.
  EMBEDDED_PG_SYSTEM_DIR: z.string().min(1).default('/var/lib/lemmy-fetcher'),
  DB_POOL_MAX: int(1, 200).default(10),

  REFRESH_SECONDS: int(1, 86400).default(300),
  ALLOW_PRIVATE_INSTANCES: bool.default(false),
  LEMMY_USER_AGENT: z.string().min(1).optional(),
  INSTANCE_REQUESTS_PER_SECOND: num(0.01, 1000).default(1),
  INSTANCE_BUDGET_MAX_WAIT_SECONDS: int(1, 3600).default(60),
  HTTP_CONNECT_TIMEOUT_MS: int(100, 120_000).default(5000),
  HTTP_TIMEOUT_MS: int(100, 300_000).default(15_000),
  HTTP_MAX_BYTES: int(1024, 100 * 1024 * 1024).default(4 * 1024 * 1024),
  SYNC_MAX_PAGES: int(1, 100).default(10),
  BACKFILL_PAGES: int(0, 100).default(0),
  // Adaptive refresh: the bounds a new source gets (each can be changed per source), and how
  // often metadata (title, subscribers…) is asked for, rather than on every sync.
  ADAPTIVE_MIN_REFRESH_SECONDS: int(1, 86400).default(60),
  ADAPTIVE_MAX_REFRESH_SECONDS: int(1, 86400).default(3600),
  METADATA_REFRESH_SECONDS: int(0, 604_800).default(3600),
  // When no source has answered for this long and several failed, the fault is ours (offline).
  OFFLINE_WINDOW_SECONDS: int(10, 86400).default(120),

  WORKFLOW_BUNDLE_PATH: z.string().optional(),
  // Below the number of communities a worker serves, evicted workflows are replayed on every sync.
  WORKER_MAX_CACHED_WORKFLOWS: int(0, 100_000).default(5000),
  WORKER_MAX_CONCURRENT_ACTIVITIES: int(1, 10_000).default(50),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: int(2, 10_000).default(40),
  // Long polls each task queue holds open (the SDK's default; capped at the concurrent tasks).
  // Workflow tasks take at least 2: one on the sticky queue and one on the normal queue.
  WORKER_WORKFLOW_TASK_POLLS: int(2, 1000).default(10),
  WORKER_ACTIVITY_TASK_POLLS: int(1, 1000).default(10),
  // Stack frames V8 records in workflow code (its default is 10). The SDK records a stack for
  // every promise a workflow makes, for the stack-trace query; fewer frames, cheaper activations.
  WORKER_WORKFLOW_STACK_FRAMES: int(0, 100).default(3),
  // Where workflow code runs: a thread of its own (the SDK's default) or the worker's main thread.
  WORKER_WORKFLOW_THREAD: z.enum(['own', 'main']).default('own'),
  // A community synced this rarely is usually out of the sticky cache by its next sync, which then
  // replays its run first: its runs hold at most QUIET_RUN_SYNCS syncs (given to a workflow when
  // it starts; a run hands them on to the next).
  QUIET_RUN_FROM_SECONDS: int(1, 86400).default(900),
  QUIET_RUN_SYNCS: int(1, 200).default(4),
  // Quiet runs run on a task queue of their own (default: TEMPORAL_TASK_QUEUE + `-quiet`; the same
  // name as TEMPORAL_TASK_QUEUE: one queue), which every worker also polls with a small sticky
  // cache: a quiet community coming due does not push a busy one out of WORKER_MAX_CACHED_WORKFLOWS.
  TEMPORAL_QUIET_TASK_QUEUE: z.string().min(1).optional(),
  WORKER_QUIET_CACHED_WORKFLOWS: int(1, 100_000).default(300),

  API_TOKEN: z
    .string()
    .min(8, 'must be at least 8 characters')
    .regex(/^[A-Za-z0-9._~+/-]+=*$/, 'may only contain letters, digits and . _ ~ + / - (then = padding), so that it fits a bearer header')
    .optional(),
  CORS_ORIGINS: z.string().optional(),
  API_BODY_LIMIT_BYTES: int(256, 10 * 1024 * 1024).default(64 * 1024),
  // Host names the API and website answer to (DNS rebinding defence); ports are ignored.
  ALLOWED_HOSTS: hostList.default(['localhost', '127.0.0.1', '[::1]']),
  // Peers whose X-Forwarded-Proto / X-Forwarded-For are believed (TLS detection, client IP).
  TRUSTED_PROXIES: cidrList.default(['127.0.0.0/8', '::1/128']),

  // Live stream of posts (/api/stream, /api/ws): a keep-alive comment this often; events held for a
  // client that does not keep up before it is dropped (reset "slow"); how long and how many post
  // events each shard node keeps for resumes (older cursors get reset "expired").
  STREAM_HEARTBEAT_SECONDS: int(1, 3600).default(15),
  STREAM_CLIENT_BUFFER: int(1, 1_000_000).default(1000),
  STREAM_RETENTION_SECONDS: int(60, 90 * 86400).default(86400),
  STREAM_RETENTION_MAX_EVENTS: int(1, 1_000_000_000).default(1_000_000),

  // Prometheus metrics: who may scrape GET /metrics (API and worker); the worker's own /metrics
  // server (port 0 = off); the Temporal SDK's exporter in the worker (`off` = none); the port of
  // the dev server's metrics under `npm start` (0 = the CLI's choice).
  METRICS_ALLOWED_NETWORKS: cidrList.default(['127.0.0.0/8', '::1/128']),
  // How late a next sync may be before the API's lemmy_fetcher_communities_overdue counts it.
  COMMUNITY_OVERDUE_SECONDS: int(1, 86400).default(60),
  WORKER_METRICS_PORT: int(0, 65535).default(9464),
  WORKER_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  TEMPORAL_METRICS_ADDRESS: z
    .string()
    .regex(/^(off|none|([^\s:[\]]+|\[[0-9a-fA-F:.]+\]):\d{1,5})$/i, 'must be host:port (e.g. 127.0.0.1:9465), or off')
    .transform((v): string | null => (/^(off|none)$/i.test(v) ? null : v))
    .default('127.0.0.1:9465'),
  TEMPORAL_DEV_METRICS_PORT: int(0, 65535).default(0),
  // The embedded dev server's Go garbage collector; unset: DEV_SERVER_GO_RUNTIME (400, 1536MiB).
  TEMPORAL_DEV_GOGC: z
    .string()
    .regex(/^(\d+|off)$/, 'must be a whole number (percent) or off')
    .optional(),
  TEMPORAL_DEV_GOMEMLIMIT: z
    .string()
    .regex(/^(\d+(B|KiB|MiB|GiB|TiB)?|off)$/, 'must be a size such as 1536MiB or 2GiB, or off')
    .optional(),
  // Threads the embedded dev server runs Go code on; unset: half the cores, at least one.
  TEMPORAL_DEV_GOMAXPROCS: int(1, 1024).optional(),

  // GraphQL (/graphql): operations deeper than this many levels, or costlier than this (about one
  // point per field the answer can hold, times `first`), are refused before they run.
  GRAPHQL_MAX_DEPTH: int(1, 100).default(8),
  GRAPHQL_MAX_COST: int(1, 10_000_000).default(5000),

  // API keys and rate limits (token buckets per user key, or per client IP without a key; the
  // API_TOKEN is exempt): requests per minute, and the burst (the bucket's size) as that many
  // seconds' worth; 0 turns a limit off. How long a key's lookup is cached (a removed key keeps
  // working at most that long). The response cache of posts pages (invalidated by the change
  // events of the shard nodes) and its size.
  RATE_LIMIT_ANONYMOUS_PER_MINUTE: int(0, 10_000_000).default(600),
  RATE_LIMIT_KEY_PER_MINUTE: int(0, 100_000_000).default(6000),
  RATE_LIMIT_BURST_SECONDS: int(1, 3600).default(60),
  API_KEY_CACHE_SECONDS: int(0, 3600).default(30),
  API_RESPONSE_CACHE: bool.default(true),
  API_RESPONSE_CACHE_MAX_BYTES: int(0, 16 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
  // `npm run api` as this many processes on one port (node:cluster), one per core to use.
  API_PROCESSES: int(1, 64).default(1),
});

/** Every environment variable the service reads (README's table, docker-compose.yml). */
export const CONFIG_KEYS: readonly string[] = Object.keys(schema.shape);

export interface ShardNodeConfig {
  name: string;
  url: string;
}

export type Config = Omit<z.infer<typeof schema>, 'POST_SHARD_URLS' | 'LEMMY_USER_AGENT' | 'TEMPORAL_QUIET_TASK_QUEUE'> & {
  LEMMY_USER_AGENT: string;
  /** Equal to TEMPORAL_TASK_QUEUE: quiet runs stay on it (one queue, one sticky cache). */
  TEMPORAL_QUIET_TASK_QUEUE: string;
  /** Configured post-shard nodes, or undefined for the embedded default. */
  POST_SHARD_NODES: ShardNodeConfig[] | undefined;
  DATA_DIR: string;
};

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** `POST_SHARD_URLS` is `url,url` (named shard-1, shard-2, ...) or `name=url,name=url`. */
export function parseShardUrls(value: string): ShardNodeConfig[] {
  const parts = value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new Error('must list at least one postgres URL');
  const nodes = parts.map((part, i) => {
    const m = /^([a-z0-9][a-z0-9_-]{0,62})=(.+)$/i.exec(part);
    const name = m ? m[1].toLowerCase() : `shard-${i + 1}`;
    const url = m ? m[2] : part;
    if (!/^postgres(ql)?:\/\//.test(url)) throw new Error(`"${redactUrl(url)}" is not a postgres:// URL`);
    return { name, url };
  });
  const names = new Set(nodes.map((n) => n.name));
  if (names.size !== nodes.length) throw new Error('node names must be unique');
  return nodes;
}

/** Hides the password of a connection string (user part and `password=` parameter) for logs and errors. */
export function redactUrl(url: string): string {
  // The user part up to the last '@' before the host (an unescaped '@' in a password stays hidden);
  // `password=` as a URL parameter or a libpq keyword (`host=db password=x`).
  return url.replace(/(\/\/[^:/@\s]+:)[^\s/?#]*@/, '$1***@').replace(/((?:^|[?&\s])password=)(?:'(?:[^'\\]|\\.)*'|[^&#\s]*)/gi, '$1***');
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable counts as unset.
  const picked = Object.fromEntries(Object.keys(schema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]]));
  const result = schema.safeParse(picked);
  const problems: string[] = [];
  if (!result.success) {
    for (const issue of result.error.issues) {
      const key = String(issue.path[0]);
      problems.push(`${key}=${JSON.stringify(env[key] ?? '')}: ${issue.message}`);
    }
    throw new ConfigError(problems);
  }
  const c = result.data;
  let shardNodes: ShardNodeConfig[] | undefined;
  if (c.POST_SHARD_URLS) {
    try {
      shardNodes = parseShardUrls(c.POST_SHARD_URLS);
    } catch (err) {
      problems.push(`POST_SHARD_URLS: ${(err as Error).message}`);
    }
  }
  if (c.CATALOG_DATABASE_URL && !c.POST_SHARD_URLS) {
    problems.push('CATALOG_DATABASE_URL is set but POST_SHARD_URLS is not: set both, or neither for embedded Postgres');
  }
  if (!c.CATALOG_DATABASE_URL && c.POST_SHARD_URLS) {
    problems.push('POST_SHARD_URLS is set but CATALOG_DATABASE_URL is not: set both, or neither for embedded Postgres');
  }
  if (!c.API_TOKEN && !isLoopbackHost(c.HOST)) {
    problems.push(
      `HOST=${JSON.stringify(c.HOST)} serves the API beyond this machine, but API_TOKEN is not set: anyone who reaches it could add and remove communities. Set API_TOKEN (8+ characters), or HOST=127.0.0.1`,
    );
  }
  if (problems.length) throw new ConfigError(problems);
  return {
    ...c,
    LEMMY_USER_AGENT: c.LEMMY_USER_AGENT ?? `lemmy-fetcher/${VERSION} (+${PROJECT_URL})`,
    TEMPORAL_QUIET_TASK_QUEUE: c.TEMPORAL_QUIET_TASK_QUEUE ?? `${c.TEMPORAL_TASK_QUEUE}-quiet`,
    POST_SHARD_NODES: shardNodes,
    DATA_DIR: path.resolve(c.DATA_DIR),
  };
}

/** For entry points: the config, or a message naming every bad variable and exit code 2. */
export function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  }
}
