/**
 * csv: a record that cannot be read carries its lines as they are in the file (`raw`), for its
 * dead letter (DESIGN.md: dead letters keep the original): as UTF-8 text when every byte is a
 * character of the file's encoding (deadLetterValue), else the file's bytes, the bad one included. Was: a DECODE_ERROR (malformed
 * quote, bytes invalid in the encoding, a quote never closed) and RECORD_TOO_LARGE had no raw (a
 * null dead letter, only the position left), and a ragged row's raw was its fields re-joined as
 * UTF-8 (windows-1251 bytes re-encoded, quoting rewritten).
 */
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'
import {deadLetterValue, parseCsvChunks, TOO_LARGE_KEPT_BYTES, type CsvOptions} from '../../legacy-adapters/csv.js'
import type {RawRecord} from '../../legacy-adapters/types.js'
import {encodeString, type SupportedEncoding} from '../../src/normalize/encoding.js'

async function parse(bytes: Buffer, size: number, opts: Partial<CsvOptions> = {}): Promise<{records: RawRecord[]; error?: unknown}> {
  async function* chunks() {
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size)
  }
  const o: CsvOptions = {source: 't.csv', delimiter: ';', quote: '"', encoding: 'utf-8', header: true, skipEmptyLines: true, maxRecordBytes: 1 << 20, ...opts}
  const records: RawRecord[] = []
  try {
    for await (const r of parseCsvChunks(chunks(), o)) records.push(r)
  } catch (error) {
    return {records, error}
  }
  return {records}
}

const SIZES = [1, 2, 3, 5, 7, 64, 1 << 16]
const cp1251 = (s: string) => encodeString(s, 'windows-1251')
const hex = (b: Buffer | undefined) => b?.toString('hex')
const fromCp1251 = (b: Buffer) => deadLetterValue(b, 'windows-1251')

