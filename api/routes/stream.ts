// The live stream of posts, mounted under /api: GET /stream (server-sent events) and GET /ws
// (WebSocket). Both serve subscriptions of the process's stream hub (src/stream/hub.ts): every
// post a sync inserts or changes, for the communities asked for (or a user's follows), each with
// its cursor as id; a client resumes after a cursor (Last-Event-ID / ?after / "after") without
// gap or duplicate. Bad input is a JSON 4xx before anything is streamed.
import type { ServerResponse } from 'node:http';
import { upgradeWebSocket } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { OpenAPIHono, createRoute, z as zo } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import type { WebSocket as WsSocket } from 'ws';
import { z } from 'zod';
import { followedCommunityIds } from '../../src/db/post-events.js';
import { decodeStreamCursor, type StreamPosition } from '../../src/stream/cursor.js';
import { streamHub } from '../../src/stream/hub.js';
import type { StreamItem, Subscription } from '../../src/stream/subscription.js';
import { ApiError, errorBody, toApiError } from '../errors.js';
import { findCommunity, type Services } from '../service.js';
import { errorResponses, READ_ERRORS } from '../openapi/common.js';

/** Communities one subscription may name. */
export const MAX_STREAM_COMMUNITIES = 100;

interface Filter {
  communities?: string[];
  user?: string;
}

/** The OpenAPI description of the two endpoints (documentation only: they validate by hand, as they stream). */
const streamDoc = createRoute({
  operationId: 'streamPosts',
  method: 'get',
  path: '/stream',
  tags: ['stream'],
  summary: "Server-sent events: every post a sync inserts or changes, for some communities or a user's follows",
  description:
    'Each post is one event: `id: <cursor>`, `event: post`, `data: <post JSON>`; a comment line at least every 15 s keeps it alive. Reconnect with `Last-Event-ID` (or `?after=`) to get every event after it. A cursor past the retention window, or a client that cannot keep up, gets `event: reset` (`{"reason":"expired"}` or `{"reason":"slow","after":…}`) and the stream closes.',
  request: {
    query: zo.object({
      communities: zo
        .string()
        .optional()
        .openapi({ description: 'Community refs, comma-separated (or repeated); at most 100', example: 'technology@lemmy.world' }),
      user: zo.string().optional().openapi({ description: "A user name: the user's followed communities", example: 'alice' }),
      after: zo.string().optional().openapi({ description: 'Resume after this event id (a cursor)' }),
    }),
    headers: zo.object({
      'last-event-id': zo.string().optional().openapi({ description: 'Resume after this event id (EventSource sends it)' }),
    }),
  },
  responses: {
    200: {
      description: 'The event stream',
      content: { 'text/event-stream': { schema: zo.string().openapi({ example: 'event: post\ndata: {"id":"12:345",…}\nid: AAAB…\n\n' }) } },
    },
    ...errorResponses(400, 404, ...READ_ERRORS),
  },
});

const wsDoc = createRoute({
  operationId: 'streamPostsWebSocket',
  method: 'get',
  path: '/ws',
  tags: ['stream'],
  summary: 'WebSocket: the same stream as /api/stream',
  description:
    'Send `{"subscribe":{"communities":["<ref>"]}}` or `{"subscribe":{"user":"<name>"}}`, optionally with `"after":"<cursor>"`. The server answers `{"type":"subscribed","id"}`, then `{"type":"post","id":"<cursor>","post":{…}}` per post, `{"type":"reset",…}` as the event stream does, and `{"type":"error","status","error":{…}}` for a bad subscription.',
  responses: {
    101: { description: 'Switching protocols: the WebSocket is open' },
    ...errorResponses(426, ...READ_ERRORS),
  },
});

