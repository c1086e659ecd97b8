// REST endpoints for post-shard nodes, mounted at /api/shards.
//   GET  /            each node's logical shards, communities and post counts
//   POST /nodes       {name, url}: register a node and apply the shard migrations (API_TOKEN when set)
//   POST /rebalance   start (or join) the rebalanceShards workflow → 202 (API_TOKEN when set)
// The API token is checked for all of /api in app.ts (requireBearer).
import { Hono, type Context } from 'hono';
import { shardStatus } from '../../src/db/sharding/moves.js';
import { shardNodeUrl, withoutPassword } from '../../src/db/sharding/router.js';
import { REBALANCE_WORKFLOW_ID, startRebalance } from '../../src/rebalancing.js';
import { redactUrl } from '../../src/config.js';
import type { ApiDeps } from '../deps.js';
import { readJsonObject } from '../validation.js';

const NODE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

function error(c: Context, status: 400 | 409 | 422 | 503, code: string, message: string) {
  return c.json({ error: { code, message } }, status);
}

export function shardRoutes(deps: ApiDeps): Hono {
  const app = new Hono();
  const { router, config, temporal, log } = deps;

  app.get('/', async (c) => c.json(await shardStatus(router, redactUrl)));

  app.post('/nodes', async (c) => {
    const { name, url } = (await readJsonObject(c)) as { name?: unknown; url?: unknown };
    if (typeof name !== 'string' || !NODE_NAME.test(name)) {
      return error(
        c,
        400,
        'invalid_name',
        'name must be 1-63 characters: lower-case letters, digits, "-" or "_", starting with a letter or digit',
      );
    }
    if (typeof url !== 'string' || !/^postgres(ql)?:\/\/\S+$/.test(url)) {
      return error(c, 400, 'invalid_url', 'url must be a postgres:// or postgresql:// connection string');
    }
    const existing = await shardNodeUrl(deps.catalog, name);
    if (existing && existing !== withoutPassword(url)) {
      return error(c, 409, 'node_exists', `a node named "${name}" is already registered with another URL; pick another name`);
    }
    try {
      await router.addNode(name, url, log);
    } catch (err) {
      return error(c, 422, 'node_unreachable', redactUrl((err as Error).message));
    }
    const status = await shardStatus(router, redactUrl);
    return c.json(status.nodes.find((n) => n.node === name) ?? { node: name }, 201);
  });

  app.post('/rebalance', async (c) => {
    try {
      const handle = await startRebalance(temporal, config.TEMPORAL_TASK_QUEUE);
      return c.json({ workflowId: REBALANCE_WORKFLOW_ID, runId: handle.firstExecutionRunId }, 202);
    } catch (err) {
      return error(c, 503, 'temporal_unavailable', `could not start the rebalance workflow: ${(err as Error).message}`);
    }
  });

  return app;
}
