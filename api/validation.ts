// Validation at the edge: zod schemas for every body and query, turned into 400s naming the field.
import type { Context } from 'hono';
import { z } from 'zod';
import { decodeCursor, type PostCursor } from '../src/db/posts.js';
import { normalizeInstance, normalizeName, parseCommunity, RefError } from '../src/lemmy/refs.js';
import { ApiError } from './errors.js';

export const MAX_LIMIT = 100;
export const DEFAULT_LIMIT = 20;

const refreshSeconds = z
  .number({ message: 'must be a number' })
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(86_400, 'must be at most 86400');

export const addBodySchema = z.union([
  z.strictObject({ instance: z.string().max(500), name: z.string().max(200), refreshSeconds: refreshSeconds.optional() }),
  z.strictObject({ community: z.string().max(700), refreshSeconds: refreshSeconds.optional() }),
]);

export const patchBodySchema = z.strictObject({ refreshSeconds });

export interface AddInput {
  instance: string;
  host: string;
  name: string;
  ref: string;
  refreshSeconds?: number;
}

export function invalid(field: string, message: string): ApiError {
  return new ApiError(400, 'invalid_input', `${field}: ${message}`);
}

/** Parses a value with a schema or throws a 400 naming the first offending field. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what = 'body'): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw invalid(describeIssuePath(r.error, what), describeIssue(r.error));
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
  if (issue.code === 'invalid_union') return 'expected {"instance","name"} or {"community":"name@host"}';
  return issue.message;
}

/** `application/json`, with or without parameters (charset). */
export function isJsonContentType(type: string | undefined): boolean {
  return type !== undefined && /^application\/json\s*(;|$)/i.test(type.trim());
}

export function unsupportedMediaType(): ApiError {
  return new ApiError(415, 'unsupported_media_type', 'The request body must be JSON, sent with Content-Type: application/json');
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

/** Turns a validated add body into a normalised community. */
export function toAddInput(body: z.output<typeof addBodySchema>): AddInput {
  try {
    if ('community' in body) {
      const c = parseCommunity(body.community, 'community');
      return { instance: c.instance, host: c.host, name: c.name, ref: c.ref, refreshSeconds: body.refreshSeconds };
    }
    const inst = normalizeInstance(body.instance, 'instance');
    const name = normalizeName(body.name, 'name');
    return { ...inst, name, ref: `${name}@${inst.host}`, refreshSeconds: body.refreshSeconds };
  } catch (err) {
    if (err instanceof RefError) throw invalid(err.field, stripField(err.field, err.message));
    throw err;
  }
}

function stripField(field: string, message: string): string {
  return message.startsWith(`${field} `) ? message.slice(field.length + 1) : message;
}

export type RefLookup = { kind: 'id'; id: number } | { kind: 'ref'; ref: string };

/** `:ref` is a numeric id or `name@host`; anything else is a 400. */
export function parseRefParam(raw: string): RefLookup {
  if (/^\d{1,15}$/.test(raw)) return { kind: 'id', id: Number(raw) };
  if (raw.length > 700) throw invalid('ref', 'must be a numeric id or name@host');
  try {
    return { kind: 'ref', ref: parseCommunity(raw, 'ref').ref };
  } catch (err) {
    if (err instanceof RefError)
      throw new ApiError(400, 'invalid_ref', 'ref must be a numeric id or name@host, e.g. technology@lemmy.world');
    throw err;
  }
}

export interface PageQuery {
  limit: number;
  before?: PostCursor;
}

/** `limit` 1..100 (default 20) and an opaque `before` cursor. */
export function parsePageQuery(q: { limit?: string; before?: string }): PageQuery {
  let limit = DEFAULT_LIMIT;
  if (q.limit !== undefined && q.limit !== '') {
    if (!/^\d{1,6}$/.test(q.limit) || Number(q.limit) < 1 || Number(q.limit) > MAX_LIMIT) {
      throw new ApiError(400, 'invalid_limit', `limit must be a whole number from 1 to ${MAX_LIMIT}`);
    }
    limit = Number(q.limit);
  }
  let before: PostCursor | undefined;
  if (q.before !== undefined && q.before !== '') {
    before = decodeCursor(q.before);
    if (!before) throw new ApiError(400, 'invalid_cursor', 'before must be a cursor returned as "next" by this API');
  }
  return { limit, before };
}

/** Communities are paged by id: the cursor is the last id shown, opaque to clients. */
export function encodeCommunityCursor(id: number): string {
  return Buffer.from(`c${id}`).toString('base64url');
}

export function parseCommunitiesQuery(q: { limit?: string; before?: string }): { limit: number; before?: number } {
  const { limit } = parsePageQuery({ limit: q.limit });
  if (q.before === undefined || q.before === '') return { limit };
  const m = /^c(\d{1,15})$/.exec(Buffer.from(q.before, 'base64url').toString('latin1'));
  if (!m || Buffer.from(`c${m[1]}`).toString('base64url') !== q.before) {
    throw new ApiError(400, 'invalid_cursor', 'before must be a cursor returned as "next" by this API');
  }
  return { limit, before: Number(m[1]) };
}
