/**
 * Shared set-up of the `stream run` integration tests: a source topic (own name, own
 * max.message.bytes), a schema with the two sink tables of the card-transactions pipeline, a
 * spec file naming them, the generated records produced with kafkajs, and a way to run
 * `bin/run.js stream run` as a child process (to kill it).
 */
import type {ChildProcess} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import kafkajs, {type KafkaMessage} from 'kafkajs'
import pg from 'pg'
import {onTestFinished} from 'vitest'
import {cardTransactionSpec, createSinkTables} from '../../fixtures/generator/pipeline.js'
import {startStreamRun} from '../../fixtures/generator/stream-harness.js'
import type {GeneratedTransaction} from '../../fixtures/generator/transactions.js'
import {createTestSchema, kafka, settings, testPool, uniqueName} from '../helpers.js'
import {parseSpec} from '../../src/config/spec.js'
import {createTopicsReady} from '../../src/kafka/client.js'
import {silentLogger} from '../../src/log.js'
import {beginBatch, type BatchDeps, type BatchInput} from '../../src/runtime/batch.js'
import {buildSinks} from '../../src/runtime/sinks/index.js'
import {buildStages} from '../../src/runtime/stages/index.js'
import type {PipelineContext, WorkItem} from '../../src/runtime/types.js'

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
  /** a partition of its own choosing (else the key's) */
  partition?: number
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

/** `node bin/run.js stream run --spec <f> --schema <s> <args>` as a child process (`env` added to this one's), killed when the test ends. */
export function startStream(f: StreamFixture, args: string[], env: Record<string, string> = {}): StreamProcess {
  const p = startStreamRun(['--spec', f.specFile, '--schema', f.schema, ...args], {CUTOVER_LOG_LEVEL: process.env.CUTOVER_LOG_LEVEL ?? 'warn', ...env})
  onTestFinished(() => p.kill('SIGKILL'))
  return {child: p.child, exited: p.done}
}

/**
 * Resolves with the run's result once it exits; rejects as soon as it logs a batch retry (a
 * partition stalled on a record) or a consumer crash (kafkajs restarts it, and the run would wait
 * for ever: a batch it cannot read).
 */
export function exitedWithoutRetry(s: StreamProcess): StreamProcess['exited'] {
  return new Promise((resolve, reject) => {
    s.child.stderr!.on('data', (d: Buffer) => {
      const line = d.toString().split('\n').find((l) => l.includes('"event":"batch.retry"') || l.includes('"event":"consumer.crash"'))
      if (line) {
        s.child.kill('SIGKILL')
        reject(new Error(`a batch was retried or a consumer crashed (its partition stalled):\n${line}`))
      }
    })
    void s.exited.then(resolve, reject)
  })
}

/**
 * The members of a consumer group as an independent admin client sees them: each member's
 * assigned partitions (sorted), once the group is Stable; [] while it is not.
 */
