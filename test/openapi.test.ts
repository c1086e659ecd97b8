// The OpenAPI document (GET /openapi.json) against the app that serves it: every registered API
// route is in it, the conformance checker the contract tests use refuses what the document does
// not say, errors name their field, and the interactive docs (GET /docs) work offline in a real
// browser under the CSP, with no request leaving loopback.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Hono } from 'hono';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import { startApiServer, type ApiDeps } from '../api/server.js';
import { createLogger } from '../src/log.js';
import { call } from './support/api.js';
import { Conformance, conformanceOf, type OpenApiDoc } from './support/openapi.js';
import { haveChromium as haveChromiumFor, launchChromium } from './support/browser.js';
import { createStack, type Stack, apiDeps } from './support/stack.js';

const haveChromium = haveChromiumFor('openapi.test.ts');
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
const SWAGGER_DIR = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

/**
 * Where the document describes the API; the website, /static, /docs, /openapi.json, /metrics and
 * GraphiQL's assets (/graphql/…) are not.
 */
const isApiRoute = (p: string) => p === '/api' || p.startsWith('/api/') || p === '/healthz' || p === '/graphql';

let stack: Stack;
let deps: ApiDeps;
let app: Hono;
let doc: OpenApiDoc;

beforeAll(async () => {
  stack = await createStack({ worker: false });
  deps = apiDeps(stack, createLogger({ level: 'silent' }));
  app = createApp(deps);
  doc = (await conformanceOf(app)).doc;
});

afterAll(async () => {
  await stack?.stop();
});

