/**
 * FakeLemmy: a real HTTP server (node:http) that imitates a Lemmy 0.19 instance
 * speaking the API v3 wire format, for integration tests and benchmarks. Started with
 * `{ apiVersion: 'v4' }` it imitates Lemmy 1.0: /api/v4/* with v4 shapes (counts on the
 * community and post, `published_at`, `ap_id`, `{items, next_page}` paged by `page_cursor`
 * only), /api/v3 kept as its compatibility layer, and rate limiting as HTTP 429 with
 * `retry-after` and `x-ratelimit-*` headers (also sent on every answer while a limit is set).
 *
 * Implemented endpoints (GET only):
 *   /api/v3/site
 *   /api/v3/community?name=<name>|id=<id>
 *   /api/v3/post/list?community_name=<name>|community_id=<id>&sort=New|Old&limit=&page=&page_cursor=
 * Anything else answers an nginx-like 404 HTML page.
 *
 * Faults can be queued with `fail()` to make the next matching requests misbehave.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type {
  Community as LemmyCommunity,
  CommunityView,
  GetCommunityResponse,
  GetPostsResponse,
  GetSiteResponse,
  Person as LemmyPerson,
  PostView,
  Site as LemmySite,
} from 'lemmy-js-client';

// ---------------------------------------------------------------------------
// Public types

export interface FakePostInit {
  title?: string;
  /** undefined → default `https://example.com/articles/<id>`; null → no url */
  url?: string | null;
  /** undefined/null → no body */
  body?: string | null;
  /** creator name, default 'fake_user' */
  author?: string;
  /** default: now-ish, strictly increasing by 1 ms per post (see addPosts) */
  published?: Date | string;
  /** featured_community */
  featured?: boolean;
  /** default 1 */
  score?: number;
  /** comment count, default 0 */
  comments?: number;
}

export type Fault =
  | { kind: 'status500' }
  | { kind: 'rateLimit400' }
  | { kind: 'status429'; retryAfterSeconds?: number }
  | { kind: 'html200' }
  | { kind: 'malformedJson' }
  | { kind: 'slow'; delayMs: number }
  /** 200 application/json streaming exactly `bytes` bytes (`["xxxx…"]`), chunked; set withContentLength to announce the size up front */
  | { kind: 'huge'; bytes: number; withContentLength?: boolean }
  /** 200 application/json, headers sent, then one space byte every 200 ms until the client disconnects or close() */
  | { kind: 'endlessStream' }
  /** 200 application/json: the normal answer with invalid UTF-8 bytes injected inside its first string value */
  | { kind: 'invalidUtf8' }
  /** 200 JSON nested `depth` levels of arrays: [[[…]]] */
  | { kind: 'deepJson'; depth: number }
  /** post/list answers `count` posts in one page regardless of limit (only matches post/list requests) */
  | { kind: 'manyPosts'; count: number };

export type FaultPath = 'community' | 'post/list' | 'site' | 'any';

export interface FakeRequest {
  /** Date.now() when received */
  at: number;
  method: string;
  /** URL pathname, e.g. '/api/v3/post/list' */
  path: string;
  query: Record<string, string>;
  userAgent?: string;
  accept?: string;
  /** lower-cased community name the request refers to (by name or resolved id), if any */
  community?: string;
  /** Date.now() when the client went away before the answer was complete */
  abortedAt?: number;
}

export interface FakePost {
  id: number;
  /** title */
  name: string;
  url: string | null;
  body: string | null;
  author: string;
  creatorId: number;
  communityId: number;
  communityName: string;
  /** wire timestamp, microsecond ISO with Z */
  published: string;
  /** ms since epoch of `published`; change only through editPost (listing order depends on it) */
  publishedMs: number;
  updated: string | null;
  featured: boolean;
  score: number;
  comments: number;
  deleted: boolean;
  removed: boolean;
}

export interface FakeCommunity {
  id: number;
  name: string;
  title: string;
  description: string | null;
  icon: string | null;
  banner: string | null;
  subscribers: number;
  nsfw: boolean;
  published: string;
  updated: string | null;
  /** all posts of the community (including featured, deleted, removed), sorted by id ascending. Do not push into it directly; use addPosts. */
  posts: FakePost[];
}

// ---------------------------------------------------------------------------
// Helpers

/** ISO timestamp with microseconds, e.g. 2024-05-01T12:34:56.123456Z */
function isoMicro(ms: number, micro = 0): string {
  const base = new Date(ms).toISOString(); // ...:56.123Z
  return base.slice(0, -1) + String(micro % 1000).padStart(3, '0') + 'Z';
}

function toWireTime(v: Date | string): { iso: string; ms: number } {
  if (typeof v === 'string') {
    const ms = Date.parse(v);
    if (Number.isNaN(ms)) throw new Error(`FakeLemmy: invalid published timestamp ${v}`);
    if (/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(v)) return { iso: v, ms };
    return { iso: isoMicro(ms), ms };
  }
  const ms = v.getTime();
  if (Number.isNaN(ms)) throw new Error('FakeLemmy: invalid published Date');
  return { iso: isoMicro(ms), ms };
}

/** compare by (publishedMs, id) ascending */
function cmpTime(a: FakePost, b: FakePost): number {
  return a.publishedMs - b.publishedMs || a.id - b.id;
}

