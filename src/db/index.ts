// Opens the catalog and the post-shard nodes: the configured ones, or embedded Postgres nodes
// under DATA_DIR (one catalog, two shards) when none are configured.
import path from 'node:path';
import type { Config, ShardNodeConfig } from '../config.js';
import type { Logger } from '../log.js';
import { EmbeddedPostgresNode } from './embedded.js';
import { migrate } from './migrate.js';
import { openPool, type Sql } from './pool.js';
import { ShardRouter } from './shards.js';

export interface Storage {
  catalog: Sql;
  router: ShardRouter;
  embedded: EmbeddedPostgresNode[];
  close(): Promise<void>;
}

export const EMBEDDED_SHARD_NODES = ['shard-1', 'shard-2'];

/** Starts the embedded nodes (catalog on EMBEDDED_PG_PORT, shards on the next ports). */
export async function startEmbeddedNodes(config: Config, log: Logger): Promise<{ nodes: EmbeddedPostgresNode[]; catalogUrl: string; shards: ShardNodeConfig[] }> {
  const names = ['catalog', ...EMBEDDED_SHARD_NODES];
  const nodes = names.map(
    (name, i) => new EmbeddedPostgresNode({ name, dir: path.join(config.DATA_DIR, 'pg', name), port: config.EMBEDDED_PG_PORT + i, log }),
  );
  try {
    await Promise.all(nodes.map((n) => n.start()));
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop().catch(() => {})));
    throw err;
  }
  return {
    nodes,
    catalogUrl: nodes[0].url,
    shards: nodes.slice(1).map((n) => ({ name: n.name, url: n.url })),
  };
}

export async function openStorage(
  config: Config,
  log: Logger,
  opts: { allowEmbedded: boolean },
): Promise<Storage> {
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
    const router = await ShardRouter.open(catalog, shardNodes, { log, poolMax: config.DB_POOL_MAX });
    return {
      catalog,
      router,
      embedded,
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
