// Static files of the website (public/static/, served at /static/): the stylesheet, linked with a
// content hash (`?v=`) so that browsers may keep it for a year and fetch it again only when it
// changes. Any other URL of a file (no or a stale hash) is served with `no-cache` and an ETag, so
// it is revalidated. Kept out of inline <style>: JSX escapes text, which broke quoted font names,
// and the CSP can then forbid inline styles.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from '@hono/node-server/serve-static';
import type { MiddlewareHandler } from 'hono';
import { etag } from 'hono/etag';

export const PUBLIC_DIR = fileURLToPath(new URL('../../public', import.meta.url));
const STATIC_DIR = path.join(PUBLIC_DIR, 'static');

/** URL path → content hash (12 hex digits) of every file in public/static, read once at start. */
const versions = new Map<string, string>(
  readdirSync(STATIC_DIR, { withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => [
      `/static/${e.name}`,
      createHash('sha256')
        .update(readFileSync(path.join(STATIC_DIR, e.name)))
        .digest('hex')
        .slice(0, 12),
    ]),
);

/** The URL to link a static file with: its path plus its content hash. */
export function assetUrl(urlPath: string): string {
  const v = versions.get(urlPath);
  if (!v) throw new Error(`no static file ${urlPath} in ${STATIC_DIR}`);
  return `${urlPath}?v=${v}`;
}

export const STYLESHEET = assetUrl('/static/app.css');
export const LIVE_SCRIPT = assetUrl('/static/live.js');

const IMMUTABLE = 'public, max-age=31536000, immutable';

/** Middleware for /static/*: Cache-Control by content hash, ETag, then the file itself. */
export function staticFiles(): MiddlewareHandler[] {
  const cacheControl: MiddlewareHandler = async (c, next) => {
    await next();
    if (c.res.status === 200 || c.res.status === 304) {
      const current = versions.get(c.req.path);
      c.header('Cache-Control', current && c.req.query('v') === current ? IMMUTABLE : 'no-cache');
    }
  };
  return [cacheControl, etag(), serveStatic({ root: PUBLIC_DIR })];
}
