// GraphiQL at GET /graphql (for browsers: Accept text/html), offline: everything comes from the npm
// package @graphql-yoga/render-graphiql (its bundle, stylesheet and Monaco workers), served from
// this process as same-origin files, so the page runs with no inline script (`script-src 'self'`)
// and no request leaves the site. The package's own page inlines all of it (and starts the workers
// from blob: URLs); here the same parts are split into files under /graphql/graphiql/.
import { createHash } from 'node:crypto';
import type { Context, Hono } from 'hono';
import { css, editorWorkerService, favicon, graphqlWorker, js, jsonWorker } from '@graphql-yoga/render-graphiql/graphiql';

const ASSET_BASE = '/graphql/graphiql';
const WORKERS = { editorWorkerService: 'editor.worker.js', json: 'json.worker.js', graphql: 'graphql.worker.js' } as const;

/** What GraphiQL opens with. */
const DEFAULT_QUERY = `# lemmy-fetcher: tracked communities and their newest posts.
# Mutations need "Authorization: Bearer <API_TOKEN>" (Headers tab) when the API token is set.
query Newest {
  communities(first: 10) {
    edges {
      node {
        ref
        title
        status { state lastSyncAt }
        posts(first: 3) { edges { node { title published url } } }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
`;

const START = `(function () {
  var base = ${JSON.stringify(ASSET_BASE)};
  var workers = ${JSON.stringify(WORKERS)};
  self.MonacoEnvironment = {
    globalAPI: false,
    getWorkerUrl: function (_moduleId, label) { return base + '/' + (workers[label] || workers.editorWorkerService); },
  };
})();
`;

const RENDER = `
(function () {
  var root = document.getElementById('root');
  YogaGraphiQL.renderYogaGraphiQL(root, JSON.parse(root.getAttribute('data-options')));
})();
`;

interface Asset {
  body: string;
  type: string;
  /** A hash of the content: the ETag, and the `?v=` that makes a new version a new URL. */
  hash: string;
}

const JS = 'text/javascript; charset=utf-8';
let assets: Map<string, Asset> | undefined;
/** Built on first use (about 9 MB of text), then kept. */
function assetMap(): Map<string, Asset> {
  const asset = (body: string, type: string): Asset => ({
    body,
    type,
    hash: createHash('sha256').update(body).digest('base64url').slice(0, 16),
  });
  assets ??= new Map<string, Asset>([
    ['graphiql.js', asset(START + js + ';\n' + RENDER, JS)],
    ['graphiql.css', asset(css, 'text/css; charset=utf-8')],
    [WORKERS.editorWorkerService, asset(editorWorkerService, JS)],
    [WORKERS.json, asset(jsonWorker, JS)],
    [WORKERS.graphql, asset(graphqlWorker, JS)],
  ]);
  return assets;
}

/**
 * The page's own policy: scripts and workers only from this site; the package's Monaco editor adds
 * <style> elements at run time and its icon font is a data: URL, so styles may be inline and fonts
 * data:. Nothing may be fetched from elsewhere (connect-src 'self').
 */
export const GRAPHIQL_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "worker-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self' data:",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const escapeAttr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

export function graphiqlPage(c: Context): Response {
  const v = (file: string) => assetMap().get(file)!.hash;
  const options = { endpoint: '/graphql', title: 'lemmy-fetcher GraphQL', defaultQuery: DEFAULT_QUERY };
  const html = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>lemmy-fetcher GraphQL</title>
    <link rel="icon" href="${escapeAttr(favicon)}" />
    <link rel="stylesheet" href="${ASSET_BASE}/graphiql.css?v=${v('graphiql.css')}" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>GraphiQL needs JavaScript; without it, POST queries to /graphql.</noscript>
    <div id="root" data-options="${escapeAttr(JSON.stringify(options))}"></div>
    <script src="${ASSET_BASE}/graphiql.js?v=${v('graphiql.js')}"></script>
  </body>
</html>
`;
  c.header('Content-Security-Policy', GRAPHIQL_CSP);
  c.header('Cache-Control', 'no-cache');
  return c.html(html);
}

/** GET /graphql/graphiql/:file: the page's script, stylesheet and workers. */
export function graphiqlAssets(app: Hono): void {
  app.get('/graphiql/:file', (c) => {
    const asset = assetMap().get(c.req.param('file'));
    if (!asset) return c.notFound();
    const etag = `"${asset.hash}"`;
    if (c.req.header('if-none-match') === etag) return c.body(null, 304, { ETag: etag });
    return c.body(asset.body, 200, { 'Content-Type': asset.type, 'Cache-Control': 'public, max-age=86400', ETag: etag });
  });
}

/** Whether a GET /graphql is a browser asking for a page (not a GraphQL GET with ?query=). */
export function wantsGraphiql(c: Context): boolean {
  return c.req.method === 'GET' && !c.req.query('query') && /\btext\/html\b/.test(c.req.header('accept') ?? '');
}
