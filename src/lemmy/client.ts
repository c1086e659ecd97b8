// HTTP client for the Lemmy v3 API: connect and total timeouts, a response size cap, strict
// UTF-8 and JSON, schema validation, and errors classified for Temporal's retry policy.
import { Agent, request, type Dispatcher } from 'undici';
import type { z } from 'zod';
import { isPermanentFailure, type SyncFailureType } from '../failures.js';
import { publicOnlyLookup, PrivateAddressError, assertPublicHost } from '../net/addresses.js';
import {
  communityResponseSchema,
  describeZodError,
  postsResponseSchema,
  siteResponseSchema,
  type LemmyCommunity,
  type LemmyPost,
  type LemmySite,
} from './schema.js';

/**
 * type: the ApplicationFailure type the activity reports. Non-retryable ones are permanent until
 * someone changes something (the community exists again, the URL is fixed).
 */
export type LemmyErrorType = Extract<
  SyncFailureType,
  | 'CommunityNotFound'
  | 'NotLemmyApi'
  | 'InstanceRequiresLogin'
  | 'PrivateAddress'
  | 'RateLimited'
  | 'ServerError'
  | 'NetworkError'
  | 'Timeout'
  | 'ResponseTooLarge'
  | 'InvalidResponse'
  | 'LemmyApiError'
>;

