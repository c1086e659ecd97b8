// One stream client: the communities it wants, a bounded buffer of live events the hub hands it
// (never blocking the hub: one too many and the client is dropped as slow), the replay of what it
// missed when it resumes from a cursor, and the cursor (event id) of everything it is given.
import { encodeStreamCursor, type StreamPosition } from './cursor.js';

/** A post from the hub's fan-out: shared by every subscriber of its community. */
export interface LiveEvent {
  node: string;
  seq: number;
  communityId: number;
  /** The post as the REST API shows it, serialized once. */
  data: string;
  /** The hub's position (every node) after this event. */
  position: StreamPosition;
  /** encodeStreamCursor(position): the id for every subscriber not ahead of the hub. */
  id: string;
}

export type StreamItem =
  { type: 'post'; id: string; data: string } | { type: 'reset'; reason: 'expired' } | { type: 'reset'; reason: 'slow'; after: string };

export interface ReplayedEvent {
  seq: number;
  /** Undefined when the post is gone: the event only moves the replay on. */
  data: string | undefined;
}

/** One page of a node's log after `afterSeq` for the subscriber's communities; 'expired' if pruned past it. */
export type ReplayPage = (node: string, afterSeq: number) => Promise<{ events: ReplayedEvent[]; more: boolean } | 'expired'>;

export interface SubscriptionOptions {
  communities: ReadonlySet<number>;
  /** Live events held for a client that has not taken them; one more and it is dropped as slow. */
  buffer: number;
  /** The hub's position when the subscription was registered: a fresh subscription starts there. */
  start: StreamPosition;
  /** A resume: the position of the last event the client got, and how to read what came after it. */
  resume?: { cursor: StreamPosition; nodes: readonly string[]; page: ReplayPage };
  /** Called once when the subscription ends for any reason (the hub forgets it). */
  onEnd: (sub: Subscription) => void;
}

type Ending = 'slow' | 'expired' | 'closed';

export class Subscription {
  readonly communities: ReadonlySet<number>;
  private readonly limit: number;
  private readonly onEnd: (sub: Subscription) => void;
  private queue: LiveEvent[] = [];
  private head = 0;
  private wake?: () => void;
  private ending?: Ending;
  private endingTaken = false;
  /**
   * Per node, the seq of the last event given that the hub's live position may not have passed
   * yet (from the resume cursor and the replay): live events up to it were given already, and ids
   * must not go below it. Entries go once the hub is past them, then the hub's ids are used as is.
   */
  private readonly ahead: Map<string, number>;
  private replay?: {
    nodes: readonly string[];
    index: number;
    /** Where the next page of nodes[index] starts (undefined: at the cursor). */
    afterSeq: number | undefined;
    page: ReplayPage;
    pending: Array<ReplayedEvent & { node: string }>;
    taken: number;
  };
  private lastId: string;

  constructor(opts: SubscriptionOptions) {
    this.communities = opts.communities;
    this.limit = Math.max(1, opts.buffer);
    this.onEnd = opts.onEnd;
    this.ahead = new Map(opts.resume?.cursor ?? []);
    this.lastId = encodeStreamCursor(opts.resume?.cursor ?? opts.start);
    if (opts.resume)
      this.replay = { nodes: opts.resume.nodes, index: 0, afterSeq: undefined, page: opts.resume.page, pending: [], taken: 0 };
  }

  /** The cursor of the last event given (before any: where the subscription starts). */
  get cursor(): string {
    return this.lastId;
  }

  get ended(): boolean {
    return this.ending !== undefined;
  }

  /** From the hub's fan-out: O(1), never waits. A full buffer ends the subscription as slow. */
  offer(event: LiveEvent): void {
    if (this.ending) return;
    if (this.queue.length - this.head >= this.limit) {
      this.end('slow');
      return;
    }
    this.queue.push(event);
    this.wake?.();
  }

  /** The client went away or the server stops: no reset message. */
  close(): void {
    this.end('closed');
  }

  /**
   * The next thing to send: the replay first (read page by page as the client takes it), then
   * the live events. A reset is the last item; undefined once the subscription has ended.
   */
  async next(): Promise<StreamItem | undefined> {
    for (;;) {
      if (this.ending) return this.takeEnding();
      if (this.replay) {
        const item = await this.nextReplayed();
        if (item) return item;
        continue;
      }
      const event = this.shift();
      if (event) {
        const item = this.fromLive(event);
        if (item) return item;
        continue;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  /**
   * Live posts already queued, without waiting (at most `max`): the caller sends them with the one
   * `next()` gave, in one write. Empty while replaying or ending (next() handles those).
   */
  takeReady(max: number): Array<Extract<StreamItem, { type: 'post' }>> {
    const out: Array<Extract<StreamItem, { type: 'post' }>> = [];
    if (this.ending || this.replay) return out;
    while (out.length < max) {
      const event = this.shift();
      if (!event) break;
      const item = this.fromLive(event);
      if (item?.type === 'post') out.push(item);
    }
    return out;
  }

  private end(ending: Ending): void {
    if (this.ending) return;
    this.ending = ending;
    this.queue = [];
    this.head = 0;
    this.replay = undefined;
    this.onEnd(this);
    this.wake?.();
  }

  private takeEnding(): StreamItem | undefined {
    if (this.endingTaken) return undefined;
    this.endingTaken = true;
    if (this.ending === 'slow') return { type: 'reset', reason: 'slow', after: this.lastId };
    if (this.ending === 'expired') return { type: 'reset', reason: 'expired' };
    return undefined;
  }

  private shift(): LiveEvent | undefined {
    if (this.head >= this.queue.length) return undefined;
    const event = this.queue[this.head++];
    if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return event;
  }

  private async nextReplayed(): Promise<StreamItem | undefined> {
    const r = this.replay!;
    if (r.taken < r.pending.length) {
      const event = r.pending[r.taken++];
      this.ahead.set(event.node, event.seq);
      if (event.data === undefined) return undefined;
      this.lastId = encodeStreamCursor(this.ahead);
      return { type: 'post', id: this.lastId, data: event.data };
    }
    if (r.index >= r.nodes.length) {
      this.replay = undefined;
      return undefined;
    }
    const node = r.nodes[r.index];
    const afterSeq = r.afterSeq ?? this.ahead.get(node) ?? 0;
    const page = await r.page(node, afterSeq);
    if (this.ending) return undefined;
    if (page === 'expired') {
      this.end('expired');
      return undefined;
    }
    r.pending = page.events.map((e) => ({ ...e, node }));
    r.taken = 0;
    if (page.more) {
      r.afterSeq = page.events.at(-1)?.seq ?? afterSeq;
    } else {
      r.index++;
      r.afterSeq = undefined;
    }
    return undefined;
  }

  private fromLive(event: LiveEvent): Extract<StreamItem, { type: 'post' }> | undefined {
    const given = this.ahead.get(event.node);
    if (given !== undefined && event.seq <= given) return undefined;
    for (const [node, seq] of this.ahead) if ((event.position.get(node) ?? -1) >= seq) this.ahead.delete(node);
    if (this.ahead.size === 0) {
      this.lastId = event.id;
    } else {
      const merged = new Map(event.position);
      for (const [node, seq] of this.ahead) merged.set(node, Math.max(seq, merged.get(node) ?? 0));
      this.lastId = encodeStreamCursor(merged);
    }
    return { type: 'post', id: this.lastId, data: event.data };
  }
}
