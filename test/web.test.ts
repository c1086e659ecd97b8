// The server-rendered website against real parts: pages, forms (POST + redirect, inline errors),
// escaping of everything that comes from Lemmy, remove confirmation, 404 page, token login.
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import type { ApiDeps } from '../api/server.js';
import { communityByRef, listCommunities } from '../src/db/communities.js';
import { createLogger } from '../src/log.js';
import { stopTracking } from '../src/tracking.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack, apiDeps } from './support/stack.js';

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

describe('website', () => {
  let stack: Stack;
  let fake: FakeLemmy;
  let deps: ApiDeps;
  let app: Hono;
  const XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>';

  const get = async (a: Hono, path: string, headers: Record<string, string> = {}) => {
    const res = await a.request(path, { headers });
    return { status: res.status, html: await res.text(), headers: res.headers };
  };
  const post = async (a: Hono, path: string, fields: Record<string, string>, headers: Record<string, string> = {}) => {
    const res = await a.request(path, {
      method: 'POST',
      body: form(fields),
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    });
    return { status: res.status, html: await res.text(), location: res.headers.get('location'), headers: res.headers };
  };

  beforeAll(async () => {
    [stack, fake] = await Promise.all([createStack(), FakeLemmy.start()]);
    deps = apiDeps(stack, createLogger({ level: 'silent' }));
    app = createApp(deps);
    fake.addCommunity('evil', { title: `Evil ${XSS}`, description: `desc ${XSS}`, icon: 'javascript:alert(1)' });
    fake.addPosts('evil', 25, (i) => ({
      title: `post ${i} ${XSS}`,
      url: i === 0 ? 'javascript:alert(2)' : `https://example.com/${i}`,
      body: `body ${XSS}`,
    }));
    fake.addCommunity('nice', { title: 'Nice', icon: 'https://img.example/icon.png' });
    fake.addPosts('nice', 2);
  });
  afterAll(async () => {
    if (stack) {
      for (const row of await listCommunities(stack.storage.catalog).catch(() => [])) await stopTracking(deps, row).catch(() => {});
      await stack.stop();
    }
    await fake?.close();
  });

  it('shows an empty home page with the add form', async () => {
    const r = await get(app, '/');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/text\/html/);
    expect(r.html).toContain('<form class="add" method="post" action="/communities">');
    expect(r.html).toContain('id="empty"');
    expect(r.html).not.toMatch(/<style|<script>/i); // no inline CSS or JS
    const scripts = [...r.html.matchAll(/<script[^>]*>/g)].map((m) => m[0]);
    expect(scripts).toEqual([expect.stringMatching(/^<script src="\/static\/live\.js\?v=[0-9a-f]{12}" defer="">$/)]); // one same-origin enhancement
    const sheets = [...r.html.matchAll(/<link[^>]*rel="stylesheet"[^>]*>/g)].map((m) => m[0]);
    expect(sheets).toHaveLength(1); // one same-origin stylesheet, no CDN
    expect(sheets[0]).toMatch(/href="\/static\/app\.css\?v=[0-9a-f]{12}"/);
  });

  it('serves the stylesheet as a cacheable static file, unescaped, under a CSP without unsafe-inline', async () => {
    const home = await get(app, '/');
    const csp = home.headers.get('content-security-policy')!;
    expect(csp).toMatch(/style-src 'self'(;|$)/);
    expect(csp).not.toContain('unsafe-inline');
    expect(home.html).not.toMatch(/\sstyle="/); // inline style attributes would be blocked by that CSP
    const href = /<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"/.exec(home.html)![1].replace(/&amp;/g, '&');
    const css = await app.request(href);
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    expect(css.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const etag = css.headers.get('etag');
    expect(etag).toMatch(/^(W\/)?"[^"]+"$/);
    const text = await css.text();
    expect(text).toContain('"Segoe UI"'); // quotes intact, not &quot;
    expect(text).not.toContain('&quot;');
    const again = await app.request(href, { headers: { 'if-none-match': etag! } });
    expect(again.status).toBe(304);
    // without the content hash (or with a stale one) the file is served but revalidated
    const unversioned = await app.request('/static/app.css');
    expect(unversioned.status).toBe(200);
    expect(unversioned.headers.get('cache-control')).toBe('no-cache');
    expect((await app.request('/static/nothing.css')).status).toBe(404);
    expect((await app.request('/static/../package.json')).status).toBe(404);
    expect((await app.request('/static/%2e%2e/package.json')).status).toBe(404);
  });

  it('shows validation errors inline and keeps the values', async () => {
    const empty = await post(app, '/communities', {});
    expect(empty.status).toBe(400);
    expect(empty.html).toContain('class="field-error"');
    const bad = await post(app, '/communities', { instance: 'ftp://x.example', name: 'ok' });
    expect(bad.status).toBe(400);
    expect(bad.html).toMatch(/id="instance-error">must be an http\(s\) URL/);
    expect(bad.html).toContain('value="ftp://x.example"');
    const html = await post(app, '/communities', { community: '<b>x</b>@y' });
    expect(html.status).toBe(400);
    expect(html.html).not.toContain('<b>x</b>');
    expect(html.html).toContain('&lt;b&gt;x&lt;/b&gt;@y');
    const secs = await post(app, '/communities', { instance: fake.url, name: 'nice', refreshSeconds: '0' });
    expect(secs.status).toBe(400);
    expect(secs.html).toContain('id="refreshSeconds-error"');
    const missing = await post(app, '/communities', { instance: fake.url, name: 'absent' });
    expect(missing.status).toBe(422);
    expect(missing.html).toMatch(/id="add-error"[^>]*>[^<]*has no community named/);
  });

  it('adds through the form (303), lists with escaping, links to the Temporal UI', async () => {
    const r = await post(app, '/communities', { instance: fake.url, name: 'evil' });
    expect(r.status).toBe(303);
    expect(r.location).toBe(`/?flash=added&ref=${encodeURIComponent(`evil@${fake.hostPort}`)}`);
    const r2 = await post(app, '/communities', { instance: fake.url, name: 'nice', refreshSeconds: '120' });
    expect(r2.status).toBe(303);
    const again = await post(app, '/communities', { community: `${fake.url}/c/nice` });
    expect(again.location, again.html.slice(0, 3000)).toContain('flash=exists');

    const home = await eventually(async () => {
      const h = await get(app, r.location!);
      return h.html.includes(`Evil ${XSS.replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')}`) &&
        h.html.includes('>20<') &&
        h.html.includes('src="https://img.example/icon.png"')
        ? h
        : undefined; // the first sync stores the newest page of 20
    }, 30_000);
    expect(home.html).toContain('Now tracking evil@');
    expect(home.html).not.toContain('<script>alert');
    expect(home.html).not.toContain('<img src=x');
    expect(home.html).not.toContain('javascript:');
    expect(home.html).toContain('src="https://img.example/icon.png"');
    const wf = encodeURIComponent(`community:evil@${fake.hostPort}`);
    expect(home.html).toContain(`href="http://localhost:8233/namespaces/default/workflows/${wf}"`);
    expect(home.html).toMatch(/class="state state-waiting"/);
    expect(home.html).toContain(`action="/c/${encodeURIComponent(`evil@${fake.hostPort}`)}/refresh"`);
  });

  it('pages a community with an "older" link and links to the original posts, escaped', async () => {
    const ref = encodeURIComponent(`evil@${fake.hostPort}`);
    const p1 = await get(app, `/c/${ref}?limit=12`);
    expect(p1.status).toBe(200);
    expect((p1.html.match(/data-post-id=/g) ?? []).length).toBe(12);
    expect(p1.html).not.toContain('<script>alert');
    expect(p1.html).not.toContain('javascript:');
    expect(p1.html).toContain(`href="${fake.url}/post/`);
    const older = /id="older" href="([^"]+)"/.exec(p1.html)![1].replace(/&amp;/g, '&');
    const p2 = await get(app, older);
    expect(p2.status).toBe(200);
    expect((p2.html.match(/data-post-id=/g) ?? []).length).toBe(8);
    expect(p2.html).not.toContain('id="older"');
    const bad = await get(app, `/c/${ref}?before=garbage`);
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('cursor');
  });

  it('refresh button posts and redirects back with a notice', async () => {
    const ref = encodeURIComponent(`nice@${fake.hostPort}`);
    const r = await post(app, `/c/${ref}/refresh`, { back: `/c/${ref}` });
    expect(r.status).toBe(303);
    expect(r.location).toBe(`/c/${ref}?flash=refreshing&ref=${ref}`);
    const offsite = await post(app, `/c/${ref}/refresh`, { back: '//evil.example/' });
    expect(offsite.location).toMatch(/^\/\?flash=refreshing/);
    expect((await get(app, r.location!)).html).toContain('Refresh of nice@');
  });

  it('changes the refresh policy from the community page, and says why a bad one is refused', async () => {
    const ref = encodeURIComponent(`nice@${fake.hostPort}`);
    const page = await get(app, `/c/${ref}`);
    expect(page.html).toContain(`<form class="policy" method="post" action="/c/${ref}/refresh-policy">`);
    expect(page.html).toMatch(/lemmy · fixed refresh \(fixed: 120 s\)/);
    const r = await post(app, `/c/${ref}/refresh-policy`, {
      refreshPolicy: 'adaptive',
      refreshSeconds: '',
      minRefreshSeconds: '5',
      maxRefreshSeconds: '50',
    });
    expect(r.status).toBe(303);
    expect(r.location).toBe(`/c/${ref}?flash=policy-saved&ref=${ref}`);
    const row = await communityByRef(deps.catalog, `nice@${fake.hostPort}`);
    expect(row).toMatchObject({ refresh_policy: 'adaptive', min_refresh_seconds: 5, max_refresh_seconds: 50 });
    const bad = await post(app, `/c/${ref}/refresh-policy`, {
      refreshPolicy: 'adaptive',
      minRefreshSeconds: '60',
      maxRefreshSeconds: '10',
    });
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('Not saved: minRefreshSeconds: must not be above maxRefreshSeconds');
    const back = await post(app, `/c/${ref}/refresh-policy`, { refreshPolicy: 'fixed', refreshSeconds: '120' });
    expect(back.status).toBe(303);
    expect(await communityByRef(deps.catalog, `nice@${fake.hostPort}`)).toMatchObject({ refresh_policy: 'fixed', refresh_seconds: 120 });
  });

  it('/posts shows the newest posts across communities', async () => {
    const r = await get(app, '/posts?limit=10');
    expect(r.status).toBe(200);
    expect((r.html.match(/data-post-id=/g) ?? []).length).toBe(10);
    expect(r.html).toContain('id="older"');
    expect(r.html).not.toContain('id="partial"');
  });

  it('removes only after a confirmation page', async () => {
    const ref = encodeURIComponent(`nice@${fake.hostPort}`);
    const confirm = await get(app, `/c/${ref}/remove`);
    expect(confirm.status).toBe(200);
    expect(confirm.html).toContain(`<form method="post" action="/c/${ref}/remove">`);
    expect((await get(app, '/')).html).toContain(`nice@${fake.hostPort}`);
    const r = await post(app, `/c/${ref}/remove`, {});
    expect(r.status).toBe(303);
    expect(r.location).toContain('flash=removed');
    const home = await get(app, '/');
    expect(home.html).not.toContain(`data-ref="nice@${fake.hostPort}"`);
    expect((await get(app, `/c/${ref}`)).status).toBe(404);
  });

  it('answers unknown pages with an HTML 404 and refuses cross-site form posts', async () => {
    const r = await get(app, '/no/such/page');
    expect(r.status).toBe(404);
    expect(r.headers.get('content-type')).toMatch(/text\/html/);
    expect(r.html).toContain('Not found');
    const x = await post(app, '/communities', { community: 'a@b.c' }, { origin: 'https://evil.example', host: 'localhost' });
    expect(x.status).toBe(403);
  });

  it('with API_TOKEN: forms need a login (cookie); reading stays open', async () => {
    const token = 'website-token-123';
    const secured = createApp({ ...deps, config: { ...deps.config, API_TOKEN: token } });
    const ref = encodeURIComponent(`evil@${fake.hostPort}`);
    expect((await get(secured, '/')).status).toBe(200);
    const denied = await post(secured, `/c/${ref}/refresh`, {});
    expect(denied.status).toBe(401);
    expect(denied.html).toContain('href="/login"');
    const wrong = await post(secured, '/login', { token: 'nope', next: '/' });
    expect(wrong.status).toBe(401);
    const login = await post(secured, '/login', { token, next: '/' });
    expect(login.status).toBe(303);
    const cookie = login.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    const ok = await post(secured, `/c/${ref}/refresh`, {}, { cookie: cookie.split(';')[0] });
    expect(ok.status).toBe(303);
  });
});
