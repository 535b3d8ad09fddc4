/**
 * Review of `stream run --metrics-port`'s lag gauge against the real broker and PostgreSQL:
 * what an on-call engineer's alerts read (ops/prometheus/alerts.yml).
 */
import {describe, expect, it} from 'vitest'
import {freePort} from '../../fixtures/generator/stream-harness.js'
import {generateTransactions} from '../../fixtures/generator/transactions.js'
import {kafka} from '../helpers.js'
import {committedOffsets, fromGenerated, sleep, startStream, streamFixture} from './stream-support.js'

async function lagSeries(port: number, pipeline: string): Promise<Record<string, number>> {
  const body = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()).catch(() => '')
  const out: Record<string, number> = {}
  for (const line of body.split('\n')) {
    if (!line.startsWith('cutover_consumer_lag_records{') || !line.includes(`pipeline="${pipeline}"`)) continue
    out[/partition="(\d+)"/.exec(line)![1]!] = Number(line.split(' ').at(-1))
  }
  return out
}

describe('lag gauge', () => {
  it('a topic written in Kafka transactions: the lag goes to 0 once every record is committed (the commit markers are no lag)', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'rv-lag-txn'})
    const port = await freePort()
    const s = startStream(f, ['--metrics-port', String(port)])
    const producer = kafka().producer({transactionalId: `${f.name}-tx`, idempotent: true, maxInFlightRequests: 1})
    await producer.connect()
    const txns = generateTransactions(60, {seed: 31, dirty: 0})
    for (let k = 0; k < 3; k++) {
      const tx = await producer.transaction()
      await tx.send({topic: f.topic, messages: fromGenerated(txns.slice(k * 20, k * 20 + 20)).map((m) => ({key: m.key, value: m.value}))})
      await tx.commit()
    }
    await producer.disconnect()
    for (let i = 0; i < 240 && (await committedOffsets(f)) < 60; i++) await sleep(250)
    expect(await committedOffsets(f)).toBeGreaterThanOrEqual(60)
    let lag: Record<string, number> = {}
    for (let i = 0; i < 60; i++) {
      lag = await lagSeries(port, f.name)
      if (lag['0'] === 0) break
      await sleep(250)
    }
    expect(lag).toEqual({'0': 0})
    s.child.kill('SIGTERM')
    expect((await s.exited).code).toBe(0)
  })
})
