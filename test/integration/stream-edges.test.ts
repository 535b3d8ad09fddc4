/**
 * `cutover stream run` at the edges, through the built CLI against the real broker and
 * PostgreSQL: poison records (a tombstone, no key, bytes that are not UTF-8 in the value, the
 * key or a header, a value over --max-record-bytes, a header name holding U+0000) go to the
 * DLQ, read back with kcat byte for byte, and never stop their partition; `--until-idle` on a
 * topic with empty partitions, with partitions added while it runs, and with records deleted
 * from the topic (retention) before it read them.
 */
import {spawnSync} from 'node:child_process'
import {describe, expect, it} from 'vitest'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {kafka, kafkaSettings, runCli} from '../helpers.js'
import {exitedWithoutRetry, produce, sleep, startStream, streamFixture} from './stream-support.js'

const record = (id: string, extra: Record<string, unknown> = {}) => Buffer.from(JSON.stringify({id, acct: 'A1', amt: '1.50', ts: '2026-11-20T10:00:00+03:00', ...extra}))
const deadTotal = (d: Record<string, number | undefined>) => Object.values(d).reduce<number>((a, b) => a + (b ?? 0), 0)

/** The topic read back with kcat, one Buffer per record: `<partition>|<offset>|<key length>|<value length>|<headers as kcat prints them (n=v,...)>`. */
function kcatRaw(topic: string): Buffer[] {
  const r = spawnSync('kcat', ['-b', kafkaSettings().brokers.join(','), '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-D', '\\x1e', '-f', '%p|%o|%K|%S|%h\\x1e'], {encoding: 'buffer', maxBuffer: 64 * 1024 * 1024})
  if (r.status !== 0) throw new Error(`kcat failed (${r.status}): ${r.stderr.toString()}`)
  const out: Buffer[] = []
  let from = 0
  for (let at = r.stdout.indexOf(0x1e); at >= 0; at = r.stdout.indexOf(0x1e, from)) {
    if (at > from) out.push(r.stdout.subarray(from, at))
    from = at + 1
  }
  return out
}

describe('stream run: poison records', () => {
  it('go to the DLQ with their code, their key, value and headers byte for byte (kcat), and never stop the partition', async () => {
    const f = await streamFixture({partitions: 4, prefix: 'edges-poison'})
    const producer = kafka().producer({idempotent: true, maxInFlightRequests: 1})
    await producer.connect()
    try {
      await producer.send({
        topic: f.topic,
        acks: -1,
        messages: [
          // a header name holding U+0000 (legal in Kafka; jsonb cannot store it): first in its partition
          {partition: 0, key: 'NUL', value: Buffer.from('not json'), headers: {'x-a\u0000b': 'v1'}},
          {partition: 0, key: 'G1', value: record('G1'), headers: {'x-bin': Buffer.from([0xff, 0xfe, 0x00, 0x80])}},
          {partition: 0, key: null, value: record('G2')},
          {partition: 0, key: 'TOMB', value: null, headers: {'x-bin': Buffer.from([0xc3, 0x28])}},
          {partition: 0, key: null, value: Buffer.from('{"id":"\xff"}', 'latin1'), headers: {'x-bin': Buffer.from([0xe2, 0x82])}},
          {partition: 1, key: Buffer.from([0xff, 0x00, 0x01]), value: record('BIG', {memo: 'x'.repeat(3000)}), headers: {'x-bin': Buffer.from([0xff])}},
          {partition: 1, key: 'G3', value: record('G3')},
        ],
      })
    } finally {
      await producer.disconnect()
    }
    // partitions 2 and 3 stay empty: --until-idle must not wait for them
    const s = startStream(f, ['--until-idle', '--idle-ms', '500', '--max-record-bytes', '2000', '--json'])
    const r = await exitedWithoutRetry(s)
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out).toMatchObject({read: 7, written: 3, duplicates: 0, lag_end: 0, dead_lettered: {DECODE_ERROR: 3, RECORD_TOO_LARGE: 1}})
    expect(out.read).toBe(out.written + deadTotal(out.dead_lettered) + out.duplicates)
    const rows = await f.pool.query<{txn_id: string}>(`SELECT txn_id FROM "${f.schema}".txn_clean ORDER BY 1`)
    expect(rows.rows.map((x) => x.txn_id)).toEqual(['G1', 'G2', 'G3'])

    // the relay published every dead letter; kcat, another client, reads them back
    let dlq: Buffer[] = []
    for (let i = 0; i < 50 && dlq.length < 4; i++, await sleep(100)) dlq = kcatRaw(f.dlqTopic)
    expect(dlq).toHaveLength(4)
    const find = (offset: string, partition: string) => {
      const hit = dlq.find((b) => b.includes(`cutover.source.partition=${partition},cutover.source.offset=${offset},`))
      expect(hit, `the dead letter of ${partition}/${offset}`).toBeDefined()
      return hit!
    }
    const fieldsOf = (b: Buffer) => b.toString('latin1').split('|')
    const nul = find('0', '0')
    // kcat prints a header name as a C string, up to its U+0000 (the unit test checks the whole name)
    expect(nul.includes(Buffer.from('|x-a=v1,cutover.error.code=DECODE_ERROR,'))).toBe(true)
    const tomb = find('3', '0')
    expect(fieldsOf(tomb)[3], 'the tombstone stays a tombstone').toBe('-1')
    expect(tomb.includes(Buffer.concat([Buffer.from('x-bin='), Buffer.from([0xc3, 0x28]), Buffer.from(',cutover.error.code=DECODE_ERROR,')]))).toBe(true)
    const invalid = find('4', '0')
    expect(fieldsOf(invalid)[2], 'no key stays no key').toBe('-1')
    expect(invalid.includes(Buffer.concat([Buffer.from('x-bin='), Buffer.from([0xe2, 0x82]), Buffer.from(',cutover.error.code=DECODE_ERROR,')]))).toBe(true)
    const big = find('0', '1')
    expect(fieldsOf(big).slice(2, 4)).toEqual(['3', String(record('BIG', {memo: 'x'.repeat(3000)}).length)])
    expect(big.includes(Buffer.concat([Buffer.from('x-bin='), Buffer.from([0xff]), Buffer.from(',cutover.error.code=RECORD_TOO_LARGE,')]))).toBe(true)
    for (const b of dlq) {
      for (const h of ['cutover.error.message=', 'cutover.error.stage=decode,', `cutover.source.topic=${f.topic},`, `cutover.pipeline=${f.name},`, 'cutover.attempts=1,', 'cutover.replay.count=0,', 'cutover.failed.at=']) {
        expect(b.includes(h), `${h} in ${b.toString('latin1')}`).toBe(true)
      }
    }
  })
})

