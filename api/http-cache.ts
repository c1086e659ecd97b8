// Conditional GETs and the response cache, for GET (and HEAD) under /api:
//  - `ETag` on every 200 JSON answer (Hono's etag(): a SHA-1 of the body), `If-None-Match` with a
//    matching tag → 304 without a body;
//  - `Cache-Control: no-cache`: a client (or a shared cache) may keep the answer but must ask
//    again before each use, a question a 304 answers cheaply. No max-age: posts pages and statuses
//    change with every sync, at times nobody can predict, and a stale page after a sync is what
//    this avoids;
//  - posts pages (GET /api/communities/:ref/posts, GET /api/posts) come from the response cache
//    (api/response-cache.ts, invalidated by change events) when they are there: the stored JSON
//    and the ETag computed when it was stored, so a hit costs no query, no validation, no
//    serialization and no hashing (etag() finds the tag set and only compares).
//    `X-Cache: hit` or `miss` says which. API_RESPONSE_CACHE=false turns the cache off.
// The live streams (/api/stream, /api/ws) are left alone: their body never ends.
import { hash } from 'node:crypto';
import type { Context, MiddlewareHandler, Next } from 'hono';
import { etag, RETAINED_304_HEADERS } from 'hono/etag';
import { streamHub } from '../src/stream/hub.js';
import { ResponseCache, type CommunityIdentity } from './response-cache.js';

declare module 'hono' {
  interface ContextVariableMap {
    /** The community of a posts page, when the response cache knows it already (its identity only). */
    knownCommunity: CommunityIdentity;
  }
}
import { findCommunity, type Services } from './service.js';

export const CACHE_CONTROL = 'no-cache';

const COMMUNITY_POSTS = /^\/api\/communities\/([^/]+)\/posts\/?$/;
const COMMUNITY = /^\/api\/communities\/([^/]+)\/?$/;
const isStream = (path: string) => path === '/api/stream' || path === '/api/ws' || path.startsWith('/api/stream/');

/** A path segment as the routes see it (percent-decoded); undefined when it cannot be decoded. */
function decoded(segment: string | undefined): string | undefined {
  if (segment === undefined || !segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** The response cache of an app (absent when off): its hits, misses and size, for metrics. */
export const responseCaches = new WeakMap<Services, ResponseCache>();

export function httpCache(s: Services): MiddlewareHandler {
  const tag = etag({ retainedHeaders: [...RETAINED_304_HEADERS, 'x-cache'] });
  const cache =
    s.config.API_RESPONSE_CACHE && s.config.API_RESPONSE_CACHE_MAX_BYTES > 0
      ? new ResponseCache(
          {
            hub: streamHub({ router: s.router, catalog: s.catalog, log: s.log, config: s.config }),
            catalog: s.catalog,
            log: s.log,
            router: s.router,
          },
          s.config.API_RESPONSE_CACHE_MAX_BYTES,
        )
      : undefined;
  if (cache) responseCaches.set(s, cache);

  const fresh = async (c: Context, next: Next) => {
    await next();
    if (c.res.status === 200 && !c.res.headers.has('cache-control')) c.res.headers.set('Cache-Control', CACHE_CONTROL);
  };

  return async (c, next) => {
    const method = c.req.method;
    if (method === 'DELETE' && cache) return removal(cache, c, next);
    if ((method !== 'GET' && method !== 'HEAD') || isStream(c.req.path)) return next();
    if (!cache) return tag(c, () => fresh(c, next));
    return tag(c, async () => {
      const hit = await cached(s, cache, c, () => fresh(c, next));
      if (hit) c.res = hit;
    });
  };
}

/**
 * A community removed through this app: its pages go as soon as the removal is answered (other
 * replicas hear it from the catalog's NOTIFY, as this one does a moment later).
 */
async function removal(cache: ResponseCache, c: Context, next: Next): Promise<void> {
  await next();
  const ref = decoded(COMMUNITY.exec(c.req.path)?.[1]);
  if (ref === undefined || c.res.status >= 300) return;
  const id = cache.refId(ref) ?? (/^\d{1,15}$/.test(ref) ? Number(ref) : undefined);
  if (id === undefined) cache.flush();
  else cache.removed(id);
}

/** A posts page from the cache, or filled into it; anything else straight through. */
async function cached(s: Services, cache: ResponseCache, c: Context, next: () => Promise<void>): Promise<Response | void> {
  const path = c.req.path;
  const community = decoded(COMMUNITY_POSTS.exec(path)?.[1]);
  const cross = path === '/api/posts' || path === '/api/posts/';
  if ((!cross && community === undefined) || !cache.usable()) return next();
  const before = c.req.query('before') ?? '';
  const page = `${c.req.query('limit') ?? ''}|${before}`;
  const since = cache.now();
  let communityId: number | undefined;
  if (community !== undefined) {
    let known = cache.identity(community);
    if (!known) {
      try {
        known = await findCommunity(s, community);
      } catch {
        return next(); // a bad or unknown ref: the route answers it
      }
      cache.rememberRef(community, known, since);
    }
    communityId = known.id;
    // The route pages from this, rather than looking the community up again.
    c.set('knownCommunity', known);
  }
  const key = communityId === undefined ? `p|${page}` : `c${communityId}|${page}`;
  const hit = cache.get(key);
  if (hit) {
    return c.body(hit.body as Uint8Array<ArrayBuffer>, 200, {
      'Content-Type': hit.contentType,
      ETag: hit.etag,
      'Cache-Control': CACHE_CONTROL,
      'X-Cache': 'hit',
    });
  }
  // The page's JSON text as the route serializes it (c.json): kept here, so that a miss neither
  // reads the answer's body back as a stream nor parses it again. It is tagged before the answer
  // is made, so Hono makes the answer once, headers and all, and @hono/node-server writes it the
  // quick way (a copied Response went the slow way).
  let filled: { text: string; value: unknown; etag: string } | undefined;
  c.json = ((value: unknown, arg?: unknown, headers?: unknown) => {
    const text = JSON.stringify(value);
    const status = typeof arg === 'number' ? arg : ((arg as ResponseInit | undefined)?.status ?? 200);
    if (status === 200) {
      filled = { text, value, etag: `"${hash('sha1', text, 'hex')}"` }; // one call, no Hash object per answer
      c.header('ETag', filled.etag);
      c.header('X-Cache', 'miss');
    }
    c.header('Content-Type', 'application/json');
    return (c.body as (data: string, arg?: unknown, headers?: unknown) => Response)(text, arg, headers);
  }) as typeof c.json;
  await next();
  const res = c.res;
  const contentType = res.headers.get('content-type') ?? '';
  if (res.status !== 200 || !filled || !contentType.startsWith('application/json')) return;
  // A merged page that missed a node is not the page: answered, not kept.
  const partial = communityId === undefined && (filled.value as { partial?: boolean }).partial === true;
  if (!partial && cache.usable())
    cache.put(key, { body: filled.text, etag: filled.etag, contentType, communityId }, since, { admitOnSecond: before !== '' });
}
