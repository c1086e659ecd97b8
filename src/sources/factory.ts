// The sources as the worker and the API use them: one HTTP transport configured from the
// environment and tied to the per-host request budget in the catalog. Kept apart from the worker
// runtime so the API process does not load the Temporal worker just to check a source.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.js';
import type { Sql } from '../db/pool.js';
import { BudgetExhaustedError, InstanceBudget } from '../db/instance-budget.js';
import { instanceBudgetRefusals, instanceBudgetWait, instanceRateLimited } from '../metrics/index.js';
import { timeLeft } from '../net/deadline.js';
import { SourceHttp } from './http.js';
import { createSources, type Sources } from './registry.js';

export function createSourceHttp(config: Config, catalog: Sql): SourceHttp {
  const budget = new InstanceBudget(catalog, {
    requestsPerSecond: config.INSTANCE_REQUESTS_PER_SECOND,
    maxWaitMs: config.INSTANCE_BUDGET_MAX_WAIT_SECONDS * 1000,
  });
  return new SourceHttp({
    userAgent: config.LEMMY_USER_AGENT,
    connectTimeoutMs: config.HTTP_CONNECT_TIMEOUT_MS,
    timeoutMs: config.HTTP_TIMEOUT_MS,
    maxBytes: config.HTTP_MAX_BYTES,
    allowPrivate: config.ALLOW_PRIVATE_INSTANCES,
    // The caller's signal ends the wait (an activity cancelled or out of time); an activity
    // heartbeats on its own while it waits. A caller with a deadline takes no slot it could not wait for.
    beforeRequest: async (host, signal) => {
      const waitMs = await budget.reserve(host, timeLeft(signal)).catch((err: unknown) => {
        if (err instanceof BudgetExhaustedError) instanceBudgetRefusals.inc({ host });
        throw err;
      });
      instanceBudgetWait.observe({ host }, waitMs / 1000);
      if (waitMs > 0) await sleep(waitMs, undefined, signal ? { signal } : {});
    },
    onRateLimited: (host, ms) => {
      instanceRateLimited.inc({ host });
      return budget.pushBack(host, ms);
    },
    onQuota: (host, quota) => budget.observeQuota(host, quota),
  });
}

export interface SourceClients extends Sources {
  http: SourceHttp;
  close(): Promise<void>;
}

export function createSourceClients(config: Config, catalog: Sql): SourceClients {
  const http = createSourceHttp(config, catalog);
  return { ...createSources(http), http, close: () => http.close() };
}
