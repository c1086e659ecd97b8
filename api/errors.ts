// One error type for the whole API and website, and the handlers that turn anything thrown into
// `{"error":{"code","message","field"?}}` (API) or an error page (website). Client input never yields a
// 500: it is validated at the edge and mapped here; unknown errors are logged and answered with a
// generic 500; a database or Temporal that does not answer is a 503 naming the part.
import { ServiceError, WorkflowNotFoundError } from '@temporalio/client';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { BudgetExhaustedError } from '../src/db/instance-budget.js';
import { isConnectionError, ShardUnavailableError } from '../src/db/sharding/router.js';
import type { Logger } from '../src/log.js';

export interface ApiErrorOptions {
  /** Seconds after which a retry may succeed (sent as Retry-After). */
  retryAfterSeconds?: number;
  /** The request field at fault (`name`, `refreshSeconds`, `limit`…), sent as `error.field`. */
  field?: string;
  cause?: unknown;
}

/**
 * The one error type of the API and the website: Hono's HTTPException with a snake_case `code`
 * and, for bad input, the `field` at fault. Thrown anywhere (routes, middleware, validation hooks);
 * app.ts's onError answers it as `{"error":{"code","message","field"?}}` or an error page.
 */
export class ApiError extends HTTPException {
  declare readonly status: ContentfulStatusCode;
  readonly retryAfterSeconds?: number;
  readonly field?: string;

  constructor(
    status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    /** Seconds after which a retry may succeed (sent as Retry-After), or more options. */
    options?: number | ApiErrorOptions,
  ) {
    const opts: ApiErrorOptions = typeof options === 'number' ? { retryAfterSeconds: options } : (options ?? {});
    super(status, { message, cause: opts.cause });
    this.name = 'ApiError';
    this.retryAfterSeconds = opts.retryAfterSeconds;
    this.field = opts.field;
  }

  /** The JSON answer, for anything that answers an HTTPException without our onError. */
  override getResponse(): Response {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.retryAfterSeconds) headers['retry-after'] = String(this.retryAfterSeconds);
    return new Response(JSON.stringify(errorBody(this)), { status: this.status, headers });
  }
}

export const UNSUPPORTED_MEDIA_TYPE_MESSAGE = 'The request body must be JSON, sent with Content-Type: application/json';

/**
 * Postgres refusing to wait: a lock held by a shard move (lock_timeout, 55P03), a statement over
 * statement_timeout or cancelled (57014), a serialization failure or deadlock (40001, 40P01).
 * Nothing is wrong with the request; the same request shortly after succeeds.
 */
const BUSY_SQLSTATES = new Set(['55P03', '57014', '40001', '40P01']);
export function isDatabaseBusy(err: unknown): boolean {
  return BUSY_SQLSTATES.has((err as { code?: string })?.code ?? '');
}

export const notFound = (what = 'community') => new ApiError(404, `${what}_not_found`, `No such ${what} is tracked`);

/** Maps anything thrown to an ApiError; `undefined` means "unexpected: log it and answer 500". */
export function toApiError(err: unknown): ApiError | undefined {
  if (err instanceof ApiError) return err;
  if (err instanceof ShardUnavailableError) {
    return new ApiError(
      503,
      'shard_unavailable',
      `The post-shard node "${err.node}" holding this community is unavailable; try again later`,
    );
  }
  if (err instanceof BudgetExhaustedError) {
    // Our own politeness budget towards that instance is booked (by syncs): the add-time check waits its turn.
    return new ApiError(
      503,
      'instance_budget_exhausted',
      `The request budget for ${err.host} is booked for now; try again in ${Math.ceil(err.retryAfterMs / 1000)} s`,
      Math.ceil(err.retryAfterMs / 1000),
    );
  }
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    if (status === 413) return new ApiError(413, 'payload_too_large', 'The request body is too large');
    // @hono/zod-openapi's media-type gate and Hono's JSON validator: the same answers as ours.
    if (status === 415) return new ApiError(415, 'unsupported_media_type', UNSUPPORTED_MEDIA_TYPE_MESSAGE);
    if (status === 400 && /^Malformed JSON/.test(err.message))
      return new ApiError(400, 'invalid_json', 'The request body is not valid JSON');
    if (status === 401) return new ApiError(401, 'unauthorized', 'A valid API token is required');
    if (status === 403) return new ApiError(403, 'forbidden', err.message || 'Forbidden');
    if (status >= 400 && status < 500) return new ApiError(status, 'bad_request', err.message || 'Bad request');
    return undefined;
  }
  if (err instanceof WorkflowNotFoundError) return new ApiError(404, 'workflow_not_found', 'The community has no running workflow');
  if (isTemporalUnavailable(err)) return new ApiError(503, 'temporal_unavailable', 'Temporal is unavailable; try again later');
  if (isConnectionError(err)) return new ApiError(503, 'database_unavailable', 'The database is unavailable; try again later');
  if (isDatabaseBusy(err))
    return new ApiError(503, 'database_busy', 'The data is busy (for example a shard being moved); try again in a few seconds', 2);
  return undefined;
}

export function isTemporalUnavailable(err: unknown): boolean {
  if (err instanceof ServiceError) return true;
  const e = err as { name?: string; code?: number; message?: string };
  if (e?.name === 'TransportError' || e?.name === 'ConnectionError') return true;
  // gRPC status codes: 4 DEADLINE_EXCEEDED, 14 UNAVAILABLE
  return typeof e?.code === 'number' && (e.code === 14 || e.code === 4) && /grpc|deadline|unavailable|connect/i.test(e.message ?? '');
}

export function errorBody(e: ApiError): { error: { code: string; message: string; field?: string } } {
  return { error: e.field === undefined ? { code: e.code, message: e.message } : { code: e.code, message: e.message, field: e.field } };
}

/** Maps and logs anything thrown; unexpected errors become a generic 500. */
export function resolveError(c: Context, err: unknown, log: Logger): ApiError {
  const mapped = toApiError(err);
  if (mapped) {
    if (mapped.status >= 500) log.warn({ err: (err as Error)?.message, path: c.req.path }, mapped.code);
    return mapped;
  }
  log.error({ err, method: c.req.method, path: c.req.path }, 'unexpected error');
  return new ApiError(500, 'internal_error', 'Something went wrong on our side; it has been logged');
}
