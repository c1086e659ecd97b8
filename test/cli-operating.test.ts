// Runs every `temporal workflow …` command shown in README.md, as a
// child process against the test Temporal server, on real trackCommunity workflows, and checks
// what each one does.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApp } from '../api/app.js';
import type { ApiDeps } from '../api/server.js';
import { listCommunities } from '../src/db/communities.js';
import { createLogger } from '../src/log.js';
import { stopTracking } from '../src/tracking.js';
import { FakeLemmy } from './fake-lemmy.js';
import { createStack, eventually, type Stack, queryStatus, apiDeps } from './support/stack.js';

const run = promisify(execFile);
const DOC_ID = 'community:technology@lemmy.world';

/** The commands in the ```sh blocks of the README's "Operating with the Temporal CLI" section. */
function docCommands(): string[] {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('### Operating with the Temporal CLI');
  const md = readme.slice(start, readme.indexOf('\n## ', start));
  const blocks = [...md.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1].trim());
  return blocks.flatMap((b) => b.split('\n')).filter((l) => l.startsWith('temporal '));
}

/** Splits a shell line into argv (single and double quotes only; enough for the doc). */
function argv(line: string): string[] {
  const out: string[] = [];
  const re = /'([^']*)'|"([^"]*)"|(\S+)/g;
  for (let m; (m = re.exec(line));) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

