/** @jsxImportSource hono/jsx */
// /admin on the website (placeholder until it lands).
import { Hono } from 'hono';
import type { Services } from '../service.js';
import type { RequestInfo } from '../guards.js';

export function adminWebRoutes(_s: Services, _info: RequestInfo): Hono {
  return new Hono();
}
