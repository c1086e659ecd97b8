// /api/admin: runtime configuration (placeholder until it lands).
import { Hono } from 'hono';
import type { Services } from '../service.js';

export function adminRoutes(_s: Services): Hono {
  return new Hono();
}
