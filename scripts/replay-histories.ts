// Replays the recorded trackCommunity histories (test/fixtures/histories/*.json) against the
// current workflow code and prints one line per history; exits 1 if any fails to replay.
//   npm run replay-histories                      # what test/workflow-replay.test.ts runs
//   npm run replay-histories -- --nondeterministic  # the same with a deliberately incompatible change (must fail)
// Runs as a plain Node process: the SDK's protobuf decoding of JSON histories does not survive
// vitest's module loader.
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixturesDir = path.join(root, 'test', 'fixtures', 'histories');
const nondeterministic = process.argv.includes('--nondeterministic');
const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } as never;

let workflowsDir = path.join(root, 'workflows');
let tmp: string | undefined;
if (nondeterministic) {
  // A copy of the workflows with one more command (a timer) before the first sync. Beside the
  // real folder, so that their relative imports (../src/...) resolve the same.
  tmp = mkdtempSync(path.join(root, '.nondeterministic-'));
  cpSync(workflowsDir, tmp, { recursive: true });
  workflowsDir = tmp;
  const file = path.join(workflowsDir, 'trackCommunity.ts');
  const marker = 'let syncNow = input.carried?.syncNow ?? true;';
  const source = readFileSync(file, 'utf8');
  if (!source.includes(marker)) throw new Error(`marker not found in ${file}: update this script`);
  writeFileSync(
    file,
    `import { sleep as injectedSleep } from '@temporalio/workflow';\n${source.replace(marker, `${marker}\n  await injectedSleep(1);`)}`,
  );
}

try {
  const bundle = await bundleWorkflowCode({
    workflowsPath: path.join(workflowsDir, 'index.ts'),
    logger: quiet,
  });
  const files = readdirSync(fixturesDir)
    .filter((f) => f.endsWith('.json'))
    .sort();
  const histories = files.map((f) => ({
    workflowId: f.replace(/\.json$/, ''),
    history: JSON.parse(readFileSync(path.join(fixturesDir, f), 'utf8')) as unknown,
  }));
  let failed = 0;
  for await (const r of Worker.runReplayHistories({ workflowBundle: bundle, replayName: 'fixtures' }, histories)) {
    if (r.error) failed += 1;
    process.stdout.write(
      `${JSON.stringify({ history: `${r.workflowId}.json`, ok: !r.error, error: r.error ? `${r.error.name}: ${r.error.message}` : undefined })}\n`,
    );
  }
  process.stdout.write(`${files.length - failed} passed, ${failed} failed\n`);
  process.exitCode = failed ? 1 : 0;
} finally {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}
