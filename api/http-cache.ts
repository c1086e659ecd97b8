// Conditional GETs (ETag, Cache-Control) and the response cache: placeholder until it lands.
import type { MiddlewareHandler } from 'hono';
import type { Services } from './service.js';

export function httpCache(_s: Services): MiddlewareHandler {
  return async (_c, next) => next();
}
