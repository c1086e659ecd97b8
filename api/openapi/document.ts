// GET /openapi.json: the OpenAPI 3.1 document, generated from the route definitions (createRoute)
// merged into the app's registry by app.route; and GET /docs: Swagger UI, served offline from the
// swagger-ui-dist package (no CDN), with its initializer as a same-origin script (the site's CSP
// allows no inline script; /docs's CSP allows only the inline styles and data: images Swagger UI uses).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Handler, Hono, MiddlewareHandler } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { VERSION } from '../../src/config.js';
import { errorResponses } from './common.js';

export const OPENAPI_PATH = '/openapi.json';
export const DOCS_PATH = '/docs';

const TAGS = [
  { name: 'communities', description: 'Tracked Lemmy communities, feeds and Mastodon timelines' },
  { name: 'posts', description: "Posts, newest first, in keyset pages (`limit`, `before` = the previous page's `next`)" },
  { name: 'users', description: 'Users, their follows, feeds and activities' },
  { name: 'stream', description: 'The live stream of posts (server-sent events, WebSocket)' },
  { name: 'shards', description: 'Post-shard nodes' },
  { name: 'admin', description: 'Runtime configuration' },
  { name: 'graphql', description: 'The GraphQL endpoint (its schema by introspection)' },
  { name: 'operations', description: 'Health' },
];

const GraphQLRequest = z
  .object({
    query: z.string().openapi({ example: '{ communities(first: 5) { edges { node { ref title } } } }' }),
    variables: z.record(z.string(), z.unknown()).optional(),
    operationName: z.string().optional(),
  })
  .openapi('GraphQLRequest');
const GraphQLResponse = z
  .object({ data: z.unknown().optional(), errors: z.array(z.object({ message: z.string() }).passthrough()).optional() })
  .openapi('GraphQLResponse');

/** Paths served by other means than createRoute, described here: GraphQL (one operation per method). */
function registerExtras(app: OpenAPIHono): void {
  const r = app.openAPIRegistry;
  r.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: "The API token (API_TOKEN) for changes; under /api/users/{name}/, that user's key works too",
  });
  const answers = {
    200: { description: 'The result (errors, if any, in `errors`)', content: { 'application/json': { schema: GraphQLResponse } } },
    400: {
      description: 'Not a GraphQL request, or a query over the depth or cost limit',
      content: { 'application/json': { schema: GraphQLResponse } },
    },
    ...errorResponses(401, 403, 429),
  };
  r.registerPath({
    method: 'post',
    path: '/graphql',
    operationId: 'graphql',
    tags: ['graphql'],
    summary: 'GraphQL queries and mutations (mutations need the bearer token)',
    security: [{ bearer: [] }, {}],
    request: { body: { required: true, content: { 'application/json': { schema: GraphQLRequest } } } },
    responses: answers,
  });
  r.registerPath({
    method: 'get',
    path: '/graphql',
    operationId: 'graphqlGet',
    tags: ['graphql'],
    summary: 'GraphQL queries as ?query= (GraphiQL in a browser)',
    request: { query: z.object({ query: z.string().optional(), variables: z.string().optional(), operationName: z.string().optional() }) },
    responses: { ...answers, 200: { ...answers[200], content: { ...answers[200].content, 'text/html': { schema: z.string() } } } },
  });
}

type Doc = ReturnType<OpenAPIHono['getOpenAPI31Document']>;

const ERROR_REF = { $ref: '#/components/schemas/Error' };
const CROSS_CUTTING: Record<number, string> = {
  304: 'Not modified: If-None-Match matched the ETag',
  401: 'A bearer key is missing or wrong',
  403: 'Not allowed (another user, another site, or a Host that is not in ALLOWED_HOSTS)',
  413: 'The body is too large (API_BODY_LIMIT_BYTES)',
  415: 'The body is not JSON',
  429: 'Rate limited (see Retry-After and RateLimit)',
};

/**
 * Answers that middleware in front of every route gives (app.ts), added to each operation that
 * does not list them: the Host allowlist (403), keys (401) and rate limits (429) on /api and
 * /graphql, the body limit and JSON-only bodies (413, 415) on writes, conditional GETs (304).
 */
