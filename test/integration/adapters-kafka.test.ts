import {AssignerProtocol} from 'kafkajs'
import {describe, expect, it} from 'vitest'
import {openSource} from '../../legacy-adapters/index.js'
import type {RawRecord} from '../../legacy-adapters/types.js'
import {encodeString} from '../../src/normalize/encoding.js'
import {createTestTopic, kafka, kafkaSettings} from '../helpers.js'

async function collect(it: AsyncIterable<RawRecord>): Promise<RawRecord[]> {
  const out: RawRecord[] = []
  for await (const r of it) out.push(r)
  return out
}

const HOUR = 3600_000
/** 00:00 UTC three days ago: the records' day stays inside the broker's 7-day retention (older records may be deleted mid-test) */
const T0 = (() => {
  const now = new Date()
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - 3)
})()
/** T0 + `hours`, as ISO-8601 without milliseconds */
const at = (hours: number) => new Date(T0 + hours * HOUR).toISOString().replace('.000Z', 'Z')

/** 3 partitions; record i has timestamp T0 + i hours and goes to partition i % 3. */
async function produceDay(topic: string, n = 48): Promise<void> {
  const producer = kafka().producer()
  await producer.connect()
  try {
    await producer.send({
      topic,
      messages: Array.from({length: n}, (_, i) => ({
        partition: i % 3,
        key: `k${i}`,
        value: JSON.stringify({id: `T${String(i).padStart(3, '0')}`, amt: `${i}.50`}),
        timestamp: String(T0 + i * HOUR),
        headers: {'x-source': 'legacy', 'x-seq': String(i)},
      })),
    })
  } finally {
    await producer.disconnect()
  }
}

/**
 * A transaction's commit or abort returns before the broker has written its markers; until
 * then the last stable offset (what a read_committed reader may read, and where the reader
 * fixes its end) stays behind. Waits until the markers are in.
 */
async function waitForStableOffset(topic: string, offset: number): Promise<void> {
  const admin = kafka().admin()
  await admin.connect()
  try {
    for (;;) {
      const [p] = await admin.fetchTopicOffsets(topic)
      if (Number(p!.offset) >= offset) return
      await new Promise((r) => setTimeout(r, 50))
    }
  } finally {
    await admin.disconnect()
  }
}

const ids = (rs: RawRecord[]) => rs.map((r) => (r.ok ? String(r.fields.id) : r.code)).sort()

/** The live consumer groups of the kafka: reader (`cutover-reader-*`) that have members assigned `topic`. */
async function readerGroupsOf(topic: string): Promise<string[]> {
  const admin = kafka().admin()
  await admin.connect()
  try {
    const ids = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith('cutover-reader-'))
    if (ids.length === 0) return []
    const {groups} = await admin.describeGroups(ids)
    return groups
      .filter((g) => g.members.some((m) => topic in (AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment ?? {})))
      .map((g) => g.groupId)
  } finally {
    await admin.disconnect()
  }
}

