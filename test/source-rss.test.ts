// The feed adapter against a real HTTP feed server: RSS 2.0, Atom and JSON Feed become posts with
// stable ids, an unchanged feed costs a 304, the feed's own hints set the interval, and every way a
// feed can fail (gone, down, rate limiting, a web page, hostile documents) is a SourceError.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '../src/sources/errors.js';
import { SourceHttp } from '../src/sources/http.js';
import { createRssAdapter, FEED_ACCEPT } from '../src/sources/rss/adapter.js';
import { MAX_ITEMS } from '../src/sources/rss/parse.js';
import type { SourceState, SourceTarget, SyncContext } from '../src/sources/types.js';
import { FakeFeed, type FeedFormat, type FeedInit } from './fakes/fake-feed.js';

const http = new SourceHttp({ userAgent: 'test', connectTimeoutMs: 1000, timeoutMs: 2000, maxBytes: 1_000_000, allowPrivate: true });
const adapter = createRssAdapter(http);
const fake = new FakeFeed();
let base: string;
let nextPath = 0;

beforeAll(async () => {
  base = await fake.start();
});
afterAll(async () => {
  await fake.close();
  await http.close();
});

/** A new feed at its own path, so tests do not see each other's items or faults. */
function newFeed(init: Partial<FeedInit> = {}): string {
  const path = `/feed-${++nextPath}`;
  fake.addFeed(path, { format: 'rss', title: `Feed ${nextPath}`, etag: false, lastModified: false, ...init });
  return path;
}

function target(path: string, state: SourceState = {}): SourceTarget {
  const detected = adapter.fromUrl(new URL(base + path));
  if (!detected) throw new Error(`not a feed URL: ${base + path}`);
  return { ...detected, state, trackedSince: new Date() };
}

let heartbeats = 0;
function context(signal = new AbortController().signal): SyncContext {
  const stored = new Set<number>();
  return {
    signal,
    heartbeat: () => void heartbeats++,
    newestStored: async () => undefined,
    storedIds: async (ids) => new Set(ids.filter((id) => stored.has(id))),
    maxPages: 10,
    backfillPages: 0,
  };
}

async function failureOf(p: Promise<unknown>): Promise<SourceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SourceError);
  return err as SourceError;
}

const at = (iso: string) => new Date(iso);

describe('feed formats', () => {
  it.each<FeedFormat>(['rss', 'atom', 'json'])('%s items become posts with titles, links, dates and stable ids', async (format) => {
    const path = newFeed({ format, title: 'Tech blog' });
    fake.addItem(path, {
      guid: 'urn:post:1',
      link: 'https://blog.example/1',
      title: 'First',
      published: at('2024-05-01T10:00:00Z'),
      content: '<p>One</p>',
    });
    fake.addItem(path, {
      guid: 'urn:post:2',
      link: 'https://blog.example/2',
      title: 'Second',
      published: at('2024-05-02T10:00:00Z'),
      content: '<p>Two</p>',
    });

    const first = await adapter.fetchNewest(target(path), context());
    expect(first.requests).toBe(1);
    expect(first.notModified).toBeUndefined();
    expect(first.metadata).toMatchObject({ title: 'Tech blog', actorId: `${base}/`, remoteId: null });
    expect(first.posts.map((p) => [p.title, p.url, p.published, p.body])).toEqual([
      ['Second', 'https://blog.example/2', '2024-05-02T10:00:00.000Z', '<p>Two</p>'],
      ['First', 'https://blog.example/1', '2024-05-01T10:00:00.000Z', '<p>One</p>'],
    ]);
    expect(first.posts[0]).toMatchObject({ score: 0, upvotes: 0, downvotes: 0, comments: 0, nsfw: false, featured: false });
    for (const p of first.posts) expect(Number.isSafeInteger(p.lemmyId) && p.lemmyId > 0).toBe(true);

    const again = await adapter.fetchNewest(target(path), context());
    expect(again.posts.map((p) => p.lemmyId)).toEqual(first.posts.map((p) => p.lemmyId));
    expect(fake.requests.at(-1)?.headers.accept).toBe(FEED_ACCEPT);
  });

  it('reads RSS 1.0 (RDF) with Dublin Core dates and authors', async () => {
    const path = newFeed();
    fake.raw(
      path,
      `<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="https://old.example/"><title>Old school</title><link>https://old.example/</link><description>RDF</description></channel>
  <item rdf:about="https://old.example/1"><title>One</title><link>https://old.example/1</link><dc:date>2024-01-02T03:04:05Z</dc:date><dc:creator>bob</dc:creator></item>
</rdf:RDF>`,
      'application/rdf+xml',
    );
    const res = await adapter.fetchNewest(target(path), context());
    expect(res.metadata?.title).toBe('Old school');
    expect(res.posts).toMatchObject([{ title: 'One', url: 'https://old.example/1', published: '2024-01-02T03:04:05.000Z', author: 'bob' }]);
  });

  it('answers no metadata of its own: every fetch brings it', async () => {
    expect(await adapter.fetchMetadata(target(newFeed()), context())).toBeUndefined();
  });
});