describe('Operating with the Temporal CLI (README.md)', () => {
  let stack: Stack;
  let fake: FakeLemmy;
  let deps: ApiDeps;
  const cli = inject('temporalCli');
  const address = inject('temporalAddress');
  const commands = docCommands();
  const find = (prefix: string) => {
    const c = commands.find((l) => l.startsWith(prefix));
    if (!c) throw new Error(`the doc shows no "${prefix}" command`);
    return c;
  };
  /** Runs a doc command against this stack: the example id replaced, the test server's address added. */
  const runDoc = async (line: string, workflowId?: string) => {
    const args = argv(workflowId ? line.replaceAll(DOC_ID, workflowId) : line).slice(1);
    const { stdout } = await run(cli, [...args, '--address', address], { timeout: 30_000 });
    return stdout;
  };
  const ref = (name: string) => `${name}@${fake.hostPort}`;

  beforeAll(async () => {
    [stack, fake] = await Promise.all([createStack(), FakeLemmy.start()]);
    deps = apiDeps(stack, createLogger({ level: 'silent' }));
    const app = createApp(deps);
    for (const name of ['technology', 'tocancel', 'toterminate']) {
      fake.addCommunity(name);
      fake.addPosts(name, 3);
      const r = await app.request('/api/communities', {
        method: 'POST',
        body: JSON.stringify({ instance: fake.url, name }),
        headers: { 'content-type': 'application/json' },
      });
      expect(r.status).toBe(201);
    }
    for (const name of ['technology', 'tocancel', 'toterminate']) {
      await eventually(async () => (await queryStatus(deps, ref(name)))?.syncs === 1, 30_000);
    }
  });
  afterAll(async () => {
    if (stack) {
      for (const row of await listCommunities(stack.storage.catalog).catch(() => [])) await stopTracking(deps, row).catch(() => {});
      await stack.stop();
    }
    await fake?.close();
  });

  it('the doc shows list, describe, query, signal refresh, setRefreshInterval, cancel and terminate', () => {
    for (const p of [
      'temporal workflow list',
      'temporal workflow describe',
      'temporal workflow query',
      'temporal workflow signal',
      'temporal workflow cancel',
      'temporal workflow terminate',
    ])
      find(p);
    expect(commands.filter((c) => c.includes('--name refresh'))).toHaveLength(1);
    expect(commands.filter((c) => c.includes('--name setRefreshInterval'))).toHaveLength(1);
    expect(find('temporal workflow signal')).toBe(`temporal workflow signal --workflow-id ${DOC_ID} --name refresh`);
  });

  it('list shows the tracked workflows', async () => {
    const out = await eventually(async () => {
      const o = await runDoc(find('temporal workflow list'));
      return ['technology', 'tocancel', 'toterminate'].every((n) => o.includes(`community:${ref(n)}`)) ? o : undefined;
    });
    expect(out).toContain('trackCommunity');
  });

  it('describe shows one workflow', async () => {
    const out = await runDoc(find('temporal workflow describe'), `community:${ref('technology')}`);
    expect(out).toContain(`community:${ref('technology')}`);
    expect(out).toMatch(/Type\s+trackCommunity/);
    expect(out).toMatch(/Pending Activities/);
    expect(out).not.toMatch(/Status\s+(Canceled|Terminated|Completed|Failed)/i);
  });

  it('query --type status returns the live status', async () => {
    const out = await runDoc(find('temporal workflow query'), `community:${ref('technology')}`);
    expect(out).toMatch(/"state":\s*"waiting"/);
    expect(out).toMatch(/"postsStored":\s*3/);
  });

  it('signal --name refresh syncs now', async () => {
    fake.addPosts('technology', 2);
    await runDoc(
      commands.find((c) => c.includes('--name refresh'))!,
      `community:${ref('technology')}`,
    );
    const s = await eventually(async () => {
      const st = await queryStatus(deps, ref('technology'));
      return st && st.syncs >= 2 && st.state === 'waiting' ? st : undefined;
    });
    expect(s.postsStored).toBe(5);
  });

  it('signal --name setRefreshInterval --input 600 changes the interval', async () => {
    await runDoc(
      commands.find((c) => c.includes('--name setRefreshInterval'))!,
      `community:${ref('technology')}`,
    );
    const s = await eventually(async () => {
      const st = await queryStatus(deps, ref('technology'));
      return st?.refreshSeconds === 600 ? st : undefined;
    });
    expect(Date.parse(s.nextSyncAt!) - Date.parse(s.lastSyncAt!)).toBeGreaterThan(590_000);
  });

  it('cancel stops the workflow but keeps the row; a refresh from the API restarts it', async () => {
    const id = `community:${ref('tocancel')}`;
    await runDoc(find('temporal workflow cancel'), id);
    await eventually(async () => (await stack.client.workflow.getHandle(id).describe()).status.name === 'CANCELLED');
    const app = createApp(deps);
    const got = await app.request(`/api/communities/${ref('tocancel')}`);
    expect(got.status).toBe(200);
    expect((await got.json()).status.state).toBe('stopped');
    expect((await app.request(`/api/communities/${ref('tocancel')}/refresh`, { method: 'POST' })).status).toBe(202);
    await eventually(async () => (await stack.client.workflow.getHandle(id).describe()).status.name === 'RUNNING');
  });

  it('start --type restoreTracking starts every stopped workflow from the catalog, and leaves running ones alone', async () => {
    const [kept, ...lost] = ['technology', 'tocancel', 'toterminate'].map((n) => stack.client.workflow.getHandle(`community:${ref(n)}`));
    // The first run of the workflow's chain: a roll-over (continue-as-new) keeps it, a restart does not.
    const runOf = async (h: typeof kept) => (await h.describe()).raw.workflowExecutionInfo?.firstRunId;
    for (const h of lost) await h.terminate('lost with Temporal state');
    const keptRun = await runOf(kept);
    expect(keptRun).toMatch(/\w/);
    // The doc's command, on this stack's task queue.
    const start = find('temporal workflow start --type restoreTracking').replace('lemmy-fetcher', stack.config.TEMPORAL_TASK_QUEUE);
    await runDoc(start);
    expect(JSON.parse(await runDoc(find('temporal workflow result --workflow-id restore-tracking') + ' --output json'))).toMatchObject({
      result: { restored: 2, resumed: 2, running: 1 },
    });
    for (const h of lost) expect((await h.describe()).status.name).toBe('RUNNING');
    expect(await runOf(kept)).toBe(keptRun);
    // The restored runs had synced: each takes up its schedule from the catalog and waits for its next sync.
    for (const n of ['tocancel', 'toterminate']) {
      const row = (await listCommunities(stack.storage.catalog)).find((r) => r.ref === ref(n))!;
      expect(await queryStatus(deps, ref(n))).toMatchObject({
        state: 'waiting',
        syncs: row.syncs,
        lastSyncAt: row.last_update!.toISOString(),
        nextSyncAt: row.next_sync_at!.toISOString(),
      });
    }
    // Again: nothing to start, nothing restarted.
    const runs = await Promise.all(lost.map(runOf));
    await runDoc(start);
    expect(JSON.parse(await runDoc(find('temporal workflow result --workflow-id restore-tracking') + ' --output json')).result).toEqual(
      expect.objectContaining({ restored: 0, running: 3 }),
    );
    expect(await Promise.all(lost.map(runOf))).toEqual(runs);
    expect(await runOf(kept)).toBe(keptRun);
  });

  it('terminate kills the workflow at once; the row stays; a refresh restarts it', async () => {
    const id = `community:${ref('toterminate')}`;
    await runDoc(find('temporal workflow terminate'), id);
    expect((await stack.client.workflow.getHandle(id).describe()).status.name).toBe('TERMINATED');
    const app = createApp(deps);
    expect((await app.request(`/api/communities/${ref('toterminate')}`)).status).toBe(200);
    expect((await app.request(`/api/communities/${ref('toterminate')}/refresh`, { method: 'POST' })).status).toBe(202);
    await eventually(async () => (await queryStatus(deps, ref('toterminate')))?.state === 'waiting');
  });
});
