// Writes a bench's run to bench/RESULTS.md, which holds the latest run of each bench (its section
// is replaced), and appends it to bench/HISTORY.md, which keeps every run.
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

export const RESULTS_PATH = fileURLToPath(new URL('../RESULTS.md', import.meta.url));
export const HISTORY_PATH = fileURLToPath(new URL('../HISTORY.md', import.meta.url));

/** Replaces the `## title` section of RESULTS.md (or adds it) and appends it to HISTORY.md. */
export function recordSection(title: string, body: string): void {
  const section = `## ${title}\n\n${body.trim()}\n`;
  const text = existsSync(RESULTS_PATH) ? readFileSync(RESULTS_PATH, 'utf8') : '# Benchmark results\n';
  const at = text.indexOf(`\n## ${title}\n`);
  let updated: string;
  if (at < 0) {
    updated = `${text.trimEnd()}\n\n${section}`;
  } else {
    const next = text.indexOf('\n## ', at + 1);
    updated = `${text.slice(0, at + 1)}${section}${next < 0 ? '' : `\n${text.slice(next + 1)}`}`;
  }
  writeFileSync(RESULTS_PATH, updated);
  appendFileSync(HISTORY_PATH, `\n${section}`);
}

export function commit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], {
      encoding: 'utf8',
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
    }).trim();
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

/** Records `## title` with date, commit, machine, the command, the table and notes. */
export function appendResults(title: string, markdownTable: string, opts: { command?: string; notes?: string[] } = {}): void {
  const lines = [
    `- date: ${new Date().toISOString()}`,
    `- commit: ${commit()}`,
    `- machine: ${machine()}`,
    ...(opts.command ? [`- command: \`${opts.command}\``] : []),
    ...(opts.notes ?? []).map((n) => `- ${n}`),
    '',
    markdownTable,
  ];
  recordSection(title, lines.join('\n'));
}
