// The per-instance request budget, shared by every worker through the catalog: each request
// reserves the instance's next free slot (one every 1/rate seconds) with one atomic upsert, then
// waits for it. Slots never overlap, so all workers together stay within the rate, and a rate
// limit answer pushes the instance's next slot out for everyone. A host's override
// (instance_budget_overrides, set from the admin page) is read by that same statement, so every
// worker uses a new rate from its next request on, with no cache and no polling.
import type { Sql } from './pool.js';

/** The slowest and fastest rate a host may be given (as INSTANCE_REQUESTS_PER_SECOND). */
export const MIN_REQUESTS_PER_SECOND = 0.01;
export const MAX_REQUESTS_PER_SECOND = 1000;

export class BudgetExhaustedError extends Error {
  constructor(
    readonly host: string,
    readonly retryAfterMs: number,
  ) {
    super(`request budget for ${host} is booked for the next ${Math.round(retryAfterMs / 1000)} s; trying later`);
    this.name = 'BudgetExhaustedError';
  }
}

export class InstanceBudget {
  constructor(
    private readonly catalog: Sql,
    private readonly opts: { requestsPerSecond: number; maxWaitMs: number },
  ) {}

  /**
   * Reserves a slot and returns how long to wait for it. Refuses (BudgetExhaustedError), taking
   * no slot, when the instance is booked further ahead than maxWaitMs, or than `timeLeftMs` (the
   * time its caller has left), so a sync neither holds a worker slot waiting nor books a slot it
   * would leave unused.
   */
  async reserve(host: string, timeLeftMs?: number): Promise<number> {
    const maxWaitMs = Math.min(this.opts.maxWaitMs, timeLeftMs ?? Number.POSITIVE_INFINITY);
    // The slot spacing (ms): the host's override when it has one, else the default rate.
    const spacing = this.catalog`(1000.0 / coalesce(
      (select o.requests_per_second from instance_budget_overrides o where o.host = ${host}), ${this.opts.requestsPerSecond}::float8))`;
    // One statement, one round trip (every source request passes here). Its own transaction needs
    // no WAL flush: set_config(…, true) lasts until that transaction's commit, and losing the last
    // few milliseconds of reservations in a crash only lets a handful of requests through early.
    const [row] = await this.catalog<{ wait_ms: number }[]>`
      insert into instance_budget as b (host, next_slot)
      select ${host}, clock_timestamp() + ${spacing} * interval '1 millisecond'
      from (select set_config('synchronous_commit', 'off', true)) as durability
      on conflict (host) do update
        set next_slot = greatest(b.next_slot, clock_timestamp()) + ${spacing} * interval '1 millisecond'
        where greatest(b.next_slot, clock_timestamp()) <= clock_timestamp() + ${maxWaitMs} * interval '1 millisecond'
      returning greatest(0, extract(epoch from (b.next_slot - ${spacing} * interval '1 millisecond' - clock_timestamp())) * 1000)::float8 as wait_ms`;
    if (row) return row.wait_ms;
    const [booked] = await this.catalog<{ ahead_ms: number }[]>`
      select extract(epoch from (next_slot - clock_timestamp())) * 1000 as ahead_ms from instance_budget where host = ${host}`;
    throw new BudgetExhaustedError(host, Math.max(1000, (booked?.ahead_ms ?? 0) - maxWaitMs));
  }

  /**
   * A host told us what is left of its quota (X-RateLimit-*): once less than half is left, spread
   * what remains evenly until the reset, for every worker. Writes nothing while there is plenty.
   */
  async observeQuota(host: string, quota: { limit?: number; remaining: number; resetInMs: number }): Promise<void> {
    const plenty = quota.limit !== undefined ? quota.remaining >= quota.limit / 2 : quota.remaining > 50;
    if (plenty) return;
    await this.pushBack(host, quota.resetInMs / (quota.remaining + 1));
  }

  /** The instance said "slow down": nobody sends to it before `delayMs` from now. */
  async pushBack(host: string, delayMs: number): Promise<void> {
    await this.catalog`
      insert into instance_budget as b (host, next_slot) values (${host}, clock_timestamp() + ${delayMs} * interval '1 millisecond')
      on conflict (host) do update set next_slot = greatest(b.next_slot, excluded.next_slot)`;
  }
}

/** The host answered (`ok`) or could not be reached; see connectivityLost. */
export async function recordHostOutcome(catalog: Sql, host: string, ok: boolean): Promise<void> {
  await catalog`
    insert into instance_budget (host, next_slot, last_ok_at, last_failure_at)
    values (${host}, now(), ${ok ? catalog`now()` : null}, ${ok ? null : catalog`now()`})
    on conflict (host) do update set
      ${ok ? catalog`last_ok_at = now()` : catalog`last_failure_at = now()`}`;
}

/**
 * True when, in the last `windowSeconds`, no host answered and at least two could not be reached:
 * every source failing at once is our own connectivity, not theirs.
 */
export async function connectivityLost(catalog: Sql, windowSeconds: number): Promise<boolean> {
  const [row] = await catalog<{ ok: number; failed: number }[]>`
    select count(*) filter (where last_ok_at > now() - ${windowSeconds} * interval '1 second')::int as ok,
           count(*) filter (where last_failure_at > now() - ${windowSeconds} * interval '1 second')::int as failed
    from instance_budget`;
  return row.ok === 0 && row.failed >= 2;
}

export interface InstanceBudgetRow {
  host: string;
  /** The host's own rate, or null: INSTANCE_REQUESTS_PER_SECOND applies. */
  override: number | null;
  overrideUpdatedAt: Date | null;
  /** Tracked sources on this host. */
  communities: number;
  /** The next free request slot (null when never asked). */
  nextSlot: Date | null;
  lastOkAt: Date | null;
  lastFailureAt: Date | null;
}

/** Every host that has a tracked source, a budget row or an override, by host. */
export async function instanceBudgets(catalog: Sql): Promise<InstanceBudgetRow[]> {
  return catalog<InstanceBudgetRow[]>`
    with hosts as (
      select host from communities union select host from instance_budget union select host from instance_budget_overrides
    )
    select h.host, o.requests_per_second as override, o.updated_at as "overrideUpdatedAt",
      (select count(*)::int from communities c where c.host = h.host) as communities,
      b.next_slot as "nextSlot", b.last_ok_at as "lastOkAt", b.last_failure_at as "lastFailureAt"
    from hosts h
    left join instance_budget_overrides o on o.host = h.host
    left join instance_budget b on b.host = h.host
    order by h.host`;
}

/** Sets (or replaces) a host's own rate; every worker's next reservation for the host uses it. */
export async function setInstanceBudgetOverride(catalog: Sql, host: string, requestsPerSecond: number): Promise<void> {
  await catalog`
    insert into instance_budget_overrides (host, requests_per_second) values (${host}, ${requestsPerSecond})
    on conflict (host) do update set requests_per_second = excluded.requests_per_second, updated_at = now()`;
  // Slots already booked at the old rate stand; a slower rate applies from the next reservation.
}

/** Drops a host's override (the default rate applies again). False when it had none. */
export async function deleteInstanceBudgetOverride(catalog: Sql, host: string): Promise<boolean> {
  const rows = await catalog`delete from instance_budget_overrides where host = ${host} returning host`;
  return rows.length > 0;
}
