// REST endpoints for post-shard nodes, mounted at /api/shards.
//   GET  /            each node's logical shards, communities and post counts
//   POST /nodes       {name, url}: register a node and apply the shard migrations (API_TOKEN when set)
//   POST /rebalance   start (or join) the rebalanceShards workflow → 202 (API_TOKEN when set)
// The API token is checked for all of /api in app.ts (requireBearer).
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { shardStatus } from '../../src/db/sharding/moves.js';
import { shardNodeUrl, withoutPassword } from '../../src/db/sharding/router.js';
import { REBALANCE_WORKFLOW_ID, startRebalance } from '../../src/rebalancing.js';
import { redactUrl } from '../../src/config.js';
import type { ApiDeps } from '../deps.js';
import { ApiError } from '../errors.js';
import { BEARER, errorResponses, jsonBody, jsonResponse, NOT_MODIFIED, openApiApp, READ_ERRORS, WRITE_ERRORS } from '../openapi/common.js';
import { RebalanceSchema, ShardNodeSchema, ShardStatusSchema } from '../openapi/schemas.js';
import { jsonObjectBody } from '../validation.js';

const NODE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const NAME_HELP = 'name must be 1-63 characters: lower-case letters, digits, "-" or "_", starting with a letter or digit';
const URL_HELP = 'url must be a postgres:// or postgresql:// connection string';

// Loose on purpose: the checks below answer with their own codes (invalid_name, invalid_url).
const addNodeBody = z
  .object({
    name: z.unknown().optional().openapi({ type: 'string', pattern: NODE_NAME.source, description: NAME_HELP, example: 'shard3' }),
    url: z
      .unknown()
      .optional()
      .openapi({ type: 'string', pattern: '^postgres(ql)?://\\S+$', description: URL_HELP, example: 'postgres://u:p@db3:5432/posts' }),
  })
  .openapi('AddShardNode', { required: ['name', 'url'] });

const tags = ['shards'];

const status = createRoute({
  operationId: 'shardStatus',
  method: 'get',
  path: '/',
  tags,
  summary: "Each post-shard node's logical shards, communities and post counts",
  responses: { 200: jsonResponse(ShardStatusSchema, 'The nodes (down nodes flagged)'), ...NOT_MODIFIED, ...errorResponses(...READ_ERRORS) },
});

const addNode = createRoute({
  operationId: 'addShardNode',
  method: 'post',
  path: '/nodes',
  tags,
  summary: 'Register a post-shard node and apply the shard migrations to it',
  security: BEARER,
  middleware: [jsonObjectBody],
  request: { body: jsonBody(addNodeBody) },
  responses: {
    201: jsonResponse(ShardNodeSchema, 'Registered (or already registered with this URL)'),
    ...errorResponses(400, 409, 422, ...WRITE_ERRORS),
  },
});

const rebalance = createRoute({
  operationId: 'rebalanceShards',
  method: 'post',
  path: '/rebalance',
  tags,
  summary: 'Start (or join) the rebalanceShards workflow',
  security: BEARER,
  responses: { 202: jsonResponse(RebalanceSchema, 'Started'), ...errorResponses(...WRITE_ERRORS) },
});

export function shardRoutes(deps: ApiDeps): OpenAPIHono {
  const app = openApiApp();
  const { router, config, temporal, log } = deps;

  app.openapi(status, async (c) => c.json(await shardStatus(router, redactUrl), 200));

  app.openapi(addNode, async (c) => {
    const { name, url } = c.req.valid('json');
    if (typeof name !== 'string' || !NODE_NAME.test(name)) throw new ApiError(400, 'invalid_name', NAME_HELP, { field: 'name' });
    if (typeof url !== 'string' || !/^postgres(ql)?:\/\/\S+$/.test(url)) throw new ApiError(400, 'invalid_url', URL_HELP, { field: 'url' });
    const existing = await shardNodeUrl(deps.catalog, name);
    if (existing && existing !== withoutPassword(url)) {
      throw new ApiError(409, 'node_exists', `a node named "${name}" is already registered with another URL; pick another name`);
    }
    try {
      await router.addNode(name, url, log);
    } catch (err) {
      throw new ApiError(422, 'node_unreachable', redactUrl((err as Error).message));
    }
    const nodes = (await shardStatus(router, redactUrl)).nodes;
    const node = nodes.find((n) => n.node === name);
    if (!node) throw new ApiError(503, 'database_unavailable', `node "${name}" was registered but is not listed yet; try again`);
    return c.json(node, 201);
  });

  app.openapi(rebalance, async (c) => {
    try {
      const handle = await startRebalance(temporal, config.TEMPORAL_TASK_QUEUE);
      return c.json({ workflowId: REBALANCE_WORKFLOW_ID, runId: handle.firstExecutionRunId }, 202);
    } catch (err) {
      throw new ApiError(503, 'temporal_unavailable', `could not start the rebalance workflow: ${(err as Error).message}`);
    }
  });

  return app;
}
