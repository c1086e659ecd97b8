// Shared pieces of the OpenAPI description: the error body every route documents, and the
// helper that lists a route's error answers. Routes are declared with @hono/zod-openapi's
// createRoute; their zod schemas validate the request and describe the responses.
import { z } from '@hono/zod-openapi';

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
  429: 'Rate limited (see Retry-After)',
  503: 'A part of the service is unavailable (named in the message)',
};
