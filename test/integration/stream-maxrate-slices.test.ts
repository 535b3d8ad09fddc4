/**
 * `stream run --max-rate N` paces what it writes, not only what it fetches: a fetched batch goes
 * into PostgreSQL a second's worth (N records) at a time, each slice its own transaction, instead
 * of a whole fetch (thousands of records) at once after waiting for all of its tokens (--max-rate
 * 1000 with 13,000-record fetches: nothing for 13 s, then 13,000 rows in one transaction; 2.6
 * times the cap in some 10-s windows). Outcomes: every batch the run commits holds at most N
 * records (the batch-size histogram on --metrics-port), the rows are all there, each once.
 */
import {describe, expect, it} from 'vitest'
import {generateTransactions} from '../../fixtures/generator/transactions.js'
import {freePort, produceTransactions} from '../../fixtures/generator/stream-harness.js'
import {kafka} from '../helpers.js'
import {fromGenerated, startStream, streamFixture} from './stream-support.js'

const RATE = 500
const N = 3_000

describe('stream run --max-rate: slices of a fetched batch', () => {
  it(`commits at most ${RATE} records a batch, a fetch of ${N} in slices`, async () => {
    const f = await streamFixture({partitions: 1, prefix: 'maxrate-slices'})
    await produceTransactions(kafka(), f.topic, generateTransactions(N, {seed: 31, idPrefix: 'MS', dirty: 0}))
    const port = await freePort()
    const s = startStream(f, ['--max-rate', String(RATE), '--until-idle', '--idle-ms', '3000', '--metrics-port', String(port), '--json'])
    // the batch sizes, read from /metrics while the run is idle before it exits
    let buckets = ''
    while (!/cutover_batch_size_records_count\{[^}]*\} (\d+)/.test(buckets) || Number(/cutover_batch_size_records_sum\{[^}]*\} (\d+)/.exec(buckets)?.[1]) < N) {
      buckets = await fetch(`http://127.0.0.1:${port}/metrics`)
        .then((r) => r.text())
        .catch(() => '')
      await new Promise((r) => setTimeout(r, 200))
    }
    const r = await s.exited
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as {read: number; written: number; batches: number}
    expect(out).toMatchObject({read: N, written: N})
    expect(out.batches).toBeGreaterThanOrEqual(N / RATE)
    // no batch of more than RATE records: the histogram's bucket le="500" holds them all
    const count = Number(/cutover_batch_size_records_count\{[^}]*\} (\d+)/.exec(buckets)![1])
    const le500 = Number(/cutover_batch_size_records_bucket\{le="500"[^}]*\} (\d+)/.exec(buckets)![1])
    expect({count, le500}).toEqual({count: out.batches, le500: out.batches})
    const rows = await f.pool.query<{n: string}>(`SELECT count(*) AS n FROM "${f.schema}".txn_clean`)
    expect(Number(rows.rows[0]!.n)).toBe(N)
  })

  it('a topic written in Kafka transactions: a slice ends where the next begins, so no slice starts after a gap (a seek and a fetch again)', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'maxrate-slices-tx'})
    // 10 transactions of 10 records: a commit marker after every 10th record; slices of 25 records
    // end at the 50th record, right before a marker
    const producer = kafka().producer({transactionalId: `${f.name}-tx`, idempotent: true, maxInFlightRequests: 1})
    await producer.connect()
    const txns = generateTransactions(100, {seed: 32, idPrefix: 'MT', dirty: 0})
    for (let k = 0; k < 10; k++) {
      const tx = await producer.transaction()
      await tx.send({topic: f.topic, messages: fromGenerated(txns.slice(k * 10, k * 10 + 10)).map((m) => ({key: m.key, value: m.value}))})
      await tx.commit()
    }
    await producer.disconnect()
    const s = startStream(f, ['--max-rate', '25', '--until-idle', '--idle-ms', '1000', '--json'], {CUTOVER_LOG_LEVEL: 'info'})
    const r = await s.exited
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({read: 100, written: 100, batches: 4})
    expect(r.stderr).not.toContain('batch.gap.seek')
    const rows = await f.pool.query<{n: string}>(`SELECT count(*) AS n FROM "${f.schema}".txn_clean`)
    expect(Number(rows.rows[0]!.n)).toBe(100)
  })
})
