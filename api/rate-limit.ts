// Keys and rate limits for /api and /graphql (app.ts mounts it after the write checks): who is
// calling (api/callers.ts: the API_TOKEN, a user's key, or an anonymous client IP), then one
// token from that caller's bucket (api/token-bucket.ts):
//  - a user's key: RATE_LIMIT_KEY_PER_MINUTE, one bucket per user (all their requests, any address);
//  - no key: RATE_LIMIT_ANONYMOUS_PER_MINUTE per client IP (IPv6 per /64);
//  - the API_TOKEN: exempt (operators and their scripts);
//  - a bearer key no one holds: 401 `unauthorized` with `WWW-Authenticate: Bearer error="invalid_token"`,
//    charged to a bucket of the client IP for such keys (the anonymous policy): once it is empty,
//    keys not cached are refused (429) before any catalog lookup.
// A bucket holds RATE_LIMIT_BURST_SECONDS' worth of requests and refills continuously. Every
// limited answer carries the IETF headers (draft-ietf-httpapi-ratelimit-headers), e.g.
// `RateLimit-Policy: "anonymous";q=600;w=60` and `RateLimit: "anonymous";r=597;t=1` (r: requests
// left now; t: seconds until the bucket is full again); a refusal is 429 `rate_limited` with
// Retry-After (seconds until the next request is allowed). A live stream is one request for its
// whole life. /healthz and /metrics are not under these mounts, so they are never limited.
//
// The buckets are in this process's memory: with N API replicas (or API_PROCESSES=N, whose
// processes take connections in turn) each keeps its own, so a client spread over them gets up to
// N times the limit (a sticky balancer keeps a client on one; a shared store such as the catalog or
// Redis would be the next step).
import type { Context, MiddlewareHandler } from 'hono';
import { CallerDirectory, clientKey, type Caller } from './callers.js';
import { ApiError, errorBody } from './errors.js';
import type { RequestInfo } from './guards.js';
import type { Services } from './service.js';
import { TokenBuckets, type BucketPolicy, type Take } from './token-bucket.js';

class Refused extends Error {
  constructor(
    readonly policy: BucketPolicy,
    readonly take: Take,
  ) {
    super('rate limited');
  }
}

interface Limiter {
  middleware: MiddlewareHandler;
  buckets: TokenBuckets;
}

/** One limiter per app (both mounts share it: a client has one budget for REST and GraphQL). */
const limiters = new WeakMap<Services, Limiter>();

export function rateLimit(s: Services, info: RequestInfo): MiddlewareHandler {
  let limiter = limiters.get(s);
  if (!limiter) limiters.set(s, (limiter = createLimiter(s, info)));
  return limiter.middleware;
}

function policyOf(name: string, perMinute: number, burstSeconds: number): BucketPolicy | undefined {
  if (perMinute <= 0) return undefined;
  const perSecond = perMinute / 60;
  return { name, perSecond, capacity: Math.max(1, Math.round(perSecond * burstSeconds)) };
}

/** `"anonymous";q=600;w=60`: the bucket's size, refilled over w seconds. */
const policyHeader = (p: BucketPolicy, burstSeconds: number) => `"${p.name}";q=${p.capacity};w=${burstSeconds}`;
const stateHeader = (p: BucketPolicy, t: Take) => `"${p.name}";r=${t.remaining};t=${t.resetSeconds}`;

function createLimiter(s: Services, info: RequestInfo): Limiter {
  const { config } = s;
  const burst = config.RATE_LIMIT_BURST_SECONDS;
  const anonymous = policyOf('anonymous', config.RATE_LIMIT_ANONYMOUS_PER_MINUTE, burst);
  const keyed = policyOf('key', config.RATE_LIMIT_KEY_PER_MINUTE, burst);
  const policyHeaders = new Map([anonymous, keyed].filter((p): p is BucketPolicy => !!p).map((p) => [p, policyHeader(p, burst)]));
  const buckets = new TokenBuckets();
  buckets.idleMs = burst * 1000;
  const directory = new CallerDirectory(s.catalog, config.API_TOKEN, config.API_KEY_CACHE_SECONDS * 1000);

  const take = (key: string, policy: BucketPolicy): Take => {
    const t = buckets.take(key, policy);
    if (!t.allowed) throw new Refused(policy, t);
    return t;
  };

  const refuse = (c: Context, policy: BucketPolicy, t: Take) => {
    const who = policy === keyed ? 'per key' : 'per client address without a key';
    const e = new ApiError(
      429,
      'rate_limited',
      `Too many requests: ${policy.capacity} per ${burst} s ${who}; try again in ${t.retryAfterSeconds} s`,
      t.retryAfterSeconds,
    );
    return c.json(errorBody(e), 429, {
      'Retry-After': String(t.retryAfterSeconds),
      'RateLimit-Policy': policyHeaders.get(policy)!,
      RateLimit: stateHeader(policy, t),
    });
  };

  const middleware: MiddlewareHandler = async (c, next) => {
    if (c.get('caller')) return next(); // identified already
    let ip: string | undefined;
    const address = () => (ip ??= info.clientIp(c));
    let policy: BucketPolicy | undefined;
    let state: Take | undefined;
    let caller: Caller;
    try {
      // Keys no one holds cost their address a token of its own bucket for them; once it is empty,
      // keys not cached are refused before they are looked up (spraying keys costs no queries).
      const invalidKeys = () => `key?:${clientKey(address())}`;
      const found = await directory.identify(c.req.header('authorization'), address, () => {
        if (anonymous && !buckets.has(invalidKeys(), anonymous)) take(invalidKeys(), anonymous);
      });
      if (found.kind === 'invalid_key') {
        if (anonymous) take(invalidKeys(), anonymous);
        c.header('WWW-Authenticate', 'Bearer error="invalid_token"');
        return c.json(errorBody(new ApiError(401, 'unauthorized', 'This API key is not valid (Authorization: Bearer <key>)')), 401);
      }
      caller = found;
      if (caller.kind === 'user' && keyed) state = take(`user:${caller.id}`, (policy = keyed));
      else if (caller.kind === 'anonymous' && anonymous) state = take(`ip:${caller.ip}`, (policy = anonymous));
    } catch (err) {
      if (err instanceof Refused) return refuse(c, err.policy, err.take);
      throw err;
    }
    c.set('caller', caller);
    // Set before the answer exists, so they go into it as it is made (cheaper than changing it
    // afterwards; an answer with immutable headers, a WebSocket upgrade, simply does not get them).
    if (policy && state) {
      c.header('RateLimit-Policy', policyHeaders.get(policy)!);
      c.header('RateLimit', stateHeader(policy, state));
    }
    await next();
  };
  return { middleware, buckets };
}
