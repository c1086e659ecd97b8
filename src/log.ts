// Structured logs with pino. On a terminal (or LOG_FORMAT=pretty) each line is rendered as
// `12:00:00 INFO  [worker] message key=value` so `npm start` reads well; otherwise JSON lines.
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

export type { Logger };

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
const COLORS: Record<number, string> = { 10: '90', 20: '90', 30: '32', 40: '33', 50: '31', 60: '35' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'role', 'v']);

function prettyStream(color: boolean): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          const time = new Date(Number(rec.time)).toISOString().slice(11, 19);
          const level = Number(rec.level);
          const lv = LEVELS[level] ?? String(level);
          const role = rec.role ? `[${rec.role}] ` : '';
          const extras = Object.entries(rec)
            .filter(([k]) => !SKIP.has(k))
            .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(' ');
          const head = color ? `\x1b[${COLORS[level] ?? '0'}m${lv}\x1b[0m` : lv;
          process.stdout.write(`${time} ${head} ${role}${rec.msg ?? ''}${extras ? ` ${extras}` : ''}\n`);
        } catch {
          process.stdout.write(`${line}\n`);
        }
      }
      done();
    },
  });
}

let root: Logger | undefined;

export function createLogger(opts: { level?: string; format?: 'pretty' | 'json' } = {}): Logger {
  const format = opts.format ?? (process.stdout.isTTY ? 'pretty' : 'json');
  root = pino(
    { level: opts.level ?? 'info', base: undefined, errorKey: 'err' },
    format === 'pretty' ? prettyStream(Boolean(process.stdout.isTTY)) : pino.destination(1),
  );
  return root;
}

/** The process-wide logger; created with defaults on first use. */
export function logger(): Logger {
  return root ?? createLogger({ level: process.env.LOG_LEVEL, format: process.env.LOG_FORMAT as 'pretty' | 'json' | undefined });
}
