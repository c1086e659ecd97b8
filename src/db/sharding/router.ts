// The shard router: the one place that knows how a community maps to a post-shard node.
// A community's logical shard (0..LOGICAL_SHARDS-1) is fixed at creation from a stable hash of its
// ref; `shard_map` in the catalog maps logical shards to named nodes, so nodes can be added and
// shards moved without rehashing.
import type { ShardNodeConfig } from '../../config.js';
import { redactUrl } from '../../config.js';
import type { Logger } from '../../log.js';
import { observeShardQuery } from '../../metrics/index.js';
import { migrate } from '../migrate.js';
import { openPool, type Sql } from '../pool.js';

/** Never change once data exists: every stored community's shard was derived from it. */
export const LOGICAL_SHARDS = 64;

/** Advisory-lock namespace on the catalog for "writes into logical shard N". Writers take it
 *  shared; moving a shard takes it exclusively to hold writes while it flips the map. */
export const SHARD_WRITE_LOCK = 0x5348;

/** FNV-1a 32-bit of the ref, modulo LOGICAL_SHARDS: stable across processes and versions. */
export function logicalShardOf(ref: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(ref, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % LOGICAL_SHARDS;
}

export class ShardUnavailableError extends Error {
  constructor(
    readonly node: string,
    cause: unknown,
  ) {
    super(`post-shard node "${node}" is unavailable: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'ShardUnavailableError';
  }
}

export interface ShardNode {
  name: string;
  sql: Sql;
}

/** A node URL as the catalog keeps it: no password, neither in the user part nor as `?password=`. */
export function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    u.searchParams.delete('password');
    return u.toString();
  } catch {
    return url;
  }
}

/** A stored (password-free) URL with the password to use, unless it already has one. */
function withPassword(url: string, password: string | undefined): string {
  if (!password) return url;
  const u = new URL(url);
  if (u.password || u.searchParams.has('password')) return url;
  u.password = password;
  return u.toString();
}

/** The registered (password-free) URL of a node, if a node has that name. */
export async function shardNodeUrl(catalog: Sql, name: string): Promise<string | undefined> {
  const [row] = await catalog<{ url: string }[]>`select url from shard_nodes where name = ${name}`;
  return row?.url;
}

export class ShardRouter {
  private readonly pools = new Map<string, Sql>();

  private constructor(
    readonly catalog: Sql,
    /** Node name → URL with its password (from config), never written back to the catalog. */
    private readonly urls: Map<string, string>,
    private readonly poolMax: number,
    /** For nodes known only from the catalog (added at run time): the catalog's password. */
    private readonly fallbackPassword: string | undefined,
    /** Every node connection's statement_timeout (default STATEMENT_TIMEOUT_MS, see pool.ts). */
    private readonly statementTimeoutMs?: number,
  ) {}

  /**
   * Registers the configured nodes (name -> url) in the catalog, gives every logical shard a node
   * when the map is new, and opens pools lazily. Nodes added at run time are read from the catalog.
   */
  static async open(
    catalog: Sql,
    configured: ShardNodeConfig[],
    opts: { log: Logger; poolMax?: number; migrate?: boolean; fallbackPassword?: string; statementTimeoutMs?: number },
  ): Promise<ShardRouter> {
    await catalog.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${SHARD_WRITE_LOCK}, -1)`;
      for (const node of configured) {
        await tx`insert into shard_nodes (name, url) values (${node.name}, ${withoutPassword(node.url)})
                 on conflict (name) do update set url = excluded.url`;
      }
      // Rows written by older versions kept passwords: take them out.
      for (const row of await tx<{ name: string; url: string }[]>`select name, url from shard_nodes`) {
        const clean = withoutPassword(row.url);
        if (clean !== row.url) await tx`update shard_nodes set url = ${clean} where name = ${row.name}`;
      }
      const [{ count }] = await tx<{ count: number }[]>`select count(*)::int as count from shard_map`;
      if (count === 0) {
        if (configured.length === 0) throw new Error('no post-shard nodes configured');
        const rows = Array.from({ length: LOGICAL_SHARDS }, (_, shard) => ({ shard, node: configured[shard % configured.length].name }));
        await tx`insert into shard_map ${tx(rows, 'shard', 'node')}`;
        opts.log.info({ nodes: configured.map((n) => n.name), shards: LOGICAL_SHARDS }, 'created shard map');
      }
    });
    const known = await catalog<{ name: string; url: string }[]>`select name, url from shard_nodes order by name`;
    const urls = new Map(known.map((n) => [n.name, withPassword(n.url, opts.fallbackPassword)]));
    for (const n of configured) urls.set(n.name, n.url);
    const router = new ShardRouter(catalog, urls, opts.poolMax ?? 10, opts.fallbackPassword, opts.statementTimeoutMs);
    if (opts.migrate !== false) {
      for (const node of router.nodeNames()) {
        const applied = await migrate(router.pool(node), 'shard');
        if (applied.length) opts.log.info({ node, applied }, 'applied shard migrations');
      }
    }
    return router;
  }

  nodeNames(): string[] {
    return [...this.urls.keys()].sort();
  }

  /** The pool of a named node; nodes registered by other processes are picked up on demand. */
  pool(node: string): Sql {
    let sql = this.pools.get(node);
    if (!sql) {
      const url = this.urls.get(node);
      if (!url) throw new Error(`unknown post-shard node "${node}"`);
      sql = openPool(url, { max: this.poolMax, name: node, statementTimeoutMs: this.statementTimeoutMs });
      this.pools.set(node, sql);
    }
    return sql;
  }

  /** Registers a node (by the `shards add` command) and applies the shard migrations to it. */
  async addNode(name: string, url: string, log: Logger): Promise<void> {
    const sql = openPool(url, { max: this.poolMax, name, statementTimeoutMs: this.statementTimeoutMs });
    try {
      await migrate(sql, 'shard');
    } catch (err) {
      await sql.end({ timeout: 1 });
      throw new Error(`cannot prepare node "${name}" at ${redactUrl(url)}: ${(err as Error).message}`, { cause: err });
    }
    await this.catalog`insert into shard_nodes (name, url) values (${name}, ${withoutPassword(url)})
                       on conflict (name) do update set url = excluded.url`;
    this.urls.set(name, url);
    const old = this.pools.get(name);
    this.pools.set(name, sql);
    await old?.end({ timeout: 1 });
    log.info({ node: name, url: redactUrl(url) }, 'registered post-shard node');
  }

  /** Reloads node URLs from the catalog (nodes added by another process). */
  async refreshNodes(): Promise<void> {
    const known = await this.catalog<{ name: string; url: string }[]>`select name, url from shard_nodes`;
    for (const n of known) if (!this.urls.has(n.name)) this.urls.set(n.name, withPassword(n.url, this.fallbackPassword));
  }

  /** Current map (read fresh: a move may have flipped it a moment ago). */
  async shardMap(): Promise<Map<number, string>> {
    const rows = await this.catalog<{ shard: number; node: string }[]>`select shard, node from shard_map`;
    return new Map(rows.map((r) => [r.shard, r.node]));
  }

  /**
   * Reads may route by a copy of the map kept in memory while someone vouches that every change
   * of it is heard (the API's catalog LISTEN, api/response-cache.ts: shard_map changes NOTIFY on
   * commit), saving a catalog round trip per read. Off by default (the worker, moves and writes
   * always read the map fresh). `false` drops the copy and reads fresh again.
   */
  cacheShardMap(on: boolean): void {
    this.mapCacheOn = on;
    this.forgetShardMap();
  }

  /** The shard map changed (or may have, unheard): the next read routes by a fresh copy. */
  forgetShardMap(): void {
    this.mapGeneration++;
    this.cachedMap = undefined;
  }

  private mapCacheOn = false;
  private mapGeneration = 0;
  private cachedMap?: Map<number, string>;

  /** The map reads route by: the kept copy while vouched for, else fresh. */
  private async routingMap(): Promise<Map<number, string>> {
    if (!this.mapCacheOn) return this.shardMap();
    if (this.cachedMap) return this.cachedMap;
    const generation = this.mapGeneration;
    const map = await this.shardMap();
    // A change heard while reading: this copy may predate it, so it is used once and not kept.
    if (this.mapCacheOn && generation === this.mapGeneration) this.cachedMap = map;
    return map;
  }

  async nodeOf(shard: number): Promise<string> {
    const node = this.mapCacheOn
      ? (await this.routingMap()).get(shard)
      : (await this.catalog<{ node: string }[]>`select node from shard_map where shard = ${shard}`)[0]?.node;
    if (!node) throw new Error(`logical shard ${shard} has no node in shard_map`);
    if (!this.urls.has(node)) await this.refreshNodes();
    return node;
  }

  /** Runs a read against the node holding `shard`. */
  async read<T>(shard: number, fn: (sql: Sql, node: string) => Promise<T>): Promise<T> {
    const node = await this.nodeOf(shard);
    const started = performance.now();
    try {
      return await fn(this.pool(node), node);
    } catch (err) {
      throw isConnectionError(err) ? new ShardUnavailableError(node, err) : err;
    } finally {
      observeShardQuery(node, 'read', (performance.now() - started) / 1000);
    }
  }

  /**
   * Runs a write into `shard`'s node while holding the shard's write lock shared, so that a shard
   * move (which takes it exclusively) sees no write in flight when it copies the last changes and
   * flips the map. Fails fast (lock_timeout) rather than queueing behind a long move.
   * `catalogTx` is the catalog transaction holding the lock. `lockRows` is a catalog row lock that
   * must cover the write (a community's row), taken after the shard's lock; fn gets its rows.
   * The statements before fn go out together and run in order: one round trip, not four (a sync
   * with new posts makes one write; bench/RESULTS.md, "Scale").
   */
  async write<T>(
    shard: number,
    fn: (sql: Sql, node: string, catalogTx: Sql, lockedRows: readonly unknown[]) => Promise<T>,
    opts: { lockTimeoutMs?: number; lockRows?: (catalogTx: Sql) => Promise<readonly unknown[]> } = {},
  ): Promise<T> {
    const lockTimeoutMs = Math.max(1, Math.floor(opts.lockTimeoutMs ?? 10_000));
    return this.catalog.begin(async (tx) => {
      // execute() queues each statement now, in this order, and they leave in one write (awaiting
      // them one by one would wait a round trip each); the row lock is queued after them.
      const [, , [row], lockedRows] = await Promise.all([
        tx.unsafe(`set local lock_timeout = ${lockTimeoutMs}`).execute(),
        tx`select pg_advisory_xact_lock_shared(${SHARD_WRITE_LOCK}, ${shard})`.execute(),
        tx<{ node: string }[]>`select node from shard_map where shard = ${shard}`.execute(),
        opts.lockRows ? opts.lockRows(tx as unknown as Sql) : [],
      ]);
      if (!row) throw new Error(`logical shard ${shard} has no node in shard_map`);
      if (!this.urls.has(row.node)) await this.refreshNodes();
      const started = performance.now();
      try {
        return await fn(this.pool(row.node), row.node, tx as unknown as Sql, lockedRows);
      } catch (err) {
        throw isConnectionError(err) ? new ShardUnavailableError(row.node, err) : err;
      } finally {
        observeShardQuery(row.node, 'write', (performance.now() - started) / 1000);
      }
    }) as Promise<T>;
  }

  /** Every node holding at least one logical shard, with the shards it holds. */
  async placements(): Promise<Array<{ node: string; shards: number[] }>> {
    const map = await this.routingMap();
    const byNode = new Map<string, number[]>();
    for (const [shard, node] of map) byNode.set(node, [...(byNode.get(node) ?? []), shard]);
    for (const node of byNode.keys()) if (!this.urls.has(node)) await this.refreshNodes();
    return [...byNode.entries()]
      .map(([node, shards]) => ({ node, shards: shards.sort((a, b) => a - b) }))
      .sort((a, b) => a.node.localeCompare(b.node));
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.end({ timeout: 2 })));
    this.pools.clear();
  }
}

/** Errors that mean "the node is not there" rather than "the query is wrong". */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; errno?: string; message?: string };
  const code = e?.code ?? e?.errno ?? '';
  return (
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EHOSTUNREACH',
      'ENOTFOUND',
      'EPIPE',
      'CONNECT_TIMEOUT',
      'CONNECTION_CLOSED',
      'CONNECTION_ENDED',
      'CONNECTION_DESTROYED',
      '57P01',
      '57P02',
      '57P03',
      '08006',
      '08001',
      '08004',
    ].includes(code) ||
    (/connect|terminat/i.test(e?.message ?? '') && !code.startsWith('4'))
  );
}
