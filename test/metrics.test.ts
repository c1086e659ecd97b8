// Prometheus metrics as an operator sees them: Debian's `prometheus` scrapes a running stack (the
// API over HTTP, `npm run worker` as its own process with its /metrics and the Temporal SDK's
// exporter, and a Temporal dev server with its metrics port) every second. After a community is
// added and synced from a FakeLemmy, the series exist and move: syncs, posts inserted, source
// requests, budget waits, rate limits, HTTP durations, shard queries, stream clients, the fleet's
// state from the catalog, Temporal SDK and server series. The Grafana dashboard's queries name
// only metrics Prometheus knows. And a scrape from a network not in METRICS_ALLOWED_NETWORKS is
// refused with a JSON 403.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { createApp } from '../api/app.js';
import { startApiServer, type ApiDeps } from '../api/server.js';
import { spawnWorkerProcess, type WorkerProcess } from '../bench/support/proc.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { networkCheck } from '../src/metrics/index.js';
import { startMetricsServer } from '../src/metrics/server.js';
import { TemporalDevServer } from '../src/temporal/devserver.js';
import { FakeLemmy } from './fake-lemmy.js';
import { freePorts } from './support/ports.js';
import { createStack, eventually, type Stack } from './support/stack.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const DASHBOARD = 'deploy/grafana/dashboards/lemmy-fetcher.json';
const log = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'warn', format: 'pretty' });

describe('the network check of GET /metrics', () => {
  it('allows exactly the configured networks, IPv4, IPv6 and IPv4-mapped', () => {
    const allowed = networkCheck(['127.0.0.0/8', '::1/128', '10.1.0.0/16']);
    for (const a of ['127.0.0.1', '127.9.9.9', '::1', '::ffff:127.0.0.1', '10.1.200.3', '::ffff:10.1.0.1'])
      expect(allowed(a), a).toBe(true);
    for (const a of ['10.2.0.1', '192.168.1.1', '::2', 'fe80::1', '8.8.8.8', '::ffff:8.8.8.8', 'unknown', '', undefined, 'not an ip']) {
      expect(allowed(a), String(a)).toBe(false);
    }
    expect(networkCheck([])('127.0.0.1')).toBe(false);
  });

  describe('through the API and the worker', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await createStack({ worker: false, env: { METRICS_ALLOWED_NETWORKS: '10.0.0.0/8' } });
    });
    afterAll(async () => {
      await stack?.stop();
    });

    it('answers 403 JSON to a client outside METRICS_ALLOWED_NETWORKS, and the metrics to one inside', async () => {
      const deps: ApiDeps = {
        config: { ...stack.config, PORT: 0 },
        catalog: stack.storage.catalog,
        router: stack.storage.router,
        temporal: stack.client,
        log,
      };
      // No TCP peer at all (in-process request): refused too.
      const inProcess = await createApp(deps).request('/metrics');
      expect(inProcess.status).toBe(403);
      expect(((await inProcess.json()) as Json).error.code).toBe('metrics_forbidden');

      const refusing = await startApiServer(deps);
      try {
        const res = await fetch(`http://127.0.0.1:${refusing.port}/metrics`);
        expect(res.status).toBe(403);
        expect(res.headers.get('content-type')).toMatch(/application\/json/);
        const body = (await res.json()) as Json;
        expect(body.error.code).toBe('metrics_forbidden');
        expect(body.error.message).toMatch(/METRICS_ALLOWED_NETWORKS/);
      } finally {
        await refusing.close();
      }

      const allowing = await startApiServer({ ...deps, config: { ...deps.config, METRICS_ALLOWED_NETWORKS: ['127.0.0.0/8', '::1/128'] } });
      try {
        const res = await fetch(`http://127.0.0.1:${allowing.port}/metrics`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
        const text = await res.text();
        expect(text).toMatch(/^# HELP lemmy_fetcher_http_request_duration_seconds /m);
        expect(text).toMatch(/^process_cpu_seconds_total /m);
        // Behind a trusted proxy (loopback), the client it forwards is what counts.
        const viaProxy = await fetch(`http://127.0.0.1:${allowing.port}/metrics`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
        expect(viaProxy.status).toBe(403);
      } finally {
        await allowing.close();
      }
    });

    it("refuses the worker's /metrics to other networks, and serves it to allowed ones", async () => {
      const refusing = await startMetricsServer({ host: '127.0.0.1', port: 0, allowedNetworks: ['10.0.0.0/8'], log });
      const allowing = await startMetricsServer({ host: '127.0.0.1', port: 0, allowedNetworks: ['127.0.0.1/32'], log });
      try {
        const refused = await fetch(`http://127.0.0.1:${refusing!.port}/metrics`);
        expect(refused.status).toBe(403);
        expect(((await refused.json()) as Json).error.code).toBe('metrics_forbidden');
        const ok = await fetch(`http://127.0.0.1:${allowing!.port}/metrics`);
        expect(ok.status).toBe(200);
        expect(await ok.text()).toMatch(/^# TYPE lemmy_fetcher_syncs_total counter/m);
        expect((await fetch(`http://127.0.0.1:${allowing!.port}/other`)).status).toBe(404);
        // A taken port is not fatal: the worker runs without /metrics.
        expect(await startMetricsServer({ host: '127.0.0.1', port: allowing!.port, allowedNetworks: [], log })).toBeUndefined();
      } finally {
        await refusing?.close();
        await allowing?.close();
      }
    });
  });
});

/** Metric names in a PromQL expression: identifiers outside label matchers, ranges, strings and grouping clauses, not functions or keywords. */
function metricNamesOf(expr: string): string[] {
  const KEYWORDS = new Set([
    'by',
    'without',
    'on',
    'ignoring',
    'group_left',
    'group_right',
    'bool',
    'and',
    'or',
    'unless',
    'offset',
    'inf',
    'nan',
  ]);
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\w+/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    if (m[2] || KEYWORDS.has(m[1].toLowerCase())) continue; // a function call, or a keyword
    names.add(m[1]);
  }
  return [...names];
}

