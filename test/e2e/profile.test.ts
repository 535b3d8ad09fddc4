/**
 * `cutover profile` through the built CLI: what its suggested `fields` section does once pasted
 * into a spec (date-only columns stay dates, every column is there), and its usage errors.
 */
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {runCli} from '../helpers.js'

const tmp = () => {
  const dir = mkdtempSync(join(tmpdir(), 'cutover-profile-'))
  onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
  return dir
}
const lines = (text: string) => text.split('\n').filter((l) => l.length > 0)

/** A spec around a suggested `fields` section, written to `dir`. */
function specWith(dir: string, fields: string, key: string): string {
  const file = join(dir, 'spec.yaml')
  writeFileSync(file, `version: 1\nname: p\nsource: { topic: t, group: g }\n${fields}key: ${key}\nsinks: [{ table: t }]\ndlq: { topic: t.dlq }\n`)
  return file
}

describe('cutover profile: the suggested fields', () => {
  it('suggests `date` for a column of dates without a time of day, so a business date east of UTC stays that date', async () => {
    const dir = tmp()
    writeFileSync(join(dir, 'dates.csv'), 'business_date,booked_at\n2026-11-20,2026-11-20T09:15:00\n2026-11-21,2026-11-21 10:00\n')
    const r = await runCli(['profile', `csv:${join(dir, 'dates.csv')}`, '--timezone', 'Europe/Moscow', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const col = (n: string) => r.json.columns.find((c: {name: string}) => c.name === n)
    expect(col('business_date').inferred_type).toBe('date')
    // iso values with a time of day are still timestamps
    expect(col('booked_at').inferred_type).toBe('timestamp')
    expect(r.json.suggested_fields).toMatch(/business_date:\n\s+type: date\n/)

    // pasted into a spec, normalize keeps the business date
    const spec = specWith(dir, r.json.suggested_fields, 'business_date')
    const n = await runCli(['normalize', `csv:${join(dir, 'dates.csv')}`, '--spec', spec])
    expect(n.code, n.stderr).toBe(0)
    expect(lines(n.stdout).map((l) => JSON.parse(l))).toEqual([
      {business_date: '2026-11-20', booked_at: '2026-11-20T06:15:00.000Z'},
      {business_date: '2026-11-21', booked_at: '2026-11-21T07:00:00.000Z'},
    ])
  })

  it('keeps every column when snake_case names collide, the sensitive card column included', async () => {
    const dir = tmp()
    writeFileSync(join(dir, 'prof.csv'), 'Amount,amount,card no,card_no,dt\n1.50,2,4111111111111111,x,2026-11-20\n2.25,3,4111111111111111,y,2026-11-21\n')
    const r = await runCli(['profile', `csv:${join(dir, 'prof.csv')}`, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const suggested: string = r.json.suggested_fields
    expect(suggested).toMatch(/\n {2}amount_2:\n {4}from: Amount\n/)
    expect(suggested).toMatch(/\n {2}amount:\n {4}type: integer\n/)
    expect(suggested).toMatch(/\n {2}card_no_2:\n {4}from: card no\n(\s+\w+: .*\n)*\s+sensitive: true\n/)
    // card numbers are identifiers: a string, not an integer (19 digits overflow bigint)
    expect(suggested).toMatch(/\n {2}card_no_2:\n {4}from: card no\n {4}type: string\n/)
    expect(suggested).toMatch(/\n {2}card_no:\n {4}type: string\n/)
    expect(suggested).not.toContain('4111111111111111')

    // the suggestion validates and reads every column, the card number masked nowhere but read
    const spec = specWith(dir, suggested, 'amount')
    const v = await runCli(['pipeline', 'validate', spec, '--json'])
    expect(v.code, v.stdout + v.stderr).toBe(0)
    const n = await runCli(['normalize', `csv:${join(dir, 'prof.csv')}`, '--spec', spec])
    expect(n.code, n.stderr).toBe(0)
    expect(JSON.parse(lines(n.stdout)[0]!)).toEqual({amount_2: '1.50', amount: '2', card_no_2: '4111111111111111', card_no: 'x', dt: '2026-11-20'})
  })
})

describe('cutover profile: usage errors', () => {
  const csv = () => {
    const dir = tmp()
    writeFileSync(join(dir, 'd.csv'), 'd\n2026-11-20\n')
    return `csv:${join(dir, 'd.csv')}`
  }

  it('an unknown --timezone is exit 2 with a hint naming IANA zones, not an internal error', async () => {
    const uri = csv()
    const j = await runCli(['profile', uri, '--timezone', 'Bogus/Zone', '--json'])
    expect(j.code).toBe(2)
    expect(j.json.error).toMatchObject({code: 'USAGE', message: expect.stringContaining('Bogus/Zone')})
    expect(j.json.error.hint).toMatch(/IANA.*Europe\/Moscow/)
    const t = await runCli(['profile', uri, '--timezone', 'Bogus/Zone'])
    expect(t.code).toBe(2)
    expect(t.stderr).toMatch(/Bogus\/Zone/)
    expect(t.stderr).not.toMatch(/\n\s+at /) // no stack trace
  })

  it('--limit below 1 is exit 2 instead of reading nothing', async () => {
    const uri = csv()
    for (const limit of ['-1', '0']) {
      const r = await runCli(['profile', uri, `--limit=${limit}`, '--json'])
      expect(r.code, `--limit ${limit}: ${r.stdout}`).toBe(2)
      expect(r.json.error.code).toBe('USAGE')
    }
    const ok = await runCli(['profile', uri, '--limit', '1', '--json'])
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.json.rows).toBe(1)
  })
})

describe('cutover profile: rare values are counted, not rounded away', () => {
  it('one empty value and one misfit in 20,001 rows: exact counts, rates above 0 and below 1, the misfit shown, no `required`', async () => {
    const dir = tmp()
    const rows = ['qty;amount']
    for (let g = 1; g <= 20001; g++) rows.push(`${g === 777 ? '' : g % 100};${g === 999 ? 'n/a' : `${g},${String(g % 100).padStart(2, '0')}`}`)
    writeFileSync(join(dir, 'rare.csv'), rows.join('\n') + '\n')
    const uri = `csv:${join(dir, 'rare.csv')}?delimiter=;`
    const r = await runCli(['profile', uri, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const col = (n: string) => r.json.columns.find((c: {name: string}) => c.name === n)
    expect(col('qty')).toMatchObject({inferred_type: 'integer', count: 20001, empty_count: 1, null_count: 0, non_fitting: 0})
    expect(col('qty').empty_rate).toBeGreaterThan(0)
    expect(col('amount')).toMatchObject({inferred_type: 'decimal', decimal_comma: true, non_fitting: 1, non_fitting_examples: ['n/a']})
    expect(col('amount').fit_rate).toBeLessThan(1)
    // qty has an empty value: not suggested as required
    expect(r.json.suggested_fields).toMatch(/\n {2}qty:\n {4}type: integer\n {2}amount:/)

    const t = await runCli(['profile', uri])
    expect(t.code, t.stderr).toBe(0)
    expect(t.stdout).toMatch(/^qty +integer +null +0\.0% +empty +<0\.1% /m)
    expect(t.stdout).toContain('1 (<0.1%) do not fit, e.g. "n/a"')
  })
})

describe('cutover profile: amounts stay exact, and the suggestion accepts them', () => {
  it('min and max as exact decimal text; more than 12 decimals and more than 18 digits are still decimals, with a precision that normalize accepts', async () => {
    const dir = tmp()
    writeFileSync(
      join(dir, 'amounts.csv'),
      'id;amount;rate;booked\n1;12345678901234567,50;0.14285714285714285714;20.11.2026\n2;-98765432109876,54;2.5;21.11.2026\n3;0,10;7.14285714285714285714;01.12.2026\n',
    )
    const uri = `csv:${join(dir, 'amounts.csv')}?delimiter=;`
    const r = await runCli(['profile', uri, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const col = (n: string) => r.json.columns.find((c: {name: string}) => c.name === n)
    expect(col('amount')).toMatchObject({inferred_type: 'decimal', scale: 2, integer_digits: 17, min: '-98765432109876.54', max: '12345678901234567.50', decimal_comma: true})
    expect(col('rate')).toMatchObject({inferred_type: 'decimal', scale: 20, min: '0.14285714285714285714', max: '7.14285714285714285714'})
    expect(col('id')).toMatchObject({inferred_type: 'integer', min: '1', max: '3'})
    expect(col('booked')).toMatchObject({inferred_type: 'date', min: '2026-11-20', max: '2026-12-01'})
    expect(r.json.suggested_fields).toMatch(/\n {2}amount:\n {4}type: decimal\n {4}required: true\n {4}scale: 2\n {4}precision: 19\n/)

    // pasted into a spec, every amount is read, none rounded
    const spec = specWith(dir, r.json.suggested_fields, 'id')
    const n = await runCli(['normalize', uri, '--spec', spec])
    expect(n.code, n.stderr).toBe(0)
    expect(lines(n.stdout).map((l) => JSON.parse(l).amount)).toEqual(['12345678901234567.50', '-98765432109876.54', '0.10'])
    expect(lines(n.stdout).map((l) => JSON.parse(l).rate)).toEqual(['0.14285714285714285714', '2.50000000000000000000', '7.14285714285714285714'])
  })
})

