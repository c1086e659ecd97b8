// REST endpoints for post-shard nodes, mounted at /api/shards.
//   GET  /            each node's logical shards, communities and post counts
//   POST /nodes       {name, url}: register a node and apply the shard migrations (API_TOKEN when set)
//   POST /rebalance   start (or join) the rebalanceShards workflow → 202 (API_TOKEN when set)
import { timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { startRebalance, shardStatus, REBALANCE_WORKFLOW_ID } from '../../activities/shards.js';
import { redactUrl } from '../../src/config.js';
import type { ApiDeps } from '../server.js';

const NODE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

function error(c: Context, status: 400 | 401 | 409 | 422 | 503, code: string, message: string) {
  return c.json({ error: { code, message } }, status);
}

function authorized(c: Context, token: string | undefined): boolean {
  if (!token) return true;
  const header = c.req.header('authorization') ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(header);
  if (!m) return false;
  const a = Buffer.from(m[1].trim());
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function shardRoutes(deps: ApiDeps): Hono {
  const app = new Hono();
  const { router, config, temporal, log } = deps;

  app.use('*', async (c, next) => {
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && !authorized(c, config.API_TOKEN)) {
      return error(c, 401, 'unauthorized', 'this endpoint needs `Authorization: Bearer <API_TOKEN>`');
    }
    await next();
  });

  app.get('/', async (c) => c.json(await shardStatus(router, redactUrl)));

  app.post('/nodes', async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return error(c, 400, 'invalid_json', 'the request body must be a JSON object');
    }
    const { name, url } = (body ?? {}) as { name?: unknown; url?: unknown };
    if (typeof name !== 'string' || !NODE_NAME.test(name)) {
      return error(c, 400, 'invalid_name', 'name must be 1-63 characters: lower-case letters, digits, "-" or "_", starting with a letter or digit');
    }
    if (typeof url !== 'string' || !/^postgres(ql)?:\/\/\S+$/.test(url)) {
      return error(c, 400, 'invalid_url', 'url must be a postgres:// or postgresql:// connection string');
    }
    const [existing] = await deps.catalog<{ url: string }[]>`select url from shard_nodes where name = ${name}`;
    if (existing && existing.url !== url) {
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
