// The Lemmy client against the fake's wire format and its hostile answers; refs normalisation.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LemmyClient, parseRetryAfter } from '../src/sources/lemmy/client.js';
import { SourceError as LemmyError } from '../src/sources/errors.js';
import { normalizeInstance, parseCommunity, RefError } from '../src/sources/lemmy/refs.js';
import { isPrivateAddress } from '../src/net/addresses.js';
import { FakeLemmy } from './fake-lemmy.js';

let fake: FakeLemmy;
const client = (over: Partial<ConstructorParameters<typeof LemmyClient>[0]> = {}) =>
  new LemmyClient({
    userAgent: 'lemmy-fetcher/test',
    connectTimeoutMs: 1000,
    timeoutMs: 1500,
    maxBytes: 1024 * 1024,
    allowPrivate: true,
    ...over,
  });

beforeAll(async () => {
  fake = await FakeLemmy.start();
  fake.addCommunity('tech', { title: 'Tech', subscribers: 42 });
  fake.addPosts('tech', 3);
});
afterAll(async () => fake?.close());

async function errorOf(p: Promise<unknown>): Promise<LemmyError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(LemmyError);
    return err as LemmyError;
  }
  throw new Error('expected a LemmyError');
}

describe('LemmyClient', () => {
  it('reads a community and its posts, identifying itself', async () => {
    const c = client();
    const community = await c.getCommunity(fake.url, 'tech');
    expect(community.community.title).toBe('Tech');
    expect(community.counts.subscribers).toBe(42);
    const posts = await c.listPosts(fake.url, 'tech', { limit: 20, page: 1 });
    expect(posts).toHaveLength(3);
    const last = fake.requests[fake.requests.length - 1];
    expect(last.userAgent).toBe('lemmy-fetcher/test');
    expect(last.accept).toBe('application/json');
    expect(last.query).toMatchObject({ community_name: 'tech', sort: 'New', limit: '20', page: '1' });
  });

  it('classifies answers for the retry policy', async () => {
    const c = client();
    const cases: Array<[Parameters<FakeLemmy['fail']>[0], string, boolean]> = [
      [{ kind: 'status500' }, 'ServerError', true],
      [{ kind: 'rateLimit400' }, 'RateLimited', true],
      [{ kind: 'status429', retryAfterSeconds: 7 }, 'RateLimited', true],
      [{ kind: 'html200' }, 'InvalidResponse', true],
      [{ kind: 'malformedJson' }, 'InvalidResponse', true],
      [{ kind: 'invalidUtf8' }, 'InvalidResponse', true],
      [{ kind: 'huge', bytes: 3 * 1024 * 1024 }, 'ResponseTooLarge', true],
      [{ kind: 'slow', delayMs: 3000 }, 'Timeout', true],
      [{ kind: 'endlessStream' }, 'Timeout', true],
    ];
    for (const [fault, type, retryable] of cases) {
      fake.fail(fault, { path: 'post/list' });
      const err = await errorOf(c.listPosts(fake.url, 'tech', { limit: 20, page: 1 }));
      expect([fault.kind, err.type]).toEqual([fault.kind, type]);
      expect(err.retryable).toBe(retryable);
      if (fault.kind === 'status429') expect(err.opts.retryAfterMs).toBe(7000);
    }
    fake.fail({ kind: 'deepJson', depth: 100_000 }, { path: 'post/list' });
    expect((await errorOf(c.listPosts(fake.url, 'tech', { limit: 20, page: 1 }))).type).toBe('InvalidResponse');
  });

  it('tells a missing community and a non-Lemmy server apart, permanently', async () => {
    const c = client();
    const missing = await errorOf(c.getCommunity(fake.url, 'nope'));
    expect(missing).toMatchObject({ type: 'CommunityNotFound', retryable: false });
    const missingPosts = await errorOf(c.listPosts(fake.url, 'nope', { limit: 20, page: 1 }));
    expect(missingPosts.type).toBe('CommunityNotFound');
    // Any web server that is not Lemmy: its 404 page is HTML.
    const other = http.createServer((_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>'));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    expect(await errorOf(c.getCommunity(url, 'tech'))).toMatchObject({ type: 'NotLemmyApi', retryable: false });
    other.close();
  });

  it('names the bad field of an unexpected response, and accepts 0.18 timestamps without a zone', async () => {
    const srv = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const post = (published: unknown) => ({ post: { id: 1, name: 'x', ap_id: 'https://x/post/1', published }, counts: { score: 1 } });
      res.end(JSON.stringify({ posts: [post(req.url!.includes('page=2') ? 12 : '2023-06-01T12:00:00.123456')] }));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    const [p] = await client().listPosts(url, 'x', { limit: 1, page: 1 });
    expect(p.post.published).toBe('2023-06-01T12:00:00.123456Z');
    const err = await errorOf(client().listPosts(url, 'x', { limit: 1, page: 2 }));
    expect(err.type).toBe('InvalidResponse');
    expect(err.message).toContain('posts[0].post.published');
    srv.close();
  });

  it('refuses private addresses unless allowed', async () => {
    const err = await errorOf(client({ allowPrivate: false }).getSite(fake.url));
    expect(err).toMatchObject({ type: 'PrivateAddress', retryable: false });
    expect(fake.requests.some((r) => r.path === '/api/v3/site')).toBe(false);
    for (const a of [
      '127.0.0.1',
      '10.1.2.3',
      '172.20.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '::1',
      'fe80::1',
      'fd00::1',
      '::ffff:127.0.0.1',
      '0.0.0.0',
    ]) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ['1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) expect(isPrivateAddress(a), a).toBe(false);
  });

  it('parses Retry-After as seconds or a date, capped', () => {
    expect(parseRetryAfter('5')).toBe(5000);
    expect(parseRetryAfter(new Date(Date.now() + 10_000).toUTCString())).toBeGreaterThan(8000);
    expect(parseRetryAfter('999999')).toBe(3_600_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('refs', () => {
  it('normalises instance URLs and community refs one way', () => {
    expect(normalizeInstance('HTTPS://Lemmy.World/')).toEqual({ instance: 'https://lemmy.world', host: 'lemmy.world' });
    expect(normalizeInstance('https://lemmy.world:443')).toEqual({ instance: 'https://lemmy.world', host: 'lemmy.world' });
    expect(normalizeInstance('http://127.0.0.1:8536')).toEqual({ instance: 'http://127.0.0.1:8536', host: '127.0.0.1:8536' });
    expect(normalizeInstance('lemmy.world').instance).toBe('https://lemmy.world');
    expect(parseCommunity('!Technology@Lemmy.World')).toMatchObject({
      name: 'technology',
      host: 'lemmy.world',
      ref: 'technology@lemmy.world',
    });
    expect(parseCommunity('https://lemmy.world/c/technology')).toMatchObject({ ref: 'technology@lemmy.world' });
    expect(parseCommunity('http://localhost:8536/c/memes')).toMatchObject({
      instance: 'http://localhost:8536',
      ref: 'memes@localhost:8536',
    });
  });

  it('rejects what is not an instance or a community', () => {
    for (const bad of ['ftp://x.org', 'javascript:alert(1)', 'https://u:p@x.org', 'https://x.org/path', 'https://x.org/?q=1', '']) {
      expect(() => normalizeInstance(bad), bad).toThrow(RefError);
    }
    for (const bad of ['technology', 'a b@x.org', "x'; drop table communities;--@x.org", '<script>@x.org', '@x.org', 'x@']) {
      expect(() => parseCommunity(bad), bad).toThrow(RefError);
    }
  });
});