describe('Prometheus scraping a running stack', () => {
  let tmp: string;
  let temporal: TemporalDevServer;
  let stack: Stack;
  let fake: FakeLemmy;
  let api: { close(): Promise<void>; port: number } | undefined;
  let worker: WorkerProcess | undefined;
  let prometheus: ChildProcess | undefined;
  let promOutput = '';
  let promUrl: string;
  let apiUrl: string;
  const jobs = ['api', 'worker', 'temporal-sdk', 'temporal-server'];

  async function query(q: string): Promise<number | undefined> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await res.json()) as Json;
    if (body.status !== 'success') throw new Error(`query ${q} failed: ${JSON.stringify(body)}`);
    const result = body.data.result as Array<{ value: [number, string] }>;
    return result.length ? Number(result[0].value[1]) : undefined;
  }

  /** Waits until Prometheus has scraped a value of `q` that passes `ok`, and returns it. */
  async function until(q: string, ok: (v: number) => boolean, timeoutMs = 30_000): Promise<number> {
    let last: number | undefined;
    try {
      const found = await eventually(async () => {
        last = await query(q);
        return last !== undefined && ok(last) ? { value: last } : undefined;
      }, timeoutMs);
      return found.value;
    } catch (err) {
      throw new Error(`${q}: last value ${last}; ${(err as Error).message}`, { cause: err });
    }
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-metrics-'));
    const [temporalPort, temporalMetricsPort, workerMetricsPort, sdkMetricsPort, promPort] = await freePorts(5);
    // Our own dev server, with its metrics port, so that the Temporal server's series are scraped too.
    temporal = new TemporalDevServer({
      binary: inject('temporalCli'),
      port: temporalPort,
      metricsPort: temporalMetricsPort,
      headless: true,
      log: log.child({ role: 'temporal' }),
    });
    await temporal.start();
    fake = await FakeLemmy.start();
    stack = await createStack({ worker: false, env: { TEMPORAL_ADDRESS: temporal.address } });
    api = await startApiServer({
      config: { ...stack.config, PORT: 0 },
      catalog: stack.storage.catalog,
      router: stack.storage.router,
      temporal: stack.client,
      log,
    });
    apiUrl = `http://127.0.0.1:${api.port}`;
    worker = await spawnWorkerProcess({
      ...stack.env,
      WORKER_METRICS_PORT: String(workerMetricsPort),
      TEMPORAL_METRICS_ADDRESS: `127.0.0.1:${sdkMetricsPort}`,
    });

    const targets: Record<string, number> = {
      api: api.port,
      worker: workerMetricsPort,
      'temporal-sdk': sdkMetricsPort,
      'temporal-server': temporalMetricsPort,
    };
    const config = [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      ...Object.entries(targets).flatMap(([job, port]) => [
        `  - job_name: ${job}`,
        '    static_configs:',
        `      - targets: ['127.0.0.1:${port}']`,
      ]),
      '',
    ].join('\n');
    writeFileSync(path.join(tmp, 'prometheus.yml'), config);
    promUrl = `http://127.0.0.1:${promPort}`;
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${path.join(tmp, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(tmp, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        '--storage.tsdb.retention.time=1h',
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prometheus.on('error', (err) => (promOutput += `cannot start prometheus (apt-get install prometheus): ${err.message}\n`));
    prometheus.stdout!.on('data', (c: Buffer) => (promOutput = (promOutput + c.toString()).slice(-20_000)));
    prometheus.stderr!.on('data', (c: Buffer) => (promOutput = (promOutput + c.toString()).slice(-20_000)));
    try {
      await eventually(async () => (await fetch(`${promUrl}/-/ready`)).ok, 30_000, 200);
    } catch (err) {
      throw new Error(`prometheus did not become ready: ${(err as Error).message}\n${promOutput}`, { cause: err });
    }
  }, 180_000);

  afterAll(async () => {
    const stopChild = async (child: ChildProcess | undefined) => {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    };
    await stopChild(prometheus);
    await stopChild(worker?.child);
    await api?.close();
    await stack?.stop();
    await fake?.close();
    await temporal?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }, 60_000);

  it('scrapes the API, the worker, the Temporal SDK and the Temporal server', async () => {
    for (const job of jobs) await until(`up{job="${job}"}`, (v) => v === 1);
  });

  it('shows the series move after syncs, rate limits, API requests and a stream client', async () => {
    const host = new URL(fake.url).host;
    const zero = (v: number | undefined) => v ?? 0;
    const okSyncs = `sum(lemmy_fetcher_syncs_total{job="worker",outcome="ok"})`;
    const inserted = `sum(lemmy_fetcher_posts_inserted_total{job="worker"})`;
    const postCalls = `sum(lemmy_fetcher_http_request_duration_seconds_count{job="api",method="POST",route="/api/communities",status="201"})`;
    const before = { syncs: zero(await query(okSyncs)), inserted: zero(await query(inserted)), posts: zero(await query(postCalls)) };

    fake.addCommunity('metered');
    fake.addPosts('metered', 7);
    const added = await fetch(`${apiUrl}/api/communities`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instance: fake.url, name: 'metered', refreshSeconds: 2 }),
    });
    expect(added.status).toBe(201);
    const ref = ((await added.json()) as Json).ref as string;

    // The first sync: counted, with the posts it stored, by the worker process.
    const syncs1 = await until(okSyncs, (v) => v > before.syncs);
    await until(inserted, (v) => v >= before.inserted + 7);
    await until(`sum(lemmy_fetcher_sync_duration_seconds_count{job="worker",kind="lemmy"})`, (v) => v >= 1);
    await until(`sum(lemmy_fetcher_source_requests_total{job="worker",host="${host}",status="200"})`, (v) => v >= 1);
    await until(`sum(lemmy_fetcher_instance_budget_wait_seconds_count{job="worker",host="${host}"})`, (v) => v >= 1);
    await until(`sum(lemmy_fetcher_shard_query_duration_seconds_count{job="worker",op="write"})`, (v) => v >= 1);
    // The API's add-time check went through the same transport, in the API process.
    await until(`sum(lemmy_fetcher_source_requests_total{job="api",host="${host}"})`, (v) => v >= 1);
    await until(postCalls, (v) => v > before.posts);
    // The fleet's state, from the catalog by the API: the community synced and waits; none overdue.
    await until(`lemmy_fetcher_communities{job="api",state="waiting"}`, (v) => v === 1);
    expect(await query(`lemmy_fetcher_communities{job="api",state="syncing"}`)).toBe(0);
    expect(await query(`lemmy_fetcher_communities_overdue{job="api"}`)).toBe(0);

    // Scheduled syncs (every 2 s) keep coming, and report how late they started.
    await until(okSyncs, (v) => v >= syncs1 + 2);
    await until(`sum(lemmy_fetcher_sync_schedule_lag_seconds_count{job="worker",kind="lemmy"})`, (v) => v >= 1);
    const lagP99 = await until(
      `histogram_quantile(0.99, sum by (le) (lemmy_fetcher_sync_schedule_lag_seconds_bucket{job="worker"}))`,
      (v) => Number.isFinite(v),
    );
    expect(lagP99).toBeLessThan(60);

    // New posts on the instance: inserted moves again.
    const inserted1 = zero(await query(inserted));
    fake.addPosts('metered', 3);
    await until(inserted, (v) => v >= inserted1 + 3);

    // The instance rate limits us: a hit by host, and a sync attempt by error type (the quick
    // attempt hands the sync over to the regular activity, which waits for the budget).
    fake.fail({ kind: 'status429', retryAfterSeconds: 1 }, { community: 'metered', path: 'post/list' });
    await until(`sum(lemmy_fetcher_instance_rate_limited_total{job="worker",host="${host}"})`, (v) => v >= 1);
    await until(`sum(lemmy_fetcher_syncs_total{job="worker",outcome=~"failed|handed_over",error_type="RateLimited"})`, (v) => v >= 1);
    await until(`sum(lemmy_fetcher_source_requests_total{job="worker",host="${host}",status="429"})`, (v) => v >= 1);

    // API reads: timed under the route pattern, never the raw path.
    const pageRoute = `sum(lemmy_fetcher_http_request_duration_seconds_count{job="api",method="GET",route="/api/communities/:ref/posts",status="200"})`;
    const pages = zero(await query(pageRoute));
    for (let i = 0; i < 3; i++)
      expect((await fetch(`${apiUrl}/api/communities/${encodeURIComponent(ref)}/posts?limit=5`)).status).toBe(200);
    await until(pageRoute, (v) => v >= pages + 3);
    expect(await query(`count(lemmy_fetcher_http_request_duration_seconds_count{route=~".*metered.*"})`)).toBeUndefined();
    await until(`sum(lemmy_fetcher_shard_query_duration_seconds_count{job="api",op="read"})`, (v) => v >= 1);

    // A live stream client: the gauge goes up while it is connected, and down when it leaves.
    const abort = new AbortController();
    const stream = await fetch(`${apiUrl}/api/stream?communities=${encodeURIComponent(ref)}`, { signal: abort.signal });
    expect(stream.status).toBe(200);
    await until(`sum(lemmy_fetcher_stream_clients{job="api"})`, (v) => v === 1);
    abort.abort();
    await until(`sum(lemmy_fetcher_stream_clients{job="api"})`, (v) => v === 0);
    expect(await query(`sum(lemmy_fetcher_stream_dropped_consumers_total{job="api"})`)).toBe(0);

    // The Temporal SDK's exporter in the worker, and the Temporal server, report what they did.
    await until(`sum(temporal_request{job="temporal-sdk"})`, (v) => v > 0);
    await until(`sum(temporal_activity_execution_latency_count{job="temporal-sdk"})`, (v) => v >= 1);
    await until(`sum(service_requests{job="temporal-server"})`, (v) => v > 0);
    // Default process metrics of both of our processes.
    for (const job of ['api', 'worker']) await until(`process_resident_memory_bytes{job="${job}"}`, (v) => v > 0);
  });

  it("the dashboard's queries name only metrics Prometheus knows", async () => {
    const known = new Set(((await (await fetch(`${promUrl}/api/v1/label/__name__/values`)).json()) as Json).data as string[]);
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Json;
    const exprs: string[] = [];
    const walk = (panels: Json[]) => {
      for (const p of panels ?? []) {
        for (const t of p.targets ?? []) if (t.expr) exprs.push(t.expr as string);
        walk(p.panels);
      }
    };
    walk(dashboard.panels);
    expect(exprs.length).toBeGreaterThanOrEqual(12);
    const named = new Set(exprs.flatMap(metricNamesOf));
    // The panels the issue asks for are there.
    for (const name of [
      'lemmy_fetcher_syncs_total',
      'lemmy_fetcher_sync_schedule_lag_seconds_bucket',
      'lemmy_fetcher_instance_budget_wait_seconds_bucket',
      'lemmy_fetcher_instance_rate_limited_total',
      'lemmy_fetcher_http_request_duration_seconds_bucket',
      'lemmy_fetcher_posts_inserted_total',
    ]) {
      expect(named, name).toContain(name);
    }
    const unknown = [...named].filter((n) => !known.has(n));
    expect(unknown, `metrics in ${DASHBOARD} that Prometheus does not know`).toEqual([]);
    // The check itself sees a wrong name.
    expect(metricNamesOf('sum by (le) (rate(no_such_metric_bucket{a="b"}[$__rate_interval]))')).toEqual(['no_such_metric_bucket']);
  });
});

