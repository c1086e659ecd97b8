// Runs a role (the worker) as a child process and restarts it with backoff when it dies, so that
// a crash there (a workflow that trips the SDK's deadlock detector aborts the whole Node process)
// never takes the API, the dev server or Postgres with it. The reason for every exit is logged.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from './log.js';

export interface SupervisorOptions {
  name: string;
  /** Script run with this process's Node and loader flags (tsx). */
  script: string;
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** First restart delay; doubles on each crash in a row, up to maxBackoffMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** A child that ran this long counts as healthy: the next crash restarts after minBackoffMs. */
  stableMs?: number;
  /** How long a graceful stop may take before SIGKILL. */
  stopGraceMs?: number;
}

export class Supervisor {
  private child?: ChildProcess;
  private stopping = false;
  private restartTimer?: NodeJS.Timeout;
  private crashesInARow = 0;
  /** Exits so far (crashes and restarts), for logs and tests. */
  restarts = 0;

  constructor(private readonly opts: SupervisorOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    const { name, script, env, log } = this.opts;
    // Same process group (Ctrl-C reaches it directly); an IPC channel so that it can be asked to
    // stop, and notices (disconnect) when we are gone.
    const child = spawn(process.execPath, [...process.execArgv, script], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child = child;
    const startedAt = Date.now();
    log.info({ role: name, pid: child.pid }, `${name} process started`);
    child.once('error', (err) => log.error({ role: name, err: err.message }, `${name} process could not be started`));
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.stopping) return;
      const ranMs = Date.now() - startedAt;
      this.crashesInARow = ranMs >= (this.opts.stableMs ?? 60_000) ? 1 : this.crashesInARow + 1;
      const min = this.opts.minBackoffMs ?? 1000;
      const delay = Math.min(this.opts.maxBackoffMs ?? 30_000, min * 2 ** (this.crashesInARow - 1));
      this.restarts += 1;
      const reason = signal ? `killed by ${signal}` : `exited with code ${code}`;
      log.error(
        { role: name, pid: child.pid, code, signal, ranMs, restartInMs: delay },
        `${name} process ${reason}; restarting in ${delay} ms`,
      );
      this.restartTimer = setTimeout(() => this.start(), delay);
    });
  }

  /** Asks the child to shut down gracefully (IPC), then SIGKILL after the grace time. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.connected) child.send({ type: 'shutdown' }, () => {});
    else child.kill('SIGTERM');
    const grace = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), this.opts.stopGraceMs ?? 20_000).unref());
    if ((await Promise.race([exited, grace])) === 'timeout') {
      this.opts.log.warn({ role: this.opts.name }, `${this.opts.name} did not stop in time; killing it`);
      child.kill('SIGKILL');
      await exited;
    }
  }

  /** For an 'exit' hook. */
  killSync(): void {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.child?.kill('SIGKILL');
  }
}
