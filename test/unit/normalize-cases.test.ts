import {mkdtemp, mkdir, readFile, writeFile} from 'node:fs/promises'
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

/** A spec with dedupe by id and a sensitive card field, written to a temporary folder. */
async function dedupeSpec(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cases-spec-'))
  const file = join(dir, 'spec.yaml')
  await writeFile(
    file,
    `version: 1
name: dd
source: { topic: t, group: g, format: json }
fields:
  id:   { type: string, required: true }
  amt:  { type: decimal, scale: 2, required: true }
  card: { type: string, sensitive: true, pattern: "^[0-9]{16}$" }
key: id
dedupe: { by: id, conflicting: dlq }
sinks: [{ table: t }]
dlq: { topic: t.dlq }
`,
  )
  return file
}

const PAN = '4111111111111111'
const OTHER_PAN = '5500000000000004'

describe('golden cases: the spec dedupe, as normalize runs it', () => {
  const first = `{"id": "1", "amt": "1", "card": "${PAN}"}`
  const accepted = JSON.stringify({id: '1', amt: '1.00', card: PAN})

  it('a repeat of a key with a different payload is DUPLICATE_CONFLICT, not accepted', async () => {
    const spec = await dedupeSpec()
    const input = `${first}\n{"id": "1", "amt": "2", "card": "${PAN}"}\n`
    // what the audit saw pass: both records expected as accepted
    let dir = await caseDir({'input.ndjson': input, 'expected.ndjson': `${accepted}\n${JSON.stringify({id: '1', amt: '2.00', card: PAN})}\n`})
    let r = await runPipelineCases(spec, dir)
    expect(r.failed).toBe(1)
    expect(r.cases[0]).toMatchObject({accepted: 1, rejected: 1, duplicates: 0})
    expect(r.cases[0]!.difference).toBe('input.ndjson:2 was rejected (DUPLICATE_CONFLICT id: id "1" was seen before (input.ndjson:1) with a different payload), but rejects.ndjson has no more rejections')
    // asserted as a rejection, the case passes
    dir = await caseDir({'input.ndjson': input, 'expected.ndjson': `${accepted}\n`, 'rejects.ndjson': '{"code": "DUPLICATE_CONFLICT", "field": "id", "line": 2}\n'})
    r = await runPipelineCases(spec, dir)
    expect(r.cases[0]).toMatchObject({passed: true, accepted: 1, rejected: 1, duplicates: 0})
  })

  it('an identical repeat is dropped and counted: in neither expected.ndjson nor rejects.ndjson', async () => {
    const spec = await dedupeSpec()
    // "1.00" normalizes as "1" does: the records are the same
    const input = `${first}\n{"id": "1", "amt": "1.00", "card": "${PAN}"}\n`
    let dir = await caseDir({'input.ndjson': input, 'expected.ndjson': `${accepted}\n`})
    let r = await runPipelineCases(spec, dir)
    expect(r.cases[0]).toMatchObject({passed: true, inputs: 2, accepted: 1, rejected: 0, duplicates: 1})
    // expecting it a second time fails, saying it was dropped (the card masked)
    dir = await caseDir({'input.ndjson': input, 'expected.ndjson': `${accepted}\n${accepted}\n`})
    r = await runPipelineCases(spec, dir)
    expect(r.cases[0]!.passed).toBe(false)
    expect(r.cases[0]!.difference).toBe('expected.ndjson:2 (input.ndjson:2): the record is an identical repeat of input.ndjson:1 (dedupe by id "1"), which is dropped, not accepted again')
  })

  it('a record without a dedupe key is a SCHEMA_VIOLATION, as normalize and the stream refuse it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cases-spec-'))
    const spec = join(dir, 'spec.yaml')
    await writeFile(spec, (await readFile(await dedupeSpec(), 'utf8')).replace('dedupe: { by: id,', 'dedupe: { by: card,'))
    const input = `{"id": "1", "amt": "1"}\n{"id": "2", "amt": "2"}\n`
    const rejects = '{"code": "SCHEMA_VIOLATION", "field": "card", "line": 1}\n{"code": "SCHEMA_VIOLATION", "field": "card", "line": 2}\n'
    const r = await runPipelineCases(spec, await caseDir({'input.ndjson': input, 'expected.ndjson': '', 'rejects.ndjson': rejects}))
    expect(r.cases[0], r.cases[0]!.difference).toMatchObject({passed: true, accepted: 0, rejected: 2, duplicates: 0})
  })

  it('a sensitive dedupe key is masked in the DUPLICATE_CONFLICT message', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cases-spec-'))
    const spec = join(dir, 'spec.yaml')
    await writeFile(spec, (await readFile(await dedupeSpec(), 'utf8')).replace('dedupe: { by: id,', 'dedupe: { by: card,'))
    const cases = await caseDir({'input.ndjson': `${first}\n{"id": "2", "amt": "1", "card": "${PAN}"}\n`, 'expected.ndjson': `${accepted}\n`})
    const r = await runPipelineCases(spec, cases)
    expect(r.cases[0]!.difference).toBe('input.ndjson:2 was rejected (DUPLICATE_CONFLICT card: card "4111********1111" was seen before (input.ndjson:1) with a different payload), but rejects.ndjson has no more rejections')
  })
})

describe('golden cases: sensitive values are masked in differences', () => {
  const input = `{"id": "1", "amt": "1", "card": "${PAN}"}\n`

  it('a different value, an unexpected accepted record, an expected record never produced', async () => {
    const spec = await dedupeSpec()
    let dir = await caseDir({'input.ndjson': input, 'expected.ndjson': JSON.stringify({id: '1', amt: '1.00', card: OTHER_PAN}) + '\n'})
    let r = await runPipelineCases(spec, dir)
    expect(r.cases[0]!.difference).toBe('expected.ndjson:1 (input.ndjson:1): card: expected "5500********0004", got "4111********1111" (card is sensitive: values masked)')

    dir = await caseDir({'input.ndjson': input, 'expected.ndjson': ''})
    r = await runPipelineCases(spec, dir)
    expect(r.cases[0]!.difference).toBe('input.ndjson:1 was accepted as {"id":"1","amt":"1.00","card":"4111********1111"}, but expected.ndjson has no more records')

    dir = await caseDir({'input.ndjson': '', 'expected.ndjson': JSON.stringify({id: '1', amt: '1.00', card: OTHER_PAN}) + '\n'})
    r = await runPipelineCases(spec, dir)
    expect(r.cases[0]!.difference).toBe('expected.ndjson:1: expected {"id":"1","amt":"1.00","card":"5500********0004"}, but no more input records were accepted')
    for (const c of r.cases) expect(JSON.stringify(c)).not.toMatch(new RegExp(`${PAN}|${OTHER_PAN}`))
  })

  it('a line that is not JSON is named by its line, without the start of its text (it may hold a card number)', async () => {
    const dir = await caseDir({'input.ndjson': `x{"card": "${PAN}"}\n`, 'expected.ndjson': ''})
    const r = await runPipelineCases(await dedupeSpec(), dir)
    expect(r.cases[0]!.difference).toMatch(/input.ndjson:1: not JSON \(Unexpected token 'x' \(not valid JSON\)\)$/)
    expect(r.cases[0]!.difference).not.toContain(PAN.slice(0, 6))
  })
})