describe('conditional GET', () => {
  it('sends the ETag back and takes a 304 as a cheap sync with nothing new', async () => {
    const path = newFeed({ etag: true });
    fake.addItem(path, { guid: 'a', title: 'A', published: at('2024-01-01T00:00:00Z') });
    const first = await adapter.fetchNewest(target(path), context());
    expect(first.state).toEqual({ etag: expect.stringMatching(/^".+"$/), lastModified: null });

    const beats = heartbeats;
    const second = await adapter.fetchNewest(target(path, first.state), context());
    expect(second).toMatchObject({ posts: [], state: first.state, requests: 1, notModified: true });
    expect(heartbeats).toBe(beats + 1);
    const last = fake.requests.at(-1);
    expect(last).toMatchObject({ path, status: 304 });
    expect(last?.headers['if-none-match']).toBe(first.state.etag);
    expect([fake.count(200, path), fake.count(304, path)]).toEqual([1, 1]);
  });

  it('sends Last-Modified back as If-Modified-Since when the feed has no ETag', async () => {
    const path = newFeed({ lastModified: true });
    fake.addItem(path, { guid: 'a', title: 'A', published: at('2024-01-01T00:00:00Z') });
    const first = await adapter.fetchNewest(target(path), context());
    expect(first.state).toEqual({ etag: null, lastModified: expect.stringMatching(/GMT$/) });

    const second = await adapter.fetchNewest(target(path, first.state), context());
    expect(second.notModified).toBe(true);
    expect(fake.requests.at(-1)?.headers['if-modified-since']).toBe(first.state.lastModified);
    expect(fake.requests.at(-1)?.headers['if-none-match']).toBeUndefined();
    expect(fake.count(304, path)).toBe(1);
  });

  it.each([
    ['ETag', { etag: true }],
    ['Last-Modified', { lastModified: true }],
  ])('a new item is fetched at once (%s), and old items keep their ids', async (_name, validators) => {
    const path = newFeed(validators);
    fake.addItem(path, { guid: 'old', title: 'Old', published: at('2024-01-01T00:00:00Z') });
    const first = await adapter.fetchNewest(target(path), context());
    // Within the same second as the first fetch: Last-Modified must still move on.
    fake.addItem(path, { guid: 'new', title: 'New', published: at('2024-01-02T00:00:00Z') });
    const second = await adapter.fetchNewest(target(path, first.state), context());
    expect(second.notModified).toBeUndefined();
    expect(second.posts.map((p) => p.title)).toEqual(['New', 'Old']);
    expect(second.posts[1].lemmyId).toBe(first.posts[0].lemmyId);
    expect(second.state).not.toEqual(first.state);
    expect(fake.requests.at(-1)?.status).toBe(200);

    const third = await adapter.fetchNewest(target(path, second.state), context());
    expect(third.notModified).toBe(true);
  });
});

