// Secrets stay out of the catalog and the logs: shard node URLs are stored without passwords
// (processes take them from their config), and every URL that is shown is redacted.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { redactUrl } from '../src/config.js';
import { openStorage } from '../src/db/index.js';
import { createLogger } from '../src/log.js';
import { createDatabase, createStack, type Stack } from './support/stack.js';

let stack: Stack;
const log = createLogger({ level: 'silent' });

beforeAll(async () => {
  stack = await createStack({ worker: false });
});
afterAll(async () => {
  await stack?.stop();
});

const passwordOf = (url: string) => decodeURIComponent(new URL(url).password);

describe('shard node URLs in the catalog', () => {
  it('are stored without passwords, and rows written with one are cleaned on start', async () => {
    const { catalog } = stack.storage;
    const password = passwordOf(stack.config.POST_SHARD_NODES![0].url);
    expect(password.length).toBeGreaterThan(3);
    const rows = await catalog<{ name: string; url: string }[]>`select name, url from shard_nodes`;
    expect(rows.length).toBe(2);
    for (const r of rows) {
      expect(r.url).not.toContain(password);
      expect(new URL(r.url).password).toBe('');
    }

    // An older version wrote the password into the row: the next start takes it out.
    await catalog`update shard_nodes set url = ${stack.config.POST_SHARD_NODES![0].url} where name = ${stack.config.POST_SHARD_NODES![0].name}`;
    const again = await openStorage(stack.config, log, { allowEmbedded: false });
    try {
      const [row] = await catalog<{ url: string }[]>`select url from shard_nodes where name = ${stack.config.POST_SHARD_NODES![0].name}`;
      expect(row.url).not.toContain(password);
    } finally {
      await again.close();
    }
  });

  it('a node added at run time is stored without its password and still reachable by other processes', async () => {
    const url = await createDatabase(inject('pgUrls')[0], `t${stack.id}_extra`);
    await stack.storage.router.addNode('extra', url, log);
    const [row] = await stack.storage.catalog<{ url: string }[]>`select url from shard_nodes where name = 'extra'`;
    expect(row.url).not.toContain(passwordOf(url));
    // Another process (not configured with this node) finds it in the catalog and connects.
    const other = await openStorage(stack.config, log, { allowEmbedded: false });
    try {
      await other.router.refreshNodes();
      const [{ one }] = await other.router.pool('extra')<{ one: number }[]>`select 1 as one`;
      expect(one).toBe(1);
    } finally {
      await other.close();
    }
  });
});

describe('redactUrl', () => {
  it.each([
    ['postgres://app:s3cret@db:5432/x', 'postgres://app:***@db:5432/x'],
    ['postgres://db:5432/x?password=s3cret', 'postgres://db:5432/x?password=***'],
    [
      'postgres://db/x?sslmode=require&password=s3cret&application_name=a',
      'postgres://db/x?sslmode=require&password=***&application_name=a',
    ],
    ['postgres://db/x?PASSWORD=s3cret', 'postgres://db/x?PASSWORD=***'],
    ['postgres://db/x', 'postgres://db/x'],
    ['postgres://app:s3c@ret@db:5432/x', 'postgres://app:***@db:5432/x'],
    ['host=db password=s3cret dbname=x', 'host=db password=*** dbname=x'],
    ["password='s3 cret' host=db", 'password=*** host=db'],
    ['postgres://app@db/x?passwordless=1', 'postgres://app@db/x?passwordless=1'],
  ])('%s → %s', (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
    expect(redactUrl(url)).not.toContain('s3cret');
  });
});
