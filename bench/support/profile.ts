// Summarises a V8 CPU profile (`node --cpu-prof`): self time by function and by package/file, as
// markdown lines for a bench's results notes (the "flame graph summary").
import { copyFileSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** `node_modules/hono/dist/...` → `hono`; our files → their path from the repo root; `node:` built-ins as is. */
function owner(url: string): string {
  if (!url) return '(native / V8)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.startsWith('node:')) return url;
  const m = /\/(api|src|bench|activities|workflows)\/(.+)$/.exec(url);
  return m ? `${m[1]}/${m[2]}` : url.replace(/^file:\/\//, '');
}

export interface ProfileSummary {
  totalMs: number;
  byFunction: Array<{ name: string; where: string; ms: number; pct: number }>;
  byOwner: Array<{ owner: string; ms: number; pct: number }>;
}

/**
 * `fromMs` / `toMs`: only samples taken between these times after the profile started (leaves out
 * start-up and warm-up, or keeps one phase of a run).
 */
export function summarizeCpuProfile(file: string, opts: { top?: number; fromMs?: number; toMs?: number } = {}): ProfileSummary {
  const top = opts.top ?? 15;
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let at = 0;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (at < (opts.fromMs ?? 0) * 1000 || at > (opts.toMs ?? Infinity) * 1000) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const byFunction = new Map<string, { name: string; where: string; us: number }>();
  const byOwner = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const n = nodes.get(id);
    if (!n) continue;
    total += us;
    const name = n.callFrame.functionName || '(anonymous)';
    const where = n.callFrame.url ? `${owner(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : '';
    const key = `${name}@${where}`;
    const f = byFunction.get(key) ?? { name, where, us: 0 };
    f.us += us;
    byFunction.set(key, f);
    const o = n.callFrame.url ? owner(n.callFrame.url) : name.startsWith('(') ? name : '(native / V8)';
    byOwner.set(o, (byOwner.get(o) ?? 0) + us);
  }
  const pct = (us: number) => (total ? (100 * us) / total : 0);
  return {
    totalMs: total / 1000,
    byFunction: [...byFunction.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, ms: f.us / 1000, pct: pct(f.us) })),
    byOwner: [...byOwner.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([o, us]) => ({ owner: o, ms: us / 1000, pct: pct(us) })),
  };
}

/** Markdown lines: the top functions and owners by self time. */
export function profileNotes(s: ProfileSummary, what: string): string[] {
  return [
    `CPU profile of ${what} (\`node --cpu-prof\`, ${s.totalMs.toFixed(0)} ms sampled), self time by package or file: ${s.byOwner
      .map((o) => `${o.owner} ${o.pct.toFixed(1)} %`)
      .join(', ')}`,
    `top functions by self time: ${s.byFunction.map((f) => `\`${f.name}\` (${f.where || 'native'}) ${f.pct.toFixed(1)} %`).join(', ')}`,
  ];
}

/**
 * The notes of every thread's profile in `dir` (`node --cpu-prof` writes one per thread:
 * CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile), each over `span`; a thread idle all along
 * (tsx's loader) is left out. `what` names the profile from its thread ("its main thread", "its
 * thread 2"). BENCH_KEEP_PROFILE=<path> keeps a copy of each as <path>.<thread id>.
 */
export function threadProfileNotes(dir: string, span: { fromMs?: number; toMs?: number }, what: (thread: string) => string): string[] {
  const notes: string[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .sort()) {
    const at = path.join(dir, file);
    const summary = summarizeCpuProfile(at, span);
    if ((summary.byOwner.find((o) => o.owner === '(idle)')?.pct ?? 0) > 99) continue;
    const threadId = Number(file.split('.').at(-3));
    if (process.env.BENCH_KEEP_PROFILE) copyFileSync(at, `${process.env.BENCH_KEEP_PROFILE}.${threadId}`);
    notes.push(...profileNotes(summary, what(threadId === 0 ? 'its main thread' : `its thread ${threadId}`)));
  }
  return notes;
}
