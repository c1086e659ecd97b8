// Opens the catalog and the post-shard nodes: the configured ones, or embedded Postgres nodes
// under DATA_DIR (one catalog, two shards) when none are configured.
import path from 'node:path';
import type { Config, ShardNodeConfig } from '../config.js';
import type { Logger } from '../log.js';
import { EmbeddedPostgresNode, embeddedNodeDir } from './embedded.js';
import { migrate } from './migrate.js';
import { openPool, type Sql } from './pool.js';
import { ShardRouter } from './sharding/router.js';

export interface Storage {
  catalog: Sql;
  router: ShardRouter;
  embedded: EmbeddedPostgresNode[];
  /** The nodes' connection URLs (with passwords: for child processes' environment only). */
  urls: { catalogUrl: string; shardNodes: ShardNodeConfig[] };
  close(): Promise<void>;
}

export const EMBEDDED_SHARD_NODES = ['shard-1', 'shard-2'];

function passwordOf(url: string): string | undefined {
  try {
    const u = new URL(url);
    return decodeURIComponent(u.password) || u.searchParams.get('password') || undefined;
  } catch {
    return undefined;
  }
}

/** Starts the embedded nodes (catalog on EMBEDDED_PG_PORT, shards on the next ports). */
export async function startEmbeddedNodes(
  config: Config,
  log: Logger,
): Promise<{ nodes: EmbeddedPostgresNode[]; catalogUrl: string; shards: ShardNodeConfig[] }> {
  const names = ['catalog', ...EMBEDDED_SHARD_NODES];
  const nodes = names.map(
    (name, i) =>
      new EmbeddedPostgresNode({
        name,
        dir: embeddedNodeDir(config.DATA_DIR, name, config.EMBEDDED_PG_SYSTEM_DIR),
        port: config.EMBEDDED_PG_PORT + i,
        log,
        systemDir: config.EMBEDDED_PG_SYSTEM_DIR,
      }),
  );
  if (nodes[0].opts.dir !== path.join(config.DATA_DIR, 'pg', 'catalog')) {
    log.info(
      { dir: path.dirname(nodes[0].opts.dir), dataDir: config.DATA_DIR },
      'the postgres user cannot reach DATA_DIR: keeping Postgres data here instead',
    );
  }
  // Wait for every start to settle before stopping: a node still starting when another failed
  // would otherwise spawn its server after we stopped it, and be left behind.
  const results = await Promise.allSettled(nodes.map((n) => n.start()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(nodes.map((n) => n.stop().catch(() => {})));
    throw failed.reason;
  }
  return {
    nodes,
    catalogUrl: nodes[0].url,
    shards: nodes.slice(1).map((n) => ({ name: n.name, url: n.url })),
  };
}

export async function openStorage(config: Config, log: Logger, opts: { allowEmbedded: boolean }): Promise<Storage> {
  let embedded: EmbeddedPostgresNode[] = [];
  let catalogUrl = config.CATALOG_DATABASE_URL;
  let shardNodes = config.POST_SHARD_NODES;
  if (!catalogUrl || !shardNodes) {
    if (!opts.allowEmbedded) {
      throw new Error('CATALOG_DATABASE_URL and POST_SHARD_URLS must be set for this role (`npm start` runs embedded Postgres instead)');
    }
    const started = await startEmbeddedNodes(config, log);
    embedded = started.nodes;
    catalogUrl = started.catalogUrl;
    shardNodes = started.shards;
  }
  const catalog = openPool(catalogUrl, { max: config.DB_POOL_MAX * 2, name: 'catalog' });
  try {
    const applied = await migrate(catalog, 'catalog');
    if (applied.length) log.info({ applied }, 'applied catalog migrations');
    const router = await ShardRouter.open(catalog, shardNodes, {
      log,
      poolMax: config.DB_POOL_MAX,
      fallbackPassword: passwordOf(catalogUrl),
    });
    return {
      catalog,
      router,
      embedded,
      urls: { catalogUrl, shardNodes },
      async close() {
        await router.close();
        await catalog.end({ timeout: 2 });
        for (const node of embedded.reverse()) await node.stop();
      },
    };
  } catch (err) {
    await catalog.end({ timeout: 1 });
    for (const node of embedded) await node.stop();
    throw err;
  }
}