/** insert into array sorted by cmpTime (usually an append) */
function insertByTime(arr: FakePost[], p: FakePost): void {
  const n = arr.length;
  if (n === 0 || cmpTime(arr[n - 1], p) < 0) {
    arr.push(p);
    return;
  }
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cmpTime(arr[mid], p) < 0) lo = mid + 1;
    else hi = mid;
  }
  arr.splice(lo, 0, p);
}

function removeFrom(arr: FakePost[], p: FakePost): void {
  const i = arr.indexOf(p);
  if (i >= 0) arr.splice(i, 1);
}

function visible(p: FakePost): boolean {
  return !p.deleted && !p.removed;
}

const NGINX_404 =
  '<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';
const NGINX_500 =
  '<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';
const CLOUDFLARE_CHALLENGE = `<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title><meta http-equiv="Content-Type" content="text/html; charset=UTF-8"><meta http-equiv="X-UA-Compatible" content="IE=Edge"><meta name="robots" content="noindex,nofollow"><meta name="viewport" content="width=device-width,initial-scale=1"><style>*{box-sizing:border-box;margin:0;padding:0}html{line-height:1.15}</style></head><body class="no-js"><div class="main-wrapper" role="main"><div class="main-content"><noscript><div id="challenge-error-title"><div class="h2"><span class="icon-wrapper"><div class="heading-icon warning-icon"></div></span><span id="challenge-error-text">Enable JavaScript and cookies to continue</span></div></div></noscript></div></div><script>(function(){window._cf_chl_opt={cvId: '3',cZone: "lemmy.example",cType: 'managed',cRay: '8f00000000000000'};var cpo=document.createElement('script');cpo.src='/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=8f00000000000000';document.getElementsByTagName('head')[0].appendChild(cpo);}());</script></body></html>`;

const FETCH_LIMIT_MAX = 50;
const FETCH_LIMIT_DEFAULT = 10;
const ENDLESS_INTERVAL_MS = 200;
const CHUNK = 64 * 1024;

interface QueuedFault {
  fault: Fault;
  remaining: number;
  path: FaultPath;
  community?: string;
}

type Endpoint = 'site' | 'community' | 'post/list' | null;

interface Answer {
  status: number;
  body: string;
  contentType: string;
  headers?: Record<string, string>;
}

/** v3 field names → v4: `published` → `published_at`, `updated` → `updated_at`, `actor_id` → `ap_id`. */
function renameV4(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === 'published') out.published_at = v;
    else if (k === 'updated') out.updated_at = v;
    else if (k === 'actor_id') out.ap_id = v;
    else out[k] = v;
  }
  return out;
}

function json(status: number, value: unknown, headers?: Record<string, string>): Answer {
  return { status, body: JSON.stringify(value), contentType: 'application/json', headers };
}

const JSON_CT = 'application/json';
const HTML_CT = 'text/html';

// ---------------------------------------------------------------------------

export class FakeLemmy {
  readonly url: string;
  readonly hostPort: string;
  readonly requests: FakeRequest[] = [];

  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly cleanups = new Set<() => void>();
  private readonly siteName: string;
  private readonly host: string;
  private readonly startedMs = Date.now();

  private readonly communitiesByName = new Map<string, FakeCommunity>();
  private readonly communitiesById = new Map<number, FakeCommunity>();
  /** per community id: visible-or-not posts sorted by (publishedMs, id) */
  private readonly byTime = new Map<number, FakePost[]>();
  private readonly allByTime: FakePost[] = [];
  private readonly postsById = new Map<number, FakePost>();
  private readonly persons = new Map<string, { id: number; published: string }>();

  private nextCommunityId = 1;
  private nextPostId = 1;
  private nextPersonId = 2; // 1 is the admin
  private nextSyntheticPostId = 1_000_000_000;
  private lastDefaultPublishedMs = 0;

  private faults: QueuedFault[] = [];
  private rateLimitPerMinute: number | null = null;
  private rateWindow: number[] = [];
  private rateHead = 0;
  private readonly counters = new Map<string, number>();
  private closed = false;

  /** 'v4': a Lemmy 1.0 instance. */
  readonly apiVersion: 'v3' | 'v4';

  private constructor(server: http.Server, host: string, port: number, siteName: string, apiVersion: 'v3' | 'v4') {
    this.apiVersion = apiVersion;
    this.server = server;
    this.host = host;
    this.siteName = siteName;
    const h = host.includes(':') ? `[${host}]` : host;
    this.hostPort = `${h}:${port}`;
    this.url = `http://${this.hostPort}`;
  }

