/**
 * FakeFeed: a real HTTP server (node:http on 127.0.0.1) serving RSS 2.0, Atom and JSON feeds, for
 * the feed adapter's tests. Conditional GET is implemented as a cache would expect it: a strong
 * ETag that is a hash of the body (so it changes whenever the feed does) answers If-None-Match
 * with 304, and a Last-Modified that advances with every change answers If-Modified-Since with
 * 304 (ignored when If-None-Match is sent, as RFC 9110 says).
 *
 * Faults: `failNext` (the next request answers 500/404/410/429), `html` (an HTML page instead of
 * the feed), `redirect`, and `raw` (any body, for hostile documents).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { generateAtomFeed, generateJsonFeed, generateRssFeed } from 'feedsmith';

export type FeedFormat = 'rss' | 'atom' | 'json';

export interface FeedInit {
  format: FeedFormat;
  title: string;
  /** RSS `<ttl>`. */
  ttlMinutes?: number;
  /** Cache-Control header value. */
  cacheControl?: string;
  /** Retry-After header (seconds) on every answer. */
  retryAfterSeconds?: number;
  etag: boolean;
  lastModified: boolean;
}

export interface FeedItemInit {
  guid?: string;
  link?: string;
  title?: string;
  published?: Date;
  content?: string;
}

export interface FeedRequest {
  path: string;
  headers: http.IncomingHttpHeaders;
  status: number;
  at: Date;
}

export interface FeedFault {
  status: 500 | 404 | 410 | 429;
  retryAfterSeconds?: number;
}

interface FeedState {
  init: FeedInit;
  /** Newest first, as feeds list them. */
  items: FeedItemInit[];
  /** Whole seconds: what an HTTP date can say. */
  modifiedAt: number;
  faults: FeedFault[];
  html: boolean;
  redirect?: { location: string; status: number };
  raw?: { body: string; contentType: string };
}

const CONTENT_TYPES: Record<FeedFormat, string> = {
  rss: 'application/rss+xml; charset=utf-8',
  atom: 'application/atom+xml; charset=utf-8',
  json: 'application/feed+json; charset=utf-8',
};

const HTML_PAGE = `<!DOCTYPE html>
<html><head><title>A blog</title><link rel="alternate" type="application/rss+xml" href="/feed.xml"></head>
<body><h1>A blog</h1><p>Welcome.</p></body></html>`;

export class FakeFeed {
  readonly requests: FeedRequest[] = [];
  private readonly feeds = new Map<string, FeedState>();
  private readonly sockets = new Set<Socket>();
  private server?: http.Server;
  private base = '';

