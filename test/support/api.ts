// Calling the in-process Hono app the way a JSON client does.
import type { Hono } from 'hono';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

/** A JSON request (a body is sent as application/json); the answer's status and parsed JSON. */
export async function call(a: Hono, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const res = await a.request(path, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}
