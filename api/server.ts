// PLACEHOLDER until the API lands: serves /healthz only.
import { serve } from '@hono/node-server';
import type { Client } from '@temporalio/client';
import { Hono } from 'hono';
import type { Config } from '../src/config.js';
import type { Sql } from '../src/db/pool.js';
import type { ShardRouter } from '../src/db/shards.js';
import type { Logger } from '../src/log.js';

export interface ApiDeps {
  config: Config;
  catalog: Sql;
  router: ShardRouter;
  temporal: Client;
  log: Logger;
}

export async function startApiServer(deps: ApiDeps): Promise<{ close(): Promise<void>; port: number }> {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ ok: true }));
  const server = serve({ fetch: app.fetch, port: deps.config.PORT, hostname: deps.config.HOST });
  return { port: deps.config.PORT, close: () => new Promise((r) => server.close(() => r())) };
}
