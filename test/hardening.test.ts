// Hardening of the API and website against real parts (Postgres, Temporal, a worker): refs with
// malformed escapes, c/name@otherhost and trailing-dot hosts; JSON-only bodies (415); cross-site
// requests (403); the Host allowlist against DNS rebinding (403); bearer auth; the login rate
// limit and the cookie's Secure flag behind a trusted proxy (real HTTP server, real peer address).
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import { startApiServer, type ApiDeps } from '../api/server.js';
import type { Config } from '../src/config.js';
import { listCommunities } from '../src/db/communities.js';
import { createLogger } from '../src/log.js';
import { stopTracking } from '../src/tracking.js';
import { FakeLemmy } from './fake-lemmy.js';
import { errorBodyLike } from './support/api.js';
import { expectConforms } from './support/openapi.js';
import { createStack, type Stack, apiDeps } from './support/stack.js';

const BAD_ESCAPE = 'https://lemmy.world/c/te%zzch';
const TOKEN = 'hardening-token-42';

async function send(app: Hono, method: string, path: string, opts: { body?: string; headers?: Record<string, string> } = {}) {
  const res = await app.request(path, { method, body: opts.body, headers: opts.headers });
  const text = await res.text();
  await expectConforms(app, method, path, { status: res.status, headers: res.headers, text });
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, headers: res.headers };
}

function expectJsonError(r: { status: number; json: unknown; text: string }, status: number, code: string) {
  expect(r.status, r.text.slice(0, 300)).toBe(status);
  expect(r.json).toEqual(errorBodyLike(code, r.json));
}

const jsonHeaders = { 'content-type': 'application/json' };

