// Errors in GraphQL answers: what the REST API answers as `{"error":{"code","message","field"?}}`
// becomes a GraphQL error with the same message and `extensions: {code, status, field?}`. The
// answer stays HTTP 200 (GraphQL reports errors per field, next to the data that did resolve),
// except a mutation refused for want of the API token: HTTP 401 with a WWW-Authenticate challenge,
// like the REST API. Errors the API does not know are masked ("Unexpected error.", code
// internal_error) and logged, never shown.
import type { GraphQLError } from 'graphql';
import { createGraphQLError } from 'graphql-yoga';
import type { Logger } from '../../src/log.js';
import { toApiError } from '../errors.js';
import { UnauthorizedMutation } from './context.js';

/**
 * By name, not instanceof: `graphql` ships CommonJS and ESM builds, and a loader may give yoga one
 * and this file the other. New errors are made with yoga's own createGraphQLError for that reason.
 */
export function isGraphQLError(e: unknown): e is GraphQLError {
  return e instanceof Error && e.name === 'GraphQLError';
}

/** The innermost error a resolver threw (GraphQL wraps it, maybe more than once). */
function originalOf(error: unknown): unknown {
  let e = error;
  while (isGraphQLError(e) && e.originalError) e = e.originalError;
  return e;
}

/** yoga's maskedErrors.maskError: ApiErrors (and what the REST API maps to them) shown, the rest masked. */
export function maskError(log: Logger) {
  return (error: unknown, message: string): Error => {
    const original = originalOf(error);
    // GraphQL's own errors (syntax, validation, bad variables, the depth and cost limits): shown as they are.
    if (isGraphQLError(original)) return original;
    const apiError = toApiError(original);
    const gqlError = isGraphQLError(error) ? error : undefined;
    if (!apiError) {
      log.error({ err: original, path: gqlError?.path }, 'unexpected error in a GraphQL resolver');
      return createGraphQLError(message, {
        nodes: gqlError?.nodes,
        path: gqlError?.path,
        extensions: { code: 'internal_error', status: 500 },
      });
    }
    if (apiError.status >= 500) log.warn({ err: (original as Error)?.message, path: gqlError?.path }, apiError.code);
    const http =
      original instanceof UnauthorizedMutation ? { http: { status: 401, headers: { 'WWW-Authenticate': original.challenge } } } : {};
    return createGraphQLError(apiError.message, {
      nodes: gqlError?.nodes,
      path: gqlError?.path,
      extensions: {
        code: apiError.code,
        status: apiError.status,
        ...(apiError.field === undefined ? {} : { field: apiError.field }),
        ...(apiError.retryAfterSeconds ? { retryAfterSeconds: apiError.retryAfterSeconds } : {}),
        ...http,
      },
    });
  };
}
