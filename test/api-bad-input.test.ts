// Table-driven bad input: every case must be a 4xx JSON error `{"error":{"code","message"}}`
// (or an HTML page for the website), never a 5xx. Runs with ALLOW_PRIVATE_INSTANCES=false.
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import { encodeCursor } from '../src/db/posts.js';
import { createLogger } from '../src/log.js';
import { errorBodyLike } from './support/api.js';
import { expectConforms } from './support/openapi.js';
import { createStack, type Stack, apiDeps } from './support/stack.js';

interface Case {
  name: string;
  method?: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
  status: number;
  code: string;
}

const huge = 'a'.repeat(5000);
const json = (v: unknown) => JSON.stringify(v);

const cases: Case[] = [
  // malformed bodies
  {
    name: 'malformed JSON',
    method: 'POST',
    path: '/api/communities',
    body: '{"instance": "https://lemmy.world",',
    status: 400,
    code: 'invalid_json',
  },
  { name: 'empty body', method: 'POST', path: '/api/communities', body: '', status: 400, code: 'invalid_json' },
  { name: 'JSON array', method: 'POST', path: '/api/communities', body: '[1,2]', status: 400, code: 'invalid_json' },
  { name: 'JSON string', method: 'POST', path: '/api/communities', body: '"technology@lemmy.world"', status: 400, code: 'invalid_json' },
  { name: 'JSON null', method: 'POST', path: '/api/communities', body: 'null', status: 400, code: 'invalid_json' },
  {
    name: 'not JSON at all',
    method: 'POST',
    path: '/api/communities',
    body: 'instance=x&name=y',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    status: 415,
    code: 'unsupported_media_type',
  },
  {
    name: 'JSON sent as text/plain',
    method: 'POST',
    path: '/api/communities',
    body: json({ community: 'technology@lemmy.world' }),
    headers: { 'content-type': 'text/plain' },
    status: 415,
    code: 'unsupported_media_type',
  },
  // wrong shapes and types
  { name: 'empty object', method: 'POST', path: '/api/communities', body: '{}', status: 400, code: 'invalid_input' },
  {
    name: 'instance without name',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'https://lemmy.world' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'name is a number',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'https://lemmy.world', name: 42 }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'instance is an object',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: { href: 'x' }, name: 'technology' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'community is an array',
    method: 'POST',
    path: '/api/communities',
    body: json({ community: ['technology@lemmy.world'] }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'refreshSeconds is a string',
    method: 'POST',
    path: '/api/communities',
    body: json({ community: 'technology@lemmy.world', refreshSeconds: '300' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'refreshSeconds 0',
    method: 'POST',
    path: '/api/communities',
    body: json({ community: 'technology@lemmy.world', refreshSeconds: 0 }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'refreshSeconds too large',
    method: 'POST',
    path: '/api/communities',
    body: json({ community: 'technology@lemmy.world', refreshSeconds: 86_401 }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'refreshSeconds fractional',
    method: 'POST',
    path: '/api/communities',
    body: json({ community: 'technology@lemmy.world', refreshSeconds: 1.5 }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'unknown field',
    method: 'POST',
    path: '/api/communities',
    body: json({ community: 'technology@lemmy.world', admin: true }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'both forms at once',
    method: 'POST',
    path: '/api/communities',
    body: json({ community: 'a@b.c', instance: 'https://b.c', name: 'a' }),
    status: 400,
    code: 'invalid_input',
  },
  // huge strings
  {
    name: 'huge name',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'https://lemmy.world', name: huge }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'huge instance',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: `https://${huge}.com`, name: 'x' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'huge community',
    method: 'POST',
    path: '/api/communities',
    body: json({ community: `${huge}@lemmy.world` }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'body over the size limit',
    method: 'POST',
    path: '/api/communities',
    body: json({ community: 'a@b.c', pad: 'x'.repeat(100_000) }),
    status: 413,
    code: 'payload_too_large',
  },
  // SQL and HTML in names
  {
    name: 'SQL in name',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'https://lemmy.world', name: "x'; drop table communities; --" }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'HTML in name',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'https://lemmy.world', name: '<script>alert(1)</script>' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'HTML in community ref',
    method: 'POST',
    path: '/api/communities',
    body: json({ community: '<img src=x onerror=alert(1)>@lemmy.world' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'NUL byte in name',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'https://lemmy.world', name: 'a\u0000b' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'malformed % escape in a community URL',
    method: 'POST',
    path: '/api/communities',
    body: json({ community: 'https://lemmy.world/c/te%zzch' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'malformed % escape in a ref URL path',
    path: `/api/communities/${encodeURIComponent('https://lemmy.world/c/te%zzch')}`,
    status: 400,
    code: 'invalid_ref',
  },
  {
    name: 'malformed % escape in a ref URL path (posts)',
    path: `/api/communities/${encodeURIComponent('https://lemmy.world/c/%E0%A4%A')}/posts`,
    status: 400,
    code: 'invalid_ref',
  },
  { name: 'escaped % escape in a ref path', path: '/api/communities/te%25zz', status: 400, code: 'invalid_ref' },
  { name: 'raw malformed % escape in a ref path', path: '/api/communities/te%zz', status: 400, code: 'invalid_ref' },
  {
    name: 'raw malformed % escape in a ref path (refresh)',
    method: 'POST',
    path: '/api/communities/https:%2F%2Flemmy.world%2Fc%2Fte%zz/refresh',
    status: 400,
    code: 'invalid_ref',
  },
  { name: 'SQL in ref path', path: `/api/communities/${encodeURIComponent("1' or '1'='1")}`, status: 400, code: 'invalid_ref' },
  { name: 'HTML in ref path', path: `/api/communities/${encodeURIComponent('<b>x</b>@lemmy.world')}`, status: 400, code: 'invalid_ref' },
  { name: 'huge numeric id', path: '/api/communities/99999999999999', status: 404, code: 'community_not_found' },
  { name: 'negative id', path: '/api/communities/-1', status: 400, code: 'invalid_ref' },
  { name: 'unknown ref', path: '/api/communities/nothing@lemmy.world', status: 404, code: 'community_not_found' },
  { name: 'delete unknown', method: 'DELETE', path: '/api/communities/nothing@lemmy.world', status: 404, code: 'community_not_found' },
  {
    name: 'patch unknown',
    method: 'PATCH',
    path: '/api/communities/nothing@lemmy.world',
    body: json({ refreshSeconds: 5 }),
    status: 404,
    code: 'community_not_found',
  },
  {
    name: 'patch malformed JSON',
    method: 'PATCH',
    path: '/api/communities/1',
    body: '{refreshSeconds: 5}',
    status: 400,
    code: 'invalid_json',
  },
  {
    name: 'patch wrong type',
    method: 'PATCH',
    path: '/api/communities/1',
    body: json({ refreshSeconds: 'soon' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'patch extra field',
    method: 'PATCH',
    path: '/api/communities/1',
    body: json({ refreshSeconds: 5, shard: 3 }),
    status: 400,
    code: 'invalid_input',
  },
  // bad cursors and limits
  { name: 'cursor garbage', path: '/api/posts?before=not-a-cursor!', status: 400, code: 'invalid_cursor' },
  {
    name: 'cursor base64 of junk',
    path: `/api/posts?before=${Buffer.from('hello|1|2').toString('base64url')}`,
    status: 400,
    code: 'invalid_cursor',
  },
  { name: 'cursor SQL', path: `/api/posts?before=${encodeURIComponent("' or 1=1 --")}`, status: 400, code: 'invalid_cursor' },
  { name: 'cursor huge', path: `/api/posts?before=${'A'.repeat(5000)}`, status: 400, code: 'invalid_cursor' },
  { name: 'cursor on a community', path: '/api/communities/nothing@lemmy.world/posts?before=zzz', status: 400, code: 'invalid_cursor' },
  { name: 'limit 0', path: '/api/posts?limit=0', status: 400, code: 'invalid_limit' },
  { name: 'limit 101', path: '/api/posts?limit=101', status: 400, code: 'invalid_limit' },
  { name: 'limit negative', path: '/api/posts?limit=-5', status: 400, code: 'invalid_limit' },
  { name: 'limit text', path: '/api/posts?limit=ten', status: 400, code: 'invalid_limit' },
  { name: 'limit fractional', path: '/api/posts?limit=2.5', status: 400, code: 'invalid_limit' },
  { name: 'limit huge', path: `/api/posts?limit=${'9'.repeat(400)}`, status: 400, code: 'invalid_limit' },
  { name: 'community posts limit 1000', path: '/api/communities/1/posts?limit=1000', status: 400, code: 'invalid_limit' },
  // instance URLs: non-http and private (ALLOW_PRIVATE_INSTANCES=false)
  {
    name: 'ftp instance',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'ftp://lemmy.world', name: 'x' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'javascript: instance',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'javascript:alert(1)', name: 'x' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'file: instance',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'file:///etc/passwd', name: 'x' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'instance with path',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'https://lemmy.world/api/v3', name: 'x' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'instance with credentials',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'https://u:p@lemmy.world', name: 'x' }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'loopback instance',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'http://127.0.0.1:8536', name: 'x' }),
    status: 400,
    code: 'private_instance',
  },
  {
    name: 'localhost instance',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'http://localhost', name: 'x' }),
    status: 400,
    code: 'private_instance',
  },
  {
    name: 'private 10/8',
    method: 'POST',
    path: '/api/communities',
    body: json({ community: 'x@10.1.2.3' }),
    status: 400,
    code: 'private_instance',
  },
  {
    name: 'private 192.168/16',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'https://192.168.1.10', name: 'x' }),
    status: 400,
    code: 'private_instance',
  },
  {
    name: 'metadata address',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'http://169.254.169.254', name: 'x' }),
    status: 400,
    code: 'private_instance',
  },
  {
    name: 'IPv6 loopback',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'http://[::1]:8536', name: 'x' }),
    status: 400,
    code: 'private_instance',
  },
  {
    name: 'IPv4-mapped IPv6',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'http://[::ffff:127.0.0.1]', name: 'x' }),
    status: 400,
    code: 'private_instance',
  },
  {
    name: 'decimal-encoded loopback',
    method: 'POST',
    path: '/api/communities',
    body: json({ instance: 'http://2130706433', name: 'x' }),
    status: 400,
    code: 'private_instance',
  },
  // routes
  { name: 'unknown API route', path: '/api/nope', status: 404, code: 'not_found' },
  { name: 'wrong method', method: 'PUT', path: '/api/communities/1', body: '{}', status: 404, code: 'not_found' },
];

