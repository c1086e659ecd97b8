// Runs `temporal server start-dev` as a child process: file-backed SQLite (WAL) under DATA_DIR so
// tracked communities survive restarts, the Web UI on its own port, logs prefixed into ours.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../log.js';
import { alive, eachLine, terminate } from '../process.js';

export interface DevServerOptions {
  binary: string;
  /** SQLite file; omitted = in-memory (tests). */
  dbFile?: string;
  port: number;
  uiPort?: number;
  /** No Web UI (tests). */
  headless?: boolean;
  /** Port of the server's own Prometheus metrics (`/metrics`); omitted or 0: a free port the CLI picks. */
  metricsPort?: number;
  namespace?: string;
  /** On top of DEV_SERVER_DYNAMIC_CONFIG (a key set here wins). */
  dynamicConfig?: Record<string, unknown>;
  /** The Go runtime's settings for the server process, on top of DEV_SERVER_GO_RUNTIME. */
  goRuntime?: Partial<GoRuntime>;
  log: Logger;
}

/**
 * What every dev server we start runs with. Eager activity execution: a sync scheduled by a
 * workflow task comes back to the worker in the answer to that task's completion, rather than
 * through a poll of the activity queue (measured in bench/RESULTS.md, "Scale"). Eager workflow
 * start: the same for a workflow's first task, when a worker's own client starts it ("Eager
 * workflow start").
 */
export const DEV_SERVER_DYNAMIC_CONFIG: Readonly<Record<string, unknown>> = {
  'system.enableActivityEagerExecution': true,
  // Starts by a worker's own client (restoreTracking): the first task comes back with the start.
  'system.enableEagerWorkflowStart': true,
};

/** The Go runtime's scheduler and garbage collector, as its environment variables spell them. */
export interface GoRuntime {
  /** Heap growth between collections in % of the live heap (`GOGC`; 'off': only at the memory limit). */
  GOGC: string;
  /** Soft memory limit: the collector runs more often near it, whatever GOGC says (`GOMEMLIMIT`, e.g. `1536MiB`; 'off'). */
  GOMEMLIMIT: string;
  /** Threads running Go code at once (`GOMAXPROCS`; Go's own default: one per core). */
  GOMAXPROCS: string;
}

/**
 * The dev server spent 12 % of its CPU in Go's garbage collector at the default GOGC=100
 * (profiled at 2,000 communities, bench/RESULTS.md "Scale"). Letting the heap grow to five times
 * what is live makes collections a quarter as frequent for a few hundred MB more; the soft limit
 * keeps a large fleet's server well under 2 GB.
 * GOMAXPROCS: half the cores (at least one). The server shares its box with the worker and
 * Postgres, and with a thread per core Go's scheduler keeps waking idle threads to look for work
 * between the server's short calls; on two cores one thread cut its CPU per sync by 5–19 % at
 * 2,000 communities and 27–36 % at 6,000 (bench/RESULTS.md, "The dev server on one Go thread").
 */
export const DEV_SERVER_GO_RUNTIME: Readonly<GoRuntime> = {
  GOGC: '400',
  GOMEMLIMIT: '1536MiB',
  GOMAXPROCS: String(Math.max(1, Math.floor(os.availableParallelism() / 2))),
};

export async function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

export class TemporalDevServer {
  private child?: ChildProcess;
  private pidFile?: string;
  private stopping = false;

  constructor(readonly opts: DevServerOptions) {}

  get address(): string {
    return `127.0.0.1:${this.opts.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    const { binary, dbFile, port, uiPort, log } = this.opts;
    if (dbFile) {
      mkdirSync(path.dirname(dbFile), { recursive: true });
      this.pidFile = `${dbFile}.pid`;
      await this.reclaimOrphan();
    }
    if (await portOpen(port)) {
      throw new Error(
        `port ${port} is already in use: another Temporal server runs there; set TEMPORAL_ADDRESS=localhost:${port} to use it, or stop it`,
      );
    }
    const args = [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--log-level',
      'warn',
      '--namespace',
      this.opts.namespace ?? 'default',
    ];
    if (dbFile) {
      args.push('--db-filename', dbFile, '--sqlite-pragma', 'journal_mode=WAL', '--sqlite-pragma', 'synchronous=NORMAL');
    }
    if (this.opts.metricsPort) args.push('--metrics-port', String(this.opts.metricsPort));
    if (this.opts.headless) args.push('--headless');
    else if (uiPort) args.push('--ui-port', String(uiPort));
    for (const [k, v] of Object.entries({ ...DEV_SERVER_DYNAMIC_CONFIG, ...this.opts.dynamicConfig }))
      args.push('--dynamic-config-value', `${k}=${JSON.stringify(v)}`);

    // Own process group: we stop it after the worker has shut down, not when Ctrl-C arrives.
    const env = { ...process.env, ...DEV_SERVER_GO_RUNTIME, ...this.opts.goRuntime };
    const child = spawn(binary, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child = child;
    if (this.pidFile) writeFileSync(this.pidFile, String(child.pid));
    const relay = (stream: NodeJS.ReadableStream) =>
      eachLine(stream, (line) => {
        if (!line.trim() || this.stopping) return; // shutdown chatter (closed pollers) is noise
        const level = /level=(ERROR|WARN)/.exec(line)?.[1];
        if (level === 'ERROR') log.error(line.trim());
        else if (level === 'WARN') log.warn(line.trim());
        else log.info(line.trim());
      });
    relay(child.stdout!);
    relay(child.stderr!);
    let exited: number | null | undefined;
    child.once('exit', (code) => {
      exited = code;
      this.child = undefined;
    });
    const deadline = Date.now() + 60_000;
    while (!(await portOpen(port))) {
      if (exited !== undefined) throw new Error(`temporal server start-dev exited with code ${exited} (see the [temporal] lines above)`);
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`temporal server start-dev did not open port ${port} within 60 s`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    child.unref();
  }

  /** A dev server left running by a run that was killed holds our SQLite file: stop it. */
  private async reclaimOrphan(): Promise<void> {
    if (!this.pidFile || !existsSync(this.pidFile)) return;
    const pid = Number(readFileSync(this.pidFile, 'utf8'));
    if (pid && alive(pid)) {
      const cmdline = (() => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        } catch {
          return '';
        }
      })();
      if (cmdline.includes('start-dev')) {
        this.opts.log.warn({ pid }, 'stopping a Temporal dev server left running by a previous run');
        await terminate(pid);
      }
    }
    rmSync(this.pidFile, { force: true });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.child?.pid) await terminate(this.child.pid);
    this.child = undefined;
    if (this.pidFile) rmSync(this.pidFile, { force: true });
  }

  killSync(): void {
    if (this.child?.pid && alive(this.child.pid)) process.kill(this.child.pid, 'SIGTERM');
  }
}