export function streamRoutes(s: Services): OpenAPIHono {
  const app = new OpenAPIHono();
  app.openAPIRegistry.registerPath(streamDoc);
  app.openAPIRegistry.registerPath(wsDoc);
  const hub = () => streamHub({ router: s.router, catalog: s.catalog, log: s.log, config: s.config });
  const heartbeatMs = s.config.STREAM_HEARTBEAT_SECONDS * 1000;
  const buffer = s.config.STREAM_CLIENT_BUFFER;

  app.get('/stream', async (c) => {
    const communityIds = await resolveFilter(s, { communities: splitRefs(c.req.queries('communities')), user: c.req.query('user') });
    // EventSource sends Last-Event-ID on reconnects while the URL keeps its first ?after.
    const cursor = parseCursor(c.req.header('last-event-id') || c.req.query('after'));
    // Registered before the response starts: once the client has the headers, it misses nothing.
    const sub = await hub().subscribe(communityIds, { cursor, buffer });
    c.header('X-Accel-Buffering', 'no');
    const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    if (outgoing && !s.config.CORS_ORIGINS) {
      // Served by @hono/node-server: events go straight onto the socket, with no web-stream layer
      // per event; the fan-out to thousands of clients is the hot path. (With CORS configured, the
      // middleware's headers are wanted: the streamSSE path below keeps them.)
      outgoing.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        'x-content-type-options': 'nosniff',
      });
      outgoing.flushHeaders(); // the client's EventSource is open now, not at the first event
      pumpSocket(outgoing, sub, heartbeatMs).catch((err) => replayFailed(s, err));
      return RESPONSE_ALREADY_SENT;
    }
    return streamSSE(c, (stream) =>
      pumpSse(stream, sub, heartbeatMs, () => dropConnection(c, stream)).catch((err) => replayFailed(s, err)),
    );
  });

  app.get(
    '/ws',
    upgradeWebSocket(() => {
      let sub: Subscription | undefined;
      let subscribing = false;
      let closed = false;
      return {
        onMessage(evt, ws) {
          if (subscribing) {
            ws.send(errorMessage(new ApiError(409, 'already_subscribed', 'This connection has a subscription; open another one')));
            return;
          }
          subscribing = true;
          void (async () => {
            try {
              const { communityIds, cursor } = await parseSubscribe(s, evt.data);
              const created = await hub().subscribe(communityIds, { cursor, buffer });
              if (closed) return created.close();
              sub = created;
              ws.send(JSON.stringify({ type: 'subscribed', id: sub.cursor }));
              await pumpWs(ws.raw as unknown as WsSocket, sub, heartbeatMs).catch((err) => {
                replayFailed(s, err);
                ws.close(1011, 'try again');
              });
            } catch (err) {
              subscribing = false;
              ws.send(errorMessage(apiErrorOf(s, err)));
            }
          })();
        },
        onClose() {
          closed = true;
          sub?.close();
        },
      };
    }),
    () => {
      throw new ApiError(426, 'upgrade_required', 'GET /api/ws is a WebSocket: send Upgrade: websocket');
    },
  );

  return app;
}

/** `?communities=a,b` and/or repeated `?communities=`. */
function splitRefs(values: string[] | undefined): string[] | undefined {
  return values?.flatMap((v) => v.split(',')).map((r) => r.trim());
}

async function resolveFilter(s: Services, f: Filter): Promise<number[]> {
  if (f.communities !== undefined && f.user !== undefined) throw invalidInput('give either communities or user, not both');
  if (f.user !== undefined) {
    const ids = /^[a-z0-9_]{1,64}$/.test(f.user) ? await followedCommunityIds(s.catalog, f.user) : undefined;
    if (!ids) throw new ApiError(404, 'user_not_found', `No user named ${JSON.stringify(f.user.slice(0, 64))}`);
    return ids;
  }
  const refs = (f.communities ?? []).filter(Boolean);
  if (refs.length === 0) throw invalidInput('give communities=<ref>,<ref> or user=<name>');
  if (refs.length > MAX_STREAM_COMMUNITIES) throw invalidInput(`at most ${MAX_STREAM_COMMUNITIES} communities per stream`);
  const rows = await Promise.all([...new Set(refs)].map((ref) => findCommunity(s, ref)));
  return rows.map((r) => r.id);
}

function parseCursor(raw: string | undefined): StreamPosition | undefined {
  if (raw === undefined || raw === '') return undefined;
  const cursor = decodeStreamCursor(raw);
  if (!cursor) throw new ApiError(400, 'invalid_cursor', 'The cursor is not one this stream gave out (use an event id as is)');
  return cursor;
}

/** A node that did not answer during a resume's replay: the client reconnects from its last id. */
function replayFailed(s: Services, err: unknown): void {
  s.log.warn({ err: (err as Error)?.message }, 'stream: reading the post log failed; closing the stream');
}

const invalidInput = (message: string) => new ApiError(400, 'invalid_input', message);

function resetBody(item: Extract<StreamItem, { type: 'reset' }>): { reason: string; after?: string } {
  return item.reason === 'slow' ? { reason: 'slow', after: item.after } : { reason: item.reason };
}

/**
 * Writes the subscription's items as SSE events, one at a time: a client that does not read makes
 * the write wait (the socket's backpressure), its buffer fills, and it is dropped as slow.
 */
async function pumpSse(stream: SSEStreamingApi, sub: Subscription, heartbeatMs: number, drop: () => void): Promise<void> {
  let writing = 0;
  const write = async (p: Promise<unknown>) => {
    writing++;
    try {
      await p;
    } finally {
      writing--;
    }
  };
  // No keep-alive piles up behind a write the client is not taking.
  const beat = setInterval(() => {
    if (writing === 0) void write(stream.write(': keep-alive\n\n'));
  }, heartbeatMs);
  stream.onAbort(() => sub.close());
  try {
    for (let item = await sub.next(); item; item = await sub.next()) {
      if (item.type === 'post') {
        await write(stream.writeSSE({ id: item.id, event: 'post', data: item.data }));
        continue;
      }
      // The last word; a client that does not take it within a heartbeat is cut off.
      const cutOff = setTimeout(drop, heartbeatMs);
      await write(stream.writeSSE({ event: 'reset', data: JSON.stringify(resetBody(item)) }));
      clearTimeout(cutOff);
      break;
    }
  } finally {
    clearInterval(beat);
    sub.close();
  }
}

