/**
 * Golden cases (`pipeline test`): a value of expected.ndjson of another JSON type than the output's
 * (a decimal written as the JSON number 7.50, where the output is the string "7.50") is a
 * difference that names both types, never `expected "7.50", got "7.50"`; and a case without input
 * records fails, as it tests nothing.
 */
import {mkdtemp, mkdir, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {runPipelineCases} from '../../src/normalize/cases.js'
import {ROOT} from '../helpers.js'

const CARD_SPEC = join(ROOT, 'fixtures/specs/card-transactions.yaml')

async function caseDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cases-types-'))
  const c = join(dir, 'one')
  await mkdir(c)
  for (const [name, text] of Object.entries(files)) await writeFile(join(c, name), text)
  return dir
}

const INPUT = '{"id": "T1", "acct": "A", "amt": "7,50", "ts": "20.11.2026 12:15:00"}\n'
/** expected.ndjson's line with `amount` written as given (JSON text) */
const expectedWith = (amount: string, currency = '"RUB"') =>
  `{"txn_id": "T1", "account_id": "A", "amount": ${amount}, "currency": ${currency}, "event_time": "2026-11-20T09:15:00.000Z", "merchant": null}\n`

describe('golden cases: JSON types in expected.ndjson', () => {
  it('the decimal as the string the output holds passes', async () => {
    const r = await runPipelineCases(CARD_SPEC, await caseDir({'input.ndjson': INPUT, 'expected.ndjson': expectedWith('"7.50"')}))
    expect(r.cases[0]).toMatchObject({passed: true, inputs: 1, accepted: 1})
  })

  it('the decimal as a JSON number fails, naming both types and the fix (7.50 as written, 7.5 as the double)', async () => {
    for (const [written, shown] of [
      ['7.50', '7.50'],
      ['7.5', '7.5'],
    ] as const) {
      const r = await runPipelineCases(CARD_SPEC, await caseDir({'input.ndjson': INPUT, 'expected.ndjson': expectedWith(written)}))
      expect(r.failed).toBe(1)
      expect(r.cases[0]!.difference).toBe(
        `expected.ndjson:1 (input.ndjson:1): amount: expected ${shown} (a JSON number), got "7.50" (a string): the output holds decimals and integers as JSON strings, exact; quote the value in expected.ndjson`,
      )
    }
  })

  it('other types that differ are named too; values of one type read as before', async () => {
    let r = await runPipelineCases(CARD_SPEC, await caseDir({'input.ndjson': INPUT, 'expected.ndjson': expectedWith('"7.50"', 'true')}))
    expect(r.cases[0]!.difference).toBe('expected.ndjson:1 (input.ndjson:1): currency: expected true (a boolean), got "RUB" (a string)')
    r = await runPipelineCases(CARD_SPEC, await caseDir({'input.ndjson': INPUT, 'expected.ndjson': expectedWith('"7.5"')}))
    expect(r.cases[0]!.difference).toBe('expected.ndjson:1 (input.ndjson:1): amount: expected "7.5", got "7.50"')
  })
})

describe('golden cases: a case without input', () => {
  it('an empty input.ndjson (or blank lines only) with nothing expected fails: it tests nothing', async () => {
    for (const input of ['', '\n\n  \n']) {
      const r = await runPipelineCases(CARD_SPEC, await caseDir({'input.ndjson': input, 'expected.ndjson': ''}))
      expect(r).toMatchObject({passed: 0, failed: 1})
      expect(r.cases[0]).toMatchObject({passed: false, inputs: 0, difference: 'input.ndjson has no records: the case tests nothing; add the raw records it is about, one JSON object a line'})
    }
  })

  it('beside a case with input, only the empty one fails', async () => {
    const dir = await caseDir({'input.ndjson': INPUT, 'expected.ndjson': expectedWith('"7.50"')})
    await mkdir(join(dir, 'two'))
    await writeFile(join(dir, 'two', 'input.ndjson'), '')
    await writeFile(join(dir, 'two', 'expected.ndjson'), '')
    const r = await runPipelineCases(CARD_SPEC, dir)
    expect(r.cases.map((c) => [c.name, c.passed])).toEqual([
      ['one', true],
      ['two', false],
    ])
  })
})
