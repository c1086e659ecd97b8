// The HTTP transport every source adapter uses: public addresses only (unless allowed), the
// shared per-host request budget, connect and total timeouts, a response size cap, strict UTF-8,
// and the server's rate-limit signals (429 with Retry-After, X-RateLimit-* quotas) passed on to
// the budget so that every worker slows down together. What a status means is the adapter's call.
import { Agent, request, type Dispatcher } from 'undici';
import { sourceRequests } from '../metrics/index.js';
import { publicOnlyLookup, PrivateAddressError, assertPublicHost } from '../net/addresses.js';
import { SourceError } from './errors.js';

export interface HttpOptions {
  userAgent: string;
  connectTimeoutMs: number;
  timeoutMs: number;
  maxBytes: number;
  allowPrivate: boolean;
  /** Waits for the host's request budget before every request (and stops waiting on `signal`). */
  beforeRequest?: (host: string, signal?: AbortSignal) => Promise<void>;
  /** Told when a host says we are rate limited, so every worker can back off. */
  onRateLimited?: (host: string, retryAfterMs: number) => Promise<void>;
  /** Told what a host's X-RateLimit-* headers say is left of its quota. */
  onQuota?: (host: string, quota: Quota) => Promise<void>;
}

/** What is left of a host's request quota, from its X-RateLimit-* headers. */
export interface Quota {
  limit?: number;
  remaining: number;
  /** Until the quota is reset. */
  resetInMs: number;
}

export interface GetOptions {
  accept: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface HttpResponse {
  url: URL;
  status: number;
  headers: Record<string, string | undefined>;
  text: string;
  /** Parsed Retry-After (or X-RateLimit-Reset on a 429), in ms. */
  retryAfterMs?: number;
}

const MAX_RETRY_AFTER_MS = 60 * 60_000;

/** Retry-After: delta seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Math.min(Number(v.trim()) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

/**
 * X-RateLimit-Reset: Mastodon sends an ISO time, Lemmy 1.0 seconds until the reset, some servers
 * an epoch second. Returns ms from now, or undefined.
 */
export function parseRateLimitReset(value: string | undefined, now = Date.now()): number | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) {
    const n = Number(v);
    const ms = n > 1e9 ? n * 1000 - now : n * 1000;
    return Math.min(Math.max(0, ms), MAX_RETRY_AFTER_MS);
  }
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

export function parseQuota(headers: Record<string, string | undefined>, now = Date.now()): Quota | undefined {
  const remaining = Number(headers['x-ratelimit-remaining']);
  const resetInMs = parseRateLimitReset(headers['x-ratelimit-reset'], now);
  if (!Number.isFinite(remaining) || remaining < 0 || resetInMs === undefined) return undefined;
  const limit = Number(headers['x-ratelimit-limit']);
  return { remaining, resetInMs, ...(Number.isFinite(limit) && limit > 0 ? { limit } : {}) };
}

export class SourceHttp {
  private readonly agent: Agent;

