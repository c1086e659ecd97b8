// /api/users: users, their follows of communities and users, their feed (the newest posts of the
// communities they follow, across the shard nodes) and activities. Writes under /api/users/:name/
// take that user's key or the API token (checked here; app.ts leaves these paths to us).
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import {
  activitiesPage,
  authorizeUserWrite,
  createUser,
  feedOf,
  followsOf,
  friendsActivitiesPage,
  parseActivityQuery,
  parseUserName,
  requireUser,
  startFollowingCommunity,
  startFollowingUser,
  stopFollowingCommunity,
  stopFollowingUser,
  UnauthorizedError,
  userProfile,
} from '../users.js';
import type { Services } from '../service.js';
import { parsePageQuery, readJsonObject } from '../validation.js';

const pageParams = (c: Context) => ({ limit: c.req.query('limit'), before: c.req.query('before') });

export function userRoutes(s: Services): Hono {
  const app = new Hono();

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

  app.post('/', async (c) => {
    const created = await createUser(s, await readJsonObject(c));
    c.header('Location', `/api/users/${created.user.name}`);
    return c.json(created, 201);
  });

  app.get('/:name', async (c) => c.json({ user: await userProfile(s, await requireUser(s, c.req.param('name'))) }));

  app.put('/:name/follows/communities/:ref', async (c) => {
    await startFollowingCommunity(s, c.req.param('name'), c.req.param('ref'));
    return c.body(null, 204);
  });

  app.delete('/:name/follows/communities/:ref', async (c) => {
    await stopFollowingCommunity(s, c.req.param('name'), c.req.param('ref'));
    return c.body(null, 204);
  });

  app.put('/:name/follows/users/:other', async (c) => {
    await startFollowingUser(s, c.req.param('name'), c.req.param('other'));
    return c.body(null, 204);
  });

  app.delete('/:name/follows/users/:other', async (c) => {
    await stopFollowingUser(s, c.req.param('name'), c.req.param('other'));
    return c.body(null, 204);
  });

  app.get('/:name/follows', async (c) => c.json(await followsOf(s, await requireUser(s, c.req.param('name')))));

  app.get('/:name/feed', async (c) => {
    const page = parsePageQuery(pageParams(c));
    return c.json(await feedOf(s, await requireUser(s, c.req.param('name')), page));
  });

  app.get('/:name/activities', async (c) => {
    const q = parseActivityQuery(pageParams(c));
    return c.json(await activitiesPage(s, await requireUser(s, c.req.param('name')), q));
  });

  app.get('/:name/friends/activities', async (c) => {
    const q = parseActivityQuery(pageParams(c));
    return c.json(await friendsActivitiesPage(s, await requireUser(s, c.req.param('name')), q));
  });

  return app;
}
