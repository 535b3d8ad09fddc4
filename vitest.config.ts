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
    // a worker runs file after file in one process (vitest's default starts a process per file,
    // which imported vitest, kafkajs, pg, zod ... again 247 times: 250 s of the suite's import
    // time, 49 s without). Test files share no module state: each run makes its own pools,
    // clients, metrics registry, topics and schemas, and restores what it changes in process.env
    isolate: false,
    testTimeout: 300_000,
    hookTimeout: 300_000,
    globalSetup: ['test/global-setup.ts'],
  },
})