  static async start(opts: { host?: string; port?: number; siteName?: string; apiVersion?: 'v3' | 'v4' } = {}): Promise<FakeLemmy> {
    const host = opts.host ?? '127.0.0.1';
    const server = http.createServer();
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen(opts.port ?? 0, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    const fake = new FakeLemmy(server, host, port, opts.siteName ?? 'Fake Lemmy', opts.apiVersion ?? 'v3');
    fake.attach();
    return fake;
  }

  private attach(): void {
    this.server.on('error', () => {});
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.on('clientError', (_err, socket) => {
      try {
        socket.destroy();
      } catch {
        /* ignore */
      }
    });
    this.server.on('request', (req, res) => {
      req.on('error', () => {});
      res.on('error', () => {});
      this.handle(req, res).catch(() => {
        try {
          if (!res.headersSent) {
            res.writeHead(500, { 'content-type': HTML_CT });
            res.end(NGINX_500);
          } else res.destroy();
        } catch {
          /* ignore */
        }
      });
    });
  }

  // -------------------------------------------------------------------------
  // Data management

  addCommunity(
    name: string,
    init: { title?: string; description?: string | null; icon?: string | null; subscribers?: number; nsfw?: boolean } = {},
  ): FakeCommunity {
    const key = name.toLowerCase();
    if (this.communitiesByName.has(key)) throw new Error(`FakeLemmy: community ${name} already exists`);
    const c: FakeCommunity = {
      id: this.nextCommunityId++,
      name,
      title: init.title ?? name,
      description: init.description ?? null,
      icon: init.icon ?? null,
      banner: null,
      subscribers: init.subscribers ?? 100,
      nsfw: init.nsfw ?? false,
      published: isoMicro(Date.now()),
      updated: null,
      posts: [],
    };
    this.communitiesByName.set(key, c);
    this.communitiesById.set(c.id, c);
    this.byTime.set(c.id, []);
    return c;
  }

  community(name: string): FakeCommunity {
    const c = this.communitiesByName.get(name.toLowerCase());
    if (!c) throw new Error(`FakeLemmy: unknown community ${name}`);
    return c;
  }

  /** all communities, in creation order */
  communities(): FakeCommunity[] {
    return [...this.communitiesById.values()];
  }

  removeCommunity(name: string): void {
    const c = this.community(name);
    this.communitiesByName.delete(c.name.toLowerCase());
    this.communitiesById.delete(c.id);
    this.byTime.delete(c.id);
    if (c.posts.length > 0) {
      for (const p of c.posts) this.postsById.delete(p.id);
      const gone = new Set(c.posts);
      const keep = this.allByTime.filter((p) => !gone.has(p));
      this.allByTime.length = 0;
      for (const p of keep) this.allByTime.push(p);
    }
  }

  post(id: number): FakePost {
    const p = this.postsById.get(id);
    if (!p) throw new Error(`FakeLemmy: unknown post ${id}`);
    return p;
  }

  /**
   * Add n posts (in order i = 0..n-1, so the last one is the newest: highest id and latest
   * published). Default published: the batch ends at ≈ now, each post 1 ms after the previous,
   * and always strictly after any earlier default-published post.
   */
  addPosts(name: string, n: number, init?: (i: number) => FakePostInit): FakePost[] {
    const c = this.community(name);
    const list = this.byTime.get(c.id)!;
    const out: FakePost[] = [];
    let nextMs = Math.max(Date.now() - n + 1, this.lastDefaultPublishedMs + 1);
    for (let i = 0; i < n; i++) {
      const o = init ? init(i) : {};
      const id = this.nextPostId++;
      let published: string;
      let publishedMs: number;
      if (o.published !== undefined) {
        const t = toWireTime(o.published);
        published = t.iso;
        publishedMs = t.ms;
      } else {
        publishedMs = nextMs++;
        this.lastDefaultPublishedMs = publishedMs;
        published = isoMicro(publishedMs, id % 1000);
      }
      const author = o.author ?? 'fake_user';
      const p: FakePost = {
        id,
        name: o.title ?? `${c.name} post ${id}`,
        url: o.url === undefined ? `https://example.com/articles/${id}` : o.url,
        body: o.body ?? null,
        author,
        creatorId: this.person(author).id,
        communityId: c.id,
        communityName: c.name,
        published,
        publishedMs,
        updated: null,
        featured: o.featured ?? false,
        score: o.score ?? 1,
        comments: o.comments ?? 0,
        deleted: false,
        removed: false,
      };
      c.posts.push(p); // ids are globally increasing → stays sorted by id
      insertByTime(list, p);
      insertByTime(this.allByTime, p);
      this.postsById.set(id, p);
      out.push(p);
    }
    return out;
  }

  editPost(id: number, patch: Partial<FakePostInit> & { deleted?: boolean; removed?: boolean }): void {
    const p = this.post(id);
    let contentEdited = false;
    if (patch.title !== undefined) {
      p.name = patch.title;
      contentEdited = true;
    }
    if (patch.url !== undefined) {
      p.url = patch.url;
      contentEdited = true;
    }
    if (patch.body !== undefined) {
      p.body = patch.body;
      contentEdited = true;
    }
    if (patch.author !== undefined) {
      p.author = patch.author;
      p.creatorId = this.person(patch.author).id;
    }
    if (patch.featured !== undefined) p.featured = patch.featured;
    if (patch.score !== undefined) p.score = patch.score;
    if (patch.comments !== undefined) p.comments = patch.comments;
    if (patch.deleted !== undefined) p.deleted = patch.deleted;
    if (patch.removed !== undefined) p.removed = patch.removed;
    if (patch.published !== undefined) {
      const t = toWireTime(patch.published);
      const list = this.byTime.get(p.communityId);
      if (list) removeFrom(list, p);
      removeFrom(this.allByTime, p);
      p.published = t.iso;
      p.publishedMs = t.ms;
      if (list) insertByTime(list, p);
      insertByTime(this.allByTime, p);
    }
    if (contentEdited) p.updated = isoMicro(Date.now());
  }

  private person(name: string): { id: number; published: string } {
    let p = this.persons.get(name);
    if (!p) {
      p = { id: this.nextPersonId++, published: isoMicro(this.startedMs) };
      this.persons.set(name, p);
    }
    return p;
  }

  // -------------------------------------------------------------------------
  // Faults, rate limit, request log

  fail(fault: Fault, opts: { times?: number; path?: FaultPath; community?: string } = {}): void {
    const times = opts.times ?? 1;
    if (times <= 0) return;
    this.faults.push({
      fault,
      remaining: times,
      path: opts.path ?? 'any',
      community: opts.community?.toLowerCase(),
    });
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** number of queued fault answers not yet served */
  pendingFaults(): number {
    return this.faults.reduce((n, f) => n + f.remaining, 0);
  }

  requestsFor(community: string, path?: 'community' | 'post/list'): number {
    const key = community.toLowerCase();
    if (path) return this.counters.get(`${path}|${key}`) ?? 0;
    return (this.counters.get(`community|${key}`) ?? 0) + (this.counters.get(`post/list|${key}`) ?? 0);
  }

  resetRequests(): void {
    this.requests.length = 0;
    this.counters.clear();
  }

  /** Sliding 60 s window; only accepted requests count towards the limit. */
  setRateLimit(perMinute: number | null): void {
    this.rateLimitPerMinute = perMinute;
    this.rateWindow = [];
    this.rateHead = 0;
  }

  private rateLimited(now: number): boolean {
    const limit = this.rateLimitPerMinute;
    if (limit === null) return false;
    const w = this.rateWindow;
    while (this.rateHead < w.length && w[this.rateHead] <= now - 60_000) this.rateHead++;
    if (this.rateHead > 1024 && this.rateHead * 2 > w.length) {
      this.rateWindow = w.slice(this.rateHead);
      this.rateHead = 0;
    }
    if (this.rateWindow.length - this.rateHead >= limit) return true;
    this.rateWindow.push(now);
    return false;
  }

  private takeFault(endpoint: Endpoint, community: string | undefined): Fault | null {
    for (let i = 0; i < this.faults.length; i++) {
      const f = this.faults[i];
      if (f.path !== 'any' && f.path !== endpoint) continue;
      if (f.community !== undefined && f.community !== community) continue;
      if (f.fault.kind === 'manyPosts' && endpoint !== 'post/list') continue;
      f.remaining--;
      if (f.remaining <= 0) this.faults.splice(i, 1);
      return f.fault;
    }
    return null;
  }

  // -------------------------------------------------------------------------
  // Lifecycle

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const fn of [...this.cleanups]) fn();
    this.cleanups.clear();
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.server.closeAllConnections();
    await done;
  }

