/**
 * Outages in the middle of `cutover stream run` (issue 4, acceptance): the run completes with
 * the same final state as an uninterrupted one and nothing is dead-lettered because of the
 * outage. Through the built CLI, against the real services:
 *
 * - PostgreSQL: the runtime reaches the real server through test/fault-proxy.ts (fault
 *   injection in front of it, not a mock); the proxy cuts every connection and refuses new
 *   ones for 5 s, then lets them through again. The shared server itself is never stopped:
 *   other tests use it meanwhile.
 * - PostgreSQL restarted: a second, private server (test/helpers.ts privatePostgres: initdb,
 *   pg_ctl on its own port) killed with `pg_ctl stop -m immediate` mid-run, down for 5 s, then
 *   started again on the same data (crash recovery replays the WAL).
 * - Kafka: a second, private broker (`dev up --port 19092 --state-dir <tmp>`), stopped with
 *   `dev down` and started again on the same ports and data while the run reads from it.
 *   The shared broker is never touched.
 *
 * Size with CUTOVER_TEST_RECORDS (default 20,000); --max-rate keeps each run about 10 s long so
 * that the outage lands in the middle of it.
 */
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createKafka, createTopicsReady} from '../../src/kafka/client.js'
import pg from 'pg'
import {createTestSchema, createTestTopic, kafka, kafkaSettings, privateBroker, privatePostgres, runCli, settings, testPool, uniqueName} from '../helpers.js'
import {startFaultProxy} from '../fault-proxy.js'
import {expectedState, generateTransactions, type ExpectedState} from '../../fixtures/generator/transactions.js'
import {cardTransactionSpec, compareWithExpected, createSinkTables, forgetPipeline, readSinkState} from '../../fixtures/generator/pipeline.js'
import {deadLettersByCode, kcatRead, produceTransactions, sleep, sortedCounts, startStreamRun, tail, until, type StreamProcess} from '../../fixtures/generator/stream-harness.js'

const N = Number(process.env.CUTOVER_TEST_RECORDS ?? 20_000)
const MAX_RATE = Math.max(500, Math.round(N / 10))
const OUTAGE_MS = 5000

function specFile(name: string, topic: string, dlqTopic: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cutover-outage-'))
  onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, cardTransactionSpec({name, topic, group: `${name}-group`, dlqTopic}))
  return file
}

async function rowCount(pool: pg.Pool, schema: string): Promise<number> {
  const r = await pool.query<{n: string}>(`SELECT count(*) AS n FROM "${schema}".txn_clean`)
  return Number(r.rows[0]!.n)
}

/** The final state and the --json result equal an uninterrupted run's; the DLQ holds only the dirty records. */
async function expectSameFinalState(o: {pool: pg.Pool; schema: string; expected: ExpectedState; run: StreamProcess; brokers: string; dlqTopic: string}) {
  const res = await o.run.done
  expect(res.code, `stream run exited ${res.code}; stderr:\n${tail(res.stderr)}`).toBe(0)
  const json = res.json!
  expect(json, `stdout: ${res.stdout}`).toBeDefined()

  const diffs = compareWithExpected(await readSinkState(o.pool, o.schema), o.expected)
  expect(diffs, 'differences from an uninterrupted run').toEqual([])

  // nothing dead-lettered because of the outage: exactly the dirty records, by code
  expect(sortedCounts(json.dead_lettered)).toEqual(sortedCounts(o.expected.deadLettered))
  expect(json.duplicates).toBe(o.expected.duplicates)
  const dead = Object.values(json.dead_lettered).reduce((a, b) => a + b, 0)
  expect(json.written + dead + json.duplicates, 'read = written + dead-lettered + duplicates').toBe(json.read)

  // and the dead-letter topic, read back with kcat, says the same (each source record once)
  const dlq = deadLettersByCode(kcatRead(o.brokers, o.dlqTopic))
  expect(sortedCounts(dlq.byCode)).toEqual(sortedCounts(o.expected.deadLettered))
  return {json, dlq}
}

