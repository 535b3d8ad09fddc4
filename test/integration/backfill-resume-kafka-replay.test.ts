/**
 * A kafka: -> topic backfill (and its resume) as history, against the real broker and PostgreSQL,
 * read back with kcat.
 *
 * Was: every record sent was stamped with the time of the send, so the history of a topic came
 * out as if it all happened during the backfill (time-based retention, windows, `kafka:?from=`
 * of the copy all wrong); and a raw replay (no --spec) sent every tombstone (null value) to the
 * DLQ as DECODE_ERROR, so a compacted topic's deletions were lost from its copy. Now each record
 * keeps its source record's timestamp (with or without a spec), and a raw replay forwards a
 * tombstone as a tombstone (same key, null value, headers). With a spec a tombstone stays a
 * DECODE_ERROR dead letter: stream run's decode stage takes it so too (no value to normalize).
 * A target whose retention.ms is shorter than the history's age gets a warning: the broker would
 * delete those records soon after the backfill wrote them. And a raw replay copies every value as
 * it is (it dead-lettered each one that was not a JSON object: an Avro topic's whole history).
 */
import {spawnSync} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestTopic, kafka, kafkaSettings, kcatConsume, runCli, tempDir, testPool, uniqueName} from '../helpers.js'

/** `%T %k %S` per record (timestamp, key, value length or -1 for null), with kcat. */
function kcatLines(topic: string): string[] {
  const r = spawnSync('kcat', ['-C', '-b', kafkaSettings().brokers.join(','), '-t', topic, '-f', '%T %k %S\n', '-e', '-q'], {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`kcat failed (${r.status}): ${r.stderr}`)
  return r.stdout.split('\n').filter(Boolean)
}

/**
 * Source timestamps 3 days back, an hour apart: older than the run, and within the 7 days the
 * topics keep (the broker deletes records older than retention.ms, now that they keep their time).
 */
const base = Date.now() - 3 * 86_400_000
const hour = (h: number) => String(base + h * 3_600_000)

function warnings(stderr: string, event: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e.event === event)
}

/** `%k <TAB> %s` per record with kcat, bytes as latin1 (one char per byte): the values as they are on the topic. */
function kcatBytes(topic: string): string[] {
  const r = spawnSync('kcat', ['-C', '-b', kafkaSettings().brokers.join(','), '-t', topic, '-f', '%k\t%s\n', '-e', '-q'])
  if (r.status !== 0) throw new Error(`kcat failed (${r.status}): ${r.stderr.toString()}`)
  return r.stdout.toString('latin1').split('\n').filter(Boolean)
}

