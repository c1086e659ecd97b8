// Starts the real parts every test file shares: a Temporal dev server (built from its Go module
// when not cached), three embedded Postgres servers, and the workflow bundle. Each test file
// creates its own databases and task queue on them (see support/stack.ts).
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { createLogger } from '../src/log.js';
import { ensureTemporalCli } from '../src/temporal/cli.js';
import { bundleWorkflows } from '../src/worker-runtime.js';
import { guardAgainstOrphans } from './support/orphan-guard.js';
import { freePorts } from './support/ports.js';
import { startTestServers } from './support/servers.js';

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
  const unguard = guardAgainstOrphans(tmpDir, temporalPort);
  // Whatever fails from here on (a port taken, initdb refused, the bundle broken), nothing that
  // was started may outlive this run: vitest calls no teardown for a setup that threw.
  const cleanup = () => rmSync(tmpDir, { recursive: true, force: true });
  const [started_, bundled] = await Promise.allSettled([
    startTestServers({ binary, tmpDir, temporalPort, pgPorts, log }),
    bundleWorkflows(),
  ]);
  if (started_.status === 'rejected' || bundled.status === 'rejected') {
    // startTestServers stopped its own servers if it failed; the bundle may have failed alone.
    if (started_.status === 'fulfilled') await started_.value.stop();
    unguard();
    cleanup();
    throw started_.status === 'rejected' ? started_.reason : (bundled as PromiseRejectedResult).reason;
  }
  const servers = started_.value;
  // If vitest exits without running the teardown (Ctrl-C, a crash), still stop the servers.
  const killAll = () => servers.killSync();
  process.once('exit', killAll);
  const workflowBundlePath = path.join(tmpDir, 'workflow-bundle.js');
  writeFileSync(workflowBundlePath, bundled.value.code);
  process.stderr.write(
    `[global-setup] Temporal on ${servers.temporal.address}, Postgres on ${pgPorts.join(', ')}, ready in ${Date.now() - started} ms\n`,
  );

  project.provide('temporalAddress', servers.temporal.address);
  project.provide('temporalCli', binary);
  project.provide(
    'pgUrls',
    servers.nodes.map((n) => n.url),
  );
  project.provide('workflowBundlePath', workflowBundlePath);
  project.provide('tmpDir', tmpDir);

  return async () => {
    process.off('exit', killAll);
    unguard();
    await servers.stop();
    cleanup();
  };
}