// The same field order as streamSSE writes.
const postFrame = (item: { id: string; data: string }) => `event: post\ndata: ${item.data}\nid: ${item.id}\n\n`;

/**
 * As pumpSse, on a Node response: the posts queued for this client go out in one write, and a
 * write the socket does not take (a client that does not read) waits for 'drain', so its buffer
 * fills and it is dropped as slow.
 */
async function pumpSocket(res: ServerResponse, sub: Subscription, heartbeatMs: number): Promise<void> {
  const write = (chunk: string) =>
    res.write(chunk)
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          res.once('drain', resolve);
          res.once('close', resolve);
        });
  res.once('close', () => sub.close());
  const beat = setInterval(() => {
    if (res.writableLength === 0) res.write(': keep-alive\n\n');
  }, heartbeatMs);
  try {
    for (let item = await sub.next(); item && !res.destroyed; item = await sub.next()) {
      if (item.type === 'post') {
        let chunk = postFrame(item);
        for (const more of sub.takeReady(256)) chunk += postFrame(more);
        await write(chunk);
        continue;
      }
      const cutOff = setTimeout(() => res.destroy(), heartbeatMs);
      await write(`event: reset\ndata: ${JSON.stringify(resetBody(item))}\n\n`);
      clearTimeout(cutOff);
      break;
    }
  } finally {
    clearInterval(beat);
    sub.close();
    if (!res.destroyed) res.end();
  }
}

function dropConnection(c: Context, stream: SSEStreamingApi): void {
  // Under @hono/node-server the response's socket; in-process (tests) the stream itself.
  const outgoing = (c.env as { outgoing?: { destroy(): void } } | undefined)?.outgoing;
  if (outgoing) outgoing.destroy();
  else stream.abort();
}

const subscribeSchema = z.strictObject({
  subscribe: z.union([
    z.strictObject({ communities: z.array(z.string().max(2000)).min(1), after: z.string().max(8192).optional() }),
    z.strictObject({ user: z.string().max(200), after: z.string().max(8192).optional() }),
  ]),
  after: z.string().max(8192).optional(),
});

async function parseSubscribe(s: Services, data: unknown): Promise<{ communityIds: number[]; cursor?: StreamPosition }> {
  let message: unknown;
  try {
    message = JSON.parse(typeof data === 'string' ? data : Buffer.from(data as ArrayBuffer).toString('utf8'));
  } catch {
    throw invalidInput(
      'send JSON: {"subscribe":{"communities":["<ref>"]}} or {"subscribe":{"user":"<name>"}}, optionally "after":"<cursor>"',
    );
  }
  const parsed = subscribeSchema.safeParse(message);
  if (!parsed.success) {
    throw invalidInput(
      `expected {"subscribe":{"communities":["<ref>",...]}} or {"subscribe":{"user":"<name>"}}, optionally "after":"<cursor>" (${parsed.error.issues[0]?.message ?? 'invalid'})`,
    );
  }
  const { subscribe } = parsed.data;
  const communityIds = await resolveFilter(s, 'user' in subscribe ? { user: subscribe.user } : { communities: subscribe.communities });
  return { communityIds, cursor: parseCursor(parsed.data.after ?? subscribe.after) };
}

function apiErrorOf(s: Services, err: unknown): ApiError {
  const mapped = toApiError(err);
  if (mapped) return mapped;
  s.log.error({ err }, 'stream: unexpected error on a WebSocket subscribe');
  return new ApiError(500, 'internal_error', 'Something went wrong on our side; it has been logged');
}

const errorMessage = (e: ApiError) => JSON.stringify({ type: 'error', status: e.status, ...errorBody(e) });

/** As pumpSse: each message waits until the socket has taken the previous one. */
async function pumpWs(ws: WsSocket, sub: Subscription, heartbeatMs: number): Promise<void> {
  const send = (data: string) => new Promise<void>((resolve) => ws.send(data, () => resolve()));
  // The WebSocket's own keep-alive, for proxies that close quiet connections.
  const beat = setInterval(() => ws.ping(), heartbeatMs);
  try {
    for (let item = await sub.next(); item; item = await sub.next()) {
      if (item.type === 'post') {
        await send(`{"type":"post","id":${JSON.stringify(item.id)},"post":${item.data}}`);
        continue;
      }
      const cutOff = setTimeout(() => ws.terminate(), heartbeatMs);
      await send(JSON.stringify({ type: 'reset', ...resetBody(item) }));
      clearTimeout(cutOff);
      ws.close(1000, `reset: ${item.reason}`);
      break;
    }
  } finally {
    clearInterval(beat);
    sub.close();
  }
}