describe('GET /openapi.json', () => {
  it('is an OpenAPI 3.1 document with title, version, bearer security and tags', async () => {
    const res = await app.request('/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = await res.json();
    expect(body.openapi).toBe('3.1.0');
    expect(body.info).toMatchObject({ title: 'lemmy-fetcher', version: pkg.version });
    expect(body.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(body.tags.map((t: { name: string }) => t.name)).toEqual(
      expect.arrayContaining(['communities', 'posts', 'users', 'shards', 'stream']),
    );
    // Writes say they need the key; the error body is one shared schema with its optional field.
    expect(body.paths['/api/communities'].post.security).toEqual([{ bearer: [] }]);
    expect(body.components.schemas.Error.properties.error.properties.field).toMatchObject({ type: 'string' });
    expect(body.paths['/api/communities/{ref}'].delete.responses['404'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/Error',
    });
    // The request schemas that validate are the ones documented.
    expect(body.paths['/api/posts'].get.parameters).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          name: 'limit',
          in: 'query',
          schema: expect.objectContaining({ type: 'integer', minimum: 1, maximum: 100 }),
        }),
      ]),
    );
    expect(body.components.schemas.AddCommunity.anyOf).toHaveLength(3);
    // Operation ids for client generators, unique across the document.
    const ids = Object.values(body.paths).flatMap((ops) =>
      Object.values(ops as Record<string, { operationId?: string }>).map((o) => o.operationId),
    );
    expect(ids).toContain('communityPosts');
    expect(new Set(ids.filter(Boolean)).size).toBe(ids.filter(Boolean).length);
    expect(body.paths['/api/stream'].get.responses['200'].content).toHaveProperty(['text/event-stream']);
  });

  it('lists every registered route under /api, /healthz and /graphql, and nothing that is not served', () => {
    const registered = new Set(
      app.routes
        .filter((r) => r.method !== 'ALL' && !r.path.includes('*') && isApiRoute(r.path))
        .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:([^/]+)/g, '{$1}')}`),
    );
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([p, ops]) =>
        Object.keys(ops)
          .filter((m) => m !== 'parameters')
          .map((m) => `${m} ${p}`),
      ),
    );
    expect(registered.size).toBeGreaterThan(20);
    expect(
      [...registered].filter((r) => !documented.has(r)),
      'routes missing from the document',
    ).toEqual([]);
    // GraphQL is one operation per method, served by graphql-yoga (its own schema by introspection).
    const served = new Set([...registered, 'post /graphql', 'get /graphql']);
    expect(
      [...documented].filter((d) => !served.has(d)),
      'documented but not served',
    ).toEqual([]);
    expect(documented).toContain('get /api/stream');
    expect(documented).toContain('get /healthz');
  });

  it('the conformance check refuses an undocumented status, a body off its schema, and an unknown operation', async () => {
    const c = new Conformance(doc);
    const community = (await call(app, 'GET', '/api/communities')).json;
    expect(community).toEqual({ communities: [], next: null });
    expect(
      c.problems('GET', '/api/communities', { status: 200, contentType: 'application/json', text: '{"communities":[],"next":null}' }),
    ).toEqual([]);
    expect(c.problems('GET', '/api/communities', { status: 418, contentType: 'application/json', text: '{}' })[0]).toMatch(
      /GET \/api\/communities → 418: status 418 is not documented/,
    );
    expect(
      c.problems('GET', '/api/communities', {
        status: 200,
        contentType: 'application/json',
        text: '{"communities":[{"id":"x"}],"next":null}',
      })[0],
    ).toMatch(/GET \/api\/communities → 200: body\/communities\/0/);
    // Closed: a field the document does not describe fails too.
    expect(
      c.problems('GET', '/api/communities', {
        status: 200,
        contentType: 'application/json',
        text: '{"communities":[],"next":null,"extra":1}',
      })[0],
    ).toMatch(/must NOT have additional properties.*extra/);
    expect(c.problems('GET', '/api/posts', { status: 200, contentType: 'text/html', text: '<p>' })[0]).toMatch(
      /content type "text\/html" is not documented/,
    );
    expect(c.problems('DELETE', '/api/communities/1', { status: 204, contentType: null, text: 'x' })[0]).toMatch(
      /documented without a body/,
    );
    expect(c.problems('PUT', '/api/communities/1', { status: 200, contentType: 'application/json', text: '{}' })[0]).toMatch(
      /not in the document/,
    );
    expect(
      c.problems('PUT', '/api/communities/1', {
        status: 404,
        contentType: 'application/json',
        text: '{"error":{"code":"not_found","message":"No route"}}',
      }),
    ).toEqual([]);
    expect(c.operation('GET', '/api/users/alice/follows')?.template).toBe('/api/users/{name}/follows');
    expect(c.operation('GET', `/api/communities/${encodeURIComponent('a/b@c')}/posts?limit=2`)?.template).toBe(
      '/api/communities/{ref}/posts',
    );
  });
});

describe('errors: one type with code and field', () => {
  const post = async (body: string, type = 'application/json') => {
    const r = await app.request('/api/communities', { method: 'POST', body, headers: { 'content-type': type } });
    return { status: r.status, json: await r.json() };
  };

  it('names the field of bad input, and keeps the codes of JSON and media-type errors', async () => {
    expect(await post(JSON.stringify({ community: 'technology@lemmy.world', refreshSeconds: 0 }))).toEqual({
      status: 400,
      json: { error: { code: 'invalid_input', message: 'refreshSeconds: must be at least 1', field: 'refreshSeconds' } },
    });
    expect(await post(JSON.stringify({ instance: 'https://lemmy.world', name: 'bad name!' }))).toMatchObject({
      status: 400,
      json: { error: { code: 'invalid_input', field: 'name', message: expect.stringMatching(/^name: /) } },
    });
    // An empty object: the most specific branch of the body's union names its first missing field.
    expect(await post('{}')).toMatchObject({
      status: 400,
      json: { error: { code: 'invalid_input', field: 'instance', message: expect.stringMatching(/^instance: /) } },
    });
    expect(await post('{"x":')).toEqual({
      status: 400,
      json: { error: { code: 'invalid_json', message: 'The request body is not valid JSON' } },
    });
    expect(await post('x=1', 'application/x-www-form-urlencoded')).toMatchObject({
      status: 415,
      json: { error: { code: 'unsupported_media_type' } },
    });
    const limit = await call(app, 'GET', '/api/posts?limit=0');
    expect(limit).toEqual({
      status: 400,
      json: { error: { code: 'invalid_limit', message: 'limit must be a whole number from 1 to 100', field: 'limit' } },
    });
    const cursor = await call(app, 'GET', '/api/communities?before=nope');
    expect(cursor.json.error).toMatchObject({ code: 'invalid_cursor', field: 'before' });
    const user = await call(app, 'GET', '/api/users/Bad');
    expect(user.json.error).toMatchObject({ code: 'invalid_input', field: 'name' });
  });

  it('the website shows a field error next to its field (from `field`, not the message)', async () => {
    const res = await app.request('/communities', {
      method: 'POST',
      body: new URLSearchParams({ instance: 'https://lemmy.world', name: 'bad name!' }),
    });
    expect(res.status).toBe(400);
    const html = await res.text();
    expect(html).toMatch(/id="name-error"[^>]*>[^<]*must/);
  });
});

describe('GET /docs', () => {
  it('serves Swagger UI from swagger-ui-dist with a same-origin initializer, under a CSP relaxed only for /docs', async () => {
    const res = await app.request('/docs');
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script>[^<]/);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/script-src[^;]*unsafe/);
    expect(csp).toMatch(/style-src 'self' 'unsafe-inline'/);
    expect(csp).toMatch(/connect-src 'self'/);
    const home = (await app.request('/')).headers.get('content-security-policy') ?? '';
    expect(home).not.toContain('unsafe-inline');

    for (const src of [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1])) {
      const asset = await app.request(src);
      expect(asset.status, src).toBe(200);
      const name = path.basename(src);
      if (name !== 'init.js')
        expect(Buffer.from(await asset.arrayBuffer()).equals(readFileSync(path.join(SWAGGER_DIR, name))), src).toBe(true);
      else expect(await asset.text()).toMatch(/validatorUrl: null/);
    }
    expect((await app.request('/docs/assets/package.json')).status).toBe(404);
  });

  describe.skipIf(!haveChromium)('in a real browser', () => {
    let browser: Browser;
    let server: { close(): Promise<void>; port: number };

    beforeAll(async () => {
      [browser, server] = await Promise.all([
        launchChromium(),
        startApiServer({ ...deps, config: { ...deps.config, PORT: 0, HOST: '127.0.0.1' } }),
      ]);
    });
    afterAll(async () => {
      await browser?.close();
      await server?.close();
    });

    it('renders every operation, with no CSP violation and no request leaving loopback', async () => {
      const page = await browser.newPage();
      const requests: string[] = [];
      const problems: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      page.on('console', (m) => {
        if (m.type() === 'error' || /Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      try {
        await page.goto(`http://127.0.0.1:${server.port}/docs`);
        await page.locator('.opblock').first().waitFor({ timeout: 20_000 });
        // Swagger UI lists an operation under each of its tags.
        const blocks = Object.values(doc.paths).reduce(
          (n, ops) => n + Object.values(ops).reduce((m: number, op: { tags?: string[] }) => m + Math.max(1, op.tags?.length ?? 0), 0),
          0,
        );
        expect(await page.locator('.opblock').count()).toBe(blocks);
        expect(await page.locator('.info .title').textContent()).toContain('lemmy-fetcher');
        // Open one operation: its parameters and responses render (inline styles allowed, scripts not).
        await page.locator('#operations-communities-communityPosts .opblock-summary').first().click();
        await page.locator('.opblock.is-open .parameters').first().waitFor({ timeout: 10_000 });
        expect(problems).toEqual([]);
        expect(requests.length).toBeGreaterThan(3);
        expect(requests.filter((u) => !u.startsWith(`http://127.0.0.1:${server.port}/`) && !u.startsWith('data:'))).toEqual([]);
        expect(requests).toContain(`http://127.0.0.1:${server.port}/openapi.json`);
      } finally {
        await page.close();
      }
    });
  });
});
