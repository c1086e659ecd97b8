// `npm run shards -- <command>`: operate post-shard nodes.
//   add <name> <postgres-url>   register a node and apply the shard migrations to it
//   status                      each node's logical shards, communities and post counts
//   rebalance [--wait]          start (or join) the rebalanceShards workflow; --wait prints its result
// Uses CATALOG_DATABASE_URL / POST_SHARD_URLS; when they are unset it connects to the embedded
// nodes of a running `npm start` (passwords under DATA_DIR/pg/<node>/password).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { shardStatus } from './db/sharding/moves.js';
import { shardNodeUrl, withoutPassword } from './db/sharding/router.js';
import { REBALANCE_WORKFLOW_ID, startRebalance } from './rebalancing.js';
import type { RebalanceResult } from '../workflows/rebalanceShards.js';
import { ConfigError, loadConfig, redactUrl, type Config } from './config.js';
import { embeddedNodeDir } from './db/embedded.js';
import { EMBEDDED_SHARD_NODES, openStorage, type Storage } from './db/index.js';
import { createLogger } from './log.js';
import { connectClient } from './temporal/client.js';

const USAGE = `usage: npm run shards -- <command>
  add <name> <postgres-url>   register a post-shard node and apply the shard migrations
  status                      show each node's logical shards, communities and posts
  rebalance [--wait]          start the rebalanceShards workflow (--wait: until it finishes)`;

function fail(message: string, code = 1): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

/** URLs of the embedded nodes a running `npm start` uses, or undefined when there are none. */
function embeddedUrls(config: Config): { catalog: string; shards: { name: string; url: string }[] } | undefined {
  const names = ['catalog', ...EMBEDDED_SHARD_NODES];
  const urls: string[] = [];
  for (const [i, name] of names.entries()) {
    const pw = path.join(embeddedNodeDir(config.DATA_DIR, name, config.EMBEDDED_PG_SYSTEM_DIR), 'password');
    if (!existsSync(pw)) return undefined;
    let password: string;
    try {
      password = readFileSync(pw, 'utf8').trim();
    } catch (err) {
      fail(`cannot read ${pw}: ${(err as Error).message} (run as the user that runs \`npm start\`)`);
    }
    urls.push(`postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${config.EMBEDDED_PG_PORT + i}/postgres`);
  }
  return { catalog: urls[0], shards: names.slice(1).map((name, i) => ({ name, url: urls[i + 1] })) };
}

function ranges(shards: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < shards.length; i++) {
    let j = i;
    while (j + 1 < shards.length && shards[j + 1] === shards[j] + 1) j++;
    out.push(j > i ? `${shards[i]}-${shards[j]}` : String(shards[i]));
    i = j;
  }
  return out.join(',') || '-';
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const [command, ...args] = process.argv.slice(2);
if (!command || command === '--help' || command === '-h' || !['add', 'status', 'rebalance'].includes(command)) {
  fail(USAGE, command && !['--help', '-h'].includes(command) ? 2 : 0);
}

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  fail((err as Error).message, err instanceof ConfigError ? 2 : 1);
}
const log = createLogger({ level: config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, format: config.LOG_FORMAT ?? 'pretty' });

const usingEmbedded = !config.CATALOG_DATABASE_URL;
if (!config.CATALOG_DATABASE_URL) {
  const found = embeddedUrls(config);
  if (!found) {
    fail(
      'CATALOG_DATABASE_URL and POST_SHARD_URLS are not set and no embedded nodes were found under ' +
        `${path.join(config.DATA_DIR, 'pg')}.\nSet CATALOG_DATABASE_URL=postgres://... and POST_SHARD_URLS=name=postgres://...,... ` +
        'to the databases the worker uses, or run this next to a running `npm start` (same DATA_DIR and EMBEDDED_PG_PORT).',
      2,
    );
  }
  config = { ...config, CATALOG_DATABASE_URL: found.catalog, POST_SHARD_NODES: found.shards };
}

let storage: Storage;
try {
  storage = await openStorage(config, log, { allowEmbedded: false });
} catch (err) {
  fail(
    `cannot open the catalog: ${redactUrl((err as Error).message)}${!usingEmbedded ? '' : '\n(is `npm start` running? its embedded Postgres nodes must be up)'}`,
  );
}

try {
  if (command === 'add') {
    const [name, url] = args;
    if (!name || !url || args.length !== 2) fail(`usage: npm run shards -- add <name> <postgres-url>`, 2);
    if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(name)) fail('node name must be lower-case letters, digits, "-" or "_" (at most 63)', 2);
    if (!/^postgres(ql)?:\/\//.test(url)) fail('the url must be a postgres:// or postgresql:// connection string', 2);
    const existing = await shardNodeUrl(storage.catalog, name);
    if (existing && existing !== withoutPassword(url))
      fail(`a node named "${name}" is already registered with another URL (${redactUrl(existing)}); pick another name`, 1);
    await storage.router.addNode(name, url, log);
    process.stdout.write(
      `registered node "${name}" (${redactUrl(url)}) and applied the shard migrations.\n` +
        'It holds no logical shards yet: run `npm run shards -- rebalance` to move some onto it.\n',
    );
  } else if (command === 'status') {
    const status = await shardStatus(storage.router, redactUrl);
    const rows = [['node', 'up', 'logical shards', '#', 'communities', 'posts', 'url']];
    for (const n of status.nodes) {
      rows.push([
        n.node,
        n.up ? 'yes' : 'NO',
        ranges(n.shards),
        String(n.shards.length),
        String(n.communities),
        n.posts === null ? '?' : String(n.posts),
        n.url,
      ]);
    }
    process.stdout.write(`${table(rows)}\n${status.logicalShards} logical shards.\n`);
    for (const n of status.nodes) if (!n.up) process.stdout.write(`node ${n.node} is down: ${n.error}\n`);
  } else {
    const wait = args.includes('--wait');
    const address = config.TEMPORAL_ADDRESS ?? `localhost:${config.TEMPORAL_DEV_PORT}`;
    const client = await connectClient(address, config.TEMPORAL_NAMESPACE);
    try {
      const handle = await startRebalance(client, config.TEMPORAL_TASK_QUEUE);
      process.stdout.write(
        `rebalance workflow ${REBALANCE_WORKFLOW_ID} running (run ${handle.firstExecutionRunId}); see it in the Temporal UI.\n`,
      );
      if (wait) {
        const result = (await handle.result()) as RebalanceResult;
        for (const m of result.moves) {
          process.stdout.write(`  shard ${m.shard}: ${m.from} → ${m.to} (${m.posts} posts) ${m.ok ? 'moved' : `FAILED: ${m.error}`}\n`);
        }
        if (result.moves.length === 0) process.stdout.write('  nothing to move: nodes are balanced.\n');
        process.stdout.write(
          `posts per node before: ${JSON.stringify(result.before)}\nposts per node after:  ${JSON.stringify(result.after)}\n`,
        );
        if (result.moves.some((m) => !m.ok)) process.exitCode = 1;
      }
    } finally {
      await client.connection.close();
    }
  }
} catch (err) {
  process.stderr.write(`${redactUrl((err as Error).message)}\n`);
  process.exitCode = 1;
} finally {
  await storage.close();
}
