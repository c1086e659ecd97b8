// Prometheus metrics (prom-client): one registry per process, the API's and the worker's series
// side by side (a process only moves the ones it uses). Names carry the `lemmy_fetcher_` prefix
// and their unit; labels have bounded values (route patterns, not paths; hosts of tracked
// instances; node names; error types). Default process metrics (`process_*`, `nodejs_*`) too.
// Nothing here imports the rest of the code base, so any module may record into it.
import ipaddr from 'ipaddr.js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

/** Seconds; from 1 ms (a cached API answer) to 10 s. */
const FAST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds; syncs and waits, from 10 ms to 10 minutes. */
const SLOW_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export const httpRequestDuration = new Histogram({
  name: 'lemmy_fetcher_http_request_duration_seconds',
  help: 'Time to answer an HTTP request of the API or website, by method, route pattern and status',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: FAST_BUCKETS,
  registers: [registry],
});

export const syncsTotal = new Counter({
  name: 'lemmy_fetcher_syncs_total',
  help: 'Sync attempts by source kind, outcome (ok, not_modified, failed, cancelled, untracked, handed_over) and error type (none when ok)',
  labelNames: ['kind', 'outcome', 'error_type'] as const,
  registers: [registry],
});

export const syncDuration = new Histogram({
  name: 'lemmy_fetcher_sync_duration_seconds',
  help: 'Duration of a sync attempt (fetch and store), by source kind and outcome',
  labelNames: ['kind', 'outcome'] as const,
  buckets: SLOW_BUCKETS,
  registers: [registry],
});

export const syncScheduleLag = new Histogram({
  name: 'lemmy_fetcher_sync_schedule_lag_seconds',
  help: 'How late a scheduled sync started: its start minus the time it was due (first attempts of scheduled syncs only)',
  labelNames: ['kind'] as const,
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
  registers: [registry],
});

export const postsInserted = new Counter({
  name: 'lemmy_fetcher_posts_inserted_total',
  help: 'Posts stored for the first time, by source kind',
  labelNames: ['kind'] as const,
  registers: [registry],
});

export const postsUpdated = new Counter({
  name: 'lemmy_fetcher_posts_updated_total',
  help: 'Stored posts whose content changed and was written again, by source kind',
  labelNames: ['kind'] as const,
  registers: [registry],
});

export const sourceRequests = new Counter({
  name: 'lemmy_fetcher_source_requests_total',
  help: 'Requests to sources (Lemmy, feeds, Mastodon) by host and HTTP status, or the error when there was no answer (timeout, network_error)',
  labelNames: ['host', 'status'] as const,
  registers: [registry],
});

