// The fleet's state on the API's GET /metrics, as an operator watches a start-up or a stalled
// worker: lemmy_fetcher_communities{state} counts every tracked community by the state its status
// shows (syncing until a first sync ends), lemmy_fetcher_communities_overdue those whose next sync
// is more than COMMUNITY_OVERDUE_SECONDS late, lemmy_fetcher_workflow_task_backlog{task_queue} the
// workflow tasks no worker has taken yet. A catalog or a Temporal that does not answer leaves its
// gauges empty (overdue NaN), and the scrape still answers 200.
import { Client, Connection } from '@temporalio/client';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer } from '../api/server.js';
import { COMMUNITY_STATES } from '../src/db/communities.js';
import { createLogger } from '../src/log.js';
import { FakeLemmy } from './fake-lemmy.js';
import { apiDeps, createStack, eventually, type Stack } from './support/stack.js';

const log = createLogger({ level: 'silent' });
let stack: Stack;
let fake: FakeLemmy;
let api: { close(): Promise<void>; port: number };
let url: string;

interface Gauges {
  status: number;
  byState: Record<string, number>;
  overdue: number | undefined;
  backlog: Record<string, number>;
}

async function scrape(base = url): Promise<Gauges> {
  const res = await fetch(`${base}/metrics`);
  const text = await res.text();
  const byState: Record<string, number> = {};
  let overdue: number | undefined;
  const backlog: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const b = /^lemmy_fetcher_workflow_task_backlog\{task_queue="([^"]+)"\} (\S+)$/.exec(line);
    if (b) backlog[b[1]] = Number(b[2]);
    const m = /^lemmy_fetcher_communities\{state="([a-z_]+)"\} (\S+)$/.exec(line);
    if (m) byState[m[1]] = Number(m[2]);
    const o = /^lemmy_fetcher_communities_overdue (\S+)$/.exec(line);
    if (o) overdue = Number(o[1]);
  }
  return { status: res.status, byState, overdue, backlog };
}

async function add(name: string, refreshSeconds: number): Promise<string> {
  fake.addCommunity(name);
  fake.addPosts(name, 2);
  const res = await fetch(`${url}/api/communities`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ instance: fake.url, name, refreshSeconds }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { ref: string }).ref;
}

beforeAll(async () => {
  [stack, fake] = await Promise.all([createStack({ env: { COMMUNITY_OVERDUE_SECONDS: '1' } }), FakeLemmy.start()]);
  api = await startApiServer({ ...apiDeps(stack, log), config: { ...stack.config, PORT: 0, HOST: '127.0.0.1' } });
  url = `http://127.0.0.1:${api.port}`;
}, 60_000);
afterAll(async () => {
  await api?.close();
  await stack?.stop();
  await fake?.close();
});

describe('the fleet gauges on GET /metrics', () => {
  it('start at zero in every state', async () => {
    const g = await scrape();
    expect(g.status).toBe(200);
    expect(g.byState).toEqual(Object.fromEntries(COMMUNITY_STATES.map((s) => [s, 0])));
    expect(g.overdue).toBe(0);
    expect(g.backlog).toEqual({ [stack.config.TEMPORAL_TASK_QUEUE]: 0, [stack.config.TEMPORAL_QUIET_TASK_QUEUE]: 0 });
  });

  it('follow communities through their first sync, a pause, a stopped worker and a start-up without one', async () => {
    await add('steady', 600);
    const fast = await add('fast', 2);
    const paused = await add('held', 600);
    // Both first syncs end: waiting (the paused one counts as paused once paused).
    await eventually(async () => ((await scrape()).byState.waiting === 3 ? true : undefined), 30_000);
    const pausing = await fetch(`${url}/api/admin/communities/${encodeURIComponent(paused)}/pause`, { method: 'POST' });
    expect(pausing.status).toBe(200);
    let g = await scrape();
    expect(g.byState).toMatchObject({ waiting: 2, paused: 1, syncing: 0 });
    expect(g.overdue).toBe(0);

    // The worker stops: the 2 s community falls behind, and is counted once it is more than 1 s late.
    await stack.worker!.shutdown();
    g = await eventually(async () => {
      const now = await scrape();
      return now.overdue === 1 ? now : undefined;
    }, 15_000);
    expect(g.byState).toMatchObject({ waiting: 2, paused: 1 });

    // Added while no worker runs: tracked, not yet synced, as every community is early in a start-up.
    await add('queued', 600);
    g = await scrape();
    expect(g.byState).toMatchObject({ syncing: 1, waiting: 2, paused: 1 });
    const listed = (await (await fetch(`${url}/api/communities?limit=100`)).json()) as { communities: unknown[] };
    expect(Object.values(g.byState).reduce((a, b) => a + b, 0)).toBe(listed.communities.length);
    // Its first workflow task waits for a worker (Temporal counts it within seconds).
    const queue = stack.config.TEMPORAL_TASK_QUEUE;
    await eventually(async () => ((await scrape()).backlog[queue] >= 1 ? true : undefined), 30_000);

    // A worker again: the first sync of the new one ends, and nothing is overdue any more.
    await stack.startWorker();
    g = await eventually(async () => {
      const now = await scrape();
      return now.byState.syncing === 0 && now.overdue === 0 && now.backlog[queue] === 0 ? now : undefined;
    }, 30_000);
    expect(g.byState).toMatchObject({ waiting: 3, paused: 1 });
    expect(fast).toBe(`fast@${new URL(fake.url).host}`);
  });

  it('leave the gauges empty when the catalog and Temporal do not answer, and still answer 200', async () => {
    const dead = postgres('postgres://nobody@127.0.0.1:1/none', { connect_timeout: 1, max: 1 });
    const deadTemporal = Connection.lazy({ address: '127.0.0.1:1' });
    const other = await startApiServer({
      ...apiDeps(stack, log),
      catalog: dead,
      temporal: new Client({ connection: deadTemporal }),
      config: { ...stack.config, PORT: 0, HOST: '127.0.0.1' },
    });
    try {
      const g = await scrape(`http://127.0.0.1:${other.port}`);
      expect(g.status).toBe(200);
      expect(g.byState).toEqual({});
      expect(g.overdue).toBeNaN();
      expect(g.backlog).toEqual({});
    } finally {
      await other.close();
      await deadTemporal.close();
      await dead.end({ timeout: 1 });
    }
  });
});
