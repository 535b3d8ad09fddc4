import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {openSource} from '../../legacy-adapters/index.js'
import {encodePacked, encodeZoned, parseCopybook} from '../../legacy-adapters/copybook.js'
import type {RawRecord} from '../../legacy-adapters/types.js'
import {decodeBytes, encodeString} from '../../src/normalize/encoding.js'
import {DAT_RECORDS, encodeDatRecord} from '../../fixtures/legacy/make-fixtures.js'
import {ROOT} from '../helpers.js'

const FIX = join(ROOT, 'fixtures/legacy')
const CPY = join(FIX, 'txn.cpy')

async function collect(it: AsyncIterable<RawRecord>): Promise<RawRecord[]> {
  const out: RawRecord[] = []
  for await (const r of it) out.push(r)
  return out
}

function tempFile(name: string, content: Buffer | string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'cutover-fixed-')), name)
  writeFileSync(path, content)
  return path
}

describe('fixed: the EBCDIC fixture TXN.DAT', () => {
  it('gives the expected records, exact decimals, and a DECODE_ERROR naming field and byte for the bad nibble', async () => {
    const rs = await collect(openSource(`fixed:${join(FIX, 'TXN.DAT')}?copybook=${CPY}&encoding=cp037`))
    expect(rs).toHaveLength(8)
    expect(rs[0]).toMatchObject({
      ok: true,
      fields: {
        txn_id: 'M000000001',
        acct_id: 'A0117',
        txn_ts: '20261120091500',
        txn_date: '20261120',
        txn_time: '091500',
        amount: '1234.56',
        currency: 'RUB',
        merchant: 'PYATEROCHKA 12',
        mcc: '5411',
        fee: '12.35',
        status_code: 'A',
        auth_count: '1',
        last_amt_1: '100.00',
        last_amt_2: '250.50',
        last_amt_3: '0.00',
      },
      position: {scheme: 'fixed', record: 1, byteOffset: 0},
    })
    const f = (i: number) => (rs[i]!.ok ? (rs[i] as {fields: Record<string, string>}).fields : {})
    expect(f(1)).toMatchObject({amount: '-15.00', fee: '-0.15', status_code: 'R'})
    expect(f(2).fee).toBe('') // blank zoned field
    expect(f(3)).toMatchObject({amount: '999999999.99', fee: '99999.99', auth_count: '-1', last_amt_1: '-9999999.99'})
    expect(f(7)).toMatchObject({merchant: 'CAFE MUELLER & SOHN', auth_count: '9999', fee: '-12.34'})
    expect(f(6).txn_id).toBe('M000000001') // the duplicate is the normalizer's business
    const bad = rs[5]!
    expect(bad).toMatchObject({ok: false, code: 'DECODE_ERROR', position: {record: 6, byteOffset: 500}})
    // the field, and its bytes (packed decimal 0000 3A30 000C: the nibble A is not a digit)
    expect(bad).toMatchObject({field: 'amount', value: "X'00003A30000C'"})
    if (!bad.ok) {
      expect(bad.message).toContain('field amount')
      expect(bad.message).toContain('byte 534')
      expect(bad.raw).toHaveLength(100)
    }
    // every record keeps its bytes for the dead-letter topic
    expect(rs.every((r) => r.raw?.length === 100)).toBe(true)
    // the raw bytes are EBCDIC, not ASCII
    expect(rs[0]!.raw!.subarray(0, 10)).toEqual(encodeString('M000000001', 'cp037'))
  })

  it('reads the same records from an RDW file, from cp1047, and with newline-terminated records', async () => {
    const cb = parseCopybook(readFileSync(CPY, 'utf8'))
    const recs = DAT_RECORDS.slice(0, 3).map((r) => encodeDatRecord(cb, r))
    const expected = (await collect(openSource(`fixed:${join(FIX, 'TXN.DAT')}?copybook=${CPY}`))).slice(0, 3).map((r) => r.ok && r.fields)

    const rdw = Buffer.concat(recs.map((r) => Buffer.concat([Buffer.from([0, r.length + 4, 0, 0]), r])))
    const viaRdw = await collect(openSource(`fixed:${tempFile('rdw.dat', rdw)}?copybook=${CPY}&rdw=true`))
    expect(viaRdw.map((r) => r.ok && r.fields)).toEqual(expected)
    expect(viaRdw.map((r) => r.position.byteOffset)).toEqual([4, 108, 212])

    const withNl = Buffer.concat(recs.map((r) => Buffer.concat([r, Buffer.from([0x0d, 0x25])])))
    const viaNl = await collect(openSource(`fixed:${tempFile('nl.dat', withNl)}?copybook=${CPY}&record_length=102`))
    expect(viaNl.map((r) => r.ok && r.fields)).toEqual(expected)

    // cp037 and cp1047 differ on a few characters only, e.g. [ ] ^; text fields decode by the given page
    const text = 'A[B]C^'
    const cpy1 = tempFile('one.cpy', '01 R.\n  05 T PIC X(6).\n  05 N PIC S9(3)V9 COMP-3.\n')
    for (const enc of ['cp037', 'cp1047'] as const) {
      const file = tempFile(`${enc}.dat`, Buffer.concat([encodeString(text, enc), encodePacked('-12.5', 4, 1)]))
      const rs = await collect(openSource(`fixed:${file}?copybook=${cpy1}&encoding=${enc}`))
      expect(rs.map((r) => r.ok && r.fields)).toEqual([{t: text, n: '-12.5'}])
    }
    expect(decodeBytes(encodeString(text, 'cp037'), 'cp1047')).not.toBe(text)
  })

  it('reads ASCII fixed-width files with ASCII overpunch', async () => {
    const cpy = tempFile('a.cpy', '01 R.\n  05 ID PIC X(4).\n  05 AMT PIC S9(5)V99.\n  05 QTY PIC 9(3).\n')
    const body = Buffer.concat([Buffer.from('AB  '), encodeZoned('-123.45', 7, 2, {charset: 'ascii'}), Buffer.from('007'), Buffer.from('CD  000001{ 42')])
    const rs = await collect(openSource(`fixed:${tempFile('a.dat', body)}?copybook=${cpy}&encoding=ascii`))
    expect(rs[0]).toMatchObject({ok: true, fields: {id: 'AB', amt: '-123.45', qty: '007'}})
    // ' 42' is not a number: a DECODE_ERROR naming the field and the byte offset in the file
    expect(rs[1]).toMatchObject({ok: false, code: 'DECODE_ERROR', position: {record: 2, byteOffset: 14}})
    if (!rs[1]!.ok) expect(rs[1]!.message).toBe(`${rs[1]!.position.source} record 2, byte 25: field qty (QTY PIC 9(3) zoned): bad zoned-decimal byte 0x20`)
  })

  it('gives a DECODE_ERROR for a value its PIC cannot hold: a negative COMP-3 or zoned sign in an unsigned field, a COMP-3 pad nibble that is a digit', async () => {
    const cpy = tempFile('u.cpy', '01 R.\n  05 AMT PIC 9(5)V99 COMP-3.\n  05 FEE PIC S9(4)V99 COMP-3.\n  05 QTY PIC 9(3).\n')
    const rec = (amt: number[], fee: number[], qty: number[]) => Buffer.from([...amt, ...fee, ...qty])
    const body = Buffer.concat([
      rec([0x00, 0x12, 0x34, 0x5f], [0x01, 0x23, 0x45, 0x6d], [0xf0, 0xf0, 0xf7]), // fine
      rec([0x00, 0x12, 0x34, 0x5d], [0x01, 0x23, 0x45, 0x6c], [0xf0, 0xf0, 0xf7]), // AMT negative
      rec([0x00, 0x12, 0x34, 0x5f], [0x91, 0x23, 0x45, 0x6c], [0xf0, 0xf0, 0xf7]), // FEE's pad nibble 9
      rec([0x00, 0x12, 0x34, 0x5f], [0x01, 0x23, 0x45, 0x6c], [0xf0, 0xf0, 0xd7]), // QTY negative
    ])
    const rs = await collect(openSource(`fixed:${tempFile('u.dat', body)}?copybook=${cpy}&encoding=cp037`))
    expect(rs[0]).toMatchObject({ok: true, fields: {amt: '123.45', fee: '-1234.56', qty: '007'}})
    expect(rs.slice(1).map((r) => (r.ok ? 'ok' : `${r.code} ${r.message.replace(/^.*: field /, '')}`))).toEqual([
      'DECODE_ERROR amt (AMT PIC 9(5)V99 packed): negative packed-decimal sign nibble D at offset 3 in an unsigned field (PIC without S)',
      "DECODE_ERROR fee (FEE PIC S9(4)V99 packed): packed-decimal pad nibble 9 at offset 0 is not 0: more digits than the PIC's 6",
      'DECODE_ERROR qty (QTY PIC 9(3) zoned): negative zoned-decimal sign 0xD7 at offset 2 in an unsigned field (PIC without S)',
    ])
  })

  it('reads blank (spaces) and low-value (0x00) numeric fields as "", and trims low-values from text', async () => {
    const cpy = tempFile('b.cpy', '01 R.\n  05 T PIC X(4).\n  05 Z PIC S9(3).\n  05 P PIC S9(3) COMP-3.\n  05 B PIC 9(4) COMP.\n')
    const rec = (fill: number) => Buffer.concat([Buffer.from([0xc1, 0xc2, 0x00, 0x00]), Buffer.alloc(3, fill), Buffer.alloc(2, fill), Buffer.alloc(2, 0)])
    const rs = await collect(openSource(`fixed:${tempFile('b.dat', Buffer.concat([rec(0x40), rec(0x00)]))}?copybook=${cpy}`))
    expect(rs.map((r) => r.ok && r.fields)).toEqual([
      {t: 'AB', z: '', p: '', b: '0'},
      {t: 'AB', z: '', p: '', b: '0'},
    ])
  })

  it('reads Cyrillic text from windows-1251 and ibm866 fixed-width files', async () => {
    const cpy = tempFile('c.cpy', '01 R.\n  05 NAME PIC X(12).\n  05 AMT PIC S9(5)V99.\n')
    for (const enc of ['windows-1251', 'ibm866'] as const) {
      const body = Buffer.concat([encodeString('Пятёрочка   ', enc), encodeZoned('-12.50', 7, 2, {charset: 'ascii'}), encodeString('Ёж          ', enc), encodeZoned('7', 7, 2, {charset: 'ascii'})])
      const rs = await collect(openSource(`fixed:${tempFile(`${enc}.dat`, body)}?copybook=${cpy}&encoding=${enc}`))
      expect(rs.map((r) => r.ok && r.fields), enc).toEqual([
        {name: 'Пятёрочка', amt: '-12.50'},
        {name: 'Ёж', amt: '7.00'},
      ])
    }
  })

  it('gives a DECODE_ERROR naming the field for a text byte with no character in the encoding (windows-1251 0x98)', async () => {
    const cpy = tempFile('w.cpy', '01 REC.\n  05 NAME PIC X(6).\n  05 AMT PIC S9(5)V99 COMP-3.\n')
    const amt = encodePacked('1234.56', 7, 2)
    const body = Buffer.concat([
      Buffer.from([0xc0, 0x98, 0xc1, 0x20, 0x20, 0x20]),
      amt,
      Buffer.concat([encodeString('Ёж', 'windows-1251'), Buffer.from([0x88, 0x20, 0x20, 0x20])]), // 0x88 is €
      amt,
    ])
    const rs = await collect(openSource(`fixed:${tempFile('w.dat', body)}?copybook=${cpy}&encoding=windows-1251`))
    expect(rs[0]).toMatchObject({ok: false, code: 'DECODE_ERROR', field: 'name', value: "X'C098C1202020'", position: {record: 1, byteOffset: 0}})
    if (!rs[0]!.ok) expect(rs[0]!.message).toBe(`${rs[0]!.position.source} record 1, byte 1: field name (NAME PIC X(6)): no character in windows-1251 for byte 0x98`)
    expect(rs[1]).toMatchObject({ok: true, fields: {name: 'Ёж€', amt: '1234.56'}})
    // ibm866 has a character for every byte: the same bytes are text there
    const rs866 = await collect(openSource(`fixed:${tempFile('w866.dat', body.subarray(0, 10))}?copybook=${cpy}&encoding=ibm866`))
    expect(rs866).toMatchObject([{ok: true, fields: {name: decodeBytes(Buffer.from([0xc0, 0x98, 0xc1]), 'ibm866')}}])
  })

  it('reports a partial last record as SCHEMA_VIOLATION, and a broken RDW as a SpecError', async () => {
    const cpy = tempFile('p.cpy', '01 R.\n  05 ID PIC X(4).\n')
    const rs = await collect(openSource(`fixed:${tempFile('p.dat', 'AAAABBBBCC')}?copybook=${cpy}&encoding=ascii`))
    expect(rs.map((r) => (r.ok ? r.fields.id : r.code))).toEqual(['AAAA', 'BBBB', 'SCHEMA_VIOLATION'])
    expect(rs[2]).toMatchObject({position: {record: 3, byteOffset: 8}})

    const rdw = Buffer.concat([Buffer.from([0, 8, 0, 0]), Buffer.from('AAAA'), Buffer.from([0, 6, 0, 0]), Buffer.from('BB'), Buffer.from('XXXX')])
    const got: RawRecord[] = []
    await expect(
      (async () => {
        for await (const r of openSource(`fixed:${tempFile('r.dat', rdw)}?copybook=${cpy}&encoding=ascii&rdw=true`)) got.push(r)
      })(),
    ).rejects.toMatchObject({code: 'SPEC_INVALID', message: expect.stringContaining('byte 14')})
    expect(got.map((r) => (r.ok ? r.fields.id : r.code))).toEqual(['AAAA', 'SCHEMA_VIOLATION'])
  })

  it('says what is wrong with the source before reading', async () => {
    await expect(collect(openSource(`fixed:${join(FIX, 'TXN.DAT')}?copybook=/nope.cpy`))).rejects.toMatchObject({code: 'USAGE', message: expect.stringContaining('/nope.cpy')})
    await expect(collect(openSource(`fixed:${join(FIX, 'TXN.DAT')}?copybook=${CPY}&record_length=50`))).rejects.toMatchObject({code: 'USAGE', hint: expect.stringContaining('100')})
  })
})
