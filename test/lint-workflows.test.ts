// The ESLint rule that keeps workflow code deterministic: Node built-ins and I/O modules cannot
// be imported in workflows/** (a workflow that reads a file or a database replays differently).
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint();

async function problems(code: string): Promise<string[]> {
  // Linted as if it were this workflow file (type-aware rules need a file the project knows).
  const [result] = await eslint.lintText(code, { filePath: 'workflows/deadline.ts' });
  return result.messages.filter((m) => m.ruleId === 'no-restricted-imports' || m.ruleId === 'no-restricted-globals').map((m) => m.message);
}

describe('workflow code may not import I/O', () => {
  it.each([
    ["import fs from 'node:fs';"],
    ["import { readFileSync } from 'fs';"],
    ["import postgres from 'postgres';"],
    ["import { request } from 'undici';"],
    ["import { Context } from '@temporalio/activity';"],
    ["import { openPool } from '../src/db/pool.js';"],
    ["import { moveShardPosts } from '../src/db/sharding/moves.js';"],
    ["import { createActivities } from '../activities/index.js';"],
  ])('refuses %s', async (line) => {
    expect(await problems(`${line}\nexport const x = 1;\n`)).not.toEqual([]);
  });

  it('allows the workflow SDK, pure modules and type-only imports of activities', async () => {
    const code = [
      "import { condition } from '@temporalio/workflow';",
      "import { planMoves } from '../src/db/sharding/planner.js';",
      "import { isPermanentFailure } from '../src/failures.js';",
      "import type { Activities } from '../activities/index.js';",
      'export const x = [condition, planMoves, isPermanentFailure] as unknown as Activities;',
      '',
    ].join('\n');
    expect(await problems(code)).toEqual([]);
  });

  it('refuses timers and I/O globals', async () => {
    expect(await problems('setTimeout(() => {}, 1);\nexport const y = fetch;\n')).toHaveLength(2);
  });
});
