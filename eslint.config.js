// ESLint (flat config): typescript-eslint with type information, so that promises that are
// neither awaited nor handled are errors; workflow code may import no Node built-ins or I/O.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [
  'assert',
  'buffer',
  'child_process',
  'cluster',
  'crypto',
  'dgram',
  'dns',
  'events',
  'fs',
  'fs/promises',
  'http',
  'http2',
  'https',
  'module',
  'net',
  'os',
  'path',
  'perf_hooks',
  'process',
  'readline',
  'stream',
  'timers',
  'tls',
  'url',
  'util',
  'v8',
  'vm',
  'worker_threads',
  'zlib',
];

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'dist/**', 'coverage/**', 'test/fixtures/**', '.nondeterministic-*/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { ...globals.node },
      parserOptions: {
        projectService: { allowDefaultProject: ['eslint.config.js', 'public/static/*.js', 'bench/support/*.cjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    // Bench preloads are CommonJS, so that `node --require` loads them in worker threads too.
    files: ['bench/support/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The website's one script runs in browsers (progressive enhancement only).
    files: ['public/static/**/*.js'],
    languageOptions: { globals: { ...globals.browser }, sourceType: 'script' },
  },
  {
    // Workflow code is replayed: it must be deterministic, so no Node built-ins and no I/O.
    files: ['workflows/**/*.ts'],
    languageOptions: { globals: {} },
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [...nodeBuiltins, ...nodeBuiltins.map((m) => `node:${m}`)].map((name) => ({
            name,
            message: 'Workflow code must be deterministic: no Node built-ins or I/O. Do it in an activity.',
          })),
          patterns: [
            { group: ['node:*'], message: 'Workflow code must be deterministic: no Node built-ins.' },
            {
              group: [
                'postgres',
                'undici',
                'pino',
                '@temporalio/activity',
                '@temporalio/client',
                '@temporalio/worker',
                '**/src/lemmy/client*',
                '**/src/lemmy/budget*',
                '**/src/log*',
                '**/api/**',
              ],
              message: 'Workflow code must not do I/O: call an activity. (Type-only imports of activities are fine.)',
              allowTypeImports: true,
            },
            // The shard planner is pure (no I/O, no imports): the rebalance workflow runs it.
            {
              regex: '/src/db/(?!sharding/planner\\.js$)',
              message: 'Workflow code must not do I/O: call an activity.',
              allowTypeImports: true,
            },
            { group: ['**/activities/**'], message: 'Workflows may import activities as types only.', allowTypeImports: true },
          ],
        },
      ],
      'no-restricted-globals': ['error', 'setTimeout', 'setInterval', 'fetch', 'process', 'require'],
    },
  },
);
