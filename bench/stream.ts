/**
 * bench/stream: throughput of `cutover stream run` against its baselines, run beside it, and
 * its latency at a fixed rate. `npm run bench:stream` (after `npm run build`), against the
 * broker in KAFKA_BROKERS and the PostgreSQL in DATABASE_URL.
 *
 * On one fresh topic with BENCH_PARTITIONS (6) partitions and BENCH_RECORDS (1,000,000)
 * generated JSON records of about BENCH_RECORD_BYTES (300) bytes, BENCH_DIRTY (0.05) of them
 * dirty (fixtures/generator/transactions.ts), it prints, in the same run:
 *
 *   R_consume  bare kafkajs `eachBatch` reading the whole topic, doing nothing
 *   R_sink     bare `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE` of the same
 *              rows into an identical table, no Kafka, one transaction per batch, batches of
 *              the mean size R_consume saw
 *   H          1 / (1/R_consume + 1/R_sink): what a pipeline that consumes then writes,
 *              without overlapping the two, would do
 *   R_stream   `node bin/run.js stream run --until-idle --json`: decode, normalize, validate,
 *              dedupe, an upsert sink and an aggregate sink, dead letters through the outbox;
 *              rate = read / elapsed_ms of its --json result (which includes its start-up and
 *              the --idle-ms wait at the end, BENCH_IDLE_MS)
 *   R_stream / H
 *   CPU per record of that run: the `stream run` process (/proc/<pid>/stat, sampled every 50 ms),
 *              its PostgreSQL backends (the postmaster's exited-children CPU before and after;
 *              n/a when PostgreSQL is not on this machine), the Kafka broker (its JVM, when it
 *              runs here) and the whole machine (/proc/stat: every process and the kernel, this
 *              bench's polling too), with the share of the cores the machine was busy; the
 *              ceiling the first three leave, cores / (their sum per record); and the budget
 *              cores / H: the most CPU per record a run may spend, with every core busy all
 *              the time, for R_stream = H. Beside them the CPU per record of the two baselines
 *              (R_consume: this process and the broker; R_sink: this process and its backend):
 *              the stream does their work and more (normalize, dedupe, the aggregate, dead
 *              letters) and must do it in cores / H
 *   R_sink_pipeline, H_pipeline, R_stream / H_pipeline: for comparison, not the target. The
 *              spec's database work bare, no Kafka (barePipelineSink: per transaction the offset
 *              row, the dedupe keys looked up and the new ones inserted, R_sink's upsert and the
 *              aggregate), at the runtime's mean batch, and H with it in R_sink's place: how near
 *              the runtime is to a consume-then-write pipeline that does the same database work; the
 *              same again with the new keys and rows written by COPY, as the runtime writes them
 *              ("by COPY": the bare pipeline with the runtime's own way of writing)
 *   R_stream steady: records committed after the first commit (the sum of the pipeline's stored
 *              offsets, polled every 50 ms) / (time the last one was committed - time the first
 *              was): the rate without start-up and idle wait, printed beside it (meaningful only
 *              when the run has many batches)
 *   ladder     with BENCH_LADDER=1, after R_stream and on the same topic, where R_stream / H
 *              goes, one piece of work at a time, each with its rate, / H and CPU per record:
 *              `chain` (the two baselines' work chained in this process, plus JSON.parse: what
 *              a pipeline doing only H's work reaches on this machine), `stream run` with an
 *              upsert sink only (no dedupe, no aggregate), with the dedupe, and R_stream itself
 *              (with the aggregate sink)
 *
 * Then a latency run: `stream run` already running and caught up on a second topic, a paced
 * producer at BENCH_RATE (5,000) events/s for BENCH_LATENCY_WARMUP_SECONDS (5) s, the cold start
 * of a process just started (reported apart), then on at the same pace for BENCH_LATENCY_SECONDS
 * (30) s, the figures; each record's `ts` being the moment it was handed to the producer (epoch
 * ms). BENCH_LATENCY_DUMP=file.csv writes each paced record's produce time, latency and
 * transaction id, and the produce time as epoch ms (to line a stall up with the PostgreSQL log,
 * vmstat or a GC trace); BENCH_ONLY_LATENCY=1 runs the latency run alone (no records before it). The sink table carries
 * `ingest_xid bigint DEFAULT txid_current()` and a statement trigger that NOTIFYs the
 * transaction id; PostgreSQL delivers a notification only once its transaction committed, so
 * the time the bench receives it is the commit as a reader sees it. Latency of a record =
 * notification received - produce time, exact per record (p50/p95/p99). The runtime's own
 * `cutover_end_to_end_latency_seconds` histogram (Kafka timestamp to commit, bucketed) is
 * printed beside it when --metrics-port answers.
 *
 * Writes bench/out/stream.json. Until `stream run` is built the stream rows print as
 * "not available" and the baselines still run.
 */
import {createHash, randomUUID} from 'node:crypto'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync} from 'node:fs'
import {cpus, loadavg, tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import type {Batch} from 'kafkajs'
import pg from 'pg'
import {connectionSettingsFromEnv} from '../src/config/env.js'
import {copyField, copyIn} from '../src/pg/copy.js'
import {ensureDatabase} from '../src/pg/pool.js'
import {createKafka, createTopicsReady} from '../src/kafka/client.js'
import {transactionStream, expectedState, minorToDecimal, type GeneratedTransaction} from '../fixtures/generator/transactions.js'
import {cardTransactionSpec, createSinkTables, forgetPipeline} from '../fixtures/generator/pipeline.js'
import {freePort, startStreamRun, type StreamProcess, type StreamRunJson} from '../fixtures/generator/stream-harness.js'
import {brokerPid, conservationProblems, machineCpu, measureCpu, prepareRuntimeTables, processCpu, type RunCpu} from './lib/stream-measure.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const STREAM_BUILT = existsSync(join(ROOT, 'dist', 'src', 'commands', 'stream', 'run.js'))

const env = process.env
const int = (name: string, fallback: number) => (env[name] ? Number(env[name]) : fallback)
const N = int('BENCH_RECORDS', 1_000_000)
const PARTITIONS = int('BENCH_PARTITIONS', 6)
const RECORD_BYTES = int('BENCH_RECORD_BYTES', 300)
const DIRTY = env.BENCH_DIRTY ? Number(env.BENCH_DIRTY) : 0.05
const IDLE_MS = int('BENCH_IDLE_MS', 1000)
const RATE = int('BENCH_RATE', 5000)
const LATENCY_SECONDS = int('BENCH_LATENCY_SECONDS', 30)
const KEEP = env.BENCH_KEEP === '1'
const LADDER = env.BENCH_LADDER === '1'
const SEED = int('BENCH_SEED', 20261122)
/** a file to write each paced record's produce time (ms from the paced run's start), latency (ms), transaction id and produce time (epoch ms) to, as CSV */
const LATENCY_DUMP = env.BENCH_LATENCY_DUMP
/** BENCH_ONLY_LATENCY=1: only the paced latency run, printed as JSON (no records before it, so not the figure of record) */
const ONLY_LATENCY = env.BENCH_ONLY_LATENCY === '1'
/** seconds of the paced run before the measured BENCH_LATENCY_SECONDS: reported apart, as the cold start */
const WARMUP_SECONDS = int('BENCH_LATENCY_WARMUP_SECONDS', 5)

const settings = connectionSettingsFromEnv()
const run = randomUUID().slice(0, 8)
const log = (...a: unknown[]) => console.error(`[bench:stream ${new Date().toISOString().slice(11, 19)}]`, ...a)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** CPU seconds over `records` -> µs per record (null stays null). */
const perRecordUs = (seconds: number | null, records: number) => (seconds === null || records === 0 ? null : (seconds / records) * 1e6)
const fmt = (n: number | null | undefined, digits = 0) => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : n.toLocaleString('en-US', {maximumFractionDigits: digits, minimumFractionDigits: digits}))

