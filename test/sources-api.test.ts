// Adding sources by URL through the REST API, with a real worker: a feed, a Mastodon hashtag and
// account, a Lemmy community URL and a Lemmy 1.0 instance, each detected, checked, tracked under
// its documented ref and workflow id, and synced into posts; an unchanged feed costs a 304.
// Hostile and unsupported URLs get a clear 4xx, never a 500. Refresh policies through PATCH.
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/app.js';
import { communityByRef } from '../src/db/communities.js';
import { createLogger } from '../src/log.js';
import { FakeLemmy } from './fake-lemmy.js';
import { FakeFeed } from './fakes/fake-feed.js';
import { FakeMastodon } from './fakes/fake-mastodon.js';
import { createStack, eventually, queryStatus, type Stack, apiDeps } from './support/stack.js';
import { call, type Json } from './support/api.js';

let stack: Stack;
let app: Hono;
let strict: Hono;
let lemmy: FakeLemmy;
let lemmy1: FakeLemmy;
const feeds = new FakeFeed();
const mastodon = new FakeMastodon();
const log = createLogger({ level: 'silent' });

beforeAll(async () => {
  [stack, lemmy, lemmy1] = await Promise.all([
    createStack(),
    FakeLemmy.start(),
    FakeLemmy.start({ apiVersion: 'v4' }),
    feeds.start(),
    mastodon.start(),
  ]);
  const deps = apiDeps(stack, log);
  app = createApp(deps);
  strict = createApp({ ...deps, config: { ...stack.config, ALLOW_PRIVATE_INSTANCES: false } });
});
afterAll(async () => {
  await stack?.stop();
  await Promise.all([lemmy?.close(), lemmy1?.close(), feeds.close(), mastodon.close()]);
});

const postsOf = async (ref: string) =>
  (await call(app, 'GET', `/api/communities/${encodeURIComponent(ref)}/posts?limit=100`)).json.posts as Json[];
const synced = (ref: string, syncs = 1) =>
  eventually(async () => {
    const s = await queryStatus(stack.client ? { temporal: stack.client } : (undefined as never), ref);
    return s && s.syncs >= syncs && s.state === 'waiting' ? s : undefined;
  }, 20_000);

