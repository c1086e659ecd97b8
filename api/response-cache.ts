// The response cache of posts pages (GET /api/communities/:ref/posts and GET /api/posts): the
// serialized JSON and its ETag, in memory, bounded by bytes (least recently used go first). No
// TTL: a page stays until a change could alter it, told by the same change events as the live
// stream (StreamHub.onChange: the shard nodes' post_events NOTIFY, sent on the commit of every
// post a sync inserts or changes) and by the catalog (a community removed, the shard map changed:
// catalog migration 006). A community's change drops its pages and every /api/posts page.
//
// Staleness, thought through:
//  - A page being filled while a change arrives is not stored (a clock read before the fill,
//    compared with the community's last change when storing): no old page outlives the event.
//  - Between a commit and its NOTIFY reaching this process (normally well under a millisecond on
//    a healthy connection) the old page may still be served: the one window left, and the same
//    one the live stream has.
//  - A LISTEN connection lost: the driver listens again and the hub reports 'all': everything is
//    dropped. While any node (or the catalog) is not listened to, nothing is served from or stored
//    in the cache (StreamHub.vouches()), so a node added at run time (a shard move onto it) only
//    gets cached pages once its changes are heard.
//  - A community removed (on any replica): the catalog's NOTIFY drops its pages and its ref; a
//    community added again under the same ref has a new id, so nothing of the old one matches.
import type { Sql } from '../src/db/pool.js';
import { randomBytes } from 'node:crypto';
import { listenCommunityChanges, pingCommunityChanges, type CommunityChange } from '../src/db/community-changes.js';
import type { CommunityRow } from '../src/db/communities.js';
import type { ShardRouter } from '../src/db/sharding/router.js';
import type { StreamHub } from '../src/stream/hub.js';
import type { Logger } from '../src/log.js';

/** A community as a posts page needs it: its identity never changes while it is tracked (a re-add has a new id). */
export type CommunityIdentity = Pick<CommunityRow, 'id' | 'shard' | 'ref'>;

export interface CachedPage {
  body: Uint8Array;
  etag: string;
  contentType: string;
  /** Undefined for cross-community pages (/api/posts). */
  communityId: number | undefined;
}

interface Entry extends CachedPage {
  key: string;
  bytes: number;
}

/** Per-entry overhead on top of the body (key, maps), for the byte budget. */
const ENTRY_OVERHEAD = 200;
/** Beyond this many remembered change times, they are forgotten and counted as a flush. */
const MAX_CHANGE_MARKS = 100_000;
/** Community refs (as written in paths) → identity; beyond this many the map starts again. */
const MAX_REFS = 100_000;
/** Keys of deeper pages asked for once (they are stored when asked for again); beyond this many, forgotten. */
const MAX_SEEN = 50_000;
/** How often the catalog LISTEN proves it still hears (a ping it sends itself). */
const WATCHDOG_MS = 30_000;

export class ResponseCache {
  private readonly entries = new Map<string, Entry>();
  private readonly byCommunity = new Map<number, Set<string>>();
  private readonly crossKeys = new Set<string>();
  private readonly refs = new Map<string, CommunityIdentity>();
  private seen = new Set<string>();
  private bytes = 0;
  /** Ticks on every change; a fill remembers it and stores only if nothing it covers changed since. */
  private clock = 0;
  private flushedAt = 0;
  private anyChangeAt = 0;
  private readonly changedAt = new Map<number, number>();
  private catalogListening = false;
  private started = false;
  private stopHub?: () => void;
  private watchdog?: NodeJS.Timeout;
  private listening?: { unlisten(): Promise<void> };
  private readonly token = randomBytes(6).toString('hex');
  private pingSent = 0;
  private heardPing = true;
  private closed = false;
  hits = 0;
  misses = 0;

  constructor(
    private readonly deps: { hub: StreamHub; catalog: Sql; log: Logger; router?: ShardRouter },
    readonly maxBytes: number,
  ) {}

  /** Starts listening (hub and catalog), once; until both listen, the cache is bypassed. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.stopHub = this.deps.hub.onChange((ids) => (ids === 'all' ? this.flush() : this.changed(ids)));
    void this.listenCatalog();
  }

  private async listenCatalog(): Promise<void> {
    this.watchdog ??= setInterval(() => void this.watchCatalog(), WATCHDOG_MS).unref();
    if (this.closed) return;
    try {
      this.listening = await listenCommunityChanges(
        this.deps.catalog,
        (change: CommunityChange) => {
          if ('ping' in change) {
            if (change.ping === `ping:${this.token}:${this.pingSent}`) this.heardPing = true;
          } else if ('removed' in change) this.removed(change.removed);
          else this.flush();
        },
        () => {
          // After every (re)connect: what was sent meanwhile is lost.
          this.flush();
          this.setCatalogListening(true);
        },
      );
      this.heardPing = true;
    } catch (err) {
      this.setCatalogListening(false);
      this.deps.log.warn({ err: (err as Error).message }, 'response cache: cannot listen to the catalog (retrying; cache bypassed)');
    }
  }

  /** A catalog LISTEN that did not hear its last ping has lost its connection: bypass, flush, listen again. */
  private async watchCatalog(): Promise<void> {
    if (this.closed) return;
    if (!this.listening || !this.heardPing) {
      this.setCatalogListening(false);
      this.flush();
      const old = this.listening;
      this.listening = undefined;
      await old?.unlisten().catch(() => {});
      await this.listenCatalog();
      if (!this.listening) return;
    }
    this.heardPing = false;
    this.pingSent++;
    await pingCommunityChanges(this.deps.catalog, `ping:${this.token}:${this.pingSent}`).catch(() => {});
  }

