import {join} from 'node:path'
import {readFileSync} from 'node:fs'
import {describe, expect, it} from 'vitest'
import {parseCopybook} from '../../legacy-adapters/copybook.js'
import {csvMessageDecoder, fixedMessageDecoder} from '../../legacy-adapters/message.js'
import {encodeString} from '../../src/normalize/encoding.js'
import {ROOT} from '../helpers.js'

describe('per-message decoders (stream run, source.format csv | fixed)', () => {
  it('decodes one CSV line per message', () => {
    const d = csvMessageDecoder({columns: ['id', 'amt', 'merchant'], delimiter: ';', encoding: 'windows-1251'})
    expect(d(encodeString('T1;1 234,56;"ООО ""Ромашка""; филиал"\r\n', 'windows-1251'))).toEqual({ok: true, fields: {id: 'T1', amt: '1 234,56', merchant: 'ООО "Ромашка"; филиал'}})
    expect(d(encodeString('T1;1', 'windows-1251'))).toMatchObject({ok: false, code: 'SCHEMA_VIOLATION', message: 'expected 3 fields (id;amt;merchant), got 2'})
    expect(d(encodeString('T1;1;a\nT2;2;b', 'windows-1251'))).toMatchObject({ok: false, code: 'SCHEMA_VIOLATION', message: expect.stringContaining('2 CSV lines')})
    expect(d(Buffer.from(''))).toMatchObject({ok: false, code: 'SCHEMA_VIOLATION'})
    expect(d(encodeString('T1;"bad"x;c', 'windows-1251'))).toMatchObject({ok: false, code: 'DECODE_ERROR'})
    const u = csvMessageDecoder({columns: ['a', 'b']})
    expect(u(Buffer.from([0x61, 0x2c, 0xff]))).toMatchObject({ok: false, code: 'DECODE_ERROR', message: expect.stringContaining('utf-8')})
  })

  it('names the field that holds a byte with no character in the encoding (windows-1251 0x98), as the file readers do', () => {
    const csv = csvMessageDecoder({columns: ['id', 'name', 'amt'], delimiter: ';', encoding: 'windows-1251'})
    const line = Buffer.concat([encodeString('T1;', 'windows-1251'), Buffer.from([0xc0, 0x98, 0xc1]), encodeString(';1,00', 'windows-1251')])
    expect(csv(line)).toEqual({
      ok: false,
      code: 'DECODE_ERROR',
      field: 'name',
      message: 'field name holds bytes that are not valid windows-1251: no character in windows-1251 for byte 0x98 at offset 4',
    })
    // inside a quoted field too
    expect(csv(Buffer.concat([encodeString('T1;1,00;"a;', 'windows-1251'), Buffer.from([0x98]), Buffer.from('"')]))).toMatchObject({ok: false, code: 'DECODE_ERROR', field: 'amt'})
    // a line that is wrong in other ways too: still a DECODE_ERROR, without a field
    const broken = csv(Buffer.concat([Buffer.from('T1;'), Buffer.from([0x98])]))
    expect(broken).toMatchObject({ok: false, code: 'DECODE_ERROR', message: expect.stringContaining('byte 0x98')})
    expect(broken).not.toHaveProperty('field')
    // U+FFFD in valid UTF-8 is a character
    expect(csvMessageDecoder({columns: ['a', 'b']})(Buffer.from('x,\uFFFD', 'utf8'))).toEqual({ok: true, fields: {a: 'x', b: '\uFFFD'}})

    const fixed = fixedMessageDecoder({copybook: parseCopybook('01 R.\n  05 ID PIC X(2).\n  05 NAME PIC X(6).\n'), encoding: 'windows-1251'})
    expect(fixed(Buffer.from([0x41, 0x31, 0xc0, 0x98, 0xc1, 0x20, 0x20, 0x20]))).toEqual({
      ok: false,
      code: 'DECODE_ERROR',
      field: 'name',
      message: 'field name (NAME PIC X(6)): no character in windows-1251 for byte 0x98',
    })
    expect(fixed(Buffer.from([0x41, 0x31, 0xc0, 0xc1, 0x20, 0x20, 0x20, 0x20]))).toEqual({ok: true, fields: {id: 'A1', name: 'АБ'}})
  })

  it('decodes one copybook record per message', () => {
    const dat = readFileSync(join(ROOT, 'fixtures/legacy/TXN.DAT'))
    const d = fixedMessageDecoder({copybook: join(ROOT, 'fixtures/legacy/txn.cpy'), encoding: 'cp037'})
    expect(d(dat.subarray(0, 100))).toMatchObject({ok: true, fields: {txn_id: 'M000000001', amount: '1234.56', txn_ts: '20261120091500'}})
    expect(d(dat.subarray(500, 600))).toMatchObject({ok: false, code: 'DECODE_ERROR', field: 'amount'})
    expect(d(dat.subarray(0, 99))).toMatchObject({ok: false, code: 'SCHEMA_VIOLATION', message: 'the value is 99 bytes, the copybook needs 100'})
  })

  it('refuses a fixed message holding more than one record, and reads one followed by padding only', () => {
    const dat = readFileSync(join(ROOT, 'fixtures/legacy/TXN.DAT'))
    const d = fixedMessageDecoder({copybook: join(ROOT, 'fixtures/legacy/txn.cpy'), encoding: 'cp037'})
    // two records in one message: the second was dropped unseen (read 1, written 1)
    expect(d(dat.subarray(0, 200))).toEqual({
      ok: false,
      code: 'SCHEMA_VIOLATION',
      message: `the value is 200 bytes, the copybook's record is 100: the 100 bytes after it are not padding (byte 100 is 0x${dat[100]!.toString(16).toUpperCase()}); it may hold 2 records, and stream run reads one record per message; if every record is that long, end the copybook with a FILLER for its last bytes`,
    })
    expect(d(Buffer.concat([dat.subarray(0, 100), Buffer.from([0x40, 0x40, 0xc1])]))).toMatchObject({ok: false, code: 'SCHEMA_VIOLATION', message: expect.stringContaining('the 3 bytes after it are not padding (byte 102 is 0xC1); if every')})
    // EBCDIC spaces, low-values and a line end (NL) after the record are padding
    for (const pad of [[0x40, 0x40], [0x00, 0x00, 0x00], [0x15], [0x0d, 0x25]]) {
      expect(d(Buffer.concat([dat.subarray(0, 100), Buffer.from(pad)]))).toMatchObject({ok: true, fields: {txn_id: 'M000000001', amount: '1234.56'}})
    }
    // an ASCII-based encoding pads with 0x20, not 0x40
    const w = fixedMessageDecoder({copybook: parseCopybook('01 R.\n  05 ID PIC X(2).\n'), encoding: 'windows-1251'})
    expect(w(Buffer.from('A1  \r\n'))).toEqual({ok: true, fields: {id: 'A1'}})
    expect(w(Buffer.from('A1@@'))).toMatchObject({ok: false, code: 'SCHEMA_VIOLATION', message: expect.stringContaining('it may hold 2 records')})
  })
})