describe('stream run survives outages mid-run', () => {
  it('PostgreSQL unreachable for 5 s mid-run: same final state, nothing dead-lettered because of it', async () => {
    const txns = generateTransactions(N, {seed: 4101, idPrefix: 'PG'})
    const expected = expectedState(txns)
    const topic = await createTestTopic({partitions: 3, prefix: 'outage-pg'})
    const dlqTopic = await createTestTopic({prefix: 'outage-pg-dlq'})
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await createSinkTables(pool, schema)
    const name = uniqueName('outage-pg')
    onTestFinished(() => forgetPipeline(pool, name))
    const spec = specFile(name, topic, dlqTopic)

    const db = new URL(settings().databaseUrl)
    const proxy = await startFaultProxy({host: db.hostname, port: Number(db.port || 5432)})
    onTestFinished(() => proxy.close())
    const viaProxy = new URL(db.toString())
    viaProxy.hostname = '127.0.0.1'
    viaProxy.port = String(proxy.port)

    await produceTransactions(kafka(), topic, txns)
    const run = startStreamRun(['--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', '3000', '--max-rate', String(MAX_RATE), '--json'], {DATABASE_URL: viaProxy.toString()})
    onTestFinished(() => run.kill('SIGKILL'))

    await until(async () => (await rowCount(pool, schema)) >= expected.written / 4, () => !run.exited, 'a quarter of the rows were written')
    await proxy.cut()
    // a COMMIT that reached the server just before the cut may still land: count after it
    await sleep(1000)
    const rowsAtCut = await rowCount(pool, schema)
    await sleep(OUTAGE_MS - 1000)
    const rowsAtRestore = await rowCount(pool, schema)
    await proxy.restore()
    // the outage really fell in the middle of the run, and nothing committed while it lasted
    expect(rowsAtCut).toBeLessThan(expected.written)
    expect(rowsAtRestore).toBe(rowsAtCut)
    if (run.exited) {
      const res = await run.done
      expect.fail(`stream run exited (${res.code}) while PostgreSQL was unreachable:\n${tail(res.stderr, 60)}`)
    }

    await expectSameFinalState({pool, schema, expected, run, brokers: kafkaSettings().brokers.join(','), dlqTopic})
  })

  it('broker stopped and started again mid-run: same final state, nothing dead-lettered because of it', async () => {
    const port = Number(process.env.CUTOVER_TEST_BROKER2_PORT ?? 19092)
    const {brokers, stateDir, up} = privateBroker(port, 'cutover-broker2-')
    const first = await runCli(up)
    expect(first.code, `${first.stdout}\n${first.stderr}`).toBe(0)
    expect(first.json.reused, `something already answers on ${brokers}`).toBe(false)

    const txns = generateTransactions(N, {seed: 4202, idPrefix: 'KB'})
    const expected = expectedState(txns)
    const k = createKafka({brokers: [brokers], clientId: 'cutover-test'}, {mode: 'resilient'})
    const name = uniqueName('outage-kafka')
    const topic = `${name}-in`
    const dlqTopic = `${name}-dlq`
    const admin = k.admin()
    await admin.connect()
    await createTopicsReady(admin, [{topic, numPartitions: 3}, {topic: dlqTopic, numPartitions: 1}])
    await admin.disconnect()
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await createSinkTables(pool, schema)
    onTestFinished(() => forgetPipeline(pool, name))
    const spec = specFile(name, topic, dlqTopic)
    await produceTransactions(k, topic, txns)

    const run = startStreamRun(['--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', '3000', '--max-rate', String(MAX_RATE), '--json'], {KAFKA_BROKERS: brokers})
    onTestFinished(() => run.kill('SIGKILL'))
    await until(async () => (await rowCount(pool, schema)) >= expected.written / 4, () => !run.exited, 'a quarter of the rows were written')

    const down = await runCli(['dev', 'down', '--state-dir', stateDir, '--json'])
    expect(down.code, `${down.stdout}\n${down.stderr}`).toBe(0)
    expect(down.json.stopped).toBe(true)
    const rowsAtStop = await rowCount(pool, schema)
    await sleep(OUTAGE_MS)
    if (run.exited) {
      const res = await run.done
      expect.fail(`stream run exited (${res.code}) while the broker was down:\n${tail(res.stderr)}`)
    }
    const again = await runCli(up)
    expect(again.code, `${again.stdout}\n${again.stderr}`).toBe(0)
    expect(again.json.reused).toBe(false)
    expect(rowsAtStop, 'the broker must go down before the run is over').toBeLessThan(expected.written)

    await expectSameFinalState({pool, schema, expected, run, brokers, dlqTopic})
    // the outage reached the run's Kafka clients (it may hold all its records by then, but it
    // heartbeats, commits offsets to Kafka and publishes dead letters), and it got through it
    const {stderr} = await run.done
    const lost = stderr.split('\n').filter((l) => l.includes('"event":"kafkajs.error"') && /Connection error|ECONNREFUSED/.test(l))
    expect(lost.length, 'no Kafka client of the run met the outage').toBeGreaterThan(0)
  })

  it('PostgreSQL server killed and started again mid-run (a private server): same final state, nothing dead-lettered because of it', async () => {
    const server = privatePostgres(Number(process.env.CUTOVER_TEST_PG2_PORT ?? 55433))
    const pool = new pg.Pool({connectionString: server.url, max: 2})
    onTestFinished(() => pool.end().catch(() => {}))
    // a pool that outlives the restart: a client the server killed is dropped, not reused
    pool.on('error', () => {})
    const txns = generateTransactions(N, {seed: 4303, idPrefix: 'PR'})
    const expected = expectedState(txns)
    const topic = await createTestTopic({partitions: 3, prefix: 'outage-pgr'})
    const dlqTopic = await createTestTopic({prefix: 'outage-pgr-dlq'})
    const schema = uniqueName('outage_pgr').replace(/-/g, '_')
    await pool.query(`CREATE SCHEMA "${schema}"`)
    await createSinkTables(pool, schema)
    const name = uniqueName('outage-pgr')
    const spec = specFile(name, topic, dlqTopic)
    await produceTransactions(kafka(), topic, txns)

    const run = startStreamRun(['--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', '3000', '--max-rate', String(MAX_RATE), '--json'], {DATABASE_URL: server.url})
    onTestFinished(() => run.kill('SIGKILL'))
    const rows = async () => {
      for (;;) {
        try {
          return await rowCount(pool, schema)
        } catch {
          await sleep(200) // the server is starting up again
        }
      }
    }
    await until(async () => (await rows()) >= expected.written / 4, () => !run.exited, 'a quarter of the rows were written')
    // killed (no shutdown checkpoint: the restart replays the WAL), down for OUTAGE_MS, started again
    await server.restart(OUTAGE_MS, 'immediate')
    const rowsAtRestart = await rows()
    expect(rowsAtRestart, 'the restart must fall before the run is over').toBeLessThan(expected.written)
    if (run.exited) {
      const res = await run.done
      expect.fail(`stream run exited (${res.code}) while PostgreSQL was down:\n${tail(res.stderr, 60)}`)
    }

    await expectSameFinalState({pool, schema, expected, run, brokers: kafkaSettings().brokers.join(','), dlqTopic})
  })
})
