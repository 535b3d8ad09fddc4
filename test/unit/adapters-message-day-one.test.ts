/**
 * The per-message decoders of `stream run` (legacy-adapters/message.ts) on what a bank's legacy
 * producers send on day one, read as the csv: file reader reads the same line, and the start
 * check of a csv or fixed source (runtime/stages/decode.ts checkSourceFormat):
 *
 * - a quote inside an unquoted field (`ООО "Ромашка"`): was a DECODE_ERROR whose message quoted
 *   the field's start (a sensitive value too); the file reader keeps the quote as a character;
 * - an EBCDIC CSV line ending in the z/OS NL (cp037 0x15, cp1047 0x25): was kept as U+0085 at
 *   the end of the last field (written to the sink), and with CR before it two lines;
 * - a UTF-8 BOM before a windows-1251 line: was "п»ї" at the start of the first field (the key);
 *   before UTF-8 text it says the value is UTF-8, never mojibake;
 * - a field whose `from` names no CSV column or copybook field: was null in every record, exit 0.
 */
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {csvMessageDecoder} from '../../legacy-adapters/message.js'
import {parseSpec} from '../../src/config/spec.js'
import {SpecError} from '../../src/errors.js'
import {silentLogger} from '../../src/log.js'
import {encodeString} from '../../src/normalize/encoding.js'
import {checkSourceFormat} from '../../src/runtime/stages/decode.js'
import type {PipelineContext} from '../../src/runtime/types.js'

const bytes = (...parts: (string | number[])[]) => (encoding: Parameters<typeof encodeString>[1]) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? encodeString(p, encoding) : Buffer.from(p))))

describe('csv messages as the csv: file reader reads the line', () => {
  const w1251 = csvMessageDecoder({columns: ['id', 'amt', 'merchant'], delimiter: ';', encoding: 'windows-1251'})
  const line = (s: string) => encodeString(s, 'windows-1251')

  it('a quote inside an unquoted field is a character; a malformed quoted field is still a DECODE_ERROR', () => {
    expect(w1251(line('T1;1,00;ООО "Ромашка"\r\n'))).toEqual({ok: true, fields: {id: 'T1', amt: '1,00', merchant: 'ООО "Ромашка"'}})
    expect(w1251(line('T2;1,00;12" pipe'))).toEqual({ok: true, fields: {id: 'T2', amt: '1,00', merchant: '12" pipe'}})
    // the quote opens nothing: the delimiter after it splits
    expect(w1251(line('T3;x"a;b"'))).toEqual({ok: true, fields: {id: 'T3', amt: 'x"a', merchant: 'b"'}})
    expect(w1251(line('T4;1,00;ООО "Ромашка";'))).toMatchObject({ok: false, code: 'SCHEMA_VIOLATION', message: 'expected 3 fields (id;amt;merchant), got 4'})
    for (const bad of ['T5;"bad"x;c', 'T6;1,00;"a "b"', 'T7;x"a;"b"c"']) {
      expect(w1251(line(bad)), bad).toMatchObject({ok: false, code: 'DECODE_ERROR'})
    }
    // the message never quotes a field's text (the field may be sensitive)
    const card = csvMessageDecoder({columns: ['id', 'pan'], delimiter: ';'})
    const r = card(Buffer.from('T8;4111111111111111"'))
    expect(r).toEqual({ok: true, fields: {id: 'T8', pan: '4111111111111111"'}})
  })

  it('EBCDIC: the z/OS NL at the end of a line is a line end (cp037 0x15, cp1047 0x25)', () => {
    const cases = [
      ['cp037', [0x15]],
      ['cp037', [0x0d, 0x15]],
      ['cp037', [0x0d, 0x25]],
      ['cp1047', [0x25]],
      ['cp1047', [0x0d, 0x25]],
    ] as const
    for (const [encoding, end] of cases) {
      const d = csvMessageDecoder({columns: ['id', 'amt', 'merchant'], delimiter: ';', encoding})
      expect(d(bytes('E1;2,50;CAFE [X]', [...end])(encoding)), `${encoding} ${end.join(' ')}`).toEqual({ok: true, fields: {id: 'E1', amt: '2,50', merchant: 'CAFE [X]'}})
    }
    // inside a quoted field too, as the file reader reads it
    const d = csvMessageDecoder({columns: ['id', 'memo'], delimiter: ';', encoding: 'cp037'})
    expect(d(bytes('E2;"a', [0x15], 'b"', [0x15])('cp037'))).toEqual({ok: true, fields: {id: 'E2', memo: 'a\nb'}})
  })

  it('a UTF-8 BOM before a line in a single-byte encoding: dropped; before UTF-8 text: DECODE_ERROR', () => {
    const bom = [0xef, 0xbb, 0xbf]
    expect(w1251(bytes(bom, 'B1;2,00;x')('windows-1251'))).toEqual({ok: true, fields: {id: 'B1', amt: '2,00', merchant: 'x'}})
    // windows-1251 text after it (not UTF-8): read as windows-1251
    expect(w1251(bytes(bom, 'B2;2,00;Щука')('windows-1251'))).toEqual({ok: true, fields: {id: 'B2', amt: '2,00', merchant: 'Щука'}})
    expect(w1251(Buffer.concat([Buffer.from(bom), Buffer.from('B3;2,00;Щука', 'utf8')]))).toEqual({
      ok: false,
      code: 'DECODE_ERROR',
      message: 'the value starts with a UTF-8 byte order mark (EF BB BF) and is UTF-8 text, not windows-1251 (the source.encoding)',
    })
    const ibm866 = csvMessageDecoder({columns: ['id', 'amt', 'merchant'], delimiter: ';', encoding: 'ibm866'})
    expect(ibm866(bytes(bom, 'B4;2,00;░Ёж')('ibm866'))).toEqual({ok: true, fields: {id: 'B4', amt: '2,00', merchant: '░Ёж'}})
    // utf-8 as before: the BOM is dropped
    expect(csvMessageDecoder({columns: ['id', 'amt', 'merchant'], delimiter: ';'})(Buffer.concat([Buffer.from(bom), Buffer.from('B5;2,00;Щука')]))).toEqual({
      ok: true,
      fields: {id: 'B5', amt: '2,00', merchant: 'Щука'},
    })
  })
})

