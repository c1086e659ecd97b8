// Who is calling, decided once per request (api/rate-limit.ts sets it, anything after may read it
// with callerOf): the admin (`Authorization: Bearer <API_TOKEN>`), a user (`Bearer <that user's
// key>`), or anonymous, known by client IP (RequestInfo.clientIp; IPv6 by its /64, as one host
// usually holds a whole /64). A key's user is looked up by the key's sha256 and kept in a small
// in-memory cache (API_KEY_CACHE_SECONDS, bounded), so a busy client costs no catalog query per
// request; a removed or changed key therefore keeps working at most that long in each process.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context } from 'hono';
import ipaddr from 'ipaddr.js';
import type { Sql } from '../src/db/pool.js';
import { userByKeyHash } from '../src/db/users.js';

export type Caller =
  | { kind: 'admin' }
  | { kind: 'user'; name: string; id: number }
  | {
      kind: 'anonymous';
      /** The client's address (IPv6: its /64 network), "unknown" without a peer (in-process requests). */
      ip: string;
    };

/** What the Authorization header says: nothing we read, a bearer key, or a key no one holds. */
export type Identified = Caller | { kind: 'invalid_key' };

declare module 'hono' {
  interface ContextVariableMap {
    caller: Caller;
  }
}

/** The caller of this request, once api/rate-limit.ts has identified it (anonymous before). */
export function callerOf(c: Context): Caller {
  return c.get('caller') ?? { kind: 'anonymous', ip: 'unknown' };
}

/** A label for logs and metrics: admin, user:<name>, ip:<address>. */
export function callerLabel(caller: Caller): string {
  return caller.kind === 'admin' ? 'admin' : caller.kind === 'user' ? `user:${caller.name}` : `ip:${caller.ip}`;
}

/** The bucket key of an address: IPv4 as is, IPv6 by its /64. */
export function clientKey(ip: string): string {
  if (!ip.includes(':')) return ip;
  try {
    const parts = ipaddr.IPv6.parse(ip).parts;
    return `${parts
      .slice(0, 4)
      .map((p) => p.toString(16))
      .join(':')}::/64`;
  } catch {
    return ip;
  }
}

const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;
const MAX_CACHED_KEYS = 10_000;

interface CachedKey {
  caller: Caller | undefined;
  expiresAt: number;
}

export class CallerDirectory {
  private readonly keys = new Map<string, CachedKey>();
  private readonly tokenHash: Buffer | undefined;

  constructor(
    private readonly catalog: Sql,
    apiToken: string | undefined,
    private readonly ttlMs: number,
  ) {
    this.tokenHash = apiToken === undefined ? undefined : createHash('sha256').update(apiToken, 'utf8').digest();
  }

  /**
   * The caller by the Authorization header. A header that is not `Bearer <token68>` (none, Basic,
   * malformed) is anonymous: the write checks further on (api/auth.ts, the user routes) answer
   * those as before. `beforeLookup` runs before a catalog query for a key not cached (the rate
   * limiter charges it to the client's address, so spraying keys costs what anonymous requests do);
   * it may throw to refuse.
   */
  async identify(authorization: string | undefined, ip: () => string, beforeLookup?: () => void): Promise<Identified> {
    const m = authorization === undefined ? null : BEARER.exec(authorization);
    if (!m) return { kind: 'anonymous', ip: clientKey(ip()) };
    const hash = createHash('sha256').update(m[1], 'utf8').digest();
    if (this.tokenHash && timingSafeEqual(hash, this.tokenHash)) return { kind: 'admin' };
    const hex = hash.toString('hex');
    const now = Date.now();
    const cached = this.keys.get(hex);
    if (cached && cached.expiresAt > now) return cached.caller ?? { kind: 'invalid_key' };
    beforeLookup?.();
    const row = await userByKeyHash(this.catalog, hex);
    const caller: Caller | undefined = row ? { kind: 'user', name: row.name, id: Number(row.id) } : undefined;
    if (this.ttlMs > 0) {
      if (this.keys.size >= MAX_CACHED_KEYS) this.evict(now);
      this.keys.delete(hex);
      this.keys.set(hex, { caller, expiresAt: now + this.ttlMs });
    }
    return caller ?? { kind: 'invalid_key' };
  }

  /** Expired entries go; if that frees nothing, the oldest tenth (insertion order). */
  private evict(now: number): void {
    for (const [k, v] of this.keys) if (v.expiresAt <= now) this.keys.delete(k);
    if (this.keys.size < MAX_CACHED_KEYS) return;
    let n = Math.ceil(MAX_CACHED_KEYS / 10);
    for (const k of this.keys.keys()) {
      if (n-- <= 0) break;
      this.keys.delete(k);
    }
  }
}