describe('kafka: against the real broker', () => {
  it('reads a time range [from, to) across partitions, and the whole topic without one', async () => {
    const topic = await createTestTopic({partitions: 3})
    await produceDay(topic)
    const ctx = {kafka: kafkaSettings()}

    const all = await collect(openSource(`kafka:${topic}`, ctx))
    expect(all).toHaveLength(48)

    // hours 6..17 of the first day: records 6..17
    const day = await collect(openSource(`kafka:${topic}?from=${at(6)}&to=${at(18)}`, ctx))
    expect(ids(day)).toEqual(Array.from({length: 12}, (_, k) => `T${String(6 + k).padStart(3, '0')}`))
    const r = day.find((x) => x.ok && x.fields.id === 'T007')!
    expect(r).toMatchObject({
      ok: true,
      fields: {id: 'T007', amt: '7.50'},
      position: {scheme: 'kafka', source: topic, partition: 1, timestamp: String(T0 + 7 * HOUR)},
    })
    expect(r.key?.toString()).toBe('k7')
    expect(r.headers?.['x-seq']?.toString()).toBe('7')
    expect(r.raw?.toString()).toBe('{"id":"T007","amt":"7.50"}')
    // offsets: record i is the (i div 3)-th on its partition
    expect(r.position.offset).toBe('2')

    // a range after the last record is empty, and ends
    expect(await collect(openSource(`kafka:${topic}?from=${at(30 * 24)}`, ctx))).toEqual([])
    // from only: to the end as it is now
    expect(await collect(openSource(`kafka:${topic}?from=${at(44)}`, ctx))).toHaveLength(4)
  })

  it('turns undecodable values into DECODE_ERROR records (non-object JSON into SCHEMA_VIOLATION) and reads text values', async () => {
    const topic = await createTestTopic({partitions: 1})
    const producer = kafka().producer()
    await producer.connect()
    await producer.send({
      topic,
      messages: [
        {value: '{"id":"ok"}'},
        {value: 'not json'},
        {value: '[1,2]'},
        {value: 'A1;4111111111111111;1,00'}, // not JSON either: V8's message quotes its first characters
        {key: 'gone', value: null},
        {value: Buffer.from([0x7b, 0xff, 0x7d])}, // invalid UTF-8
        {value: encodeString('Пятёрочка;1 234,56', 'windows-1251')},
      ],
    })
    await producer.disconnect()
    const ctx = {kafka: kafkaSettings()}
    const rs = await collect(openSource(`kafka:${topic}`, ctx))
    expect(rs.map((r) => (r.ok ? 'ok' : r.code))).toEqual(['ok', 'DECODE_ERROR', 'SCHEMA_VIOLATION', 'DECODE_ERROR', 'DECODE_ERROR', 'DECODE_ERROR', 'DECODE_ERROR'])
    expect(rs.map((r) => r.position.offset)).toEqual(['0', '1', '2', '3', '4', '5', '6'])
    // the message does not quote the value (it may hold a card number): V8's snippet is cut out
    const quoted = rs[3]!
    expect(quoted.ok ? '' : quoted.message).toBe(`${topic}/0@3: the value is not JSON (Unexpected token 'A', not valid JSON)`)
    const notJson = rs[1]!
    if (!notJson.ok) expect(notJson.message).toContain(`${topic}/0@1: the value is not JSON`)
    expect(rs[1]!.raw?.toString()).toBe('not json')
    if (!rs[4]!.ok) expect(rs[4]!.message).toContain('tombstone')
    expect(rs[4]!.key?.toString()).toBe('gone')

    const text = await collect(openSource(`kafka:${topic}?format=text&encoding=windows-1251`, ctx))
    expect(text[6]).toMatchObject({ok: true, fields: {value: 'Пятёрочка;1 234,56'}})
  })

  it('ends on transactional topics (commit markers last), and skips aborted records', async () => {
    const topic = await createTestTopic({partitions: 1})
    const producer = kafka().producer({transactionalId: `tx-${topic}`, idempotent: true, maxInFlightRequests: 1})
    await producer.connect()
    try {
      const committed = await producer.transaction()
      await committed.send({topic, messages: [{value: '{"id":"c1"}'}, {value: '{"id":"c2"}'}]})
      await committed.commit()
      const aborted = await producer.transaction()
      await aborted.send({topic, messages: [{value: '{"id":"a1"}'}]})
      await aborted.abort()
      const last = await producer.transaction()
      await last.send({topic, messages: [{value: '{"id":"c3"}'}]})
      await last.commit() // the topic ends with a commit marker, which no consumer ever sees
    } finally {
      await producer.disconnect()
    }
    // c1 c2 marker a1 marker c3 marker: offsets 0-6
    await waitForStableOffset(topic, 7)
    const rs = await collect(openSource(`kafka:${topic}`, {kafka: kafkaSettings()}))
    expect(rs.map((r) => r.ok && r.fields.id)).toEqual(['c1', 'c2', 'c3'])

    // Now the topic ends with an aborted transaction: records no consumer sees, then a marker.
    const again = kafka().producer({transactionalId: `tx-${topic}`, idempotent: true, maxInFlightRequests: 1})
    await again.connect()
    try {
      const tx = await again.transaction()
      await tx.send({topic, messages: [{value: '{"id":"a2"}'}, {value: '{"id":"a3"}'}]})
      await tx.abort()
    } finally {
      await again.disconnect()
    }
    await waitForStableOffset(topic, 10) // a2 a3 marker: offsets 7-9
    const rs2 = await collect(openSource(`kafka:${topic}`, {kafka: kafkaSettings()}))
    expect(rs2.map((r) => r.ok && r.fields.id)).toEqual(['c1', 'c2', 'c3'])
  })

  it('stops early when the caller does, and says when a topic does not exist', async () => {
    const topic = await createTestTopic({partitions: 3})
    await produceDay(topic, 300)
    let n = 0
    let readers = 0
    for await (const _r of openSource(`kafka:${topic}`, {kafka: kafkaSettings()})) {
      if (n === 0) readers = (await readerGroupsOf(topic)).length // the reader's consumer group, while it reads
      if (++n === 10) break
    }
    expect(n).toBe(10)
    expect(readers).toBe(1)
    // stopped: its consumer left and its group is deleted by the time the loop has ended
    expect(await readerGroupsOf(topic)).toEqual([])
    await expect(collect(openSource('kafka:cutover-no-such-topic-42', {kafka: kafkaSettings()}))).rejects.toMatchObject({code: 'USAGE', message: expect.stringContaining('does not exist')})
  })
})
