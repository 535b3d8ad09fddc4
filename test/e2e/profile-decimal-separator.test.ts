/**
 * `cutover profile` on decimal-comma columns with three decimals (FX rates, quantities):
 * "92,345" alone may be 92.345 or 92345, and normalize refuses it unless the field says its
 * decimal_separator; "91,8" and "0,250" can only have a decimal comma. The column is a decimal,
 * suggested with `decimal_separator: ","`, and the suggested spec reads every value exactly. A
 * column where no value settles the separator stays unguessed (string).
 */
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {runCli} from '../helpers.js'

describe('cutover profile: a decimal comma settled by some values, ambiguous in others', () => {
  it('suggests decimal with decimal_separator ",", and normalize reads every value exactly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-profile-sep-'))
    onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
    const csv = join(dir, 'fx.csv')
    writeFileSync(csv, 'id;rate;qty;unsettled\n1;92,345;1,500;1,234\n2;91,8;0,250;2,500\n3;93,125;2,000;1,234\n4;92,5;10;2,500\n5;92,000;1,125;1,234\n')
    const r = await runCli(['profile', `csv:${csv}?delimiter=;`, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const col = (n: string) => r.json.columns.find((c: {name: string}) => c.name === n)
    expect(col('rate')).toMatchObject({inferred_type: 'decimal', decimal_separator: ',', decimal_comma: true, scale: 3, non_fitting: 0, min: '91.800', max: '93.125'})
    expect(col('qty')).toMatchObject({inferred_type: 'decimal', decimal_separator: ',', scale: 3, non_fitting: 0, min: '0.250', max: '10.000'})
    // nothing says whether 1,234 is 1.234 or 1234: not guessed
    expect(col('unsettled').inferred_type).toBe('string')
    expect(col('unsettled').decimal_separator).toBeUndefined()

    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, `version: 1\nname: p\nsource: { topic: t, group: g }\n${r.json.suggested_fields}key: id\nsinks: [{ table: t }]\ndlq: { topic: t.dlq }\n`)
    const n = await runCli(['normalize', `csv:${csv}?delimiter=;`, '--spec', spec])
    expect(n.code, n.stderr).toBe(0)
    expect(n.stderr).toMatch(/ok 5, rejected 0/)
    const out = n.stdout.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as {rate: string; qty: string})
    expect(out.map((o) => [o.rate, o.qty])).toEqual([
      ['92.345', '1.500'],
      ['91.800', '0.250'],
      ['93.125', '2.000'],
      ['92.500', '10.000'],
      ['92.000', '1.125'],
    ])
  })
})
