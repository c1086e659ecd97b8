// RSS, Atom and JSON Feed as a source: one URL, fetched whole each sync. Conditional GET (ETag,
// Last-Modified) makes an unchanged feed a cheap 304, and the feed's own hints (<ttl>,
// Cache-Control max-age, Retry-After) tell the scheduler not to ask sooner.
import { SourceError } from '../errors.js';
import type { HttpResponse, SourceHttp } from '../http.js';
import { urlHashOf, type DetectedSource, type FetchResult, type SourceAdapter, type SourceMetadata, type SourceTarget } from '../types.js';
import { parseFeedText, type ParsedFeed } from './parse.js';

export const FEED_ACCEPT =
  'application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1';

/** A feed asking to be left alone longer than this is still asked daily. */
const MAX_MIN_INTERVAL_SECONDS = 24 * 3600;

/** Lower-case host, no default port, no trailing dot; undefined when the URL is not an http(s) one we fetch. */
function normalisedUrl(input: URL): URL | undefined {
  if (input.protocol !== 'http:' && input.protocol !== 'https:') return undefined;
  if (input.username || input.password) return undefined; // credentials would end up in refs and logs
  const url = new URL(input.href);
  url.hash = '';
  if (url.hostname.endsWith('.')) url.hostname = url.hostname.slice(0, -1);
  if (!url.hostname || url.hostname.startsWith('.') || url.hostname.includes('..')) return undefined;
  return url;
}

function detected(url: URL): DetectedSource {
  const canonical = url.href;
  const name = urlHashOf(canonical);
  return { kind: 'rss', ref: `rss:${name}@${url.host}`, instance: url.origin, host: url.host, name, url: canonical };
}

function feedUrlOf(source: SourceTarget): URL {
  try {
    if (source.url) return new URL(source.url);
  } catch {
    // falls through to the error below
  }
  throw new SourceError('UnsupportedSource', `the feed URL of ${source.ref} is not known`);
}

function metadataOf(feed: ParsedFeed, source: SourceTarget): SourceMetadata {
  return {
    remoteId: null,
    actorId: feed.link,
    title: feed.title || source.host,
    description: feed.description,
    icon: feed.icon,
    banner: null,
    nsfw: false,
    subscribers: null,
    postsCount: null,
  };
}

/** Cache-Control max-age in seconds, unless the response may not be reused at all. */
function maxAgeOf(cacheControl: string | undefined): number | undefined {
  if (!cacheControl || /(?:^|,)\s*no-(?:cache|store)\b/i.test(cacheControl)) return undefined;
  const m = /(?:^|,)\s*max-age\s*=\s*"?(\d{1,10})"?/i.exec(cacheControl);
  return m ? Number(m[1]) : undefined;
}

/** The longest wait the feed asked for, in seconds (capped), or undefined when it asked none. */
function minIntervalOf(res: HttpResponse, ttlSeconds?: number): number | undefined {
  const asks = [
    ttlSeconds,
    maxAgeOf(res.headers['cache-control']),
    res.retryAfterMs === undefined ? undefined : Math.ceil(res.retryAfterMs / 1000),
  ];
  const seconds = asks.filter((s): s is number => s !== undefined && Number.isFinite(s) && s > 0);
  return seconds.length ? Math.min(Math.max(...seconds), MAX_MIN_INTERVAL_SECONDS) : undefined;
}

/** What a status other than 200 (and a 304 we asked for) means for a feed. */
function statusError(res: HttpResponse): SourceError {
  const { status, url } = res;
  const opts = { status, retryAfterMs: res.retryAfterMs };
  if (status === 404 || status === 410) return new SourceError('SourceGone', `${url.href} is gone (HTTP ${status})`, opts);
  if (status >= 500) return new SourceError('ServerError', `${url.host} failed to serve the feed (HTTP ${status})`, opts);
  if (status === 304)
    return new SourceError('InvalidResponse', `${url.host} answered 304 Not Modified to a request that compared nothing`, opts);
  if (status >= 300 && status < 400) {
    const location = res.headers.location;
    let target: string | undefined;
    try {
      target = location ? new URL(location, url).href : undefined;
    } catch {
      target = undefined;
    }
    // Followed silently, a moved feed would keep costing a redirect every sync: the user adds where it went.
    return new SourceError(
      'UnsupportedSource',
      target
        ? `${url.href} redirects (HTTP ${status}) to ${target}: add that URL instead`
        : `${url.href} answered HTTP ${status} without saying where the feed is`,
      opts,
    );
  }
  if (status === 401 || status === 403) return new SourceError('UnsupportedSource', `${url.href} needs a login (HTTP ${status})`, opts);
  return new SourceError('UnsupportedSource', `${url.href} is not a feed we can read (HTTP ${status})`, opts);
}

const isOk = (status: number) => status >= 200 && status < 300;

export function createRssAdapter(http: SourceHttp): SourceAdapter {
  const parse = (res: HttpResponse): ParsedFeed =>
    parseFeedText(res.text, { contentType: res.headers['content-type'], baseUrl: res.url.href, label: res.url.href });

  return {
    kind: 'rss',

    fromUrl(url) {
      const normal = normalisedUrl(url);
      return normal ? detected(normal) : undefined;
    },

    parseRef(ref) {
      const m = /^rss:([0-9a-f]{12})@([^@\s/?#\\]+)$/.exec(ref);
      if (!m) return undefined;
      let url: URL;
      try {
        url = new URL(`https://${m[2]}`);
      } catch {
        return undefined;
      }
      const normal = normalisedUrl(url);
      // Only refs already in normal form: one feed, one ref.
      if (!normal || normal.host !== m[2]) return undefined;
      return { kind: 'rss', ref, instance: normal.origin, host: normal.host, name: m[1], url: null };
    },

    async check(source, opts) {
      const res = await http.get(feedUrlOf(source), { accept: FEED_ACCEPT, signal: opts.signal });
      if (!isOk(res.status)) throw statusError(res);
      let feed: ParsedFeed;
      try {
        feed = parse(res);
      } catch (err) {
        // At add time a feed that does not parse is refused, whatever the reason.
        if (err instanceof SourceError && err.type === 'InvalidResponse')
          throw new SourceError('UnsupportedSource', err.message, { cause: err });
        throw err;
      }
      // No validators in the state: the first sync must fetch (and store) the items this check only read.
      return { metadata: metadataOf(feed, source), state: {} };
    },

    async fetchMetadata() {
      return undefined; // every fetch brings the feed's title and icon
    },

    async fetchNewest(source, ctx): Promise<FetchResult> {
      const url = feedUrlOf(source);
      const { etag, lastModified } = source.state;
      const headers: Record<string, string> = {};
      if (typeof etag === 'string' && etag) headers['if-none-match'] = etag;
      if (typeof lastModified === 'string' && lastModified) headers['if-modified-since'] = lastModified;
      const res = await http.get(url, { accept: FEED_ACCEPT, headers, signal: ctx.signal });
      ctx.heartbeat(`feed answered ${res.status}`);
      if (res.status === 304 && Object.keys(headers).length > 0) {
        return { posts: [], state: source.state, requests: 1, notModified: true, minIntervalSeconds: minIntervalOf(res) };
      }
      if (!isOk(res.status)) throw statusError(res);
      const feed = parse(res);
      return {
        posts: feed.items,
        state: { etag: res.headers.etag ?? null, lastModified: res.headers['last-modified'] ?? null },
        metadata: metadataOf(feed, source),
        requests: 1,
        minIntervalSeconds: minIntervalOf(res, feed.ttlSeconds),
      };
    },
  };
}
