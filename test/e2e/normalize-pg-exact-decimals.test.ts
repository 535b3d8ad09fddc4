/**
 * `cutover normalize` of a pg: source whose numeric and float columns hold three decimals: 1.234
 * of a numeric(6,3) is the value PostgreSQL printed ("." its decimal point), never "ambiguous"
 * printed text, and never 1234 when the field says decimal_separator ","; a text column holding
 * "1.234" is still read by the rules for printed text.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {describe, expect, it, onTestFinished} from 'vitest'
import {runCli, settings, tempDir} from '../helpers.js'

const lines = (text: string) => text.split('\n').filter((l) => l.length > 0)

describe('normalize pg: numeric and float columns are exact decimals', () => {
  it('reads 1.234 of numeric(6,3), float8 and money as 1.234 whatever decimal_separator says; a text column stays printed text', async () => {
    const schema = `pgexact_${process.pid}_${Date.now()}`
    const db = new pg.Client({connectionString: settings().databaseUrl})
    await db.connect()
    onTestFinished(async () => {
      await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      await db.end()
    })
    await db.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".rates (id text PRIMARY KEY, rate numeric(6,3), weight float8, fee money, note text)`)
    await db.query(`INSERT INTO "${schema}".rates VALUES ('R1', 1.234, 12.5, 1.23, '1.234'), ('R2', -123.456, 0.125, 1234.5, '12.50'), ('R3', 0.001, 999.999, 0, '7')`)
    const dir = tempDir('normalize-pg-exact-')
    writeFileSync(
      join(dir, 'spec.yaml'),
      [
        'version: 1',
        'name: rates',
        'source: { topic: rates.raw }',
        'fields:',
        '  id:     { type: string, required: true }',
        '  rate:   { type: decimal, scale: 3, required: true, decimal_separator: "," }',
        '  weight: { type: decimal, scale: 3, required: true }',
        '  fee:    { type: decimal, scale: 2, required: true, decimal_separator: "," }',
        '  note:   { type: decimal, scale: 3, required: true }',
        'key: id',
        'sinks:',
        '  - table: rates_clean',
        '',
      ].join('\n'),
    )
    const r = await runCli(['normalize', `pg:${schema}.rates?order_by=id`, '--spec', 'spec.yaml', '--out', 'out.ndjson', '--rejects', 'rej.ndjson', '--json'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({read: 3, ok: 2, rejected: {UNPARSEABLE_AMOUNT: 1}})
    expect(lines(readFileSync(join(dir, 'out.ndjson'), 'utf8')).map((l) => JSON.parse(l) as unknown)).toEqual([
      {id: 'R2', rate: '-123.456', weight: '0.125', fee: '1234.50', note: '12.500'},
      {id: 'R3', rate: '0.001', weight: '999.999', fee: '0.00', note: '7.000'},
    ])
    // the text column's "1.234": "." may group thousands in printed text
    const rejects = lines(readFileSync(join(dir, 'rej.ndjson'), 'utf8')).map((l) => JSON.parse(l) as {field: string; value: string; code: string})
    expect(rejects.map((x) => [x.field, x.value, x.code])).toEqual([['note', '1.234', 'UNPARSEABLE_AMOUNT']])
  })
})
