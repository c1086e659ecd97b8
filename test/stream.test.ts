// The live stream of posts (GET /api/stream as server-sent events, GET /api/ws as WebSocket)
// against real parts: Temporal, a worker, two shard nodes, a FakeLemmy. What a client notices:
// every post a sync stores or changes arrives once, in order, with an id to resume from; a resume
// (also across a kill -9 of the API) misses nothing and repeats nothing; a client that does not
// read is dropped with reset "slow" without holding anyone else up; bad input is a JSON 4xx.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createApp } from '../api/app.js';
import type { ApiDeps } from '../api/deps.js';
import { startApiServer } from '../api/server.js';
import { communityByRef, listCommunities, type CommunityRow } from '../src/db/communities.js';
import { prunePostEvents } from '../src/db/post-events.js';
import { bulkCopy, deleteShardPostsBatch } from '../src/db/sharding/moves.js';
import { createLogger } from '../src/log.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { decodeStreamCursor, encodeStreamCursor } from '../src/stream/cursor.js';
import { stopStreamHub } from '../src/stream/hub.js';
import { requestRefresh, startTracking, stopTracking } from '../src/tracking.js';
import { FakeLemmy } from './fake-lemmy.js';
import { freePort } from './support/ports.js';
import { createStack, eventually, type Stack, apiDeps } from './support/stack.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

interface SseEvent {
  event?: string;
  id?: string;
  data: string;
}

/** Reads a text/event-stream body as a client would; starts reading only when told to. */
class SseReader {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  done = false;
  private buf = '';
  private reader?: ReadableStreamDefaultReader<Uint8Array>;

  constructor(private readonly body: ReadableStream<Uint8Array>) {}

  start(): this {
    void this.pump();
    return this;
  }

  private async pump(): Promise<void> {
    const reader = (this.reader = this.body.getReader());
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        this.buf += decoder.decode(value, { stream: true });
        this.parse();
      }
    } catch {
      // the connection was cut
    } finally {
      this.done = true;
    }
  }

  private parse(): void {
    for (let i = this.buf.indexOf('\n\n'); i >= 0; i = this.buf.indexOf('\n\n')) {
      const block = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      const event: SseEvent = { data: '' };
      const data: string[] = [];
      let fields = 0;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          this.comments.push(line);
          continue;
        }
        fields++;
        const at = line.indexOf(':');
        const key = at < 0 ? line : line.slice(0, at);
        const value = at < 0 ? '' : line.slice(at + 1).replace(/^ /, '');
        if (key === 'data') data.push(value);
        else if (key === 'event') event.event = value;
        else if (key === 'id') event.id = value;
      }
      if (fields) {
        event.data = data.join('\n');
        this.events.push(event);
      }
    }
  }

  posts(): Array<{ id: string; post: Json }> {
    return this.events.filter((e) => e.event === 'post').map((e) => ({ id: e.id!, post: JSON.parse(e.data) }));
  }

  async close(): Promise<void> {
    await this.reader?.cancel().catch(() => {});
  }
}

let stack: Stack;
let fake: FakeLemmy;
let deps: ApiDeps;
let app: Hono;
const log = createLogger({ level: 'silent' });
const readers: SseReader[] = [];
/** Tracked by the first test, used by the later ones. */
let streamed: CommunityRow;
let elsewhere: CommunityRow;

beforeAll(async () => {
  [stack, fake] = await Promise.all([createStack(), FakeLemmy.start({ siteName: 'Stream' })]);
  deps = apiDeps(stack, log);
  app = createApp(deps);
});

afterAll(async () => {
  for (const r of readers) await r.close();
  if (stack) {
    await stopStreamHub(stack.storage.router);
    for (const row of await listCommunities(stack.storage.catalog).catch(() => [])) await stopTracking(deps, row).catch(() => {});
    await stack.stop();
  }
  await fake?.close();
});

