/**
 * `cutover profile` on a csv: file with a record larger than max_record_bytes (16 MiB by default):
 * a broken line or a huge field is counted as RECORD_TOO_LARGE, with the lines and bytes it spans,
 * and the records after it are profiled (exit 0), without reading it into memory. A quote never
 * closed, which leaves nothing after it to read, is exit 2 (SPEC_INVALID) naming the line where
 * the quote opened, as `normalize` stops on the same file. Within max_record_bytes the line where a
 * quote opens that never closes is one unreadable record, and the lines after it are profiled.
 */
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {runCli} from '../helpers.js'

const tmp = () => {
  const dir = mkdtempSync(join(tmpdir(), 'cutover-profile-big-'))
  onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
  return dir
}

const HEADER = 'id,amount,memo\n'
const good = (i: number) => `T${String(i).padStart(5, '0')},${i}.50,memo ${i}\n`
const goods = (from: number, to: number) => Array.from({length: to - from + 1}, (_, k) => good(from + k)).join('')
const column = (json: any, name: string) => json.columns.find((c: {name: string}) => c.name === name)

const SPEC = 'version: 1\nname: p\nsource: { topic: t, group: g }\nfields:\n  id: { type: string, required: true }\n  amount: { type: decimal, scale: 2 }\n  memo: { type: string }\nkey: id\nsinks: [{ table: t }]\ndlq: { topic: t.dlq }\n'

