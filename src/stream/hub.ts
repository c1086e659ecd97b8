// The live stream's hub, one per API process (per ShardRouter): one LISTEN connection per shard
// node; on each notification it reads the node's post_events after the last seq it has seen and
// fans the posts out in memory to the subscribers of their communities. No polling loop, no
// broker: the log is the truth, so a client resumes from its cursor by replaying it, across API
// restarts too. Also prunes the logs on a timer (one process per node at a time).
import { randomBytes } from 'node:crypto';
import { presentPost } from '../../api/presenters.js';
import type { Config } from '../config.js';
import { communityRefsByIds } from '../db/communities.js';
import type { Sql } from '../db/pool.js';
import {
  communityShards,
  latestPostEventSeq,
  postEventBounds,
  postEventsSince,
  postsByKeys,
  prunePostEvents,
  POST_EVENTS_CHANNEL,
  type PostEvent,
} from '../db/post-events.js';
import type { ShardRouter } from '../db/sharding/router.js';
import type { Logger } from '../log.js';
import { streamClients, streamDroppedConsumers } from '../metrics/index.js';
import { encodeStreamCursor, type StreamPosition } from './cursor.js';
import { Subscription, type LiveEvent, type ReplayPage } from './subscription.js';

export type StreamConfig = Pick<Config, 'STREAM_CLIENT_BUFFER' | 'STREAM_RETENTION_SECONDS' | 'STREAM_RETENTION_MAX_EVENTS'>;

export interface StreamHubDeps {
  router: ShardRouter;
  catalog: Sql;
  log: Logger;
  config: StreamConfig;
}

const PAGE = 1000;
const PRUNE_EVERY_MS = 60_000;
/** How often each LISTEN connection proves it still hears (a lost one is set up again and caught up). */
const WATCHDOG_EVERY_MS = 30_000;
const RETRY_READ_MS = 2000;

export class StreamHub {
  private readonly feeds = new Map<string, NodeFeed>();
  /** Per node, the seq of the last event fanned out: where a fresh subscription starts. */
  private readonly position = new Map<string, number>();
  private readonly byCommunity = new Map<number, Set<Subscription>>();
  private readonly subscriptions = new Set<Subscription>();
  /** Community id → ref (never changes for an id). */
  private readonly refs = new Map<number, string>();
  private started?: Promise<void>;
  private stopped = false;
  /** Change listeners (the API's response cache): see onChange. */
  private readonly changeListeners = new Set<ChangeListener>();
  private addingNodes?: Promise<void>;
  private timers: NodeJS.Timeout[] = [];
  readonly token = randomBytes(6).toString('hex');

  constructor(readonly deps: StreamHubDeps) {}

  /** Starts listening on every node (once); nodes that do not answer are retried by the watchdog. */
  start(): Promise<void> {
    this.started ??= (async () => {
      await this.addNodes();
      const prune = setInterval(() => void this.prune(), PRUNE_EVERY_MS);
      const watchdog = setInterval(() => void this.watch(), WATCHDOG_EVERY_MS);
      prune.unref();
      watchdog.unref();
      this.timers.push(prune, watchdog);
    })();
    return this.started;
  }

  /**
   * Calls `listener` with the community id of every change NOTIFY as it arrives (before the log
   * is read), and with 'all' whenever the hub cannot vouch that it heard every change (a LISTEN
   * connection lost and made again, a node that was not listened to). Starts listening, also
   * without stream subscribers. Returns the way to stop.
   */
  onChange(listener: ChangeListener): () => void {
    this.changeListeners.add(listener);
    if (!this.stopped) void this.start().catch(() => {});
    return () => this.changeListeners.delete(listener);
  }

  /** Whether every node the router knows has a LISTEN connection up and caught up (no change can go unheard). */
  vouches(): boolean {
    if (this.stopped || !this.started) return false;
    for (const node of this.deps.router.nodeNames()) {
      if (!this.feeds.get(node)?.listeningNow) {
        // A node added meanwhile (by a shard move to a new node, say): listen to it too.
        if (!this.feeds.has(node)) this.addingNodes ??= this.addNodes().finally(() => (this.addingNodes = undefined));
        return false;
      }
    }
    return true;
  }