/** Tracks a community of the fake (hourly, so only requestRefresh syncs it) and waits for its first sync. */
async function track(name: string, posts = 2): Promise<CommunityRow> {
  fake.addCommunity(name);
  if (posts) fake.addPosts(name, posts);
  const { instance, host } = normalizeInstance(fake.url);
  const { row } = await startTracking(deps, { instance, host, name, refreshSeconds: 3600 });
  return eventually(async () => {
    const r = await communityByRef(deps.catalog, row.ref);
    return r?.last_update && r.syncs === 1 ? r : undefined;
  }, 30_000);
}

async function syncNow(row: CommunityRow): Promise<void> {
  const before = (await communityByRef(deps.catalog, row.ref))!.syncs ?? 0;
  await requestRefresh(deps, row);
  await eventually(async () => ((await communityByRef(deps.catalog, row.ref))!.syncs ?? 0) > before, 30_000);
}

async function open(a: Hono, query: string, headers: Record<string, string> = {}): Promise<{ res: Response; sse: SseReader }> {
  const res = await a.request(`/api/stream?${query}`, { headers });
  expect(res.status, res.status === 200 ? '' : await res.clone().text()).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const sse = new SseReader(res.body!);
  readers.push(sse);
  return { res, sse };
}

const q = (row: CommunityRow) => `communities=${encodeURIComponent(row.ref)}`;
const ids = (posts: Array<{ post: Json }>) => posts.map((p) => p.post.lemmyId as number);
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The community's node seq in each event id strictly increases: the order the shard stored them. */
function expectIncreasingIds(row: CommunityRow, node: string, posts: Array<{ id: string }>) {
  const seqs = posts.map((p) => decodeStreamCursor(p.id)?.get(node));
  for (const s of seqs) expect(s).toEqual(expect.any(Number));
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeGreaterThan(seqs[i - 1]!);
}

async function errorOf(path: string, headers: Record<string, string> = {}) {
  const res = await app.request(path, { headers });
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text) as Json };
}