  // -------------------------------------------------------------------------
  // Request handling

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const now = Date.now();
    const u = new URL(req.url ?? '/', 'http://fake.invalid');
    const path = u.pathname;
    const query: Record<string, string> = {};
    for (const [k, v] of u.searchParams) query[k] = v;
    const method = req.method ?? 'GET';

    let endpoint: Endpoint = null;
    const v4 = this.apiVersion === 'v4' && path.startsWith('/api/v4/');
    if (method === 'GET' || method === 'HEAD') {
      const api = v4 ? '/api/v4' : '/api/v3';
      if (path === `${api}/site`) endpoint = 'site';
      else if (path === `${api}/community`) endpoint = 'community';
      else if (path === `${api}/post/list`) endpoint = 'post/list';
    }

    let community: string | undefined;
    if (endpoint === 'community') community = this.communityKeyOf(query.name, query.id);
    else if (endpoint === 'post/list') community = this.communityKeyOf(query.community_name, query.community_id);

    const rec: FakeRequest = { at: now, method, path, query };
    const ua = req.headers['user-agent'];
    if (ua !== undefined) rec.userAgent = ua;
    const accept = req.headers.accept;
    if (accept !== undefined) rec.accept = accept;
    if (community !== undefined) rec.community = community;
    this.requests.push(rec);
    res.once('close', () => {
      if (!res.writableFinished) rec.abortedAt = Date.now();
    });
    if (community !== undefined && (endpoint === 'community' || endpoint === 'post/list')) {
      const key = `${endpoint}|${community}`;
      this.counters.set(key, (this.counters.get(key) ?? 0) + 1);
    }

    const fault = this.takeFault(endpoint, community);
    if (fault) {
      const handled = await this.serveFault(fault, req, res, endpoint, query);
      if (handled) return;
      // 'slow': fall through to the normal answer
      if (res.destroyed || this.closed) return;
    }

