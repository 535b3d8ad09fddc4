/**
 * csv: a file of a single-byte encoding (encoding=windows-1251, ibm866, latin1, ascii, cp037,
 * cp1047) that starts with a UTF-8 BOM (EF BB BF). Was: the three bytes were decoded as text of
 * that encoding (`п»ї` in windows-1251) at the start of the header's first column, so a spec's
 * `from: id` was missing (the column was `п»їid`), or of the first record's first field with
 * header=false; csv-parse's `bom: true` strips only U+FEFF. Now: when the bytes after the BOM hold
 * non-ASCII and are valid UTF-8, the file is UTF-8 mislabelled by encoding= and is refused
 * (UsageError, exit 2) before any record; else the BOM is dropped, lines and dead letters kept
 * as they are in the file.
 */
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {BOM_SNIFF_BYTES, parseCsvChunks, type CsvOptions} from '../../legacy-adapters/csv.js'
import {openSource} from '../../legacy-adapters/index.js'
import type {RawRecord} from '../../legacy-adapters/types.js'
import {UsageError} from '../../src/errors.js'
import {encodeString, type SupportedEncoding} from '../../src/normalize/encoding.js'

const BOM = Buffer.from([0xef, 0xbb, 0xbf])
const SIZES = [1, 2, 3, 4, 5, 7, 64, 1 << 18]

async function parse(bytes: Buffer, size: number, opts: Partial<CsvOptions> = {}): Promise<{records: RawRecord[]; error?: unknown}> {
  async function* chunks() {
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size)
  }
  const o: CsvOptions = {source: 't.csv', delimiter: ';', quote: '"', encoding: 'windows-1251', header: true, skipEmptyLines: true, maxRecordBytes: 1 << 20, ...opts}
  const records: RawRecord[] = []
  try {
    for await (const r of parseCsvChunks(chunks(), o)) records.push(r)
  } catch (error) {
    return {records, error}
  }
  return {records}
}

const view = (rs: RawRecord[]) => rs.map((r) => (r.ok ? {line: r.position.line, ...r.fields} : `${r.code}@${r.position.line}`))

