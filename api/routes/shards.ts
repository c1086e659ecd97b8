// PLACEHOLDER (owned by the sharding work): REST endpoints for post-shard nodes, mounted at /api/shards.
import { Hono } from 'hono';
import type { ApiDeps } from '../server.js';

export function shardRoutes(_deps: ApiDeps): Hono {
  return new Hono();
}