describe('stream run start: every field reads a column of the csv source or a field of the copybook', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cutover-day-one-'))
  writeFileSync(join(dir, 'rec.cpy'), '       01  REC.\n           05  TXN-ID   PIC X(4).\n           05  AMOUNT   PIC S9(7)V99 COMP-3.\n           05  MERCHANT PIC X(10).\n')
  const check = (source: string, fields: string) => {
    const file = join(dir, 'p.yaml')
    const text = `version: 1\nname: day-one\nsource: ${source}\nfields:\n${fields}key: id\nsinks: [{table: t}]\n`
    writeFileSync(file, text)
    const ctx: PipelineContext = {loaded: parseSpec(text, file), pipeline: 'day-one', schema: 'public', maxRecordBytes: 1 << 20, dedupeRetentionMs: 1, logger: silentLogger}
    try {
      checkSourceFormat(ctx)
      return undefined
    } catch (e) {
      return e as SpecError
    }
  }

  it('csv: a field whose column is not in source.columns is a bad spec (exit 2), naming it and its line', () => {
    const csv = '{topic: t, format: csv, encoding: windows-1251, delimiter: ";", columns: [id, amt, merch]}'
    const e = check(csv, '  id: {type: string, required: true}\n  amount: {from: amt, type: decimal, scale: 2}\n  merchant: {type: string}\n')
    expect(e).toBeInstanceOf(SpecError)
    expect(e!.exitCode).toBe(2)
    expect(e!.message).toContain('source.columns has no column merchant; it has: id, amt, merch')
    expect(e!.message).toMatch(/p\.yaml:7:/)
    expect(check(csv, '  id: {type: string}\n  amount: {from: amt, type: decimal, scale: 2}\n  merchant: {from: merch, type: string}\n')).toBeUndefined()
  })

  it('fixed: a field that is not in the copybook is a bad spec (exit 2)', () => {
    const fixed = '{topic: t, format: fixed, encoding: cp037, copybook: rec.cpy}'
    const e = check(fixed, '  id: {from: txn_id, type: string}\n  amount: {type: decimal, scale: 2}\n  merchant: {from: merchant_name, type: string}\n')
    expect(e?.message).toContain('the copybook rec.cpy has no field merchant_name (field merchant); it has: txn_id, amount, merchant')
    expect(check(fixed, '  id: {from: txn_id, type: string}\n  amount: {type: decimal, scale: 2}\n  merchant: {type: string}\n')).toBeUndefined()
  })
})
