// Records the workflow histories that test/workflow-replay.test.ts replays: real trackCommunity
// runs on a throw-away stack of its own (a Temporal dev server, one embedded Postgres with a
// catalog and two shard databases, a worker in this process, the HTTP fake of Lemmy), written as
// JSON (`temporal workflow show --output json` format) to test/fixtures/histories/.
//
//   npm run record-histories                 # all scenarios, into test/fixtures/histories/
//   npm run record-histories -- --out DIR    # elsewhere (e.g. to compare with the committed ones)
//   npm run record-histories -- --only pause # only these scenarios (comma-separated: signals,
//                                            # rollover, not-found, retried, removed, pause,
//                                            # quiet-runs, quiet-queue, rollover-refresh,
//                                            # quiet-bound)
//
// Record after a change to the workflow that adds a path worth guarding, and commit the files;
// first give the current files a version prefix (as v1-*, v2-*): workflows started by that code
// may still be running, so their histories must keep replaying. Never re-record to make the
// replay test pass: a failing replay means the change needs patched().
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { loadConfig } from '../src/config.js';
import { deleteCommunityRow, insertCommunity } from '../src/db/communities.js';
import { openStorage } from '../src/db/index.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { createLogger } from '../src/log.js';
import { ensureTemporalCli } from '../src/temporal/cli.js';
import { connectClient } from '../src/temporal/client.js';
import { bundleWorkflows, startWorker } from '../src/worker-runtime.js';
import { FakeLemmy } from '../test/fake-lemmy.js';
import { createDatabase } from '../test/support/databases.js';
import { freePorts } from '../test/support/ports.js';
import { inPauseBeforeRollover } from '../test/support/history.js';
import { startTestServers } from '../test/support/servers.js';
import {
  pauseSignal,
  refreshSignal,
  resumeSignal,
  setRefreshIntervalSignal,
  setRefreshIntervalUpdate,
  setRefreshPolicySignal,
  statusQuery,
  trackCommunity,
  workflowIdOf,
  type CommunityStatus,
  type QuietRuns,
} from '../workflows/trackCommunity.js';
import type { RefreshPolicy } from '../workflows/refreshPolicy.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const outArg = process.argv.indexOf('--out');
const outDir = path.resolve(outArg > 0 ? process.argv[outArg + 1] : path.join(root, 'test', 'fixtures', 'histories'));
const onlyArg = process.argv.indexOf('--only');
const only = onlyArg > 0 ? new Set(process.argv[onlyArg + 1].split(',')) : undefined;
const want = (scenario: string) => !only || only.has(scenario);
const log = createLogger({ level: process.env.LOG_LEVEL ?? 'warn', format: 'pretty' });
const say = (line: string) => process.stderr.write(`[record-histories] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-record-'));
chmodSync(tmpDir, 0o755); // Postgres may run as its own user and must reach its data dir
const binary = await ensureTemporalCli((line) => say(`temporal-cli: ${line}`));
const [temporalPort, pgPort] = await freePorts(2);
const servers = await startTestServers({ binary, tmpDir, temporalPort, pgPorts: [pgPort], log });
const cleanups: (() => Promise<unknown>)[] = [async () => servers.stop(), async () => rmSync(tmpDir, { recursive: true, force: true })];
try {
  const server = servers.nodes[0].url;
  const config = loadConfig({
    TEMPORAL_ADDRESS: servers.temporal.address,
    TEMPORAL_TASK_QUEUE: 'record-histories',
    CATALOG_DATABASE_URL: await createDatabase(server, 'catalog'),
    POST_SHARD_URLS: [await createDatabase(server, 'shard1'), await createDatabase(server, 'shard2')].join(','),
    ALLOW_PRIVATE_INSTANCES: 'true',
    INSTANCE_REQUESTS_PER_SECOND: '100',
    HTTP_TIMEOUT_MS: '2000',
    HTTP_CONNECT_TIMEOUT_MS: '1000',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    LOG_FORMAT: 'pretty',
  });
  const storage = await openStorage(config, log, { allowEmbedded: false });
  cleanups.unshift(() => storage.close());
  const client = await connectClient(config.TEMPORAL_ADDRESS!, config.TEMPORAL_NAMESPACE);
  cleanups.unshift(() => client.connection.close());
  const worker = await startWorker({
    config,
    catalog: storage.catalog,
    router: storage.router,
    address: config.TEMPORAL_ADDRESS!,
    log,
    bundle: await bundleWorkflows(),
  });
  cleanups.unshift(() => worker.shutdown());
  const fake = await FakeLemmy.start();
  cleanups.unshift(() => fake.close());
  const { instance, host } = normalizeInstance(fake.url);

  type Handle = WorkflowHandle<typeof trackCommunity>;
  const start = async (
    name: string,
    refreshSeconds: number,
    maxCyclesPerRun?: number,
    paused?: boolean,
    quietRuns?: QuietRuns,
    policy?: RefreshPolicy,
  ): Promise<Handle> => {
    const ref = `${name}@${host}`;
    await insertCommunity(storage.catalog, { ref, instance, host, name, refreshSeconds, shard: logicalShardOf(ref) });
    return client.workflow.start(trackCommunity, {
      workflowId: workflowIdOf(ref),
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      args: [
        {
          ref,
          instance,
          name,
          refreshSeconds,
          ...(maxCyclesPerRun ? { maxCyclesPerRun } : {}),
          ...(paused ? { paused } : {}),
          ...(quietRuns ? { quietRuns } : {}),
          ...(policy ? { policy } : {}),
        },
      ],
    });
  };
  /** The latest run's handle (after continue-as-new the first handle still points at the chain). */
  const latest = (h: Handle): Handle => client.workflow.getHandle(h.workflowId);
  const status = (h: Handle) => latest(h).query(statusQuery);
  const when = (h: Handle, what: string, ok: (s: CommunityStatus) => boolean) =>
    until(what, async () => {
      const s = await status(h);
      return ok(s) ? s : undefined;
    });
  const syncs = (h: Handle, n: number) => when(h, `${n} syncs of ${h.workflowId}`, (s) => s.syncs >= n && s.state !== 'syncing');

  /** Writes every run of the workflow, oldest first: `<label>.json`, or `<label>-runN.json` for a chain. */
  const save = async (label: string, h: Handle) => {
    const runs: string[] = [];
    let runId: string | undefined = (await latest(h).describe()).runId;
    while (runId) {
      const history = await client.workflow.getHandle(h.workflowId, runId).fetchHistory();
      runs.unshift(historyToJSON(history));
      runId = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
    }
    mkdirSync(outDir, { recursive: true });
    runs.forEach((json, i) => {
      const file = path.join(outDir, `${label}${runs.length > 1 ? `-run${i + 1}` : ''}.json`);
      writeFileSync(file, `${JSON.stringify(JSON.parse(json), null, 2)}\n`);
      say(`wrote ${path.relative(root, file)}`);
    });
  };

  if (want('signals')) {
    // 1. Signals and updates on one run: refresh, a longer interval by update, a refused update
    //    (leaves no trace), an ignored bad signal, a shortening below the time already waited (the
    //    next sync is due at once), then a cancel.
    say('signals: refresh, interval changes by signal and update, shortening past due, cancel');
    fake.addCommunity('signals');
    fake.addPosts('signals', 5);
    const signals = await start('signals', 2);
    await syncs(signals, 1);
    await signals.signal(refreshSignal);
    await syncs(signals, 2);
    await syncs(signals, 3); // by the interval
    await signals.executeUpdate(setRefreshIntervalUpdate, { args: [300] });
    await signals.executeUpdate(setRefreshIntervalUpdate, { args: [0] }).then(
      () => {
        throw new Error('the update accepted 0');
      },
      () => undefined,
    );
    await signals.signal(setRefreshIntervalSignal, 0); // ignored
    await sleep(2500);
    fake.addPosts('signals', 1);
    await signals.signal(setRefreshIntervalSignal, 1); // 2.5 s waited: due at once
    await syncs(signals, 4);
    await signals.signal(setRefreshIntervalSignal, 300);
    // Adaptive within 1–2 s (a fresh burst of posts), then a bad policy (ignored), then a sync by it.
    fake.addPosts('signals', 3);
    await signals.signal(setRefreshPolicySignal, { mode: 'adaptive', minSeconds: 1, maxSeconds: 2 });
    await signals.signal(setRefreshPolicySignal, { mode: 'adaptive', minSeconds: 5, maxSeconds: 1 });
    await syncs(signals, 5);
    await signals.cancel();
    await signals.result().catch(() => undefined);
    await save('signals', signals);
  }

  if (want('rollover')) {
    // 2. A rollover: continue-as-new after 2 syncs, a refresh in the second run, then terminated.
    say('rollover: continue-as-new after 2 syncs, a refresh in the new run');
    fake.addCommunity('rollover');
    fake.addPosts('rollover', 3);
    const rollover = await start('rollover', 1, 2);
    const firstRun = (await rollover.describe()).runId;
    await until('the rollover', async () => (await latest(rollover).describe()).runId !== firstRun);
    await latest(rollover).signal(refreshSignal);
    await syncs(rollover, 3);
    await latest(rollover).executeUpdate(setRefreshIntervalUpdate, { args: [300] });
    await latest(rollover).terminate('recorded');
    await save('rollover', rollover);
  }

  if (want('rollover-refresh')) {
    // A refresh that arrives in the pause before a rollover (the timer that puts the continue-as-new
    // in a task of its own, until the run is a second old): a run younger than that syncs first and
    // pauses again (`rollover-refresh-*`); an older one rolls over at once and carries the refresh
    // (`rollover-refresh-late-*`), and the next run syncs at once.
    const refreshInPause = async (label: string, name: string, beforeSecondSyncMs: number) => {
      say(`${label}: a refresh during the pause before a rollover`);
      fake.addCommunity(name);
      fake.addPosts(name, 3);
      const h = await start(name, 300, 2);
      const firstRun = (await h.describe()).runId;
      const firstRunEvents = async () => (await client.workflow.getHandle(h.workflowId, firstRun).fetchHistory()).events ?? [];
      const pauseIn = (events: Awaited<ReturnType<typeof firstRunEvents>>) =>
        events.findIndex((e) => String(e.timerStartedEventAttributes?.startToFireTimeout?.seconds ?? 'none') === '0');
      await syncs(h, 1);
      await sleep(beforeSecondSyncMs);
      await h.signal(refreshSignal); // the second sync: the run is due to roll over after it
      await until('the pause before the rollover', async () => inPauseBeforeRollover(await firstRunEvents()), 30_000, 10);
      fake.addPosts(name, 1);
      await h.signal(refreshSignal);
      await until('the rollover', async () => (await latest(h).describe()).runId !== firstRun);
      await syncs(h, 3);
      await latest(h).executeUpdate(setRefreshIntervalUpdate, { args: [600] });
      await latest(h).terminate('recorded');
      const events = await firstRunEvents();
      const pauseAt = pauseIn(events);
      const signalAt = events.findLastIndex((e) => e.workflowExecutionSignaledEventAttributes);
      const firedAt = events.findIndex((e, i) => i > pauseAt && e.timerFiredEventAttributes);
      if (!(signalAt > pauseAt && (firedAt < 0 || signalAt < firedAt)))
        throw new Error(`${label}: the refresh did not arrive during the pause; record again`);
      await save(label, h);
    };
    await refreshInPause('rollover-refresh', 'rolloverrefresh', 0);
    await refreshInPause('rollover-refresh-late', 'rolloverrefreshlate', 1200);
  }

  if (want('quiet-runs')) {
    // Quiet runs: at a 2 s interval (the quiet threshold) the run rolls over after 2 syncs of its
    // 20; in the next run the interval is shortened below the threshold, and it goes on past 2.
    say('quiet-runs: continue-as-new after 2 syncs at a long interval, none at a short one');
    fake.addCommunity('quiet');
    fake.addPosts('quiet', 3);
    const quiet = await start('quiet', 2, 20, false, { fromSeconds: 2, syncs: 2 });
    const firstRun = (await quiet.describe()).runId;
    await until('the rollover', async () => (await latest(quiet).describe()).runId !== firstRun);
    await latest(quiet).executeUpdate(setRefreshIntervalUpdate, { args: [1] });
    await syncs(quiet, 5);
    await latest(quiet).terminate('recorded');
    if ((await latest(quiet).describe()).runId === firstRun) throw new Error('quiet-runs: no rollover');
    await save('quiet-runs', quiet);
  }

  if (want('quiet-queue')) {
    // The quiet runs' task queue: at a 2 s interval (the quiet threshold) the first run hands over
    // to the quiet queue after 1 sync, the next rolls over there after 2 syncs, and the one after
    // goes back to the active queue after a sync at a shorter interval.
    say('quiet-queue: to the quiet task queue after a sync at a long interval, back after one at a short interval');
    fake.addCommunity('quietqueue');
    fake.addPosts('quietqueue', 3);
    const taskQueues = { active: config.TEMPORAL_TASK_QUEUE, quiet: config.TEMPORAL_QUIET_TASK_QUEUE };
    const quiet = await start('quietqueue', 2, 20, false, { fromSeconds: 2, syncs: 2, taskQueues });
    const firstRun = (await quiet.describe()).runId;
    const quietRun = await until('the hand-over to the quiet queue', async () => {
      const d = await latest(quiet).describe();
      return d.runId !== firstRun && d.taskQueue === taskQueues.quiet ? d.runId : undefined;
    });
    await syncs(quiet, 3);
    await until('the rollover on the quiet queue', async () => (await latest(quiet).describe()).runId !== quietRun);
    await latest(quiet).executeUpdate(setRefreshIntervalUpdate, { args: [1] });
    await until('the way back', async () => (await latest(quiet).describe()).taskQueue === taskQueues.active);
    await syncs(quiet, (await status(quiet)).syncs + 1);
    await latest(quiet).terminate('recorded');
    await save('quiet-queue', quiet);
  }

  if (want('quiet-bound')) {
    // A quiet community at its policy's maximum (20 s; a post a day): the interval planned when the
    // run starts (the rate not known yet, 300 s, above the maximum, jittered at the bound), the
    // first wait its first sync saves (anywhere in the interval), and the interval planned when
    // the maximum is raised to 25 s while it waits (jittered at the bound); then a sync by it.
    say('quiet-bound: an adaptive community whose interval is its maximum, the maximum raised while it waits');
    fake.addCommunity('quietbound');
    const dayMs = 86_400_000;
    fake.addPosts('quietbound', 3, (i) => ({ published: new Date(Date.now() - (3 - i) * dayMs) }));
    const h = await start('quietbound', 300, 20, false, undefined, { mode: 'adaptive', minSeconds: 1, maxSeconds: 20 });
    await syncs(h, 1);
    await h.signal(setRefreshPolicySignal, { mode: 'adaptive', minSeconds: 1, maxSeconds: 25 });
    await when(h, 'the raised maximum', (s) => s.maxRefreshSeconds === 25);
    await syncs(h, 2); // by the interval (25 s at most from the first sync)
    await h.terminate('recorded');
    await save('quiet-bound', h);
  }

  if (want('not-found')) {
    // 3. Not found: a permanent failure (not retried), state not_found; a refresh tries once more.
    say('not-found: a community the instance does not have');
    const missing = await start('missing', 300);
    await when(missing, 'not_found', (s) => s.state === 'not_found');
    await missing.signal(refreshSignal);
    await until('a second attempt', async () => fake.requestsFor('missing', 'community') >= 2);
    await when(missing, 'not_found again', (s) => s.state === 'not_found');
    await missing.terminate('recorded');
    await save('not-found', missing);
  }

  if (want('retried')) {
    // 4. A passing failure: two 500s, retried by Temporal, then the sync succeeds. Then a refresh
    //    whose quick attempt meets a 500 and hands over to the regular activity, which meets
    //    another, retries, and succeeds.
    say('retried: two server errors, then success; a quick attempt handed over');
    fake.addCommunity('flaky');
    fake.addPosts('flaky', 2);
    fake.fail({ kind: 'status500' }, { times: 2, path: 'post/list', community: 'flaky' });
    const flaky = await start('flaky', 300);
    await syncs(flaky, 1);
    fake.fail({ kind: 'status500' }, { times: 2, path: 'post/list', community: 'flaky' });
    await flaky.signal(refreshSignal);
    await syncs(flaky, 2);
    await flaky.terminate('recorded');
    await save('retried', flaky);
  }

  if (want('removed')) {
    // 5. Removed from the catalog: the next sync finds no row and the workflow completes.
    say('removed: the catalog row goes, the workflow ends by itself');
    fake.addCommunity('removed');
    fake.addPosts('removed', 2);
    const removed = await start('removed', 300);
    await syncs(removed, 1);
    const row = await storage.catalog<{ id: number }[]>`select id from communities where ref = ${`removed@${host}`}`;
    await deleteCommunityRow(storage.catalog, row[0].id);
    await removed.signal(refreshSignal);
    await removed.result();
    await save('removed', removed);
  }

  // 6. Pause and resume (prefix `pause-`): paused while waiting, a refresh and an interval change
  //    while paused (no sync), resumed (a sync at once), paused during a slow sync (it finishes, no
  //    next one), a rollover while paused (carried), resumed in the new run; and a run started paused.
  if (want('pause')) {
    say('pause: pause while waiting, refresh ignored, resume, pause mid-sync, rollover while paused, resume');
    fake.addCommunity('paused');
    fake.addPosts('paused', 3);
    const paused = await start('paused', 300, 3);
    await syncs(paused, 1);
    await paused.signal(pauseSignal);
    await when(paused, 'paused', (s) => s.state === 'paused');
    await paused.signal(refreshSignal); // ignored while paused
    await paused.signal(setRefreshIntervalSignal, 2);
    await sleep(2500); // past the new interval: still no sync
    if ((await status(paused)).syncs !== 1) throw new Error('a sync while paused');
    fake.addPosts('paused', 1);
    await paused.signal(resumeSignal);
    await syncs(paused, 2);
    await paused.signal(setRefreshIntervalSignal, 300);
    fake.fail({ kind: 'slow', delayMs: 1500 }, { times: 1, path: 'post/list', community: 'paused' });
    await paused.signal(refreshSignal);
    await when(paused, 'the slow sync', (s) => s.state === 'syncing');
    await paused.signal(pauseSignal); // mid-sync: the sync finishes, then the run rolls over (3 syncs) paused
    const firstRun = (await paused.describe()).runId;
    await until('the rollover', async () => (await latest(paused).describe()).runId !== firstRun);
    await when(paused, 'paused in the new run', (s) => s.state === 'paused' && s.syncs === 3);
    await latest(paused).signal(resumeSignal);
    await syncs(paused, 4);
    await latest(paused).terminate('recorded');
    await save('pause', paused);

    say('pause-start: a run started paused, then resumed');
    fake.addCommunity('startpaused');
    fake.addPosts('startpaused', 2);
    const startPaused = await start('startpaused', 300, undefined, true);
    await when(startPaused, 'paused from the start', (s) => s.state === 'paused');
    await startPaused.signal(refreshSignal); // ignored
    await sleep(500);
    if ((await status(startPaused)).syncs !== 0) throw new Error('a sync while paused');
    await startPaused.signal(resumeSignal);
    await syncs(startPaused, 1);
    await startPaused.terminate('recorded');
    await save('pause-start', startPaused);
  }

  say(`done: ${outDir}`);
} finally {
  for (const cleanup of cleanups) await cleanup().catch((err: Error) => say(`cleanup: ${err.message}`));
}
