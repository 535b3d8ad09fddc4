/** `cutover pipeline validate` and `cutover pipeline test`, run as a user runs them (bin/run.js, built). */
import {mkdtemp, mkdir, writeFile, cp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {runCli} from '../helpers.js'

const CARD_SPEC = 'fixtures/specs/card-transactions.yaml'

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'pipeline-e2e-'))
}

describe('cutover pipeline validate', () => {
  it('a valid spec: exit 0 and the --json result', async () => {
    const r = await runCli(['pipeline', 'validate', CARD_SPEC, '--json'])
    expect(r.code, r.stderr).toBe(0)
    // valid, and stream run runs all of it (enrich, windows, rules): no warning
    expect(r.json).toEqual({
      valid: true,
      file: CARD_SPEC,
      name: 'card-transactions',
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      fields: 6,
      warnings: [],
    })
  })

  it('a valid spec: one line for a person on stdout, nothing on stderr', async () => {
    const r = await runCli(['pipeline', 'validate', CARD_SPEC])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^fixtures\/specs\/card-transactions.yaml: valid pipeline spec "card-transactions" \(6 fields, sha256 [0-9a-f]{12}\)\n$/)
    expect(r.stderr).toBe('')
  })

  it('a spec stream run runs: no warning (windows, enrich and rules included); a csv source it cannot read: a warning', async () => {
    const plain = await runCli(['pipeline', 'validate', 'fixtures/specs/legacy-dates.yaml', '--json'])
    expect(plain.code, plain.stderr).toBe(0)
    expect(plain.json).toMatchObject({valid: true, warnings: []})
    expect(plain.stderr).toBe('')

    const dir = await tmp()
    const file = join(dir, 'windows.yaml')
    await writeFile(
      file,
      'version: 1\nname: t\nsource: {topic: t.raw}\nfields:\n  id: {type: string}\n  amount: {type: decimal, scale: 2}\n  ts: {type: timestamp, formats: [iso]}\nkey: id\nevent_time: ts\nenrich:\n  - {name: a, table: accounts, on: id, select: [segment]}\nwindows:\n  - {name: w, by: id, size: 10m, aggregates: {n: count}}\nrules:\n  - {name: r, when: "w.n > 5 and a.segment = \'vip\'", emit: t.alerts}\nsinks: [{table: t}]\n',
    )
    const r = await runCli(['pipeline', 'validate', file, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({valid: true, warnings: []})
    const human = await runCli(['pipeline', 'validate', file])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toMatch(/: valid pipeline spec "t" \(3 fields, sha256 [0-9a-f]{12}\)\n$/)
    expect(human.stderr).toBe('')

    // a csv source whose field names no column of source.columns: stream run refuses it at start
    const csv = join(dir, 'csv-column.yaml')
    await writeFile(csv, 'version: 1\nname: t\nsource: {topic: t.raw, format: csv, delimiter: ";", columns: [id, amt]}\nfields:\n  id: {type: string}\n  amount: {from: amount, type: decimal, scale: 2}\nkey: id\nsinks: [{table: t}]\n')
    const c = await runCli(['pipeline', 'validate', csv, '--json'])
    expect(c.code, c.stderr).toBe(0)
    expect(c.json.warnings).toEqual([expect.objectContaining({file: csv, line: 6, message: expect.stringMatching(/^source.columns has no column amount; it has: id, amt, so stream run refuses this spec \(exit 2\)$/)})])
  })

  it('an unknown key and a bad enum: exit 2, every problem with file:line:column and what is allowed', async () => {
    const dir = await tmp()
    const file = join(dir, 'bad.yaml')
    await writeFile(file, 'version: 1\nname: t\nsource:\n  topic: t.raw\n  format: xml\nfields:\n  amount: {type: decimal, scal: 2}\n')
    const r = await runCli(['pipeline', 'validate', file])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain(`Error: ${file}:5:11: source.format: "xml" is not allowed; allowed: json, csv, fixed`)
    expect(r.stderr).toContain(`${file}:7:27: fields.amount.scal: unknown key "scal" (did you mean "scale"?); allowed keys: from, type,`)

    const j = await runCli(['pipeline', 'validate', file, '--json'])
    expect(j.code).toBe(2)
    expect(j.json.error).toMatchObject({code: 'SPEC_INVALID', file, line: 5, column: 11})
    expect(j.json.error.errors).toEqual([
      {file, line: 5, column: 11, path: 'source.format', message: '"xml" is not allowed; allowed: json, csv, fixed'},
      {file, line: 7, column: 27, path: 'fields.amount.scal', message: expect.stringContaining('unknown key "scal"')},
    ])
  })

  it('a meaning error (undefined key field) is exit 2 with its position', async () => {
    const dir = await tmp()
    const file = join(dir, 'bad.yaml')
    await writeFile(file, 'version: 1\nname: t\nsource: {topic: t.raw}\nfields:\n  id: {type: string}\nkey: txn_id\n')
    const r = await runCli(['pipeline', 'validate', file, '--json'])
    expect(r.code).toBe(2)
    expect(r.json.error.message).toBe(`${file}:6:6: key: key "txn_id" is not a defined field; defined fields: id`)
  })

  it('a missing file is exit 2', async () => {
    const r = await runCli(['pipeline', 'validate', '/nonexistent/spec.yaml'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('/nonexistent/spec.yaml: cannot read the spec')
  })
})

describe('cutover pipeline test', () => {
  it('the committed golden cases pass: exit 0', async () => {
    const r = await runCli(['pipeline', 'test', CARD_SPEC, 'fixtures/cases/card-transactions'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain('PASS  amounts-and-dates')
    expect(r.stdout).toContain('PASS  rejections')
    expect(r.stdout).toContain('2 passed, 0 failed')

    const j = await runCli(['pipeline', 'test', 'fixtures/specs/legacy-dates.yaml', 'fixtures/cases/legacy-dates', '--json'])
    expect(j.code).toBe(0)
    expect(j.json).toMatchObject({name: 'legacy-dates', passed: 2, failed: 0})
  })

  it('a failing case: exit 1 with the first difference', async () => {
    const dir = await tmp()
    await cp('fixtures/cases/card-transactions', dir, {recursive: true})
    await mkdir(join(dir, 'wrong'))
    await writeFile(join(dir, 'wrong', 'input.ndjson'), '{"id": "T1", "acct": "A", "amt": "(12.50)", "ts": "20.11.2026 12:15:00"}\n')
    await writeFile(
      join(dir, 'wrong', 'expected.ndjson'),
      '{"txn_id": "T1", "account_id": "A", "amount": "12.50", "currency": "RUB", "event_time": "2026-11-20T09:15:00.000Z", "merchant": null}\n',
    )
    const r = await runCli(['pipeline', 'test', CARD_SPEC, dir])
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('FAIL  wrong')
    expect(r.stdout).toContain('expected.ndjson:1 (input.ndjson:1): amount: expected "12.50", got "-12.50"')
    expect(r.stdout).toContain('2 passed, 1 failed')

    const j = await runCli(['pipeline', 'test', CARD_SPEC, dir, '--json'])
    expect(j.code).toBe(1)
    expect(j.json.cases.find((c: {name: string}) => c.name === 'wrong')).toMatchObject({passed: false, difference: expect.stringContaining('amount: expected "12.50", got "-12.50"')})
  })

  it('an amount written as a JSON number, and a case without input: exit 1, each saying what is wrong', async () => {
    const dir = await tmp()
    await mkdir(join(dir, 'number'))
    await writeFile(join(dir, 'number', 'input.ndjson'), '{"id": "T1", "acct": "A", "amt": "7,50", "ts": "20.11.2026 12:15:00"}\n')
    await writeFile(join(dir, 'number', 'expected.ndjson'), '{"txn_id": "T1", "account_id": "A", "amount": 7.50, "currency": "RUB", "event_time": "2026-11-20T09:15:00.000Z", "merchant": null}\n')
    await mkdir(join(dir, 'nothing'))
    await writeFile(join(dir, 'nothing', 'input.ndjson'), '')
    await writeFile(join(dir, 'nothing', 'expected.ndjson'), '')
    const r = await runCli(['pipeline', 'test', CARD_SPEC, dir])
    expect(r.code, r.stdout + r.stderr).toBe(1)
    expect(r.stdout).toContain('amount: expected 7.50 (a JSON number), got "7.50" (a string): the output holds decimals and integers as JSON strings, exact; quote the value in expected.ndjson')
    expect(r.stdout).toContain('FAIL  nothing  (0 inputs: 0 accepted, 0 rejected)\n      input.ndjson has no records: the case tests nothing')
    expect(r.stdout).toContain('0 passed, 2 failed')
  })

  it('a bad spec: exit 2', async () => {
    const dir = await tmp()
    await writeFile(join(dir, 'bad.yaml'), 'version: 1\nname: t\nsource: {topic: t}\nfields:\n  a: {type: timestamp}\n')
    const r = await runCli(['pipeline', 'test', join(dir, 'bad.yaml'), 'fixtures/cases/card-transactions'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`${join(dir, 'bad.yaml')}:5:13: fields.a.type: timestamp field "a" needs \`formats\``)
  })

  it('no cases: exit 2', async () => {
    const r = await runCli(['pipeline', 'test', CARD_SPEC, await tmp()])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('no cases in')
  })
})

describe('cutover pipeline test: dedupe and sensitive values, as normalize', () => {
  const SPEC = `version: 1
name: dd
source: { topic: t, group: g, format: json }
fields:
  id:   { type: string, required: true }
  amt:  { type: decimal, scale: 2, required: true }
  card: { type: string, sensitive: true }
key: id
dedupe: { by: id, conflicting: dlq }
sinks: [{ table: t }]
dlq: { topic: t.dlq }
`
  const PAN = '4111111111111111'
  const OTHER = '5500000000000004'

  it('a case normalize would reject as DUPLICATE_CONFLICT fails; asserted as a rejection it passes', async () => {
    const dir = await tmp()
    await writeFile(join(dir, 'spec.yaml'), SPEC)
    const input = `{"id": "1", "amt": "1", "card": "${PAN}"}\n{"id": "1", "amt": "2", "card": "${PAN}"}\n`
    await mkdir(join(dir, 'cases', 'dup'), {recursive: true})
    await writeFile(join(dir, 'cases', 'dup', 'input.ndjson'), input)
    await writeFile(join(dir, 'cases', 'dup', 'expected.ndjson'), `{"id": "1", "amt": "1.00", "card": "${PAN}"}\n{"id": "1", "amt": "2.00", "card": "${PAN}"}\n`)

    // normalize, on the same records, rejects the second
    await writeFile(join(dir, 'in.csv'), `id,amt,card\n1,1,${PAN}\n1,2,${PAN}\n`)
    const n = await runCli(['normalize', `csv:${join(dir, 'in.csv')}`, '--spec', join(dir, 'spec.yaml'), '--out', join(dir, 'out.ndjson'), '--json'])
    expect(n.code, n.stdout + n.stderr).toBe(0)
    expect(n.json).toMatchObject({read: 2, ok: 1, rejected: {DUPLICATE_CONFLICT: 1}})

    const r = await runCli(['pipeline', 'test', join(dir, 'spec.yaml'), join(dir, 'cases')])
    expect(r.code, r.stdout + r.stderr).toBe(1)
    expect(r.stdout).toContain('FAIL  dup  (2 inputs: 1 accepted, 1 rejected)')
    expect(r.stdout).toContain('input.ndjson:2 was rejected (DUPLICATE_CONFLICT id: id "1" was seen before (input.ndjson:1) with a different payload)')

    await writeFile(join(dir, 'cases', 'dup', 'expected.ndjson'), `{"id": "1", "amt": "1.00", "card": "${PAN}"}\n`)
    await writeFile(join(dir, 'cases', 'dup', 'rejects.ndjson'), '{"code": "DUPLICATE_CONFLICT", "field": "id", "line": 2}\n')
    const ok = await runCli(['pipeline', 'test', join(dir, 'spec.yaml'), join(dir, 'cases'), '--json'])
    expect(ok.code, ok.stdout + ok.stderr).toBe(0)
    expect(ok.json.cases[0]).toMatchObject({name: 'dup', passed: true, accepted: 1, rejected: 1, duplicates: 0})
  })

  it('masks the values of sensitive fields in differences, in text and --json', async () => {
    const dir = await tmp()
    await writeFile(join(dir, 'spec.yaml'), SPEC)
    for (const [name, expected] of [
      ['different', `{"id": "1", "amt": "1.00", "card": "${OTHER}"}\n`],
      ['unexpected', ''],
    ] as const) {
      await mkdir(join(dir, 'cases', name), {recursive: true})
      await writeFile(join(dir, 'cases', name, 'input.ndjson'), `{"id": "1", "amt": "1", "card": "${PAN}"}\n`)
      await writeFile(join(dir, 'cases', name, 'expected.ndjson'), expected)
    }
    const r = await runCli(['pipeline', 'test', join(dir, 'spec.yaml'), join(dir, 'cases')])
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('card: expected "5500********0004", got "4111********1111" (card is sensitive: values masked)')
    expect(r.stdout).toContain('input.ndjson:1 was accepted as {"id":"1","amt":"1.00","card":"4111********1111"}')
    const j = await runCli(['pipeline', 'test', join(dir, 'spec.yaml'), join(dir, 'cases'), '--json'])
    expect(j.code).toBe(1)
    expect(j.json.cases.map((c: {difference: string}) => c.difference)).toEqual([
      'expected.ndjson:1 (input.ndjson:1): card: expected "5500********0004", got "4111********1111" (card is sensitive: values masked)',
      'input.ndjson:1 was accepted as {"id":"1","amt":"1.00","card":"4111********1111"}, but expected.ndjson has no more records',
    ])
    for (const out of [r.stdout, r.stderr, j.stdout, j.stderr]) {
      expect(out).not.toContain(PAN)
      expect(out).not.toContain(OTHER)
    }
  })
})
