/**
 * `cutover stream run` seen from outside while it runs (issue 4, items 6 and 8), against the
 * real broker and PostgreSQL: the Prometheus metrics on --metrics-port count exactly what the
 * run did (records per stage, dead letters by code, duplicates, batches, commit and end-to-end
 * latency, lag per partition, outbox backlog), /healthz and /readyz answer; and a backlog far
 * larger than the records in flight is worked through under a heap limit that could not hold it.
 */
import {readFileSync} from 'node:fs'
import {describe, expect, it} from 'vitest'
import {compareWithExpected, readSinkState} from '../../fixtures/generator/pipeline.js'
import {expectedState, generateTransactions} from '../../fixtures/generator/transactions.js'
import {freePort} from '../../fixtures/generator/stream-harness.js'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {committedOffsets, fromGenerated, produce, sleep, startStream, streamFixture} from './stream-support.js'

async function get(port: number, path: string): Promise<{status: number; body: string} | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`)
    return {status: r.status, body: await r.text()}
  } catch {
    return null // not listening (yet, or any more)
  }
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
    expect(m.value('cutover_duplicates_total', pipeline)).toBe(expected.duplicates)
    const dead = Object.fromEntries(m.all('cutover_dead_lettered_total').map((r) => [r.labels.code, r.value]))
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
