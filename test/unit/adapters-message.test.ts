import {join} from 'node:path'
import {readFileSync} from 'node:fs'
import {describe, expect, it} from 'vitest'
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

  it('decodes one copybook record per message', () => {
    const dat = readFileSync(join(ROOT, 'fixtures/legacy/TXN.DAT'))
    const d = fixedMessageDecoder({copybook: join(ROOT, 'fixtures/legacy/txn.cpy'), encoding: 'cp037'})
    expect(d(dat.subarray(0, 100))).toMatchObject({ok: true, fields: {txn_id: 'M000000001', amount: '1234.56', txn_ts: '20261120091500'}})
    expect(d(dat.subarray(500, 600))).toMatchObject({ok: false, code: 'DECODE_ERROR', field: 'amount'})
    expect(d(dat.subarray(0, 99))).toMatchObject({ok: false, code: 'SCHEMA_VIOLATION', message: 'the value is 99 bytes, the copybook needs 100'})
  })
})
