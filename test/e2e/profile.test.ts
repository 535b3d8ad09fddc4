/**
 * `cutover profile` through the built CLI: what its suggested `fields` section does once pasted
 * into a spec (date-only columns stay dates, every column is there), and its usage errors.
 */
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {runCli} from '../helpers.js'

const tmp = () => mkdtempSync(join(tmpdir(), 'cutover-profile-'))
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
