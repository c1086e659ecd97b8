// A private lemmy-fetcher stack per test file on the shared servers: its own catalog and shard
// databases, its own task queue, a worker in this process (or none), and a Temporal client.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import type { ApiDeps } from '../../api/deps.js';
import { inject } from 'vitest';
import { loadConfig, type Config } from '../../src/config.js';
import { openStorage, type Storage } from '../../src/db/index.js';
import { createLogger, type Logger } from '../../src/log.js';
import { connectClient } from '../../src/temporal/client.js';
import { liveStatus } from '../../src/tracking.js';
import { startWorker, type WorkerHandle } from '../../src/worker-runtime.js';
import type { CommunityStatus } from '../../workflows/trackCommunity.js';
import { createDatabase } from './databases.js';

export interface Stack {
  id: string;
  config: Config;
  /** Environment that makes `npm run worker` / `npm run api` / the CLI use this stack. */
  env: Record<string, string>;
  storage: Storage;
  client: Client;
  worker?: WorkerHandle;
  startWorker(): Promise<WorkerHandle>;
  stop(): Promise<void>;
}

export { createDatabase };

export interface StackOptions {
  /** Number of post-shard databases (spread over the shared servers). Default 2. */
  shards?: number;
  /** Start a worker in this process. Default true. */
  worker?: boolean;
  env?: Record<string, string>;
}

export async function createStack(opts: StackOptions = {}): Promise<Stack> {
  const id = randomBytes(4).toString('hex');
  const pgUrls = inject('pgUrls');
  const catalogUrl = await createDatabase(pgUrls[0], `t${id}_catalog`);
  const shardUrls: string[] = [];
  for (let i = 0; i < (opts.shards ?? 2); i++) {
    shardUrls.push(await createDatabase(pgUrls[(i + 1) % pgUrls.length], `t${id}_shard${i + 1}`));
  }
  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    TEMPORAL_TASK_QUEUE: `test-${id}`,
    CATALOG_DATABASE_URL: catalogUrl,
    POST_SHARD_URLS: shardUrls.join(','),
    ALLOW_PRIVATE_INSTANCES: 'true',
    WORKFLOW_BUNDLE_PATH: inject('workflowBundlePath'),
    INSTANCE_REQUESTS_PER_SECOND: '100',
    HTTP_TIMEOUT_MS: '2000',
    HTTP_CONNECT_TIMEOUT_MS: '1000',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    LOG_FORMAT: 'pretty',
    ...opts.env,
  };
  const config = loadConfig(env);
  const log = createLogger({ level: config.LOG_LEVEL, format: 'pretty' });
  const storage = await openStorage(config, log, { allowEmbedded: false });
  const client = await connectClient(config.TEMPORAL_ADDRESS!, config.TEMPORAL_NAMESPACE);
  const bundle = { code: readFileSync(inject('workflowBundlePath'), 'utf8') };
  const stack: Stack = {
    id,
    config,
    env,
    storage,
    client,
    async startWorker() {
      stack.worker = await startWorker({
        config,
        catalog: storage.catalog,
        router: storage.router,
        address: config.TEMPORAL_ADDRESS!,
        log: log.child({ role: 'worker' }),
        bundle,
      });
      return stack.worker;
    },
    async stop() {
      await stack.worker?.shutdown();
      await client.connection.close();
      await storage.close();
    },
  };
  if (opts.worker !== false) await stack.startWorker();
  return stack;
}

/** What createApp needs, from a stack: its config, storage and Temporal client, and a logger. */
export function apiDeps(stack: Pick<Stack, 'config' | 'storage' | 'client'>, log: Logger): ApiDeps {
  return { config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: stack.client, log };
}

/** Polls until `check` returns a truthy value (or throws the last error after `timeoutMs`). */
export async function eventually<T>(
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as T;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > end) {
      throw new Error(`condition not met within ${timeoutMs} ms${lastError ? `: ${(lastError as Error).message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The workflow's status, or undefined when no run is open or Temporal does not answer in time. */
export async function queryStatus(deps: { temporal: Client }, ref: string, timeoutMs?: number): Promise<CommunityStatus | undefined> {
  const status = await liveStatus(deps, ref, timeoutMs);
  return typeof status === 'object' ? status : undefined;
}
