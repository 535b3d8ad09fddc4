import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {ignores: ['dist/**', 'node_modules/**', 'bench/out/**', 'dev/kafka/target/**']},
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {globals: {process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', TextDecoder: 'readonly', TextEncoder: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly'}},
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', {fixStyle: 'inline-type-imports'}],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_', varsIgnorePattern: '^_'}],
      'no-empty': ['error', {allowEmptyCatch: false}],
    },
  },
  {
    // Libraries never import commands or the UI (DESIGN.md).
    files: ['src/**/*.ts', 'legacy-adapters/**/*.ts'],
    ignores: ['src/commands/**', 'src/ui/**', 'src/cli/**'],
    rules: {
      'no-restricted-imports': ['error', {patterns: [{group: ['**/commands/**', '**/ui/**', '**/cli/**'], message: 'libraries never import commands or the UI'}]}],
    },
  },
)
