// Keys and rate limits over real HTTP (the client address is the TCP peer, or X-Forwarded-For from
// the trusted loopback proxy), against a real stack: token buckets per client IP without a key
// and per user key, the IETF RateLimit headers, 429 with Retry-After, refill, the admin token
// exempt, health exempt, an unknown key refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer } from '../api/server.js';
import { createLogger } from '../src/log.js';
import { createStack, type Stack } from './support/stack.js';

const TOKEN = 'admin-token-for-limits';

describe('API keys and rate limits', () => {
  let stack: Stack;
  let server: { close(): Promise<void>; port: number };
  let base: string;
  let aliceKey: string;

  beforeAll(async () => {
    stack = await createStack({ worker: false });
    server = await startApiServer({
      config: {
        ...stack.config,
        PORT: 0,
        HOST: '127.0.0.1',
        API_TOKEN: TOKEN,
        // Buckets of 5 (anonymous, refilled at 1/s) and 10 (a key, 2/s).
        RATE_LIMIT_ANONYMOUS_PER_MINUTE: 60,
        RATE_LIMIT_KEY_PER_MINUTE: 120,
        RATE_LIMIT_BURST_SECONDS: 5,
      },
      catalog: stack.storage.catalog,
      router: stack.storage.router,
      temporal: stack.client,
      log: createLogger({ level: 'silent' }),
    });
    base = `http://127.0.0.1:${server.port}`;
    const created = await fetch(`${base}/api/users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'alice' }),
    });
    expect(created.status).toBe(201);
    aliceKey = ((await created.json()) as { apiKey: string }).apiKey;
  });

  afterAll(async () => {
    await server?.close();
    await stack?.stop();
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${base}${path}`, { headers });
  const from = (ip: string, headers: Record<string, string> = {}) => ({ 'x-forwarded-for': ip, ...headers });

  it('anonymous: a bucket per client IP, RateLimit headers on every answer, then 429 with Retry-After', async () => {
    for (let i = 4; i >= 0; i--) {
      const r = await get('/api/posts', from('198.51.100.1'));
      expect(r.status).toBe(200);
      expect(r.headers.get('ratelimit-policy')).toBe('"anonymous";q=5;w=5');
      expect(r.headers.get('ratelimit')).toMatch(new RegExp(`^"anonymous";r=${i};t=\\d+$`));
      await r.body?.cancel();
    }
    const refused = await get('/api/communities', from('198.51.100.1'));
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.headers.get('ratelimit-policy')).toBe('"anonymous";q=5;w=5');
    expect(refused.headers.get('ratelimit')).toBe('"anonymous";r=0;t=5');
    expect(await refused.json()).toEqual({ error: { code: 'rate_limited', message: expect.stringMatching(/try again in 1 s/) } });
    // Health and metrics are outside the limits; another address has its own bucket.
    for (let i = 0; i < 10; i++) {
      const health = await get('/healthz', from('198.51.100.1'));
      expect(health.headers.get('ratelimit')).toBeNull();
      expect(health.status).not.toBe(429);
      await health.body?.cancel();
    }
    const other = await get('/api/posts', from('198.51.100.2'));
    expect(other.status).toBe(200);
    expect(other.headers.get('ratelimit')).toMatch(/^"anonymous";r=4;/);
    // IPv6 clients are counted per /64.
    expect((await get('/api/posts', from('2001:db8:1:2::1'))).headers.get('ratelimit')).toMatch(/r=4;/);
    expect((await get('/api/posts', from('2001:db8:1:2::ffff'))).headers.get('ratelimit')).toMatch(/r=3;/);
    expect((await get('/api/posts', from('2001:db8:1:3::1'))).headers.get('ratelimit')).toMatch(/r=4;/);
  });

  it('tokens refill: after Retry-After the next request passes', async () => {
    let r: Response;
    do {
      r = await get('/api/posts', from('198.51.100.3'));
      await r.body?.cancel();
    } while (r.status === 200);
    expect(r.status).toBe(429);
    const wait = Number(r.headers.get('retry-after'));
    expect(wait).toBeGreaterThanOrEqual(1);
    await new Promise((resolve) => setTimeout(resolve, wait * 1000 + 50));
    const again = await get('/api/posts', from('198.51.100.3'));
    expect(again.status).toBe(200);
    expect(again.headers.get('ratelimit')).toMatch(/^"anonymous";r=0;/);
  });

  it('a user key has its own, larger bucket wherever it comes from; an unknown key is a 401', async () => {
    // The address is out of anonymous requests; the key is not.
    let r: Response;
    do {
      r = await get('/api/posts', from('198.51.100.4'));
      await r.body?.cancel();
    } while (r.status === 200);
    const keyed = await get('/api/posts', from('198.51.100.4', { authorization: `Bearer ${aliceKey}` }));
    expect(keyed.status).toBe(200);
    expect(keyed.headers.get('ratelimit-policy')).toBe('"key";q=10;w=5');
    expect(keyed.headers.get('ratelimit')).toMatch(/^"key";r=9;/);
    // The same key from another address draws on the same bucket.
    const elsewhere = await get('/api/users/alice', from('198.51.100.5', { authorization: `Bearer ${aliceKey}` }));
    expect(elsewhere.headers.get('ratelimit')).toMatch(/^"key";r=8;/);
    let n = 2;
    for (; n < 20; n++) {
      const res = await get('/api/posts', { authorization: `Bearer ${aliceKey}` });
      await res.body?.cancel();
      if (res.status === 429) {
        expect(res.headers.get('ratelimit')).toBe('"key";r=0;t=5');
        break;
      }
    }
    expect(n).toBe(10);

    const unknown = await get('/api/posts', from('198.51.100.6', { authorization: 'Bearer lf_not-a-key-anyone-holds' }));
    expect(unknown.status).toBe(401);
    expect(unknown.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    // Spraying keys: after the anonymous bucket's worth of them, 429 before any lookup.
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await get('/api/posts', from('198.51.100.6', { authorization: `Bearer lf_guess-${i}` }));
      statuses.push(res.status);
      await res.body?.cancel();
    }
    expect(statuses).toEqual([401, 401, 401, 401, 429, 429]);
    // The address's anonymous requests are untouched by that.
    expect((await get('/api/posts', from('198.51.100.6'))).status).toBe(200);
  });

  it('the API token is not limited', async () => {
    for (let i = 0; i < 30; i++) {
      const r = await get('/api/posts', from('198.51.100.7', { authorization: `Bearer ${TOKEN}` }));
      expect(r.status).toBe(200);
      expect(r.headers.get('ratelimit')).toBeNull();
      await r.body?.cancel();
    }
  });
});
