import {mkdtemp, mkdir, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {SpecError, UsageError} from '../../src/errors.js'
import {runPipelineCases} from '../../src/normalize/cases.js'
import {ROOT} from '../helpers.js'

const CARD_SPEC = join(ROOT, 'fixtures/specs/card-transactions.yaml')

async function caseDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cases-'))
  const c = join(dir, 'one')
  await mkdir(c)
  for (const [name, text] of Object.entries(files)) await writeFile(join(c, name), text)
  return dir
}

const INPUT = '{"id": "T1", "acct": "A", "amt": "1,234.50", "ts": "20.11.2026 12:15:00"}\n{"id": "T2", "acct": "A", "amt": "x", "ts": "20.11.2026 12:15:00"}\n'
const RECORD = {txn_id: 'T1', account_id: 'A', amount: '1234.50', currency: 'RUB', event_time: '2026-11-20T09:15:00.000Z', merchant: null}

describe('golden cases (pipeline test)', () => {
  it('every committed fixture case passes', async () => {
    for (const [spec, cases] of [
      ['card-transactions', 'card-transactions'],
      ['legacy-dates', 'legacy-dates'],
    ]) {
      const r = await runPipelineCases(join(ROOT, `fixtures/specs/${spec}.yaml`), join(ROOT, `fixtures/cases/${cases}`))
      expect(r.failed, JSON.stringify(r.cases.filter((c) => !c.passed))).toBe(0)
      expect(r.passed).toBeGreaterThanOrEqual(2)
    }
  })

  it('a passing case with a rejection', async () => {
    const dir = await caseDir({'input.ndjson': INPUT, 'expected.ndjson': JSON.stringify(RECORD) + '\n', 'rejects.ndjson': '{"code": "UNPARSEABLE_AMOUNT", "field": "amount", "line": 2}\n'})
    const r = await runPipelineCases(CARD_SPEC, dir)
    expect(r).toMatchObject({name: 'card-transactions', passed: 1, failed: 0, cases: [{name: 'one', passed: true, inputs: 2, accepted: 1, rejected: 1}]})
    expect(r.sha256).toMatch(/^[0-9a-f]{64}$/)
  })

  it('one case folder can be given directly', async () => {
    const dir = await caseDir({'input.ndjson': INPUT, 'expected.ndjson': JSON.stringify(RECORD) + '\n', 'rejects.ndjson': '{"code": "UNPARSEABLE_AMOUNT", "field": "amount"}\n'})
    const r = await runPipelineCases(CARD_SPEC, join(dir, 'one'))
    expect(r.cases.map((c) => [c.name, c.passed])).toEqual([['one', true]])
  })

  it('a different value: the first difference names the line and the field', async () => {
    const dir = await caseDir({'input.ndjson': INPUT, 'expected.ndjson': JSON.stringify({...RECORD, amount: '1234.5'}) + '\n', 'rejects.ndjson': '{"code": "UNPARSEABLE_AMOUNT", "field": "amount"}\n'})
    const r = await runPipelineCases(CARD_SPEC, dir)
    expect(r.failed).toBe(1)
    expect(r.cases[0]!.difference).toBe('expected.ndjson:1 (input.ndjson:1): amount: expected "1234.5", got "1234.50"')
  })

  it('an extra or a missing field is a difference', async () => {
    const {merchant: _m, ...without} = RECORD
    let dir = await caseDir({'input.ndjson': INPUT, 'expected.ndjson': JSON.stringify(without) + '\n', 'rejects.ndjson': '{"code": "UNPARSEABLE_AMOUNT", "field": "amount"}\n'})
    expect((await runPipelineCases(CARD_SPEC, dir)).cases[0]!.difference).toBe('expected.ndjson:1 (input.ndjson:1): merchant: expected (absent), got null')
    dir = await caseDir({'input.ndjson': INPUT, 'expected.ndjson': JSON.stringify({...RECORD, extra: 1}) + '\n', 'rejects.ndjson': '{"code": "UNPARSEABLE_AMOUNT", "field": "amount"}\n'})
    expect((await runPipelineCases(CARD_SPEC, dir)).cases[0]!.difference).toBe('expected.ndjson:1 (input.ndjson:1): extra: expected 1, got (absent)')
  })

  it('an unexpected rejection, a wrong code, a missing rejection', async () => {
    let dir = await caseDir({'input.ndjson': INPUT, 'expected.ndjson': JSON.stringify(RECORD) + '\n'})
    expect((await runPipelineCases(CARD_SPEC, dir)).cases[0]!.difference).toMatch(
      /^input.ndjson:2 was rejected \(UNPARSEABLE_AMOUNT amount: Field amount value "x" is not a number.*\), but rejects.ndjson has no more rejections$/,
    )
    dir = await caseDir({'input.ndjson': INPUT, 'expected.ndjson': JSON.stringify(RECORD) + '\n', 'rejects.ndjson': '{"code": "PATTERN_MISMATCH", "field": "amount"}\n'})
    expect((await runPipelineCases(CARD_SPEC, dir)).cases[0]!.difference).toMatch(
      /^rejects.ndjson:1: expected \{"code":"PATTERN_MISMATCH","field":"amount"\}, got \{"code":"UNPARSEABLE_AMOUNT","field":"amount","line":2\}/,
    )
    dir = await caseDir({'input.ndjson': INPUT, 'expected.ndjson': JSON.stringify(RECORD) + '\n', 'rejects.ndjson': '{"code": "UNPARSEABLE_AMOUNT", "field": "amount"}\n{"code": "AMBIGUOUS_DATE", "field": "event_time"}\n'})
    expect((await runPipelineCases(CARD_SPEC, dir)).cases[0]!.difference).toBe(
      'rejects.ndjson:2: expected {"code":"AMBIGUOUS_DATE","field":"event_time"}, but no more input records were rejected',
    )
  })

  it('an accepted record where none was expected, and an expected record never produced', async () => {
    let dir = await caseDir({'input.ndjson': INPUT, 'expected.ndjson': '', 'rejects.ndjson': '{"code": "UNPARSEABLE_AMOUNT", "field": "amount"}\n'})
    expect((await runPipelineCases(CARD_SPEC, dir)).cases[0]!.difference).toMatch(/^input.ndjson:1 was accepted as \{.*\}, but expected.ndjson has no more records$/)
    dir = await caseDir({'input.ndjson': INPUT, 'expected.ndjson': JSON.stringify(RECORD) + '\n' + JSON.stringify(RECORD) + '\n', 'rejects.ndjson': '{"code": "UNPARSEABLE_AMOUNT", "field": "amount"}\n'})
    expect((await runPipelineCases(CARD_SPEC, dir)).cases[0]!.difference).toMatch(/^expected.ndjson:2: expected .*, but no more input records were accepted$/)
  })

  it('a malformed case file fails the case, saying where', async () => {
    const dir = await caseDir({'input.ndjson': '{"id": \n', 'expected.ndjson': ''})
    expect((await runPipelineCases(CARD_SPEC, dir)).cases[0]!.difference).toMatch(/input.ndjson:1: not JSON/)
    const noExpected = await caseDir({'input.ndjson': INPUT})
    expect((await runPipelineCases(CARD_SPEC, noExpected)).cases[0]!.difference).toMatch(/cannot read .*expected.ndjson/)
  })

  it('a bad spec is a SpecError; no cases is a UsageError', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cases-'))
    await writeFile(join(dir, 'bad.yaml'), 'version: 1\nname: x\n')
    await expect(runPipelineCases(join(dir, 'bad.yaml'), dir)).rejects.toBeInstanceOf(SpecError)
    await expect(runPipelineCases(CARD_SPEC, dir)).rejects.toBeInstanceOf(UsageError)
  })
})