describe('how often the feed asks to be read', () => {
  it('takes <ttl> in minutes', async () => {
    const path = newFeed({ ttlMinutes: 30 });
    expect((await adapter.fetchNewest(target(path), context())).minIntervalSeconds).toBe(1800);
  });

  it('takes Cache-Control max-age, also on a 304, unless the response may not be cached', async () => {
    const path = newFeed({ cacheControl: 'public, max-age=600', etag: true });
    const first = await adapter.fetchNewest(target(path), context());
    expect(first.minIntervalSeconds).toBe(600);
    const second = await adapter.fetchNewest(target(path, first.state), context());
    expect(second).toMatchObject({ notModified: true, minIntervalSeconds: 600 });

    const noStore = newFeed({ cacheControl: 'no-store, max-age=600' });
    expect((await adapter.fetchNewest(target(noStore), context())).minIntervalSeconds).toBeUndefined();
  });

  it('takes Retry-After, and the largest of all the hints', async () => {
    const path = newFeed({ retryAfterSeconds: 120 });
    expect((await adapter.fetchNewest(target(path), context())).minIntervalSeconds).toBe(120);
    const all = newFeed({ ttlMinutes: 5, cacheControl: 'max-age=900', retryAfterSeconds: 60 });
    expect((await adapter.fetchNewest(target(all), context())).minIntervalSeconds).toBe(900);
    expect((await adapter.fetchNewest(target(newFeed()), context())).minIntervalSeconds).toBeUndefined();
  });
});

describe('item identity', () => {
  it('is the guid when there is one: a changed link or title is the same post', async () => {
    const path = newFeed();
    fake.addItem(path, { guid: 'tag:blog,2024:1', link: 'https://blog.example/a', title: 'Draft title' });
    const [before] = (await adapter.fetchNewest(target(path), context())).posts;
    fake.raw(
      path,
      fake.render(path).body.replace('https://blog.example/a', 'https://blog.example/b').replace('Draft title', 'Final title'),
    );
    const [after] = (await adapter.fetchNewest(target(path), context())).posts;
    expect(after.title).toBe('Final title');
    expect(after.lemmyId).toBe(before.lemmyId);
    expect(after.apId).toBe('https://blog.example/b'); // the guid is not a URL: the link identifies it publicly
  });

  it('is the link when there is no guid', async () => {
    const path = newFeed({ format: 'json' });
    fake.addItem(path, { link: 'https://blog.example/x', title: 'Before' });
    const [before] = (await adapter.fetchNewest(target(path), context())).posts;
    fake.raw(path, fake.render(path).body.replace('Before', 'After'), 'application/feed+json');
    const [after] = (await adapter.fetchNewest(target(path), context())).posts;
    expect([after.title, after.lemmyId, after.apId]).toEqual(['After', before.lemmyId, 'https://blog.example/x']);
  });

  it('is the title and date when there is neither, and the same item twice is one post', async () => {
    const path = newFeed();
    fake.addItem(path, { title: 'Undated' });
    fake.addItem(path, { title: 'Dated', published: at('2024-03-01T00:00:00Z') });
    fake.addItem(path, { title: 'Dated', published: at('2024-03-01T00:00:00Z') });
    const first = await adapter.fetchNewest(target(path), context());
    expect(first.posts.map((p) => p.title)).toEqual(['Dated', 'Undated']);
    const undated = first.posts[1];
    expect(Math.abs(Date.parse(undated.published) - Date.now())).toBeLessThan(60_000); // no date: now
    const second = await adapter.fetchNewest(target(path), context());
    expect(second.posts.map((p) => p.lemmyId)).toEqual(first.posts.map((p) => p.lemmyId));
  });
});

