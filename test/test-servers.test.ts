// The test run's own start path: when one server cannot start (here a Postgres port is taken),
// the ones that did start are stopped before the error is reported, so the next `npm test`
// does not fail on ports left busy by this one.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, inject, it } from 'vitest';
import { createLogger } from '../src/log.js';
import { portOpen } from '../src/temporal/devserver.js';
import { freePorts } from './support/ports.js';
import { startTestServers } from './support/servers.js';

const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-servers-'));
afterAll(() => rmSync(tmpDir, { recursive: true, force: true }));

it('a failed start leaves no dev server or Postgres running', async () => {
  const [temporalPort, pg1, busy, pg3] = await freePorts(4);
  const blocker = net.createServer().listen(busy, '127.0.0.1');
  await new Promise((r) => blocker.once('listening', r));
  try {
    const log = createLogger({ level: 'silent', format: 'json' });
    await expect(startTestServers({ binary: inject('temporalCli'), tmpDir, temporalPort, pgPorts: [pg1, busy, pg3], log })).rejects.toThrow(
      /exited|bind|use/i,
    );
    for (const port of [temporalPort, pg1, pg3]) expect(await portOpen(port), `port ${port} still open`).toBe(false);
  } finally {
    blocker.close();
  }
}, 120_000);