// ---------------------------------------------------------------------------------------------
// services

const kafka = createKafka(settings.kafka, {mode: 'resilient', clientId: 'cutover-bench'})
const pool = new pg.Pool({connectionString: settings.databaseUrl, max: 4})
const cleanups: (() => Promise<unknown>)[] = []

async function createTopic(topic: string, partitions: number): Promise<void> {
  const admin = kafka.admin()
  await admin.connect()
  try {
    await createTopicsReady(admin, [{topic, numPartitions: partitions, replicationFactor: 1}])
  } finally {
    await admin.disconnect()
  }
  if (!KEEP) {
    cleanups.push(async () => {
      const a = kafka.admin()
      await a.connect()
      await a.deleteTopics({topics: [topic]}).catch((e: unknown) => log('could not delete topic', topic, String(e)))
      await a.disconnect()
    })
  }
}

async function createSchema(schema: string): Promise<void> {
  await pool.query(`CREATE SCHEMA "${schema}"`)
  if (!KEEP) cleanups.push(() => pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`))
}

// ---------------------------------------------------------------------------------------------
// produce

/** Columns of the rows a correct run writes, kept for R_sink (columnar: 1M rows stay compact). */
interface Columns {
  txn_id: string[]
  account_id: string[]
  amount: string[]
  currency: string[]
  event_time: string[]
  merchant: (string | null)[]
}

async function produceAll(topic: string): Promise<{seconds: number; bytes: number; columns: Columns; expected: ReturnType<typeof expectedState>}> {
  const producer = kafka.producer({allowAutoTopicCreation: false})
  await producer.connect()
  const columns: Columns = {txn_id: [], account_id: [], amount: [], currency: [], event_time: [], merchant: []}
  const outcomes: GeneratedTransaction[] = []
  let bytes = 0
  const t0 = performance.now()
  const inFlight = new Set<Promise<unknown>>()
  let chunk: {key: string; value: Buffer}[] = []
  const flush = async () => {
    const messages = chunk
    chunk = []
    const p = producer.send({topic, acks: 1, messages}).finally(() => inFlight.delete(p))
    inFlight.add(p)
    if (inFlight.size >= 4) await Promise.race(inFlight)
  }
  for (const t of transactionStream(N, {seed: SEED, dirty: DIRTY, targetBytes: RECORD_BYTES, idPrefix: `B${run}-`})) {
    bytes += t.value.length
    chunk.push({key: t.key, value: t.value})
    // keep only what expectedState needs (outcome and clean row), not the value bytes
    outcomes.push({...t, value: Buffer.alloc(0), record: null})
    if (t.clean) {
      columns.txn_id.push(t.clean.txn_id)
      columns.account_id.push(t.clean.account_id)
      columns.amount.push(t.clean.amount)
      columns.currency.push(t.clean.currency)
      columns.event_time.push(t.clean.event_time)
      columns.merchant.push(t.clean.merchant)
    }
    if (chunk.length >= 2000) await flush()
  }
  if (chunk.length > 0) await flush()
  await Promise.all(inFlight)
  const seconds = (performance.now() - t0) / 1000
  await producer.disconnect()
  return {seconds, bytes, columns, expected: expectedState(outcomes)}
}

// ---------------------------------------------------------------------------------------------
// R_consume

/**
 * CPU seconds spent from now until `stop()` by this process, by the processes `pids` (the broker,
 * a live PostgreSQL backend) and by the whole machine: what the bare baselines cost, beside the
 * stream's (measureCpu).
 */
function cpuSpan(pids: (number | null)[]): {stop(): {self: number; others: number | null; machine: number | null}} {
  const self0 = process.cpuUsage()
  const others0 = pids.map((p) => (p === null ? null : processCpu(p)))
  const machine0 = machineCpu()
  return {
    stop() {
      const d = process.cpuUsage(self0)
      const others1 = pids.map((p) => (p === null ? null : processCpu(p)))
      const machine1 = machineCpu()
      const known = [...others0, ...others1].every((x) => x !== null)
      const sum = (xs: (number | null)[]) => xs.reduce<number>((a, x) => a + x!, 0)
      return {self: (d.user + d.system) / 1e6, others: known ? sum(others1) - sum(others0) : null, machine: machine0 && machine1 ? machine1.busy - machine0.busy : null}
    },
  }
}

/** CPU µs per record of a bare baseline: this process, the other processes it used (the broker, or its PostgreSQL backend), the machine. */
interface BareCpu {
  self: number
  others: number | null
  machine: number | null
}

const bareCpuOf = (c: ReturnType<ReturnType<typeof cpuSpan>['stop']>, records: number): BareCpu => ({
  self: perRecordUs(c.self, records)!,
  others: perRecordUs(c.others, records),
  machine: perRecordUs(c.machine, records),
})

/**
 * Reads `topic` from the beginning in a fresh consumer group, handing each kafkajs batch to
 * `handle` (awaited: one batch at a time), until `total` records were handed over; the consumer is
 * disconnected after. `onDone` is called the moment the last batch is handled (before the disconnect).
 */
async function consumeAll(groupId: string, topic: string, total: number, handle: (batch: Batch) => Promise<void> | void, onDone: () => void): Promise<void> {
  const consumer = kafka.consumer({groupId})
  let count = 0
  try {
    await consumer.connect()
    await consumer.subscribe({topic, fromBeginning: true})
    let done!: () => void
    const finished = new Promise<void>((r) => (done = r))
    await consumer.run({
      eachBatch: async ({batch}) => {
        await handle(batch)
        count += batch.messages.length
        if (count >= total) {
          onDone()
          done()
        }
      },
    })
    await finished
  } finally {
    await consumer.disconnect()
  }
}

async function bareConsume(topic: string, total: number): Promise<{rate: number; seconds: number; batches: number; meanBatch: number; cpu_us_per_record: BareCpu}> {
  let count = 0
  let batches = 0
  const span = cpuSpan([brokerPid()])
  const t0 = performance.now()
  let seconds = 0
  let cpu!: ReturnType<(typeof span)['stop']>
  await consumeAll(
    `bench-bare-${run}`,
    topic,
    total,
    (batch) => {
      count += batch.messages.length
      batches++
    },
    () => {
      seconds = (performance.now() - t0) / 1000
      cpu = span.stop()
    },
  )
  return {rate: count / seconds, seconds, batches, meanBatch: count / batches, cpu_us_per_record: bareCpuOf(cpu, count)}
}

// ---------------------------------------------------------------------------------------------
// R_sink

async function bareSink(schema: string, columns: Columns, batchSize: number, table = 'sink_baseline'): Promise<{rate: number; seconds: number; rows: number; cpu_us_per_record: BareCpu}> {
  await pool.query(`CREATE TABLE "${schema}".${table} (LIKE "${schema}".txn_clean INCLUDING ALL)`)
  const sql = `INSERT INTO "${schema}".${table} (txn_id, account_id, amount, currency, event_time, merchant)
    SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::text[], $5::timestamptz[], $6::text[])
    ON CONFLICT (txn_id) DO UPDATE SET account_id = EXCLUDED.account_id, amount = EXCLUDED.amount,
      currency = EXCLUDED.currency, event_time = EXCLUDED.event_time, merchant = EXCLUDED.merchant`
  const client = await pool.connect()
  const rows = columns.txn_id.length
  // its PostgreSQL backend's CPU, read from /proc while it lives (null when PostgreSQL is not on this machine)
  const backend = (await client.query<{pid: number}>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  const span = cpuSpan([processCpu(backend) === null ? null : backend])
  const t0 = performance.now()
  let cpu: ReturnType<(typeof span)['stop']>
  try {
    for (let i = 0; i < rows; i += batchSize) {
      const j = Math.min(rows, i + batchSize)
      await client.query('BEGIN')
      await client.query(sql, [
        columns.txn_id.slice(i, j),
        columns.account_id.slice(i, j),
        columns.amount.slice(i, j),
        columns.currency.slice(i, j),
        columns.event_time.slice(i, j),
        columns.merchant.slice(i, j),
      ])
      await client.query('COMMIT')
    }
  } finally {
    cpu = span.stop()
    client.release()
  }
  const seconds = (performance.now() - t0) / 1000
  return {rate: rows / seconds, seconds, rows, cpu_us_per_record: bareCpuOf(cpu, rows)}
}

/**
 * What barePipelineSink is given made, as R_sink is given its rows: each row's payload hash (the
 * runtime's is of its canonical JSON) and business date (event_time's date in the spec's
 * Europe/Moscow, UTC+3). Made once for both of its forms.
 */
function pipelineInputs(columns: Columns): {hashes: string[]; dates: string[]} {
  const rows = columns.txn_id.length
  const hashes = new Array<string>(rows)
  const dates = new Array<string>(rows)
  for (let i = 0; i < rows; i++) {
    hashes[i] = createHash('sha256').update(`${columns.txn_id[i]}\t${columns.account_id[i]}\t${columns.amount[i]}\t${columns.currency[i]}\t${columns.event_time[i]}\t${columns.merchant[i]}`).digest('hex')
    dates[i] = new Date(Date.parse(columns.event_time[i]!) + 3 * 3600_000).toISOString().slice(0, 10)
  }
  return {hashes, dates}
}

/**
 * R_sink_pipeline: the database work of the bench's pipeline, bare, one transaction per batch of
 * `batchSize` rows, no Kafka and no node work beyond sending (the rows, their payload hashes and
 * business dates made before the clock starts): the partition's offset row updated, the batch's
 * keys looked up in a key table like `cutover.stream_dedupe` (LIKE it, INCLUDING ALL: the same
 * primary key, collation and retention index) and the new ones inserted with their SHA-256, the
 * upsert of R_sink, and the aggregate's `INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE`
 * of count and sum. `how` 'unnest': all in unnest statements, as R_sink; 'copy': the new keys and
 * the rows by COPY, as the runtime writes them (the bench's rows are all new: a plain insert, no
 * ON CONFLICT), the lookup and the aggregate as before. What `stream run` must do in PostgreSQL
 * for each batch of this spec, and R_sink does not (no dedupe keys, no aggregate, no offsets): H
 * with it in R_sink's place says how near the runtime is to a pipeline that does only that work.
 */
async function barePipelineSink(schema: string, columns: Columns, {hashes, dates}: ReturnType<typeof pipelineInputs>, batchSize: number, how: 'unnest' | 'copy' = 'unnest'): Promise<{rate: number; seconds: number; rows: number; batch_size: number; how: string; cpu_us_per_record: BareCpu}> {
  const s = `"${schema}"`
  const t = how === 'copy' ? 'pipeline_copy' : 'pipeline_sink'
  await pool.query(`CREATE TABLE ${s}.${t}_txn (LIKE ${s}.txn_clean INCLUDING ALL);
    CREATE TABLE ${s}.${t}_totals (LIKE ${s}.account_daily_totals INCLUDING ALL);
    CREATE TABLE ${s}.${t}_keys (LIKE cutover.stream_dedupe INCLUDING ALL);
    CREATE TABLE ${s}.${t}_offsets (LIKE cutover.stream_offsets INCLUDING ALL);
    INSERT INTO ${s}.${t}_offsets (pipeline, topic, partition, next_offset) SELECT 'bench', 'bench', p, 0 FROM generate_series(0, ${PARTITIONS - 1}) p`)
  const rows = columns.txn_id.length
  const upsert = `INSERT INTO ${s}.${t}_txn (txn_id, account_id, amount, currency, event_time, merchant)
    SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::text[], $5::timestamptz[], $6::text[])
    ON CONFLICT (txn_id) DO UPDATE SET account_id = EXCLUDED.account_id, amount = EXCLUDED.amount,
      currency = EXCLUDED.currency, event_time = EXCLUDED.event_time, merchant = EXCLUDED.merchant`
  // a probe of the primary key per key, as the runtime's lookup (a plain join may hash the whole key table)
  const lookup = `SELECT k.key FROM unnest($2::text[]) AS k(key) CROSS JOIN LATERAL (SELECT 1 FROM ${s}.${t}_keys d WHERE d.pipeline = $1 AND d.key = k.key LIMIT 1) AS d`
  const claim = `INSERT INTO ${s}.${t}_keys (pipeline, key, payload_sha256) SELECT $1, u.k, decode(u.h, 'hex') FROM unnest($2::text[], $3::text[]) AS u(k, h)`
  const aggregate = `INSERT INTO ${s}.${t}_totals AS t (account_id, business_date, txn_count, amount_sum)
    SELECT u.account_id, u.business_date, count(*), sum(u.amount) FROM unnest($1::text[], $2::date[], $3::numeric[]) AS u(account_id, business_date, amount)
    GROUP BY u.account_id, u.business_date
    ON CONFLICT (account_id, business_date) DO UPDATE SET txn_count = t.txn_count + EXCLUDED.txn_count, amount_sum = t.amount_sum + EXCLUDED.amount_sum`
  const client = await pool.connect()
  const backend = (await client.query<{pid: number}>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  const span = cpuSpan([processCpu(backend) === null ? null : backend])
  const t0 = performance.now()
  let cpu: ReturnType<(typeof span)['stop']>
  try {
    for (let i = 0, b = 0; i < rows; i += batchSize, b++) {
      const j = Math.min(rows, i + batchSize)
      const keys = columns.txn_id.slice(i, j)
      await client.query('BEGIN')
      await client.query(`UPDATE ${s}.${t}_offsets SET next_offset = $1 WHERE pipeline = 'bench' AND topic = 'bench' AND partition = $2`, [j, b % PARTITIONS])
      const known = new Set((await client.query<{key: string}>(lookup, ['bench', keys])).rows.map((r) => r.key))
      const fresh = known.size === 0 ? keys : keys.filter((k) => !known.has(k))
      const freshHashes = known.size === 0 ? hashes.slice(i, j) : hashes.slice(i, j).filter((_, k) => !known.has(keys[k]!))
      if (how === 'copy') {
        // as the runtime writes new keys and new rows (COPY text, a plain insert: the bench's rows are all new)
        await copyIn(client, `COPY ${s}.${t}_keys (pipeline, key, payload_sha256) FROM STDIN`, fresh.map((k, n) => `bench\t${copyField(k)}\t\\\\x${freshHashes[n]}\n`).join(''))
        const lines = new Array<string>(j - i)
        for (let r = i; r < j; r++) lines[r - i] = `${copyField(columns.txn_id[r])}\t${copyField(columns.account_id[r])}\t${columns.amount[r]}\t${copyField(columns.currency[r])}\t${columns.event_time[r]}\t${copyField(columns.merchant[r])}\n`
        await copyIn(client, `COPY ${s}.${t}_txn (txn_id, account_id, amount, currency, event_time, merchant) FROM STDIN`, lines.join(''))
      } else {
        await client.query(claim, ['bench', fresh, freshHashes])
        await client.query(upsert, [keys, columns.account_id.slice(i, j), columns.amount.slice(i, j), columns.currency.slice(i, j), columns.event_time.slice(i, j), columns.merchant.slice(i, j)])
      }
      await client.query(aggregate, [columns.account_id.slice(i, j), dates.slice(i, j), columns.amount.slice(i, j)])
      await client.query('COMMIT')
    }
  } finally {
    cpu = span.stop()
    client.release()
  }
  const seconds = (performance.now() - t0) / 1000
  return {rate: rows / seconds, seconds, rows, batch_size: batchSize, how, cpu_us_per_record: bareCpuOf(cpu, rows)}
}

// ---------------------------------------------------------------------------------------------
// stream run


/** `node bin/run.js stream run <args>` (the stream harness' child process), logging at warn unless CUTOVER_LOG_LEVEL says otherwise. */
function startStream(args: string[]): StreamProcess {
  return startStreamRun(args, {CUTOVER_LOG_LEVEL: env.CUTOVER_LOG_LEVEL ?? 'warn'})
}

function writeSpec(dir: string, name: string, topic: string): string {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, cardTransactionSpec({name, topic, group: `${name}-group`, dlqTopic: `${topic}.dlq`}))
  if (!KEEP) cleanups.push(() => forgetPipeline(pool, name))
  return file
}

/**
 * `stream run --until-idle` of the pipeline `name` (spec file `spec`, sinks in `schema`) over the
 * topic's N records, with its CPU (measureCpu) and its steady rate: records committed (the sum of
 * the pipeline's stored offsets, six rows) from the first commit seen to the last, polled every
 * 50 ms. This polling must cost the machine nothing: an earlier version polled count(*) of the
 * sink table, which at 1M rows took ~150 ms a time in parallel workers, and so took most of a core
 * from the run it measured and showed as its PostgreSQL CPU.
 */
async function measuredStreamRun(name: string, spec: string, schema: string): Promise<{res: Awaited<StreamProcess['done']>; runCpu: RunCpu; wall: number; steadyPerSecond: number}> {
  const t0 = performance.now()
  const s = startStream(['--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', String(IDLE_MS), '--json'])
  const cpu = await measureCpu(pool, s.child)
  let exited = false
  void s.done.then(() => (exited = true))
  let firstRowAt: number | null = null
  let firstRows = 0
  let lastRowAt: number | null = null
  while (!exited) {
    const n = Number((await pool.query<{n: string | null}>('SELECT sum(next_offset)::text AS n FROM cutover.stream_offsets WHERE pipeline = $1', [name])).rows[0]!.n ?? 0)
    if (n > 0 && firstRowAt === null) {
      firstRowAt = performance.now()
      firstRows = n
    }
    if (n >= N && lastRowAt === null) lastRowAt = performance.now()
    await sleep(50)
  }
  const res = await s.done
  const runCpu = await cpu.stop()
  const wall = (performance.now() - t0) / 1000
  // records committed after the first commit seen, per second
  const steadyPerSecond = firstRowAt !== null && lastRowAt !== null && lastRowAt > firstRowAt ? (N - firstRows) / ((lastRowAt - firstRowAt) / 1000) : NaN
  return {res, runCpu, wall, steadyPerSecond}
}

// ---------------------------------------------------------------------------------------------
// the ladder (BENCH_LADDER=1): where R_stream / H goes, one piece of work at a time

interface Rung {
  rung: string
  rate: number
  steady_rate: number | null
  /** CPU µs per record: this process or `stream run`, PostgreSQL, the broker, the machine */
  cpu_us_per_record: {node: number | null; postgres: number | null; broker: number | null; machine: number | null}
  error?: string
}

/**
 * The first rung: the two baselines' work chained in one process, plus decoding: kafkajs
 * eachBatch (one partition at a time, as R_consume) -> JSON.parse of each value -> one unnest
 * upsert of the raw text fields per batch, in a transaction, as R_sink. No normalization, dedupe,
 * offsets, aggregate or dead letters (a value that is not a JSON object is skipped; a key repeated
 * in a batch is written once). What a pipeline doing nothing more than H's work reaches here.
 */
async function chainRung(topic: string, schema: string): Promise<Rung> {
  await pool.query(`CREATE TABLE "${schema}".chain_raw (id text PRIMARY KEY, acct text, amt text, ts text, currency text, merchant text)`)
  const sql = `INSERT INTO "${schema}".chain_raw (id, acct, amt, ts, currency, merchant)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
    ON CONFLICT (id) DO UPDATE SET acct = EXCLUDED.acct, amt = EXCLUDED.amt, ts = EXCLUDED.ts, currency = EXCLUDED.currency, merchant = EXCLUDED.merchant`
  const names = ['id', 'acct', 'amt', 'ts', 'currency', 'merchant'] as const
  const client = await pool.connect()
  const backend = (await client.query<{pid: number}>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  let count = 0
  const span = cpuSpan([brokerPid(), processCpu(backend) === null ? null : backend])
  const t0 = performance.now()
  let seconds = 0
  let cpu!: ReturnType<(typeof span)['stop']>
  try {
    await consumeAll(
      `bench-chain-${run}`,
      topic,
      N,
      async (batch) => {
        const byId = new Map<string, Record<string, unknown>>()
        for (const m of batch.messages) {
          count++
          try {
            const v = JSON.parse(m.value?.toString() ?? '') as unknown
            if (v !== null && typeof v === 'object' && typeof (v as {id?: unknown}).id === 'string') byId.set((v as {id: string}).id, v as Record<string, unknown>)
          } catch {
            // not JSON: skipped
          }
        }
        const rows = [...byId.values()]
        await client.query('BEGIN')
        await client.query(
          sql,
          names.map((k) => rows.map((r) => (r[k] === null || r[k] === undefined ? null : String(r[k])))),
        )
        await client.query('COMMIT')
      },
      () => {
        seconds = (performance.now() - t0) / 1000
        cpu = span.stop()
      },
    )
  } finally {
    client.release()
  }
  const c = bareCpuOf(cpu, count)
  return {rung: 'chain: consume -> JSON.parse -> upsert', rate: count / seconds, steady_rate: null, cpu_us_per_record: {node: c.self, postgres: null, broker: null, machine: c.machine, ...(c.others === null ? {} : {postgres: c.others})}}
}

/** A rung of `stream run` itself: the bench's spec with `drop` taken out of it, in a schema of its own. */
async function streamRung(dir: string, topic: string, rung: string, drop: string[]): Promise<Rung> {
  const name = `bench-ladder-${run}-${drop.length}`
  const schema = `bench_${run}_l${drop.length}`
  await createSchema(schema)
  await createSinkTables(pool, schema)
  const spec = writeSpec(dir, name, topic)
  let text = readFileSync(spec, 'utf8')
  for (const d of drop) {
    if (!text.includes(d)) throw new Error(`the bench spec no longer holds ${JSON.stringify(d)}`)
    text = text.replace(d, '')
  }
  writeFileSync(spec, text)
  const {res, runCpu, steadyPerSecond} = await measuredStreamRun(name, spec, schema)
  const none = {node: null, postgres: null, broker: null, machine: null}
  if (res.code !== 0) return {rung, rate: NaN, steady_rate: null, cpu_us_per_record: none, error: `stream run exited ${res.code}: ${res.stderr.slice(-1000)}`}
  const j = JSON.parse(res.stdout) as StreamRunJson
  return {
    rung,
    rate: j.read / (j.elapsed_ms / 1000),
    steady_rate: steadyPerSecond,
    cpu_us_per_record: {node: perRecordUs(runCpu.node, j.read), postgres: perRecordUs(runCpu.postgres, j.read), broker: perRecordUs(runCpu.broker, j.read), machine: perRecordUs(runCpu.machine, j.read)},
  }
}

/** The bench spec's dedupe line and aggregate sink, as cardTransactionSpec writes them. */
const DEDUPE_LINE = 'dedupe: { by: txn_id, conflicting: dlq }\n'
const AGGREGATE_SINK = '  - table: account_daily_totals\n    group_by: [account_id, business_date]\n    aggregates: { txn_count: count, amount_sum: sum(amount) }\n'

async function ladder(dir: string, topic: string, schema: string): Promise<Rung[]> {
  const rungs: Rung[] = []
  rungs.push(await chainRung(topic, schema))
  log(`ladder: ${rungs.at(-1)!.rung} ${fmt(rungs.at(-1)!.rate)} records/s`)
  rungs.push(await streamRung(dir, topic, 'stream run: upsert sink only', [DEDUPE_LINE, AGGREGATE_SINK]))
  log(`ladder: ${rungs.at(-1)!.rung} ${fmt(rungs.at(-1)!.rate)} records/s`)
  rungs.push(await streamRung(dir, topic, 'stream run: + dedupe', [AGGREGATE_SINK]))
  log(`ladder: ${rungs.at(-1)!.rung} ${fmt(rungs.at(-1)!.rate)} records/s`)
  return rungs
}

// ---------------------------------------------------------------------------------------------
// latency

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]!
}

/** Quantile of a Prometheus histogram, linearly interpolated inside the bucket (as histogram_quantile does). */
export function histogramQuantile(buckets: {le: number; count: number}[], q: number): number {
  const sorted = [...buckets].sort((a, b) => a.le - b.le)
  const total = sorted.at(-1)?.count ?? 0
  if (total === 0) return NaN
  const rank = q * total
  let prevLe = 0
  let prevCount = 0
  for (const b of sorted) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return prevLe
      return prevLe + ((b.le - prevLe) * (rank - prevCount)) / Math.max(1, b.count - prevCount)
    }
    prevLe = b.le
    prevCount = b.count
  }
  return prevLe
}

type Buckets = {le: number; count: number}[]
/** The runtime's histograms read from --metrics-port: end-to-end latency, commit (transaction) time, batch size. */
type Scrape = {e2e: Buckets; commit: Buckets; batch: Buckets}
const HISTOGRAMS = {e2e: 'cutover_end_to_end_latency_seconds', commit: 'cutover_commit_latency_seconds', batch: 'cutover_batch_size_records'} as const

async function scrapeHistograms(port: number): Promise<Scrape | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`)
    if (!res.ok) return null
    const text = await res.text()
    const out: Scrape = {e2e: [], commit: [], batch: []}
    for (const line of text.split('\n')) {
      const m = /^(\w+)_bucket\{[^}]*le="([^"]+)"[^}]*\}\s+(\S+)/.exec(line)
      if (!m) continue
      const which = (Object.keys(HISTOGRAMS) as (keyof Scrape)[]).find((k) => HISTOGRAMS[k] === m[1])
      if (which) out[which].push({le: m[2] === '+Inf' ? Infinity : Number(m[2]), count: Number(m[3])})
    }
    return out
  } catch {
    return null // not listening (yet)
  }
}

