/**
 * The broker stopped and started again in the middle of `cutover backfill`: the sends that fail
 * because of it are retried by kafkajs' idempotent producer, the backfill completes on its own
 * (exit 0, read = sent = N), and the topic holds every source row exactly once, each key's rows
 * in the file's order.
 *
 * Through the built CLI (`bin/run.js backfill --json` in a child process), against a real broker:
 * as in ./outage.test.ts, a second, private broker (`dev up --port 19192 --state-dir <tmp>`) is
 * stopped and, OUTAGE_MS later, started again on the same ports and data; the shared broker is
 * never touched, so nothing else on the machine loses it, and `dev down --wipe` removes the private
 * one when the tests have finished, whatever happened. The private broker is started once for both
 * tests (each test starts it again if it is down, and deletes its topic from it when it finishes).
 * The checkpoint store is the shared PostgreSQL.
 * The broker goes down two ways: `dev down` (SIGTERM: a controlled shutdown, the partition leaders
 * go away under the request in flight, which fails with NOT_LEADER_OR_FOLLOWER) and SIGKILL (a
 * crash: a request may be appended to the log without its answer reaching the producer, so the
 * retry is one the broker must recognise by its sequence numbers and not append again). After a
 * SIGKILL the broker recovers its logs and takes ~15 s to answer again: longer than the ~10 s a
 * backfill used to ride out (see createBackfillProducer in src/backfill/producer.ts).
 *
 * The csv: source has N rows over KEYS keys (`acct;seq;amt`), row i for key i % KEYS with seq
 * i / KEYS: every key recurs in every batch (--rate 5000/s makes batches of 250 rows), so a batch
 * retried behind the next one would show up as a key whose seqs go backwards in its partition.
 * The topic is read back with kcat (librdkafka, an independent client). The producer is idempotent
 * but not transactional, so read_committed and read_uncommitted see the same records; kcat's
 * default is used.
 *
 * Size with CUTOVER_BACKFILL_RETRY_RECORDS (default 40,000), the pause between stop and start
 * with CUTOVER_BACKFILL_RETRY_OUTAGE_MS (2500), the port with CUTOVER_TEST_RETRY_BROKER_PORT
 * (19192; outage.test.ts uses 19092, so both may run at once).
 */
import {spawn} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it, onTestFinished} from 'vitest'
import {processAlive, readBrokerState} from '../../src/dev/broker.js'
import {createKafka, createTopicsReady} from '../../src/kafka/client.js'
import {kcatRead, sleep, tail, until} from '../../fixtures/generator/stream-harness.js'
import {BIN, ROOT, runCli, sharedPrivateBroker, testPool, uniqueName} from '../helpers.js'

const N = Number(process.env.CUTOVER_BACKFILL_RETRY_RECORDS ?? 40_000)
const KEYS = 200
const RATE = 5000
const PARTITIONS = 6
const OUTAGE_MS = Number(process.env.CUTOVER_BACKFILL_RETRY_OUTAGE_MS ?? 2500)

/** How the broker goes down: `dev down` (SIGTERM, a controlled shutdown), or SIGKILL (a crash, answers lost). */
type StopMode = 'dev down' | 'SIGKILL'

async function stopBroker(mode: StopMode, stateDir: string): Promise<void> {
  if (mode === 'dev down') {
    const down = await runCli(['dev', 'down', '--state-dir', stateDir, '--json'])
    expect(down.code, down.stderr).toBe(0)
    expect(down.json.stopped).toBe(true)
    return
  }
  const state = readBrokerState(stateDir)
  expect(state, `no broker.json in ${stateDir}`).not.toBeNull()
  process.kill(state!.pid, 'SIGKILL')
  while (processAlive(state!.pid)) await sleep(50)
}

