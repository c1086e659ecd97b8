// PLACEHOLDER (owned by the sharding work): activities that move logical shards between nodes.
import type { ActivityDeps } from './index.js';

export function createShardActivities(_deps: ActivityDeps) {
  return {};
}
