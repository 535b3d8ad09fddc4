/**
 * `backfill --resume` of a kafka: source, and a kafka: read with a time range, against the real
 * broker and PostgreSQL; the target read back with kcat.
 *
 * Was: a resume read every partition of the source from its start again, only for the backfill to
 * skip what its checkpoint covered (position.partitions), and every partition with nothing left
 * in the range (finished by the checkpoint, or all its records before --since) was fetched from
 * its start to its end all the same: a resume of an archive topic took hours. Now the reader starts
 * each partition after the checkpoint's offset there (a partition it does not name at its start),
 * and pauses, before its first fetch, every partition with nothing to read. The outcome: the
 * records the reader fetched from the broker (its `kafka.reader.end` event), and the target holds
 * each source record exactly once.
 */
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestTopic, kafka, kcatConsume, runCli, testPool, uniqueName} from '../helpers.js'

interface ReaderPartition {
  partition: number
  start: string
  end: string
  fetched: number
  read: number
}

/** The reader's `kafka.reader.end` partitions, from the JSON log lines on stderr. */
function readerEnd(stderr: string): ReaderPartition[] {
  const ends = stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as {event?: string; partitions?: ReaderPartition[]})
    .filter((e) => e.event === 'kafka.reader.end')
  expect(ends, stderr).toHaveLength(1)
  return ends[0]!.partitions!
}

const info = {env: {CUTOVER_LOG_LEVEL: 'info'}}

