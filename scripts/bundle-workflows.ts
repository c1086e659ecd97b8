// Pre-bundles the workflow code (used by the Dockerfile; point WORKFLOW_BUNDLE_PATH at the result
// so workers start without running webpack).
import { writeFileSync } from 'node:fs';
import { bundleWorkflows } from '../src/worker-runtime.js';

const out = process.argv[2] ?? 'dist/workflow-bundle.js';
const { code } = await bundleWorkflows();
writeFileSync(out, code);
process.stdout.write(`wrote ${out} (${Math.round(code.length / 1024)} KiB)\n`);
