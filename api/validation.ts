// Validation at the edge: zod schemas for every body, query and path parameter, turned into 400s
// naming the field. The same schemas describe the requests in the OpenAPI document (api/openapi/):
// routes declare them with createRoute, and validationHook turns a failure into an ApiError.
import type { Context, MiddlewareHandler } from 'hono';
import { z } from '@hono/zod-openapi';
import { decodeCursor, type PostCursor } from '../src/db/posts.js';
import type { Config } from '../src/config.js';
import { normalizeInstance, normalizeName, parseCommunity, RefError } from '../src/sources/lemmy/refs.js';
import type { Sources } from '../src/sources/registry.js';
import type { DetectedSource } from '../src/sources/types.js';
import type { RefreshPolicy } from '../workflows/refreshPolicy.js';
import { ApiError, UNSUPPORTED_MEDIA_TYPE_MESSAGE } from './errors.js';

export const MAX_LIMIT = 100;
export const DEFAULT_LIMIT = 20;

const refreshSeconds = z
  .number({ message: 'must be a number' })
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(86_400, 'must be at most 86400');

/** How often to sync: a fixed interval, or adaptive within bounds (all optional). */
const refreshFields = {
  refreshSeconds: refreshSeconds.optional(),
  refreshPolicy: z.enum(['fixed', 'adaptive'], { message: 'must be "fixed" or "adaptive"' }).optional(),
  minRefreshSeconds: refreshSeconds.optional(),
  maxRefreshSeconds: refreshSeconds.optional(),
};

export const addBodySchema = z
  .union([
    z.strictObject({ instance: z.string().max(500), name: z.string().max(200), ...refreshFields }),
    z.strictObject({ community: z.string().max(700), ...refreshFields }),
    z.strictObject({ url: z.string().max(2000, 'must be at most 2000 characters'), ...refreshFields }),
  ])
  .openapi('AddCommunity', {
    description:
      'An instance and a community name, a `name@host`, or a URL (a Lemmy community, an RSS/Atom/JSON feed, a Mastodon hashtag or account); an optional refresh policy: `refreshSeconds` alone means fixed, otherwise adaptive between `minRefreshSeconds` and `maxRefreshSeconds`.',
  });

export const patchBodySchema = z
  .strictObject(refreshFields)
  .refine(
    (b) => Object.values(b).some((v) => v !== undefined),
    'expected refreshSeconds, refreshPolicy, minRefreshSeconds or maxRefreshSeconds',
  )
  .openapi('ChangeRefresh', { description: 'At least one of the fields', minProperties: 1 });

export type RefreshFields = Partial<Record<'refreshSeconds' | 'minRefreshSeconds' | 'maxRefreshSeconds', number>> & {
  refreshPolicy?: 'fixed' | 'adaptive';
};

export interface AddInput {
  /** What the user named, most specific kind first: the first that checks out is tracked. */
  candidates: DetectedSource[];
  refreshSeconds: number;
  policy: RefreshPolicy;
}

/**
 * The policy a request asks for, on top of the current one (or the defaults): an explicit
 * refreshSeconds without a policy means fixed; otherwise adaptive for a new source.
 */
export function resolvePolicy(
  config: Pick<Config, 'REFRESH_SECONDS' | 'ADAPTIVE_MIN_REFRESH_SECONDS' | 'ADAPTIVE_MAX_REFRESH_SECONDS'>,
  req: RefreshFields,
  current?: RefreshPolicy & { refreshSeconds: number },
): RefreshPolicy & { refreshSeconds: number } {
  const mode = req.refreshPolicy ?? (req.refreshSeconds !== undefined ? 'fixed' : (current?.mode ?? 'adaptive'));
  const refreshSeconds = req.refreshSeconds ?? current?.refreshSeconds ?? config.REFRESH_SECONDS;
  const defaultMin = Math.min(config.ADAPTIVE_MIN_REFRESH_SECONDS, config.ADAPTIVE_MAX_REFRESH_SECONDS);
  const minSeconds = req.minRefreshSeconds ?? current?.minSeconds ?? Math.min(defaultMin, req.maxRefreshSeconds ?? Infinity);
  const maxSeconds = req.maxRefreshSeconds ?? current?.maxSeconds ?? Math.max(config.ADAPTIVE_MAX_REFRESH_SECONDS, minSeconds);
  if (minSeconds > maxSeconds) throw invalid('minRefreshSeconds', `must not be above maxRefreshSeconds (${minSeconds} > ${maxSeconds})`);
  return { mode, refreshSeconds, minSeconds, maxSeconds };
}

/** 400 invalid_input; the message starts with the field (`name: must be …`), and `field` names it. */
export function invalid(field: string, message: string): ApiError {
  return new ApiError(400, 'invalid_input', `${field}: ${message}`, { field });
}

