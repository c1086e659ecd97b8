// Token buckets in memory, one per key (a user's key, a client address), for api/rate-limit.ts.
// Each bucket holds up to `capacity` tokens and gains `perSecond`; a request takes one. Only
// buckets that are not full are kept (a full one is the same as none): an idle bucket is gone
// once it has refilled, found by a sweep every minute, and at most `maxBuckets` are kept (the
// least recently used go first), so memory stays bounded whatever the number of clients.
//
// Not a library: hono-rate-limiter (the Hono one) counts fixed windows and sends the older
// draft-6/7 headers; a token bucket is the few lines below, and the IETF structured-field headers
// (RateLimit-Policy / RateLimit) are written by rate-limit.ts.

export interface BucketPolicy {
  /** Name in the RateLimit-Policy / RateLimit headers. */
  name: string;
  capacity: number;
  perSecond: number;
}

export interface Take {
  allowed: boolean;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Seconds until the bucket is full again. */
  resetSeconds: number;
  /** When refused: seconds until one token is there. */
  retryAfterSeconds: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly maxBuckets = 100_000,
    sweepEveryMs = 60_000,
  ) {
    this.timer = setInterval(() => this.sweep(Date.now()), sweepEveryMs);
    this.timer.unref();
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Whether `key`'s bucket has a token now, without taking it. */
  has(key: string, policy: BucketPolicy, now = Date.now()): boolean {
    const b = this.buckets.get(key);
    return !b || b.tokens + ((now - b.at) / 1000) * policy.perSecond >= 1;
  }

  /** Takes one token from `key`'s bucket (a new key starts full). */
  take(key: string, policy: BucketPolicy, now = Date.now()): Take {
    const b = this.buckets.get(key);
    let tokens = b ? Math.min(policy.capacity, b.tokens + ((now - b.at) / 1000) * policy.perSecond) : policy.capacity;
    const allowed = tokens >= 1;
    if (allowed) tokens -= 1;
    // Re-inserted, so the map's order is least recently used first.
    if (b) this.buckets.delete(key);
    else if (this.buckets.size >= this.maxBuckets) this.evict(now);
    this.buckets.set(key, { tokens, at: now });
    return {
      allowed,
      remaining: Math.floor(tokens),
      resetSeconds: Math.ceil((policy.capacity - tokens) / policy.perSecond),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / policy.perSecond)),
    };
  }

  /**
   * How long an untouched bucket may still be below full: the slowest policy's refill time from
   * empty (set by rate-limit.ts). Buckets untouched longer are full, and go.
   */
  idleMs = 60_000;

  sweep(now: number): void {
    for (const [key, b] of this.buckets) if (now - b.at >= this.idleMs) this.buckets.delete(key);
  }

  private evict(now: number): void {
    this.sweep(now);
    // Still full of active clients: the least recently used tenth goes (they start full again).
    let n = Math.ceil(this.maxBuckets / 10);
    for (const key of this.buckets.keys()) {
      if (n-- <= 0 || this.buckets.size < this.maxBuckets) break;
      this.buckets.delete(key);
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
