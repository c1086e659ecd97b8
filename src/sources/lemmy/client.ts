// HTTP client for Lemmy's API: v3 (0.19, and 1.0's compatibility layer) and v4 (1.0). Lemmy's
// wire format and error codes on top of the shared transport (SourceHttp): schema validation,
// and errors classified for Temporal's retry policy.
import type { z } from 'zod';
import { SourceError } from '../errors.js';
import { isJsonType, SourceHttp, type HttpOptions, type HttpResponse } from '../http.js';
import {
  communityResponseSchema,
  communityResponseV4Schema,
  describeZodError,
  postsResponseSchema,
  postsResponseV4Schema,
  siteResponseSchema,
  type LemmyCommunity,
  type LemmyPost,
  type LemmySite,
} from './schema.js';

export { parseRetryAfter } from '../http.js';

/** `v3`: Lemmy 0.19 (and 1.0's compatibility layer); `v4`: Lemmy 1.0. */
export type LemmyApiVersion = 'v3' | 'v4';

/** Per call: `signal` ends the request (and any wait before it) when the caller gives up. */
export interface RequestOptions {
  signal?: AbortSignal;
}

/** One page of posts, newest first, and the v4 cursor of the next (older) page. */
export interface PostsPage {
  posts: LemmyPost[];
  nextPage: string | null;
}

export class LemmyClient {
  readonly http: SourceHttp;
  private readonly ownsHttp: boolean;

  constructor(http: SourceHttp | HttpOptions) {
    this.ownsHttp = !(http instanceof SourceHttp);
    this.http = http instanceof SourceHttp ? http : new SourceHttp(http);
  }

  /** Which API the instance speaks best: v4 when it answers /api/v4/site, else v3. */
  async detectVersion(instance: string, opts: RequestOptions = {}): Promise<{ version: LemmyApiVersion; site: LemmySite }> {
    try {
      return { version: 'v4', site: await this.getSite(instance, opts, 'v4') };
    } catch (err) {
      // An 0.19 instance answers 404 (NotLemmyApi) for v4; anything else (down, rate limited) is the answer.
      if (!(err instanceof SourceError) || err.type !== 'NotLemmyApi') throw err;
    }
    return { version: 'v3', site: await this.getSite(instance, opts, 'v3') };
  }

  async getSite(instance: string, opts: RequestOptions = {}, version: LemmyApiVersion = 'v3'): Promise<LemmySite> {
    return this.get(instance, `/api/${version}/site`, {}, siteResponseSchema, opts);
  }

  async getCommunity(instance: string, name: string, opts: RequestOptions = {}, version: LemmyApiVersion = 'v3'): Promise<LemmyCommunity> {
    if (version === 'v4') return (await this.get(instance, '/api/v4/community', { name }, communityResponseV4Schema, opts)).community_view;
    return (await this.get(instance, '/api/v3/community', { name }, communityResponseSchema, opts)).community_view;
  }

  /** v3: numbered pages. */
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

  /** v4: opaque cursors (`page_cursor` = the previous page's `next_page`). */
  async listPostsV4(
    instance: string,
    name: string,
    page: { limit: number; cursor?: string },
    opts: RequestOptions = {},
  ): Promise<PostsPage> {
    const query: Record<string, string> = { community_name: name, sort: 'New', limit: String(page.limit) };
    if (page.cursor) query.page_cursor = page.cursor;
    const body = await this.get(instance, '/api/v4/post/list', query, postsResponseV4Schema, opts);
    return { posts: body.items, nextPage: body.next_page };
  }

  async close(): Promise<void> {
    if (this.ownsHttp) await this.http.close();
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
    const res = await this.http.get(url, { accept: 'application/json', signal: opts.signal });
    return parseLemmyAnswer(this.http, res, path, query, schema);
  }
}

async function parseLemmyAnswer<S extends z.ZodTypeAny>(
  http: SourceHttp,
  res: HttpResponse,
  path: string,
  query: Record<string, string>,
  schema: S,
): Promise<z.output<S>> {
  const { url, status, text } = res;
  const what = `${url.pathname}${url.search}`;
  const contentType = res.headers['content-type'] ?? '';
  const isJson = isJsonType(contentType);
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

  // Lemmy 0.19 rate limits with HTTP 400 and no headers; 1.0 with 429 (handled by SourceHttp).
  if (lemmyCode === 'rate_limit_error') await http.rateLimited(url, status, res.retryAfterMs);
  const listing = path.endsWith('/post/list');
  if (lemmyCode === 'couldnt_find_community' || (status === 404 && (listing || path.endsWith('/community')) && lemmyCode)) {
    throw new SourceError('CommunityNotFound', `community "${query.name ?? query.community_name}" was not found on ${url.host}`, {
      status,
    });
  }
  if (lemmyCode && /^(not_logged_in|instance_is_private|site_ban|incorrect_login)$/.test(lemmyCode)) {
    throw new SourceError('InstanceRequiresLogin', `${url.host} requires a login to read it (${lemmyCode})`, { status });
  }
  if (status >= 300 && status < 400) {
    const location = res.headers.location ?? '';
    throw new SourceError('NotLemmyApi', `${url.host} redirects ${what} to ${location || 'elsewhere'}: use the instance's canonical URL`, {
      status,
    });
  }
  if (status === 404 || status === 405 || status === 410) {
    throw new SourceError('NotLemmyApi', `${url.host} answers ${status} for ${url.pathname}: not a Lemmy API`, { status });
  }
  if (status >= 500) {
    throw new SourceError('ServerError', `${url.host} answered HTTP ${status} for ${what}`, { status, retryAfterMs: res.retryAfterMs });
  }
  if (status !== 200) {
    throw new SourceError('LemmyApiError', `${url.host} answered HTTP ${status}${lemmyCode ? ` (${lemmyCode})` : ''} for ${what}`, {
      status,
      retryAfterMs: res.retryAfterMs,
    });
  }
  if (!isJson) {
    // Bot walls and maintenance pages answer 200 with HTML.
    throw new SourceError(
      'InvalidResponse',
      `${url.host} answered 200 with ${contentType || 'no content type'} instead of JSON for ${what} (a bot wall or maintenance page?)`,
      { status },
    );
  }
  if (jsonError) {
    throw new SourceError('InvalidResponse', `${url.host} sent malformed JSON for ${what}: ${jsonError.message}`, { status });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new SourceError('InvalidResponse', `${url.host} sent an unexpected response for ${what}: ${describeZodError(parsed.error)}`, {
      status,
    });
  }
  return parsed.data;
}
