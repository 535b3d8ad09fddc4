/**
 * `backfill` of a pg: table with --spec (source.format json) into `stream run` with the same
 * spec, against the real broker and PostgreSQL: a numeric(9,3) column's 1.234 goes onto the topic
 * as the JSON number 1.234 (read back with kcat), and the sink holds 1.234, not a dead letter
 * (the JSON text "1.234" was refused as ambiguous printed text) nor 1234.000 (with the field's
 * decimal_separator ","); a text column stays a JSON string.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestSchema, createTestTopic, kcatConsume, runCli, tempDir, testPool, uniqueName} from '../helpers.js'

describe('backfill pg: -> stream run: numeric columns are JSON numbers', () => {
  it('1.234 of a numeric(9,3) is sent as a number and written as 1.234 whatever decimal_separator says', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-exact'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-exact-dlq'})
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".legacy_rates (id text PRIMARY KEY, rate numeric(9,3) NOT NULL, fee numeric(9,3) NOT NULL, note text NOT NULL)`)
    await pool.query(`INSERT INTO "${schema}".legacy_rates VALUES ('R1', 1.234, 12.5, '1.234'), ('R2', -123456.789, 0.001, 'x'), ('R3', 0, 1000, '7')`)
    await pool.query(`CREATE TABLE "${schema}".rates (id text PRIMARY KEY, rate numeric(9,3) NOT NULL, fee numeric(9,3) NOT NULL, note text NOT NULL)`)
    const dir = tempDir('bf-exact-')
    const spec = join(dir, 'spec.yaml')
    writeFileSync(
      spec,
      [
        'version: 1',
        `name: ${uniqueName('bf-exact')}`,
        `source: { topic: ${topic}, group: ${uniqueName('g')}, format: json }`,
        'fields:',
        '  id:   { type: string, required: true }',
        '  rate: { type: decimal, scale: 3, required: true }',
        '  fee:  { type: decimal, scale: 3, required: true, decimal_separator: "," }',
        '  note: { type: string, required: true }',
        'key: id',
        'sinks:',
        '  - table: rates',
        `dlq: { topic: ${dlq} }`,
        '',
      ].join('\n'),
    )
    const bf = await runCli(['backfill', '--from', `pg:${schema}.legacy_rates?order_by=id`, '--to', topic, '--spec', spec, '--json'])
    expect(bf.code, bf.stderr).toBe(0)
    expect(bf.json).toMatchObject({read: 3, sent: 3, rejected: 0})
    expect(kcatConsume(topic).map((r) => r.payload)).toEqual([
      '{"id":"R1","rate":1.234,"fee":12.500,"note":"1.234"}',
      '{"id":"R2","rate":-123456.789,"fee":0.001,"note":"x"}',
      '{"id":"R3","rate":0.000,"fee":1000.000,"note":"7"}',
    ])
    const run = await runCli(['stream', 'run', '--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', '200', '--json'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.json).toMatchObject({read: 3, written: 3, dead_lettered: {}})
    const rows = await pool.query(`SELECT id, rate::text, fee::text, note FROM "${schema}".rates ORDER BY id`)
    expect(rows.rows).toEqual([
      {id: 'R1', rate: '1.234', fee: '12.500', note: '1.234'},
      {id: 'R2', rate: '-123456.789', fee: '0.001', note: 'x'},
      {id: 'R3', rate: '0.000', fee: '1000.000', note: '7'},
    ])
  })

  it('a numeric(9,3) column feeding a decimal and a string field: the string field keeps 12.500 as sent, not 12.5', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-text'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-text-dlq'})
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".legacy_fees (id text PRIMARY KEY, fee numeric(9,3) NOT NULL)`)
    await pool.query(`INSERT INTO "${schema}".legacy_fees VALUES ('F1', 12.5), ('F2', 1000), ('F3', 0), ('F4', -0.1), ('F5', 7.125)`)
    await pool.query(`CREATE TABLE "${schema}".fees (id text PRIMARY KEY, fee numeric(9,3) NOT NULL, fee_text text NOT NULL)`)
    const dir = tempDir('bf-text-')
    const spec = join(dir, 'spec.yaml')
    writeFileSync(
      spec,
      [
        'version: 1',
        `name: ${uniqueName('bf-text')}`,
        `source: { topic: ${topic}, group: ${uniqueName('g')}, format: json }`,
        'fields:',
        '  id:       { type: string, required: true }',
        '  fee:      { type: decimal, scale: 3, required: true }',
        '  fee_text: { type: string, from: fee, required: true, pattern: "^-?[0-9]+[.][0-9]{3}$" }',
        'key: id',
        'sinks:',
        '  - table: fees',
        `dlq: { topic: ${dlq} }`,
        '',
      ].join('\n'),
    )
    const bf = await runCli(['backfill', '--from', `pg:${schema}.legacy_fees?order_by=id`, '--to', topic, '--spec', spec, '--json'])
    expect(bf.code, bf.stderr).toBe(0)
    expect(kcatConsume(topic).map((r) => r.payload)).toEqual([
      '{"id":"F1","fee":12.500}',
      '{"id":"F2","fee":1000.000}',
      '{"id":"F3","fee":0.000}',
      '{"id":"F4","fee":-0.100}',
      '{"id":"F5","fee":7.125}',
    ])
    const run = await runCli(['stream', 'run', '--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', '200', '--json'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.json).toMatchObject({read: 5, written: 5, dead_lettered: {}})
    const rows = await pool.query(`SELECT id, fee::text, fee_text FROM "${schema}".fees ORDER BY id`)
    expect(rows.rows).toEqual([
      {id: 'F1', fee: '12.500', fee_text: '12.500'},
      {id: 'F2', fee: '1000.000', fee_text: '1000.000'},
      {id: 'F3', fee: '0.000', fee_text: '0.000'},
      {id: 'F4', fee: '-0.100', fee_text: '-0.100'},
      {id: 'F5', fee: '7.125', fee_text: '7.125'},
    ])
  })
})