  emitChange(ids: readonly number[] | 'all'): void {
    for (const listener of this.changeListeners) {
      try {
        listener(ids);
      } catch (err) {
        this.deps.log.warn({ err: (err as Error).message }, 'stream: a change listener failed');
      }
    }
  }

  get subscriberCount(): number {
    return this.subscriptions.size;
  }

  /**
   * Registers a subscriber before anything is read for it, so live events buffer while a resume
   * replays the log after `cursor`; live events the replay already gave are skipped.
   */
  async subscribe(communityIds: Iterable<number>, opts: { cursor?: StreamPosition; buffer?: number } = {}): Promise<Subscription> {
    if (this.stopped) throw new Error('the stream hub is stopped');
    await this.start();
    const communities = new Set(communityIds);
    const ids = [...communities];
    const sub = new Subscription({
      communities,
      buffer: opts.buffer ?? this.deps.config.STREAM_CLIENT_BUFFER,
      start: new Map(this.position),
      resume: opts.cursor && {
        cursor: opts.cursor,
        nodes: this.deps.router.nodeNames(),
        page: this.replayPage(ids),
      },
      onEnd: (s) => this.forget(s),
    });
    this.subscriptions.add(sub);
    streamClients.inc();
    for (const id of communities) {
      let set = this.byCommunity.get(id);
      if (!set) this.byCommunity.set(id, (set = new Set()));
      set.add(sub);
    }
    return sub;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.emitChange('all');
    for (const t of this.timers) clearInterval(t);
    for (const sub of [...this.subscriptions]) sub.close();
    await Promise.all([...this.feeds.values()].map((f) => f.stop()));
  }

  private forget(sub: Subscription): void {
    if (this.subscriptions.delete(sub)) streamClients.dec();
    for (const id of sub.communities) {
      const set = this.byCommunity.get(id);
      set?.delete(sub);
      if (set?.size === 0) this.byCommunity.delete(id);
    }
  }

  private replayPage(communityIds: number[]): ReplayPage {
    return async (node, afterSeq) => {
      const sql = this.deps.router.pool(node);
      const before = await postEventBounds(sql);
      // A cursor beyond every seq handed out is from another life of this node's log.
      if (afterSeq > before.lastIssued) return 'expired';
      const page = await postEventsSince(sql, afterSeq, { communityIds, limit: PAGE });
      // Pruning deletes a prefix and records it in the same transaction: read after the page, the
      // mark says whether rows after `afterSeq` were gone before the page was read.
      const after = await postEventBounds(sql);
      if (after.prunedThrough > afterSeq) return 'expired';
      await this.findMovedPosts(node, page.events);
      const refs = await this.refsOf(page.events);
      return {
        events: page.events.map((e) => ({
          seq: e.seq,
          data: e.post && JSON.stringify(presentPost(e.post, refs.get(e.communityId) ?? null)),
        })),
        more: page.more,
      };
    };
  }

  /** Fans a node's page out, in seq order; the position moves on even where no one listens. */
  async dispatch(node: string, events: PostEvent[]): Promise<void> {
    await this.findMovedPosts(
      node,
      events.filter((e) => this.byCommunity.has(e.communityId)),
    );
    const wanted = events.filter((e) => e.post && this.byCommunity.has(e.communityId));
    const refs = wanted.length ? await this.refsOf(wanted) : new Map<number, string>();
    for (const e of events) {
      this.position.set(node, e.seq);
      const subs = this.byCommunity.get(e.communityId);
      if (!subs || !e.post) continue;
      const position = new Map(this.position);
      const live: LiveEvent = {
        node,
        seq: e.seq,
        communityId: e.communityId,
        data: JSON.stringify(presentPost(e.post, refs.get(e.communityId) ?? null)),
        position,
        id: encodeStreamCursor(position),
      };
      for (const sub of subs) {
        sub.offer(live);
        if (sub.ended) streamDroppedConsumers.inc(); // dropped as slow: its buffer was full
      }
    }
  }

