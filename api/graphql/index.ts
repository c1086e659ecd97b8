// GET/POST /graphql: placeholder until the GraphQL endpoint lands.
import { Hono } from 'hono';
import type { Services } from '../service.js';

export function graphqlRoutes(_s: Services): Hono {
  return new Hono();
}
