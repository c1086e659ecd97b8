// A worker SIGKILLed in the middle of a sync: a new worker completes it, with no duplicate posts
// and no lost refresh.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { communityByRef } from '../src/db/communities.js';
import { normalizeInstance } from '../src/sources/lemmy/refs.js';
import { workflowIdOf } from '../workflows/trackCommunity.js';
import { startTracking } from '../src/tracking.js';
import { refreshSignal } from '../workflows/trackCommunity.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack, queryStatus } from './support/stack.js';

let stack: Stack;
let fake: FakeLemmy;
const children: ChildProcess[] = [];

/** `npm run worker`'s entry point as its own process (node directly, so SIGKILL hits the worker). */
async function spawnWorker(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
    env: { ...process.env, ...stack.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info' }, // info: to see 'worker ready'
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('worker ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}: ${out}`)));
  });
  return child;
}

beforeAll(async () => {
  stack = await createStack({ worker: false });
  fake = await FakeLemmy.start();
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await stack?.stop();
  await fake?.close();
});

it('completes a sync interrupted by SIGKILL, without duplicates or a lost refresh', async () => {
  const { instance, host } = normalizeInstance(fake.url);
  fake.addCommunity('crash');
  fake.addPosts('crash', 25);
  const worker = await spawnWorker();
  // The first answer is slow, so the kill lands while the sync is in flight.
  fake.fail({ kind: 'slow', delayMs: 3000 }, { community: 'crash', path: 'post/list' });
  const deps = { config: stack.config, catalog: stack.storage.catalog, router: stack.storage.router, temporal: stack.client };
  const { row } = await startTracking(deps, { instance, host, name: 'crash', refreshSeconds: 3600 });
  await eventually(() => fake.requestsFor('crash', 'post/list') >= 1, 15_000, 20);
  worker.kill('SIGKILL');
  await new Promise((r) => worker.once('exit', r));

  // A refresh sent while no worker runs, for a post that appears meanwhile.
  const [late] = fake.addPosts('crash', 1);
  await stack.client.workflow.getHandle(workflowIdOf(row.ref)).signal(refreshSignal);

  await spawnWorker();
  const ids = await eventually(
    async () => {
      const r = (await communityByRef(stack.storage.catalog, row.ref))!;
      const stored = await stack.storage.router.read(r.shard, async (sql) =>
        (await sql<{ lemmy_id: number }[]>`select lemmy_id from posts where community_id = ${r.id}`).map((x) => x.lemmy_id),
      );
      return stored.includes(late.id) ? stored : undefined;
    },
    40_000,
    200,
  );
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids.length).toBe(20); // the retried first sync stores the newest 20, the late one among them
  // The refresh sent while no worker ran was honoured by the sync that stored the late post (the
  // interrupted first sync, a quick attempt, runs again in full after it, the refresh folded in);
  // the community then waits with no error.
  const status = await eventually(async () => {
    const s = await queryStatus(deps, row.ref);
    return s && s.syncs >= 1 && s.state === 'waiting' ? s : undefined;
  }, 15_000);
  expect(status.lastError).toBeNull();
});
