// The per-instance request budget, shared by every worker through the catalog: each request
// reserves the instance's next free slot (one every 1/rate seconds) with one atomic upsert, then
// waits for it. Slots never overlap, so all workers together stay within the rate, and a rate
// limit answer pushes the instance's next slot out for everyone.
import type { Sql } from './pool.js';

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
   * Reserves a slot and returns how long to wait for it. Refuses (BudgetExhaustedError) when the
   * instance is booked further ahead than maxWaitMs, so a sync does not hold a worker slot waiting.
   */
  async reserve(host: string): Promise<number> {
    const spacingMs = 1000 / this.opts.requestsPerSecond;
    // Every Lemmy request passes here: no need to wait for a WAL flush, since losing the last few
    // milliseconds of reservations in a crash only lets a handful of requests through early.
    const [row] = await this.catalog.begin(async (tx) => {
      await tx`set local synchronous_commit = off`;
      return tx<{ wait_ms: number }[]>`
      insert into instance_budget as b (host, next_slot)
      values (${host}, clock_timestamp() + ${spacingMs} * interval '1 millisecond')
      on conflict (host) do update
        set next_slot = greatest(b.next_slot, clock_timestamp()) + ${spacingMs} * interval '1 millisecond'
        where greatest(b.next_slot, clock_timestamp()) <= clock_timestamp() + ${this.opts.maxWaitMs} * interval '1 millisecond'
      returning greatest(0, extract(epoch from (b.next_slot - ${spacingMs} * interval '1 millisecond' - clock_timestamp())) * 1000)::float8 as wait_ms`;
    });
    if (row) return row.wait_ms;
    const [booked] = await this.catalog<{ ahead_ms: number }[]>`
      select extract(epoch from (next_slot - clock_timestamp())) * 1000 as ahead_ms from instance_budget where host = ${host}`;
    throw new BudgetExhaustedError(host, Math.max(1000, (booked?.ahead_ms ?? 0) - this.opts.maxWaitMs));
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
