// /api/posts: newest posts across every community and shard node.
import { Hono } from 'hono';
import { newest, type Services } from '../service.js';
import { parsePageQuery } from '../validation.js';

export function postRoutes(s: Services): Hono {
  const app = new Hono();
  app.get('/', async (c) => {
    const page = parsePageQuery({ limit: c.req.query('limit'), before: c.req.query('before') });
    return c.json(await newest(s, page.limit, page.before));
  });
  return app;
}