describe('failures', () => {
  it('404 and 410 mean the feed is gone, for good', async () => {
    for (const status of [404, 410] as const) {
      const path = newFeed();
      fake.failNext(path, { status });
      const err = await failureOf(adapter.fetchNewest(target(path), context()));
      expect([err.type, err.disposition, err.opts.status]).toEqual(['SourceGone', 'permanent', status]);
    }
    const err = await failureOf(adapter.check(target('/no-such-feed'), {}));
    expect(err.type).toBe('SourceGone');
  });

  it('500 is a server error, retried', async () => {
    const path = newFeed();
    fake.failNext(path, { status: 500 });
    const err = await failureOf(adapter.fetchNewest(target(path), context()));
    expect([err.type, err.retryable, err.disposition]).toEqual(['ServerError', true, 'retryable']);
    expect((await adapter.fetchNewest(target(path), context())).requests).toBe(1); // the next sync is fine
  });

  it('429 with Retry-After is RateLimited for that long', async () => {
    const path = newFeed();
    fake.failNext(path, { status: 429, retryAfterSeconds: 7 });
    const err = await failureOf(adapter.fetchNewest(target(path), context()));
    expect([err.type, err.disposition, err.opts.retryAfterMs]).toEqual(['RateLimited', 'rate_limited', 7000]);
  });

  it('a web page is not a feed: UnsupportedSource, at add time and later', async () => {
    const path = newFeed();
    fake.html(path);
    const atAdd = await failureOf(adapter.check(target(path), {}));
    expect([atAdd.type, atAdd.disposition]).toEqual(['UnsupportedSource', 'permanent']);
    expect(atAdd.message).toMatch(/web page \(HTML\), not an RSS, Atom or JSON feed/);
    const later = await failureOf(adapter.fetchNewest(target(path), context()));
    expect(later.type).toBe('UnsupportedSource');
  });

  it('a redirect is not followed: the user is told where the feed went', async () => {
    const path = newFeed();
    fake.redirect(path, '/moved.xml');
    const err = await failureOf(adapter.check(target(path), {}));
    expect(err.type).toBe('UnsupportedSource');
    expect(err.message).toContain(`redirects (HTTP 301) to ${base}/moved.xml`);
  });

  it('stops when the sync is cancelled', async () => {
    const controller = new AbortController();
    controller.abort(new Error('activity cancelled'));
    const err = await failureOf(adapter.fetchNewest(target(newFeed()), context(controller.signal)));
    expect(err.type).toBe('Timeout');
  });
});

describe('check at add time', () => {
  it('reads the feed and answers its metadata, but no validators (the first sync must fetch the items)', async () => {
    const path = newFeed({ format: 'atom', title: 'Atom blog', etag: true, lastModified: true });
    const res = await adapter.check(target(path), {});
    expect(res.metadata).toMatchObject({ title: 'Atom blog', actorId: `${base}/`, subscribers: null });
    expect(res.state).toEqual({});
  });

  it('refuses a feed that does not parse', async () => {
    const path = newFeed();
    fake.raw(path, '<rss version="2.0"><channel><title>cut off<item><title>a');
    const err = await failureOf(adapter.check(target(path), {}));
    expect(err.type).toBe('UnsupportedSource');
  });
});

