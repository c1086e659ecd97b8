// `npm run bench -- <name> [--flags]`: runs bench/<name>.ts, which exports `run(argv)`.
// Each bench prints a table and appends it to bench/RESULTS.md.
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const dir = path.dirname(fileURLToPath(import.meta.url));
const ALIASES: Record<string, string> = { ingest: 'shards' };
const names = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.endsWith('.d.ts'))
  .map((f) => f.slice(0, -3))
  .sort();
const all = [...names, ...Object.keys(ALIASES).filter((a) => names.includes(ALIASES[a]))].sort();

const [name, ...argv] = process.argv.slice(2);
if (!name || name.startsWith('-') || !all.includes(name)) {
  process.stderr.write(
    `${name ? `unknown bench "${name}"\n` : ''}usage: npm run bench -- <name> [--flags]\nbenches: ${all.join(', ')}${
      Object.keys(ALIASES).length
        ? ` (${Object.entries(ALIASES)
            .map(([a, t]) => `${a} = ${t}`)
            .join(', ')})`
        : ''
    }\n`,
  );
  process.exit(2);
}
const file = path.join(dir, `${ALIASES[name] ?? name}.ts`);
// Benches that run on import (e.g. shards.ts) read their flags from process.argv.
process.argv = [process.argv[0], file, ...argv];
const mod = (await import(pathToFileURL(file).href)) as { run?: (argv: string[]) => Promise<void> };
if (typeof mod.run === 'function') {
  await mod.run(argv);
  process.exit(0);
}
