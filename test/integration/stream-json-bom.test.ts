/**
 * `stream run` with `source.format: json` in a single-byte `source.encoding` (windows-1251), on a
 * message that starts with a UTF-8 BOM (EF BB BF: a producer that wrote UTF-8 with one): the BOM
 * was read as windows-1251 text ("п»ї") before the `{`, a bare DECODE_ERROR "the value is not
 * JSON". Now, as the csv format's decoder does (legacy-adapters/message.ts), the BOM is dropped
 * when the rest is no UTF-8 text (ASCII, or windows-1251 bytes), and a rest that is UTF-8 text with
 * other characters is a DECODE_ERROR saying it is UTF-8 with a BOM, not windows-1251. Read back:
 * the sink's rows in PostgreSQL, the dead letter (its value byte for byte) with kcat.
 */
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {encodeString} from '../../src/normalize/encoding.js'
import {createTestSchema, createTestTopic, kcatConsume, runCli, testPool, uniqueName} from '../helpers.js'
import {produce} from './stream-support.js'

const BOM = Buffer.from([0xef, 0xbb, 0xbf])

describe('stream run, source.format json in windows-1251: a UTF-8 BOM', () => {
  it('is dropped before ASCII or windows-1251 text; before UTF-8 text it is a DECODE_ERROR naming UTF-8 (was: "the value is not JSON")', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".t (id text PRIMARY KEY, name text)`)
    const name = uniqueName('stream-json-bom')
    const [topic, dlq] = await Promise.all([createTestTopic({partitions: 1, prefix: `${name}-raw`}), createTestTopic({partitions: 1, prefix: `${name}-dlq`})])
    onTestFinished(async () => {
      for (const table of ['stream_offsets', 'stream_dedupe', 'outbox']) await pool.query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [name])
    })
    const dir = mkdtempSync(join(tmpdir(), 'cutover-json-bom-'))
    const spec = join(dir, 'pipeline.yaml')
    writeFileSync(
      spec,
      [
        'version: 1',
        `name: ${name}`,
        `source: { topic: ${topic}, group: ${name}-g, format: json, encoding: windows-1251 }`,
        'fields:',
        '  id: { type: string, required: true }',
        '  name: { type: string }',
        'key: id',
        'sinks: [ { table: t } ]',
        `dlq: { topic: ${dlq} }`,
        '',
      ].join('\n'),
    )
    const utf8WithBom = Buffer.concat([BOM, Buffer.from('{"id":"B2","name":"Пр"}', 'utf8')])
    await produce(topic, [
      {key: 'B1', value: Buffer.concat([BOM, Buffer.from('{"id":"B1","name":"abc"}')])}, // ASCII after the BOM
      {key: 'B2', value: utf8WithBom}, // UTF-8 with a BOM, labelled windows-1251
      {key: 'B3', value: encodeString('{"id":"B3","name":"Пр"}', 'windows-1251')}, // windows-1251, no BOM
      {key: 'B4', value: Buffer.concat([BOM, encodeString('{"id":"B4","name":"Пр"}', 'windows-1251')])}, // windows-1251 after a stray BOM
    ])

    const run = await runCli(['stream', 'run', '--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', '300', '--json'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.json).toMatchObject({read: 4, written: 3, dead_lettered: {DECODE_ERROR: 1}, duplicates: 0})

    const rows = await pool.query(`SELECT id, name FROM "${schema}".t ORDER BY id`)
    expect(rows.rows).toEqual([
      {id: 'B1', name: 'abc'},
      {id: 'B3', name: 'Пр'},
      {id: 'B4', name: 'Пр'},
    ])
    const dead = kcatConsume(dlq)
    expect(dead).toHaveLength(1)
    expect(dead[0]!.key).toBe('B2')
    expect(Buffer.from(dead[0]!.payload!, 'utf8').equals(utf8WithBom)).toBe(true)
    expect(dead[0]!.headers).toMatchObject({
      'cutover.error.code': 'DECODE_ERROR',
      'cutover.error.stage': 'decode',
      'cutover.error.message': 'the value starts with a UTF-8 byte order mark (EF BB BF) and is UTF-8 text, not windows-1251 (the source.encoding)',
    })
  })
})