  constructor(readonly opts: HttpOptions) {
    this.agent = new Agent({
      connect: {
        timeout: opts.connectTimeoutMs,
        ...(opts.allowPrivate ? {} : { lookup: publicOnlyLookup }),
      },
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      keepAliveTimeout: 10_000,
      connections: 8,
    });
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /** The host is rate limiting us: tell the budget and raise a RateLimited error. */
  async rateLimited(url: URL, status: number, retryAfterMs: number | undefined): Promise<never> {
    const delay = retryAfterMs ?? 10_000;
    await this.opts.onRateLimited?.(url.host, delay).catch(() => {});
    throw new SourceError('RateLimited', `${url.host} is rate limiting us (HTTP ${status}); retrying in ${Math.round(delay / 1000)} s`, {
      status,
      retryAfterMs: delay,
    });
  }

  /** A GET that answers whatever the server said; network trouble, size and encoding are SourceErrors. 429 is RateLimited. */
  async get(url: URL, opts: GetOptions): Promise<HttpResponse> {
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new SourceError('UnsupportedSource', `${url.protocol} URLs are not fetched`);
    if (!this.opts.allowPrivate) {
      try {
        // Literal IPs never reach the socket lookup hook; names are checked again on connect.
        await assertPublicHost(url.hostname);
      } catch (err) {
        if (err instanceof PrivateAddressError) throw new SourceError('PrivateAddress', err.message);
        throw new SourceError('NetworkError', `cannot resolve ${url.hostname}: ${(err as Error).message}`, { cause: err });
      }
    }
    try {
      await this.opts.beforeRequest?.(url.host, opts.signal);
    } catch (err) {
      if (opts.signal?.aborted)
        throw new SourceError('Timeout', `gave up waiting to ask ${url.host}: ${reasonOf(opts.signal)}`, { cause: err });
      throw err;
    }

    let res: Dispatcher.ResponseData;
    // The request's own timeout, and the caller's (an activity's cancellation or deadline).
    const timeout = AbortSignal.timeout(this.opts.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
    try {
      res = await request(url, {
        method: 'GET',
        dispatcher: this.agent,
        signal,
        headers: { accept: opts.accept, 'user-agent': this.opts.userAgent, ...opts.headers },
      });
    } catch (err) {
      const failure = opts.signal?.aborted
        ? new SourceError('Timeout', `gave up asking ${url.host}: ${reasonOf(opts.signal)}`, { cause: err })
        : classifyNetworkError(err, url.host, this.opts.timeoutMs);
      const status = failure.type === 'Timeout' ? 'timeout' : failure.type === 'PrivateAddress' ? 'private_address' : 'network_error';
      sourceRequests.inc({ host: url.host, status });
      throw failure;
    }
    sourceRequests.inc({ host: url.host, status: String(res.statusCode) });
    const headers: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(res.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    const quota = parseQuota(headers);
    if (quota) await this.opts.onQuota?.(url.host, quota).catch(() => {});
    const status = res.statusCode;
    if (status === 429) {
      await res.body.dump({ limit: 64 * 1024 }).catch(() => {}); // frees the connection without reading much
      await this.rateLimited(url, status, parseRetryAfter(headers['retry-after']) ?? parseRateLimitReset(headers['x-ratelimit-reset']));
    }
    const text = await this.readBody(res, url.host, signal);
    return { url, status, headers, text, retryAfterMs: parseRetryAfter(headers['retry-after']) };
  }

  /** Reads at most maxBytes, as strict UTF-8. */
  private async readBody(res: Dispatcher.ResponseData, host: string, signal: AbortSignal): Promise<string> {
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.opts.maxBytes) {
      res.body.destroy();
      throw new SourceError(
        'ResponseTooLarge',
        `${host} sent ${declared} bytes, more than the ${this.opts.maxBytes} allowed (HTTP_MAX_BYTES)`,
      );
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > this.opts.maxBytes) {
          res.body.destroy();
          throw new SourceError('ResponseTooLarge', `${host} sent more than the ${this.opts.maxBytes} bytes allowed (HTTP_MAX_BYTES)`);
        }
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      if (err instanceof SourceError) throw err;
      throw classifyNetworkError(signal.aborted ? signal.reason : err, host, this.opts.timeoutMs);
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks, size));
    } catch {
      throw new SourceError('InvalidResponse', `${host} sent a body that is not valid UTF-8`);
    }
  }
}

function reasonOf(signal: AbortSignal): string {
  return String((signal.reason as Error | undefined)?.message ?? signal.reason);
}

function classifyNetworkError(err: unknown, host: string, timeoutMs: number): SourceError {
  const e = err as { name?: string; code?: string; message?: string; cause?: unknown };
  if (e?.cause instanceof PrivateAddressError || err instanceof PrivateAddressError) {
    return new SourceError('PrivateAddress', ((e?.cause as Error) ?? (err as Error)).message);
  }
  const code = e?.code ?? (e?.cause as { code?: string })?.code ?? '';
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError' || /TIMEOUT/.test(code)) {
    return new SourceError('Timeout', `${host} did not answer within ${timeoutMs} ms (${code || e?.name})`, { cause: err });
  }
  return new SourceError('NetworkError', `cannot reach ${host}: ${code || e?.message || String(err)}`, { cause: err });
}

/** `application/json` or `application/<x>+json`. */
export function isJsonType(contentType: string | undefined): boolean {
  return /^application\/(?:[\w.+-]+\+)?json\b/i.test(contentType ?? '');
}