export async function groupAssignments(group: string): Promise<number[][]> {
  const admin = kafka().admin()
  await admin.connect()
  try {
    const {groups} = await admin.describeGroups([group])
    const g = groups[0]
    if (!g || g.state !== 'Stable') return []
    return g.members.map((m) =>
      Object.values(kafkajs.AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment ?? {})
        .flat()
        .sort((a, b) => a - b),
    )
  } finally {
    await admin.disconnect()
  }
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

/** A batchFixture spec: records {id, amount}, keyed and deduplicated by id, into the table `t`. */
export const ID_AMOUNT_SPEC = `fields:
  id: {type: string, required: true}
  amount: {type: decimal, scale: 2, required: true}
key: id
dedupe: {by: id}
sinks: [{table: t}]
`

/**
 * The runtime's batch transaction without Kafka (src/runtime/batch.ts, group.ts): a schema with
 * the tables of `tables(schema)`, a pipeline of `spec` (the part after `source:`, a topic
 * `<name>.raw`), its stages and sinks as `stream run` builds them, and prepared batches of
 * records `{id, amount, ...}` at given offsets, as kafkajs would hand them over. `as`: the pool
 * of another role for the pipeline to run with, given the schema and the test's own pool (which
 * created the tables, and may grant on them).
 */
export async function batchFixture(options: {prefix: string; tables: (schema: string) => string[]; spec: string; dedupeRetentionMs?: number; as?: (schema: string, pool: pg.Pool) => Promise<pg.Pool>}) {
  const pool = testPool()
  const schema = await createTestSchema(pool)
  for (const sql of options.tables(schema)) await pool.query(sql)
  const runAs = options.as ? await options.as(schema, pool) : pool
  const name = uniqueName(options.prefix)
  const topic = `${name}.raw`
  const loaded = parseSpec(`version: 1\nname: ${name}\nsource: {topic: ${topic}}\n${options.spec}`, `${options.prefix}.yaml`)
  const ctx: PipelineContext = {loaded, pipeline: name, schema, maxRecordBytes: 1 << 20, dedupeRetentionMs: options.dedupeRetentionMs ?? 60_000, logger: silentLogger}
  const stages = buildStages(ctx)
  const deps: BatchDeps = {pool: runAs, transact: stages.transact, sinks: await buildSinks(ctx, runAs), dlqTopic: `${name}.dlq`, deadLetter: {pipeline: name, version: 'v', attempts: 1}}
  /** Offsets `from`..`to` of `partition`, each message keyed and valued by `record(offset)`, through the prepare stages. */
  const batch = async (partition: number, from: number, to: number, record: (o: number) => {id: string} & Record<string, unknown>, extra: Partial<BatchInput> = {}): Promise<BatchInput> => {
    const items: WorkItem[] = []
    for (let o = from; o <= to; o++) {
      const r = record(o)
      const message = {key: Buffer.from(r.id), value: Buffer.from(JSON.stringify(r)), timestamp: String(Date.now()), attributes: 0, offset: String(o), headers: {}} as KafkaMessage
      items.push({message, topic, partition, offset: BigInt(o), status: 'ok'})
    }
    for (const s of stages.prepare) await s.run(items, null)
    return {ref: {pipeline: name, topic, partition}, items, firstOffset: BigInt(from), lastOffset: BigInt(to), allowGap: false, ...extra}
  }
  return {pool, schema, name, topic, deps, batch}
}

/**
 * Another session holding `pipeline`'s batch lock (exclusive or shared) in an open transaction,
 * begun as a batch transaction begins (batch.ts beginBatch); closed when the test finishes.
 */
export async function holdPipelineLock(pipeline: string, exclusive: boolean): Promise<{release(): Promise<void>}> {
  const c = new pg.Client({connectionString: settings().databaseUrl})
  await c.connect()
  onTestFinished(() => c.end())
  await c.query(beginBatch(pipeline, exclusive))
  return {
    release: async () => {
      await c.query('COMMIT')
    },
  }
}

/**
 * Resolves once a session waits for `pipeline`'s batch lock (beginBatch: the advisory lock on
 * hashtext('cutover.stream.batch'), hashtext(pipeline), not yet granted), or once `pending` settles
 * (it did not wait: the caller's next assertion, that it has not settled, then fails). Only this
 * pipeline's lock counts: other tests running at the same time wait for advisory locks of their own.
 */
export async function untilWaitingForPipelineLock(pool: pg.Pool, pipeline: string, pending: Promise<unknown>): Promise<void> {
  let over = false
  void pending.then(
    () => (over = true),
    () => (over = true),
  )
  while (!over) {
    const r = await pool.query<{n: string}>(
      `SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objsubid = 2
         AND classid = hashtext('cutover.stream.batch')::oid AND objid = hashtext($1)::oid`,
      [pipeline],
    )
    if (Number(r.rows[0]!.n) > 0) return
    await sleep(20)
  }
}

/** The pool, with every query text its clients send recorded in `seen`. */
export function recordingPool(pool: pg.Pool, seen: string[]): pg.Pool {
  return new Proxy(pool, {
    get(target, prop) {
      if (prop === 'connect') {
        return async () => {
          const c = await target.connect()
          const {query, release} = c
          c.query = ((text: unknown, ...rest: unknown[]) => {
            seen.push(typeof text === 'string' ? text : String((text as {text?: unknown})?.text))
            return (query as (...a: unknown[]) => unknown).call(c, text, ...rest)
          }) as typeof c.query
          c.release = ((...a: Parameters<typeof release>) => {
            c.query = query
            c.release = release
            return release.apply(c, a)
          }) as typeof release
          return c
        }
      }
      const v = Reflect.get(target, prop) as unknown
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    },
  })
}