/** p50/p95/p99 of what a histogram counted between two scrapes (`scale` 1000: seconds -> ms). */
function quantilesBetween(before: Buckets, after: Buckets, scale: number): {p50: number; p95: number; p99: number; count: number} | null {
  if (after.length === 0) return null
  const delta = after.map((b) => ({le: b.le, count: b.count - (before.find((x) => x.le === b.le)?.count ?? 0)}))
  const count = delta.find((d) => !Number.isFinite(d.le))?.count ?? 0
  return {p50: histogramQuantile(delta, 0.5) * scale, p95: histogramQuantile(delta, 0.95) * scale, p99: histogramQuantile(delta, 0.99) * scale, count}
}

async function waitForRows(schema: string, where: string, want: number, stream: StreamProcess, label: string): Promise<void> {
  let exited = false
  void stream.done.then(() => (exited = true))
  for (;;) {
    const r = await pool.query<{n: string}>(`SELECT count(*) AS n FROM "${schema}".txn_clean WHERE ${where}`)
    if (Number(r.rows[0]!.n) >= want) return
    if (exited) throw new Error(`stream run exited before ${label} reached PostgreSQL`)
    await sleep(50)
  }
}

interface LatencyResult {
  rate_target: number
  seconds: number
  produced: number
  measured: number
  achieved_rate: number
  p50_ms: number
  p95_ms: number
  p99_ms: number
  max_ms: number
  runtime_histogram: {p50_ms: number; p95_ms: number; p99_ms: number; count: number} | null
  /** the runtime's own view of the paced run: transaction time and records per committed batch */
  commit_ms: {p50: number; p95: number; p99: number; count: number} | null
  batch_records: {p50: number; p95: number; p99: number; count: number} | null
  /** PostgreSQL's own background work during the paced run, which shares the 2 cores with it */
  background: BackgroundWork | null
  /** the first WARMUP_SECONDS of the paced run, not in the figures above: a process just started (its code not yet compiled by V8's optimizing tiers) */
  cold_start: {seconds: number; measured: number; p50_ms: number; p95_ms: number; p99_ms: number; max_ms: number}
}