describe('hardening', () => {
  let stack: Stack;
  let fake: FakeLemmy;
  let deps: ApiDeps;
  let app: Hono;
  const withConfig = (over: Partial<Config>) => createApp({ ...deps, config: { ...deps.config, ...over } });

  beforeAll(async () => {
    [stack, fake] = await Promise.all([createStack(), FakeLemmy.start({ host: 'localhost', siteName: 'Hardening' })]);
    deps = apiDeps(stack, createLogger({ level: 'silent' }));
    app = createApp(deps);
    fake.addCommunity('nice', { title: 'Nice' });
  });
  afterAll(async () => {
    if (stack) {
      for (const row of await listCommunities(stack.storage.catalog).catch(() => [])) await stopTracking(deps, row).catch(() => {});
      await stack.stop();
    }
    await fake?.close();
  });

  describe('community refs', () => {
    it('a malformed % escape is a 400 in the body, in :ref and on website pages, never a 500', async () => {
      const body = await send(app, 'POST', '/api/communities', { body: JSON.stringify({ community: BAD_ESCAPE }), headers: jsonHeaders });
      expectJsonError(body, 400, 'invalid_input');
      expect(body.json.error.message).toMatch(/^community: /);
      const ref = encodeURIComponent(BAD_ESCAPE);
      expectJsonError(await send(app, 'GET', `/api/communities/${ref}`), 400, 'invalid_ref');
      expectJsonError(await send(app, 'GET', `/api/communities/${ref}/posts`), 400, 'invalid_ref');
      expectJsonError(await send(app, 'POST', `/api/communities/${ref}/refresh`), 400, 'invalid_ref');
      expectJsonError(await send(app, 'DELETE', `/api/communities/${ref}`), 400, 'invalid_ref');
      for (const path of [`/c/${ref}`, `/c/${ref}/remove`, '/c/te%zz', '/c/te%25zz/remove', '/c/https:%2F%2Flemmy.world%2Fc%2Fte%zz']) {
        const page = await send(app, 'GET', path);
        expect(page.status, path).toBe(400);
        expect(page.headers.get('content-type')).toMatch(/text\/html/);
        expect(page.text).toContain('id="error-message"');
      }
      const form = await send(app, 'POST', '/communities', {
        body: `community=${encodeURIComponent(BAD_ESCAPE)}`,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(form.status).toBe(400);
      expect(form.text).toContain('id="community-error"');
    });

    it('a c/name@otherhost URL tracks the community on otherhost; a trailing dot in a host is dropped', async () => {
      const added = await send(app, 'POST', '/api/communities', {
        body: JSON.stringify({ community: `http://127.0.0.1:9/c/nice@${fake.hostPort}` }),
        headers: jsonHeaders,
      });
      expect(added.status, added.text).toBe(201);
      expect(added.json).toMatchObject({ ref: `nice@${fake.hostPort}`, instance: fake.url, host: fake.hostPort });
      const dotted = fake.hostPort.replace('localhost', 'localhost.');
      const byDotted = await send(app, 'GET', `/api/communities/${encodeURIComponent(`NICE@${dotted}`)}`);
      expect(byDotted.status, byDotted.text).toBe(200);
      expect(byDotted.json.id).toBe(added.json.id);
      const again = await send(app, 'POST', '/api/communities', {
        body: JSON.stringify({ instance: `http://${dotted}`, name: 'nice' }),
        headers: jsonHeaders,
      });
      expect(again.status, again.text).toBe(200);
      expect(again.json.id).toBe(added.json.id);
      const page = await send(app, 'GET', `/c/${encodeURIComponent(`https://lemmy.example/c/nice@${dotted}`)}`);
      expect(page.status).toBe(200);
      expect(page.text).toContain(`nice@${fake.hostPort}`);
    });
  });

  describe('JSON bodies only (415)', () => {
    it('refuses a body that is not application/json on POST and PATCH', async () => {
      const valid = JSON.stringify({ community: `nice@${fake.hostPort}` });
      for (const ct of [
        'text/plain',
        'text/plain;charset=UTF-8',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/jsonx',
      ]) {
        expectJsonError(
          await send(app, 'POST', '/api/communities', { body: valid, headers: { 'content-type': ct } }),
          415,
          'unsupported_media_type',
        );
      }
      expectJsonError(
        await send(app, 'PATCH', '/api/communities/1', {
          body: JSON.stringify({ refreshSeconds: 5 }),
          headers: { 'content-type': 'text/plain' },
        }),
        415,
        'unsupported_media_type',
      );
      expectJsonError(
        await send(app, 'POST', '/api/shards/nodes', {
          body: JSON.stringify({ name: 'x', url: 'postgres://a/b' }),
          headers: { 'content-type': 'text/plain' },
        }),
        415,
        'unsupported_media_type',
      );
      // A body with no Content-Type at all (fetch() labels a string body text/plain itself).
      const res = await app.request(new Request('http://localhost/api/communities', { method: 'POST', body: new Blob([valid]) }));
      expect(res.status).toBe(415);
    });

    it('accepts application/json with parameters, and bodiless POSTs (refresh) need no Content-Type', async () => {
      expectJsonError(
        await send(app, 'POST', '/api/communities', { body: '{}', headers: { 'content-type': 'Application/JSON; charset=utf-8' } }),
        400,
        'invalid_input',
      );
      expectJsonError(await send(app, 'POST', '/api/communities/nothing@lemmy.world/refresh'), 404, 'community_not_found');
    });
  });

  describe('cross-site requests (403)', () => {
    it('refuses cross-site text/plain JSON and form posts to the API with a JSON 403', async () => {
      const body = JSON.stringify({ community: `nice@${fake.hostPort}` });
      const crossSite: Record<string, string>[] = [
        { origin: 'https://evil.example', 'content-type': 'text/plain' },
        { origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
        { origin: 'https://evil.example', 'content-type': 'multipart/form-data; boundary=x' },
        { 'sec-fetch-site': 'cross-site', 'content-type': 'text/plain' },
        { 'sec-fetch-site': 'same-site', 'content-type': 'text/plain' },
        { origin: 'null', 'content-type': 'text/plain' },
        { origin: 'http://localhost.evil.example', 'content-type': 'text/plain' },
      ];
      for (const headers of crossSite) {
        expectJsonError(await send(app, 'POST', '/api/communities', { body, headers }), 403, 'cross_site_request');
      }
      // JSON bodies too (Hono's csrf() would let these through), and headers that disagree
      for (const headers of [
        { origin: 'https://evil.example', ...jsonHeaders },
        { 'sec-fetch-site': 'cross-site', ...jsonHeaders },
        { origin: 'https://evil.example', 'sec-fetch-site': 'same-origin', ...jsonHeaders },
        { origin: 'http://localhost', 'sec-fetch-site': 'cross-site', ...jsonHeaders },
        { origin: 'http://localhost:8080', ...jsonHeaders },
      ] as Record<string, string>[]) {
        expectJsonError(await send(app, 'POST', '/api/communities', { body, headers }), 403, 'cross_site_request');
      }
      expectJsonError(
        await send(app, 'PATCH', '/api/communities/1', {
          body: '{"refreshSeconds":60}',
          headers: { origin: 'https://evil.example', ...jsonHeaders },
        }),
        403,
        'cross_site_request',
      );
      expectJsonError(
        await send(app, 'DELETE', '/api/communities/1', { headers: { 'sec-fetch-site': 'same-site' } }),
        403,
        'cross_site_request',
      );
      expectJsonError(
        await send(app, 'POST', '/api/communities/1/refresh', { headers: { origin: 'https://evil.example' } }),
        403,
        'cross_site_request',
      );
      expectJsonError(
        await send(app, 'POST', '/api/shards/rebalance', { headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } }),
        403,
        'cross_site_request',
      );
    });

    it('refuses cross-site website form posts with a 403 page; same-origin and origin-less clients pass', async () => {
      const form = { 'content-type': 'application/x-www-form-urlencoded' };
      for (const extra of [{ origin: 'https://evil.example' }, { 'sec-fetch-site': 'cross-site' }, { origin: 'null' }] as Record<
        string,
        string
      >[]) {
        for (const path of ['/communities', '/c/1/refresh', '/c/1/remove', '/login', '/logout']) {
          const r = await send(app, 'POST', path, { body: 'community=a%40b.c', headers: { ...form, ...extra } });
          expect(r.status, `${path} ${JSON.stringify(extra)}`).toBe(403);
          expect(r.headers.get('content-type')).toMatch(/text\/html/);
        }
      }
      // same origin (browser), and no Origin/Sec-Fetch-Site at all (curl): the form is handled
      for (const extra of [
        { origin: 'http://localhost' },
        { 'sec-fetch-site': 'same-origin' },
        { origin: 'http://localhost', 'sec-fetch-site': 'same-origin' },
        {},
      ] as Record<string, string>[]) {
        const r = await send(app, 'POST', '/communities', { body: '', headers: { ...form, ...extra } });
        expect(r.status, JSON.stringify(extra)).toBe(400);
        expect(r.text).toContain('class="field-error"');
      }
      // an origin named in CORS_ORIGINS may call the API (it must still send JSON)
      const cors = withConfig({ CORS_ORIGINS: 'https://ui.example' });
      expectJsonError(
        await send(cors, 'POST', '/api/communities', {
          body: '{}',
          headers: { origin: 'https://ui.example', 'content-type': 'text/plain' },
        }),
        415,
        'unsupported_media_type',
      );
      expectJsonError(
        await send(cors, 'POST', '/api/communities', { body: '{}', headers: { origin: 'https://ui.example', ...jsonHeaders } }),
        400,
        'invalid_input',
      );
    });
  });

  describe('Host allowlist (DNS rebinding)', () => {
    it('answers 403 host_not_allowed to a Host that is not allowed, JSON for the API and a page for the website', async () => {
      expectJsonError(await send(app, 'GET', 'http://rebind.evil.example/api/communities'), 403, 'host_not_allowed');
      expectJsonError(
        await send(app, 'POST', 'http://rebind.evil.example:3000/api/communities', { body: '{}', headers: jsonHeaders }),
        403,
        'host_not_allowed',
      );
      expectJsonError(
        await send(app, 'GET', 'http://localhost/api/communities', { headers: { host: 'rebind.evil.example' } }),
        403,
        'host_not_allowed',
      );
      const page = await send(app, 'GET', 'http://rebind.evil.example/');
      expect(page.status).toBe(403);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      expect(page.text).not.toContain('Tracked communities');
    });

    it('allows localhost, 127.0.0.1 and [::1] on any port by default; ALLOWED_HOSTS replaces the list; * disables it', async () => {
      for (const base of [
        'http://localhost',
        'http://localhost:3000',
        'http://127.0.0.1:41234',
        'http://[::1]:3000',
        'http://LOCALHOST.:3000',
      ]) {
        expect((await send(app, 'GET', `${base}/api/posts`)).status, base).toBe(200);
      }
      const custom = withConfig({ ALLOWED_HOSTS: ['fetcher.example.org'] });
      expect((await send(custom, 'GET', 'http://fetcher.example.org/api/posts')).status).toBe(200);
      expectJsonError(await send(custom, 'GET', 'http://localhost/api/posts'), 403, 'host_not_allowed');
      const open = withConfig({ ALLOWED_HOSTS: ['*'] });
      expect((await send(open, 'GET', 'http://anything.example/api/posts')).status).toBe(200);
    });
  });

  describe('bearer token', () => {
    it('uses one timing-safe bearer check for every API route, /api/shards included', async () => {
      const secured = withConfig({ API_TOKEN: TOKEN });
      const noHeader = await send(secured, 'POST', '/api/shards/rebalance');
      expectJsonError(noHeader, 401, 'unauthorized');
      expect(noHeader.headers.get('www-authenticate')).toMatch(/^Bearer realm=/);
      const wrong = await send(secured, 'POST', '/api/shards/nodes', {
        body: '{}',
        headers: { ...jsonHeaders, authorization: 'Bearer not-the-token' },
      });
      expectJsonError(wrong, 401, 'unauthorized');
      expect(wrong.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
      const malformed = await send(secured, 'DELETE', '/api/communities/1', { headers: { authorization: 'Bearer two words' } });
      expectJsonError(malformed, 401, 'unauthorized');
      expect(malformed.headers.get('www-authenticate')).toBe('Bearer error="invalid_request"');
      const ok = await send(secured, 'POST', '/api/shards/nodes', {
        body: '{}',
        headers: { ...jsonHeaders, authorization: `bearer ${TOKEN}` },
      });
      expectJsonError(ok, 400, 'invalid_name');
      expect((await send(secured, 'GET', '/api/shards')).status).toBe(200);
    });
  });

  describe('login over HTTP (real peer address)', () => {
    let server: { close(): Promise<void>; port: number } | undefined;
    const start = async (over: Partial<Config>) => {
      await server?.close();
      server = await startApiServer({ ...deps, config: { ...deps.config, PORT: 0, HOST: '127.0.0.1', API_TOKEN: TOKEN, ...over } });
      return `http://127.0.0.1:${server.port}`;
    };
    afterAll(async () => {
      await server?.close();
    });
    const login = (base: string, token: string, headers: Record<string, string> = {}) =>
      fetch(`${base}/login`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ token, next: '/' }), headers });

    it('sets the cookie Secure only over TLS: direct https, or X-Forwarded-Proto from a trusted proxy', async () => {
      const base = await start({});
      const plain = await login(base, TOKEN);
      expect(plain.status).toBe(303);
      const plainCookie = plain.headers.get('set-cookie')!;
      expect(plainCookie).toMatch(/HttpOnly/i);
      expect(plainCookie).toMatch(/SameSite=Strict/i);
      expect(plainCookie).not.toMatch(/Secure/i);
      // the peer is 127.0.0.1, trusted by default (TRUSTED_PROXIES=127.0.0.0/8,::1/128)
      const proxied = await login(base, TOKEN, { 'x-forwarded-proto': 'https', origin: `https://127.0.0.1:${server!.port}` });
      expect(proxied.status).toBe(303);
      expect(proxied.headers.get('set-cookie')).toMatch(/;\s*Secure/i);
      // the same header from a peer that is not a trusted proxy is ignored
      const untrustedBase = await start({ TRUSTED_PROXIES: ['10.0.0.0/8'] });
      const spoofed = await login(untrustedBase, TOKEN, { 'x-forwarded-proto': 'https' });
      expect(spoofed.status).toBe(303);
      expect(spoofed.headers.get('set-cookie')).not.toMatch(/Secure/i);
      // direct TLS: the request URL itself is https
      const secured = withConfig({ API_TOKEN: TOKEN });
      const direct = await secured.request('https://localhost/login', {
        method: 'POST',
        body: new URLSearchParams({ token: TOKEN, next: '/' }),
      });
      expect(direct.status).toBe(303);
      expect(direct.headers.get('set-cookie')).toMatch(/;\s*Secure/i);
    });

    it('rate-limits failed logins per client IP: 10 per minute, then 429 with Retry-After', async () => {
      const base = await start({});
      const from = (ip: string) => ({ 'x-forwarded-for': `198.51.100.1, ${ip}` });
      for (let i = 0; i < 10; i++)
        expect((await login(base, `wrong-token-${i}`, from('203.0.113.7'))).status, `attempt ${i + 1}`).toBe(401);
      const limited = await login(base, 'wrong-token-x', from('203.0.113.7'));
      expect(limited.status).toBe(429);
      const retryAfter = Number(limited.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(limited.headers.get('content-type')).toMatch(/text\/html/);
      expect(await limited.text()).toMatch(/Too many failed logins/);
      // even the right token waits until the window has passed
      expect((await login(base, TOKEN, from('203.0.113.7'))).status).toBe(429);
      // another client (as told by the trusted proxy) is not affected
      expect((await login(base, TOKEN, from('203.0.113.8'))).status).toBe(303);

      // from an untrusted peer X-Forwarded-For is ignored: the peer address is the client
      const direct = await start({ TRUSTED_PROXIES: [] });
      for (let i = 0; i < 10; i++) expect((await login(direct, `nope-${i}`, from(`192.0.2.${i}`))).status).toBe(401);
      expect((await login(direct, 'nope', from('192.0.2.200'))).status).toBe(429);
    });
  });
});
