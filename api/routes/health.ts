// /healthz: catalog, every post-shard node and Temporal; 503 with the failing part named.
import { Hono } from 'hono';
import { health, type Services } from '../service.js';

export function healthRoutes(s: Services): Hono {
  const app = new Hono();
  app.get('/', async (c) => {
    const report = await health(s);
    c.header('Cache-Control', 'no-store');
    return c.json(report, report.status === 'ok' ? 200 : 503);
  });
  return app;
}
