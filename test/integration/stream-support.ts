/**
 * Shared set-up of the `stream run` integration tests: a source topic (own name, own
 * max.message.bytes), a schema with the two sink tables of the card-transactions pipeline, a
 * spec file naming them, the generated records produced with kafkajs, and a way to run
 * `bin/run.js stream run` as a child process (to kill it).
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type pg from 'pg'
import {onTestFinished} from 'vitest'
import {cardTransactionSpec, createSinkTables} from '../../fixtures/generator/pipeline.js'
import type {GeneratedTransaction} from '../../fixtures/generator/transactions.js'
import {BIN, ROOT, createTestSchema, kafka, testPool, uniqueName} from '../helpers.js'
import {createTopicsReady} from '../../src/kafka/client.js'

export interface StreamFixture {
  name: string
  topic: string
  dlqTopic: string
  schema: string
  specFile: string
  pool: pg.Pool
}

/** Topic (with `partitions`, values up to 3 MB), DLQ topic name, schema + sink tables, spec file. */
export async function streamFixture(options: {partitions?: number; prefix?: string} = {}): Promise<StreamFixture> {
  const name = uniqueName(options.prefix ?? 'stream')
  const topic = `${name}.raw`
  const dlqTopic = `${name}.dlq`
  const admin = kafka().admin()
  await admin.connect()
  try {
    await createTopicsReady(admin, [{topic, numPartitions: options.partitions ?? 6, replicationFactor: 1, configEntries: [{name: 'max.message.bytes', value: String(3 * 1024 * 1024)}]}])
  } finally {
    await admin.disconnect()
  }
  const pool = testPool()
  const schema = await createTestSchema(pool)
  await createSinkTables(pool, schema)
  const dir = mkdtempSync(join(tmpdir(), 'cutover-stream-'))
  const specFile = join(dir, 'pipeline.yaml')
  writeFileSync(specFile, cardTransactionSpec({name, topic, group: `${name}-group`, dlqTopic, retry: {initial: '50ms', max: '2s'}}))
  onTestFinished(async () => {
    const a = kafka().admin()
    await a.connect()
    const existing = new Set(await a.listTopics())
    await a.deleteTopics({topics: [topic, dlqTopic].filter((t) => existing.has(t))}).catch(() => {}) // kafkajs retries a missing topic for seconds
    await a.disconnect()
    for (const table of ['stream_offsets', 'stream_dedupe', 'outbox']) await pool.query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [name]).catch(() => {})
  })
  return {name, topic, dlqTopic, schema, specFile, pool}
}

export interface ProducedMessage {
  key: string | null
  value: Buffer
  headers?: Record<string, string>
}

/** Produces with kafkajs (acks=all), a thousand at a time, keyed so repeats share a partition. */
export async function produce(topic: string, messages: ProducedMessage[]): Promise<void> {
  const producer = kafka().producer({idempotent: true, maxInFlightRequests: 1})
  await producer.connect()
  try {
    for (let i = 0; i < messages.length; ) {
      // keep requests under the broker's limits: a thousand small values, or one big one
      let j = i
      let bytes = 0
      while (j < messages.length && j - i < 1000 && (j === i || bytes + messages[j]!.value.length < 4 * 1024 * 1024)) bytes += messages[j++]!.value.length
      await producer.send({topic, acks: -1, messages: messages.slice(i, j)})
      i = j
    }
  } finally {
    await producer.disconnect()
  }
}

export function fromGenerated(txns: GeneratedTransaction[]): ProducedMessage[] {
  return txns.map((t) => ({key: t.key, value: t.value, headers: {'x-trace': `trace-${t.seq}`}}))
}

export interface StreamProcess {
  child: ChildProcess
  /** resolves when the process exits */
  exited: Promise<{code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string}>
}

/** `node bin/run.js stream run --spec <f> --schema <s> <args>` as a child process (`env` added to this one's). */
export function startStream(f: StreamFixture, args: string[], env: Record<string, string> = {}): StreamProcess {
  const child = spawn(process.execPath, [BIN, 'stream', 'run', '--spec', f.specFile, '--schema', f.schema, ...args], {cwd: ROOT, env: {...process.env, CUTOVER_LOG_LEVEL: process.env.CUTOVER_LOG_LEVEL ?? 'warn', ...env}, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string}>((resolve) => {
    child.on('close', (code, signal) => resolve({code, signal, stdout, stderr}))
  })
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return {child, exited}
}

/** Sum of the stored next offsets of the pipeline (records committed so far, from offset 0). */
export async function committedOffsets(f: StreamFixture): Promise<number> {
  const r = await f.pool.query<{n: string | null}>('SELECT sum(next_offset)::text AS n FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])
  return Number(r.rows[0]?.n ?? 0)
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** The number of test records: CUTOVER_STREAM_TEST_RECORDS (default `fallback`). */
export function testRecords(fallback = 20_000): number {
  const n = Number(process.env.CUTOVER_STREAM_TEST_RECORDS)
  return Number.isFinite(n) && n > 0 ? n : fallback
}