function addCrossCutting(doc: Doc): Doc {
  for (const [p, item] of Object.entries(doc.paths ?? {})) {
    for (const method of ['get', 'post', 'put', 'patch', 'delete'] as const) {
      const op = item?.[method];
      if (!op) continue;
      const api = p.startsWith('/api/') || p === '/graphql';
      const streaming = p === '/api/stream' || p === '/api/ws';
      const statuses = [
        403,
        ...(api ? [401, 429] : []),
        ...(api && method !== 'get' ? [413, 415] : []),
        ...(api && method === 'get' && !streaming && p !== '/graphql' ? [304] : []),
      ];
      op.responses ??= {};
      for (const status of statuses) {
        if (op.responses[status]) continue;
        op.responses[status] =
          status === 304
            ? { description: CROSS_CUTTING[status] }
            : { description: CROSS_CUTTING[status], content: { 'application/json': { schema: ERROR_REF } } };
      }
    }
  }
  return doc;
}

/** The document of `app`: generated once, after every route is mounted. */
export function openApiDocument(app: OpenAPIHono): () => object {
  let doc: object | undefined;
  return () =>
    (doc ??=
      (registerExtras(app),
      addCrossCutting(
        app.getOpenAPI31Document({
          openapi: '3.1.0',
          info: {
            title: 'lemmy-fetcher',
            version: VERSION,
            description:
              'Tracks Lemmy communities, feeds and Mastodon timelines (one Temporal workflow each) and serves their posts, stored across Postgres shard nodes. Errors are `{"error":{"code","message","field"?}}`.',
          },
          tags: TAGS,
        }),
      )));
}

const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lemmy-fetcher API</title>
<link rel="stylesheet" href="${DOCS_PATH}/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="${DOCS_PATH}/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="${DOCS_PATH}/assets/swagger-ui-bundle.js"></script>
<script src="${DOCS_PATH}/init.js"></script>
</body>
</html>
`;

// No validator badge (it would load an image from validator.swagger.io); the document is ours.
const INIT_JS = `window.ui = SwaggerUIBundle({
  url: ${JSON.stringify(OPENAPI_PATH)},
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
});
`;

const ASSET_TYPES: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
  'favicon-16x16.png': 'image/png',
};

const SWAGGER_DIR = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

interface Asset {
  body: Uint8Array;
  type: string;
  etag: string;
}

const asset = (body: string | Uint8Array, type: string): Asset => {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  return { body: bytes, type, etag: `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 22)}"` };
};

/** CSP for /docs: the site's, plus inline styles (Swagger UI sets style attributes) and data: images. */
export const docsSecureHeaders = (): MiddlewareHandler =>
  secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'none'"],
      styleSrc: ["'self'", "'unsafe-inline'"],
      scriptSrc: ["'self'"],
      connectSrc: ["'self'"],
      imgSrc: ["'self'", 'data:'],
      fontSrc: ["'self'", 'data:'],
      formAction: ["'self'"],
      baseUri: ["'none'"],
      frameAncestors: ["'none'"],
    },
    referrerPolicy: 'same-origin',
    crossOriginResourcePolicy: false,
    crossOriginEmbedderPolicy: false,
  });

export const isDocsPath = (p: string) => p === DOCS_PATH || p.startsWith(`${DOCS_PATH}/`);

/** GET /openapi.json and GET /docs (+ its assets) on `app`. */
export function mountDocs(app: Hono, document: () => object): void {
  const files = new Map<string, Asset>();
  const load = (name: string): Asset | undefined => {
    if (name === 'init.js') return (files.get(name) ?? files.set(name, asset(INIT_JS, 'text/javascript; charset=utf-8')).get(name))!;
    const type = ASSET_TYPES[name];
    if (!type) return undefined;
    if (!files.has(name)) files.set(name, asset(readFileSync(path.join(SWAGGER_DIR, name)), type));
    return files.get(name);
  };
  const serve: Handler = (c) => {
    const file = load(c.req.param('file') ?? 'init.js');
    if (!file) return c.notFound();
    if (c.req.header('if-none-match') === file.etag) return c.body(null, 304, { ETag: file.etag });
    return c.body(file.body as Uint8Array<ArrayBuffer>, 200, { 'Content-Type': file.type, ETag: file.etag, 'Cache-Control': 'no-cache' });
  };

  app.get(OPENAPI_PATH, (c) => {
    c.header('Cache-Control', 'no-cache');
    return c.json(document());
  });
  app.get(DOCS_PATH, (c) => c.html(DOCS_HTML));
  app.get(`${DOCS_PATH}/init.js`, serve);
  app.get(`${DOCS_PATH}/assets/:file`, serve);
}