  /** Events whose post is no longer on their node: read it where its shard is now, if it is elsewhere. */
  private async findMovedPosts(node: string, events: PostEvent[]): Promise<void> {
    const missing = events.filter((e) => !e.post);
    if (missing.length === 0) return;
    try {
      const shards = await communityShards(this.deps.catalog, [...new Set(missing.map((e) => e.communityId))]);
      const byShard = new Map<number, PostEvent[]>();
      for (const e of missing) {
        const shard = shards.get(e.communityId);
        if (shard !== undefined) byShard.set(shard, [...(byShard.get(shard) ?? []), e]);
      }
      for (const [shard, list] of byShard) {
        const at = await this.deps.router.nodeOf(shard);
        if (at === node) continue;
        const rows = await postsByKeys(
          this.deps.router.pool(at),
          list.map((e) => ({ communityId: e.communityId, lemmyId: e.lemmyId })),
        );
        const byKey = new Map(rows.map((r) => [`${r.community_id}:${r.lemmy_id}`, r]));
        for (const e of list) e.post = byKey.get(`${e.communityId}:${e.lemmyId}`);
      }
    } catch (err) {
      this.deps.log.warn({ node, err: (err as Error).message }, 'stream: cannot look up moved posts');
    }
  }

  setPosition(node: string, seq: number): void {
    this.position.set(node, seq);
  }

  private async refsOf(events: PostEvent[]): Promise<Map<number, string>> {
    const missing = [...new Set(events.map((e) => e.communityId))].filter((id) => !this.refs.has(id));
    if (missing.length) {
      try {
        for (const [id, ref] of await communityRefsByIds(this.deps.catalog, missing)) this.refs.set(id, ref);
      } catch (err) {
        // The post still goes out, with communityRef null, rather than held back.
        this.deps.log.warn({ err: (err as Error).message }, 'stream: cannot read community refs');
      }
    }
    return this.refs;
  }

  private async addNodes(): Promise<void> {
    await this.deps.router.refreshNodes().catch(() => {});
    const added = this.deps.router.nodeNames().filter((n) => !this.feeds.has(n));
    for (const node of added) this.feeds.set(node, new NodeFeed(this, node));
    await Promise.all(added.map((n) => this.feeds.get(n)!.start()));
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    await this.addNodes();
    await Promise.all([...this.feeds.values()].map((f) => f.watch()));
  }

  private async prune(): Promise<void> {
    const { STREAM_RETENTION_SECONDS, STREAM_RETENTION_MAX_EVENTS } = this.deps.config;
    for (const node of this.feeds.keys()) {
      if (this.stopped) return;
      try {
        const done = await prunePostEvents(this.deps.router.pool(node), {
          maxAgeSeconds: STREAM_RETENTION_SECONDS,
          maxEvents: STREAM_RETENTION_MAX_EVENTS,
        });
        if (done?.deleted) this.deps.log.debug({ node, ...done }, 'stream: pruned post events');
      } catch (err) {
        this.deps.log.warn({ node, err: (err as Error).message }, 'stream: pruning post events failed');
      }
    }
  }
}

