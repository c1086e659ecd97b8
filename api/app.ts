// The Hono app: REST API under /api, /healthz, and the server-rendered website, sharing one
// service layer. createApp is what tests use; startApiServer (server.ts) serves it over HTTP.
// In front of every route: security headers (CSP), the page renderer, the Host allowlist, CORS,
// the body limit, the cross-site check, and for /api the bearer token and JSON-only bodies
// (guards.ts, auth.ts); /static/* serves public/static (web/assets.ts).
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Hono } from 'hono';
import type { BlankEnv } from 'hono/types';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { secureHeaders } from 'hono/secure-headers';
import { createSourceClients, type SourceClients } from '../src/sources/factory.js';
import { requireBearer } from './auth.js';
import { ApiError, errorBody, resolveError } from './errors.js';
import { crossSiteGuard, hostAllowlist, jsonBodiesOnly, RequestInfo } from './guards.js';
import { communityRoutes } from './routes/communities.js';
import { healthRoutes } from './routes/health.js';
import { postRoutes } from './routes/posts.js';
import { shardRoutes } from './routes/shards.js';
import { streamRoutes } from './routes/stream.js';
import { userRoutes } from './routes/users.js';
import type { ApiDeps } from './deps.js';
import type { Services } from './service.js';
import { staticFiles } from './web/assets.js';
import { pageRenderer } from './web/layout.js';
import { renderErrorPage } from './web/pages/error.js';
import { webRoutes } from './web/routes.js';
import { adminWebRoutes } from './web/admin-routes.js';
import { adminRoutes } from './routes/admin.js';
import { graphqlRoutes } from './graphql/index.js';
import { httpCache } from './http-cache.js';
import { httpMetrics, metricsRoutes } from './metrics.js';
import { rateLimit } from './rate-limit.js';
import { docsSecureHeaders, isDocsPath, mountDocs, openApiDocument } from './openapi/document.js';
import { validationHook } from './validation.js';

export interface AppOptions {
  /** Source clients for add-time checks; made with the shared per-host budget if absent. */
  sources?: SourceClients;
}

const isApiPath = (path: string) =>
  path === '/api' ||
  path.startsWith('/api/') ||
  path === '/healthz' ||
  path.startsWith('/healthz/') ||
  path === '/graphql' ||
  path === '/metrics';

export function createApp(deps: ApiDeps, opts: AppOptions = {}): Hono {
  const s: Services = { ...deps, sources: opts.sources ?? createSourceClients(deps.config, deps.catalog) };
  const { config, log } = deps;
  const info = new RequestInfo(config.TRUSTED_PROXIES);
  const corsOrigins = (config.CORS_ORIGINS ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  // An OpenAPIHono: the sub-apps' createRoute definitions merge into its OpenAPI document (GET
  // /openapi.json), and a request failing a route's zod schemas becomes an ApiError (validationHook).
  const app = new OpenAPIHono<BlankEnv>({ defaultHook: validationHook });

  // First, so that it times every answer, refusals included.
  app.use('*', httpMetrics());
  // Prometheus scrapes: before the host, token and rate-limit checks (restricted to METRICS_ALLOWED_NETWORKS).
  app.route('/metrics', metricsRoutes(s, info));

  const siteHeaders = secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'none'"],
      styleSrc: ["'self'"],
      scriptSrc: ["'self'"],
      connectSrc: ["'self'"],
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
  });
  // /docs (Swagger UI) and GraphiQL (GET /graphql) alone also allow inline styles and data: images
  // and fonts (api/openapi/document.ts): their editors style themselves inline. Scripts stay 'self'.
  const docsHeaders = docsSecureHeaders();
  const isGraphiql = (p: string) => p === '/graphql' || p.startsWith('/graphql/');
  app.use('*', (c, next) => (isDocsPath(c.req.path) || isGraphiql(c.req.path) ? docsHeaders(c, next) : siteHeaders(c, next)));
  // Website pages render inside the layout (c.render); error pages too, so it comes first. API
  // answers are JSON only (errors included): they skip it, as it is on their hottest path.
  const renderer = pageRenderer(deps);
  app.use('*', (c, next) => (isApiPath(c.req.path) ? next() : renderer(c, next)));
  app.use('*', hostAllowlist(config.ALLOWED_HOSTS));

  if (corsOrigins.length) {
    app.use(
      '/api/*',
      cors({
        origin: corsOrigins.includes('*') ? '*' : corsOrigins,
        allowMethods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
        allowHeaders: ['Content-Type', 'Authorization'],
        maxAge: 600,
      }),
    );
  }

  const limit = bodyLimit({
    maxSize: config.API_BODY_LIMIT_BYTES,
    onError: (c) => {
      const e = new ApiError(413, 'payload_too_large', `The request body is larger than ${config.API_BODY_LIMIT_BYTES} bytes`);
      return isApiPath(c.req.path) ? c.json(errorBody(e), 413) : renderErrorPage(c, 413, e.message);
    },
  });
  app.use('*', async (c, next) => (c.req.method === 'GET' || c.req.method === 'HEAD' ? next() : limit(c, next)));

  app.use('*', crossSiteGuard(info, corsOrigins, isApiPath));
  // A user's own writes (under /api/users/:name/) take that user's key or the API token: checked by userRoutes.
  const adminOnly = requireBearer(config.API_TOKEN);
  app.use('/api/*', async (c, next) => (/^\/api\/users\/[^/]+\/./.test(c.req.path) ? next() : adminOnly(c, next)));
  app.use('/api/*', jsonBodiesOnly);
  // Keys and limits, then conditional GETs and the response cache (health and metrics are exempt).
  app.use('/api/*', rateLimit(s, info));
  app.use('/graphql', rateLimit(s, info));
  app.use('/api/*', httpCache(s));
  app.use('/static/*', ...staticFiles());
  app.route('/api/communities', communityRoutes(s));
  app.route('/api/posts', postRoutes(s));
  app.route('/api/shards', shardRoutes(deps));
  // GET /api/stream (server-sent events) and /api/ws (WebSocket): the live stream of posts.
  app.route('/api', streamRoutes(s));
  app.route('/api/users', userRoutes(s));
  app.route('/healthz', healthRoutes(s));
  app.route('/api/admin', adminRoutes(s));
  app.route('/graphql', graphqlRoutes(s));
  // GET /openapi.json (generated from the routes above) and GET /docs (Swagger UI, offline).
  mountDocs(app, openApiDocument(app));
  app.route('/admin', adminWebRoutes(s, info));
  app.route('/', webRoutes(s, info));

  app.notFound((c) => {
    if (isApiPath(c.req.path)) return c.json(errorBody(new ApiError(404, 'not_found', `No route ${c.req.method} ${c.req.path}`)), 404);
    return renderErrorPage(c, 404, 'There is no page at this address.');
  });

  app.onError((err, c) => {
    const e = resolveError(c, err, log);
    if (e.retryAfterSeconds) c.header('Retry-After', String(e.retryAfterSeconds));
    if (isApiPath(c.req.path)) return c.json(errorBody(e), e.status);
    return renderErrorPage(c, e.status, e.message);
  });

  return app;
}