describe('bad input never yields a 5xx', () => {
  let stack: Stack;
  let app: Hono;

  beforeAll(async () => {
    stack = await createStack({ worker: false, env: { ALLOW_PRIVATE_INSTANCES: 'false', API_BODY_LIMIT_BYTES: '16384' } });
    expect(stack.config.ALLOW_PRIVATE_INSTANCES).toBe(false);
    app = createApp(apiDeps(stack, createLogger({ level: 'silent' })));
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it.each(cases)('$name → $status $code', async (c) => {
    const headers: Record<string, string> = { ...(c.body !== undefined ? { 'content-type': 'application/json' } : {}), ...c.headers };
    const res = await app.request(c.path, { method: c.method ?? 'GET', body: c.body, headers });
    const text = await res.text();
    await expectConforms(app, c.method ?? 'GET', c.path, { status: res.status, headers: res.headers, text });
    expect(res.status, text).toBe(c.status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = JSON.parse(text);
    expect(body).toEqual(errorBodyLike(c.code, body));
    expect(body.error.message).not.toMatch(/<script|stack|at \//);
  });

  it('names the offending field in validation messages', async () => {
    const res = await app.request('/api/communities', {
      method: 'POST',
      body: json({ instance: 'https://lemmy.world', name: 'bad name!' }),
      headers: { 'content-type': 'application/json' },
    });
    expect((await res.json()).error.message).toMatch(/^name: /);
    const patch = await app.request('/api/communities/1', {
      method: 'PATCH',
      body: json({ refreshSeconds: -1 }),
      headers: { 'content-type': 'application/json' },
    });
    expect((await patch.json()).error.message).toMatch(/^refreshSeconds: /);
  });

  it('accepts a valid cursor it produced (empty result, not an error)', async () => {
    const cursor = encodeCursor({ published: '2026-01-01T00:00:00.000000Z', communityId: 1, lemmyId: 1 });
    const res = await app.request(`/api/posts?before=${cursor}&limit=100`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ posts: [], next: null, partial: false, missingNodes: [] });
  });

  it('fuzzed bodies and paths: 4xx JSON for the API, 4xx HTML for the website, never 5xx', async () => {
    const samples = [
      '\u0000',
      '%',
      '%%',
      'https://lemmy.world/c/te%zzch',
      'https://x.example/c/%',
      'http://h/c/a%@b',
      '../../etc/passwd',
      '🙂'.repeat(300),
      "' OR 1=1",
      '<svg onload=alert(1)>',
      '{"__proto__":{"x":1}}',
      'a@',
      '@b',
      '!@@',
      ' ',
    ];
    for (const s of samples) {
      for (const [method, path, body] of [
        ['POST', '/api/communities', s],
        ['POST', '/api/communities', json({ community: s })],
        ['POST', '/api/communities', json({ instance: s, name: s })],
        ['GET', `/api/communities/${encodeURIComponent(s)}`, undefined],
        ['GET', `/api/communities/${encodeURIComponent(s)}/posts?limit=${encodeURIComponent(s)}`, undefined],
        ['GET', `/api/posts?before=${encodeURIComponent(s)}`, undefined],
        ['GET', `/c/${encodeURIComponent(s)}`, undefined],
        ['POST', '/communities', `community=${encodeURIComponent(s)}`],
      ] as const) {
        const res = await app.request(path, {
          method,
          body,
          headers: { 'content-type': path.startsWith('/api') ? 'application/json' : 'application/x-www-form-urlencoded' },
        });
        const text = await res.text();
        expect(res.status, `${method} ${path} ${text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
        expect(res.status, `${method} ${path} ${text.slice(0, 200)}`).toBeLessThan(500);
        if (path.startsWith('/api')) expect(JSON.parse(text).error.code).toMatch(/^[a-z_]+$/);
        else expect(text).not.toContain('<svg onload');
      }
    }
  });
});