describe('csv: a UTF-8 BOM before a file of a single-byte encoding', () => {
  it('windows-1251 after the BOM: the header is `id`, not `п»їid`; lines as in the file; every chunking', async () => {
    const file = Buffer.concat([BOM, encodeString('id;name\r\n1;Иван\r\n2;Пётр\r\n', 'windows-1251')])
    for (const size of SIZES) {
      const {records, error} = await parse(file, size)
      expect(error, `chunks of ${size}`).toBeUndefined()
      expect(view(records), `chunks of ${size}`).toEqual([
        {line: 2, id: '1', name: 'Иван'},
        {line: 3, id: '2', name: 'Пётр'},
      ])
    }
  })

  it('header=false: the first record keeps its key, and its dead letter holds its line without the BOM', async () => {
    // line 1 ragged (its dead letter starts at the file's first byte), line 2 read, line 3 a byte with no character (0x98)
    const line1 = encodeString('1;Иван;лишнее', 'windows-1251')
    const line3 = Buffer.concat([encodeString('3;Щ', 'windows-1251'), Buffer.from([0x98])])
    const file = Buffer.concat([BOM, line1, Buffer.from('\n'), encodeString('2;Пётр\n', 'windows-1251'), line3, Buffer.from('\n')])
    for (const size of SIZES) {
      const {records, error} = await parse(file, size, {header: false, columns: ['id', 'name']})
      expect(error).toBeUndefined()
      expect(view(records), `chunks of ${size}`).toEqual(['SCHEMA_VIOLATION@1', {line: 2, id: '2', name: 'Пётр'}, 'DECODE_ERROR@3'])
      expect(records[0]!.raw?.toString('utf8')).toBe('1;Иван;лишнее')
      expect(records[2]!.raw?.equals(line3), 'the bad line as it is in the file').toBe(true)

      const first = await parse(Buffer.concat([BOM, encodeString('1;Иван\n', 'windows-1251')]), size, {header: false, columns: ['id', 'name']})
      expect(view(first.records)).toEqual([{line: 1, id: '1', name: 'Иван'}])
    }
  })

  it('ibm866, latin1, ascii, cp037 and cp1047 after the BOM: read without it', async () => {
    const cases: {encoding: SupportedEncoding; name: string; eol: Buffer}[] = [
      {encoding: 'ibm866', name: 'Иван', eol: Buffer.from('\r\n')},
      {encoding: 'latin1', name: 'José', eol: Buffer.from('\n')},
      {encoding: 'ascii', name: 'Ivan', eol: Buffer.from('\n')},
      {encoding: 'cp037', name: 'JOSÉ', eol: Buffer.from([0x15])},
      {encoding: 'cp1047', name: 'JOSÉ', eol: Buffer.from([0x15])},
    ]
    for (const {encoding, name, eol} of cases) {
      const line = (t: string) => Buffer.concat([encodeString(t, encoding), eol])
      const file = Buffer.concat([BOM, line('id;name'), line(`1;${name}`)])
      for (const size of [1, 3, 1 << 18]) {
        const {records, error} = await parse(file, size, {encoding})
        expect(error, encoding).toBeUndefined()
        expect(view(records), `${encoding}, chunks of ${size}`).toEqual([{line: 2, id: '1', name}])
      }
    }
  })

  it('only ASCII after the BOM (nothing to tell UTF-8 by), a BOM alone, and a file starting with EF BB only', async () => {
    for (const size of SIZES) {
      expect(view((await parse(Buffer.concat([BOM, Buffer.from('id;name\n1;Ivan')]), size)).records)).toEqual([{line: 2, id: '1', name: 'Ivan'}])
      expect(await parse(BOM, size)).toEqual({records: []})
      // not a BOM: EF BB are text (windows-1251 "п»"), as written
      const {records} = await parse(Buffer.concat([Buffer.from([0xef, 0xbb]), Buffer.from('id;name\n1;x\n')]), size)
      expect(records.map((r) => r.ok && Object.keys(r.fields))).toEqual([['п»id', 'name']])
    }
  })

  it('UTF-8 after the BOM (encoding= mislabels it): a UsageError before any record, naming the file, UTF-8, the encoding and the fix', async () => {
    const file = Buffer.concat([BOM, Buffer.from('id;name\r\n1;Иван\r\n2;Пётр\r\n')])
    for (const encoding of ['windows-1251', 'ibm866', 'latin1', 'ascii', 'cp037'] as const) {
      for (const size of SIZES) {
        const {records, error} = await parse(file, size, {encoding})
        expect(records, `${encoding}, chunks of ${size}`).toEqual([])
        expect(error).toBeInstanceOf(UsageError)
        const e = error as UsageError
        expect(e.exitCode).toBe(2)
        expect(e.message).toContain('t.csv: ')
        expect(e.message).toContain(`UTF-8 text after it, not ${encoding}`)
        expect(e.hint).toBe('drop encoding= from the source, or give encoding=utf-8')
      }
    }
  })

  it('decides by the first BOM_SNIFF_BYTES after the BOM: a UTF-8 character cut at their end is UTF-8; ASCII in them: read as encoding= says', async () => {
    const header = 'id;name\n'
    // "И" (D0 98) starting at the last byte of the sample
    const cut = Buffer.concat([BOM, Buffer.from(header), Buffer.from(`1;${'a'.repeat(BOM_SNIFF_BYTES - header.length - 3)}`), Buffer.from('И\n')])
    expect(cut.length).toBe(3 + BOM_SNIFF_BYTES + 2)
    expect((await parse(cut, 1 << 18)).error).toBeInstanceOf(UsageError)
    expect((await parse(cut, 4096)).error).toBeInstanceOf(UsageError)
    // the sample all ASCII: windows-1251 text after it is read as such, its BOM dropped
    const later = Buffer.concat([BOM, Buffer.from(header), Buffer.from(`1;${'a'.repeat(BOM_SNIFF_BYTES)}\n`), encodeString('2;Иван\n', 'windows-1251')])
    const {records, error} = await parse(later, 4096)
    expect(error).toBeUndefined()
    expect(records.map((r) => r.ok && String(r.fields.name).slice(0, 4))).toEqual(['aaaa', 'Иван'])
  })

  it('a file through openSource (the file stream, and the reader normalize and backfill use)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-csv-bom-'))
    writeFileSync(join(dir, 'w.csv'), Buffer.concat([BOM, encodeString('id;name\r\n1;Иван\r\n', 'windows-1251')]))
    writeFileSync(join(dir, 'u.csv'), Buffer.concat([BOM, Buffer.from('id;name\r\n1;Иван\r\n')]))
    const read = async (name: string) => {
      const out: RawRecord[] = []
      for await (const r of openSource(`csv:${join(dir, name)}?delimiter=;&encoding=windows-1251`)) out.push(r)
      return out
    }
    expect(view(await read('w.csv'))).toEqual([{line: 2, id: '1', name: 'Иван'}])
    await expect(read('u.csv')).rejects.toThrow(/u\.csv: starts with a UTF-8 byte order mark \(EF BB BF\) and is UTF-8 text after it, not windows-1251/)
  })
})