describe('backfill: broker restarted mid-run', () => {
  // ---- a private broker, for both tests
  const port = Number(process.env.CUTOVER_TEST_RETRY_BROKER_PORT ?? 19192)
  let broker: ReturnType<typeof sharedPrivateBroker> | undefined
  beforeAll(async () => {
    broker = sharedPrivateBroker(port, 'cutover-broker-retry-')
    const first = await runCli(broker.up)
    expect(first.code, `${first.stdout}\n${first.stderr}`).toBe(0)
    expect(first.json.reused, `something already answers on ${broker.brokers}`).toBe(false)
  })
  afterAll(async () => {
    await broker?.remove()
  })

  it.each<StopMode>(['dev down', 'SIGKILL'])('broker stopped by %s: the producer retries; every row lands exactly once, each key in order', async (mode) => {
    const {brokers, stateDir, up} = broker!
    // up: started by beforeAll, and again here if the test before stopped half-way
    const ready = await runCli(up)
    expect(ready.code, `${ready.stdout}\n${ready.stderr}`).toBe(0)

    const topic = uniqueName('bf-retry')
    const admin = createKafka({brokers: [brokers], clientId: 'cutover-test'}, {mode: 'resilient'}).admin()
    await admin.connect()
    await createTopicsReady(admin, [{topic, numPartitions: PARTITIONS}])
    await admin.disconnect()
    // off the broker the next test stops (its log is not recovered again after a SIGKILL)
    onTestFinished(async () => {
      const a = createKafka({brokers: [brokers], clientId: 'cutover-test'}, {mode: 'fail-fast'}).admin()
      try {
        await a.connect()
        await a.deleteTopics({topics: [topic]})
      } catch {
        // the broker is down (the test stopped half-way): the next test's `dev up` recovers it
      } finally {
        await a.disconnect()
      }
    })

    // ---- the source: each key KEYS rows apart, with an increasing seq
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-retry-'))
    onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
    const file = join(dir, 'src.csv')
    const lines = ['acct;seq;amt']
    for (let i = 0; i < N; i++) lines.push(`A${String(i % KEYS).padStart(4, '0')};${Math.floor(i / KEYS)};${i % 1000},${String(i % 100).padStart(2, '0')}`)
    writeFileSync(file, lines.join('\n') + '\n')

    // ---- the backfill, paced so that the outage falls in its middle
    const pool = testPool()
    const id = uniqueName('bf-retry-id')
    onTestFinished(() => pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id]).then(() => {}))
    const child = spawn(process.execPath, [BIN, 'backfill', '--from', `csv:${file}?delimiter=;`, '--to', topic, '--key', 'acct', '--rate', `${RATE}/s`, '--id', id, '--json'], {
      cwd: ROOT,
      env: {...process.env, KAFKA_BROKERS: brokers, CUTOVER_LOG_LEVEL: 'info'},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<number | null>((resolve, reject) => {
      child.on('error', reject)
      child.on('close', (code) => resolve(code))
    })
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    const running = () => child.exitCode === null && child.signalCode === null
    const acknowledged = async () => {
      const r = await pool.query<{n: number}>(`SELECT (position->>'records')::int AS n FROM cutover.backfills WHERE id = $1`, [id])
      return r.rows[0]?.n ?? 0
    }

    // ---- stop the broker once a tenth of the rows are acknowledged (16 batches: the producer in
    // its stride; 9/10 of the rows, 7 s at RATE, still to send), start it again OUTAGE_MS later
    await until(async () => (await acknowledged()) >= N / 10, running, 'a tenth of the rows were acknowledged')
    await stopBroker(mode, stateDir)
    const stoppedAt = Date.now()
    const ackedAtStop = await acknowledged()
    await sleep(OUTAGE_MS)
    const again = await runCli(up)
    expect(again.code, `${again.stdout}\n${again.stderr}`).toBe(0)
    expect(again.json.reused).toBe(false)
    console.info(`backfill-retry: broker down ${Date.now() - stoppedAt} ms in all (${mode}, then ${again.json.startMs} ms to start again)`)
    expect(ackedAtStop, 'the broker must go down before the backfill is over').toBeLessThan(N)
    expect(running(), `backfill exited (${child.exitCode}) while the broker was down:\n${tail(stderr)}`).toBe(true)

    // ---- the backfill completes on its own, with the counts of an uninterrupted run
    const code = await exited
    expect(code, `backfill exited ${code}; stderr:\n${tail(stderr, 60)}`).toBe(0)
    const result = JSON.parse(stdout) as {status: string; read: number; sent: number; rejected: number; runs: number}
    expect(result).toMatchObject({id, status: 'completed', read: N, sent: N, rejected: 0, runs: 1})
    // the outage reached the backfill's client: kafkajs logged (at info, through our logger) the
    // connection it lost or could not open, or a produce it failed and retried. With `dev down`
    // the request in flight is answered NOT_LEADER_OR_FOLLOWER and retried ("Failed to send
    // messages"); a SIGKILL usually lands between two requests, and the next send then reconnects
    // inside kafkajs' retry loop, which it logs only as connection errors.
    const kafkajsErrors = stderr.split('\n').filter((l) => l.includes('"event":"kafkajs.error"'))
    const failedSends = kafkajsErrors.filter((l) => l.includes('Failed to send messages')).length
    const connectionErrors = kafkajsErrors.filter((l) => l.includes('Connection error')).length
    expect(failedSends + connectionErrors, `kafkajs logged no failed send and no connection error: the outage did not reach the backfill\n${tail(stderr)}`).toBeGreaterThan(0)

    // ---- the topic, read back with kcat: each row once, each key in one partition, in order
    const got = kcatRead(brokers, topic).sort((a, b) => a.partition - b.partition || a.offset - b.offset)
    const seen = new Map<string, number>()
    const byKey = new Map<string, {partition: number; seq: number}[]>()
    const duplicates: string[] = []
    const wrongRows: string[] = []
    for (const m of got) {
      const row = JSON.parse(m.payload ?? 'null') as {acct: string; seq: string; amt: string} | null
      if (!row || row.acct !== m.key) {
        wrongRows.push(`${m.partition}@${m.offset}: key ${m.key}, value ${m.payload}`)
        continue
      }
      const rowId = `${row.acct}#${row.seq}`
      const times = (seen.get(rowId) ?? 0) + 1
      seen.set(rowId, times)
      if (times === 2) duplicates.push(`${rowId} (${m.partition}@${m.offset})`)
      const list = byKey.get(row.acct) ?? []
      list.push({partition: m.partition, seq: Number(row.seq)})
      byKey.set(row.acct, list)
    }
    const missing: string[] = []
    for (let i = 0; i < N; i++) {
      const rowId = `A${String(i % KEYS).padStart(4, '0')}#${Math.floor(i / KEYS)}`
      if (!seen.has(rowId)) missing.push(rowId)
    }
    const splitKeys: string[] = []
    const reordered: string[] = []
    for (const [key, list] of byKey) {
      if (new Set(list.map((r) => r.partition)).size > 1) splitKeys.push(key)
      const at = list.findIndex((r, i) => i > 0 && r.seq <= list[i - 1]!.seq)
      if (at > 0) reordered.push(`${key}: seq ${list[at]!.seq} after ${list[at - 1]!.seq}`)
    }
    console.info(`backfill-retry: ${got.length} records on the topic for ${N} rows; broker stopped (${mode}) with ${ackedAtStop} acknowledged; kafkajs logged ${failedSends} failed sends (retried) and ${connectionErrors} connection errors`)
    const sample = (l: string[]) => ({count: l.length, first: l.slice(0, 5)})
    expect({missing: sample(missing), duplicates: sample(duplicates), wrongRows: sample(wrongRows), splitKeys: sample(splitKeys), reordered: sample(reordered)}).toEqual({
      missing: sample([]),
      duplicates: sample([]),
      wrongRows: sample([]),
      splitKeys: sample([]),
      reordered: sample([]),
    })
    expect(got).toHaveLength(N)
  })
})
