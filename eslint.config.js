// ESLint flat config: typescript-eslint's recommended rules plus the import boundaries of
// docs/ARCHITECTURE.md — the library (src/) never imports a node, the CLI, tests or benchmarks;
// nodes never import each other; nothing but tests imports test/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Forbids imports whose path names one of `dirs` as a folder. */
const forbid = (dirs, message) => ({
  'no-restricted-imports': ['error', { patterns: [{ regex: `(^|/)(${dirs.join('|')})/`, message }] }],
});

export default tseslint.config(
  { ignores: ['node_modules/**', '.ci/out/**', 'coverage/**'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: {
        process: 'readonly',
        Buffer: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        performance: 'readonly',
        fetch: 'readonly',
        URL: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
    },
  },
  // Deliberate, not mistakes: the erfc coefficients are quoted with more digits than a double holds
  // (Cephes); the CSV reader matches control characters on purpose; tfjs types its metadata as `{}`.
  { files: ['src/privacy/analysis/rdp.ts'], rules: { 'no-loss-of-precision': 'off' } },
  { files: ['src/data/csv.ts'], rules: { 'no-control-regex': 'off' } },
  { files: ['src/model/tfjs-io.ts'], rules: { '@typescript-eslint/no-empty-object-type': 'off' } },
  {
    files: ['src/**/*.ts'],
    rules: forbid(
      ['coordinator', 'partner', 'owner', 'cli', 'test', 'benchmarks'],
      'src/ is the library: it never imports a node (coordinator/, partner/, owner/), the CLI, tests or benchmarks.',
    ),
  },
  {
    files: ['coordinator/**/*.ts'],
    rules: forbid(['partner', 'owner', 'cli', 'test'], 'the coordinator never imports another node, the CLI or tests: shared code lives in src/.'),
  },
  {
    files: ['partner/**/*.ts'],
    rules: forbid(
      ['coordinator', 'owner', 'cli', 'test'],
      'the partner node never imports another node, the CLI or tests: shared code lives in src/ (protocol types in src/federation/protocol/).',
    ),
  },
  {
    files: ['owner/**/*.ts'],
    rules: forbid(
      ['coordinator', 'partner', 'cli', 'test'],
      'the owner node never imports another node, the CLI or tests: shared code lives in src/ (protocol types in src/federation/protocol/).',
    ),
  },
  { files: ['cli/**/*.ts', 'benchmarks/**/*.ts', 'examples/**/*.ts', 'bin/**/*.js'], rules: forbid(['test'], 'only tests import test/.') },
);
