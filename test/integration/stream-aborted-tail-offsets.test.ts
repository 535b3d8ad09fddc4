/**
 * `stream run` on a topic written in Kafka transactions whose last transaction on a partition
 * aborted (Kafka Connect or Streams with exactly-once abort on a rebalance): kafkajs hands such a
 * fetch (aborted records and markers only) to no eachBatch and resolves it itself, and with
 * autoCommit off it committed nothing. The run's own lag said 0, but the group's offset in Kafka
 * stayed before the aborted records, so `kafka-consumer-groups` and `cutover status` showed lag
 * that would never go (STOP, "lag 21", for a partition whose every record was read) until a record
 * arrived on it. The group's offsets must reach the high watermark.
 */
import {describe, expect, it} from 'vitest'
import {tail} from '../../fixtures/generator/stream-harness.js'
import {generateTransactions} from '../../fixtures/generator/transactions.js'
import {kafka, runCli} from '../helpers.js'
import {fromGenerated, startStream, streamFixture} from './stream-support.js'

async function transaction(topic: string, partition: number, seed: number, commit: boolean): Promise<void> {
  const producer = kafka().producer({transactionalId: `${topic}-${seed}`, idempotent: true, maxInFlightRequests: 1})
  await producer.connect()
  try {
    const tx = await producer.transaction()
    await tx.send({topic, messages: fromGenerated(generateTransactions(20, {seed, idPrefix: `T${seed}-`, dirty: 0})).map((m) => ({key: m.key, value: m.value, partition}))})
    if (commit) await tx.commit()
    else await tx.abort()
  } finally {
    await producer.disconnect()
  }
}

describe('stream run: partitions ending in an aborted transaction', () => {
  it("commits the group's offset past the aborted records, so lag tools see the partition caught up", async () => {
    const f = await streamFixture({partitions: 2, prefix: 'aborted-tail'})
    await transaction(f.topic, 0, 1, false) // partition 0: only an aborted transaction
    await transaction(f.topic, 1, 2, true) // partition 1: a committed one, then an aborted one
    await transaction(f.topic, 1, 3, false)

    const s = startStream(f, ['--until-idle', '--idle-ms', '500', '--json'])
    const done = await s.exited
    expect(done.code, tail(done.stderr)).toBe(0)
    expect(JSON.parse(done.stdout)).toMatchObject({read: 20, written: 20, lag_end: 0})
    const rows = await f.pool.query<{n: number}>(`SELECT count(*)::int AS n FROM "${f.schema}".txn_clean`)
    expect(rows.rows[0]!.n).toBe(20)

    const admin = kafka().admin()
    await admin.connect()
    let high: {partition: number; offset: string}[]
    let committed: {partition: number; offset: string}[]
    try {
      high = (await admin.fetchTopicOffsets(f.topic)).map((o) => ({partition: o.partition, offset: o.high}))
      committed = (await admin.fetchOffsets({groupId: `${f.name}-group`, topics: [f.topic]}))[0]!.partitions.map((p) => ({partition: p.partition, offset: p.offset}))
    } finally {
      await admin.disconnect()
    }
    // 20 aborted + a marker; 20 committed + a marker + 20 aborted + a marker
    expect(high.sort((a, b) => a.partition - b.partition)).toEqual([
      {partition: 0, offset: '21'},
      {partition: 1, offset: '42'},
    ])
    expect(committed.sort((a, b) => a.partition - b.partition)).toEqual(high)

    const status = await runCli(['status', '--group', `${f.name}-group`, '--topic', f.topic, '--window', '0', '--json'])
    expect(status.code, status.stdout + status.stderr).toBe(0)
    expect(status.json).toMatchObject({status: 'OK', total_lag: 0})
  })
})
