/**
 * `cutover stream run` while its source topic gets more partitions (an operator scaling out:
 * kafka-topics --alter --partitions, admin.createPartitions), through the built CLI against the
 * real broker and PostgreSQL: the group takes the new partitions (kafkajs' metadata is at most
 * 10 s old in the runtime's consumers), reads them from their first offset (records sent to
 * them before the group noticed included), and every record lands in the sink once. A partition
 * without a stored offset starts at its first offset even when the group holds an offset for it
 * in Kafka (PostgreSQL is the truth).
 */
import {describe, expect, it} from 'vitest'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {kafka, setGroupOffsets} from '../helpers.js'
import {committedOffsets, groupAssignments, sleep, startStream, streamFixture, type StreamFixture} from './stream-support.js'

const record = (id: string) => Buffer.from(JSON.stringify({id, acct: 'A1', amt: '1.50', ts: '2026-11-20T10:00:00+03:00'}))

/** `perPartition` records sent to each of `partitions` explicitly (acks=all), ids `<tag><partition>-<n>`. */
async function sendTo(topic: string, partitions: number[], perPartition: number, tag: string): Promise<string[]> {
  const messages = partitions.flatMap((partition) => Array.from({length: perPartition}, (_, n) => ({partition, key: `${tag}${partition}-${n}`, value: record(`${tag}${partition}-${n}`)})))
  const producer = kafka().producer({idempotent: true, maxInFlightRequests: 1})
  await producer.connect()
  try {
    await producer.send({topic, acks: -1, messages})
  } finally {
    await producer.disconnect()
  }
  return messages.map((m) => m.key)
}

async function storedByPartition(f: StreamFixture): Promise<Record<number, number>> {
  const r = await f.pool.query<{partition: number; next_offset: string}>('SELECT partition, next_offset FROM cutover.stream_offsets WHERE pipeline = $1 AND topic = $2', [f.name, f.topic])
  return Object.fromEntries(r.rows.map((x) => [x.partition, Number(x.next_offset)]))
}

describe('stream run: the source topic grows from 3 to 5 partitions while it runs', () => {
  it('reads the new partitions from their first offset (records sent before the group noticed them too): each record in the sink once', async () => {
    const f = await streamFixture({partitions: 3, prefix: 'grown'})
    const s = startStream(f, ['--json'], {CUTOVER_LOG_LEVEL: 'info'})
    const alive = () => {
      expect(s.child.exitCode, 'stream run exited while records were pending').toBeNull()
    }
    const sent = await sendTo(f.topic, [0, 1, 2], 4, 'a')
    while ((await committedOffsets(f)) < sent.length) {
      alive()
      await sleep(50)
    }

    const admin = kafka().admin()
    await admin.connect()
    try {
      await admin.createPartitions({topicPartitions: [{topic: f.topic, count: 5}]})
    } finally {
      await admin.disconnect()
    }
    // at once: the records of partitions 3 and 4 wait there until the group notices them
    sent.push(...(await sendTo(f.topic, [0, 1, 2, 3, 4], 3, 'b')))
    // once the group holds the new partitions, more records to all five
    for (;;) {
      const held = (await groupAssignments(`${f.name}-group`)).flat()
      if (held.includes(3) && held.includes(4)) break
      alive()
      await sleep(100)
    }
    sent.push(...(await sendTo(f.topic, [0, 1, 2, 3, 4], 2, 'c')))
    while ((await committedOffsets(f)) < sent.length) {
      alive()
      await sleep(50)
    }

    s.child.kill('SIGTERM')
    const r = await s.exited
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out).toMatchObject({read: sent.length, written: sent.length, duplicates: 0, dead_lettered: {}, lag_end: 0})
    // the stored offsets cover all five partitions, the new ones from offset 0 (3 + 2 records each)
    expect(await storedByPartition(f)).toEqual({0: 9, 1: 9, 2: 9, 3: 5, 4: 5})
    const rows = await f.pool.query<{txn_id: string; n: number}>(`SELECT txn_id, count(*)::int AS n FROM "${f.schema}".txn_clean GROUP BY 1`)
    expect(rows.rows.map((x) => x.txn_id).sort()).toEqual([...sent].sort())
    expect(rows.rows.filter((x) => x.n !== 1)).toEqual([])
    const grown = r.stderr.split('\n').filter((l) => l.includes('"event":"source.partitions.grown"'))
    expect(grown.length, r.stderr).toBe(1)
    expect(JSON.parse(grown[0]!)).toMatchObject({topic: f.topic, from: 3, to: 5})
  })
})

describe('stream run: a partition without a stored offset', () => {
  it('is read from its first offset, not from an offset the group holds in Kafka (a group used before, offset rows deleted)', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'grown-norow'})
    const sent = await sendTo(f.topic, [0], 5, 'n')
    await setGroupOffsets(`${f.name}-group`, f.topic, [{partition: 0, offset: '3'}])
    const s = startStream(f, ['--until-idle', '--idle-ms', '500', '--json'])
    const r = await s.exited
    expect(r.code, r.stderr).toBe(0)
    // before the fix: read 2, lag_end 0, n0..n2 in no sink and no dead letter
    expect(JSON.parse(r.stdout) as StreamRunResult).toMatchObject({read: 5, written: 5, lag_end: 0})
    expect(await storedByPartition(f)).toEqual({0: 5})
    const rows = await f.pool.query<{txn_id: string}>(`SELECT txn_id FROM "${f.schema}".txn_clean`)
    expect(rows.rows.map((x) => x.txn_id).sort()).toEqual(sent)
  })
})
