// Starts the real parts every test file shares: a Temporal dev server (built from its Go module
// when not cached), three embedded Postgres servers, and the workflow bundle. Each test file
// creates its own databases and task queue on them (see support/stack.ts).
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { EmbeddedPostgresNode } from '../src/db/embedded.js';
import { createLogger } from '../src/log.js';
import { ensureTemporalCli } from '../src/temporal/cli.js';
import { TemporalDevServer } from '../src/temporal/devserver.js';
import { bundleWorkflows } from '../src/worker-runtime.js';
import { freePorts } from './support/ports.js';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalCli: string;
    pgUrls: string[];
    workflowBundlePath: string;
    tmpDir: string;
  }
}

export default async function setup(project: TestProject) {
  const log = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'warn', format: 'pretty' });
  const started = Date.now();
  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'lemmy-fetcher-test-'));
  chmodSync(tmpDir, 0o755); // Postgres runs as its own user and must reach its data dir
  const [temporalPort, ...pgPorts] = await freePorts(4);
  const binary = await ensureTemporalCli((line) => process.stderr.write(`[temporal-cli] ${line}\n`));
  const temporal = new TemporalDevServer({ binary, port: temporalPort, headless: true, log: log.child({ role: 'temporal' }) });
  const nodes = pgPorts.map(
    (port, i) =>
      new EmbeddedPostgresNode({
        name: `test-pg-${i}`,
        dir: path.join(tmpDir, `pg-${i}`),
        port,
        log: log.child({ role: 'pg' }),
        // Throw-away data: durability settings off for speed.
        settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '300' },
      }),
  );
  const [bundle] = await Promise.all([bundleWorkflows(), temporal.start(), ...nodes.map((n) => n.start())]);
  const workflowBundlePath = path.join(tmpDir, 'workflow-bundle.js');
  writeFileSync(workflowBundlePath, bundle.code);
  process.stderr.write(`[global-setup] Temporal on ${temporal.address}, Postgres on ${pgPorts.join(', ')}, ready in ${Date.now() - started} ms\n`);

  project.provide('temporalAddress', temporal.address);
  project.provide('temporalCli', binary);
  project.provide('pgUrls', nodes.map((n) => n.url));
  project.provide('workflowBundlePath', workflowBundlePath);
  project.provide('tmpDir', tmpDir);

  return async () => {
    await temporal.stop();
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(tmpDir, { recursive: true, force: true });
  };
}
