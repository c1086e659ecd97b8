// Activities are plain async functions closed over their dependencies (pools, source clients).
import type { Config } from '../src/config.js';
import type { Sql } from '../src/db/pool.js';
import type { ShardRouter } from '../src/db/sharding/router.js';
import type { Sources } from '../src/sources/registry.js';
import type { CommunityRow } from '../src/db/communities.js';
import { createRestoreActivity, type RestoreOutcome } from './restore.js';
import { createScheduleActivity } from './schedule.js';
import { createShardActivities } from './shards.js';
import { createSyncActivity } from './sync.js';

export interface ActivityDeps {
  config: Config;
  catalog: Sql;
  router: ShardRouter;
  sources: Sources;
  /** src/tracking.ts's restoreWorkflow on the worker's own Temporal connection (eager starts). */
  restoreWorkflow(row: CommunityRow): Promise<RestoreOutcome>;
  /** src/tracking.ts's workflowTaskBacklog: what the restore paces its starts by. */
  workflowTaskBacklog(): Promise<number>;
}

export function createActivities(deps: ActivityDeps) {
  return {
    syncCommunity: createSyncActivity(deps),
    recordSchedule: createScheduleActivity(deps),
    restoreWorkflows: createRestoreActivity(deps),
    ...createShardActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
