/**
 * csv: `resyncTooLarge` (what `profile` reads with): past a record larger than max_record_bytes the
 * reader finds the record's end without holding it and reads on, with the lines of the records
 * after it right; a quote never closed still ends the read, naming the line where it opened.
 * Without the option (normalize, backfill) the read stops at such a record, as before.
 */
import {describe, expect, it} from 'vitest'
import {parseCsvChunks, type CsvOptions} from '../../legacy-adapters/csv.js'
import type {RawRecord} from '../../legacy-adapters/types.js'
import {encodeString} from '../../src/normalize/encoding.js'

const MAX = 1000

/** Reads `bytes` in chunks of `size` bytes; the records read, and the error the read ended with. */
async function readChunked(bytes: Buffer, size: number, opts: Partial<CsvOptions> = {}): Promise<{records: RawRecord[]; error: any}> {
  async function* chunks() {
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size)
  }
  const o: CsvOptions = {source: 't.csv', delimiter: ',', quote: '"', encoding: 'utf-8', header: true, skipEmptyLines: true, maxRecordBytes: MAX, resyncTooLarge: true, ...opts}
  const records: RawRecord[] = []
  try {
    for await (const r of parseCsvChunks(chunks(), o)) records.push(r)
  } catch (e) {
    return {records, error: e}
  }
  return {records, error: undefined}
}

const SIZES = [1, 7, 64, 999, 1 << 18]
const shown = (rs: RawRecord[]) => rs.map((r) => (r.ok ? `${r.position.line}:${r.fields.id}` : `${r.position.line}:${r.code}`))

describe('csv resyncTooLarge: reads on past a record larger than max_record_bytes', () => {
  it('a quoted field too large, with quotes, line breaks and "" in it, that closes: the records after it are read, on their own lines', async () => {
    const big = '"' + 'q'.repeat(600) + '\n' + '""x'.repeat(300) + '\r\n' + 'w'.repeat(400) + '"'
    const text = `id,memo\n1,a\n2,${big}\n3,c\n4,d,extra\n5,e\n`
    const bytes = Buffer.from(text)
    for (const size of SIZES) {
      const {records, error} = await readChunked(bytes, size)
      expect(error, `chunks of ${size}`).toBeUndefined()
      expect(shown(records), `chunks of ${size}`).toEqual(['2:1', '3:RECORD_TOO_LARGE', '6:3', '7:SCHEMA_VIOLATION', '8:5'])
      const start = text.indexOf('2,"')
      const end = text.indexOf('\n3,c') + 1
      expect(records[1]!.ok ? '' : records[1]!.message).toBe(
        `t.csv:3: record is larger than 1000 bytes (max_record_bytes): lines 3 to 5, bytes ${start} to ${end} of the file, skipped; read on from line 6; its dead letter holds its first 1000 bytes, from line 3`,
      )
      expect(records[1]!.position.record).toBe(2)
      expect(records[2]!.position.record).toBe(3)
    }
  })

  it('a line too large without quotes (a broken line), in a CRLF file, at the end of the file without a line end', async () => {
    const mid = Buffer.from(`id,memo\r\n1,a\r\n2,${'z'.repeat(3000)}\r\n3,c\r\n`)
    for (const size of SIZES) {
      const {records, error} = await readChunked(mid, size)
      expect(error).toBeUndefined()
      expect(shown(records), `chunks of ${size}`).toEqual(['2:1', '3:RECORD_TOO_LARGE', '4:3'])
      expect(records[2]!.ok && records[2]!.fields.memo).toBe('c') // no CR left in it
    }
    const last = Buffer.from(`id,memo\n1,a\n2,${'z'.repeat(3000)}`)
    for (const size of SIZES) {
      const {records, error} = await readChunked(last, size)
      expect(error).toBeUndefined()
      expect(shown(records)).toEqual(['2:1', '3:RECORD_TOO_LARGE'])
      expect(records[1]!.ok ? '' : records[1]!.message).toContain(`lines 3 to 3, bytes 12 to ${last.length} of the file, skipped`)
    }
  })

  it('two records too large in a row, and a quote inside an unquoted field, which opens nothing', async () => {
    const text = `id,memo\n1,${'a'.repeat(1500)}\n2,${'b'.repeat(1500)}" 12" pipe\n3,"c"\n`
    for (const size of SIZES) {
      const {records, error} = await readChunked(Buffer.from(text), size)
      expect(error).toBeUndefined()
      expect(shown(records), `chunks of ${size}`).toEqual(['2:RECORD_TOO_LARGE', '3:RECORD_TOO_LARGE', '4:3'])
    }
  })

  it('a windows-1251 file: the bytes skipped are the file own, the text after it read in its encoding', async () => {
    const bytes = Buffer.from(encodeString(`id;memo\n1;Ёлка\n2;"${'Щ'.repeat(1500)}"\n3;Щука\n`, 'windows-1251'))
    for (const size of SIZES) {
      const {records, error} = await readChunked(bytes, size, {encoding: 'windows-1251', delimiter: ';'})
      expect(error).toBeUndefined()
      expect(records.map((r) => (r.ok ? r.fields.memo : r.code))).toEqual(['Ёлка', 'RECORD_TOO_LARGE', 'Щука'])
      expect(records[1]!.ok ? '' : records[1]!.message).toContain('bytes 15 to 1520 of the file')
    }
  })

  it('a quote never closed: the read ends with a SpecError naming the line and byte where the quote opened', async () => {
    const text = `id,memo\n1,a\n2,b\n3,"opened here\n${'4,d\n'.repeat(500)}`
    for (const size of SIZES) {
      const {records, error} = await readChunked(Buffer.from(text), size)
      expect(shown(records), `chunks of ${size}`).toEqual(['2:1', '3:2', '4:RECORD_TOO_LARGE'])
      expect(error).toMatchObject({
        code: 'SPEC_INVALID',
        exitCode: 2,
        message: 't.csv:4: a quote opened on line 4 (byte 18) is never closed: from line 4 to the end of the file (line 504) nothing can be split into records',
        details: {file: 't.csv', line: 4, quote_line: 4, byte_offset: 18, record_line: 4, last_line: 504},
      })
    }
  })

  it('without resyncTooLarge (normalize, backfill) the read stops at the record, as before', async () => {
    const text = `id,memo\n1,a\n2,${'z'.repeat(3000)}\n3,c\n`
    const {records, error} = await readChunked(Buffer.from(text), 64, {resyncTooLarge: false})
    expect(shown(records)).toEqual(['2:1', '3:RECORD_TOO_LARGE'])
    expect(error).toMatchObject({code: 'SPEC_INVALID', message: 't.csv:3: record larger than 1000 bytes; the rest of the file cannot be split into records'})
  })
})
