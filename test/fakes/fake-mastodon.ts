/**
 * FakeMastodon: a real HTTP server (node:http on 127.0.0.1) imitating Mastodon 4.x's public API,
 * for the Mastodon source adapter's tests.
 *
 * Implemented endpoints (GET only):
 *   /api/v1/instance, /api/v2/instance
 *   /api/v1/tags/:name
 *   /api/v1/timelines/tag/:hashtag?limit=&max_id=&since_id=&min_id=
 *   /api/v1/accounts/lookup?acct=
 *   /api/v1/accounts/:id/statuses?limit=&max_id=&since_id=&min_id=&exclude_reblogs=
 * Other /api paths answer 404 `{"error":"Record not found"}`, anything else an HTML 404 page.
 *
 * Paging is Mastodon's: newest first; `max_id` → older than it; `since_id` → the newest page newer
 * than it; `min_id` → the page just newer than it (still newest first); limit 20 by default, 40 at
 * most; a Link header with rel="next" (max_id = oldest in the page) and rel="prev" (min_id = newest).
 * Ids are snowflake-like decimal strings beyond 2^53, consecutive, so that any precision loss shows.
 *
 * Every answer carries X-RateLimit-Limit/-Remaining/-Reset (an ISO time) from one counter per
 * fake; once the quota is used up, requests answer 429 with those headers and no Retry-After.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeMastodonOptions {
  /** Requests per window (Mastodon: 300 per 5 minutes). */
  rateLimit?: number;
  rateLimitWindowMs?: number;
}

export interface FakeAccountInit {
  displayName?: string;
  note?: string;
  followers?: number;
}

export interface FakeStatusInit {
  /** Hashtag(s) the status carries: it shows in their timelines. */
  tag?: string | string[];
  /** Username of an account added with addAccount. */
  account: string;
  content: string;
  spoiler?: string;
  sensitive?: boolean;
  /** Default: now, 1 s later per status. */
  createdAt?: Date | string;
  editedAt?: Date | string;
  /** undefined → `<base>/@<user>/<id>`; null → none. */
  url?: string | null;
  /** A reblog of this status id (content and tags are then the original's). */
  reblogOf?: string;
  /** Image preview URLs, as media attachments. */
  images?: string[];
  favourites?: number;
  replies?: number;
}

export interface FakeRequest {
  path: string;
  query: Record<string, string>;
  at: number;
  status: number;
}

export interface FakeFailure {
  status: number;
  /** A string is sent as text/html (unless contentType says otherwise), anything else as JSON. */
  body?: unknown;
  contentType?: string;
}

interface FakeAccount {
  id: string;
  username: string;
  displayName: string;
  note: string;
  followers: number;
  createdAt: string;
}

interface FakeStatus {
  id: string;
  account: FakeAccount;
  tags: string[];
  content: string;
  spoiler: string;
  sensitive: boolean;
  createdAt: string;
  editedAt: string | null;
  /** undefined: the default web URL, made when answering (the base URL is known only once started). */
  url: string | null | undefined;
  reblogOf?: FakeStatus;
  images: string[];
  favourites: number;
  replies: number;
}

/** Above 2^53, as real snowflakes are: a Number would round neighbouring ids together. */
const FIRST_STATUS_ID = 113456789012345678n;
const FIRST_ACCOUNT_ID = 109876543210987654n;
const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 40;

export class FakeMastodon {
  readonly requests: FakeRequest[] = [];
  private readonly accounts = new Map<string, FakeAccount>();
  private readonly statuses: FakeStatus[] = [];
  private readonly failures: { prefix: string; failure: FakeFailure }[] = [];
  private readonly sockets = new Set<Socket>();
  private server?: http.Server;
  private base = '';
  private nextStatusId = FIRST_STATUS_ID;
  private nextAccountId = FIRST_ACCOUNT_ID;
  private clock = Date.parse('2024-06-01T12:00:00Z');
  private readonly rateLimit: number;
  private readonly windowMs: number;
  private windowStart = Date.now();
  private used = 0;

