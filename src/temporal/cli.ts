// Locates the Temporal CLI (dev server, Web UI, `temporal workflow ...`), building it from its
// pinned Go module into a per-version cache outside the clone when there is none: no prebuilt
// binary can be downloaded on the machines this project runs on.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eachLine } from '../process.js';

/** Tried in order: tags from v1.6 on carry a `replace` directive that `go install pkg@v` refuses. */
export const TEMPORAL_CLI_VERSIONS = ['v1.5.1', 'v1.5.0', 'v1.4.1'];
const MODULE = 'github.com/temporalio/cli/cmd/temporal';

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'lemmy-fetcher', 'temporal-cli');
}

export function cachedBinary(version: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(cacheRoot(env), version, 'bin', 'temporal');
}

function onPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'temporal');
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

export type Progress = (line: string) => void;

/**
 * TEMPORAL_CLI, else a `temporal` on PATH, else the cached build, else builds it (several minutes
 * the first time; `go install -v` prints each package as it compiles, which we pass on).
 */
export async function ensureTemporalCli(progress: Progress = (l) => process.stderr.write(`${l}\n`)): Promise<string> {
  const explicit = process.env.TEMPORAL_CLI;
  if (explicit) {
    if (!existsSync(explicit)) throw new Error(`TEMPORAL_CLI=${explicit} does not exist`);
    return explicit;
  }
  const fromPath = onPath();
  if (fromPath) return fromPath;
  for (const v of TEMPORAL_CLI_VERSIONS) {
    if (existsSync(cachedBinary(v))) return cachedBinary(v);
  }
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
  } catch {
    throw new Error(
      'The Temporal CLI was not found and Go is not installed to build it. Install Go (https://go.dev/dl/) ' +
        'or put a `temporal` binary on PATH, or set TEMPORAL_CLI=/path/to/temporal, or set TEMPORAL_ADDRESS ' +
        'to use a running Temporal server.',
    );
  }
  const failures: string[] = [];
  for (const version of TEMPORAL_CLI_VERSIONS) {
    try {
      return await build(version, progress);
    } catch (err) {
      failures.push(`${version}: ${(err as Error).message}`);
      progress(`building Temporal CLI ${version} failed; trying the next version`);
    }
  }
  throw new Error(`Could not build the Temporal CLI:\n${failures.join('\n')}`);
}

async function build(version: string, progress: Progress): Promise<string> {
  const target = cachedBinary(version);
  const versionDir = path.dirname(path.dirname(target));
  mkdirSync(versionDir, { recursive: true });
  // One build at a time per version (npm start and npm test may race on a fresh machine).
  const lockFile = path.join(versionDir, 'build.lock');
  const lock = await acquireLock(lockFile, progress);
  try {
    if (existsSync(target)) return target;
    const staging = path.join(versionDir, `staging-${process.pid}`);
    rmSync(staging, { recursive: true, force: true });
    progress(
      `Building the Temporal CLI ${version} from ${MODULE} into ${path.dirname(target)} (several minutes the first time; later runs reuse it)`,
    );
    const started = Date.now();
    await runGo(
      ['install', '-v', `${MODULE}@${version}`],
      { env: { ...process.env, GOBIN: staging, GOFLAGS: '-mod=mod', CGO_ENABLED: '0' } },
      progress,
    );
    mkdirSync(path.dirname(target), { recursive: true });
    renameSync(path.join(staging, 'temporal'), target);
    rmSync(staging, { recursive: true, force: true });
    progress(`Temporal CLI ${version} built in ${Math.round((Date.now() - started) / 1000)} s: ${target}`);
    return target;
  } finally {
    lock();
  }
}

/** A lock file for one build at a time (of `what`); the answer releases it. */
export async function acquireLock(file: string, progress: Progress, what = 'the Temporal CLI'): Promise<() => void> {
  const started = Date.now();
  let told = false;
  for (;;) {
    try {
      const fd = openSync(file, 'wx');
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch {
      // A lock older than 30 minutes belongs to a build that died.
      try {
        if (Date.now() - statSync(file).mtimeMs > 30 * 60_000) rmSync(file, { force: true });
      } catch {
        /* gone already */
      }
      if (!told) {
        progress(`Waiting for another process that is building ${what} ...`);
        told = true;
      }
      if (Date.now() - started > 60 * 60_000) throw new Error(`timed out waiting for ${file}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/**
 * Runs a verbose `go build`/`go install`, saying every 15 s how many packages it has compiled
 * (a first build takes minutes); rejects with the last lines of its output when it fails.
 */
export async function runGo(args: string[], opts: { cwd?: string; env: NodeJS.ProcessEnv }, progress: Progress): Promise<void> {
  const started = Date.now();
  let compiled = 0;
  const tail: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const child = spawn('go', args, { ...opts, stdio: ['ignore', 'ignore', 'pipe'] });
    const ticker = setInterval(
      () => progress(`  ... ${compiled} packages compiled, ${Math.round((Date.now() - started) / 1000)} s`),
      15_000,
    );
    eachLine(child.stderr, (line) => {
      if (!line.startsWith('go: downloading')) compiled += 1;
      tail.push(line);
      if (tail.length > 30) tail.shift();
    });
    child.on('error', (err) => {
      clearInterval(ticker);
      reject(err);
    });
    child.on('exit', (code) => {
      clearInterval(ticker);
      if (code === 0) resolve();
      else reject(new Error(`go ${args[0]} exited with ${code}:\n${tail.join('\n')}`));
    });
  });
}
