// Serves the API and website over HTTP (@hono/node-server). Port 0 picks a free port.
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { createSourceClients } from '../src/sources/factory.js';
import { createApp } from './app.js';
import type { ApiDeps } from './deps.js';

export { createApp } from './app.js';

export type { ApiDeps };

export async function startApiServer(deps: ApiDeps): Promise<{ close(): Promise<void>; port: number }> {
  const sources = createSourceClients(deps.config, deps.catalog);
  const app = createApp(deps, { sources });
  const { server, port } = await new Promise<{ server: ReturnType<typeof serve>; port: number }>((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port: deps.config.PORT, hostname: deps.config.HOST }, (info: AddressInfo) =>
      resolve({ server, port: info.port }),
    );
    server.once('error', reject);
  });
  deps.log.info({ url: `http://${deps.config.HOST}:${port}` }, 'API and website listening');
  return {
    port,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections would hold close() open; idle ones can go now.
        (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      });
      await sources.close().catch(() => {});
    },
  };
}
