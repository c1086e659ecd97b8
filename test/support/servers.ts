// The shared servers of a test run: a Temporal dev server and three embedded Postgres servers.
// Started together; if any of them fails to start, every one that did start is stopped again
// before the error is passed on, so a failed run leaves nothing behind on its ports.
import path from 'node:path';
import { EmbeddedPostgresNode } from '../../src/db/embedded.js';
import type { Logger } from '../../src/log.js';
import { TemporalDevServer } from '../../src/temporal/devserver.js';

export interface TestServers {
  temporal: TemporalDevServer;
  nodes: EmbeddedPostgresNode[];
  stop(): Promise<void>;
  /** For an 'exit' hook: signals every server without waiting. */
  killSync(): void;
}

export async function startTestServers(opts: {
  binary: string;
  tmpDir: string;
  temporalPort: number;
  pgPorts: number[];
  log: Logger;
}): Promise<TestServers> {
  const temporal = new TemporalDevServer({
    binary: opts.binary,
    port: opts.temporalPort,
    headless: true,
    log: opts.log.child({ role: 'temporal' }),
  });
  const nodes = opts.pgPorts.map(
    (port, i) =>
      new EmbeddedPostgresNode({
        name: `test-pg-${i}`,
        dir: path.join(opts.tmpDir, `pg-${i}`),
        port,
        log: opts.log.child({ role: 'pg' }),
        // Throw-away data: durability settings off for speed.
        settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '300' },
      }),
  );
  const stop = async () => {
    await Promise.allSettled([temporal.stop(), ...nodes.map((n) => n.stop())]);
  };
  const results = await Promise.allSettled([temporal.start(), ...nodes.map((n) => n.start())]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  return { temporal, nodes, stop, killSync: () => [temporal, ...nodes].forEach((s) => s.killSync()) };
}
