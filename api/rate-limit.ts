// Per-key / per-IP rate limiting for /api and /graphql: placeholder until it lands.
import type { MiddlewareHandler } from 'hono';
import type { Services } from './service.js';
import type { RequestInfo } from './guards.js';

export function rateLimit(_s: Services, _info: RequestInfo): MiddlewareHandler {
  return async (_c, next) => next();
}
