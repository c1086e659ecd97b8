// Request guards shared by the API and the website:
//  - who is asking: the peer address (@hono/node-server's getConnInfo), whether it is a trusted
//    proxy (TRUSTED_PROXIES), and through it the client's IP and whether the request came over TLS;
//  - the Host allowlist (ALLOWED_HOSTS) against DNS rebinding: 403 host_not_allowed for any other
//    host;
//  - cross-site requests (by Origin / Sec-Fetch-Site) on every state-changing route: 403
//    cross_site_request; clients that are not browsers (no Origin, no Sec-Fetch-Site: curl, scripts) pass;
//  - JSON bodies only under /api: 415 for anything else (a form or text/plain body is what a page
//    elsewhere can send without a CORS preflight).
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import ipaddr from 'ipaddr.js';
import { normalizeHostName } from '../src/config.js';
import { ApiError } from './errors.js';
import { isJsonContentType, unsupportedMediaType } from './validation.js';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parsed TRUSTED_PROXIES with the questions asked about a request. */
export class RequestInfo {
  private readonly ranges: Range[];

  constructor(trustedProxies: readonly string[]) {
    this.ranges = trustedProxies.map((cidr) => ipaddr.parseCIDR(cidr));
  }

  /** The address of the TCP peer; undefined when not served by @hono/node-server (app.request). */
  peer(c: Context): string | undefined {
    try {
      return getConnInfo(c).remote.address;
    } catch {
      return undefined;
    }
  }

  isTrusted(address: string | undefined): boolean {
    if (!address) return false;
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      addr = ipaddr.process(address); // ::ffff:127.0.0.1 → 127.0.0.1
    } catch {
      return false;
    }
    return this.ranges.some(([range, bits]) => range.kind() === addr.kind() && addr.match(range, bits));
  }

  /** The client: the peer, or behind trusted proxies the last X-Forwarded-For hop they did not add. */
  clientIp(c: Context): string {
    const peer = this.peer(c);
    if (!peer) return 'unknown';
    if (!this.isTrusted(peer)) return ipaddr.isValid(peer) ? ipaddr.process(peer).toString() : peer;
    const hops = (c.req.header('x-forwarded-for') ?? '')
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean);
    for (let i = hops.length - 1; i >= 0; i--) {
      if (!this.isTrusted(hops[i])) return ipaddr.isValid(hops[i]) ? ipaddr.process(hops[i]).toString() : hops[i].slice(0, 100);
    }
    return hops[0] ?? ipaddr.process(peer).toString();
  }

  /** Direct TLS, or `X-Forwarded-Proto: https` (first value) from a trusted proxy. */
  isTls(c: Context): boolean {
    if (new URL(c.req.url).protocol === 'https:') return true;
    if (!this.isTrusted(this.peer(c))) return false;
    return (c.req.header('x-forwarded-proto') ?? '').split(',')[0].trim().toLowerCase() === 'https';
  }

  /** The origin the browser sees: scheme by isTls, host from the Host header (X-Forwarded-Host from a trusted proxy). */
  origin(c: Context): string {
    const forwardedHost = this.isTrusted(this.peer(c)) ? c.req.header('x-forwarded-host')?.split(',')[0].trim() : undefined;
    return `${this.isTls(c) ? 'https' : 'http'}://${forwardedHost || new URL(c.req.url).host}`;
  }
}

/** ALLOWED_HOSTS: the URL's host and the Host header must both be listed (ports ignored); `*` allows any. */
export function hostAllowlist(allowed: readonly string[]): MiddlewareHandler {
  if (allowed.includes('*')) return async (_c, next) => next();
  const set = new Set(allowed);
  return async (c, next) => {
    const names = [new URL(c.req.url).host, c.req.header('host')].filter((h): h is string => h !== undefined);
    for (const name of names) {
      const host = normalizeHostName(name);
      if (!host || !set.has(host)) {
        throw new ApiError(
          403,
          'host_not_allowed',
          `This server does not answer to the host ${JSON.stringify(name.slice(0, 100))}; its operator can add it to ALLOWED_HOSTS`,
        );
      }
    }
    await next();
  };
}

/**
 * Refuses state-changing requests (anything but GET/HEAD/OPTIONS) that a browser sends from
 * another site, whatever their Content-Type: `Sec-Fetch-Site: cross-site` or `same-site`, or an
 * `Origin` whose host (with port) is not the one this request was sent to (the Host header, or
 * X-Forwarded-Host from a trusted proxy); `Origin: null` (sandboxed pages, some redirects) too.
 * On /api, an origin listed in CORS_ORIGINS may call cross-site. Requests with neither Origin nor
 * Sec-Fetch-Site come from no browser (curl, scripts) and pass.
 *
 * Not Hono's csrf(): it only looks at bodies a page can send without a CORS preflight (form,
 * multipart, text/plain or no Content-Type), and lets a request through when either header looks
 * right; this check applies to every body and needs both headers, when sent, to agree.
 */
export function crossSiteGuard(info: RequestInfo, corsOrigins: readonly string[], isApiPath: (path: string) => boolean): MiddlewareHandler {
  const anyCors = corsOrigins.includes('*');
  const corsAllowed = (c: Context, origin: string | undefined) =>
    origin !== undefined && isApiPath(c.req.path) && (anyCors || corsOrigins.includes(origin));
  const refuse = () =>
    new ApiError(403, 'cross_site_request', 'Cross-site requests are not accepted: this request came from a page of another site');
  return async (c, next) => {
    if (SAFE.has(c.req.method)) return next();
    const origin = c.req.header('origin');
    const site = c.req.header('sec-fetch-site')?.trim().toLowerCase();
    if (origin === undefined && site === undefined) return next();
    if (corsAllowed(c, origin)) return next();
    if (site !== undefined && site !== 'same-origin' && site !== 'none') throw refuse();
    if (origin !== undefined && originHost(origin) !== originHost(info.origin(c))) throw refuse();
    await next();
  };
}

/** `host[:port]` of an origin (default port dropped), or undefined for `null` and non-URLs. */
function originHost(origin: string): string | undefined {
  try {
    const url = new URL(origin);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.host : undefined;
  } catch {
    return undefined;
  }
}

/** Under /api, a POST/PUT/PATCH that carries a body must say Content-Type: application/json. */
export const jsonBodiesOnly: MiddlewareHandler = async (c, next) => {
  if (c.req.method === 'POST' || c.req.method === 'PUT' || c.req.method === 'PATCH') {
    const type = c.req.header('content-type');
    const length = c.req.header('content-length');
    const hasBody = type !== undefined || (length !== undefined && length !== '0') || c.req.header('transfer-encoding') !== undefined;
    if (hasBody && !isJsonContentType(type)) throw unsupportedMediaType();
  }
  await next();
};
