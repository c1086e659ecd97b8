// Activities are plain async functions closed over their dependencies (pools, HTTP client).
import type { Config } from '../src/config.js';
import type { Sql } from '../src/db/pool.js';
import type { ShardRouter } from '../src/db/sharding/router.js';
import type { LemmyClient } from '../src/lemmy/client.js';
import { createShardActivities } from './shards.js';
import { createSyncActivity } from './sync.js';

export interface ActivityDeps {
  config: Config;
  catalog: Sql;
  router: ShardRouter;
  lemmy: LemmyClient;
}

export function createActivities(deps: ActivityDeps) {
  return {
    syncCommunity: createSyncActivity(deps),
    ...createShardActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
