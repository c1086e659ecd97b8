// HTTP metrics for the API and website, and GET /metrics (Prometheus text format).
//  - httpMetrics(): the app's first middleware; times every answer (refusals, errors and 404s
//    included) into lemmy_fetcher_http_request_duration_seconds by method, route PATTERN (the
//    route the request was for, e.g. /api/communities/:ref/posts, even when a guard answered
//    first) and status.
//  - metricsRoutes(): GET /metrics, mounted before the host, token and rate-limit checks, served
//    only to clients in METRICS_ALLOWED_NETWORKS (the TCP peer, or behind a proxy in
//    TRUSTED_PROXIES the address it forwards); anyone else gets 403 metrics_forbidden.
import type { Context, MiddlewareHandler } from 'hono';
import { Hono } from 'hono';
import { matchedRoutes, routePath } from 'hono/route';
import { METRICS_FORBIDDEN_MESSAGE, networkCheck, observeHttpRequest, renderMetrics } from '../src/metrics/index.js';
import { ApiError } from './errors.js';
import type { RequestInfo } from './guards.js';
import type { Services } from './service.js';

/**
 * The pattern of the route a request was for: the last matched handler registered for a method
 * (middleware is registered for ALL), else the route that answered (e.g. `/static/*`, or `*` when
 * nothing matched). Bounded by the routes the app has, whatever paths clients send.
 */
export function routeLabel(c: Context): string {
  const routes = matchedRoutes(c);
  for (let i = routes.length - 1; i >= 0; i--) if (routes[i].method !== 'ALL') return routes[i].path;
  return routePath(c) || '*';
}

export function httpMetrics(): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      observeHttpRequest(c.req.method, routeLabel(c), c.res.status, (performance.now() - started) / 1000);
    }
  };
}

export function metricsRoutes(s: Services, info: RequestInfo): Hono {
  const allowed = networkCheck(s.config.METRICS_ALLOWED_NETWORKS);
  const app = new Hono();
  app.get('/', async (c) => {
    if (!allowed(info.clientIp(c))) throw new ApiError(403, 'metrics_forbidden', METRICS_FORBIDDEN_MESSAGE);
    const { contentType, body } = await renderMetrics();
    return c.body(body, 200, { 'content-type': contentType, 'cache-control': 'no-store' });
  });
  return app;
}
