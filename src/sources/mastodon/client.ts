// Mastodon's public API (4.x; Pleroma, Akkoma and GoToSocial answer it too) on top of the shared
// transport: schema validation, Link-header paging, and what each status means here as a
// SourceError the sync's retry policy understands.
import type { z } from 'zod';
import type { SyncFailureType } from '../../failures.js';
import { SourceError } from '../errors.js';
import { isJsonType, type SourceHttp } from '../http.js';
import {
  accountSchema,
  describeZodError,
  instanceSchema,
  snowflake,
  statusesSchema,
  tagSchema,
  type MastodonAccount,
  type MastodonInstance,
  type MastodonStatus,
  type MastodonTag,
} from './schema.js';

/** One timeline request: newest first, older than `maxId` or the page just newer than `minId`. */
export interface PageQuery {
  limit: number;
  maxId?: string;
  minId?: string;
}

/** A page of statuses, newest first, with the cursors of Mastodon's Link header (if sent). */
export interface StatusPage {
  statuses: MastodonStatus[];
  /** `max_id` of rel="next" (older). */
  nextMaxId?: string;
  /** `min_id` of rel="prev" (newer). */
  prevMinId?: string;
}

/** What a 404 or 410 means for this request. */
interface Missing {
  type: SyncFailureType;
  message: string;
}

/** Errors saying the server wants a signed-in user (public timelines or lookups turned off). */
const LOGIN_REQUIRED = /authenticat|authoriz|log ?in|sign(ed)? ?in|public timeline|not allowed|forbidden/i;

export class MastodonApi {
  /** HTTP requests made so far. */
  requests = 0;

  constructor(
    private readonly http: SourceHttp,
    private readonly instance: string,
    private readonly opts: { signal?: AbortSignal; heartbeat?: (detail: string) => void } = {},
  ) {}

  /** Refuses a server that is not Mastodon-like with UnsupportedSource. */
  async instanceInfo(): Promise<MastodonInstance> {
    const host = new URL(this.instance).host;
    const notMastodon = `${host} does not look like a Mastodon server (no Mastodon API at /api/v1/instance)`;
    const { data } = await this.get('/api/v1/instance', {}, instanceSchema, { type: 'UnsupportedSource', message: notMastodon }, true);
    return data;
  }

  async tag(tag: string): Promise<MastodonTag> {
    const gone = { type: 'SourceGone', message: `#${tag} is not known on ${this.host}` } as const;
    return (await this.get(`/api/v1/tags/${encodeURIComponent(tag)}`, {}, tagSchema, gone)).data;
  }

  async lookupAccount(user: string): Promise<MastodonAccount> {
    const gone = { type: 'SourceGone', message: `@${user} was not found on ${this.host}` } as const;
    return (await this.get('/api/v1/accounts/lookup', { acct: user }, accountSchema, gone)).data;
  }

  async tagTimeline(tag: string, page: PageQuery): Promise<StatusPage> {
    const gone = { type: 'SourceGone', message: `${this.host} has no timeline for #${tag}` } as const;
    return this.page(`/api/v1/timelines/tag/${encodeURIComponent(tag)}`, {}, page, gone);
  }

  /** Without reblogs: they are other people's posts. */
  async accountStatuses(accountId: string, user: string, page: PageQuery): Promise<StatusPage> {
    const gone = { type: 'SourceGone', message: `@${user}'s posts are gone from ${this.host}` } as const;
    return this.page(`/api/v1/accounts/${accountId}/statuses`, { exclude_reblogs: 'true' }, page, gone);
  }

  private get host(): string {
    return new URL(this.instance).host;
  }