describe('GET /api/stream (server-sent events)', () => {
  let firstId: string | undefined;

  it('delivers every post a sync inserts or changes, once each, in order, with ids; other communities are not delivered', async () => {
    const [a, b] = [(streamed = await track('streamed')), (elsewhere = await track('elsewhere'))];
    const node = await deps.router.nodeOf(a.shard);
    const { sse } = await open(app, q(a));
    sse.start();

    const added = fake.addPosts('streamed', 5);
    fake.addPosts('elsewhere', 3);
    await Promise.all([syncNow(a), syncNow(b)]);
    await eventually(() => sse.posts().length >= 5);
    const first = sse.posts();
    expect(sorted(ids(first))).toEqual(added.map((p) => p.id));
    expect(first.every((p) => p.post.communityRef === a.ref)).toBe(true);
    expectIncreasingIds(a, node, first);
    firstId = first[0].id;

    // Each event is the post as the REST API shows it.
    const rest = await (await app.request(`/api/communities/${encodeURIComponent(a.ref)}/posts?limit=100`)).json();
    for (const { post } of first) expect(post).toEqual(rest.posts.find((p: Json) => p.lemmyId === post.lemmyId));

    // A change is one more event, with the new content.
    fake.editPost(added[1].id, { score: 99 });
    await syncNow(a);
    await eventually(() => sse.posts().length >= 6);
    const changed = sse.posts()[5];
    expect(changed.post).toMatchObject({ lemmyId: added[1].id, score: 99 });
    expectIncreasingIds(a, node, sse.posts());

    // A sync that finds nothing new sends nothing; nothing of the other community ever came.
    await syncNow(a);
    await sleep(1000);
    expect(sse.posts()).toHaveLength(6);
    expect(sse.events.filter((e) => e.event !== 'post')).toEqual([]);
  });

  it('resumes after a kill -9 of the API: every post stored since the last event once, then live ones', async () => {
    const row = await track('survivor', 3);
    const node = await deps.router.nodeOf(row.shard);
    let api = await spawnApi();
    try {
      const res = await fetch(`http://127.0.0.1:${api.port}/api/stream?${q(row)}`);
      expect(res.status).toBe(200);
      const sse = new SseReader(res.body!).start();
      readers.push(sse);
      const seen = fake.addPosts('survivor', 4);
      await syncNow(row);
      await eventually(() => sse.posts().length >= 4);
      expect(sorted(ids(sse.posts()))).toEqual(seen.map((p) => p.id));
      const lastId = sse.posts().at(-1)!.id;

      api.child.kill('SIGKILL');
      await api.exited;
      await eventually(() => sse.done);

      // While the API is down: new posts, and a change to one it had sent.
      const missed = fake.addPosts('survivor', 5);
      fake.editPost(seen[0].id, { score: 42 });
      await syncNow(row);

      api = await spawnApi();
      const again = await fetch(`http://127.0.0.1:${api.port}/api/stream?${q(row)}`, { headers: { 'Last-Event-ID': lastId } });
      expect(again.status).toBe(200);
      const resumed = new SseReader(again.body!).start();
      readers.push(resumed);
      // Against the posts table: what was stored after the events the client had, each once.
      const stored = await deps.router.pool(node)<{ lemmy_id: number }[]>`
        select lemmy_id from posts where community_id = ${row.id} and fetched_at > (
          select max(fetched_at) from posts where community_id = ${row.id} and lemmy_id = any(${seen.slice(1).map((p) => p.id)}::bigint[]))`;
      const expected = sorted(stored.map((r) => Number(r.lemmy_id)));
      expect(expected).toEqual(sorted([...missed.map((p) => p.id), seen[0].id]));
      await eventually(() => resumed.posts().length >= expected.length);
      expect(sorted(ids(resumed.posts()))).toEqual(expected);
      expect(resumed.posts().find((p) => p.post.lemmyId === seen[0].id)?.post.score).toBe(42);
      expectIncreasingIds(row, node, resumed.posts());

      // Then live ones.
      const live = fake.addPosts('survivor', 2);
      await syncNow(row);
      await eventually(() => resumed.posts().length >= expected.length + 2);
      await sleep(500);
      expect(ids(resumed.posts()).slice(expected.length).sort()).toEqual(live.map((p) => p.id).sort());
      expect(resumed.posts()).toHaveLength(expected.length + 2);

      // A graceful stop ends open streams rather than hanging on them.
      api.child.kill('SIGTERM');
      expect(await api.exited).toBe(0);
      await eventually(() => resumed.done);
    } finally {
      if (api.child.exitCode === null) api.child.kill('SIGKILL');
    }
  });

  it('a client that does not read gets reset "slow" with its last cursor and is closed; a reading client gets everything', async () => {
    const row = await track('firehose', 1);
    const slowApp = createApp({ ...deps, config: { ...stack.config, STREAM_CLIENT_BUFFER: 5, STREAM_HEARTBEAT_SECONDS: 60 } });
    const { sse: slow } = await open(slowApp, q(row));
    const { sse: reading } = await open(slowApp, q(row));
    reading.start();

    const all: number[] = [];
    for (let i = 0; i < 6; i++) {
      all.push(...fake.addPosts('firehose', 3).map((p) => p.id));
      await syncNow(row);
      await eventually(() => reading.posts().length >= all.length);
    }
    expect(sorted(ids(reading.posts()))).toEqual(all);
    expect(reading.events.filter((e) => e.event !== 'post')).toEqual([]);

    // Now it reads: what the pipe held, then the reset naming the last post it got, then the end.
    slow.start();
    await eventually(() => slow.done);
    const got = slow.posts();
    expect(got.length).toBeLessThan(all.length);
    const last = slow.events.at(-1)!;
    expect(last.event).toBe('reset');
    expect(JSON.parse(last.data)).toEqual({ reason: 'slow', after: expect.any(String) });
    if (got.length) expect(JSON.parse(last.data).after).toBe(got.at(-1)!.id);

    // Resuming from there gives the rest, none twice.
    const { sse: rest } = await open(app, `${q(row)}&after=${JSON.parse(last.data).after}`);
    rest.start();
    await eventually(() => rest.posts().length >= all.length - got.length);
    await sleep(500);
    expect(sorted([...ids(got), ...ids(rest.posts())])).toEqual(all);
  });

  it('sends a keep-alive comment every STREAM_HEARTBEAT_SECONDS', async () => {
    const row = streamed;
    const quick = createApp({ ...deps, config: { ...stack.config, STREAM_HEARTBEAT_SECONDS: 1 } });
    const { sse } = await open(quick, q(row));
    sse.start();
    await eventually(() => sse.comments.length >= 2, 5000);
    expect(sse.comments[0]).toBe(': keep-alive');
    await sse.close();
  });

  it("streams a user's followed communities (?user=name)", async (ctx) => {
    const followed = streamed;
    const other = elsewhere;
    let userId: number;
    try {
      [{ id: userId }] = await deps.catalog<{ id: number }[]>`insert into users (name, api_key_hash) values ('streamer', 'x') returning id`;
    } catch (err) {
      // The users tables come with the users feature's catalog migration.
      if ((err as { code?: string }).code === '42P01') return ctx.skip();
      throw err;
    }
    await deps.catalog`insert into community_follows (user_id, community_id) values (${userId}, ${followed.id})`;
    const { sse } = await open(app, 'user=streamer');
    sse.start();
    const mine = fake.addPosts('streamed', 2);
    fake.addPosts('elsewhere', 2);
    await Promise.all([syncNow(followed), syncNow(other)]);
    await eventually(() => sse.posts().length >= 2);
    await sleep(500);
    expect(sorted(ids(sse.posts()))).toEqual(mine.map((p) => p.id));

    expect((await errorOf('/api/stream?user=nobody_here')).status).toBe(404);
    expect((await errorOf('/api/stream?user=nobody_here')).json.error.code).toBe('user_not_found');
    expect((await errorOf('/api/stream?user=NOT%20A%20NAME')).status).toBe(404);
  });

  it('bad input is a JSON 4xx before any stream: no filter, unknown community, malformed cursor', async () => {
    const row = streamed;
    const cases: Array<[string, Record<string, string>, number, string]> = [
      ['/api/stream', {}, 400, 'invalid_input'],
      ['/api/stream?communities=', {}, 400, 'invalid_input'],
      ['/api/stream?communities=nope@example.com', {}, 404, 'community_not_found'],
      [`/api/stream?${q(row)}&user=streamer`, {}, 400, 'invalid_input'],
      [`/api/stream?${q(row)}&after=%25%25`, {}, 400, 'invalid_cursor'],
      [`/api/stream?${q(row)}&after=bm90LWpzb24`, {}, 400, 'invalid_cursor'],
      [`/api/stream?${q(row)}`, { 'Last-Event-ID': encodeURIComponent('{"a":1}') }, 400, 'invalid_cursor'],
      [`/api/stream?${q(row)}&after=${Buffer.from('{"shard-1":-1}').toString('base64url')}`, {}, 400, 'invalid_cursor'],
      ['/api/ws', {}, 426, 'upgrade_required'],
    ];
    for (const [path, headers, status, code] of cases) {
      const r = await errorOf(path, headers);
      expect(r.status, path).toBe(status);
      expect(r.json, path).toEqual({ error: { code, message: expect.any(String) } });
    }
  });

  it('shard-move copies are not news: copying posts to another node adds no events there', async () => {
    const row = streamed;
    const source = await deps.router.nodeOf(row.shard);
    const target = deps.router.nodeNames().find((n) => n !== source)!;
    const countOn = async (n: string) => (await deps.router.pool(n)<{ n: number }[]>`select count(*)::int as n from post_events`)[0].n;
    const before = await countOn(target);
    const copied = await bulkCopy(deps.router.pool(source), deps.router.pool(target), row.shard, {
      lastKey: null,
      copied: 0,
      startedAt: new Date().toISOString(),
    });
    expect(copied.copied).toBeGreaterThan(0);
    expect(await countOn(target)).toBe(before);
    while ((await deleteShardPostsBatch(deps.router.pool(target), row.shard)) > 0);
  });

  it('a cursor pruned past (or from another log) gets reset "expired" and the stream closes', async () => {
    const row = streamed;
    expect(firstId).toBeDefined();
    for (const n of deps.router.nodeNames()) {
      const pruned = await prunePostEvents(deps.router.pool(n), { maxAgeSeconds: 86_400, maxEvents: 0 });
      expect(pruned).toBeDefined();
    }
    for (const cursor of [firstId!, encodeStreamCursor(new Map(deps.router.nodeNames().map((n) => [n, 1e12])))]) {
      const { sse } = await open(app, q(row), { 'Last-Event-ID': cursor });
      sse.start();
      await eventually(() => sse.done);
      expect(sse.events).toEqual([{ event: 'reset', data: '{"reason":"expired"}' }]);
    }
  });
});