describe('backfill: a kafka: source fetches only what it has left to read', () => {
  it('a resume starts each partition after its checkpoint offset (a finished one is not fetched); every record on the target once', async () => {
    const pool = testPool()
    const source = await createTestTopic({partitions: 3, prefix: 'bf-seek-src'})
    const target = await createTestTopic({partitions: 1, prefix: 'bf-seek-tgt'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-seek-dlq'})
    const id = uniqueName('bf-seek')
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
    })
    const producer = kafka().producer()
    await producer.connect()
    onTestFinished(() => producer.disconnect())
    const send = (partition: number, from: number, to: number) =>
      producer.send({topic: source, messages: Array.from({length: to - from}, (_, i) => ({partition, key: `P${partition}-${from + i}`, value: `{"id":"P${partition}-${from + i}"}`}))})

    // the first run: partition 0 offsets 0..6, partition 1 all of 0..9, partition 2 nothing yet
    await send(0, 0, 7)
    await send(1, 0, 10)
    const first = await runCli(['backfill', '--from', `kafka:${source}`, '--to', target, '--dlq', dlq, '--id', id, '--json'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.json).toMatchObject({status: 'completed', read: 17, sent: 17})
    const row = await pool.query<{position: {partitions: Record<string, string>}}>('SELECT position FROM cutover.backfills WHERE id = $1', [id])
    expect(row.rows[0]!.position.partitions).toEqual({'0': '6', '1': '9'})

    // more arrives (partition 0 offsets 7..9, partition 2 offsets 0..4); the backfill, as if stopped there, resumes
    await send(0, 7, 10)
    await send(2, 0, 5)
    await pool.query(`UPDATE cutover.backfills SET status = 'stopped' WHERE id = $1`, [id])
    const resumed = await runCli(['backfill', '--resume', id, '--json'], info)
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({status: 'completed', read: 25, sent: 25, rejected: 0, out_of_range: 0, runs: 2})
    expect(readerEnd(resumed.stderr)).toEqual([
      {partition: 0, start: '7', end: '10', fetched: 3, read: 3},
      {partition: 1, start: '10', end: '10', fetched: 0, read: 0},
      {partition: 2, start: '0', end: '5', fetched: 5, read: 5},
    ])

    const onTarget = kcatConsume(target)
    const keys = onTarget.map((m) => m.key).sort()
    const expected = [...Array.from({length: 10}, (_, i) => `P0-${i}`), ...Array.from({length: 10}, (_, i) => `P1-${i}`), ...Array.from({length: 5}, (_, i) => `P2-${i}`)].sort()
    expect(keys).toEqual(expected)
    expect(onTarget.filter((m) => m.key === 'P0-7')[0]!.headers['cutover.backfill.position']).toBe(`${source}/0@7`)
  })

  it('a checkpoint offset below what the source still holds (records deleted since) starts at the earliest record there', async () => {
    const pool = testPool()
    const source = await createTestTopic({partitions: 1, prefix: 'bf-seek-del-src'})
    const target = await createTestTopic({partitions: 1, prefix: 'bf-seek-del-tgt'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-seek-del-dlq'})
    const id = uniqueName('bf-seek-del')
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
    })
    const producer = kafka().producer()
    await producer.connect()
    await producer.send({topic: source, messages: Array.from({length: 3}, (_, i) => ({key: `D${i}`, value: `{"id":"D${i}"}`}))})
    const first = await runCli(['backfill', '--from', `kafka:${source}`, '--to', target, '--dlq', dlq, '--id', id, '--json'])
    expect(first.code, first.stderr).toBe(0)
    await producer.send({topic: source, messages: Array.from({length: 5}, (_, i) => ({key: `D${3 + i}`, value: `{"id":"D${3 + i}"}`}))})
    await producer.disconnect()
    // the broker deleted offsets 0..4 (retention) since the checkpoint at offset 2
    const admin = kafka().admin()
    await admin.connect()
    await admin.fetchTopicOffsets(source) // loads the topic's metadata, which deleteTopicRecords needs
    await admin.deleteTopicRecords({topic: source, partitions: [{partition: 0, offset: '5'}]})
    await admin.disconnect()
    await pool.query(`UPDATE cutover.backfills SET status = 'stopped' WHERE id = $1`, [id])
    const resumed = await runCli(['backfill', '--resume', id, '--json'], info)
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({status: 'completed', read: 6, sent: 6})
    expect(readerEnd(resumed.stderr)).toEqual([{partition: 0, start: '5', end: '8', fetched: 3, read: 3}])
    expect(kcatConsume(target).map((m) => m.key)).toEqual(['D0', 'D1', 'D2', 'D5', 'D6', 'D7'])
  })

  it('--since after all of a partition\'s records: that partition is not fetched at all', async () => {
    const pool = testPool()
    const source = await createTestTopic({partitions: 2, prefix: 'bf-seek-since-src'})
    const target = await createTestTopic({partitions: 1, prefix: 'bf-seek-since-tgt'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-seek-since-dlq'})
    const old = Date.now() - 3 * 86_400_000
    const recent = Date.now() - 3_600_000
    const producer = kafka().producer()
    await producer.connect()
    // partition 0: only records from 3 days ago; partition 1: 2 old, then 3 from an hour ago of 700 KB
    // each, one per fetch (1 MiB a partition), so that the read goes on over several fetches
    await producer.send({topic: source, messages: Array.from({length: 6}, (_, i) => ({partition: 0, key: `O${i}`, value: `{"id":"O${i}"}`, timestamp: String(old + i)}))})
    await producer.send({topic: source, messages: Array.from({length: 2}, (_, i) => ({partition: 1, key: `Q${i}`, value: `{"id":"Q${i}"}`, timestamp: String(old + i)}))})
    for (let i = 0; i < 3; i++) {
      await producer.send({topic: source, messages: [{partition: 1, key: `N${i}`, value: `{"id":"N${i}","pad":"${'x'.repeat(700_000)}"}`, timestamp: String(recent + i)}]})
    }
    await producer.disconnect()
    const since = new Date(Date.now() - 86_400_000).toISOString()
    const r = await runCli(['backfill', '--from', `kafka:${source}`, '--to', target, '--dlq', dlq, '--since', since, '--json'], info)
    expect(r.code, r.stderr).toBe(0)
    await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [r.json.id])
    expect(r.json).toMatchObject({status: 'completed', read: 3, sent: 3})
    expect(readerEnd(r.stderr)).toEqual([
      {partition: 0, start: '6', end: '6', fetched: 0, read: 0},
      {partition: 1, start: '2', end: '5', fetched: 3, read: 3},
    ])
    expect(kcatConsume(target).map((m) => m.key)).toEqual(['N0', 'N1', 'N2'])
  })
})