  /**
   * While the catalog is listened to, every shard map change is heard, so the router may route
   * reads by a copy of the map kept in memory (no catalog round trip per page); otherwise not.
   */
  private setCatalogListening(on: boolean): void {
    this.catalogListening = on;
    this.deps.router?.cacheShardMap(on && !this.closed);
  }

  /** Whether pages may be served from or stored in the cache now (every change would be heard). */
  usable(): boolean {
    if (!this.started) this.start();
    return this.catalogListening && !this.closed && this.deps.hub.vouches();
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.bytes };
  }

  /** The community id of a `:ref` as written in a path, if known (forgotten when it is removed). */
  refId(ref: string): number | undefined {
    return this.refs.get(ref)?.id;
  }

  /** What a posts page needs of the community of a `:ref` (id, shard, canonical ref), if known. */
  identity(ref: string): CommunityIdentity | undefined {
    return this.refs.get(ref);
  }

  /** Remembers `ref` → `id`, looked up since `since` (not if the community changed meanwhile). */
  rememberRef(ref: string, community: CommunityIdentity, since: number): void {
    if (!this.fresh(community.id, since)) return;
    if (this.refs.size >= MAX_REFS) this.refs.clear();
    this.refs.set(ref, { id: community.id, shard: community.shard, ref: community.ref });
  }

  get(key: string): CachedPage | undefined {
    const e = this.entries.get(key);
    if (!e) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Most recently used last.
    this.entries.delete(key);
    this.entries.set(key, e);
    return e;
  }

  /** The clock to pass to put() for a fill starting now. */
  now(): number {
    return this.clock;
  }

  /**
   * Stores a page filled since `since`, unless something it shows changed meanwhile. A page that
   * is not a first page (`once`: a keyset page deep in a list, most of them read once) is only
   * stored the second time it is asked for, so a crawl through old pages does not push out the
   * pages everyone reads.
   */
  put(key: string, filled: Omit<CachedPage, 'body'> & { body: string }, since: number, opts: { admitOnSecond?: boolean } = {}): boolean {
    if (!this.fresh(filled.communityId, since)) return false;
    if (opts.admitOnSecond && !this.seen.delete(key)) {
      if (this.seen.size >= MAX_SEEN) this.seen = new Set();
      this.seen.add(key);
      return false;
    }
    // Text is encoded only once admitted: most deep pages are read once and never stored.
    const page: CachedPage = { ...filled, body: Buffer.from(filled.body) };
    const bytes = page.body.byteLength + key.length + ENTRY_OVERHEAD;
    if (bytes > this.maxBytes / 4) return false;
    this.remove(key);
    while (this.bytes + bytes > this.maxBytes && this.entries.size) this.remove(this.entries.keys().next().value!);
    const entry: Entry = { ...page, key, bytes };
    this.entries.set(key, entry);
    this.bytes += bytes;
    if (page.communityId === undefined) this.crossKeys.add(key);
    else {
      let keys = this.byCommunity.get(page.communityId);
      if (!keys) this.byCommunity.set(page.communityId, (keys = new Set()));
      keys.add(key);
    }
    return true;
  }

  private fresh(communityId: number | undefined, since: number): boolean {
    if (this.flushedAt > since) return false;
    if (communityId === undefined) return this.anyChangeAt <= since;
    return (this.changedAt.get(communityId) ?? 0) <= since;
  }

  /** Posts of these communities changed (or they were removed): their pages and every cross page go. */
  changed(ids: readonly number[]): void {
    this.clock++;
    this.anyChangeAt = this.clock;
    if (this.changedAt.size + ids.length > MAX_CHANGE_MARKS) {
      this.changedAt.clear();
      this.flushedAt = this.clock;
    }
    for (const id of ids) {
      this.changedAt.set(id, this.clock);
      for (const key of this.byCommunity.get(id) ?? []) this.remove(key);
    }
    for (const key of [...this.crossKeys]) this.remove(key);
  }

  /** A community removed: as changed, and its refs are forgotten (added again, it has a new id). */
  removed(id: number): void {
    this.changed([id]);
    for (const [ref, known] of this.refs) if (known.id === id) this.refs.delete(ref);
  }

  /** Anything may have changed unheard: everything goes. */
  flush(): void {
    this.deps.router?.forgetShardMap();
    this.clock++;
    this.flushedAt = this.anyChangeAt = this.clock;
    this.entries.clear();
    this.byCommunity.clear();
    this.crossKeys.clear();
    this.changedAt.clear();
    this.refs.clear();
    this.bytes = 0;
  }

  private remove(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.bytes -= e.bytes;
    if (e.communityId === undefined) this.crossKeys.delete(key);
    else {
      const keys = this.byCommunity.get(e.communityId);
      keys?.delete(key);
      if (keys?.size === 0) this.byCommunity.delete(e.communityId);
    }
  }

  close(): void {
    this.closed = true;
    this.deps.router?.cacheShardMap(false);
    clearInterval(this.watchdog);
    this.stopHub?.();
    void this.listening?.unlisten().catch(() => {});
    this.flush();
  }
}