interface BackgroundWork {
  /** checkpoints started (requested or timed) while it ran */
  checkpoints: number
  /** buffers the checkpointer wrote while it ran: a checkpoint started before it still writes during it */
  checkpoint_buffers: number
  /** MB the kernel wrote to the disks while it ran (/proc/vmstat pgpgout; every process): what the WAL's fsync at each COMMIT queues behind */
  disk_written_mb: number | null
  /** seconds an autovacuum worker was seen on each table (sampled every 250 ms) */
  autovacuum_s: Record<string, number>
}

/**
 * Samples what PostgreSQL does besides serving the stream while the paced run goes: checkpoints
 * (pg_stat_bgwriter) and autovacuum workers by table (pg_stat_activity). After a 1M-record run the
 * big tables are vacuumed and analyzed right in the paced run's 30 s; this says when, so that a
 * latency figure can be read against it.
 */
function watchBackground(): {stop(): Promise<BackgroundWork | null>} {
  const seen = new Map<string, number>()
  const PERIOD_MS = 250
  let stopped = false
  const checkpoints = () =>
    pool
      .query<{n: string; b: string}>('SELECT (checkpoints_timed + checkpoints_req)::text AS n, buffers_checkpoint::text AS b FROM pg_stat_bgwriter')
      .then((r) => ({n: Number(r.rows[0]!.n), b: Number(r.rows[0]!.b)}))
  const pagedOut = (): number | null => {
    try {
      const m = /^pgpgout (\d+)$/m.exec(readFileSync('/proc/vmstat', 'utf8'))
      return m ? Number(m[1]) : null // KiB
    } catch {
      return null
    }
  }
  const outBefore = pagedOut()
  const before = checkpoints().catch(() => null)
  const loop = (async () => {
    while (!stopped) {
      try {
        const r = await pool.query<{q: string}>(`SELECT query AS q FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND query LIKE 'autovacuum:%'`)
        for (const {q} of r.rows) {
          const table = q.replace(/^autovacuum:\s*(VACUUM ANALYZE|VACUUM|ANALYZE)\s*/, '').replace(/\s*\(to prevent wraparound\)$/, '')
          seen.set(table, (seen.get(table) ?? 0) + PERIOD_MS / 1000)
        }
      } catch {
        // a sample lost: the figure is a floor
      }
      await sleep(PERIOD_MS)
    }
  })()
  return {
    async stop() {
      stopped = true
      await loop
      const [b, a] = [await before, await checkpoints().catch(() => null)]
      const outAfter = pagedOut()
      if (!b || !a) return null
      return {
        checkpoints: a.n - b.n,
        checkpoint_buffers: a.b - b.b,
        disk_written_mb: outBefore === null || outAfter === null ? null : (outAfter - outBefore) / 1024,
        autovacuum_s: Object.fromEntries([...seen].sort((x, y) => y[1] - x[1])),
      }
    },
  }
}