  private async page(path: string, query: Record<string, string>, page: PageQuery, gone: Missing): Promise<StatusPage> {
    const q: Record<string, string> = { ...query, limit: String(page.limit) };
    if (page.maxId) q.max_id = page.maxId;
    if (page.minId) q.min_id = page.minId;
    const { data, headers } = await this.get(path, q, statusesSchema, gone);
    const links = parseLinks(headers.link);
    return { statuses: data, nextMaxId: cursorOf(links.next, 'max_id'), prevMinId: cursorOf(links.prev, 'min_id') };
  }

  /**
   * One GET, its answer classified. `unsupported`: anything but a valid answer means the server
   * is not Mastodon (the instance probe), except for what is passing (5xx, 429, the network).
   */
  private async get<S extends z.ZodTypeAny>(
    path: string,
    query: Record<string, string>,
    schema: S,
    missing: Missing,
    unsupported = false,
  ): Promise<{ data: z.output<S>; headers: Record<string, string | undefined> }> {
    const url = new URL(path, this.instance);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const res = await this.http.get(url, { accept: 'application/json', signal: this.opts.signal });
    this.requests += 1;
    this.opts.heartbeat?.(`${url.pathname} answered ${res.status}`);

    const { status, text } = res;
    const what = `${url.pathname}${url.search}`;
    const contentType = res.headers['content-type'] ?? '';
    let json: unknown;
    let jsonError: Error | undefined;
    if (isJsonType(contentType)) {
      try {
        json = JSON.parse(text);
      } catch (err) {
        jsonError = err as Error;
      }
    }
    const apiError =
      typeof (json as { error?: unknown } | null)?.error === 'string' ? (json as { error: string }).error.slice(0, 200) : undefined;
    const fail = (type: SyncFailureType, message: string) => new SourceError(type, message, { status, retryAfterMs: res.retryAfterMs });

    if (status >= 500) throw fail('ServerError', `${url.host} answered HTTP ${status} for ${what}`);
    if (status === 401 || status === 403 || (status === 422 && apiError && LOGIN_REQUIRED.test(apiError))) {
      throw fail('InstanceRequiresLogin', `${url.host} requires a login to read ${what}${apiError ? ` (${apiError})` : ''}`);
    }
    if (status === 404 || status === 410) throw fail(missing.type, missing.message);
    if (status >= 300 && status < 400) {
      const location = res.headers.location ?? 'elsewhere';
      throw fail('UnsupportedSource', `${url.host} redirects ${what} to ${location}: use the instance's canonical URL`);
    }
    const invalid = (message: string) =>
      unsupported ? fail(missing.type, `${missing.message}: ${message}`) : fail('InvalidResponse', message);
    if (status !== 200) throw invalid(`${url.host} answered HTTP ${status}${apiError ? ` (${apiError})` : ''} for ${what}`);
    if (json === undefined && !jsonError) {
      // Bot walls and maintenance pages answer 200 with HTML.
      throw invalid(`${url.host} answered 200 with ${contentType || 'no content type'} instead of JSON for ${what}`);
    }
    if (jsonError) throw invalid(`${url.host} sent malformed JSON for ${what}: ${jsonError.message}`);
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw invalid(`${url.host} sent an unexpected response for ${what}: ${describeZodError(parsed.error)}`);
    return { data: parsed.data as z.output<S>, headers: res.headers };
  }
}

/** `<url>; rel="next", <url>; rel="prev"` → their URLs by rel. */
export function parseLinks(header: string | undefined): Record<string, string | undefined> {
  const links: Record<string, string | undefined> = {};
  for (const m of (header ?? '').matchAll(/<([^>]*)>\s*;\s*rel="?([^";,]+)"?/g)) links[m[2].toLowerCase()] ??= m[1];
  return links;
}

/** A snowflake cursor from a Link URL's query; the URL itself is never requested. */
function cursorOf(link: string | undefined, param: 'max_id' | 'min_id'): string | undefined {
  if (!link) return undefined;
  try {
    const value = new URL(link).searchParams.get(param) ?? '';
    return snowflake.safeParse(value).success ? value : undefined;
  } catch {
    return undefined;
  }
}
