// The Lemmy adapter against the fake, as Lemmy 0.19 (API v3) and as Lemmy 1.0 (API v4): version
// detection, cursor paging that closes a gap, 429 with retry-after and x-ratelimit-* headers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '../src/sources/errors.js';
import { SourceHttp, type Quota } from '../src/sources/http.js';
import { createLemmyAdapter } from '../src/sources/lemmy/adapter.js';
import { LemmyClient } from '../src/sources/lemmy/client.js';
import type { SourceTarget, SyncContext } from '../src/sources/types.js';
import { FakeLemmy } from './fake-lemmy.js';

const quotas: Quota[] = [];
const http = new SourceHttp({
  userAgent: 'lemmy-fetcher/test',
  connectTimeoutMs: 1000,
  timeoutMs: 2000,
  maxBytes: 2_000_000,
  allowPrivate: true,
  onQuota: async (_host, q) => void quotas.push(q),
});
const adapter = createLemmyAdapter(new LemmyClient(http));
let v3: FakeLemmy;
let v4: FakeLemmy;

beforeAll(async () => {
  [v3, v4] = await Promise.all([FakeLemmy.start(), FakeLemmy.start({ apiVersion: 'v4', siteName: 'Lemmy 1.0' })]);
  // The same publication times on both (by default each fake stamps its posts at its own "now").
  const base = Date.now() - 60_000;
  for (const fake of [v3, v4]) {
    fake.addCommunity('tech', { title: 'Tech', subscribers: 42 });
    fake.addPosts('tech', 5, (i) => ({ published: new Date(base + i * 1000).toISOString() }));
  }
});
afterAll(async () => {
  await Promise.all([v3?.close(), v4?.close()]);
  await http.close();
});

function target(fake: FakeLemmy, state: SourceTarget['state'] = {}): SourceTarget {
  const host = new URL(fake.url).host;
  return { kind: 'lemmy', ref: `tech@${host}`, instance: fake.url, host, name: 'tech', url: null, state, trackedSince: new Date() };
}

/** A sync context over an in-memory store of what was "stored" before. */
function context(stored: Map<number, string>): SyncContext {
  return {
    signal: new AbortController().signal,
    heartbeat() {},
    newestStored: async () => [...stored.values()].sort().at(-1),
    storedIds: async (ids) => new Set(ids.filter((id) => stored.has(id))),
    maxPages: 10,
    backfillPages: 0,
  };
}

describe('Lemmy source', () => {
  it('finds out which API an instance speaks at add time, and reads its community', async () => {
    const on4 = await adapter.check(target(v4), {});
    expect(on4.state).toEqual({ api: 'v4' });
    expect(on4.metadata).toMatchObject({ title: 'Tech', subscribers: 42, postsCount: 5 });
    const on3 = await adapter.check(target(v3), {});
    expect(on3.state).toEqual({ api: 'v3' });
    expect(on3.metadata).toMatchObject({ title: 'Tech', subscribers: 42 });
    expect(v4.requests.some((r) => r.path === '/api/v4/community')).toBe(true);
    expect(v3.requests.some((r) => r.path === '/api/v4/site')).toBe(true); // asked, answered 404, fell back
  });

  it('maps v4 posts like v3 ones', async () => {
    const [a, b] = await Promise.all([
      adapter.fetchNewest(target(v3, { api: 'v3' }), context(new Map())),
      adapter.fetchNewest(target(v4, { api: 'v4' }), context(new Map())),
    ]);
    const shape = (p: (typeof a.posts)[number]) => ({ ...p, lemmyId: 0, apId: '', url: '', title: p.title.replace(/\d+$/, '') });
    expect(b.posts).toHaveLength(5);
    expect(b.posts.map(shape)).toEqual(a.posts.map(shape));
    expect(b.posts[0]).toMatchObject({ score: 1, upvotes: 1, comments: 0, author: 'fake_user' });
  });

  it('on v4 pages back with page_cursor until it meets what is stored: no gap', async () => {
    const first = await adapter.fetchNewest(target(v4, { api: 'v4' }), context(new Map()));
    const stored = new Map(first.posts.map((p) => [p.lemmyId, p.published]));
    const burst = v4.addPosts('tech', 130);
    v4.resetRequests();
    const next = await adapter.fetchNewest(target(v4, { api: 'v4' }), context(stored));
    const got = new Set(next.posts.map((p) => p.lemmyId));
    expect(burst.every((p) => got.has(p.id))).toBe(true);
    const lists = v4.requests.filter((r) => r.path === '/api/v4/post/list');
    expect(lists.length).toBeGreaterThanOrEqual(3);
    expect(lists.every((r) => r.query.page === undefined)).toBe(true);
    expect(lists.slice(1).some((r) => r.query.page_cursor)).toBe(true);
    expect(next.requests).toBe(lists.length);
  });

  it('on Lemmy 1.0, a 429 waits for retry-after, and the x-ratelimit quota reaches the budget', async () => {
    quotas.length = 0;
    v4.setRateLimit(3);
    try {
      const t = target(v4, { api: 'v4' });
      let error: unknown;
      for (let i = 0; i < 6 && !error; i++) {
        await adapter.fetchMetadata(t, context(new Map())).catch((err) => (error = err));
      }
      expect(error).toBeInstanceOf(SourceError);
      const e = error as SourceError;
      expect(e.type).toBe('RateLimited');
      expect(e.disposition).toBe('rate_limited');
      expect(e.opts.retryAfterMs).toBeGreaterThan(0);
      expect(e.opts.retryAfterMs).toBeLessThanOrEqual(60_000);
      expect(quotas.length).toBeGreaterThan(0);
      expect(quotas[0]).toMatchObject({ limit: 3 });
      expect(Math.min(...quotas.map((q) => q.remaining))).toBe(0);
    } finally {
      v4.setRateLimit(null);
    }
  });

  it('tells an unknown community apart from a server that is not Lemmy, permanently', async () => {
    const missing = await adapter.check({ ...target(v4), name: 'nope' }, {}).catch((err: SourceError) => err);
    expect(missing).toMatchObject({ type: 'CommunityNotFound', disposition: 'permanent' });
  });

  it('recognises community URLs and refs, and nothing else', () => {
    expect(adapter.fromUrl(new URL('https://Lemmy.World/c/Technology'))).toMatchObject({ kind: 'lemmy', ref: 'technology@lemmy.world' });
    expect(adapter.fromUrl(new URL('https://lemmy.world/c/rust@programming.dev'))).toMatchObject({ ref: 'rust@programming.dev' });
    expect(adapter.fromUrl(new URL('https://lemmy.world/feeds/c/technology.xml'))).toBeUndefined();
    expect(adapter.fromUrl(new URL('https://lemmy.world/u/someone'))).toBeUndefined();
    expect(adapter.parseRef('technology@lemmy.world')).toMatchObject({ kind: 'lemmy', name: 'technology', host: 'lemmy.world' });
    expect(adapter.parseRef('rss:0123456789ab@example.com')).toBeUndefined();
    expect(adapter.parseRef('mastodon:tag:rust@mastodon.social')).toBeUndefined();
  });
});