export const instanceBudgetWait = new Histogram({
  name: 'lemmy_fetcher_instance_budget_wait_seconds',
  help: "Time a request waited for its slot in the instance's shared request budget, by host",
  labelNames: ['host'] as const,
  buckets: [0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [registry],
});

export const instanceBudgetRefusals = new Counter({
  name: 'lemmy_fetcher_instance_budget_refusals_total',
  help: 'Requests not made because the instance budget was booked beyond INSTANCE_BUDGET_MAX_WAIT_SECONDS, by host',
  labelNames: ['host'] as const,
  registers: [registry],
});

export const instanceRateLimited = new Counter({
  name: 'lemmy_fetcher_instance_rate_limited_total',
  help: 'Answers that said we are rate limited (429, Lemmy rate_limit_error), by host',
  labelNames: ['host'] as const,
  registers: [registry],
});

export const shardQueryDuration = new Histogram({
  name: 'lemmy_fetcher_shard_query_duration_seconds',
  help: 'Duration of reads and writes on a post-shard node, by node and operation',
  labelNames: ['node', 'op'] as const,
  buckets: FAST_BUCKETS,
  registers: [registry],
});

export const streamClients = new Gauge({
  name: 'lemmy_fetcher_stream_clients',
  help: 'Live stream subscribers (SSE and WebSocket) connected to this process',
  registers: [registry],
});

export const streamDroppedConsumers = new Counter({
  name: 'lemmy_fetcher_stream_dropped_consumers_total',
  help: 'Live stream subscribers dropped because they did not keep up (reset "slow")',
  registers: [registry],
});

type HttpChild = ReturnType<typeof httpRequestDuration.labels>;
const httpChildren = new Map<string, HttpChild>();

/** Records one HTTP answer; the labelled series is looked up once per (method, route, status). */
export function observeHttpRequest(method: string, route: string, status: number, seconds: number): void {
  const key = `${method} ${status} ${route}`;
  let child = httpChildren.get(key);
  if (!child) httpChildren.set(key, (child = httpRequestDuration.labels(method, route, String(status))));
  child.observe(seconds);
}

type ShardChild = ReturnType<typeof shardQueryDuration.labels>;
const shardChildren = new Map<string, ShardChild>();

/** Records one read or write on a shard node (the series looked up once per node and operation). */
export function observeShardQuery(node: string, op: 'read' | 'write', seconds: number): void {
  const key = `${op} ${node}`;
  let child = shardChildren.get(key);
  if (!child) shardChildren.set(key, (child = shardQueryDuration.labels(node, op)));
  child.observe(seconds);
}

/** Which series a sync outcome goes to (error type `none` when it succeeded). */
export function recordSync(kind: string, outcome: string, errorType: string, seconds: number): void {
  syncsTotal.inc({ kind, outcome, error_type: errorType });
  syncDuration.observe({ kind, outcome }, seconds);
}

/**
 * A scheduled sync's lateness: now minus when it was due (the catalog's next_sync_at). Only first
 * attempts (a retry is late by its backoff) that started after they were due (a refresh starts early).
 */
export function observeScheduleLag(kind: string, dueAt: Date | null, attempt: number, now = Date.now()): void {
  if (!dueAt || attempt > 1) return;
  const lag = (now - dueAt.getTime()) / 1000;
  if (lag >= 0) syncScheduleLag.observe({ kind }, lag);
}

/** What the catalog gauges report: counts by state (bounded names) and the overdue count. */
export interface CatalogCounts {
  byState: Record<string, number>;
  overdue: number;
}

/** An outside answer may take this long before a scrape goes without the gauges it feeds. */
const SCRAPE_SOURCE_TIMEOUT_MS = 2000;

/**
 * An outside source (the catalog, Temporal) read once per scrape: the registry collects its
 * metrics concurrently, so a second gauge joins the first's call while it is in flight. Undefined,
 * and the gauges left empty, when there is no source, or it fails or is slow.
 */
class ScrapeSource<T> {
  private source: (() => Promise<T>) | undefined;
  private reading: Promise<T | undefined> | undefined;

  /** Reports through `source` from now on; the returned function stops that (unless replaced since). */
  use(source: () => Promise<T>): () => void {
    this.source = source;
    this.reading = undefined;
    return () => {
      if (this.source !== source) return;
      this.source = undefined;
      this.reading = undefined;
    };
  }

  read(): Promise<T | undefined> {
    const source = this.source;
    if (!source) return Promise.resolve(undefined);
    if (this.reading) return this.reading;
    let timer: ReturnType<typeof setTimeout> | undefined;
    this.reading = Promise.race([
      source(),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), SCRAPE_SOURCE_TIMEOUT_MS);
      }),
    ])
      .catch(() => undefined)
      .finally(() => {
        clearTimeout(timer);
        this.reading = undefined;
      });
    return this.reading;
  }
}

const catalogCounts = new ScrapeSource<CatalogCounts>();
const taskQueueBacklogs = new ScrapeSource<ReadonlyMap<string, number>>();

