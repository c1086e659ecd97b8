// /api/users: users, their follows of communities and users, their feed (the newest posts of the
// communities they follow, across the shard nodes) and activities. Writes under /api/users/:name/
// take that user's key or the API token (checked here; app.ts leaves these paths to us).
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import {
  activitiesPage,
  authorizeUserWrite,
  createUser,
  createUserBodySchema,
  feedOf,
  followsOf,
  friendsActivitiesPage,
  parseUserName,
  requireUser,
  startFollowingCommunity,
  startFollowingUser,
  stopFollowingCommunity,
  stopFollowingUser,
  UnauthorizedError,
  userNameSchema,
  userProfile,
} from '../users.js';
import type { Services } from '../service.js';
import { BEARER, errorResponses, jsonBody, jsonResponse, NOT_MODIFIED, openApiApp, READ_ERRORS, WRITE_ERRORS } from '../openapi/common.js';
import {
  ActivitiesPageSchema,
  CommunityRefParam,
  FollowsSchema,
  NewUserSchema,
  PostsPageSchema,
  ProfileSchema,
} from '../openapi/schemas.js';
import { idPageQuerySchema, jsonObjectBody, pageQuerySchema } from '../validation.js';

const tags = ['users'];
const nameParam = userNameSchema.openapi({
  param: { name: 'name', in: 'path' },
  description: '1 to 64 characters of a-z, 0-9 and _',
  example: 'alice',
});
const nameParams = z.object({ name: nameParam });
const activityQuerySchema = idPageQuerySchema('a');

const create = createRoute({
  operationId: 'createUser',
  method: 'post',
  path: '/',
  tags,
  summary: 'Create a user; the answer carries their API key, shown once',
  security: BEARER,
  middleware: [jsonObjectBody],
  request: { body: jsonBody(createUserBodySchema.openapi('NewUserBody')) },
  responses: {
    201: { ...jsonResponse(NewUserSchema, 'Created'), headers: z.object({ Location: z.string() }) },
    ...errorResponses(400, 409, ...WRITE_ERRORS),
  },
});

const profile = createRoute({
  operationId: 'getUser',
  method: 'get',
  path: '/{name}',
  tags,
  summary: 'A user with the counts of their follows and followers',
  request: { params: nameParams },
  responses: { 200: jsonResponse(ProfileSchema, 'The profile'), ...NOT_MODIFIED, ...errorResponses(400, 404, ...READ_ERRORS) },
});

const communityFollow = (method: 'put' | 'delete') =>
  createRoute({
    method,
    path: '/{name}/follows/communities/{ref}',
    operationId: method === 'put' ? 'followCommunity' : 'unfollowCommunity',
    tags,
    summary: method === 'put' ? 'Follow a tracked community' : 'Stop following a community',
    description: "Needs the user's own key or the API token. Doing it twice changes nothing.",
    security: BEARER,
    request: { params: z.object({ name: nameParam, ref: CommunityRefParam.openapi({ param: { name: 'ref', in: 'path' } }) }) },
    responses: { 204: { description: 'Done' }, ...errorResponses(400, 404, ...WRITE_ERRORS) },
  });

const userFollow = (method: 'put' | 'delete') =>
  createRoute({
    method,
    path: '/{name}/follows/users/{other}',
    operationId: method === 'put' ? 'followUser' : 'unfollowUser',
    tags,
    summary: method === 'put' ? 'Follow a user' : 'Stop following a user',
    description: "Needs the user's own key or the API token. A user cannot follow themselves (400 self_follow).",
    security: BEARER,
    request: {
      params: z.object({ name: nameParam, other: userNameSchema.openapi({ param: { name: 'other', in: 'path' }, example: 'bob' }) }),
    },
    responses: { 204: { description: 'Done' }, ...errorResponses(400, 404, ...WRITE_ERRORS) },
  });

