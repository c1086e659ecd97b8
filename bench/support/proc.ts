// Process CPU/RSS sampling from /proc (Linux only), and spawning `npm run worker` as a child.
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let clkTck = 100;
try {
  clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  /* default */
}

export interface ProcSample {
  /** user + system CPU seconds so far */
  cpuSeconds: number;
  /** resident set size, bytes */
  rssBytes: number;
  /** CPU seconds of exited children it waited for (cutime + cstime) */
  childCpuSeconds: number;
}

/** CPU time (/proc/<pid>/stat) and RSS (/proc/<pid>/status VmRSS), or undefined if the process is gone. */
export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" of comm: state is field 3; utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    const cutime = Number(rest[13]);
    const cstime = Number(rest[14]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { cpuSeconds: (utime + stime) / clkTck, rssBytes: rssKb * 1024, childCpuSeconds: (cutime + cstime) / clkTck };
  } catch {
    return undefined;
  }
}

/** Samples a set of processes every `intervalMs`: CPU % over a window and peak/last RSS. */
export class ProcMonitor {
  private timer?: NodeJS.Timeout;
  private readonly peak = new Map<string, number>();
  private readonly last = new Map<string, number>();
  private marks = new Map<string, { at: number; cpu: number }>();

  constructor(
    private readonly pids: Record<string, number | undefined>,
    private readonly intervalMs = 500,
  ) {}

  start(): this {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.tick();
  }

  setPid(name: string, pid: number | undefined): void {
    this.pids[name] = pid;
  }

  private tick(): void {
    for (const [name, pid] of Object.entries(this.pids)) {
      if (!pid) continue;
      const s = sampleProc(pid);
      if (!s) continue;
      this.last.set(name, s.rssBytes);
      this.peak.set(name, Math.max(this.peak.get(name) ?? 0, s.rssBytes));
    }
  }

  /** Starts a CPU measurement window for every process. */
  markCpu(): void {
    this.marks = new Map();
    for (const [name, pid] of Object.entries(this.pids)) {
      const s = pid ? sampleProc(pid) : undefined;
      if (s) this.marks.set(name, { at: Date.now(), cpu: s.cpuSeconds });
    }
  }

  /** CPU % (100 = one core) per process since markCpu(). */
  cpuPercent(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.pids)) {
      const m = this.marks.get(name);
      const s = pid ? sampleProc(pid) : undefined;
      if (!m || !s) continue;
      out[name] = (100 * (s.cpuSeconds - m.cpu)) / Math.max(0.001, (Date.now() - m.at) / 1000);
    }
    return out;
  }

  peakRss(name: string): number {
    return this.peak.get(name) ?? 0;
  }

  lastRss(name: string): number {
    return this.last.get(name) ?? 0;
  }
}

/** All descendants' pids of `pid`, found by scanning /proc/<n>/stat parent pids. */
export function descendants(pid: number): number[] {
  const parentOf = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parentOf.get(ppid);
      if (list) list.push(Number(name));
      else parentOf.set(ppid, [Number(name)]);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const k of parentOf.get(p) ?? []) {
      out.push(k);
      walk(k);
    }
  };
  walk(pid);
  return out;
}

/**
 * CPU seconds of each process tree (e.g. a postmaster and its backends): live processes' own CPU
 * plus the roots' reaped children, so backends that exit between two samples still count.
 */
export function treeCpuSeconds(roots: number[]): number {
  let total = 0;
  for (const root of roots) {
    const r = sampleProc(root);
    if (r) total += r.cpuSeconds + r.childCpuSeconds;
    for (const p of descendants(root)) total += sampleProc(p)?.cpuSeconds ?? 0;
  }
  return total;
}

/** RSS of each process tree, summed (shared memory counted once per process, so an overestimate). */
export function treeRssBytes(roots: number[]): number {
  let total = 0;
  for (const root of roots) for (const p of [root, ...descendants(root)]) total += sampleProc(p)?.rssBytes ?? 0;
  return total;
}

export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string | null>;
  /** Output (stdout, JSON log lines) seen so far, trimmed to the last 64 kB. */
  output(): string;
}

/**
 * Spawns `npm run worker`'s entry point (node directly, so a SIGKILL hits the worker itself) with
 * `env` on top of this process's environment, and resolves once it logs 'worker ready'.
 */
/** `root`: a checkout to run the worker from (another revision, for a before → after run); default this one. */
export async function spawnWorkerProcess(
  env: Record<string, string>,
  opts: { readyTimeoutMs?: number; root?: string; nodeFlags?: string[] } = {},
): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [...(opts.nodeFlags ?? []), '--import', 'tsx', 'src/worker.ts'], {
    cwd: opts.root ?? ROOT,
    env: { ...process.env, ...env, LOG_FORMAT: 'json', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const append = (c: Buffer) => {
    out = (out + c.toString()).slice(-65_536);
  };
  child.stderr!.on('data', append);
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`worker not ready within ${opts.readyTimeoutMs ?? 60_000} ms: ${out}`)),
      opts.readyTimeoutMs ?? 60_000,
    );
    child.stdout!.on('data', (c: Buffer) => {
      append(c);
      if (out.includes('worker ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code}: ${out}`));
    });
  });
  return { child, pid: child.pid!, exited, output: () => out };
}

/** CPU milliseconds (user + system) this process has used since `start` (a `process.cpuUsage()`). */
export function processCpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}
