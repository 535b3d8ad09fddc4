/**
 * `stream run` with `source.format: fixed` reads one copybook record per message (DESIGN.md). A
 * message that holds two records was read as its first, the second dropped unseen: read 1,
 * written 1, exit 0. Now bytes after the record may only be padding (EBCDIC spaces, low-values, a
 * line end); anything else is a SCHEMA_VIOLATION dead letter that gives the sizes, and the counts
 * still balance. Read back: the sink's rows in PostgreSQL, the dead letter on the DLQ with kcat.
 */
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {encodeString} from '../../src/normalize/encoding.js'
import {createTestSchema, createTestTopic, kcatConsume, runCli, testPool, uniqueName} from '../helpers.js'
import {produce} from './stream-support.js'

describe('stream run, source.format fixed: one record per message', () => {
  it('a message holding two records is a SCHEMA_VIOLATION dead letter (was: the second dropped, read 1 written 1); padding after a record is read', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".t (txn_id text PRIMARY KEY, amount numeric(9,2) NOT NULL)`)
    const name = uniqueName('stream-fixed-recs')
    const [topic, dlq] = await Promise.all([createTestTopic({partitions: 1, prefix: `${name}-raw`}), createTestTopic({partitions: 1, prefix: `${name}-dlq`})])
    onTestFinished(async () => {
      for (const table of ['stream_offsets', 'stream_dedupe', 'outbox']) await pool.query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [name])
    })
    const dir = mkdtempSync(join(tmpdir(), 'cutover-fixed-recs-'))
    writeFileSync(join(dir, 'rec.cpy'), '       01 REC.\n          05 ID   PIC X(4).\n          05 AMT  PIC S9(5)V99 COMP-3.\n')
    const spec = join(dir, 'pipeline.yaml')
    writeFileSync(
      spec,
      [
        'version: 1',
        `name: ${name}`,
        `source: { topic: ${topic}, group: ${name}-g, format: fixed, encoding: cp037, copybook: rec.cpy }`,
        'fields:',
        '  txn_id: { from: id, type: string, required: true }',
        '  amount: { from: amt, type: decimal, scale: 2, required: true }',
        'key: txn_id',
        'sinks: [ { table: t } ]',
        `dlq: { topic: ${dlq} }`,
        '',
      ].join('\n'),
    )
    const record = (id: string, amt: number[]) => Buffer.concat([encodeString(id, 'cp037'), Buffer.from(amt)])
    const t1 = record('T001', [0x00, 0x01, 0x23, 0x4c]) // 12.34
    const t2 = record('T002', [0x00, 0x05, 0x00, 0x0c]) // 50.00
    const t3 = record('T003', [0x00, 0x00, 0x10, 0x0c]) // 1.00
    await produce(topic, [
      {key: 'T001', value: Buffer.concat([t1, Buffer.from([0x40, 0x40, 0x40, 0x15])])}, // EBCDIC spaces and NL: padding
      {key: 'T002', value: Buffer.concat([t2, t3])}, // two records in one message
      {key: 'T003', value: t3},
    ])

    const run = await runCli(['stream', 'run', '--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', '300', '--json'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.json).toMatchObject({read: 3, written: 2, dead_lettered: {SCHEMA_VIOLATION: 1}, duplicates: 0})

    const rows = await pool.query(`SELECT txn_id, amount::text FROM "${schema}".t ORDER BY txn_id`)
    expect(rows.rows).toEqual([
      {txn_id: 'T001', amount: '12.34'},
      {txn_id: 'T003', amount: '1.00'},
    ])
    const dead = kcatConsume(dlq)
    expect(dead).toHaveLength(1)
    expect(dead[0]!.key).toBe('T002')
    expect(dead[0]!.headers).toMatchObject({
      'cutover.error.code': 'SCHEMA_VIOLATION',
      'cutover.error.message': "the value is 16 bytes, the copybook's record is 8: the 8 bytes after it are not padding (byte 8 is 0xE3); it may hold 2 records, and stream run reads one record per message; if every record is that long, end the copybook with a FILLER for its last bytes",
    })
  })
})