describe('csv: a record that cannot be read keeps its bytes as they are in the file', () => {
  it('windows-1251: an invalid byte, a malformed quote (on one line and across a CRLF inside quotes), a ragged row; every chunking', async () => {
    const eol = Buffer.from('\r\n')
    const lines: Buffer[] = [
      cp1251('id;acct;amt;name'), // 1
      cp1251('T1;A1;10,50;Ёлка'), // 2
      Buffer.concat([cp1251('T2;A2;11,00;Щ'), Buffer.from([0x98]), cp1251('ука')]), // 3: 0x98 has no character in windows-1251
      cp1251('T3;A3;12,00;"Щу"ка'), // 4: a closing quote followed by other characters
      cp1251('T4;A4;13,00;"две'), // 5: a quoted line break (CRLF) ...
      cp1251('строки"'), // 6
      cp1251('T5;A5;14,00;"Юла'), // 7: a quoted CRLF, then a malformed quote
      cp1251('и"x'), // 8
      cp1251('T6;A6;15,00'), // 9: ragged
      cp1251(''), // 10: blank
      cp1251('T7;A7;16,00;"Ёж"'), // 11
      cp1251('T8;A8;17,00;"ООО "Ёж""'), // 12: a malformed quote, then a quote inside the (now unquoted) field: one error
      cp1251('T9;A9;18,00;Ёж'), // 13
    ]
    const file = Buffer.concat(lines.flatMap((l) => [l, eol]))
    const lineBytes = (from: number, to: number) => Buffer.concat(lines.slice(from - 1, to).flatMap((l, i, a) => (i < a.length - 1 ? [l, eol] : [l])))
    for (const size of SIZES) {
      const {records, error} = await parse(file, size, {encoding: 'windows-1251'})
      expect(error).toBeUndefined()
      expect(records.map((r) => `${r.ok ? r.fields.id : r.code}@${r.position.line}#${r.position.record}`), `chunks of ${size}`).toEqual([
        'T1@2#1',
        'DECODE_ERROR@3#2',
        'DECODE_ERROR@4#3',
        'T4@5#4',
        'DECODE_ERROR@7#5',
        'SCHEMA_VIOLATION@9#6',
        'T7@11#7',
        'DECODE_ERROR@12#8',
        'T9@13#9',
      ])
      const bad = records.filter((r) => !r.ok)
      expect(bad.map((r) => hex(r.raw)), `chunks of ${size}`).toEqual([hex(lineBytes(3, 3)), hex(lineBytes(4, 4)), hex(lineBytes(7, 8)), hex(lineBytes(9, 9)), hex(lineBytes(12, 12))].map((h) => hex(fromCp1251(Buffer.from(h!, 'hex')))))
      // a line holding a byte that is no character of windows-1251: the file's bytes, 0x98 as it was
      expect(hex(bad[0]!.raw)).toBe(hex(lineBytes(3, 3)))
      expect(bad[0]!.raw!.includes(Buffer.from([0x98]))).toBe(true)
      // the others as UTF-8 text, the stray quote as it was
      expect(bad[1]!.raw!.toString('utf8')).toBe('T3;A3;12,00;"Щу"ка')
      expect(bad[0]).toMatchObject({field: 'name', message: 't.csv:3: field name holds bytes that are not valid windows-1251'})
      expect(bad[2]!.message).toBe('t.csv:7: malformed quote: a closing quote followed by other characters (lines 7 to 8 are this one record: a quoted field spans them)')
    }
  })

  it('UTF-8 with LF line ends, a BOM and no header: the bad first line without the BOM, and an invalid byte', async () => {
    const file = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('1,"a"b\n2,ok\n3,x'), Buffer.from([0xff]), Buffer.from('y\n4,"z"\n')])
    for (const size of SIZES) {
      const {records} = await parse(file, size, {delimiter: ',', header: false, columns: ['id', 'v']})
      expect(records.map((r) => (r.ok ? r.fields.v : `${r.code}@${r.position.line}`))).toEqual(['DECODE_ERROR@1', 'ok', 'DECODE_ERROR@3', 'z'])
      expect(records[0]!.raw?.toString('latin1')).toBe('1,"a"b')
      expect(hex(records[2]!.raw)).toBe(hex(Buffer.concat([Buffer.from('3,x'), Buffer.from([0xff]), Buffer.from('y')])))
    }
  })

  it('EBCDIC (cp037) lines ending in NL: a ragged row keeps its line, as UTF-8 text', async () => {
    const enc: SupportedEncoding = 'cp037'
    const line = (t: string) => Buffer.concat([encodeString(t, enc), Buffer.from([0x15])])
    const file = Buffer.concat([line('name;amt'), line('ABC;12,50'), line('DEF'), line('GHI;1,00')])
    for (const size of SIZES) {
      const {records} = await parse(file, size, {encoding: enc})
      expect(records.map((r) => (r.ok ? r.fields.name : `${r.code}@${r.position.line}`))).toEqual(['ABC', 'SCHEMA_VIOLATION@3', 'GHI'])
      expect(records[1]!.raw!.toString('utf8')).toBe('DEF')
    }
  })

  it('a quote never closed: the record up to the line where it opened, and the lines after it read on as records (was: the rest of the file as one record)', async () => {
    // (a quote after it would have closed it: only doubled ones, which are text inside quotes and literal outside)
    const file = cp1251('a;b\n1;2\n3;"открыто\n4;5\r\n\n6;шесть ""x""\n')
    for (const size of SIZES) {
      const {records, error} = await parse(file, size, {encoding: 'windows-1251'})
      expect(error).toBeUndefined()
      expect(records.map((r) => (r.ok ? `${r.fields.b}@${r.position.line}#${r.position.record}` : `${r.code}@${r.position.line}#${r.position.record}`))).toEqual(['2@2#1', 'DECODE_ERROR@3#2', '5@4#3', 'шесть ""x""@6#4'])
      expect(records[1]!.raw!.toString('utf8')).toBe('3;"открыто')
      expect(records[1]!.ok || records[1]!.message).toBe(
        't.csv:3: malformed quote: the file ends inside a quoted field: a quote opened on line 3 (byte 10) is never closed; this record is line 3; the lines after it were read on as records, from line 4',
      )
    }
    // a record whose quoted field spans lines before the quote that never closes, on its last line, and a malformed closing quote before it
    const two = Buffer.from('a;b\n1;"x\ny" "z";"open\n7;8\n')
    for (const size of SIZES) {
      const {records} = await parse(two, size)
      expect(records.map((r) => (r.ok ? `${r.fields.b}@${r.position.line}` : `${r.code}@${r.position.line}`))).toEqual(['DECODE_ERROR@2', '8@4'])
      expect(records[0]!.raw!.toString('utf8')).toBe('1;"x\ny" "z";"open')
      expect(records[0]!.ok || records[0]!.message).toBe(
        't.csv:2: malformed quote: the file ends inside a quoted field: a quote opened on line 3 (byte 16) is never closed (and a closing quote followed by other characters); this record is lines 2 to 3; the lines after it were read on as records, from line 4',
      )
    }
    // the quote on the last line: nothing to read on
    const last = Buffer.from('a;b\n1;2\n3;"open')
    for (const size of SIZES) {
      const {records} = await parse(last, size)
      expect(records.map((r) => (r.ok ? 'ok' : `${r.code}@${r.position.line}`))).toEqual(['ok', 'DECODE_ERROR@3'])
      expect(records[1]!.ok || records[1]!.message).toBe('t.csv:3: malformed quote: the file ends inside a quoted field: a quote opened on line 3 (byte 10) is never closed; this record is line 3')
    }
  })

  it('a stray quote anywhere among records without quotes: only its line is a dead letter, every other record is read as without it', async () => {
    const field = fc.stringMatching(/^[a-zЖж ]{0,6}$/)
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(field, field), {minLength: 1, maxLength: 12}),
        fc.nat(),
        field,
        fc.constantFrom('\n', '\r\n'),
        fc.constantFrom<SupportedEncoding>('utf-8', 'windows-1251'),
        fc.integer({min: 1, max: 40}),
        async (rows, at, stray, eol, encoding, size) => {
          const i = at % (rows.length + 1)
          const lines = rows.map(([a, b]) => `${a};${b}`)
          lines.splice(i, 0, `${stray};"${stray}`)
          const file = encodeString(`a;b${eol}${lines.join(eol)}${eol}`, encoding)
          const {records, error} = await parse(file, size, {encoding})
          expect(error).toBeUndefined()
          const expected = lines.map((l, k) => (k === i ? `DECODE_ERROR@${k + 2}` : `${l.split(';')[1]}@${k + 2}`))
          expect(records.map((r) => (r.ok ? `${r.fields.b}@${r.position.line}` : `${r.code}@${r.position.line}`))).toEqual(expected)
          expect(records[i]!.raw!.toString('utf8')).toBe(`${stray};"${stray}`)
        },
      ),
      {numRuns: 200},
    )
  })

  it('a runaway quote (RECORD_TOO_LARGE): its first bytes from its first line, cut at max_record_bytes and said so; also after another error in that record', async () => {
    for (const head of ['3;"', '3;"a"b;"']) {
      const file = Buffer.concat([cp1251(`a;b\n1;2\n${head}`), cp1251('ж'.repeat(5000)), cp1251('\n4;5\n')])
      const {records, error} = await parse(file, 4096, {encoding: 'windows-1251', maxRecordBytes: 1000})
      expect(error).toMatchObject({code: 'SPEC_INVALID'})
      expect(records.map((r) => (r.ok ? 'ok' : `${r.code}@${r.position.line}`)), head).toEqual(['ok', 'RECORD_TOO_LARGE@3'])
      const big = records[1]!
      // the first 1000 bytes of the file from line 3, as UTF-8 text
      expect(hex(big.raw)).toBe(hex(fromCp1251(file.subarray(8, 1008))))
      expect(big.ok || big.message).toBe('t.csv:3: record is larger than 1000 bytes (a quote never closed?); its dead letter holds its first 1000 bytes, from line 3')
    }
    // the default max_record_bytes (16 MiB) is cut to TOO_LARGE_KEPT_BYTES, under the broker's default message size
    const file = Buffer.concat([Buffer.from('a;b\n1;"'), Buffer.alloc(300 * 1024, 'x')])
    const {records} = await parse(file, 64 * 1024, {maxRecordBytes: 200 * 1024})
    expect(records[0]).toMatchObject({code: 'RECORD_TOO_LARGE'})
    expect(records[0]!.raw).toHaveLength(TOO_LARGE_KEPT_BYTES)
    expect(records[0]!.raw!.subarray(0, 5).toString()).toBe('1;"xx')
  })

  it('a header that cannot be read ends the read (exit 2, file:line), instead of the first record taken for the header', async () => {
    for (const size of [1, 1 << 16]) {
      const {records, error} = await parse(Buffer.from('id,"na"me\n1,a\n2,b\n'), size, {delimiter: ','})
      expect(records).toEqual([])
      expect(error).toMatchObject({code: 'SPEC_INVALID', message: expect.stringContaining('the header cannot be read: malformed quote'), hint: expect.stringContaining('header=false')})
      expect(String(error)).toContain('t.csv:1')
    }
    // a header never closed: the same
    const {records, error} = await parse(Buffer.from('id,"name\n1,a\n'), 4, {delimiter: ','})
    expect(records).toEqual([])
    expect(error).toMatchObject({code: 'SPEC_INVALID', message: expect.stringContaining('the header cannot be read: malformed quote: the file ends inside a quoted field')})
  })

  it('any mix of good and bad records, line ends and chunkings: each bad record has exactly its lines', async () => {
    type Row = {kind: 'ok' | 'quote' | 'byte' | 'ragged'; text: string; multiline: boolean}
    const field = fc.stringMatching(/^[a-zЖж ]{0,6}$/)
    const row: fc.Arbitrary<Row> = fc.oneof(
      fc.tuple(field, field, fc.boolean()).map(([a, b, ml]) => ({kind: 'ok' as const, text: ml ? `${a};"${b}<EOL>${a}"` : `${a};${b}`, multiline: ml})),
      fc.tuple(field, field, fc.boolean()).map(([a, b, ml]) => ({kind: 'quote' as const, text: ml ? `${a};"${b}<EOL>x"${a}y` : `${a};"${b}"z`, multiline: ml})),
      fc.tuple(field, field).map(([a, b]) => ({kind: 'byte' as const, text: `${a};${b}<BAD>`, multiline: false})),
      field.map((a) => ({kind: 'ragged' as const, text: `r${a}`, multiline: false})),
    )
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(row, fc.boolean()), {minLength: 1, maxLength: 12}),
        fc.constantFrom('\n', '\r\n'),
        fc.constantFrom<SupportedEncoding>('utf-8', 'windows-1251'),
        fc.integer({min: 1, max: 40}),
        async (rows, eol, encoding, size) => {
          const bad = encoding === 'utf-8' ? Buffer.from([0xff]) : Buffer.from([0x98])
          const bytesOf = (text: string) => Buffer.concat(text.split('<BAD>').flatMap((part, i) => (i === 0 ? [encodeString(part.replaceAll('<EOL>', eol), encoding)] : [bad, encodeString(part.replaceAll('<EOL>', eol), encoding)])))
          const parts: Buffer[] = [encodeString(`a;b${eol}`, encoding)]
          const expected: {kind: Row['kind']; line: number; raw: string}[] = []
          let line = 2
          for (const [r, blankAfter] of rows) {
            const b = bytesOf(r.text)
            expected.push({kind: r.kind, line, raw: deadLetterValue(b, encoding).toString('hex')})
            parts.push(b, Buffer.from(eol))
            line += r.multiline ? 2 : 1
            if (blankAfter) {
              parts.push(Buffer.from(eol))
              line++
            }
          }
          const {records, error} = await parse(Buffer.concat(parts), size, {encoding})
          expect(error).toBeUndefined()
          expect(records.map((r) => r.position.line)).toEqual(expected.map((e) => e.line))
          const codes = {ok: 'ok', quote: 'DECODE_ERROR', byte: 'DECODE_ERROR', ragged: 'SCHEMA_VIOLATION'}
          expect(records.map((r) => (r.ok ? 'ok' : r.code))).toEqual(expected.map((e) => codes[e.kind]))
          expect(records.map((r) => (r.ok ? undefined : hex(r.raw)))).toEqual(expected.map((e) => (e.kind === 'ok' ? undefined : e.raw)))
        },
      ),
      {numRuns: 300},
    )
  })
})