  constructor(opts: FakeMastodonOptions = {}) {
    this.rateLimit = opts.rateLimit ?? 300;
    this.windowMs = opts.rateLimitWindowMs ?? 5 * 60_000;
  }

  /** The base URL, e.g. http://127.0.0.1:41234. */
  async start(): Promise<string> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.base;
  }

  get url(): string {
    return this.base;
  }

  get host(): string {
    return new URL(this.base).host;
  }

  /** When the rate-limit window ends (what X-RateLimit-Reset says). */
  get rateLimitResetAt(): Date {
    return new Date(this.windowStart + this.windowMs);
  }

  async close(): Promise<void> {
    if (!this.server) return;
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  addAccount(username: string, init: FakeAccountInit = {}): { id: string; username: string } {
    const account: FakeAccount = {
      id: String(this.nextAccountId++),
      username,
      displayName: init.displayName ?? '',
      note: init.note ?? '',
      followers: init.followers ?? 0,
      createdAt: new Date(this.clock).toISOString(),
    };
    this.accounts.set(username.toLowerCase(), account);
    return { id: account.id, username };
  }

  /** Adds a status, newer than every one before; returns its id. */
  addStatus(init: FakeStatusInit): { id: string } {
    const account = this.accounts.get(init.account.toLowerCase());
    if (!account) throw new Error(`FakeMastodon: no account ${init.account}`);
    const reblogOf = init.reblogOf === undefined ? undefined : this.statuses.find((s) => s.id === init.reblogOf);
    if (init.reblogOf !== undefined && !reblogOf) throw new Error(`FakeMastodon: no status ${init.reblogOf}`);
    this.clock += 1000;
    const id = String(this.nextStatusId++);
    const tags = reblogOf
      ? []
      : init.tag === undefined
        ? []
        : (Array.isArray(init.tag) ? init.tag : [init.tag]).map((t) => t.toLowerCase());
    this.statuses.push({
      id,
      account,
      tags,
      content: reblogOf ? '' : init.content,
      spoiler: init.spoiler ?? '',
      sensitive: init.sensitive ?? false,
      createdAt: init.createdAt === undefined ? new Date(this.clock).toISOString() : new Date(init.createdAt).toISOString(),
      editedAt: init.editedAt === undefined ? null : new Date(init.editedAt).toISOString(),
      url: init.url,
      reblogOf,
      images: init.images ?? [],
      favourites: init.favourites ?? 0,
      replies: init.replies ?? 0,
    });
    return { id };
  }

  /** The next request whose path starts with `pathPrefix` answers this instead. */
  failNext(pathPrefix: string, failure: FakeFailure): void {
    this.failures.push({ prefix: pathPrefix, failure });
  }

  // -------------------------------------------------------------------------

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.base || 'http://127.0.0.1');
    const query = Object.fromEntries(url.searchParams);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}, contentType?: string) => {
      this.requests.push({ path: url.pathname, query, at: Date.now(), status });
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, {
        'content-type': contentType ?? (typeof body === 'string' ? 'text/html; charset=utf-8' : 'application/json; charset=utf-8'),
        ...this.rateLimitHeaders(),
        ...headers,
      });
      res.end(text);
    };

    // Every request counts, as with Mastodon's rack-attack throttles.
    if (Date.now() >= this.windowStart + this.windowMs) {
      this.windowStart = Date.now();
      this.used = 0;
    }
    this.used += 1;
    if (this.used > this.rateLimit) return send(429, { error: 'Too many requests' });
    if (req.method !== 'GET') return send(405, { error: 'Method not allowed' });

    const failureAt = this.failures.findIndex((f) => url.pathname.startsWith(f.prefix));
    if (failureAt !== -1) {
      const [{ failure }] = this.failures.splice(failureAt, 1);
      return send(failure.status, failure.body ?? { error: `HTTP ${failure.status}` }, {}, failure.contentType);
    }

    const path = url.pathname;
    let m: RegExpExecArray | null;
    if (path === '/api/v1/instance') return send(200, this.instanceV1());
    if (path === '/api/v2/instance') return send(200, this.instanceV2());
    if ((m = /^\/api\/v1\/tags\/([^/]+)$/.exec(path))) {
      const name = decodeURIComponent(m[1]).toLowerCase();
      if (!this.statuses.some((s) => s.tags.includes(name))) return send(404, { error: 'Record not found' });
      return send(200, this.tagJson(name));
    }
    if ((m = /^\/api\/v1\/timelines\/tag\/([^/]+)$/.exec(path))) {
      const name = decodeURIComponent(m[1]).toLowerCase();
      return this.sendPage(url, send, (s) => s.tags.includes(name));
    }
    if (path === '/api/v1/accounts/lookup') {
      const acct = (url.searchParams.get('acct') ?? '').replace(/^@/, '').toLowerCase();
      const [username, domain] = acct.split('@');
      const account = !domain || domain === this.host ? this.accounts.get(username) : undefined;
      return account ? send(200, this.accountJson(account)) : send(404, { error: 'Record not found' });
    }
    if ((m = /^\/api\/v1\/accounts\/(\d+)\/statuses$/.exec(path))) {
      const account = [...this.accounts.values()].find((a) => a.id === m?.[1]);
      if (!account) return send(404, { error: 'Record not found' });
      const excludeReblogs = url.searchParams.get('exclude_reblogs') === 'true';
      return this.sendPage(url, send, (s) => s.account === account && !(excludeReblogs && s.reblogOf));
    }
    if (path.startsWith('/api/')) return send(404, { error: 'Record not found' });
    return send(404, "<!DOCTYPE html><html><head><title>The page you are looking for isn't here.</title></head><body>404</body></html>");
  }

  /** One timeline page, with Mastodon's Link header. */
  private sendPage(
    url: URL,
    send: (status: number, body: unknown, headers?: Record<string, string>) => void,
    filter: (s: FakeStatus) => boolean,
  ) {
    const q = url.searchParams;
    const asked = Math.abs(parseInt(q.get('limit') ?? '', 10));
    const limit = Number.isFinite(asked) && asked > 0 ? Math.min(asked, MAX_LIMIT) : DEFAULT_LIMIT;
    const id = (name: string): bigint | undefined => (/^\d+$/.test(q.get(name) ?? '') ? BigInt(q.get(name) as string) : undefined);
    const maxId = id('max_id');
    const sinceId = id('since_id');
    const minId = id('min_id');

    let matching = this.statuses.filter(filter).sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? 1 : -1));
    if (maxId !== undefined) matching = matching.filter((s) => BigInt(s.id) < maxId);
    let page: FakeStatus[];
    if (minId !== undefined) {
      // The page just newer than min_id: the oldest `limit` of the newer ones, newest first.
      const newer = matching.filter((s) => BigInt(s.id) > minId);
      page = newer.slice(Math.max(0, newer.length - limit));
    } else {
      if (sinceId !== undefined) matching = matching.filter((s) => BigInt(s.id) > sinceId);
      page = matching.slice(0, limit);
    }

    const headers: Record<string, string> = {};
    if (page.length > 0) {
      const link = (param: string, value: string) => {
        const next = new URL(url.pathname, this.base);
        for (const [k, v] of q) if (!['max_id', 'min_id', 'since_id'].includes(k)) next.searchParams.set(k, v);
        next.searchParams.set(param, value);
        return next.href;
      };
      headers.link = `<${link('max_id', page[page.length - 1].id)}>; rel="next", <${link('min_id', page[0].id)}>; rel="prev"`;
    }
    send(
      200,
      page.map((s) => this.statusJson(s)),
      headers,
    );
  }

  private rateLimitHeaders(): Record<string, string> {
    return {
      'x-ratelimit-limit': String(this.rateLimit),
      'x-ratelimit-remaining': String(Math.max(0, this.rateLimit - this.used)),
      'x-ratelimit-reset': new Date(this.windowStart + this.windowMs).toISOString(),
    };
  }

  private instanceV1() {
    return {
      uri: this.host,
      title: 'Fake Mastodon',
      short_description: 'A fake Mastodon server for tests',
      description: '',
      email: 'admin@example.com',
      version: '4.3.2',
      urls: { streaming_api: this.base.replace(/^http/, 'ws') },
      stats: { user_count: this.accounts.size, status_count: this.statuses.length, domain_count: 1 },
      thumbnail: null,
      languages: ['en'],
      registrations: false,
      approval_required: false,
      invites_enabled: false,
      configuration: { statuses: { max_characters: 500, max_media_attachments: 4 } },
      contact_account: null,
      rules: [],
    };
  }

  private instanceV2() {
    return {
      domain: this.host,
      title: 'Fake Mastodon',
      version: '4.3.2',
      source_url: 'https://github.com/mastodon/mastodon',
      description: 'A fake Mastodon server for tests',
      usage: { users: { active_month: this.accounts.size } },
      thumbnail: { url: `${this.base}/thumbnail.png` },
      languages: ['en'],
      configuration: { statuses: { max_characters: 500 } },
      registrations: { enabled: false, approval_required: false, message: null },
      contact: { email: 'admin@example.com', account: null },
      rules: [],
    };
  }

  /** Mastodon's tag entity: uses per day (as strings) over the last week, newest day first. */
  private tagJson(name: string) {
    const dayMs = 86_400_000;
    const today = Math.floor(this.clock / dayMs) * dayMs;
    const history = Array.from({ length: 7 }, (_, i) => {
      const day = today - i * dayMs;
      const tagged = this.statuses.filter((s) => s.tags.includes(name) && Math.floor(Date.parse(s.createdAt) / dayMs) * dayMs === day);
      return { day: String(day / 1000), uses: String(tagged.length), accounts: String(new Set(tagged.map((s) => s.account.id)).size) };
    });
    return { name, url: `${this.base}/tags/${encodeURIComponent(name)}`, history };
  }

  private accountJson(a: FakeAccount) {
    return {
      id: a.id,
      username: a.username,
      acct: a.username,
      display_name: a.displayName,
      locked: false,
      bot: false,
      discoverable: true,
      group: false,
      created_at: a.createdAt,
      note: a.note,
      url: `${this.base}/@${a.username}`,
      uri: `${this.base}/users/${a.username}`,
      avatar: `${this.base}/avatars/${a.id}.png`,
      avatar_static: `${this.base}/avatars/${a.id}.png`,
      header: `${this.base}/headers/${a.id}.png`,
      header_static: `${this.base}/headers/${a.id}.png`,
      followers_count: a.followers,
      following_count: 0,
      statuses_count: this.statuses.filter((s) => s.account === a).length,
      last_status_at: null,
      emojis: [],
      fields: [],
    };
  }

  private statusJson(s: FakeStatus): Record<string, unknown> {
    return {
      id: s.id,
      created_at: s.createdAt,
      in_reply_to_id: null,
      in_reply_to_account_id: null,
      sensitive: s.sensitive,
      spoiler_text: s.spoiler,
      visibility: 'public',
      language: 'en',
      uri: `${this.base}/users/${s.account.username}/statuses/${s.id}`,
      url: s.url === undefined ? `${this.base}/@${s.account.username}/${s.id}` : s.url,
      replies_count: s.replies,
      reblogs_count: 0,
      favourites_count: s.favourites,
      edited_at: s.editedAt,
      content: s.content,
      reblog: s.reblogOf ? this.statusJson(s.reblogOf) : null,
      application: null,
      account: this.accountJson(s.account),
      media_attachments: s.images.map((preview, i) => ({
        id: `${s.id}${i}`,
        type: 'image',
        url: preview.replace(/small/, 'original'),
        preview_url: preview,
        remote_url: null,
        description: null,
        blurhash: null,
      })),
      mentions: [],
      tags: s.tags.map((name) => ({ name, url: `${this.base}/tags/${encodeURIComponent(name)}` })),
      emojis: [],
      card: null,
      poll: null,
    };
  }
}
