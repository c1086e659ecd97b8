// Calling the in-process Hono app the way a JSON client does. Every answer is checked against the
// app's OpenAPI document (support/openapi.ts): a status it does not document, or a body that does
// not match the schema, fails the test, naming the route.
import type { Hono } from 'hono';
import { expect } from 'vitest';
import { expectConforms } from './openapi.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

/** A JSON request (a body is sent as application/json); the answer's status and parsed JSON. */
export async function call(a: Hono, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const res = await a.request(path, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  await expectConforms(a, method, path, { status: res.status, headers: res.headers, text });
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/**
 * The expected error body `{"error":{"code","message"}}` for `toEqual`, with `field` (a string)
 * when the answer names one: bad input names the field at fault.
 */
export function errorBodyLike(code: string, json: Json): Json {
  const hasField = json?.error !== null && typeof json?.error === 'object' && 'field' in json.error;
  return { error: { code, message: expect.any(String), ...(hasField ? { field: expect.any(String) } : {}) } };
}