describe('sources by URL', () => {
  it('tracks an RSS feed: detected, titled from the feed, posts stored, an unchanged feed is a 304', async () => {
    feeds.addFeed('/blog.xml', { format: 'rss', title: 'A blog', etag: true, lastModified: true });
    for (let i = 0; i < 3; i++) feeds.addItem('/blog.xml', { guid: `post-${i}`, title: `Post ${i}`, link: `https://blog.example/${i}` });
    const r = await call(app, 'POST', '/api/communities', { url: `${feeds.url}/blog.xml#top`, refreshSeconds: 3600 });
    expect(r.status, JSON.stringify(r.json)).toBe(201);
    expect(r.json).toMatchObject({
      kind: 'rss',
      title: 'A blog',
      url: `${feeds.url}/blog.xml`,
      refreshPolicy: 'fixed',
      refreshSeconds: 3600,
    });
    expect(r.json.ref).toMatch(/^rss:[0-9a-f]{12}@127\.0\.0\.1:\d+$/);
    expect(r.json.workflowId).toBe(`community:${r.json.ref}`);
    const again = await call(app, 'POST', '/api/communities', { url: `${feeds.url}/blog.xml` });
    expect(again.status).toBe(200);
    expect(again.json.id).toBe(r.json.id);

    await synced(r.json.ref);
    expect((await postsOf(r.json.ref)).map((p) => p.title).sort()).toEqual(['Post 0', 'Post 1', 'Post 2']);
    expect((await call(app, 'GET', `/api/communities/${encodeURIComponent(r.json.ref)}`)).json.id).toBe(r.json.id);

    const notModifiedBefore = feeds.notModifiedCount;
    expect((await call(app, 'POST', `/api/communities/${r.json.id}/refresh`)).status).toBe(202);
    const after = await synced(r.json.ref, 2);
    expect(feeds.notModifiedCount).toBe(notModifiedBefore + 1);
    expect(after.lastError).toBeNull();

    feeds.addItem('/blog.xml', { guid: 'post-3', title: 'Post 3', link: 'https://blog.example/3' });
    await call(app, 'POST', `/api/communities/${r.json.id}/refresh`);
    await synced(r.json.ref, 3);
    expect(await postsOf(r.json.ref)).toHaveLength(4);
  });

  it('tracks a Mastodon hashtag and an account, by their web URLs', async () => {
    mastodon.addAccount('alice', { displayName: 'Alice' });
    for (let i = 0; i < 3; i++) mastodon.addStatus({ account: 'alice', tag: 'rust', content: `<p>Rust news ${i}</p>` });
    const tag = await call(app, 'POST', '/api/communities', { url: `${mastodon.url}/tags/Rust` });
    expect(tag.status, JSON.stringify(tag.json)).toBe(201);
    expect(tag.json).toMatchObject({
      kind: 'mastodon',
      ref: `mastodon:tag:rust@${mastodon.host}`,
      title: expect.stringMatching(/^#rust$/i),
    });
    const user = await call(app, 'POST', '/api/communities', { url: `${mastodon.url}/@alice` });
    expect(user.status, JSON.stringify(user.json)).toBe(201);
    expect(user.json).toMatchObject({ kind: 'mastodon', ref: `mastodon:user:alice@${mastodon.host}`, title: 'Alice' });
    await synced(tag.json.ref);
    await synced(user.json.ref);
    expect((await postsOf(tag.json.ref)).map((p) => p.title).sort()).toEqual(['Rust news 0', 'Rust news 1', 'Rust news 2']);
    expect(await postsOf(user.json.ref)).toHaveLength(3);
    expect((await call(app, 'GET', `/api/communities/${encodeURIComponent(tag.json.ref)}`)).status).toBe(200);
  });

  it("keeps Lemmy's contract for a community URL, and speaks v4 to a Lemmy 1.0 instance", async () => {
    lemmy.addCommunity('linux');
    lemmy.addPosts('linux', 2);
    const byUrl = await call(app, 'POST', '/api/communities', { url: `${lemmy.url}/c/linux` });
    expect(byUrl.status, JSON.stringify(byUrl.json)).toBe(201);
    expect(byUrl.json).toMatchObject({ kind: 'lemmy', ref: `linux@${lemmy.hostPort}`, workflowId: `community:linux@${lemmy.hostPort}` });

    lemmy1.addCommunity('news', { title: 'News on 1.0', subscribers: 7 });
    lemmy1.addPosts('news', 4);
    const v4 = await call(app, 'POST', '/api/communities', { instance: lemmy1.url, name: 'news' });
    expect(v4.status).toBe(201);
    expect(v4.json).toMatchObject({ kind: 'lemmy', title: 'News on 1.0', subscribers: 7 });
    await synced(v4.json.ref);
    expect(await postsOf(v4.json.ref)).toHaveLength(4);
    expect((await communityByRef(stack.storage.catalog, v4.json.ref))?.source_state).toEqual({ api: 'v4' });
    expect(lemmy1.requests.filter((q) => q.path === '/api/v3/post/list')).toHaveLength(0);
  });

  it('refuses hostile and unsupported URLs with a clear 4xx', async () => {
    feeds.addFeed('/page.html', { format: 'rss', title: 'not really', etag: false, lastModified: false });
    feeds.html('/page.html');
    const cases: Array<[unknown, number, string]> = [
      ['javascript:alert(1)', 400, 'invalid_input'],
      ['ftp://example.com/feed.xml', 400, 'invalid_input'],
      ['file:///etc/passwd', 400, 'invalid_input'],
      ['not a url', 400, 'invalid_input'],
      [`http://user:secret@${feeds.url.slice(7)}/blog.xml`, 400, 'invalid_input'],
      [`https://example.com/${'a'.repeat(2100)}`, 400, 'invalid_input'],
      [42, 400, 'invalid_input'],
      [`${feeds.url}/page.html`, 422, 'unsupported_source'],
      [`${feeds.url}/missing.xml`, 422, 'source_not_found'],
      ['http://127.0.0.1:1/feed.xml', 422, 'instance_unreachable'],
      [`${lemmy.url}/c/nosuch`, 422, 'community_not_found'],
      [`${lemmy.url}/c/te%zz`, 400, 'invalid_input'], // a malformed escape in a community URL
      [`${feeds.url}/tags/rust`, 422, 'unsupported_source'], // a /tags/ path on a server that is not Mastodon
    ];
    for (const [url, status, code] of cases) {
      const r = await call(app, 'POST', '/api/communities', { url });
      expect([r.status, r.json?.error?.code], `${String(url).slice(0, 80)}: ${JSON.stringify(r.json)}`).toEqual([status, code]);
      expect(r.json.error.message.length).toBeGreaterThan(10);
    }
    for (const url of [
      'http://127.0.0.1/feed.xml',
      'http://[::1]/feed.xml',
      'http://169.254.169.254/latest/meta-data/',
      'http://10.0.0.1/c/x',
    ]) {
      const r = await call(strict, 'POST', '/api/communities', { url });
      expect([r.status, r.json?.error?.code], url).toEqual([400, 'private_instance']);
    }
    for (const ref of ['rss:zz@host', 'mastodon:tag:@host', 'rss:0123456789ab@']) {
      expect((await call(app, 'GET', `/api/communities/${encodeURIComponent(ref)}`)).status, ref).toBe(400);
    }
    expect((await call(app, 'GET', `/api/communities/${encodeURIComponent('rss:0123456789ab@nowhere.example')}`)).status).toBe(404);
  });

  it('changes the refresh policy through PATCH, validated', async () => {
    lemmy.addCommunity('policy');
    const r = await call(app, 'POST', '/api/communities', { instance: lemmy.url, name: 'policy' });
    expect(r.json).toMatchObject({ refreshPolicy: 'adaptive', minRefreshSeconds: 60, maxRefreshSeconds: 3600 });
    const toFixed = await call(app, 'PATCH', `/api/communities/${r.json.id}`, { refreshSeconds: 120 });
    expect(toFixed.json).toMatchObject({ refreshPolicy: 'fixed', refreshSeconds: 120 });
    const back = await call(app, 'PATCH', `/api/communities/${r.json.id}`, {
      refreshPolicy: 'adaptive',
      minRefreshSeconds: 5,
      maxRefreshSeconds: 50,
    });
    expect(back.status).toBe(200);
    expect(back.json).toMatchObject({ refreshPolicy: 'adaptive', minRefreshSeconds: 5, maxRefreshSeconds: 50 });
    const live = await eventually(async () => {
      const s = await queryStatus({ temporal: stack.client }, r.json.ref);
      return s?.refreshPolicy === 'adaptive' && s.maxRefreshSeconds === 50 ? s : undefined;
    });
    expect(live.refreshSeconds).toBeGreaterThanOrEqual(5);
    expect(live.refreshSeconds).toBeLessThanOrEqual(50);
    expect(live.reason).toMatch(/^adaptive: /);
    for (const body of [{ minRefreshSeconds: 100, maxRefreshSeconds: 10 }, { refreshPolicy: 'sometimes' }, {}, { maxRefreshSeconds: 0 }]) {
      const bad = await call(app, 'PATCH', `/api/communities/${r.json.id}`, body);
      expect([bad.status, bad.json.error.code], JSON.stringify(body)).toEqual([400, 'invalid_input']);
    }
  });
});
