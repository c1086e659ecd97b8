// `npm run temporal-server` builds (or finds) the real Temporal server and temporal-sql-tool, at the
// go.temporal.io/server version the Temporal CLI embeds, for `npm run bench -- scale --temporal-server
// postgres`, and prints their paths.
import { ensureTemporalServer } from '../bench/support/temporal-server.js';

try {
  const b = await ensureTemporalServer();
  process.stdout.write(`version ${b.version}\nserver ${b.server}\nsql-tool ${b.sqlTool}\nschema ${b.schemaDir}\n`);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
}
