// The Hono app: REST API under /api, /healthz, and the server-rendered website, sharing one
// service layer. createApp is what tests use; startApiServer (server.ts) serves it over HTTP.
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { secureHeaders } from 'hono/secure-headers';
import type { LemmyClient } from '../src/lemmy/client.js';
import { createLemmyClient } from '../src/lemmy/factory.js';
import { requireBearer } from './auth.js';
import { ApiError, errorBody, resolveError } from './errors.js';
import { communityRoutes } from './routes/communities.js';
import { healthRoutes } from './routes/health.js';
import { postRoutes } from './routes/posts.js';
import { shardRoutes } from './routes/shards.js';
import type { ApiDeps } from './server.js';
import { statusClientOf, type Services } from './service.js';
import { renderErrorPage, webRoutes } from './web/routes.js';

export interface AppOptions {
  /** Lemmy client for add-time checks; one with the shared per-instance budget is made if absent. */
  lemmy?: LemmyClient;
}

const isApiPath = (path: string) => path === '/api' || path.startsWith('/api/') || path === '/healthz' || path.startsWith('/healthz/');

export function createApp(deps: ApiDeps, opts: AppOptions = {}): Hono {
  const s: Services = { ...deps, lemmy: opts.lemmy ?? createLemmyClient(deps.config, deps.catalog), statusClient: statusClientOf(deps) };
  const { config, log } = deps;
  const app = new Hono();

  app.use(
    '*',
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'none'"],
        styleSrc: ["'unsafe-inline'"],
        imgSrc: ['https:', 'http:', 'data:'],
        formAction: ["'self'"],
        baseUri: ["'none'"],
        frameAncestors: ["'none'"],
      },
      // Not "no-referrer": with it browsers send `Origin: null` on same-site form posts, which the
      // website's cross-site check must refuse. "same-origin" still leaks nothing to other sites.
      referrerPolicy: 'same-origin',
      crossOriginResourcePolicy: false,
      crossOriginEmbedderPolicy: false,
    }),
  );

  if (config.CORS_ORIGINS) {
    const origins = config.CORS_ORIGINS.split(',').map((o) => o.trim()).filter(Boolean);
    app.use(
      '/api/*',
      cors({
        origin: origins.includes('*') ? '*' : origins,
        allowMethods: ['GET', 'POST', 'PATCH', 'DELETE', 'OPTIONS'],
        allowHeaders: ['Content-Type', 'Authorization'],
        maxAge: 600,
      }),
    );
  }

  const limit = bodyLimit({
    maxSize: config.API_BODY_LIMIT_BYTES,
    onError: (c) => {
      const e = new ApiError(413, 'payload_too_large', `The request body is larger than ${config.API_BODY_LIMIT_BYTES} bytes`);
      return isApiPath(c.req.path) ? c.json(errorBody(e), 413) : c.html(renderErrorPage(deps, 413, e.message), 413);
    },
  });
  app.use('*', async (c, next) => (c.req.method === 'GET' || c.req.method === 'HEAD' ? next() : limit(c, next)));

  app.use('/api/*', requireBearer(config.API_TOKEN));
  app.route('/api/communities', communityRoutes(s));
  app.route('/api/posts', postRoutes(s));
  app.route('/api/shards', shardRoutes(deps));
  app.route('/healthz', healthRoutes(s));
  app.route('/', webRoutes(s));

  app.notFound((c) => {
    if (isApiPath(c.req.path)) return c.json(errorBody(new ApiError(404, 'not_found', `No route ${c.req.method} ${c.req.path}`)), 404);
    return c.html(renderErrorPage(deps, 404, 'There is no page at this address.'), 404);
  });

  app.onError((err, c) => {
    const e = resolveError(c, err, log);
    if (isApiPath(c.req.path)) return c.json(errorBody(e), e.status);
    return c.html(renderErrorPage(deps, e.status, e.message), e.status);
  });

  return app;
}