async function latencyRun(dir: string): Promise<LatencyResult> {
  const topic = `bench-latency-${run}`
  const schema = `bench_lat_${run}`
  await createTopic(topic, PARTITIONS)
  await createTopic(`${topic}.dlq`, 1)
  await createSchema(schema)
  await createSinkTables(pool, schema, {extraTxnColumns: 'ingest_xid bigint NOT NULL DEFAULT txid_current()'})
  const channel = `cutover_bench_${run}`
  await pool.query(`
    CREATE FUNCTION "${schema}".notify_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('${channel}', txid_current()::text); RETURN NULL; END $$;
    CREATE TRIGGER notify_commit AFTER INSERT ON "${schema}".txn_clean FOR EACH STATEMENT EXECUTE FUNCTION "${schema}".notify_commit();`)
  const committedAt = new Map<string, number>()
  const listener = new pg.Client({connectionString: settings.databaseUrl})
  await listener.connect()
  listener.on('notification', (n) => {
    if (n.payload && !committedAt.has(n.payload)) committedAt.set(n.payload, performance.timeOrigin + performance.now())
  })
  await listener.query(`LISTEN ${channel}`)

  const name = `bench-lat-${run}`
  const spec = writeSpec(dir, name, topic)
  const metricsPort = await freePort()
  const stream = startStream(['--spec', spec, '--schema', schema, '--metrics-port', String(metricsPort), '--json'])
  const producer = kafka.producer({allowAutoTopicCreation: false})
  await producer.connect()
  const now = () => performance.timeOrigin + performance.now()
  let seq = 0
  const makeMessages = (count: number, prefix: string) => {
    const t = now()
    const msgs: {key: string; value: string}[] = []
    const ids: string[] = []
    for (let i = 0; i < count; i++) {
      const id = `${prefix}${String(seq++).padStart(9, '0')}`
      const acct = `A${String(seq % 500).padStart(5, '0')}`
      const rec = {id, acct, amt: minorToDecimal(100 + ((seq * 7919) % 1_000_000)), ts: Math.round(t), currency: 'RUB', merchant: 'PYATEROCHKA 0042 MOSCOW', memo: 'card-present purchase; terminal 00'.repeat(6)}
      msgs.push({key: id, value: JSON.stringify(rec)})
      ids.push(id)
    }
    return {msgs, ids, t}
  }
  try {
    // the stream joins the group, is assigned its partitions and commits these 200 records
    const warm = makeMessages(200, `W${run}-`)
    await producer.send({topic, acks: 1, messages: warm.msgs})
    await waitForRows(schema, `txn_id LIKE 'W%'`, 200, stream, 'the first records')
    await sleep(1000)

    // One paced run: its first WARMUP_SECONDS are the cold start (reported apart), the next
    // LATENCY_SECONDS the figures. A process that has handled a few hundred records still runs
    // most of its code unoptimized: until the eighteenth session the paced run started here and
    // its first second (records at 100-260 ms, 1-2% of them) decided the p99.
    const sentAt = new Map<string, number>()
    const warmStart = now()
    const start = warmStart + WARMUP_SECONDS * 1000
    const end = start + LATENCY_SECONDS * 1000
    let before: Awaited<ReturnType<typeof scrapeHistograms>> | undefined
    let background: ReturnType<typeof watchBackground> | undefined
    let sent = 0
    const pending = new Set<Promise<unknown>>()
    while (now() < end) {
      if (!background && now() >= start) {
        background = watchBackground()
        // not awaited: the producer keeps its pace meanwhile
        const scraped = scrapeHistograms(metricsPort).then((h) => (before = h))
        pending.add(scraped)
        void scraped.finally(() => pending.delete(scraped))
      }
      const due = Math.floor(((now() - warmStart) / 1000) * RATE) - sent
      if (due > 0) {
        const {msgs, ids, t} = makeMessages(due, `L${run}-`)
        for (const id of ids) sentAt.set(id, t)
        const p = producer.send({topic, acks: 1, messages: msgs}).finally(() => pending.delete(p))
        pending.add(p)
        sent += due
      }
      await sleep(5)
    }
    await Promise.all(pending)
    const seconds = (now() - start) / 1000
    log(`latency: produced ${sent} records in ${(WARMUP_SECONDS + seconds).toFixed(1)} s (the first ${WARMUP_SECONDS} s the cold start); waiting for the last commits`)
    await waitForRows(schema, `txn_id LIKE 'L%'`, sent, stream, 'the paced records')
    const backgroundWork = (await background?.stop()) ?? null
    await sleep(500)
    const after = await scrapeHistograms(metricsPort)

    const r = await pool.query<{txn_id: string; xid: string}>(`SELECT txn_id, ingest_xid::text AS xid FROM "${schema}".txn_clean WHERE txn_id LIKE 'L%'`)
    const lat: number[] = []
    const cold: number[] = []
    const dump: string[] = []
    for (const row of r.rows) {
      const c = committedAt.get(row.xid)
      const s = sentAt.get(row.txn_id)
      if (c !== undefined && s !== undefined) {
        ;(s < start ? cold : lat).push(c - s)
        if (LATENCY_DUMP) dump.push(`${(s - start).toFixed(1)},${(c - s).toFixed(1)},${row.xid},${s.toFixed(0)}`)
      }
    }
    if (LATENCY_DUMP) writeFileSync(LATENCY_DUMP, `sent_ms,latency_ms,xid,sent_epoch_ms\n${dump.sort((a, b) => parseFloat(a) - parseFloat(b)).join('\n')}\n`)
    lat.sort((a, b) => a - b)
    cold.sort((a, b) => a - b)
    const measuredSent = [...sentAt.values()].filter((t) => t >= start).length
    let runtimeHistogram: LatencyResult['runtime_histogram'] = null
    const e2e = before && after ? quantilesBetween(before.e2e, after.e2e, 1000) : null
    if (e2e) runtimeHistogram = {p50_ms: e2e.p50, p95_ms: e2e.p95, p99_ms: e2e.p99, count: e2e.count}
    return {
      rate_target: RATE,
      seconds,
      produced: measuredSent,
      measured: lat.length,
      achieved_rate: measuredSent / seconds,
      p50_ms: percentile(lat, 50),
      p95_ms: percentile(lat, 95),
      p99_ms: percentile(lat, 99),
      max_ms: lat.at(-1) ?? NaN,
      runtime_histogram: runtimeHistogram,
      commit_ms: before && after ? quantilesBetween(before.commit, after.commit, 1000) : null,
      batch_records: before && after ? quantilesBetween(before.batch, after.batch, 1) : null,
      background: backgroundWork,
      cold_start: {seconds: WARMUP_SECONDS, measured: cold.length, p50_ms: percentile(cold, 50), p95_ms: percentile(cold, 95), p99_ms: percentile(cold, 99), max_ms: cold.at(-1) ?? NaN},
    }
  } finally {
    await producer.disconnect()
    stream.child.kill('SIGTERM')
    const res = await stream.done
    if (res.code !== 0) log(`latency stream run exited ${res.code}: ${res.stderr.slice(-2000)}`)
    await listener.end()
  }
}