/** The part of an invalid_input message after its `field: ` prefix (what a form shows next to the field). */
export function fieldMessage(err: ApiError): string {
  return err.field !== undefined && err.message.startsWith(`${err.field}: `) ? err.message.slice(err.field.length + 2) : err.message;
}

/** Parses a value with a schema or throws a 400 naming the first offending field. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what = 'body'): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw zodError(r.error, what);
}

/** Query parameters with their own error code (the same on every route that takes them). */
const QUERY_ERRORS: Record<string, () => ApiError> = {
  limit: () => new ApiError(400, 'invalid_limit', `limit must be a whole number from 1 to ${MAX_LIMIT}`, { field: 'limit' }),
  before: () => new ApiError(400, 'invalid_cursor', 'before must be a cursor returned as "next" by this API', { field: 'before' }),
};

/** The ApiError for a failed zod parse of a request part (`body`, `query`, `path`). */
export function zodError(err: z.ZodError, what: string): ApiError {
  const field = describeIssuePath(err, what);
  if (what === 'query' && QUERY_ERRORS[field]) return QUERY_ERRORS[field]();
  return invalid(field, describeIssue(err));
}

const TARGETS: Record<string, string> = { json: 'body', query: 'query', param: 'path', header: 'header', cookie: 'cookie', form: 'body' };

/**
 * The defaultHook of every OpenAPIHono (app.ts): a request that fails its route's zod schemas is
 * an ApiError (400 invalid_input naming the field, or the parameter's own code), thrown to onError.
 */
export function validationHook(result: { success: boolean; error?: unknown; target: string }): void {
  if (!result.success) throw zodError(result.error as z.ZodError, TARGETS[result.target] ?? result.target);
}

function describeIssuePath(err: z.ZodError, what: string): string {
  const issue = firstIssue(err);
  return issue.path.length ? issue.path.map(String).join('.') : what;
}

function firstIssue(err: z.ZodError): z.core.$ZodIssue {
  const issue = err.issues[0];
  // A union reports its branches' issues nested; the most specific one is the useful one.
  if (issue.code === 'invalid_union' && issue.errors.length) {
    const branches = issue.errors.filter((b) => b.length);
    const best = branches.find((b) => !b.some((i) => i.code === 'unrecognized_keys')) ?? branches[0];
    if (best?.[0]) return best[0];
  }
  return issue;
}

function describeIssue(err: z.ZodError): string {
  const issue = firstIssue(err);
  if (issue.code === 'unrecognized_keys') return `unknown field(s) ${issue.keys.map((k) => JSON.stringify(k.slice(0, 50))).join(', ')}`;
  if (issue.code === 'invalid_union') return 'expected {"instance","name"}, {"community":"name@host"} or {"url":"https://…"}';
  return issue.message;
}

/** `application/json`, with or without parameters (charset). */
export function isJsonContentType(type: string | undefined): boolean {
  return type !== undefined && /^application\/json\s*(;|$)/i.test(type.trim());
}

export function unsupportedMediaType(): ApiError {
  return new ApiError(415, 'unsupported_media_type', UNSUPPORTED_MEDIA_TYPE_MESSAGE);
}

