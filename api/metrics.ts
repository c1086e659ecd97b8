// HTTP metrics middleware and GET /metrics for the API: placeholder until metrics land.
import type { MiddlewareHandler } from 'hono';
import { Hono } from 'hono';
import type { Services } from './service.js';
import type { RequestInfo } from './guards.js';

export function httpMetrics(): MiddlewareHandler {
  return async (_c, next) => next();
}

export function metricsRoutes(_s: Services, _info: RequestInfo): Hono {
  return new Hono();
}
