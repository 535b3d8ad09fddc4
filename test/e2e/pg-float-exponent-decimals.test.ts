/**
 * A pg: float column read by a decimal field, against the real PostgreSQL and broker: PostgreSQL
 * prints a float8 below 1e-4 or from 1e15 in exponent form ("5e-05", "1e+15"), and those values,
 * exact decimals of the digits printed like every other float (EXACT_DECIMALS), were refused as
 * "not a number" by `normalize`, and sent by `backfill --spec` as the JSON string "5e-05", which
 * `stream run` dead-lettered. They are read digit for digit (0.00005), and sent as plain JSON numbers.
 * And a JSON number below 1e-6 (0.00000001 of a numeric(12,8), which backfill sends as a number),
 * whose shortest form is "1e-8", was dead-lettered by `stream run` as a number in exponent form.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestSchema, createTestTopic, kcatConsume, runCli, tempDir, testPool, uniqueName} from '../helpers.js'

const lines = (text: string) => text.split('\n').filter((l) => l.length > 0)

describe('pg: float columns in exponent form are exact decimals', () => {
  it('normalize reads 5e-05 as 0.00005; backfill sends it as a plain number and stream run writes it', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'pg-float-exp'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'pg-float-exp-dlq'})
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".legacy_fx (id text PRIMARY KEY, rate float8 NOT NULL, amount float8 NOT NULL, fee numeric(12,8) NOT NULL)`)
    await pool.query(`INSERT INTO "${schema}".legacy_fx VALUES ('F1', 5e-05, 1e15, 0.00000001), ('F2', 1.25e-07, 12.5, 1), ('F3', 0.125, -2.5e15, 0.0000005), ('F4', 1e-08, 1, 2.5)`)
    // what PostgreSQL prints for them
    const printed = await pool.query(`SELECT id, rate::text, amount::text FROM "${schema}".legacy_fx ORDER BY id`)
    expect(printed.rows.map((r: {rate: string; amount: string}) => [r.rate, r.amount])).toEqual([
      ['5e-05', '1e+15'],
      ['1.25e-07', '12.5'],
      ['0.125', '-2.5e+15'],
      ['1e-08', '1'],
    ])
    await pool.query(`CREATE TABLE "${schema}".fx (id text PRIMARY KEY, rate numeric(12,8) NOT NULL, amount numeric(18,2) NOT NULL, fee numeric(12,8) NOT NULL)`)
    const dir = tempDir('pg-float-exp-')
    const spec = join(dir, 'spec.yaml')
    writeFileSync(
      spec,
      [
        'version: 1',
        `name: ${uniqueName('pg-float-exp')}`,
        `source: { topic: ${topic}, group: ${uniqueName('g')}, format: json }`,
        'fields:',
        '  id:     { type: string, required: true }',
        '  rate:   { type: decimal, scale: 8, required: true }',
        '  amount: { type: decimal, scale: 2, required: true }',
        '  fee:    { type: decimal, scale: 8, required: true }',
        'key: id',
        'sinks:',
        '  - table: fx',
        `dlq: { topic: ${dlq} }`,
        '',
      ].join('\n'),
    )
    const source = `pg:${schema}.legacy_fx?order_by=id`

    const n = await runCli(['normalize', source, '--spec', spec, '--out', join(dir, 'out.ndjson'), '--rejects', join(dir, 'rej.ndjson'), '--json'], {cwd: dir})
    expect(n.code, n.stderr).toBe(0)
    expect(n.json).toMatchObject({read: 4, ok: 3, rejected: {UNPARSEABLE_AMOUNT: 1}})
    expect(lines(readFileSync(join(dir, 'out.ndjson'), 'utf8')).map((l) => JSON.parse(l) as unknown)).toEqual([
      {id: 'F1', rate: '0.00005000', amount: '1000000000000000.00', fee: '0.00000001'},
      {id: 'F3', rate: '0.12500000', amount: '-2500000000000000.00', fee: '0.00000050'},
      {id: 'F4', rate: '0.00000001', amount: '1.00', fee: '2.50000000'},
    ])
    // 1.25e-07 (0.000000125) has more decimals than the scale: refused as an amount that would be rounded, not as no number
    const rejects = lines(readFileSync(join(dir, 'rej.ndjson'), 'utf8')).map((l) => JSON.parse(l) as {field: string; value: string; message: string})
    expect(rejects.map((x) => [x.field, x.value])).toEqual([['rate', '1.25e-07']])
    expect(rejects[0]!.message).not.toMatch(/is not a number/)

    const bf = await runCli(['backfill', '--from', source, '--to', topic, '--spec', spec, '--json'])
    expect(bf.code, bf.stderr).toBe(0)
    expect(bf.json).toMatchObject({read: 4, sent: 3, rejected: 1})
    expect(kcatConsume(topic).map((r) => r.payload)).toEqual([
      '{"id":"F1","rate":0.00005,"amount":1000000000000000,"fee":0.00000001}',
      '{"id":"F3","rate":0.125,"amount":-2500000000000000,"fee":0.00000050}',
      '{"id":"F4","rate":0.00000001,"amount":1,"fee":2.50000000}',
    ])
    const run = await runCli(['stream', 'run', '--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', '200', '--json'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.json).toMatchObject({read: 3, written: 3, dead_lettered: {}})
    const rows = await pool.query(`SELECT id, rate::text, amount::text, fee::text FROM "${schema}".fx ORDER BY id`)
    expect(rows.rows).toEqual([
      {id: 'F1', rate: '0.00005000', amount: '1000000000000000.00', fee: '0.00000001'},
      {id: 'F3', rate: '0.12500000', amount: '-2500000000000000.00', fee: '0.00000050'},
      {id: 'F4', rate: '0.00000001', amount: '1.00', fee: '2.50000000'},
    ])
  })
})