/** Reads a JSON object body; another Content-Type is a 415, malformed JSON a 400 invalid_json. */
export async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  if (!isJsonContentType(c.req.header('content-type'))) throw unsupportedMediaType();
  const text = await c.req.text();
  if (!text.trim()) throw new ApiError(400, 'invalid_json', 'The request body must be a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ApiError(400, 'invalid_json', 'The request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ApiError(400, 'invalid_json', 'The request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/**
 * Route middleware (before the zod body validator): the body must be a JSON object, sent as
 * application/json (415 otherwise; malformed JSON is 400 invalid_json). The validator reads the
 * same body again from Hono's cache.
 */
export const jsonObjectBody: MiddlewareHandler = async (c, next) => {
  await readJsonObject(c);
  await next();
};

/** A URL a user gave to track: http(s), no credentials; anything else is a 400. */
export function parseSourceUrl(raw: string): URL {
  const text = raw.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid('url', `is not a valid URL: ${JSON.stringify(text.slice(0, 100))}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid('url', 'must be an http(s) URL');
  if (url.username || url.password) throw invalid('url', 'must not contain credentials');
  if (!url.hostname) throw invalid('url', 'has no host');
  if (url.hostname.endsWith('.')) url.hostname = url.hostname.slice(0, -1);
  if (!url.hostname || url.hostname.includes('..') || url.hostname.startsWith('.')) throw invalid('url', 'has an empty label in its host');
  return url;
}

/** Turns a validated add body into the sources it may name and the policy asked for. */
export function toAddInput(body: z.output<typeof addBodySchema>, sources: Sources, config: Config): AddInput {
  const { refreshSeconds, ...policy } = resolvePolicy(config, body);
  try {
    if ('url' in body) {
      const url = parseSourceUrl(body.url);
      const candidates = sources.detect(url);
      if (candidates.length === 0)
        throw new ApiError(422, 'unsupported_source', `${url.href.slice(0, 200)} is not a source lemmy-fetcher can track`);
      return { candidates, refreshSeconds, policy };
    }
    const c =
      'community' in body
        ? parseCommunity(body.community, 'community')
        : (() => {
            const inst = normalizeInstance(body.instance, 'instance');
            const name = normalizeName(body.name, 'name');
            return { ...inst, name, ref: `${name}@${inst.host}` };
          })();
    return {
      candidates: [{ kind: 'lemmy', ref: c.ref, instance: c.instance, host: c.host, name: c.name, url: null }],
      refreshSeconds,
      policy,
    };
  } catch (err) {
    if (err instanceof RefError) throw invalid(err.field, stripField(err.field, err.message));
    throw err;
  }
}

function stripField(field: string, message: string): string {
  return message.startsWith(`${field} `) ? message.slice(field.length + 1) : message;
}

export type RefLookup = { kind: 'id'; id: number } | { kind: 'ref'; ref: string };

const REF_HELP = 'ref must be a numeric id, name@host (e.g. technology@lemmy.world), or a ref this API gave (rss:…, mastodon:…)';

/** `:ref` is a numeric id, `name@host`, or another kind's ref (`rss:…@host`, `mastodon:…@host`); anything else is a 400. */
export function parseRefParam(raw: string, sources: Pick<Sources, 'parseRef'>): RefLookup {
  if (/^\d{1,15}$/.test(raw)) return { kind: 'id', id: Number(raw) };
  if (raw.length > 700) throw new ApiError(400, 'invalid_ref', REF_HELP);
  const found = sources.parseRef(raw);
  if (found) return { kind: 'ref', ref: found.ref };
  try {
    // A community URL, "!name@host"…: what parseCommunity accepts.
    return { kind: 'ref', ref: parseCommunity(raw, 'ref').ref };
  } catch (err) {
    if (err instanceof RefError) throw new ApiError(400, 'invalid_ref', REF_HELP);
    throw err;
  }
}

export interface PageQuery {
  limit: number;
  before?: PostCursor;
}

const CURSOR_HELP = 'A cursor returned as "next" by the previous page (opaque)';

/** `limit` 1..100, default 20; empty means the default. */
export const limitParam = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v === '') return DEFAULT_LIMIT;
    if (/^\d{1,6}$/.test(v) && Number(v) >= 1 && Number(v) <= MAX_LIMIT) return Number(v);
    ctx.addIssue({ code: 'custom', message: `must be a whole number from 1 to ${MAX_LIMIT}` });
    return z.NEVER;
  })
  .openapi({ type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT, description: 'Items per page' });

/** A string cursor decoded by `decode`; empty means "from the start". */
const cursorParam = <T>(decode: (raw: string) => T | undefined) =>
  z
    .string()
    .optional()
    .transform((v, ctx): T | undefined => {
      if (v === undefined || v === '') return undefined;
      const decoded = decode(v);
      if (decoded === undefined) ctx.addIssue({ code: 'custom', message: 'must be a cursor returned as "next" by this API' });
      return decoded;
    })
    .openapi({ type: 'string', description: CURSOR_HELP });

/** Keyset pages of posts: `limit` and an opaque `before` cursor. */
export const pageQuerySchema = z.object({ limit: limitParam, before: cursorParam((raw) => decodeCursor(raw) ?? undefined) });

/** `limit` 1..100 (default 20) and an opaque `before` cursor. */
export function parsePageQuery(q: { limit?: string; before?: string }): PageQuery {
  return parseWith(pageQuerySchema, q, 'query');
}

/** Lists paged by id (communities `c`, activities `a`): the cursor is the prefixed last id shown, base64url. */
export function encodeIdCursor(prefix: string, id: number): string {
  return Buffer.from(`${prefix}${id}`).toString('base64url');
}

function decodeIdCursor(prefix: string, raw: string): number | undefined {
  const m = new RegExp(`^${prefix}(\\d{1,15})$`).exec(Buffer.from(raw, 'base64url').toString('latin1'));
  return m && encodeIdCursor(prefix, Number(m[1])) === raw ? Number(m[1]) : undefined;
}

/** A page of a list paged by id. */
export const idPageQuerySchema = (prefix: string) =>
  z.object({ limit: limitParam, before: cursorParam((raw) => decodeIdCursor(prefix, raw)) });

/** Communities are paged by id: the cursor is the last id shown, opaque to clients. */
export function encodeCommunityCursor(id: number): string {
  return encodeIdCursor('c', id);
}

export const communitiesQuerySchema = idPageQuerySchema('c');

export function parseCommunitiesQuery(q: { limit?: string; before?: string }): { limit: number; before?: number } {
  return parseWith(communitiesQuerySchema, q, 'query');
}