    if (this.rateLimited(Date.now())) {
      // 0.19: HTTP 400 and no headers; 1.0: 429 with retry-after and x-ratelimit-*.
      if (this.apiVersion === 'v4') this.send(res, json(429, { error: 'rate_limit_error' }, this.quotaHeaders(Date.now(), true)));
      else this.send(res, json(400, { error: 'rate_limit_error' }));
      return;
    }
    if (v4 && endpoint === 'post/list' && query.page !== undefined) {
      this.send(res, json(400, { error: 'invalid_query', message: 'page was removed in v4: use page_cursor' }));
      return;
    }
    const answer = this.answer(endpoint, query);
    const quota = this.apiVersion === 'v4' && this.rateLimitPerMinute !== null ? this.quotaHeaders(Date.now(), false) : undefined;
    this.send(
      res,
      v4 && answer.status === 200 ? this.toV4(endpoint, answer, quota) : { ...answer, headers: { ...answer.headers, ...quota } },
    );
  }

  /** Lemmy 1.0's rate-limit headers: the window is the last minute; reset = seconds until its oldest request leaves it. */
  private quotaHeaders(now: number, exhausted: boolean): Record<string, string> {
    const limit = this.rateLimitPerMinute ?? 0;
    const used = this.rateWindow.length - this.rateHead;
    const oldest = this.rateWindow[this.rateHead] ?? now;
    const resetSeconds = Math.max(1, Math.ceil((oldest + 60_000 - now) / 1000));
    return {
      ...(exhausted ? { 'retry-after': String(resetSeconds) } : {}),
      'x-ratelimit-limit': String(limit),
      'x-ratelimit-remaining': String(exhausted ? 0 : Math.max(0, limit - used)),
      'x-ratelimit-reset': String(resetSeconds),
    };
  }

  /** A v3 answer in Lemmy 1.0's v4 shapes. */
  private toV4(endpoint: Endpoint, a: Answer, headers?: Record<string, string>): Answer {
    const v3 = JSON.parse(a.body) as Record<string, unknown>;
    if (endpoint === 'site') {
      const site = (v3.site_view as { site: Record<string, unknown> }).site;
      return json(200, { site_view: { site: renameV4(site) }, admins: [], version: '1.0.0', all_languages: [] }, headers);
    }
    if (endpoint === 'community') {
      const view = v3.community_view as { community: Record<string, unknown>; counts: { subscribers: number; posts: number } };
      const c = renameV4(view.community);
      return json(
        200,
        {
          community_view: {
            community: {
              ...c,
              sidebar: c.description ?? null,
              description: undefined,
              subscribers: view.counts.subscribers,
              posts: view.counts.posts,
            },
          },
        },
        headers,
      );
    }
    const posts = v3.posts as Array<{ post: Record<string, unknown>; creator: Record<string, unknown>; counts: Record<string, number> }>;
    const items = posts.map((v) => ({
      post: {
        ...renameV4(v.post),
        score: v.counts.score,
        upvotes: v.counts.upvotes,
        downvotes: v.counts.downvotes,
        comments: v.counts.comments,
      },
      creator: renameV4(v.creator),
    }));
    // Lemmy 1.0 sends no next_page on the last page.
    const next = items.length > 0 ? (v3.next_page as string | undefined) : undefined;
    return json(200, { items, ...(next ? { next_page: next } : {}) }, headers);
  }

  /** lower-cased name of the community referenced by a name or id parameter (name kept even if unknown) */
  private communityKeyOf(name: string | undefined, id: string | undefined): string | undefined {
    if (name !== undefined && name !== '') return this.stripDomain(name).toLowerCase();
    if (id !== undefined && /^\d+$/.test(id)) {
      const c = this.communitiesById.get(Number(id));
      if (c) return c.name.toLowerCase();
    }
    return undefined;
  }

  /** 'name@host:port' → 'name' when the domain is ours; foreign domains kept (→ unknown) */
  private stripDomain(name: string): string {
    const at = name.indexOf('@');
    if (at < 0) return name;
    const domain = name.slice(at + 1).toLowerCase();
    if (domain === this.hostPort.toLowerCase() || domain === this.host.toLowerCase()) return name.slice(0, at);
    return name;
  }

  private findCommunity(name: string | undefined, id: string | undefined): FakeCommunity | undefined | 'bad_id' {
    if (name !== undefined && name !== '') return this.communitiesByName.get(this.stripDomain(name).toLowerCase());
    if (id !== undefined) {
      if (!/^\d+$/.test(id)) return 'bad_id';
      return this.communitiesById.get(Number(id));
    }
    return undefined;
  }

  private answer(endpoint: Endpoint, query: Record<string, string>): Answer {
    switch (endpoint) {
      case 'site':
        return json(200, this.siteResponse());
      case 'community':
        return this.communityAnswer(query);
      case 'post/list':
        return this.postListAnswer(query);
      default:
        return { status: 404, body: NGINX_404, contentType: HTML_CT };
    }
  }

  private deserializeError(): Answer {
    return {
      status: 400,
      body: 'Query deserialize error: invalid digit found in string',
      contentType: 'text/plain; charset=utf-8',
    };
  }

  private communityAnswer(query: Record<string, string>): Answer {
    if ((query.name === undefined || query.name === '') && query.id === undefined) {
      return json(400, { error: 'no_id_given' });
    }
    const c = this.findCommunity(query.name, query.id);
    if (c === 'bad_id') return this.deserializeError();
    if (!c) return json(404, { error: 'couldnt_find_community' });
    const body: GetCommunityResponse = {
      community_view: this.communityView(c),
      site: this.site(),
      moderators: [],
      discussion_languages: [],
    };
    return json(200, body);
  }

  private postListAnswer(query: Record<string, string>, forceCount?: number): Answer {
    let limit = FETCH_LIMIT_DEFAULT;
    if (query.limit !== undefined) {
      if (!/^-?\d+$/.test(query.limit)) return this.deserializeError();
      limit = Number(query.limit);
      if (limit < 1 || limit > FETCH_LIMIT_MAX) return json(400, { error: 'couldnt_get_posts' });
    }
    let page = 1;
    if (query.page !== undefined) {
      if (!/^-?\d+$/.test(query.page)) return this.deserializeError();
      page = Number(query.page);
      if (page < 1) return json(400, { error: 'couldnt_get_posts' });
    }
    let offset = (page - 1) * limit;
    if (query.page_cursor !== undefined && query.page_cursor !== '') {
      const off = decodeCursor(query.page_cursor);
      if (off === null) return json(400, { error: 'couldnt_get_posts' });
      offset = off;
    }
    const oldFirst = query.sort === 'Old';
    const take = forceCount ?? limit;

    let items: FakePost[];
    let community: FakeCommunity | undefined;
    const hasCommunity = (query.community_name !== undefined && query.community_name !== '') || query.community_id !== undefined;
    if (hasCommunity) {
      const c = this.findCommunity(query.community_name, query.community_id);
      if (c === 'bad_id') return this.deserializeError();
      if (!c) return json(404, { error: 'unknown', message: 'Record not found' });
      community = c;
      items = listing(this.byTime.get(c.id) ?? [], true, oldFirst, offset, take);
    } else {
      items = listing(this.allByTime, false, oldFirst, offset, take);
    }

    const views: PostView[] = [];
    const cache = new Map<number, LemmyCommunity>();
    const communityObj = (id: number): LemmyCommunity => {
      let o = cache.get(id);
      if (!o) {
        o = this.communityObject(this.communitiesById.get(id)!);
        cache.set(id, o);
      }
      return o;
    };
    for (const p of items) views.push(this.postView(p, communityObj(p.communityId)));

    if (forceCount !== undefined && community && views.length < forceCount) {
      // pad with synthetic (older) posts so the page really has forceCount entries
      const cObj = communityObj(community.id);
      const oldest = items.length > 0 ? items[items.length - 1].publishedMs : Date.now();
      for (let i = views.length; i < forceCount; i++) {
        const id = this.nextSyntheticPostId++;
        const p: FakePost = {
          id,
          name: `${community.name} synthetic post ${id}`,
          url: `https://example.com/synthetic/${id}`,
          body: null,
          author: 'fake_user',
          creatorId: this.person('fake_user').id,
          communityId: community.id,
          communityName: community.name,
          published: isoMicro(oldest - (i + 1)),
          publishedMs: oldest - (i + 1),
          updated: null,
          featured: false,
          score: 1,
          comments: 0,
          deleted: false,
          removed: false,
        };
        views.push(this.postView(p, cObj));
      }
    }

    const body: GetPostsResponse = { posts: views };
    if (views.length > 0) body.next_page = encodeCursor(offset + views.length);
    return json(200, body);
  }

  // -------------------------------------------------------------------------
  // Wire objects

  private site(): LemmySite {
    return {
      id: 1,
      name: this.siteName,
      published: isoMicro(this.startedMs),
      actor_id: `${this.url}/`,
      last_refreshed_at: isoMicro(this.startedMs),
      inbox_url: `${this.url}/site_inbox`,
      public_key:
        '-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAfakefakefakefakefakefake\n-----END PUBLIC KEY-----\n',
      instance_id: 1,
    };
  }

  private siteResponse(): GetSiteResponse {
    const published = isoMicro(this.startedMs);
    return {
      site_view: {
        site: this.site(),
        local_site: {
          id: 1,
          site_id: 1,
          site_setup: true,
          enable_downvotes: true,
          enable_nsfw: true,
          community_creation_admin_only: false,
          require_email_verification: false,
          private_instance: false,
          default_theme: 'browser',
          default_post_listing_type: 'Local',
          hide_modlog_mod_names: true,
          application_email_admins: false,
          actor_name_max_length: 20,
          federation_enabled: true,
          captcha_enabled: false,
          captcha_difficulty: 'medium',
          published,
          registration_mode: 'RequireApplication',
          reports_email_admins: false,
          federation_signed_fetch: false,
          default_post_listing_mode: 'List',
          default_sort_type: 'Active',
        },
        local_site_rate_limit: {
          local_site_id: 1,
          message: 180,
          message_per_second: 60,
          post: 6,
          post_per_second: 600,
          register: 3,
          register_per_second: 3600,
          image: 6,
          image_per_second: 3600,
          comment: 6,
          comment_per_second: 600,
          search: 60,
          search_per_second: 600,
          published,
          import_user_settings: 1,
          import_user_settings_per_second: 86400,
        },
        counts: {
          site_id: 1,
          users: this.persons.size + 1,
          posts: this.postsById.size,
          comments: 0,
          communities: this.communitiesById.size,
          users_active_day: 1,
          users_active_week: 1,
          users_active_month: 1,
          users_active_half_year: 1,
        },
      },
      admins: [],
      version: '0.19.5',
      all_languages: [],
      discussion_languages: [],
      taglines: [],
      custom_emojis: [],
      blocked_urls: [],
    };
  }

  private communityObject(c: FakeCommunity): LemmyCommunity {
    const o: LemmyCommunity = {
      id: c.id,
      name: c.name,
      title: c.title,
      removed: false,
      published: c.published,
      deleted: false,
      nsfw: c.nsfw,
      actor_id: `${this.url}/c/${c.name}`,
      local: true,
      hidden: false,
      posting_restricted_to_mods: false,
      instance_id: 1,
      visibility: 'Public',
    };
    if (c.description != null) o.description = c.description;
    if (c.updated != null) o.updated = c.updated;
    if (c.icon != null) o.icon = c.icon;
    if (c.banner != null) o.banner = c.banner;
    return o;
  }

  private communityView(c: FakeCommunity): CommunityView {
    let posts = 0;
    let comments = 0;
    for (const p of c.posts) {
      if (visible(p)) {
        posts++;
        comments += p.comments;
      }
    }
    return {
      community: this.communityObject(c),
      subscribed: 'NotSubscribed',
      blocked: false,
      counts: {
        community_id: c.id,
        subscribers: c.subscribers,
        posts,
        comments,
        published: c.published,
        users_active_day: 0,
        users_active_week: 0,
        users_active_month: 0,
        users_active_half_year: 0,
        subscribers_local: c.subscribers,
      },
      banned_from_community: false,
    };
  }

  private postView(p: FakePost, community: LemmyCommunity): PostView {
    const person = this.person(p.author);
    const post: PostView['post'] = {
      id: p.id,
      name: p.name,
      creator_id: p.creatorId,
      community_id: p.communityId,
      removed: false,
      locked: false,
      published: p.published,
      deleted: false,
      nsfw: false,
      ap_id: `${this.url}/post/${p.id}`,
      local: true,
      language_id: 0,
      featured_community: p.featured,
      featured_local: false,
    };
    if (p.url != null) post.url = p.url;
    if (p.body != null) post.body = p.body;
    if (p.updated != null) post.updated = p.updated;
    const creator: LemmyPerson = {
      id: p.creatorId,
      name: p.author,
      banned: false,
      published: person.published,
      actor_id: `${this.url}/u/${p.author}`,
      local: true,
      deleted: false,
      bot_account: false,
      instance_id: 1,
    };
    return {
      post,
      creator,
      community,
      creator_banned_from_community: false,
      banned_from_community: false,
      creator_is_moderator: false,
      creator_is_admin: false,
      counts: {
        post_id: p.id,
        comments: p.comments,
        score: p.score,
        upvotes: p.score >= 0 ? p.score : 0,
        downvotes: p.score < 0 ? -p.score : 0,
        published: p.published,
        newest_comment_time: p.published,
      },
      subscribed: 'NotSubscribed',
      saved: false,
      read: false,
      hidden: false,
      creator_blocked: false,
      unread_comments: 0,
    };
  }

  // -------------------------------------------------------------------------
  // Sending

  private send(res: http.ServerResponse, a: Answer): void {
    if (res.destroyed || res.headersSent) return;
    const body = Buffer.from(a.body, 'utf8');
    res.writeHead(a.status, {
      'content-type': a.contentType,
      'content-length': String(body.length),
      ...(a.headers ?? {}),
    });
    res.end(res.req?.method === 'HEAD' ? undefined : body);
  }

  private sendBuffer(res: http.ServerResponse, status: number, contentType: string, body: Buffer): void {
    if (res.destroyed || res.headersSent) return;
    res.writeHead(status, { 'content-type': contentType, 'content-length': String(body.length) });
    res.end(body);
  }

  /** returns true when the fault produced the whole answer; false when the normal answer should follow (slow) */
  private async serveFault(
    fault: Fault,
    _req: http.IncomingMessage,
    res: http.ServerResponse,
    endpoint: Endpoint,
    query: Record<string, string>,
  ): Promise<boolean> {
    switch (fault.kind) {
      case 'status500':
        this.send(res, { status: 500, body: NGINX_500, contentType: HTML_CT });
        return true;
      case 'rateLimit400':
        this.send(res, json(400, { error: 'rate_limit_error' }));
        return true;
      case 'status429': {
        const headers: Record<string, string> = {};
        if (fault.retryAfterSeconds !== undefined) headers['retry-after'] = String(fault.retryAfterSeconds);
        this.send(res, json(429, { error: 'rate_limit_error' }, headers));
        return true;
      }
      case 'html200':
        this.send(res, { status: 200, body: CLOUDFLARE_CHALLENGE, contentType: 'text/html; charset=UTF-8' });
        return true;
      case 'malformedJson':
        this.send(res, { status: 200, body: '{"posts": [', contentType: JSON_CT });
        return true;
      case 'slow':
        await this.sleepUnlessGone(res, fault.delayMs);
        return false;
      case 'huge': {
        const bytes = Math.max(0, Math.floor(fault.bytes));
        const headers: Record<string, string> = { 'content-type': JSON_CT };
        if (fault.withContentLength) headers['content-length'] = String(bytes);
        res.writeHead(200, headers);
        if (bytes < 4) {
          res.end(['', ' ', '[]', '[ ]'][bytes]);
          return true;
        }
        await this.stream(res, [
          { byte: '["', count: 1, literal: true },
          { byte: 'x', count: bytes - 4 },
          { byte: '"]', count: 1, literal: true },
        ]);
        return true;
      }
      case 'deepJson': {
        const depth = Math.max(0, Math.floor(fault.depth));
        res.writeHead(200, { 'content-type': JSON_CT, 'content-length': String(depth * 2) });
        await this.stream(res, [
          { byte: '[', count: depth },
          { byte: ']', count: depth },
        ]);
        return true;
      }
      case 'endlessStream': {
        res.writeHead(200, { 'content-type': JSON_CT });
        res.flushHeaders();
        const timer = setInterval(() => {
          if (res.destroyed) {
            cleanup();
            return;
          }
          res.write(' ');
        }, ENDLESS_INTERVAL_MS);
        const cleanup = () => {
          clearInterval(timer);
          this.cleanups.delete(cleanup);
          if (!res.destroyed) res.destroy();
        };
        this.cleanups.add(cleanup);
        res.once('close', cleanup);
        return true;
      }
      case 'invalidUtf8': {
        const normal = this.answer(endpoint, query);
        const text = normal.contentType === JSON_CT ? normal.body : JSON.stringify({ error: 'unknown' });
        const buf = Buffer.from(text, 'utf8');
        // insert after the opening quote of the first string value
        let at = buf.indexOf(':"');
        at = at >= 0 ? at + 2 : 1;
        const bad = Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0xa0, 0xa1]);
        this.sendBuffer(res, 200, JSON_CT, Buffer.concat([buf.subarray(0, at), bad, buf.subarray(at)]));
        return true;
      }
      case 'manyPosts': {
        if (endpoint !== 'post/list') return false;
        const count = Math.max(0, Math.floor(fault.count));
        this.send(res, this.postListAnswer(query, count));
        return true;
      }
    }
  }

  private sleepUnlessGone(res: http.ServerResponse, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        res.off('close', done);
        this.cleanups.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      res.once('close', done);
      this.cleanups.add(done);
    });
  }

  /** write runs of repeated bytes with backpressure; stops when the client goes away */
  private async stream(res: http.ServerResponse, parts: Array<{ byte: string; count: number; literal?: boolean }>): Promise<void> {
    let gone = false;
    const onGone = () => {
      gone = true;
    };
    res.once('close', onGone);
    const abort = () => {
      gone = true;
      if (!res.destroyed) res.destroy();
    };
    this.cleanups.add(abort);
    try {
      for (const part of parts) {
        if (part.literal) {
          if (gone || res.destroyed) return;
          if (!res.write(part.byte)) await drainOrClose(res);
          continue;
        }
        const chunk = Buffer.alloc(Math.min(CHUNK, Math.max(1, part.count)), part.byte);
        let remaining = part.count;
        while (remaining > 0) {
          if (gone || res.destroyed) return;
          const n = Math.min(remaining, chunk.length);
          remaining -= n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await drainOrClose(res);
        }
      }
      if (!gone && !res.destroyed) res.end();
    } finally {
      res.off('close', onGone);
      this.cleanups.delete(abort);
    }
  }
}