describe('stream run --until-idle: partitions added while it runs', () => {
  it('reads their records before it exits (lag 0), not only those of the partitions it started with', async () => {
    const f = await streamFixture({partitions: 2, prefix: 'edges-addp'})
    await produce(f.topic, [
      {key: 'A', value: record('A')},
      {key: 'B', value: record('B')},
    ])
    const s = startStream(f, ['--until-idle', '--idle-ms', '4000', '--json'])
    // the first records committed, then two partitions more, each with a record
    for (;;) {
      const r = await f.pool.query<{n: number}>(`SELECT count(*)::int AS n FROM "${f.schema}".txn_clean`)
      if (r.rows[0]!.n === 2) break
      expect(s.child.exitCode, 'stream run exited before it committed the first records').toBeNull()
      await sleep(50)
    }
    const admin = kafka().admin()
    await admin.connect()
    try {
      await admin.createPartitions({topicPartitions: [{topic: f.topic, count: 4}]})
    } finally {
      await admin.disconnect()
    }
    const producer = kafka().producer({idempotent: true, maxInFlightRequests: 1})
    await producer.connect()
    try {
      await producer.send({
        topic: f.topic,
        acks: -1,
        messages: [
          {partition: 2, key: 'C', value: record('C')},
          {partition: 3, key: 'D', value: record('D')},
        ],
      })
    } finally {
      await producer.disconnect()
    }
    const r = await s.exited
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out).toMatchObject({read: 4, written: 4, lag_end: 0})
    const rows = await f.pool.query<{txn_id: string}>(`SELECT txn_id FROM "${f.schema}".txn_clean ORDER BY 1`)
    expect(rows.rows.map((x) => x.txn_id)).toEqual(['A', 'B', 'C', 'D'])
  })
})

describe('stream run --until-idle: records deleted from the topic before it read them', () => {
  it('exits (lag 0) and says which records left the topic unread, instead of waiting for them for ever', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'edges-gone'})
    await produce(
      f.topic,
      Array.from({length: 5}, (_, i) => ({key: `K${i}`, value: record(`K${i}`)})),
    )
    const first = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '500', '--json'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.json).toMatchObject({read: 5, lag_end: 0})
    // three records more, gone (retention, deleteRecords) before the next run
    await produce(
      f.topic,
      Array.from({length: 3}, (_, i) => ({key: `L${i}`, value: record(`L${i}`)})),
    )
    const admin = kafka().admin()
    await admin.connect()
    try {
      await admin.fetchTopicOffsets(f.topic) // loads the topic's metadata, which deleteTopicRecords needs
      await admin.deleteTopicRecords({topic: f.topic, partitions: [{partition: 0, offset: '8'}]})
    } finally {
      await admin.disconnect()
    }
    const s = startStream(f, ['--until-idle', '--idle-ms', '500', '--json'])
    const r = await s.exited
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout) as StreamRunResult).toMatchObject({read: 0, written: 0, lag_end: 0})
    const gone = r.stderr.split('\n').filter((l) => l.includes('"event":"stream.records.gone"'))
    expect(gone.length, r.stderr).toBeGreaterThan(0)
    expect(JSON.parse(gone[0]!)).toMatchObject({partition: 0, first_offset: '5', last_offset: '7', records: 3, level: 'warn'})
  })
})
