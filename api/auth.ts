// API_TOKEN: when set, every mutating request needs it. The REST API takes
// `Authorization: Bearer <token>`; the website's forms take the same token from a cookie that the
// /login form sets (HttpOnly, SameSite=Strict), so browsing stays open and changes need the token.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { getCookie } from 'hono/cookie';
import { ApiError } from './errors.js';

export const TOKEN_COOKIE = 'lemmy_fetcher_token';

export function tokenMatches(expected: string, given: string | undefined): boolean {
  if (!given) return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

export function requireBearer(token: string | undefined): MiddlewareHandler {
  return async (c, next) => {
    if (token && !SAFE.has(c.req.method)) {
      const m = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '');
      if (!tokenMatches(token, m?.[1]?.trim())) {
        c.header('WWW-Authenticate', 'Bearer');
        throw new ApiError(401, 'unauthorized', 'This request needs the API token: Authorization: Bearer <API_TOKEN>');
      }
    }
    await next();
  };
}

/** For website forms: the cookie set by /login, or a bearer header (scripts). */
export function webAuthorized(c: Context, token: string | undefined): boolean {
  if (!token) return true;
  const m = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '');
  return tokenMatches(token, m?.[1]?.trim() ?? getCookie(c, TOKEN_COOKIE));
}

/**
 * Refuses cross-site form posts (a page elsewhere posting to a local instance): when the browser
 * says where the request comes from (Origin) it must be this host. Requests without Origin
 * (curl, scripts) pass; behind a proxy the Host header is normally preserved.
 */
export function sameOrigin(c: Context): boolean {
  const origin = c.req.header('origin');
  if (!origin || origin === 'null') return !origin;
  try {
    const host = c.req.header('x-forwarded-host') ?? c.req.header('host');
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}