describe('cutover profile: a record larger than max_record_bytes', () => {
  it('a 17 MiB quoted field (the default 16 MiB limit) is counted, with its lines and bytes, and the records after it are profiled', async () => {
    const dir = tmp()
    const before = HEADER + goods(1, 20)
    const monster = `T99999,1.00,"${'y'.repeat(17 * 1024 * 1024)}"\n`
    writeFileSync(join(dir, 'big.csv'), before + monster + goods(21, 40))
    const r = await runCli(['profile', 'csv:big.csv', '--json'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.rows).toBe(41)
    const from = before.length
    const to = from + monster.length
    expect(r.json.errors).toEqual([
      {
        code: 'RECORD_TOO_LARGE',
        count: 1,
        examples: [
          `big.csv:22: record is larger than 16777216 bytes (max_record_bytes): lines 22 to 22, bytes ${from} to ${to} of the file, skipped; read on from line 23; its dead letter holds its first 65536 bytes, from line 22`,
        ],
      },
    ])
    expect(r.json.notes).toEqual([
      '1 of 41 records could not be read (see errors): the columns describe only the 40 that could',
      expect.stringContaining('1 record(s) larger than max_record_bytes (16777216 bytes) were skipped without reading them into memory, and the profile read on after each'),
    ])
    // the 20 records after it are there: 40 distinct keys, amounts up to 40.50
    expect(column(r.json, 'id')).toMatchObject({count: 40, distinct: 40, inferred_type: 'string'})
    expect(column(r.json, 'amount')).toMatchObject({count: 40, inferred_type: 'decimal', min: '1.50', max: '40.50'})
  })

  it('a broken line and a huge field under max_record_bytes=: both counted, the lines after each right; normalize still stops at the first', async () => {
    const dir = tmp()
    const text = HEADER + goods(1, 2) + `T90001,1.00,${'z'.repeat(3000)}\n` + goods(3, 4) + `T90002,2.00,"${'q'.repeat(1500)}\n${'w'.repeat(1500)}"\n` + goods(5, 6) + 'T00007,7.50\n'
    writeFileSync(join(dir, 'two.csv'), text)
    const uri = 'csv:two.csv?max_record_bytes=1000'
    const r = await runCli(['profile', uri, '--json'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.rows).toBe(9)
    const [tooLarge, schema] = r.json.errors
    expect(tooLarge.code).toBe('RECORD_TOO_LARGE')
    expect(tooLarge.count).toBe(2)
    expect(tooLarge.examples[0]).toMatch(/^two\.csv:4: record is larger than 1000 bytes \(max_record_bytes\): lines 4 to 4, bytes \d+ to \d+ of the file, skipped; read on from line 5/)
    expect(tooLarge.examples[1]).toMatch(/^two\.csv:7: record is larger than 1000 bytes \(max_record_bytes\): lines 7 to 8, bytes \d+ to \d+ of the file, skipped; read on from line 9/)
    // a record after both is placed on its own line
    expect(schema).toEqual({code: 'SCHEMA_VIOLATION', count: 1, examples: ['two.csv:11: expected 3 fields (id,amount,memo), got 2']})
    expect(r.json.notes[1]).toContain('2 record(s) larger than max_record_bytes (1000 bytes) were skipped')
    expect(column(r.json, 'id')).toMatchObject({count: 6, distinct: 6})

    // normalize reads as it did: it stops there (exit 2), its output left as it was
    writeFileSync(join(dir, 'spec.yaml'), SPEC)
    const n = await runCli(['normalize', uri, '--spec', 'spec.yaml', '--out', 'out.ndjson', '--json'], {cwd: dir})
    expect(n.code, n.stderr).toBe(2)
    expect(n.json.error).toMatchObject({code: 'SPEC_INVALID', line: 4, message: 'two.csv:4: record larger than 1000 bytes; the rest of the file cannot be split into records'})
  })

  it('a quote never closed near the top of a 100,000-line file: exit 2 naming the line and byte where it opened, as normalize stops', async () => {
    const dir = tmp()
    const head = HEADER + good(1)
    writeFileSync(join(dir, 'runaway.csv'), head + 'T00002,2.50,"a memo whose quote never closes\n' + goods(3, 100_000))
    const uri = 'csv:runaway.csv?max_record_bytes=65536'
    const r = await runCli(['profile', uri, '--json'], {cwd: dir})
    expect(r.code, r.stdout).toBe(2)
    const quoteAt = head.length + 'T00002,2.50,'.length
    expect(r.json.error).toEqual({
      code: 'SPEC_INVALID',
      message: `runaway.csv:3: a quote opened on line 3 (byte ${quoteAt}) is never closed: from line 3 to the end of the file (line 100001) nothing can be split into records`,
      hint: 'close the quote on line 3 (a quote inside a quoted field is written twice: ""); raising max_record_bytes would not help',
      retriable: false,
      file: 'runaway.csv',
      line: 3,
      quote_line: 3,
      byte_offset: quoteAt,
      record_line: 3,
      last_line: 100_001,
    })
    // without --json: the error, and nothing that reads as a profile
    const human = await runCli(['profile', uri], {cwd: dir})
    expect(human.code).toBe(2)
    expect(human.stderr).toContain('a quote opened on line 3 (byte')
    expect(human.stdout).not.toContain('Suggested fields')

    writeFileSync(join(dir, 'spec.yaml'), SPEC)
    const n = await runCli(['normalize', uri, '--spec', 'spec.yaml', '--out', 'out.ndjson', '--json'], {cwd: dir})
    expect(n.code).toBe(2)
    expect(n.json.error).toMatchObject({code: 'SPEC_INVALID', line: 3})
  })

  it('a quote never closed within max_record_bytes: exit 0 as normalize, its line unreadable and the lines after it profiled', async () => {
    const dir = tmp()
    const before = HEADER + goods(1, 3)
    writeFileSync(join(dir, 'open.csv'), before + 'T00004,4.50,"never closed\n' + goods(5, 500))
    const r = await runCli(['profile', 'csv:open.csv', '--json'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.rows).toBe(500)
    const quoteAt = before.length + 'T00004,4.50,'.length
    expect(r.json.errors).toEqual([
      {
        code: 'DECODE_ERROR',
        count: 1,
        examples: [`open.csv:5: malformed quote: the file ends inside a quoted field: a quote opened on line 5 (byte ${quoteAt}) is never closed; this record is line 5; the lines after it were read on as records, from line 6`],
      },
    ])
    expect(column(r.json, 'id')).toMatchObject({count: 499, distinct: 499})
    expect(r.json.notes).toContain('1 of 500 records could not be read (see errors): the columns describe only the 499 that could')
    expect(r.json.notes.join('\n')).not.toContain('everything from line')
  })
})