describe('Prometheus and Grafana in docker-compose.yml', () => {
  // No Docker engine runs here: the files are checked against each other instead.
  const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as { services: Record<string, Json> };
  const services = compose.services;
  const promConfig = parse(readFileSync('deploy/prometheus/prometheus.yml', 'utf8')) as Json;
  const targetsOf = (job: string): string[] => {
    const sc = (promConfig.scrape_configs as Json[]).find((c) => c.job_name === job);
    expect(sc, job).toBeDefined();
    return [
      ...(sc.static_configs ?? []).flatMap((c: Json) => c.targets as string[]),
      ...(sc.dns_sd_configs ?? []).flatMap((c: Json) => (c.names as string[]).map((n) => `${n}:${c.port}`)),
    ];
  };
  /** The service's environment as the app would read it (defaults of ${VAR:-x} taken, required ones given examples). */
  const envOf = (name: string): Record<string, string> =>
    Object.fromEntries(
      Object.entries((services[name].environment ?? {}) as Record<string, string>).map(([k, v]) => [
        k,
        String(v).replace(/\$\{(\w+)(:?[?-])?([^}]*)\}/g, (_m, n: string, op: string | undefined, arg: string) =>
          op?.includes('-') ? arg : n === 'API_TOKEN' ? 'example-api-token' : 'example',
        ),
      ]),
    );

  it('is a valid Prometheus configuration (promtool)', () => {
    const r = spawnSync('promtool', ['check', 'config', 'deploy/prometheus/prometheus.yml'], { encoding: 'utf8' });
    expect(r.error, "promtool is in Debian's prometheus package").toBeUndefined();
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('scrapes the API, every worker (its /metrics and the SDK exporter) and the Temporal server where they listen', () => {
    const worker = loadConfig(envOf('worker'));
    const api = loadConfig(envOf('api'));
    expect(targetsOf('lemmy-fetcher-api')).toEqual([`api:${api.PORT}`]);
    expect(targetsOf('lemmy-fetcher-worker')).toEqual([`worker:${worker.WORKER_METRICS_PORT}`]);
    expect(worker.WORKER_METRICS_HOST).toBe('0.0.0.0');
    expect(worker.TEMPORAL_METRICS_ADDRESS).toMatch(/^0\.0\.0\.0:\d+$/);
    expect(targetsOf('temporal-sdk')).toEqual([`worker:${worker.TEMPORAL_METRICS_ADDRESS!.split(':')[1]}`]);
    expect(targetsOf('temporal-server')).toEqual([`temporal:${services.temporal.environment.PROMETHEUS_ENDPOINT.split(':')[1]}`]);
    // Prometheus comes from the compose network: the API and workers must let it in.
    const inside = networkCheck(api.METRICS_ALLOWED_NETWORKS);
    expect(inside('172.18.0.5')).toBe(true);
    expect(networkCheck(worker.METRICS_ALLOWED_NETWORKS)('172.18.0.5')).toBe(true);
    expect(inside('203.0.113.9')).toBe(false);
  });

  it('provisions Grafana with the Prometheus data source and the dashboard, and keeps its password out of the file', () => {
    const grafana = services.grafana;
    const raw = parse(readFileSync('docker-compose.yml', 'utf8')) as Json;
    expect(raw.services.grafana.environment.GF_SECURITY_ADMIN_PASSWORD).toMatch(/^\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}$/);
    const mounts = (grafana.volumes as string[]).map((v) => v.split(':'));
    const provisioning = mounts.find(([, target]) => target === '/etc/grafana/provisioning')![0];
    const dashboards = mounts.find(([, target]) => target === '/var/lib/grafana/dashboards')![0];
    const datasource = parse(readFileSync(path.join(provisioning, 'datasources/prometheus.yml'), 'utf8')) as Json;
    const provider = parse(readFileSync(path.join(provisioning, 'dashboards/lemmy-fetcher.yml'), 'utf8')) as Json;
    expect(provider.providers[0].options.path).toBe('/var/lib/grafana/dashboards');
    const ds = datasource.datasources[0];
    expect(ds.url).toBe(`http://prometheus:${services.prometheus.ports[0].split(':').at(-1)}`);
    const dashboard = JSON.parse(readFileSync(path.join(dashboards, 'lemmy-fetcher.json'), 'utf8')) as Json;
    const uids = new Set<string>();
    const walk = (panels: Json[]) => {
      for (const p of panels ?? []) {
        if (p.datasource) uids.add(p.datasource.uid);
        for (const t of p.targets ?? []) uids.add(t.datasource.uid);
        walk(p.panels);
      }
    };
    walk(dashboard.panels);
    expect([...uids]).toEqual([ds.uid]);
    expect(services.prometheus.volumes).toEqual(['./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro']);
  });
});
