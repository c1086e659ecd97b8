// A sync keeps within its activity's start-to-close timeout: a request that would run past it is
// stopped by the sync itself (a retryable Timeout, recorded on the row), shortly before Temporal
// would time the attempt out, instead of running on beside the retry.
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { communityByRef, insertCommunity } from '../src/db/communities.js';
import { logicalShardOf } from '../src/db/sharding/router.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { createLogger } from '../src/log.js';
import { startWorker, type WorkerHandle } from '../src/worker-runtime.js';
import { DEADLINE_MARGIN_MS } from '../activities/sync.js';
import type { SyncOnceResult } from './fixtures/sync-deadline/workflows.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack } from './support/stack.js';

let stack: Stack;
let fake: FakeLemmy;
let worker: WorkerHandle;
const taskQueue = `sync-timeout-${process.pid}`;

beforeAll(async () => {
  // Lemmy requests may take a minute: only the sync's own deadline can end the slow one in time.
  [stack, fake] = await Promise.all([createStack({ worker: false, env: { HTTP_TIMEOUT_MS: '60000' } }), FakeLemmy.start()]);
  const { code } = await bundleWorkflowCode({
    workflowsPath: fileURLToPath(new URL('./fixtures/sync-deadline/workflows.ts', import.meta.url)),
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never,
  });
  worker = await startWorker({
    config: { ...stack.config, TEMPORAL_TASK_QUEUE: taskQueue },
    catalog: stack.storage.catalog,
    router: stack.storage.router,
    address: stack.config.TEMPORAL_ADDRESS!,
    log: createLogger({ level: 'warn' }),
    bundle: { code },
  });
}, 180_000);
afterAll(async () => {
  await worker?.shutdown();
  await stack?.stop();
  await fake?.close();
});

describe('a sync within its start-to-close timeout', () => {
  it('a request that would outlast the attempt is stopped before the timeout, as a retryable Timeout', async () => {
    fake.addCommunity('deadline');
    fake.addPosts('deadline', 2);
    fake.fail({ kind: 'slow', delayMs: 40_000 }, { path: 'post/list', community: 'deadline', times: 1 });
    const { instance, host } = normalizeInstance(fake.url);
    const ref = `deadline@${host}`;
    await insertCommunity(stack.storage.catalog, {
      ref,
      instance,
      host,
      name: 'deadline',
      refreshSeconds: 300,
      shard: logicalShardOf(ref),
    });

    const startToCloseMs = 9000;
    const started = Date.now();
    const result = await stack.client.workflow.execute<(ref: string, timeout: string) => Promise<SyncOnceResult>>('syncOnce', {
      taskQueue,
      workflowId: `sync-timeout-${ref}-${started}`,
      args: [ref, `${startToCloseMs} ms`],
    });
    const took = Date.now() - started;

    // The sync gave up by itself (its failure, not Temporal's timeout), before the attempt's end.
    expect(result).toMatchObject({ ok: false, type: 'Timeout' });
    expect(took).toBeLessThan(startToCloseMs);
    const slow = fake.requests.find((r) => r.community === 'deadline' && r.path === '/api/v3/post/list')!;
    const abortedAt = await eventually(() => slow.abortedAt, 2000, 20);
    expect(abortedAt - started).toBeLessThan(startToCloseMs - DEADLINE_MARGIN_MS + 2000);
    // And the row shows why.
    const row = await communityByRef(stack.storage.catalog, ref);
    expect({ state: row?.sync_state, code: row?.last_error_code }).toEqual({ state: 'failing', code: 'Timeout' });
  }, 60_000);
});
