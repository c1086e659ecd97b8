// /api/communities: add (a Lemmy community, a feed or a Mastodon timeline), list, get, posts,
// refresh, change the refresh policy, delete. Each route is a createRoute: its zod schemas
// validate the request (failures become ApiErrors in validationHook) and describe the answers
// in the OpenAPI document.
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { addCommunity, changeRefresh, findCommunity, listWithStatus, postsOf, withStatus, type Services } from '../service.js';
import { requestRefresh, stopTracking } from '../../src/tracking.js';
import { BEARER, errorResponses, jsonBody, jsonResponse, NOT_MODIFIED, openApiApp, READ_ERRORS, WRITE_ERRORS } from '../openapi/common.js';
import {
  CommunitiesPageSchema,
  CommunityPostsPageSchema,
  CommunityRefParam,
  CommunitySchema,
  RefreshRequestedSchema,
} from '../openapi/schemas.js';
import { addBodySchema, communitiesQuerySchema, jsonObjectBody, pageQuerySchema, patchBodySchema, toAddInput } from '../validation.js';

const tags = ['communities'];
const refParams = z.object({ ref: CommunityRefParam.openapi({ param: { name: 'ref', in: 'path' } }) });

const add = createRoute({
  operationId: 'addCommunity',
  method: 'post',
  path: '/',
  tags,
  summary: 'Track a community, feed or Mastodon timeline',
  description:
    'Body `{"instance","name"}`, `{"community":"name@host"}` or `{"url":"https://…"}` (a Lemmy community URL, an RSS/Atom/JSON feed, a Mastodon hashtag or account), with an optional refresh policy. The source is checked before it is tracked.',
  security: BEARER,
  middleware: [jsonObjectBody],
  request: { body: jsonBody(addBodySchema) },
  responses: {
    201: { ...jsonResponse(CommunitySchema, 'Now tracked'), headers: z.object({ Location: z.string() }) },
    200: jsonResponse(CommunitySchema, 'Already tracked (the same object)'),
    ...errorResponses(400, 422, ...WRITE_ERRORS),
  },
});

const list = createRoute({
  operationId: 'listCommunities',
  method: 'get',
  path: '/',
  tags,
  summary: 'Tracked communities, with the status of their last sync',
  request: { query: communitiesQuerySchema },
  responses: {
    200: jsonResponse(CommunitiesPageSchema, 'A page of communities, oldest first'),
    ...NOT_MODIFIED,
    ...errorResponses(400, ...READ_ERRORS),
  },
});

const get = createRoute({
  operationId: 'getCommunity',
  method: 'get',
  path: '/{ref}',
  tags,
  summary: 'One tracked community, with its live status',
  request: { params: refParams },
  responses: { 200: jsonResponse(CommunitySchema, 'The community'), ...NOT_MODIFIED, ...errorResponses(400, 404, ...READ_ERRORS) },
});

const posts = createRoute({
  operationId: 'communityPosts',
  method: 'get',
  path: '/{ref}/posts',
  tags: ['communities', 'posts'],
  summary: "A community's posts, newest first (keyset pages)",
  request: { params: refParams, query: pageQuerySchema },
  responses: {
    200: jsonResponse(CommunityPostsPageSchema, 'A page of posts'),
    ...NOT_MODIFIED,
    ...errorResponses(400, 404, ...READ_ERRORS),
  },
});

const refresh = createRoute({
  operationId: 'refreshCommunity',
  method: 'post',
  path: '/{ref}/refresh',
  tags,
  summary: 'Sync now (signals the workflow), then restart the interval',
  security: BEARER,
  request: { params: refParams },
  responses: { 202: jsonResponse(RefreshRequestedSchema, 'Refresh requested'), ...errorResponses(400, 404, ...WRITE_ERRORS) },
});

const patch = createRoute({
  operationId: 'changeRefresh',
  method: 'patch',
  path: '/{ref}',
  tags,
  summary: 'Change the refresh policy or interval',
  security: BEARER,
  middleware: [jsonObjectBody],
  request: { params: refParams, body: jsonBody(patchBodySchema) },
  responses: { 200: jsonResponse(CommunitySchema, 'The community with its new policy'), ...errorResponses(400, 404, ...WRITE_ERRORS) },
});

const remove = createRoute({
  operationId: 'removeCommunity',
  method: 'delete',
  path: '/{ref}',
  tags,
  summary: 'Stop tracking: cancels the workflow, deletes its posts and its row',
  security: BEARER,
  request: { params: refParams },
  responses: { 204: { description: 'Removed' }, ...errorResponses(400, 404, ...WRITE_ERRORS) },
});

export function communityRoutes(s: Services): OpenAPIHono {
  const app = openApiApp();

  app.openapi(add, async (c) => {
    const input = toAddInput(c.req.valid('json'), s.sources, s.config);
    const { community, created } = await addCommunity(s, input);
    if (created) {
      c.header('Location', `/api/communities/${community.id}`);
      return c.json(community, 201);
    }
    return c.json(community, 200);
  });

  app.openapi(list, async (c) => c.json(await listWithStatus(s, c.req.valid('query')), 200));

  app.openapi(get, async (c) => c.json(await withStatus(s, await findCommunity(s, c.req.valid('param').ref)), 200));

  app.openapi(posts, async (c) => {
    const page = c.req.valid('query');
    const row = c.get('knownCommunity') ?? (await findCommunity(s, c.req.valid('param').ref));
    return c.json(await postsOf(s, row, page.limit, page.before), 200);
  });

  app.openapi(refresh, async (c) => {
    const row = await findCommunity(s, c.req.valid('param').ref);
    await requestRefresh(s, row);
    return c.json({ ref: row.ref, refreshRequested: true as const }, 202);
  });

  app.openapi(patch, async (c) => {
    const body = c.req.valid('json');
    const row = await findCommunity(s, c.req.valid('param').ref);
    const updated = await changeRefresh(s, row, body);
    return c.json(await withStatus(s, updated), 200);
  });

  app.openapi(remove, async (c) => {
    const row = await findCommunity(s, c.req.valid('param').ref);
    await stopTracking(s, row);
    return c.body(null, 204);
  });

  return app;
}
