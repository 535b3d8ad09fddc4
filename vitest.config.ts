import {defineConfig} from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests share one broker and one PostgreSQL; each uses its own topic and schema.
    fileParallelism: true,
    // four files at once on the 2-core machine: most of a test's time is spent waiting on the
    // broker, PostgreSQL and the CLI processes it starts (the machine was 72-77% busy with two).
    // The whole suite, 2026-12-06 (AMD): 803 s with 2 workers, 689 s with 3; 2026-12-06 (Intel,
    // 1,010 tests): 553 s with 3, 472 s with 4 (machine 95% busy), every test passed each time
    maxWorkers: 4,
    testTimeout: 300_000,
    hookTimeout: 300_000,
    globalSetup: ['test/global-setup.ts'],
  },
})