describe('hostile documents', () => {
  const cases: [string, string, string][] = [
    ['an empty body', '', 'UnsupportedSource'],
    ['garbage', 'Hello, this is not a feed at all.', 'UnsupportedSource'],
    ['JSON that is not a feed', '[1, 2, 3]', 'UnsupportedSource'],
    ['malformed XML', '<rss version="2.0"><channel><title>cut off<item><title>a', 'InvalidResponse'],
  ];
  it.each(cases)('%s is a SourceError', async (_name, body, type) => {
    const path = newFeed();
    fake.raw(path, body);
    const err = await failureOf(adapter.fetchNewest(target(path), context()));
    expect(err.type).toBe(type);
  });

  it('keeps what can be kept of hostile values: numbers as titles, dates in words, script links', async () => {
    const path = newFeed();
    const feed = {
      version: 'https://jsonfeed.org/version/1.1',
      title: 'Hostile',
      home_page_url: 'javascript:alert(1)',
      items: [
        {
          id: 'h1',
          title: 5,
          url: 'javascript:alert(1)',
          date_published: 'yesterday',
          content_html: '<p>Hi\u0000 there</p>',
          image: 'data:image/png;base64,AA',
        },
        { id: 'h2', title: { nested: true }, url: '/relative', content_text: 'x'.repeat(500) },
        { id: { x: 1 }, url: 'https://ok.example/3', title: 'Three', date_published: '12' },
      ],
    };
    fake.raw(path, JSON.stringify(feed), 'application/json');
    const res = await adapter.fetchNewest(target(path), context());
    expect(res.metadata?.actorId).toBeNull();
    const [h1, h2, h3] = res.posts;
    expect(h1).toMatchObject({ title: '5', url: null, thumbnail: null, body: '<p>Hi there</p>', apId: 'h1' });
    expect(Math.abs(Date.parse(h1.published) - Date.now())).toBeLessThan(60_000);
    expect(h2).toMatchObject({ title: 'x'.repeat(120), url: `${base}/relative` });
    expect(h3).toMatchObject({ title: 'Three', apId: 'https://ok.example/3' });
    expect(Math.abs(Date.parse(h3.published) - Date.now())).toBeLessThan(60_000); // "12" is no date
  });

  it(`keeps at most ${MAX_ITEMS} items of a huge feed`, async () => {
    const path = newFeed();
    const items = Array.from({ length: 3000 }, (_, i) => `<item><guid>g${i}</guid><title>Item ${i}</title></item>`).join('');
    fake.raw(path, `<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title>${items}</channel></rss>`);
    const res = await adapter.fetchNewest(target(path), context());
    expect(res.posts).toHaveLength(MAX_ITEMS);
    expect(res.posts[0].title).toBe('Item 0');
  });
});

describe('refs', () => {
  it('takes any http(s) URL as a feed, without its fragment', () => {
    const d = adapter.fromUrl(new URL('https://Blog.Example.COM.:443/feed.xml?format=rss#top'));
    expect(d).toMatchObject({
      kind: 'rss',
      host: 'blog.example.com',
      instance: 'https://blog.example.com',
      url: 'https://blog.example.com/feed.xml?format=rss',
    });
    expect(d?.ref).toMatch(/^rss:[0-9a-f]{12}@blog\.example\.com$/);
    expect(d?.name).toBe(d?.ref.slice(4, 16));
    expect(adapter.fromUrl(new URL('https://blog.example.com/feed.xml?format=rss'))?.ref).toBe(d?.ref);
    expect(adapter.fromUrl(new URL('https://blog.example.com/feed.xml?format=atom'))?.ref).not.toBe(d?.ref);
    expect(adapter.fromUrl(new URL('http://127.0.0.1:8080/f'))?.host).toBe('127.0.0.1:8080');
  });

  it('refuses what is not http(s), and URLs with credentials', () => {
    for (const url of ['ftp://example.com/feed.xml', 'javascript:alert(1)', 'file:///etc/passwd', 'https://user:pw@example.com/feed']) {
      expect(adapter.fromUrl(new URL(url))).toBeUndefined();
    }
  });

  it('parses its own refs back (without the URL, which only the catalog knows)', () => {
    for (const url of ['https://blog.example.com/feed', 'http://127.0.0.1:8080/f']) {
      const d = adapter.fromUrl(new URL(url));
      if (!d) throw new Error('not detected');
      expect(adapter.parseRef(d.ref)).toEqual({ ...d, instance: `https://${d.host}`, url: null });
    }
    for (const ref of [
      'rss:ABCDEF123456@example.com',
      'rss:abc@example.com',
      'rss:0123456789ab@Example.com',
      'rss:0123456789ab@',
      'tech@lemmy.world',
      'rss:0123456789ab@a/b',
    ]) {
      expect(adapter.parseRef(ref)).toBeUndefined();
    }
  });
});