  /** Starts listening on 127.0.0.1 (a free port); returns the base URL, e.g. `http://127.0.0.1:12345`. */
  async start(): Promise<string> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.base;
  }

  get url(): string {
    return this.base;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  addFeed(path: string, init: FeedInit): void {
    this.feeds.set(path, { init, items: [], modifiedAt: nowSeconds(), faults: [], html: false });
  }

  addItem(path: string, item: FeedItemInit): void {
    const feed = this.feed(path);
    feed.items.unshift(item);
    this.touch(feed);
  }

  /** The next request for `path` answers this status (consumed once, in order). */
  failNext(path: string, fault: FeedFault): void {
    this.feed(path).faults.push(fault);
  }

  /** Serve an HTML page at `path` instead of the feed (until `html(path, false)`). */
  html(path: string, on = true): void {
    this.feed(path).html = on;
  }

  /** Answer `path` with a redirect to `location` (until `redirect(path, undefined)`). */
  redirect(path: string, location: string | undefined, status = 301): void {
    this.feed(path).redirect = location === undefined ? undefined : { location, status };
  }

  /** Serve this exact body at `path` (validators still apply). */
  raw(path: string, body: string, contentType = 'application/xml; charset=utf-8'): void {
    const feed = this.feed(path);
    feed.raw = { body, contentType };
    this.touch(feed);
  }

  /** Answers with this status so far (all paths, or one). */
  count(status: number, path?: string): number {
    return this.requests.filter((r) => r.status === status && (path === undefined || r.path === path)).length;
  }

  get okCount(): number {
    return this.count(200);
  }

  get notModifiedCount(): number {
    return this.count(304);
  }

  resetRequests(): void {
    this.requests.length = 0;
  }

  /** The feed document as it is served now, and its content type. */
  render(path: string): { body: string; contentType: string } {
    const feed = this.feed(path);
    if (feed.raw) return feed.raw;
    return { body: renderFeed(feed, `${this.base}${path}`), contentType: CONTENT_TYPES[feed.init.format] };
  }

  private feed(path: string): FeedState {
    const feed = this.feeds.get(path);
    if (!feed) throw new Error(`FakeFeed: no feed at ${path}`);
    return feed;
  }

  /** Content changed: Last-Modified must move on even within the same second, or a client would miss it. */
  private touch(feed: FeedState): void {
    feed.modifiedAt = Math.max(nowSeconds(), feed.modifiedAt + 1);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://fake').pathname;
    const answer = (status: number, headers: Record<string, string>, body = '') => {
      this.requests.push({ path, headers: req.headers, status, at: new Date() });
      res.writeHead(status, { ...headers, ...(body ? { 'content-length': String(Buffer.byteLength(body)) } : {}) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const feed = this.feeds.get(path);
    if (!feed) return answer(404, { 'content-type': 'text/html' }, '<html><body><h1>404 Not Found</h1></body></html>');
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(405, { allow: 'GET, HEAD' });

    const fault = feed.faults.shift();
    if (fault) {
      const headers: Record<string, string> = { 'content-type': 'text/plain' };
      if (fault.retryAfterSeconds !== undefined) headers['retry-after'] = String(fault.retryAfterSeconds);
      return answer(fault.status, headers, `HTTP ${fault.status}`);
    }
    if (feed.redirect) return answer(feed.redirect.status, { location: feed.redirect.location });
    if (feed.html) return answer(200, { 'content-type': 'text/html; charset=utf-8' }, HTML_PAGE);

    const { body, contentType } = this.render(path);
    const headers: Record<string, string> = {};
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    const lastModified = new Date(feed.modifiedAt * 1000).toUTCString();
    if (feed.init.etag) headers.etag = etag;
    if (feed.init.lastModified) headers['last-modified'] = lastModified;
    if (feed.init.cacheControl) headers['cache-control'] = feed.init.cacheControl;
    if (feed.init.retryAfterSeconds !== undefined) headers['retry-after'] = String(feed.init.retryAfterSeconds);

    const ifNoneMatch = header(req, 'if-none-match');
    const ifModifiedSince = header(req, 'if-modified-since');
    let notModified = false;
    if (ifNoneMatch !== undefined) {
      // If-None-Match uses the weak comparison; If-Modified-Since is then ignored.
      notModified =
        feed.init.etag && (ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === etag));
    } else if (ifModifiedSince !== undefined && feed.init.lastModified) {
      const since = Date.parse(ifModifiedSince);
      notModified = Number.isFinite(since) && feed.modifiedAt * 1000 <= since;
    }
    if (notModified) return answer(304, headers);
    answer(200, { ...headers, 'content-type': contentType }, body);
  }
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Deterministic for the same feed state (the ETag hashes it): no "now" inside. */
function renderFeed(feed: FeedState, selfUrl: string): string {
  const { init, items } = feed;
  const home = new URL('/', selfUrl).href;
  const updated = new Date(feed.modifiedAt * 1000);
  switch (init.format) {
    case 'rss':
      return generateRssFeed({
        title: init.title,
        link: home,
        description: `${init.title}, a fake feed`,
        ...(init.ttlMinutes !== undefined ? { ttl: init.ttlMinutes } : {}),
        lastBuildDate: updated,
        items: items.map((i) => ({
          ...(i.title !== undefined ? { title: i.title } : {}),
          ...(i.link !== undefined ? { link: i.link } : {}),
          ...(i.content !== undefined ? { description: i.content } : {}),
          ...(i.guid !== undefined ? { guid: { value: i.guid, isPermaLink: /^https?:/.test(i.guid) } } : {}),
          ...(i.published ? { pubDate: i.published } : {}),
        })),
      });
    case 'atom':
      return generateAtomFeed({
        id: selfUrl,
        title: { value: init.title },
        updated,
        links: [
          { href: home, rel: 'alternate' },
          { href: selfUrl, rel: 'self' },
        ],
        entries: items.map((i) => ({
          // Atom requires an id and a time; the fake leaves them out when a test does, to see what the adapter makes of it.
          ...(i.guid !== undefined ? { id: i.guid } : {}),
          ...(i.title !== undefined ? { title: { value: i.title } } : {}),
          ...(i.link !== undefined ? { links: [{ href: i.link, rel: 'alternate' }] } : {}),
          ...(i.content !== undefined ? { content: { value: i.content, type: 'html' } } : {}),
          ...(i.published ? { published: i.published, updated: i.published } : {}),
        })) as Parameters<typeof generateAtomFeed>[0]['entries'],
      });
    case 'json':
      return JSON.stringify(
        generateJsonFeed({
          title: init.title,
          home_page_url: home,
          feed_url: selfUrl,
          items: items.map((i) => ({
            ...(i.guid !== undefined ? { id: i.guid } : {}),
            ...(i.link !== undefined ? { url: i.link } : {}),
            ...(i.title !== undefined ? { title: i.title } : {}),
            ...(i.content !== undefined ? { content_html: i.content } : {}),
            ...(i.published ? { date_published: i.published } : {}),
          })) as Parameters<typeof generateJsonFeed>[0]['items'],
        }),
        null,
        2,
      );
  }
}