const follows = createRoute({
  operationId: 'userFollows',
  method: 'get',
  path: '/{name}/follows',
  tags,
  summary: 'The communities and users a user follows',
  request: { params: nameParams },
  responses: { 200: jsonResponse(FollowsSchema, 'Whom they follow'), ...NOT_MODIFIED, ...errorResponses(400, 404, ...READ_ERRORS) },
});

const feed = createRoute({
  operationId: 'userFeed',
  method: 'get',
  path: '/{name}/feed',
  tags: ['users', 'posts'],
  summary: 'Newest posts of the communities a user follows, across the shard nodes',
  request: { params: nameParams, query: pageQuerySchema },
  responses: { 200: jsonResponse(PostsPageSchema, 'A page of posts'), ...NOT_MODIFIED, ...errorResponses(400, 404, ...READ_ERRORS) },
});

const activities = (path: '/{name}/activities' | '/{name}/friends/activities', summary: string) =>
  createRoute({
    method: 'get',
    path,
    operationId: path === '/{name}/activities' ? 'userActivities' : 'friendsActivities',
    tags,
    summary,
    request: { params: nameParams, query: activityQuerySchema },
    responses: {
      200: jsonResponse(ActivitiesPageSchema, 'A page of activities, newest first'),
      ...NOT_MODIFIED,
      ...errorResponses(400, 404, ...READ_ERRORS),
    },
  });

export function userRoutes(s: Services): OpenAPIHono {
  const app = openApiApp();

  // Only the user themselves (their key) or the admin (API_TOKEN) changes a user's follows.
  const ownerOnly: MiddlewareHandler = async (c, next) => {
    const name = parseUserName(c.req.param('name') ?? '');
    try {
      await authorizeUserWrite(s, name, c.req.header('authorization'));
    } catch (err) {
      if (err instanceof UnauthorizedError) c.header('WWW-Authenticate', err.challenge);
      throw err;
    }
    await next();
  };
  app.on(['PUT', 'DELETE', 'POST', 'PATCH'], '/:name/*', ownerOnly);

  app.openapi(create, async (c) => {
    const created = await createUser(s, c.req.valid('json'));
    c.header('Location', `/api/users/${created.user.name}`);
    return c.json(created, 201);
  });

  app.openapi(profile, async (c) => c.json({ user: await userProfile(s, await requireUser(s, c.req.valid('param').name)) }, 200));

  app.openapi(communityFollow('put'), async (c) => {
    const { name, ref } = c.req.valid('param');
    await startFollowingCommunity(s, name, ref);
    return c.body(null, 204);
  });

  app.openapi(communityFollow('delete'), async (c) => {
    const { name, ref } = c.req.valid('param');
    await stopFollowingCommunity(s, name, ref);
    return c.body(null, 204);
  });

  app.openapi(userFollow('put'), async (c) => {
    const { name, other } = c.req.valid('param');
    await startFollowingUser(s, name, other);
    return c.body(null, 204);
  });

  app.openapi(userFollow('delete'), async (c) => {
    const { name, other } = c.req.valid('param');
    await stopFollowingUser(s, name, other);
    return c.body(null, 204);
  });

  app.openapi(follows, async (c) => c.json(await followsOf(s, await requireUser(s, c.req.valid('param').name)), 200));

  app.openapi(feed, async (c) => {
    const page = c.req.valid('query');
    return c.json(await feedOf(s, await requireUser(s, c.req.valid('param').name), page), 200);
  });

  app.openapi(activities('/{name}/activities', "A user's own activities (follow, unfollow…), newest first"), async (c) =>
    c.json(await activitiesPage(s, await requireUser(s, c.req.valid('param').name), c.req.valid('query')), 200),
  );

  app.openapi(activities('/{name}/friends/activities', 'Activities of the users a user follows, newest first'), async (c) =>
    c.json(await friendsActivitiesPage(s, await requireUser(s, c.req.valid('param').name), c.req.valid('query')), 200),
  );

  return app;
}
