// /healthz: catalog, every post-shard node and Temporal; 503 with the failing part named.
import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { health, type Services } from '../service.js';
import { errorResponses, jsonResponse, openApiApp } from '../openapi/common.js';
import { HealthSchema } from '../openapi/schemas.js';

const healthz = createRoute({
  operationId: 'health',
  method: 'get',
  path: '/',
  tags: ['operations'],
  summary: 'Health of the catalog, every shard node and Temporal',
  responses: {
    200: jsonResponse(HealthSchema, 'Every part answers'),
    503: jsonResponse(HealthSchema, 'A part does not answer (its check has ok: false and the error)'),
    ...errorResponses(403),
  },
});

export function healthRoutes(s: Services): OpenAPIHono {
  const app = openApiApp();
  app.openapi(healthz, async (c) => {
    const report = await health(s);
    c.header('Cache-Control', 'no-store');
    return report.status === 'ok' ? c.json(report, 200) : c.json(report, 503);
  });
  return app;
}
