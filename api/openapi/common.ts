// Shared pieces of the OpenAPI description: the error body every route documents, and the
// helper that lists a route's error answers. Routes are declared with @hono/zod-openapi's
// createRoute; their zod schemas validate the request and describe the responses.
import { OpenAPIHono, z } from '@hono/zod-openapi';
import { validationHook } from '../validation.js';

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'invalid_input' }),
      message: z.string().openapi({ example: 'refreshSeconds: must be at most 86400' }),
      field: z.string().optional().openapi({ description: 'The request field at fault, when one is', example: 'refreshSeconds' }),
    }),
  })
  .openapi('Error');

/** `{ 400: {...}, 404: {...} }` for a route's documented error statuses. */
export function errorResponses<S extends number>(
  ...statuses: S[]
): Record<S, { description: string; content: { 'application/json': { schema: typeof ErrorSchema } } }> {
  const out = {} as Record<S, { description: string; content: { 'application/json': { schema: typeof ErrorSchema } } }>;
  for (const s of statuses)
    out[s] = { description: ERROR_DESCRIPTIONS[s] ?? 'Error', content: { 'application/json': { schema: ErrorSchema } } };
  return out;
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid input (the field is named)',
  401: 'A bearer key is missing or wrong',
  403: 'Not allowed (another user, another site, or an unlisted host)',
  404: 'Not found',
  409: 'Conflict',
  413: 'The body is too large',
  415: 'The body is not JSON',
  422: 'The source cannot be tracked',
  426: 'Upgrade required (a WebSocket endpoint asked for without Upgrade: websocket)',
  429: 'Rate limited (see Retry-After)',
  503: 'A part of the service is unavailable (named in the message)',
};

/** A sub-app whose request schemas answer failures as ApiErrors (the parent app's hook does too). */
export function openApiApp(): OpenAPIHono {
  return new OpenAPIHono({ defaultHook: validationHook });
}

/** `{ description, content: { 'application/json': { schema } } }` */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

/** A JSON request body (a JSON object: 415 for another Content-Type, 400 invalid_json when malformed). */
export function jsonBody<T extends z.ZodType>(schema: T, description?: string) {
  return { required: true, description, content: { 'application/json': { schema } } };
}

/** What a GET may answer besides its 200: a conditional GET's 304 (If-None-Match matched the ETag). */
export const NOT_MODIFIED = { 304: { description: 'Not modified: If-None-Match matched the ETag' } } as const;

/** The errors every /api read may answer: bad key, host not allowed, rate limited, a part down. */
export const READ_ERRORS = [401, 403, 429, 503] as const;
/** The errors every /api write may answer, besides READ_ERRORS: body too large, not JSON. */
export const WRITE_ERRORS = [401, 403, 413, 415, 429, 503] as const;

/** Operations that change something: the API token (or, under /api/users/:name/, that user's key). */
export const BEARER = [{ bearer: [] }];