/** One node's LISTEN connection and reader. */
class NodeFeed {
  private ready = false;
  /** A notification came before the start position was read: read once ready. */
  private dirty = false;
  private reading = false;
  private again = false;
  private lastSeq = 0;
  private listening?: { unlisten(): Promise<void> };
  private pingSent = 0;
  /** Listening and caught up: every change from here on is heard (vouches()). */
  get listeningNow(): boolean {
    return this.ready && this.listening !== undefined && !this.stopped;
  }
  private heardPing = true;
  private retry?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly hub: StreamHub,
    private readonly node: string,
  ) {}

  private get sql(): Sql {
    return this.hub.deps.router.pool(this.node);
  }

  private get log(): Logger {
    return this.hub.deps.log;
  }

  async start(): Promise<void> {
    try {
      await this.listen();
      if (!this.ready) {
        this.lastSeq = await latestPostEventSeq(this.sql);
        this.hub.setPosition(this.node, this.lastSeq);
        this.ready = true;
      }
      if (this.dirty) this.poke();
    } catch (err) {
      this.log.warn({ node: this.node, err: (err as Error).message }, 'stream: cannot listen to node (retrying)');
      await this.unlisten();
    }
  }

  private async listen(): Promise<void> {
    // Called again by the driver after every reconnect: catch up on what was missed meanwhile.
    const onListen = () => {
      if (!this.ready) return;
      this.hub.emitChange('all'); // notifications sent while the connection was down are lost
      this.poke();
    };
    this.listening = await this.sql.listen(POST_EVENTS_CHANNEL, (payload) => this.onNotify(payload), onListen);
    this.heardPing = true;
  }

  private async unlisten(): Promise<void> {
    const l = this.listening;
    this.listening = undefined;
    await l?.unlisten().catch(() => {});
  }

  private onNotify(payload: string): void {
    if (payload.startsWith('ping:')) {
      if (payload === `ping:${this.hub.token}:${this.pingSent}`) this.heardPing = true;
      return;
    }
    const id = Number(payload);
    this.hub.emitChange(payload !== '' && Number.isSafeInteger(id) ? [id] : 'all');
    this.poke();
  }

  poke(): void {
    if (this.stopped) return;
    if (!this.ready) {
      this.dirty = true;
      return;
    }
    if (this.reading) {
      this.again = true;
      return;
    }
    void this.drain();
  }

  private async drain(): Promise<void> {
    this.reading = true;
    clearTimeout(this.retry);
    try {
      do {
        this.again = false;
        for (;;) {
          const page = await postEventsSince(this.sql, this.lastSeq, { limit: PAGE });
          if (this.stopped) return;
          await this.hub.dispatch(this.node, page.events);
          if (page.lastSeq !== undefined) this.lastSeq = page.lastSeq;
          if (!page.more) break;
        }
      } while (this.again);
    } catch (err) {
      this.log.warn({ node: this.node, err: (err as Error).message }, 'stream: reading post events failed (retrying)');
      this.retry = setTimeout(() => this.poke(), RETRY_READ_MS);
      this.retry.unref();
    } finally {
      this.reading = false;
    }
  }

  /**
   * The driver listens again after a dropped connection, but gives up if the node is still down
   * then: a ping this connection did not hear back means listening anew (and catching up).
   */
  async watch(): Promise<void> {
    if (this.stopped) return;
    if (!this.ready || !this.listening || !this.heardPing) {
      if (this.ready) this.hub.emitChange('all'); // changes may have gone unheard
      await this.unlisten();
      await this.start();
      if (this.ready) this.poke();
    }
    if (!this.listening) return;
    this.heardPing = false;
    this.pingSent++;
    await this.sql`select pg_notify(${POST_EVENTS_CHANNEL}, ${`ping:${this.hub.token}:${this.pingSent}`})`.catch(() => {});
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.unlisten();
  }
}

/** Community ids of a change, or 'all': anything may have changed unheard. */
export type ChangeListener = (ids: readonly number[] | 'all') => void;

const hubs = new WeakMap<ShardRouter, StreamHub>();

/** The process's hub for these shard nodes (created, not started: it starts with its first subscriber). */
export function streamHub(deps: StreamHubDeps): StreamHub {
  let hub = hubs.get(deps.router);
  if (!hub) hubs.set(deps.router, (hub = new StreamHub(deps)));
  return hub;
}

/** Stops the hub of these nodes, if one was made: subscriptions end, LISTEN connections close. */
export async function stopStreamHub(router: ShardRouter): Promise<void> {
  const hub = hubs.get(router);
  hubs.delete(router);
  await hub?.stop();
}
