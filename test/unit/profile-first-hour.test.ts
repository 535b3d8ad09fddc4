/**
 * `profile` on the legacy files of a bank's first day (`;`, decimal commas, windows-1251, dates
 * in several shapes, 20-digit account numbers), read through the csv: reader, no service needed:
 * - slashed dates beside dotted ones, every slashed day <= 12: nothing settles dd/MM against
 *   MM/dd, so the column is AMBIGUOUS and both formats are suggested (it said "other values settle
 *   the column's format" and suggested dd/MM/yyyy alone: 03/04/2026 silently read as 3 April);
 * - a 20-digit account number is a string (it was suggested as decimal(20, 0): normalize then
 *   wrote 00017810000000000002 as 17810000000000002);
 * - records that cannot be read, and a source without records, are said in `notes`, with the
 *   encoding= to give (a windows-1251 file read as UTF-8 profiled one record of six, silently).
 */
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import iconv from 'iconv-lite'
import {describe, expect, it, onTestFinished} from 'vitest'
import {parseFieldSpec} from '../../src/config/spec.js'
import {createNormalizer} from '../../src/normalize/record.js'
import {profileSource} from '../../src/profile/profile.js'
import {parse} from 'yaml'

function file(name: string, content: string | Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'cutover-profile-first-hour-'))
  onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
  const path = join(dir, name)
  writeFileSync(path, content)
  return path
}

describe('profile: a bank file on day one', () => {
  it('dotted dates beside slashed ones no value settles: AMBIGUOUS, both orders suggested, so 03/04/2026 is rejected, not read as 3 April', async () => {
    const csv = file('d.csv', 'id;d\r\n1;20.11.2026\r\n2;21.11.2026\r\n3;22.11.2026\r\n4;03/04/2026\r\n5;05/06/2026\r\n')
    const r = await profileSource({uri: `csv:${csv}?delimiter=;`})
    const d = r.columns.find((c) => c.name === 'd')!
    expect(d.inferred_type).toBe('date')
    expect(d.ambiguous).toBe(true)
    expect(d.ambiguity_note).toMatch(/"dd\/MM\/yyyy" and "MM\/dd\/yyyy".*e\.g\. 03\/04\/2026.*nothing settles/)
    const fields = (parse(r.suggested_fields) as {fields: Record<string, {formats: string[]}>}).fields
    expect(fields.d!.formats).toEqual(['dd.MM.yyyy', 'dd/MM/yyyy', 'MM/dd/yyyy'])
    // the suggested fields, as normalize reads them: the dotted dates, and the slashed ones rejected
    const normalize = createNormalizer({d: parseFieldSpec('d', fields.d as never)})
    const read = (v: string) => normalize({ok: true, fields: {d: v}, position: {scheme: 'csv', source: csv}})
    expect(read('20.11.2026')).toMatchObject({ok: true, record: {d: '2026-11-20'}})
    expect(read('03/04/2026')).toMatchObject({ok: false, rejections: [{code: 'AMBIGUOUS_DATE', field: 'd'}]})

    // one value only dd/MM reads (25/06) settles it: dd/MM/yyyy alone, as before
    const settled = file('s.csv', 'id;d\r\n1;20.11.2026\r\n2;03/04/2026\r\n3;25/06/2026\r\n')
    const s = (await profileSource({uri: `csv:${settled}?delimiter=;`})).columns.find((c) => c.name === 'd')!
    expect(s.ambiguous).toBe(false)
    expect(s.ambiguity_note).toMatch(/settle the column's format/)
  })

  it('a 20-digit account number (one with leading zeros) is a string, kept as written', async () => {
    const csv = file('a.csv', 'acct;amt\r\n40817810000000000001;1,00\r\n00017810000000000002;2,00\r\n40817810000000000003;1 234,50\r\n')
    const r = await profileSource({uri: `csv:${csv}?delimiter=;`})
    const acct = r.columns.find((c) => c.name === 'acct')!
    expect(acct.inferred_type).toBe('string')
    expect(acct.min).toBeUndefined()
    expect(acct.examples).toContain('00017810000000000002')
    const fields = (parse(r.suggested_fields) as {fields: Record<string, Record<string, unknown>>}).fields
    expect(fields.acct).toMatchObject({type: 'string', max_length: 20})
    // the amounts stay decimals, exact
    expect(r.columns.find((c) => c.name === 'amt')).toMatchObject({inferred_type: 'decimal', scale: 2, min: '1.00', max: '1234.50'})
  })

  it('a windows-1251 file read without encoding=: the unreadable records are a note, with the URI that reads them', async () => {
    const csv = file('w.csv', iconv.encode('id;payer;amt\r\n1;ООО Ромашка;1,50\r\n2;;2,00\r\n3;ИП Иванов;3,00\r\n', 'windows-1251'))
    const r = await profileSource({uri: `csv:${csv}?delimiter=;`})
    expect(r.rows).toBe(3)
    expect(r.errors).toMatchObject([{code: 'DECODE_ERROR', count: 2}])
    expect(r.notes).toEqual([
      '2 of 3 records could not be read (see errors): the columns describe only the 1 that could',
      `2 record(s) hold bytes that are not UTF-8: if the source was written in another encoding, give it, e.g. csv:${csv}?delimiter=;&encoding=windows-1251 (or encoding=ibm866, latin1)`,
    ])
    // with it, every record is read, and nothing to note
    const ok = await profileSource({uri: `csv:${csv}?delimiter=;&encoding=windows-1251`})
    expect(ok.errors).toEqual([])
    expect(ok.notes).toEqual([])
    expect(ok.columns.find((c) => c.name === 'payer')!.examples).toEqual(['ООО Ромашка', 'ИП Иванов'])
  })

  it('an empty file and a header alone: a note and no `fields: {}` to paste', async () => {
    for (const content of ['', 'id;amt\r\n']) {
      const r = await profileSource({uri: `csv:${file('e.csv', content)}?delimiter=;`})
      expect(r.rows).toBe(0)
      expect(r.columns).toEqual([])
      expect(r.suggested_fields).toBe('')
      expect(r.notes).toEqual([expect.stringMatching(/^the source has no records/)])
    }
  })
})

describe('profile: local date-times without --timezone', () => {
  it('says UTC is only a default, beside the suggestion; not with --timezone, nor for epoch values', async () => {
    const csv = file('t.csv', 'id;ts;ms\r\n1;20.11.2026 10:00:00;1763622000000\r\n2;21.11.2026 23:59:59;1763708399000\r\n')
    const r = await profileSource({uri: `csv:${csv}?delimiter=;`})
    expect(r.columns.find((c) => c.name === 'ts')!.inferred_type).toBe('timestamp')
    const said = r.suggested_fields.split('\n').filter((l) => l.startsWith('#'))
    expect(said).toEqual([expect.stringMatching(/^# ts: timezone UTC only because profile had no --timezone: set the zone/)])
    expect((parse(r.suggested_fields) as {fields: Record<string, {timezone?: string}>}).fields.ts!.timezone).toBe('UTC')

    const moscow = await profileSource({uri: `csv:${csv}?delimiter=;`, timezone: 'Europe/Moscow'})
    expect(moscow.suggested_fields).not.toContain('# ts:')
    expect((parse(moscow.suggested_fields) as {fields: Record<string, {timezone?: string}>}).fields.ts!.timezone).toBe('Europe/Moscow')
  })
})
