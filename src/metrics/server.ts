// The worker's GET /metrics: a small node:http server beside the Temporal worker, with the same
// network check as the API's /metrics (METRICS_ALLOWED_NETWORKS, by the TCP peer's address).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import { METRICS_FORBIDDEN_MESSAGE, networkCheck, renderMetrics } from './index.js';

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

function sendError(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify({ error: { code, message } }));
}

/**
 * Serves this process's metrics on host:port (port 0: any free one). Resolves undefined, with a
 * warning, when the port is taken (another worker on this machine has it): the worker still runs.
 */
export async function startMetricsServer(opts: {
  host: string;
  port: number;
  allowedNetworks: readonly string[];
  log: Logger;
}): Promise<MetricsServer | undefined> {
  const allowed = networkCheck(opts.allowedNetworks);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') return sendError(res, 404, 'not_found', `No route ${req.method} ${path}`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return sendError(res, 405, 'method_not_allowed', `${req.method} is not allowed on /metrics`);
    }
    if (!allowed(req.socket.remoteAddress)) return sendError(res, 403, 'metrics_forbidden', METRICS_FORBIDDEN_MESSAGE);
    renderMetrics().then(
      ({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: Error) => {
        opts.log.error({ err: err.message }, 'metrics: cannot collect');
        sendError(res, 500, 'internal_error', 'The metrics could not be collected');
      },
    );
  });
  server.keepAliveTimeout = 65_000; // longer than Prometheus' scrape interval: one connection per scraper
  const listening = await new Promise<boolean>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL') {
        opts.log.warn(
          { host: opts.host, port: opts.port, err: err.code },
          'metrics: cannot listen (set WORKER_METRICS_PORT to a free port, or 0 for none); running without /metrics',
        );
        resolve(false);
      } else reject(err);
    });
    server.listen(opts.port, opts.host, () => resolve(true));
  });
  if (!listening) return undefined;
  const port = (server.address() as AddressInfo).port;
  opts.log.info({ url: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}/metrics` }, 'metrics listening');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
