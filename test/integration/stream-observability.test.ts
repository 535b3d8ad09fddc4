/**
 * `cutover stream run` seen from outside while it runs (issue 4, items 6 and 8), against the
 * real broker and PostgreSQL: the Prometheus metrics on --metrics-port count exactly what the
 * run did (records per stage, dead letters by code, duplicates, batches, commit and end-to-end
 * latency, lag per partition, outbox backlog), /healthz and /readyz answer; and a backlog far
 * larger than the records in flight is worked through under a heap limit that could not hold it.
 */
import {readFileSync} from 'node:fs'
import {describe, expect, it, onTestFinished} from 'vitest'
import {compareWithExpected, readSinkState} from '../../fixtures/generator/pipeline.js'
import {expectedState, generateTransactions} from '../../fixtures/generator/transactions.js'
import {freePort} from '../../fixtures/generator/stream-harness.js'
import {RECORD_ERROR_CODES} from '../../src/errors.js'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {startFaultProxy} from '../fault-proxy.js'
import {kafka} from '../helpers.js'
import {committedOffsets, fromGenerated, groupAssignments, produce, sleep, startStream, streamFixture} from './stream-support.js'

async function get(port: number, path: string): Promise<{status: number; body: string} | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`)
    return {status: r.status, body: await r.text()}
  } catch {
    return null // not listening (yet, or any more)
  }
}

/** Polls `probe` until it returns true (0.25 s apart, at most `tries`), then returns its last answer. */
async function until(probe: () => Promise<boolean>, tries = 240): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await probe()) return true
    await sleep(250)
  }
  return probe()
}

/** Prometheus text format -> samples: `name{labels}` -> value (label order as exported). */
function samples(text: string): {value(name: string, labels?: Record<string, string>): number; all(name: string): {labels: Record<string, string>; value: number}[]} {
  const rows: {name: string; labels: Record<string, string>; value: number}[] = []
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!
    rows.push({name: m[1]!, labels, value: Number(m[3])})
  }
  const match = (r: (typeof rows)[number], name: string, labels: Record<string, string>) => r.name === name && Object.entries(labels).every(([k, v]) => r.labels[k] === v)
  return {
    value: (name, labels = {}) => rows.filter((r) => match(r, name, labels)).reduce((a, r) => a + r.value, 0),
    all: (name) => rows.filter((r) => r.name === name).map((r) => ({labels: r.labels, value: r.value})),
  }
}

describe('stream run: observability', () => {
  it('serves /healthz, /readyz and metrics that count exactly what the run did', async () => {
    const n = 5_000
    const f = await streamFixture({partitions: 6, prefix: 'stream-obs'})
    const port = await freePort()
    const s = startStream(f, ['--metrics-port', String(port)])
    // ready once connected and in the group
    let ready: {status: number; body: string} | null = null
    for (let i = 0; i < 300 && ready?.status !== 200; i++) {
      ready = await get(port, '/readyz')
      if (ready?.status !== 200) await sleep(100)
    }
    expect(ready?.status, `readyz: ${ready?.body}; stderr: ${s.child.exitCode === null ? '' : 'exited'}`).toBe(200)
    expect((await get(port, '/healthz'))?.status).toBe(200)
    expect((await get(port, '/nothing-here'))?.status).toBe(404)

    const txns = generateTransactions(n, {seed: 4242, dirty: 0.05})
    const expected = expectedState(txns)
    await produce(f.topic, fromGenerated(txns))
    for (let i = 0; i < 600 && (await committedOffsets(f)) < n; i++) await sleep(100)
    expect(await committedOffsets(f)).toBe(n)

    // the relay publishes the dead letters shortly after their commit: the backlog drains to 0
    let body = (await get(port, '/metrics'))!.body
    let m = samples(body)
    for (let i = 0; i < 100 && m.value('cutover_outbox_backlog_records') > 0; i++) {
      await sleep(100)
      body = (await get(port, '/metrics'))!.body
      m = samples(body)
    }
    const pipeline = {pipeline: f.name}
    expect(m.value('cutover_records_total', {...pipeline, stage: 'decode', direction: 'in'})).toBe(n)
    expect(m.value('cutover_records_total', {...pipeline, stage: 'sink', direction: 'out'})).toBe(expected.written)
    // the stages in order, each taking what the one before let through; what they dropped is
    // exactly the dead letters and the duplicates
    const stage = (name: string, direction: string) => m.value('cutover_records_total', {...pipeline, stage: name, direction})
    const order = ['decode', 'normalize', 'validate', 'dedupe', 'sink']
    for (let k = 1; k < order.length; k++) expect(stage(order[k]!, 'in'), order[k]).toBe(stage(order[k - 1]!, 'out'))
    const dropped = order.reduce((a, name) => a + stage(name, 'in') - stage(name, 'out'), 0)
    expect(dropped).toBe(Object.values(expected.deadLettered).reduce((a, x) => a + x, 0) + expected.duplicates)
    expect(stage('dedupe', 'in') - stage('dedupe', 'out')).toBe(expected.duplicates + (expected.deadLettered.DUPLICATE_CONFLICT ?? 0))
    expect(m.value('cutover_duplicates_total', pipeline)).toBe(expected.duplicates)
    // every code has its series from the start (0 until it occurs)
    expect(m.all('cutover_dead_lettered_total').filter((r) => r.labels.pipeline === f.name).length).toBe(RECORD_ERROR_CODES.length)
    const dead = Object.fromEntries(m.all('cutover_dead_lettered_total').filter((r) => r.value > 0).map((r) => [r.labels.code, r.value]))
    expect(dead).toEqual(expected.deadLettered)
    // one observation per committed batch (its records) and per written record (its latency)
    const batches = m.value('cutover_batch_size_records_count', pipeline)
    expect(batches).toBeGreaterThan(0)
    expect(m.value('cutover_batch_size_records_sum', pipeline)).toBe(n)
    expect(m.value('cutover_commit_latency_seconds_count', pipeline)).toBe(batches)
    expect(m.value('cutover_end_to_end_latency_seconds_count', pipeline)).toBe(expected.written)
    expect(m.value('cutover_end_to_end_latency_seconds_bucket', {...pipeline, le: '+Inf'})).toBe(expected.written)
    // caught up: every partition's lag is 0; the outbox is empty; the last commit is recent
    const lag = m.all('cutover_consumer_lag_records').filter((r) => r.labels.pipeline === f.name)
    expect(lag.map((r) => r.labels.partition).sort()).toEqual(['0', '1', '2', '3', '4', '5'])
    expect(lag.map((r) => r.value)).toEqual([0, 0, 0, 0, 0, 0])
    expect(m.value('cutover_outbox_backlog_records', pipeline)).toBe(0)
    // new keys only: every batch's plain INSERT went through, none ran again as an upsert
    expect(body).toContain('# TYPE cutover_upsert_reruns_total counter')
    expect(m.value('cutover_upsert_reruns_total', pipeline)).toBe(0)
    expect(Date.now() / 1000 - m.value('cutover_last_commit_timestamp_seconds', pipeline)).toBeLessThan(120)

    s.child.kill('SIGTERM')
    const exit = await s.exited
    expect(exit.code, exit.stderr).toBe(0)
    expect(await get(port, '/healthz')).toBeNull()
  })

  it('keeps the lag gauge and /readyz true while PostgreSQL is cut, the outbox backlog while the DLQ topic is gone; a port in use is exit 2', async () => {
    const f = await streamFixture({partitions: 2, prefix: 'stream-obs-outage'})
    const proxy = await startFaultProxy({host: '127.0.0.1', port: 5432})
    onTestFinished(() => proxy.close())
    const env = {DATABASE_URL: `postgres://postgres@127.0.0.1:${proxy.port}/cutover`}
    const port = await freePort()
    const s = startStream(f, ['--metrics-port', String(port)], env)
    const metricsNow = async () => samples((await get(port, '/metrics'))?.body ?? '')
    const lagNow = async () => (await metricsNow()).all('cutover_consumer_lag_records').filter((r) => r.labels.pipeline === f.name)
    expect(await until(async () => (await get(port, '/readyz'))?.status === 200)).toBe(true)

    // a second process on the same port: exit 2 at once, before it connects to anything
    const second = startStream(f, ['--metrics-port', String(port), '--json'])
    const refused = await second.exited
    expect(refused.code, refused.stderr).toBe(2)
    expect(JSON.parse(refused.stdout).error).toMatchObject({code: 'USAGE', message: expect.stringMatching(new RegExp(`--metrics-port ${port}: the port is in use`))})

    const clean = generateTransactions(400, {seed: 515, dirty: 0})
    await produce(f.topic, fromGenerated(clean.slice(0, 100)))
    expect(await until(async () => (await committedOffsets(f)) === 100)).toBe(true)

    // PostgreSQL cut: no commit, and yet the lag counts the records that arrive, and /readyz says not ready
    await proxy.cut()
    await produce(f.topic, fromGenerated(clean.slice(100)))
    const lagDuringOutage = await until(async () => (await lagNow()).reduce((a, r) => a + r.value, 0) === 300)
    expect(lagDuringOutage, JSON.stringify(await lagNow())).toBe(true)
    expect(await until(async () => (await get(port, '/readyz'))?.status === 503)).toBe(true)
    expect((await get(port, '/healthz'))?.status).toBe(200) // alive: it waits for PostgreSQL
    await proxy.restore()
    expect(await until(async () => (await committedOffsets(f)) === 400)).toBe(true)
    expect(await until(async () => (await get(port, '/readyz'))?.status === 200)).toBe(true)
    expect(await until(async () => (await lagNow()).every((r) => r.value === 0))).toBe(true)
    expect((await lagNow()).map((r) => r.labels.partition).sort()).toEqual(['0', '1'])

    // the DLQ topic gone: dead letters wait in the outbox, and the gauge says how many
    const admin = kafka().admin()
    await admin.connect()
    await admin.deleteTopics({topics: [f.dlqTopic]})
    await admin.disconnect()
    await produce(
      f.topic,
      Array.from({length: 20}, (_, i) => ({key: `bad-${i}`, value: Buffer.from(`not json ${i}`)})),
    )
    expect(await until(async () => (await committedOffsets(f)) === 420)).toBe(true)
    const backlog = await until(async () => (await metricsNow()).value('cutover_outbox_backlog_records', {pipeline: f.name}) === 20)
    expect(backlog, `backlog gauge ${(await metricsNow()).value('cutover_outbox_backlog_records', {pipeline: f.name})}`).toBe(true)
    expect((await metricsNow()).value('cutover_dead_lettered_total', {pipeline: f.name, code: 'DECODE_ERROR'})).toBe(20)
    // each record counted once, the 300 retried through the outage included
    expect((await metricsNow()).value('cutover_records_total', {pipeline: f.name, stage: 'decode', direction: 'in'})).toBe(420)
    expect((await metricsNow()).value('cutover_records_total', {pipeline: f.name, stage: 'sink', direction: 'out'})).toBe(400)

    // stopped with dead letters unsent: exit 0 (they stay in cutover.outbox), and it says so
    s.child.kill('SIGTERM')
    const exit = await s.exited
    expect(exit.code, exit.stderr.slice(-2000)).toBe(0)
    const notDrained = exit.stderr.split('\n').filter((l) => l.includes('outbox.not_drained'))
    expect(notDrained.length, exit.stderr.slice(-2000)).toBe(1)
    expect(JSON.parse(notDrained[0]!)).toMatchObject({rows: 20})
    const unsent = await f.pool.query<{n: number}>('SELECT count(*)::int AS n FROM cutover.outbox WHERE pipeline = $1 AND sent_at IS NULL', [f.name])
    expect(unsent.rows[0]!.n).toBe(20)
  })

  it('/readyz says not ready while a batch PostgreSQL refuses again and again cannot commit (a sink table renamed), and ready once it commits', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-obs-stall'})
    const port = await freePort()
    startStream(f, ['--metrics-port', String(port)])
    expect(await until(async () => (await get(port, '/readyz'))?.status === 200)).toBe(true)
    const clean = generateTransactions(60, {seed: 616, dirty: 0})
    await produce(f.topic, fromGenerated(clean.slice(0, 30)))
    expect(await until(async () => (await committedOffsets(f)) === 30)).toBe(true)
    // PostgreSQL answers, but every try of the next batch fails (42P01): after retry.max_attempts, not ready
    await f.pool.query(`ALTER TABLE "${f.schema}".txn_clean RENAME TO txn_gone`)
    await produce(f.topic, fromGenerated(clean.slice(30)))
    expect(await until(async () => (await get(port, '/readyz'))?.status === 503)).toBe(true)
    expect((await get(port, '/healthz'))?.status).toBe(200)
    expect(await committedOffsets(f)).toBe(30)
    await f.pool.query(`ALTER TABLE "${f.schema}".txn_gone RENAME TO txn_clean`)
    expect(await until(async () => (await committedOffsets(f)) === 60)).toBe(true)
    expect(await until(async () => (await get(port, '/readyz'))?.status === 200)).toBe(true)
  })

  it('a partition that moved to another process leaves this one\'s lag series (no partition counted twice)', async () => {
    const f = await streamFixture({partitions: 4, prefix: 'stream-obs-move'})
    const [portA, portB] = [await freePort(), await freePort()]
    const partitionsOf = async (port: number) =>
      samples((await get(port, '/metrics'))?.body ?? '')
        .all('cutover_consumer_lag_records')
        .filter((r) => r.labels.pipeline === f.name)
        .map((r) => r.labels.partition)
        .sort()
    const a = startStream(f, ['--metrics-port', String(portA), '--consumers', '1'])
    const txns = generateTransactions(200, {seed: 616, dirty: 0})
    await produce(f.topic, fromGenerated(txns.slice(0, 100)))
    for (let i = 0; i < 240 && (await committedOffsets(f)) < 100; i++) await sleep(250)
    for (let i = 0; i < 60 && (await partitionsOf(portA)).length < 4; i++) await sleep(250)
    expect(await partitionsOf(portA)).toEqual(['0', '1', '2', '3'])
    // a second process joins: two members of one consumer each, two partitions each
    const b = startStream(f, ['--metrics-port', String(portB), '--consumers', '1'])
    for (let i = 0; i < 240 && (await groupAssignments(`${f.name}-group`)).map((p) => p.length).join() !== '2,2'; i++) await sleep(250)
    expect((await groupAssignments(`${f.name}-group`)).map((p) => p.length)).toEqual([2, 2])
    await produce(f.topic, fromGenerated(txns.slice(100)))
    for (let i = 0; i < 240 && (await committedOffsets(f)) < 200; i++) await sleep(250)
    const both = async () => [...(await partitionsOf(portA)), ...(await partitionsOf(portB))].sort()
    for (let i = 0; i < 60 && (await both()).join() !== '0,1,2,3'; i++) await sleep(250)
    expect(await both()).toEqual(['0', '1', '2', '3'])
    expect(await partitionsOf(portA)).toHaveLength(2)
    for (const s of [a, b]) s.child.kill('SIGTERM')
    for (const s of [a, b]) expect((await s.exited).code).toBe(0)
  })

  it('works through a backlog far larger than what is in flight under a heap limit that could not hold it', async () => {
    // 150,000 records (~45 MB of values) arrive before the stream starts; old space is capped at
    // 128 MB. Merely holding them as kafkajs messages with their parsed JSON takes ~155 MB of
    // heap (measured: a bare consumer that keeps them dies of it under this cap), before any
    // work item, normalized record or hash: a runtime that buffered the backlog could not finish.
    const n = 150_000
    const f = await streamFixture({partitions: 6, prefix: 'stream-backlog'})
    const txns = generateTransactions(n, {seed: 77, dirty: 0.05})
    const expected = expectedState(txns)
    await produce(f.topic, fromGenerated(txns))

    const s = startStream(f, ['--until-idle', '--idle-ms', '1000', '--json'], {NODE_OPTIONS: '--max-old-space-size=128'})
    let peakKb = 0
    const sampler = setInterval(() => {
      try {
        const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${s.child.pid}/status`, 'utf8'))?.[1] ?? 0)
        peakKb = Math.max(peakKb, kb)
      } catch {
        // exited
      }
    }, 100)
    const exit = await s.exited
    clearInterval(sampler)
    expect(exit.code, exit.stderr.slice(-3000)).toBe(0)
    const out = JSON.parse(exit.stdout) as StreamRunResult
    expect(out.read).toBe(n)
    expect(out.written).toBe(expected.written)
    expect(compareWithExpected(await readSinkState(f.pool, f.schema), expected)).toEqual([])
    // for the record (not a time or size assertion beyond the heap cap above)
    console.info(`backlog of ${n} records: peak RSS ${Math.round(peakKb / 1024)} MB, ${out.batches} batches, ${out.elapsed_ms} ms`)
  })
})