describe('backfill: a kafka: source replayed as history', () => {
  it('a raw replay (no --spec, no --key) copies every value byte for byte: binary (Avro-like), text, JSON that is no object; nothing dead-lettered', async () => {
    const source = await createTestTopic({partitions: 1, prefix: 'bf-copy-src'})
    const target = await createTestTopic({partitions: 1, prefix: 'bf-copy-tgt'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-copy-dlq'})
    const values = [Buffer.from([0x00, 0x02, 0x06, 0xff, 0xfe, 0x80, 0x41]), Buffer.from('plain text, not JSON'), Buffer.from('[1,2,3]'), Buffer.from('{"id":"J1"}')]
    const producer = kafka().producer()
    await producer.connect()
    await producer.send({topic: source, messages: values.map((value, i) => ({key: `B${i}`, value, timestamp: hour(i)}))})
    await producer.disconnect()
    const r = await runCli(['backfill', '--from', `kafka:${source}`, '--to', target, '--dlq', dlq, '--json'])
    expect(r.code, r.stderr).toBe(0)
    await testPool().query('DELETE FROM cutover.backfills WHERE id = $1', [r.json.id])
    expect(r.json).toMatchObject({status: 'completed', read: 4, sent: 4, rejected: 0, rejected_by_code: {}})
    expect(kcatBytes(target)).toEqual(values.map((v, i) => `B${i}\t${v.toString('latin1')}`))
    expect(kcatLines(target)).toEqual(values.map((v, i) => `${hour(i)} B${i} ${v.length}`))
    expect(kcatConsume(dlq)).toHaveLength(0)
  })

  it('keeps each record its own timestamp; a raw replay forwards tombstones (same key, null value, headers), a resume too; with a spec a tombstone is a DECODE_ERROR dead letter', async () => {
    const source = await createTestTopic({partitions: 1, prefix: 'bf-replay-src'})
    const target = await createTestTopic({partitions: 1, prefix: 'bf-replay-tgt'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-replay-dlq'})
    const pool = testPool()
    const ids = [uniqueName('bf-replay-raw'), uniqueName('bf-replay-spec')]
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = ANY($1)', [ids])
    })
    const producer = kafka().producer()
    await producer.connect()
    await producer.send({
      topic: source,
      messages: [
        {key: 'K1', value: '{"id":"K1","amt":"1.00"}', timestamp: hour(1), headers: {'x-origin': 'legacy'}},
        {key: 'K1', value: null, timestamp: hour(2), headers: {'x-origin': 'purge'}},
        {key: 'K2', value: '{"id":"K2","amt":"2.00"}', timestamp: hour(3)},
        {key: 'K2', value: null, timestamp: hour(4)},
      ],
    })
    await producer.disconnect()
    const history = [`${hour(1)} K1 24`, `${hour(2)} K1 -1`, `${hour(3)} K2 24`, `${hour(4)} K2 -1`]

    const raw = await runCli(['backfill', '--from', `kafka:${source}`, '--to', target, '--dlq', dlq, '--id', ids[0]!, '--json'])
    expect(raw.code, raw.stderr).toBe(0)
    expect(raw.json).toMatchObject({status: 'completed', read: 4, sent: 4, rejected: 0, rejected_by_code: {}})
    expect(kcatLines(target)).toEqual(history)
    const got = kcatConsume(target)
    expect(got[1]).toMatchObject({key: 'K1', payload: null, headers: {'x-origin': 'purge', 'cutover.backfill.position': `${source}/0@1`}})
    expect(kcatConsume(dlq)).toHaveLength(0)
    expect(warnings(raw.stderr, 'backfill.older_than_retention')).toEqual([])

    // resumed after offset 1 (as a stop there leaves it): the rest as history too
    await pool.query(
      `UPDATE cutover.backfills SET status = 'stopped', position = '{"records": 2, "partitions": {"0": "1"}}', counts = '{"read": 2, "sent": 2, "rejected": 0, "rejected_by_code": {}, "out_of_range": 0}' WHERE id = $1`,
      [ids[0]],
    )
    const resumed = await runCli(['backfill', '--resume', ids[0]!, '--json'])
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({status: 'completed', read: 4, sent: 4, rejected: 0, runs: 2})
    expect(kcatLines(target)).toEqual([...history, ...history.slice(2)])

    // with a spec: clean records keep their timestamps; a tombstone is dead-lettered as stream run does
    const dir = tempDir('cutover-bf-replay-')
    const spec = join(dir, 'p.yaml')
    writeFileSync(
      spec,
      [
        'version: 1',
        `name: ${uniqueName('bf-replay')}`,
        `source: { topic: ${source}, group: ${uniqueName('g')}, format: json }`,
        'fields:',
        '  id:  { type: string, required: true }',
        '  amt: { type: decimal, scale: 2, required: true }',
        'key: id',
        'sinks:',
        '  - table: txn_clean',
        `dlq: { topic: ${dlq} }`,
        '',
      ].join('\n'),
    )
    const specTarget = await createTestTopic({partitions: 1, prefix: 'bf-replay-spec-tgt'})
    const withSpec = await runCli(['backfill', '--from', `kafka:${source}`, '--to', specTarget, '--spec', spec, '--id', ids[1]!, '--json'])
    expect(withSpec.code, withSpec.stderr).toBe(0)
    expect(withSpec.json).toMatchObject({read: 4, sent: 2, rejected: 2, rejected_by_code: {DECODE_ERROR: 2}})
    expect(kcatLines(specTarget)).toEqual([history[0], history[2]])
    const dead = kcatConsume(dlq)
    expect(dead.map((m) => [m.key, m.payload, m.headers['cutover.error.code'], m.headers['cutover.source.timestamp']])).toEqual([
      ['K1', null, 'DECODE_ERROR', hour(2)],
      ['K2', null, 'DECODE_ERROR', hour(4)],
    ])

    // a target that keeps a day: the 3-day-old history would be deleted by the broker soon after it is written: a warning says so
    const short = await createTestTopic({partitions: 1, prefix: 'bf-replay-short'})
    const admin = kafka().admin()
    await admin.connect()
    await admin.alterConfigs({validateOnly: false, resources: [{type: 2 /* TOPIC */, name: short, configEntries: [{name: 'retention.ms', value: '86400000'}]}]})
    await admin.disconnect()
    const shortRun = await runCli(['backfill', '--from', `kafka:${source}`, '--to', short, '--dlq', dlq, '--json'])
    expect(shortRun.code, shortRun.stderr).toBe(0)
    await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [shortRun.json.id])
    expect(warnings(shortRun.stderr, 'backfill.older_than_retention')).toEqual([
      expect.objectContaining({level: 'warn', target: short, retention_ms: 86_400_000, position: `${source}/0@0`, note: expect.stringContaining(`set retention.ms on ${short} to cover the history`)}),
    ])
  })
})