function drainOrClose(res: http.ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** ordering: (featured first if featuredFirst) then by published; newest first unless oldFirst */
function listing(arr: FakePost[], featuredFirst: boolean, oldFirst: boolean, offset: number, limit: number): FakePost[] {
  const out: FakePost[] = [];
  let skip = offset;
  const n = arr.length;
  if (featuredFirst) {
    const featured: FakePost[] = [];
    if (oldFirst) {
      for (let i = 0; i < n; i++) if (arr[i].featured && visible(arr[i])) featured.push(arr[i]);
    } else {
      for (let i = n - 1; i >= 0; i--) if (arr[i].featured && visible(arr[i])) featured.push(arr[i]);
    }
    for (let i = skip; i < featured.length && out.length < limit; i++) out.push(featured[i]);
    skip = Math.max(0, skip - featured.length);
  }
  if (out.length >= limit) return out;
  if (oldFirst) {
    for (let i = 0; i < n && out.length < limit; i++) {
      const p = arr[i];
      if (!visible(p) || (featuredFirst && p.featured)) continue;
      if (skip > 0) skip--;
      else out.push(p);
    }
  } else {
    for (let i = n - 1; i >= 0 && out.length < limit; i--) {
      const p = arr[i];
      if (!visible(p) || (featuredFirst && p.featured)) continue;
      if (skip > 0) skip--;
      else out.push(p);
    }
  }
  return out;
}

/** opaque cursor (Lemmy-looking): 'P' + base64url of the next offset */
function encodeCursor(offset: number): string {
  return 'P' + Buffer.from(`o${offset}`).toString('base64url');
}

function decodeCursor(s: string): number | null {
  if (!s.startsWith('P')) return null;
  const raw = Buffer.from(s.slice(1), 'base64url').toString('utf8');
  const m = /^o(\d+)$/.exec(raw);
  return m ? Number(m[1]) : null;
}
