// `npm run temporal-cli` builds (or finds) the Temporal CLI and prints its path, e.g.
//   export PATH="$(dirname "$(npm run -s temporal-cli)"):$PATH"
import { ensureTemporalCli } from '../src/temporal/cli.js';

try {
  const bin = await ensureTemporalCli();
  process.stdout.write(`${bin}\n`);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
}
