// /api/communities: add (a Lemmy community, a feed or a Mastodon timeline), list, get, posts,
// refresh, change the refresh policy, delete.
import { Hono } from 'hono';
import { addCommunity, changeRefresh, findCommunity, listWithStatus, postsOf, withStatus, type Services } from '../service.js';
import { requestRefresh, stopTracking } from '../../src/tracking.js';
import {
  addBodySchema,
  parseCommunitiesQuery,
  parsePageQuery,
  parseWith,
  patchBodySchema,
  readJsonObject,
  toAddInput,
} from '../validation.js';

export function communityRoutes(s: Services): Hono {
  const app = new Hono();

  app.post('/', async (c) => {
    const input = toAddInput(parseWith(addBodySchema, await readJsonObject(c)), s.sources, s.config);
    const { community, created } = await addCommunity(s, input);
    if (created) c.header('Location', `/api/communities/${community.id}`);
    return c.json(community, created ? 201 : 200);
  });

  app.get('/', async (c) =>
    c.json(await listWithStatus(s, parseCommunitiesQuery({ limit: c.req.query('limit'), before: c.req.query('before') }))),
  );

  app.get('/:ref', async (c) => c.json(await withStatus(s, await findCommunity(s, c.req.param('ref')))));

  app.get('/:ref/posts', async (c) => {
    const page = parsePageQuery({ limit: c.req.query('limit'), before: c.req.query('before') });
    const row = await findCommunity(s, c.req.param('ref'));
    return c.json(await postsOf(s, row, page.limit, page.before));
  });

  app.post('/:ref/refresh', async (c) => {
    const row = await findCommunity(s, c.req.param('ref'));
    await requestRefresh(s, row);
    return c.json({ ref: row.ref, refreshRequested: true }, 202);
  });

  app.patch('/:ref', async (c) => {
    const body = parseWith(patchBodySchema, await readJsonObject(c));
    const row = await findCommunity(s, c.req.param('ref'));
    const updated = await changeRefresh(s, row, body);
    return c.json(await withStatus(s, updated));
  });

  app.delete('/:ref', async (c) => {
    const row = await findCommunity(s, c.req.param('ref'));
    await stopTracking(s, row);
    return c.body(null, 204);
  });

  return app;
}