// Global state read from the catalog, not this process's doings: every API process reports the
// same, so a cluster's exposition takes one process's value ('first') rather than their sum.
const communitiesByState = new Gauge({
  name: 'lemmy_fetcher_communities',
  help: 'Tracked communities by the state their status shows (syncing: no sync has ended yet; waiting; failing; not_found; dormant; paused), from the catalog at scrape time',
  labelNames: ['state'] as const,
  aggregator: 'first',
  registers: [],
  async collect() {
    const counts = await catalogCounts.read();
    this.reset();
    if (counts) for (const [state, n] of Object.entries(counts.byState)) this.set({ state }, n);
  },
});
const overdueCommunities = new Gauge({
  name: 'lemmy_fetcher_communities_overdue',
  help: 'Tracked communities, not paused, whose next sync is more than COMMUNITY_OVERDUE_SECONDS past due, from the catalog at scrape time',
  aggregator: 'first',
  registers: [],
  async collect() {
    const counts = await catalogCounts.read();
    // Unknown rather than a stale count: an unlabelled gauge always has a sample.
    this.set(counts ? counts.overdue : Number.NaN);
  },
});

/**
 * Adds the catalog gauges (lemmy_fetcher_communities, lemmy_fetcher_communities_overdue) to this
 * process's registry, read through `source` at each scrape; the API calls it. Returns a function
 * that stops reporting through this source (the gauges stay, empty, until another one comes).
 */
export function reportCatalogCounts(source: () => Promise<CatalogCounts>): () => void {
  if (!registry.getSingleMetric('lemmy_fetcher_communities')) {
    registry.registerMetric(communitiesByState);
    registry.registerMetric(overdueCommunities);
  }
  return catalogCounts.use(source);
}

// Temporal's state, the same for every API process, as the catalog's.
const workflowTaskBacklog = new Gauge({
  name: 'lemmy_fetcher_workflow_task_backlog',
  help: "Workflow tasks waiting for a worker in each of trackCommunity's task queues (Temporal's approximate backlog, refreshed by its matching service every few seconds), at scrape time",
  labelNames: ['task_queue'] as const,
  aggregator: 'first',
  registers: [],
  async collect() {
    const backlogs = await taskQueueBacklogs.read();
    this.reset();
    if (backlogs) for (const [task_queue, n] of backlogs) this.set({ task_queue }, n);
  },
});

/**
 * Adds lemmy_fetcher_workflow_task_backlog to this process's registry, read through `source` at
 * each scrape (a queue it leaves out has no sample); the API calls it. Returns a function that
 * stops reporting through this source.
 */
export function reportWorkflowTaskBacklogs(source: () => Promise<ReadonlyMap<string, number>>): () => void {
  if (!registry.getSingleMetric('lemmy_fetcher_workflow_task_backlog')) registry.registerMetric(workflowTaskBacklog);
  return taskQueueBacklogs.use(source);
}

let exposition: (() => Promise<string>) | undefined;

/** Serves another exposition than this process's own: the whole cluster's (src/metrics/cluster.ts). */
export function useExposition(source: () => Promise<string>): void {
  exposition = source;
}

/** The exposition (text format) of this process's registry, or of its cluster's. */
export async function renderMetrics(): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await (exposition ? exposition() : registry.metrics()) };
}

/**
 * METRICS_ALLOWED_NETWORKS as a check: true when `address` (IPv4, IPv6 or IPv4-mapped IPv6) is in
 * one of the ranges. Unknown or unparsable addresses are refused.
 */
export function networkCheck(cidrs: readonly string[]): (address: string | undefined) => boolean {
  const ranges = cidrs.map((cidr) => ipaddr.parseCIDR(cidr));
  return (address) => {
    if (!address) return false;
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      addr = ipaddr.process(address); // ::ffff:127.0.0.1 → 127.0.0.1
    } catch {
      return false;
    }
    return ranges.some(([range, bits]) => range.kind() === addr.kind() && addr.match(range, bits));
  };
}

export const METRICS_FORBIDDEN_MESSAGE = 'Metrics are only served to the networks in METRICS_ALLOWED_NETWORKS';
