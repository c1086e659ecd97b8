// Serves the API and website over HTTP (@hono/node-server). Port 0 picks a free port.
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { WebSocketServer } from 'ws';
import { communityCounts } from '../src/db/communities.js';
import { reportCatalogCounts, reportWorkflowTaskBacklogs } from '../src/metrics/index.js';
import { createSourceClients } from '../src/sources/factory.js';
import { stopStreamHub } from '../src/stream/hub.js';
import { workflowTaskBacklogs } from '../src/tracking.js';
import { createApp } from './app.js';
import type { ApiDeps } from './deps.js';

export { createApp } from './app.js';

export type { ApiDeps };

export async function startApiServer(deps: ApiDeps): Promise<{ close(): Promise<void>; port: number }> {
  const sources = createSourceClients(deps.config, deps.catalog);
  const app = createApp(deps, { sources });
  // WebSocket upgrades (GET /api/ws) are handed to the app by @hono/node-server.
  const wss = new WebSocketServer({ noServer: true });
  const { server, port } = await new Promise<{ server: ReturnType<typeof serve>; port: number }>((resolve, reject) => {
    const server = serve(
      { fetch: app.fetch, port: deps.config.PORT, hostname: deps.config.HOST, websocket: { server: wss } },
      (info: AddressInfo) => resolve({ server, port: info.port }),
    );
    server.once('error', reject);
  });
  // The fleet's state on GET /metrics (start-up's progress, the overdue), from the catalog at each scrape.
  const stopCounts = reportCatalogCounts(() => communityCounts(deps.catalog, deps.config.COMMUNITY_OVERDUE_SECONDS));
  // And Temporal's: workflow tasks no worker has taken yet (a start-up outrunning its workers).
  const stopBacklogs = reportWorkflowTaskBacklogs(() => workflowTaskBacklogs(deps));
  deps.log.info({ url: `http://${deps.config.HOST}:${port}` }, 'API and website listening');
  return {
    port,
    async close() {
      stopCounts();
      stopBacklogs();
      // Live streams never end by themselves: end them first so their connections can close.
      await stopStreamHub(deps.router);
      for (const ws of wss.clients) ws.close(1001, 'server shutting down');
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections would hold close() open; idle ones can go now.
        (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      });
      await sources.close().catch(() => {});
    },
  };
}