export class LemmyError extends Error {
  readonly retryable: boolean;
  constructor(
    readonly type: LemmyErrorType,
    message: string,
    readonly opts: { status?: number; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = 'LemmyError';
    this.retryable = !isPermanentFailure(type);
  }
}

export interface LemmyClientOptions {
  userAgent: string;
  connectTimeoutMs: number;
  timeoutMs: number;
  maxBytes: number;
  allowPrivate: boolean;
  /** Waits for the instance's request budget before every request (and stops waiting on `signal`). */
  beforeRequest?: (host: string, signal?: AbortSignal) => Promise<void>;
  /** Told when an instance says we are rate limited, so every worker can back off. */
  onRateLimited?: (host: string, retryAfterMs: number) => Promise<void>;
}

const MAX_RETRY_AFTER_MS = 60 * 60_000;

export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Math.min(Number(v.trim()) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

/** Per call: `signal` ends the request (and any wait before it) when the caller gives up. */
export interface RequestOptions {
  signal?: AbortSignal;
}

export class LemmyClient {
  private readonly agent: Agent;

  constructor(readonly opts: LemmyClientOptions) {
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

  async getSite(instance: string, opts: RequestOptions = {}): Promise<LemmySite> {
    return this.get(instance, '/api/v3/site', {}, siteResponseSchema, opts);
  }

  async getCommunity(instance: string, name: string, opts: RequestOptions = {}): Promise<LemmyCommunity> {
    const body = await this.get(instance, '/api/v3/community', { name }, communityResponseSchema, opts);
    return body.community_view;
  }

  async listPosts(instance: string, name: string, page: { limit: number; page: number }, opts: RequestOptions = {}): Promise<LemmyPost[]> {
    const body = await this.get(
      instance,
      '/api/v3/post/list',
      { community_name: name, sort: 'New', limit: String(page.limit), page: String(page.page) },
      postsResponseSchema,
      opts,
    );
    return body.posts;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  private async get<S extends z.ZodTypeAny>(
    instance: string,
    path: string,
    query: Record<string, string>,
    schema: S,
    opts: RequestOptions,
  ): Promise<z.output<S>> {
    const url = new URL(path, instance);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const what = `${url.pathname}${url.search}`;
    if (!this.opts.allowPrivate) {
      try {
        // Literal IPs never reach the socket lookup hook; names are checked again on connect.
        await assertPublicHost(url.hostname);
      } catch (err) {
        if (err instanceof PrivateAddressError) throw new LemmyError('PrivateAddress', err.message);
        throw new LemmyError('NetworkError', `cannot resolve ${url.hostname}: ${(err as Error).message}`, { cause: err });
      }
    }
    try {
      await this.opts.beforeRequest?.(url.host, opts.signal);
    } catch (err) {
      if (opts.signal?.aborted)
        throw new LemmyError(
          'Timeout',
          `gave up waiting to ask ${url.host}: ${String(opts.signal.reason?.message ?? opts.signal.reason)}`,
          { cause: err },
        );
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
        headers: { accept: 'application/json', 'user-agent': this.opts.userAgent },
      });
    } catch (err) {
      if (opts.signal?.aborted)
        throw new LemmyError('Timeout', `gave up asking ${url.host}: ${String(opts.signal.reason?.message ?? opts.signal.reason)}`, {
          cause: err,
        });
      throw classifyNetworkError(err, url.host, this.opts.timeoutMs);
    }

    const status = res.statusCode;
    const contentType = String(res.headers['content-type'] ?? '');
    const retryAfterMs = parseRetryAfter(res.headers['retry-after'] as string | undefined);
    const text = await this.readBody(res, url.host, signal);
    const isJson = /^application\/(?:[\w.+-]+\+)?json\b/i.test(contentType);
    let json: unknown;
    let jsonError: Error | undefined;
    if (isJson) {
      try {
        json = JSON.parse(text);
      } catch (err) {
        jsonError = err as Error;
      }
    }
    const lemmyCode = typeof (json as { error?: unknown })?.error === 'string' ? String((json as { error: string }).error) : undefined;

    if (status === 429 || lemmyCode === 'rate_limit_error') {
      const delay = retryAfterMs ?? 10_000;
      await this.opts.onRateLimited?.(url.host, delay).catch(() => {});
      throw new LemmyError('RateLimited', `${url.host} is rate limiting us (HTTP ${status}); retrying in ${Math.round(delay / 1000)} s`, {
        status,
        retryAfterMs: delay,
      });
    }
    if (lemmyCode === 'couldnt_find_community' || (status === 404 && path === '/api/v3/post/list' && lemmyCode)) {
      throw new LemmyError('CommunityNotFound', `community "${query.name ?? query.community_name}" was not found on ${url.host}`, {
        status,
      });
    }
    if (lemmyCode && /^(not_logged_in|instance_is_private|site_ban|incorrect_login)$/.test(lemmyCode)) {
      throw new LemmyError('InstanceRequiresLogin', `${url.host} requires a login to read it (${lemmyCode})`, { status });
    }
    if (status >= 300 && status < 400) {
      const location = String(res.headers.location ?? '');
      throw new LemmyError('NotLemmyApi', `${url.host} redirects ${what} to ${location || 'elsewhere'}: use the instance's canonical URL`, {
        status,
      });
    }
    if (status === 404 || status === 405 || status === 410) {
      throw new LemmyError('NotLemmyApi', `${url.host} answers ${status} for ${url.pathname}: not a Lemmy v3 API`, { status });
    }
    if (status >= 500) {
      throw new LemmyError('ServerError', `${url.host} answered HTTP ${status} for ${what}`, { status, retryAfterMs });
    }
    if (status !== 200) {
      throw new LemmyError('LemmyApiError', `${url.host} answered HTTP ${status}${lemmyCode ? ` (${lemmyCode})` : ''} for ${what}`, {
        status,
        retryAfterMs,
      });
    }
    if (!isJson) {
      // Bot walls and maintenance pages answer 200 with HTML.
      throw new LemmyError(
        'InvalidResponse',
        `${url.host} answered 200 with ${contentType || 'no content type'} instead of JSON for ${what} (a bot wall or maintenance page?)`,
        { status },
      );
    }
    if (jsonError) {
      throw new LemmyError('InvalidResponse', `${url.host} sent malformed JSON for ${what}: ${jsonError.message}`, { status });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new LemmyError('InvalidResponse', `${url.host} sent an unexpected response for ${what}: ${describeZodError(parsed.error)}`, {
        status,
      });
    }
    return parsed.data;
  }

  /** Reads at most maxBytes, as strict UTF-8. */
  private async readBody(res: Dispatcher.ResponseData, host: string, signal: AbortSignal): Promise<string> {
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.opts.maxBytes) {
      res.body.destroy();
      throw new LemmyError(
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
          throw new LemmyError('ResponseTooLarge', `${host} sent more than the ${this.opts.maxBytes} bytes allowed (HTTP_MAX_BYTES)`);
        }
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      if (err instanceof LemmyError) throw err;
      throw classifyNetworkError(signal.aborted ? signal.reason : err, host, this.opts.timeoutMs);
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks, size));
    } catch {
      throw new LemmyError('InvalidResponse', `${host} sent a body that is not valid UTF-8`);
    }
  }
}

function classifyNetworkError(err: unknown, host: string, timeoutMs: number): LemmyError {
  const e = err as { name?: string; code?: string; message?: string; cause?: unknown };
  if (e?.cause instanceof PrivateAddressError || err instanceof PrivateAddressError) {
    return new LemmyError('PrivateAddress', ((e?.cause as Error) ?? (err as Error)).message);
  }
  const code = e?.code ?? (e?.cause as { code?: string })?.code ?? '';
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError' || /TIMEOUT/.test(code)) {
    return new LemmyError('Timeout', `${host} did not answer within ${timeoutMs} ms (${code || e?.name})`, { cause: err });
  }
  return new LemmyError('NetworkError', `cannot reach ${host}: ${code || e?.message || String(err)}`, { cause: err });
}