// ---------------------------------------------------------------------------------------------
// main

async function main(): Promise<void> {
  const loadAtStart = loadavg()
  await ensureDatabase(settings.databaseUrl)
  await prepareRuntimeTables(pool)
  const dir = mkdtempSync(join(tmpdir(), 'cutover-bench-'))
  cleanups.push(async () => rmSync(dir, {recursive: true, force: true}))
  if (ONLY_LATENCY) {
    // the paced run alone, on a fresh topic (no 1M records before it): for looking into latency
    const latency = await latencyRun(dir)
    console.log(JSON.stringify(latency, null, 2))
    return
  }
  const topic = `bench-stream-${run}`
  const schema = `bench_${run}`
  log(`${N.toLocaleString()} records of ~${RECORD_BYTES} bytes, ${DIRTY * 100}% dirty, ${PARTITIONS} partitions; topic ${topic}, schema ${schema}`)
  await createTopic(topic, PARTITIONS)
  await createTopic(`${topic}.dlq`, 1)
  await createSchema(schema)
  await createSinkTables(pool, schema)

  const produced = await produceAll(topic)
  log(`produced in ${produced.seconds.toFixed(1)} s (${fmt(N / produced.seconds)} records/s, ${fmt(produced.bytes / N)} bytes/record)`)

  const consume = await bareConsume(topic, N)
  log(`R_consume ${fmt(consume.rate)} records/s (${consume.batches} batches, mean ${fmt(consume.meanBatch)})`)

  const batchSize = Math.max(1, Math.round(consume.meanBatch))
  const sink = await bareSink(schema, produced.columns, batchSize)
  log(`R_sink ${fmt(sink.rate)} rows/s (${sink.rows} rows, batches of ${batchSize})`)
  const H = 1 / (1 / consume.rate + 1 / sink.rate)

  let stream: (StreamRunJson & {rate: number; steady_rate: number; wall_seconds: number; conservation: string[]; cpu_us_per_record: {node: number | null; postgres: number | null; broker: number | null; machine: number | null}; machine_busy: number | null}) | null = null
  let latency: LatencyResult | null = null
  let sinkAtStreamBatch: {rate: number; seconds: number; rows: number; batch_size: number} | null = null
  let sinkPipeline: Awaited<ReturnType<typeof barePipelineSink>> | null = null
  let sinkPipelineCopy: Awaited<ReturnType<typeof barePipelineSink>> | null = null
  let streamError: string | null = null
  let rungs: Rung[] | null = null
  if (!STREAM_BUILT) {
    streamError = 'stream run is not built (dist/src/commands/stream/run.js missing): run `npm run build`'
    log(streamError)
  } else {
    const name = `bench-stream-${run}`
    const spec = writeSpec(dir, name, topic)
    const {res, runCpu, wall, steadyPerSecond} = await measuredStreamRun(name, spec, schema)
    if (res.code !== 0) {
      streamError = `stream run exited ${res.code}: ${res.stderr.slice(-3000)}`
      log(streamError)
    } else {
      const j = JSON.parse(res.stdout) as StreamRunJson
      const rows = Number((await pool.query<{n: string}>(`SELECT count(*) AS n FROM "${schema}".txn_clean`)).rows[0]!.n)
      const checks = conservationProblems(j, rows, produced.expected)
      stream = {
        ...j,
        rate: j.read / (j.elapsed_ms / 1000),
        steady_rate: steadyPerSecond,
        wall_seconds: wall,
        conservation: checks,
        cpu_us_per_record: {
          node: perRecordUs(runCpu.node, j.read),
          postgres: perRecordUs(runCpu.postgres, j.read),
          broker: perRecordUs(runCpu.broker, j.read),
          machine: perRecordUs(runCpu.machine, j.read),
        },
        machine_busy: runCpu.machineBusy,
      }
      // for reference: the bare sink with the runtime's own mean batch size (H above uses kafkajs' batch size)
      const streamBatch = Math.max(1, Math.round(j.written / Math.max(1, j.batches)))
      const s2 = await bareSink(schema, produced.columns, streamBatch, 'sink_baseline_stream_batches')
      sinkAtStreamBatch = {...s2, batch_size: streamBatch}
      log(`R_sink at the runtime's mean batch (${streamBatch} rows): ${fmt(s2.rate)} rows/s`)
      const inputs = pipelineInputs(produced.columns)
      sinkPipeline = await barePipelineSink(schema, produced.columns, inputs, streamBatch)
      log(`R_sink_pipeline (upsert + dedupe keys + aggregate + offset, batches of ${streamBatch}): ${fmt(sinkPipeline.rate)} rows/s`)
      sinkPipelineCopy = await barePipelineSink(schema, produced.columns, inputs, streamBatch, 'copy')
      log(`R_sink_pipeline by COPY (new keys and rows as the runtime writes them): ${fmt(sinkPipelineCopy.rate)} rows/s`)
      log(`R_stream ${fmt(stream.rate)} records/s (read ${j.read} in ${fmt(j.elapsed_ms / 1000, 1)} s, ${j.batches} batches); conservation ${checks.length === 0 ? 'ok' : checks.join('; ')}`)
      if (LADDER) rungs = await ladder(dir, topic, schema)
      // The latency run must not measure this process's own garbage collection: the columns and
      // the expected state of the N records (hundreds of MB of strings and objects) are not needed
      // any more, and while held, this process's major GCs delayed the notifications it times and
      // took CPU from the runtime (two 1M runs: p99 355 and 350 ms here, 148 and 133 ms in the
      // runtime's own histogram; released: 70 and 77 ms).
      for (const c of Object.values(produced.columns)) c.length = 0
      produced.expected.rows.clear()
      produced.expected.aggregates.clear()
      try {
        latency = await latencyRun(dir)
      } catch (e) {
        streamError = `latency run failed: ${e instanceof Error ? e.message : String(e)}`
        log(streamError)
      }
    }
  }

  /** H with R_sink_pipeline in R_sink's place: a pipeline that consumes, then does this spec's database work, not overlapping the two */
  const hPipeline = sinkPipeline ? 1 / (1 / consume.rate + 1 / sinkPipeline.rate) : null
  const hPipelineCopy = sinkPipelineCopy ? 1 / (1 / consume.rate + 1 / sinkPipelineCopy.rate) : null
  const machine = {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    // other work on the machine (tests of other engineers) skews every figure: keep the load beside them
    loadavg_start: loadAtStart.map((l) => Number(l.toFixed(2))),
    loadavg_end: loadavg().map((l) => Number(l.toFixed(2))),
  }
  const result = {
    taken_at: new Date().toISOString(),
    machine,
    records: N,
    record_bytes: Math.round(produced.bytes / N),
    dirty: DIRTY,
    partitions: PARTITIONS,
    produce_rate: N / produced.seconds,
    r_consume: consume,
    r_sink: {...sink, batch_size: batchSize},
    r_sink_at_stream_batch: sinkAtStreamBatch,
    h: H,
    r_stream: stream,
    ratio_stream_over_h: stream ? stream.rate / H : null,
    r_sink_pipeline: sinkPipeline,
    h_pipeline: hPipeline,
    ratio_stream_over_h_pipeline: stream && hPipeline ? stream.rate / hPipeline : null,
    r_sink_pipeline_copy: sinkPipelineCopy,
    h_pipeline_copy: hPipelineCopy,
    ratio_stream_over_h_pipeline_copy: stream && hPipelineCopy ? stream.rate / hPipelineCopy : null,
    latency,
    ladder: rungs,
    error: streamError,
    targets: {ratio: 1.0, r_stream_min: 20000, p95_ms_max: 100, p99_ms_max: 250},
  }
  mkdirSync(join(ROOT, 'bench', 'out'), {recursive: true})
  writeFileSync(join(ROOT, 'bench', 'out', 'stream.json'), JSON.stringify(result, null, 2) + '\n')

  const line = (k: string, v: string, note = '') => console.log(`${k.padEnd(30)}${v.padStart(16)}  ${note}`)
  console.log(`\nbench/stream — ${N.toLocaleString()} records, ~${result.record_bytes} B, ${PARTITIONS} partitions, ${machine.nproc} × ${machine.cpu}, node ${machine.node}, load ${machine.loadavg_start[0]} -> ${machine.loadavg_end[0]}`)
  line('R_consume (bare kafkajs)', fmt(consume.rate), 'records/s')
  line('R_sink (bare unnest upsert)', fmt(sink.rate), `rows/s, batches of ${batchSize}`)
  line('H = 1/(1/Rc + 1/Rs)', fmt(H), 'records/s')
  if (sinkAtStreamBatch) line('(R_sink at stream batches)', fmt(sinkAtStreamBatch.rate), `rows/s, batches of ${sinkAtStreamBatch.batch_size}; H would be ${fmt(1 / (1 / consume.rate + 1 / sinkAtStreamBatch.rate))}`)
  line('R_stream (stream run)', fmt(stream?.rate), stream ? `records/s (target >= 20,000)` : 'not available')
  line('R_stream / H', fmt(result.ratio_stream_over_h, 2), '(target >= 1.00)')
  line('R_stream steady', fmt(stream?.steady_rate), 'records/s, first to last commit (no start-up, no idle wait)')
  line('R_stream steady / H', fmt(stream ? stream.steady_rate / H : null, 2), '')
  const cpu = stream?.cpu_us_per_record
  const perRecord = cpu && cpu.node !== null && cpu.postgres !== null ? cpu.node + cpu.postgres + (cpu.broker ?? 0) : null
  line('CPU per record: stream run', fmt(cpu?.node, 1), 'µs (the node process, start-up and idle wait included)')
  line('CPU per record: PostgreSQL', fmt(cpu?.postgres, 1), 'µs (its backends; n/a when PostgreSQL is not on this machine)')
  line('CPU per record: the broker', fmt(cpu?.broker, 1), 'µs (the Kafka broker; n/a when it is not on this machine)')
  line('CPU per record: the machine', fmt(cpu?.machine, 1), `µs (every process and the kernel, /proc/stat; busy ${fmt(stream?.machine_busy === null || stream?.machine_busy === undefined ? null : stream.machine_busy * 100, 0)}% of ${cpus().length} cores over the run)`)
  line('  ceiling on this machine', fmt(perRecord ? (cpus().length * 1e6) / perRecord : null), `records/s = ${cpus().length} cores / (stream run + PostgreSQL${cpu?.broker === null || cpu?.broker === undefined ? '' : ' + broker'})`)
  const bare = (c: BareCpu) => (c.others === null ? null : c.self + c.others)
  const bc = consume.cpu_us_per_record
  const bs = sink.cpu_us_per_record
  line('CPU per record: bare consume', fmt(bare(bc), 1), `µs (kafkajs ${fmt(bc.self, 1)} + broker ${fmt(bc.others, 1)}; the machine ${fmt(bc.machine, 1)})`)
  line('CPU per record: bare sink', fmt(bare(bs), 1), `µs (node-postgres ${fmt(bs.self, 1)} + its backend ${fmt(bs.others, 1)}; the machine ${fmt(bs.machine, 1)})`)
  const bareBoth = bare(bc) !== null && bare(bs) !== null ? bare(bc)! + bare(bs)! : null
  line('  both, against the stream', fmt(bareBoth, 1), `µs; the stream's ${fmt(perRecord, 1)} µs (stream run + PostgreSQL${cpu?.broker === null || cpu?.broker === undefined ? '' : ' + broker'}) is ${fmt(bareBoth && perRecord ? perRecord / bareBoth : null, 2)}x that`)
  line('  CPU budget for 1.00 x H', fmt(H > 0 ? (cpus().length * 1e6) / H : null, 1), `µs per record: ${cpus().length} cores / H, all the machine may spend on a record for R_stream = H`)
  if (sinkPipeline && hPipeline) {
    const sp = sinkPipeline.cpu_us_per_record
    line('R_sink_pipeline', fmt(sinkPipeline.rate), `rows/s: the spec's database work bare (upsert + dedupe keys + aggregate + offset, one transaction per batch of ${sinkPipeline.batch_size}); CPU ${fmt(bare(sp), 1)} µs (node-postgres ${fmt(sp.self, 1)} + its backend ${fmt(sp.others, 1)})`)
    line('H_pipeline = 1/(1/Rc + 1/Rsp)', fmt(hPipeline), 'records/s (not the issue\'s target: for comparison)')
    line('R_stream / H_pipeline', fmt(stream ? stream.rate / hPipeline : null, 2), `steady ${fmt(stream ? stream.steady_rate / hPipeline : null, 2)}`)
  }
  if (sinkPipelineCopy && hPipelineCopy) {
    const sp = sinkPipelineCopy.cpu_us_per_record
    line('R_sink_pipeline by COPY', fmt(sinkPipelineCopy.rate), `rows/s: the same, new keys and rows by COPY as the runtime writes them; CPU ${fmt(bare(sp), 1)} µs (node-postgres ${fmt(sp.self, 1)} + its backend ${fmt(sp.others, 1)})`)
    line('H_pipeline by COPY', fmt(hPipelineCopy), 'records/s')
    line('R_stream / H_pipeline by COPY', fmt(stream ? stream.rate / hPipelineCopy : null, 2), `steady ${fmt(stream ? stream.steady_rate / hPipelineCopy : null, 2)}`)
  }
  if (rungs && stream) {
    console.log(`\nladder (BENCH_LADDER=1): the same ${N.toLocaleString()} records, one piece of work at a time; CPU µs per record`)
    const all: Rung[] = [...rungs, {rung: 'stream run: + aggregate sink (R_stream)', rate: stream.rate, steady_rate: stream.steady_rate, cpu_us_per_record: stream.cpu_us_per_record}]
    for (const r of all) {
      const c = r.cpu_us_per_record
      const cpuText = `${fmt(c.node, 1)} + ${fmt(c.postgres, 1)}${c.broker === null ? '' : ` + ${fmt(c.broker, 1)}`}; machine ${fmt(c.machine, 1)}`
      console.log(`  ${r.rung.padEnd(42)}${fmt(r.rate).padStart(9)}/s  ${fmt(r.rate / H, 2)} x H${r.steady_rate === null ? '' : `  steady ${fmt(r.steady_rate)} (${fmt(r.steady_rate / H, 2)})`}  ${cpuText}${r.error ? `  ${r.error}` : ''}`)
    }
    console.log('')
  }
  line(`latency at ${RATE}/s p50`, fmt(latency?.p50_ms, 1), 'ms, produce -> commit')
  line(`latency at ${RATE}/s p95`, fmt(latency?.p95_ms, 1), 'ms (target <= 100)')
  line(`latency at ${RATE}/s p99`, fmt(latency?.p99_ms, 1), 'ms (target <= 250)')
  if (latency?.runtime_histogram) {
    const h = latency.runtime_histogram
    line('runtime histogram p50/p95/p99', `${fmt(h.p50_ms, 0)}/${fmt(h.p95_ms, 0)}/${fmt(h.p99_ms, 0)}`, 'ms (bucketed, Kafka timestamp -> commit)')
  }
  if (latency?.commit_ms) line('  transaction p50/p95/p99', `${fmt(latency.commit_ms.p50, 0)}/${fmt(latency.commit_ms.p95, 0)}/${fmt(latency.commit_ms.p99, 0)}`, `ms (bucketed), ${fmt(latency.commit_ms.count)} transactions`)
  if (latency?.batch_records) line('  records per batch p50/p95/p99', `${fmt(latency.batch_records.p50, 0)}/${fmt(latency.batch_records.p95, 0)}/${fmt(latency.batch_records.p99, 0)}`, '(bucketed)')
  if (latency?.cold_start) {
    const c = latency.cold_start
    line(`  cold start p50/p95/p99`, `${fmt(c.p50_ms, 0)}/${fmt(c.p95_ms, 0)}/${fmt(c.p99_ms, 0)}`, `ms, the paced run's first ${c.seconds} s (a process just started; not in the figures above)`)
  }
  if (latency?.background) {
    const b = latency.background
    const av = Object.entries(b.autovacuum_s).map(([t, sec]) => `${t} ${fmt(sec, 1)} s`)
    line('  during it, PostgreSQL', `${b.checkpoints} checkpoint${b.checkpoints === 1 ? '' : 's'}`, `started; the checkpointer wrote ${fmt(b.checkpoint_buffers)} buffers; ${av.length > 0 ? `autovacuum: ${av.join(', ')}` : 'no autovacuum worker seen'}`)
    line('  during it, the disks', `${fmt(b.disk_written_mb, 0)} MB`, 'written (every process: the WAL, data files, the broker\'s log), which a COMMIT\'s WAL flush queues behind')
  }
  if (streamError) console.log(`\n${streamError}`)
  console.log(`\nwrote bench/out/stream.json`)
}

try {
  await main()
} finally {
  for (const c of cleanups.reverse()) await c().catch((e: unknown) => log('cleanup failed:', String(e)))
  await pool.end()
}
