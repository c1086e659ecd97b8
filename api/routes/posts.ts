// /api/posts: newest posts across every community and shard node.
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { newest, type Services } from '../service.js';
import { errorResponses, jsonResponse, NOT_MODIFIED, openApiApp, READ_ERRORS } from '../openapi/common.js';
import { PostsPageSchema } from '../openapi/schemas.js';
import { pageQuerySchema } from '../validation.js';

const newestPosts = createRoute({
  operationId: 'newestPosts',
  method: 'get',
  path: '/',
  tags: ['posts'],
  summary: 'Newest posts across all communities and shard nodes (keyset pages)',
  request: { query: pageQuerySchema },
  responses: {
    200: jsonResponse(PostsPageSchema, 'A page of posts, newest first; `partial` when a shard node did not answer'),
    ...NOT_MODIFIED,
    ...errorResponses(400, ...READ_ERRORS),
  },
});

export function postRoutes(s: Services): OpenAPIHono {
  const app = openApiApp();
  app.openapi(newestPosts, async (c) => {
    const page = c.req.valid('query');
    return c.json(await newest(s, page.limit, page.before), 200);
  });
  return app;
}
