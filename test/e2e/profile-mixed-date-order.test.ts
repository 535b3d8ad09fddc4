/**
 * `cutover profile` on a date column that holds both day-first and month-first dates (rows from
 * two systems): 22/11/2026 only reads as dd/MM, 11/23/2026 only as MM/dd, and 05/06/2026 reads as
 * either. No value settles such a column: the profile says it is ambiguous and suggests both
 * formats, so that the spec it suggests reads every unambiguous value and rejects 05/06/2026 as
 * AMBIGUOUS_DATE, instead of listing dd/MM alone (11/23 and 12/31 then unparseable, 05/06 silently
 * read as 5 June).
 */
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {runCli} from '../helpers.js'

describe('cutover profile: a date column in both day/month orders', () => {
  it('is AMBIGUOUS, with both formats suggested: normalize reads every unambiguous date and rejects the ambiguous one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-profile-order-'))
    onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
    const csv = join(dir, 'mixed.csv')
    writeFileSync(csv, 'id;d\n1;22/11/2026\n2;11/23/2026\n3;05/06/2026\n4;25/12/2026\n5;12/31/2026\n')
    const r = await runCli(['profile', `csv:${csv}?delimiter=;`, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const d = r.json.columns.find((c: {name: string}) => c.name === 'd')
    expect(d.inferred_type).toBe('date')
    expect(d.ambiguous).toBe(true)
    expect(d.ambiguity_note).toMatch(/both orders/)
    expect(d.ambiguity_note).not.toMatch(/settle the column's format/)
    // the range covers both readings' dates: 31 December is in it
    expect(d.max).toBe('2026-12-31')
    expect(r.json.suggested_fields).toMatch(/formats:\n\s+- dd\/MM\/yyyy\n\s+- MM\/dd\/yyyy\n/)

    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, `version: 1\nname: p\nsource: { topic: t, group: g }\n${r.json.suggested_fields}key: id\nsinks: [{ table: t }]\ndlq: { topic: t.dlq }\n`)
    const n = await runCli(['normalize', `csv:${csv}?delimiter=;`, '--spec', spec])
    expect(n.code, n.stderr).toBe(0)
    const out = n.stdout.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as {id: string; d: string})
    expect(out).toEqual([
      {id: '1', d: '2026-11-22'},
      {id: '2', d: '2026-11-23'},
      {id: '4', d: '2026-12-25'},
      {id: '5', d: '2026-12-31'},
    ])
    expect(n.stderr).toMatch(/rejected 1 \(AMBIGUOUS_DATE 1\)/)
  })
})
