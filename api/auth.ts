// API_TOKEN: when set, every mutating request needs it. The REST API takes
// `Authorization: Bearer <token>`, checked by Hono's bearerAuth (timing-safe); the website's forms
// take the same token from a cookie that the /login form sets (HttpOnly, SameSite=Strict, Secure
// over TLS), or a bearer header (scripts), so browsing stays open and changes need the token.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import { getCookie } from 'hono/cookie';
import { HTTPException } from 'hono/http-exception';
import { ApiError } from './errors.js';

export const TOKEN_COOKIE = 'lemmy_fetcher_token';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Timing-safe comparison for a token that does not come in a bearer header (cookie, login form). */
export function tokenMatches(expected: string, given: string | undefined): boolean {
  if (!given) return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

/**
 * Runs Hono's bearerAuth on the request and turns its refusal into our 401 `unauthorized` error,
 * keeping its WWW-Authenticate challenge (RFC 6750: invalid_request for a malformed header,
 * invalid_token for a wrong token). Resolves when the token is right.
 */
function bearerCheck(token: string, message: string): (c: Context) => Promise<void> {
  const check = bearerAuth({ token });
  return async (c) => {
    try {
      await check(c, async () => {});
    } catch (err) {
      if (!(err instanceof HTTPException)) throw err;
      const challenge = err.getResponse().headers.get('WWW-Authenticate');
      if (challenge) c.header('WWW-Authenticate', challenge);
      throw new ApiError(401, 'unauthorized', message);
    }
  };
}

/** For /api: with a token configured, every request but GET/HEAD/OPTIONS needs the bearer header. */
export function requireBearer(token: string | undefined): MiddlewareHandler {
  if (!token) return async (_c, next) => next();
  const check = bearerCheck(token, 'This request needs the API token: Authorization: Bearer <API_TOKEN>');
  return async (c, next) => {
    if (!SAFE.has(c.req.method)) await check(c);
    await next();
  };
}

/** For website forms (POST): a bearer header when one is sent, else the login cookie. */
export function requireWebToken(token: string | undefined): MiddlewareHandler {
  if (!token) return async (_c, next) => next();
  const message = 'Changes need the API token: log in first.';
  const check = bearerCheck(token, message);
  return async (c, next) => {
    if (c.req.method === 'POST') {
      if (c.req.header('authorization') !== undefined) await check(c);
      else if (!tokenMatches(token, getCookie(c, TOKEN_COOKIE))) throw new ApiError(401, 'unauthorized', message);
    }
    await next();
  };
}

/** Whether the browser holds the login cookie (the website shows "Log out" then). */
export function webAuthorized(c: Context, token: string | undefined): boolean {
  if (!token) return true;
  return tokenMatches(token, getCookie(c, TOKEN_COOKIE));
}
