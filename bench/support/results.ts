// Appends a bench's table to bench/RESULTS.md with date, commit and machine. Append only: other
// benches (e.g. the sharding ones) append their own sections to the same file.
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

export const RESULTS_PATH = fileURLToPath(new URL('../RESULTS.md', import.meta.url));

export function commit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', cwd: fileURLToPath(new URL('../..', import.meta.url)) }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { encoding: 'utf8', cwd: fileURLToPath(new URL('../..', import.meta.url)) }).trim();
    return dirty ? `${sha} (+ uncommitted changes)` : sha;
  } catch {
    return 'unknown';
  }
}

export function machine(): string {
  let memTotal = `${Math.round(os.totalmem() / 1024 / 1024)} MB`;
  let cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  try {
    const kb = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]);
    if (kb) memTotal = `${(kb / 1024 / 1024).toFixed(1)} GiB`;
    cpu = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    /* not Linux */
  }
  return `${os.availableParallelism()} CPUs (nproc), ${memTotal} RAM, ${cpu}, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

/** Appends `## title` with date, commit, machine, the command, the table and notes. */
export function appendResults(title: string, markdownTable: string, opts: { command?: string; notes?: string[] } = {}): void {
  const lines = [
    '',
    `## ${title}`,
    '',
    `- date: ${new Date().toISOString()}`,
    `- commit: ${commit()}`,
    `- machine: ${machine()}`,
    ...(opts.command ? [`- command: \`${opts.command}\``] : []),
    ...(opts.notes ?? []).map((n) => `- ${n}`),
    '',
    markdownTable,
    '',
  ];
  appendFileSync(RESULTS_PATH, lines.join('\n'));
}