describe('GET /api/ws (WebSocket)', () => {
  it('subscribe, receive posts with ids, resume after the last one: the rest once; bad messages get a 4xx error', async () => {
    const row = streamed;
    const server = await startApiServer({ ...deps, config: { ...stack.config, PORT: 0 } });
    const connect = async (subscribe: unknown) => {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api/ws`);
      const messages: Json[] = [];
      let closed = false;
      ws.on('message', (m) => messages.push(JSON.parse(m.toString())));
      ws.on('close', () => (closed = true));
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      ws.send(typeof subscribe === 'string' ? subscribe : JSON.stringify(subscribe));
      return { ws, messages, closed: () => closed };
    };
    try {
      const bad = await connect('{"subscribe":{}}');
      await eventually(() => bad.messages.length >= 1);
      expect(bad.messages[0]).toEqual({ type: 'error', status: 400, error: { code: 'invalid_input', message: expect.any(String) } });
      bad.ws.send(JSON.stringify({ subscribe: { communities: ['nope@example.com'] } }));
      await eventually(() => bad.messages.length >= 2);
      expect(bad.messages[1]).toMatchObject({ type: 'error', status: 404, error: { code: 'community_not_found' } });
      bad.ws.send(JSON.stringify({ subscribe: { communities: [row.ref] }, after: 'not a cursor' }));
      await eventually(() => bad.messages.length >= 3);
      expect(bad.messages[2]).toMatchObject({ type: 'error', status: 400, error: { code: 'invalid_cursor' } });
      bad.ws.close();

      const first = await connect({ subscribe: { communities: [row.ref] } });
      await eventually(() => first.messages.some((m) => m.type === 'subscribed'));
      const some = fake.addPosts('streamed', 3);
      await syncNow(row);
      await eventually(() => first.messages.filter((m) => m.type === 'post').length >= 3);
      const posts = first.messages.filter((m) => m.type === 'post');
      expect(sorted(posts.map((m) => m.post.lemmyId))).toEqual(some.map((p) => p.id));
      expect(posts.every((m) => typeof m.id === 'string' && m.post.communityRef === row.ref)).toBe(true);
      first.ws.close();
      await eventually(() => first.closed());

      const more = fake.addPosts('streamed', 2);
      await syncNow(row);
      const second = await connect({ subscribe: { communities: [row.ref], after: posts.at(-1).id } });
      await eventually(() => second.messages.filter((m) => m.type === 'post').length >= 2);
      await sleep(500);
      expect(sorted(second.messages.filter((m) => m.type === 'post').map((m) => m.post.lemmyId))).toEqual(more.map((p) => p.id));
      second.ws.close();
    } finally {
      await server.close();
    }
  });
});

interface ApiChild {
  child: ChildProcess;
  port: number;
  exited: Promise<number | null>;
}

/** `npm run api` as a child process on this stack (node directly, so SIGKILL hits the API itself). */
async function spawnApi(): Promise<ApiChild> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/api.ts'], {
    env: { ...process.env, ...stack.env, PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok, 30_000, 200).catch((err) => {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${stderr}`);
  });
  return { child, port, exited };
}
