/**
 * COMP / COMP-4 / BINARY fields hold at most their PIC's digits (IBM TRUNC(STD)); COMP-5 holds
 * any value of its bytes. EBCDIC spaces in a COMP field (X'4040' = 16448 in PIC S9(4) COMP,
 * X'40404040' = 10779525.76 in PIC S9(7)V99 COMP) are an uninitialised field: blank, as a COMP-3
 * field of spaces beside it, never a number the PIC cannot hold; other values beyond the PIC are
 * a DECODE_ERROR. The file reader and the Kafka fixed-format message decoder agree.
 */
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {decodeBinary, parseCopybook} from '../../legacy-adapters/copybook.js'
import {openSource} from '../../legacy-adapters/index.js'
import {fixedMessageDecoder} from '../../legacy-adapters/message.js'
import type {RawRecord} from '../../legacy-adapters/types.js'
import {RecordError, SpecError} from '../../src/errors.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')

function thrown(f: () => unknown): unknown {
  try {
    f()
  } catch (e) {
    return e
  }
  return undefined
}

async function collect(it: AsyncIterable<RawRecord>): Promise<RawRecord[]> {
  const out: RawRecord[] = []
  for await (const r of it) out.push(r)
  return out
}

function tempFile(dir: string, name: string, content: Buffer | string): string {
  const path = join(dir, name)
  writeFileSync(path, content)
  return path
}

describe('decodeBinary with the PIC digits', () => {
  it('refuses a COMP value with more digits than its PIC, 2, 4 and 8 bytes, and says when the bytes are spaces', () => {
    const e = thrown(() => decodeBinary(hex('4040'), 0, true, 0, 2, {digits: 4}))
    expect(e).toBeInstanceOf(RecordError)
    expect(e).toMatchObject({code: 'DECODE_ERROR', details: {byteOffset: 0}})
    expect((e as Error).message).toMatch(/^binary value has 5 digits, more than the PIC's 4 \(EBCDIC spaces: an uninitialised field\?\).*declare it COMP-5 if the program writes full binary values \(TRUNC\(BIN\)\)$/)
    expect((thrown(() => decodeBinary(hex('40404040'), 2, true, 0, 4, {digits: 9})) as Error).message).toMatch(/^binary value has 10 digits, more than the PIC's 9 \(EBCDIC spaces/)
    expect((thrown(() => decodeBinary(hex('4040404040404040'), 0, true, 0, 8, {digits: 18})) as Error).message).toMatch(/^binary value has 19 digits, more than the PIC's 18 \(EBCDIC/)
    // not spaces: no guess about why
    const other = thrown(() => decodeBinary(hex('7FFF'), 0, true, 0, 2, {digits: 4})) as Error
    expect(other.message).toMatch(/^binary value has 5 digits, more than the PIC's 4: /)
    expect(other.message).not.toContain('spaces')
    expect(thrown(() => decodeBinary(hex('8000'), 0, true, 0, 2, {digits: 4}))).toBeInstanceOf(RecordError) // -32768
    expect(thrown(() => decodeBinary(hex('2710'), 0, false, 0, 2, {digits: 4}))).toBeInstanceOf(RecordError) // 10000
    expect(thrown(() => decodeBinary(hex('0186A0'), 0, false, 0, 3, {digits: 5}))).toBeInstanceOf(RecordError) // 100000 in 3 bytes
  })

  it('reads every value the PIC holds, at the edges, and any value of a COMP-5 field or without digits', () => {
    expect(decodeBinary(hex('270F'), 0, true, 0, 2, {digits: 4})).toBe('9999')
    expect(decodeBinary(hex('D8F1'), 0, true, 0, 2, {digits: 4})).toBe('-9999')
    expect(decodeBinary(hex('3B9AC9FF'), 2, true, 0, 4, {digits: 9})).toBe('9999999.99')
    expect(decodeBinary(hex('C4653601'), 2, true, 0, 4, {digits: 9})).toBe('-9999999.99')
    expect(decodeBinary(hex('0DE0B6B3A763FFFF'), 0, true, 0, 8, {digits: 18})).toBe('999999999999999999')
    expect(decodeBinary(hex('F21F494C589C0001'), 0, true, 0, 8, {digits: 18})).toBe('-999999999999999999')
    expect(decodeBinary(hex('0000'), 0, true, 0, 2, {digits: 4})).toBe('0')
    // COMP-5: native binary
    expect(decodeBinary(hex('4040'), 0, true, 0, 2, {digits: 4, native: true})).toBe('16448')
    expect(decodeBinary(hex('7FFF'), 0, true, 0, 2, {digits: 4, native: true})).toBe('32767')
    expect(decodeBinary(hex('4040404040404040'), 0, true, 0, 8, {digits: 18, native: true})).toBe('4629771061636907072')
    // no PIC given: bytes only, as before
    expect(decodeBinary(hex('4040'), 0, true)).toBe('16448')
  })
})

describe('parseCopybook: COMP-5 apart from COMP, COMP-4 and BINARY', () => {
  it('marks COMP-5 (also from its group) native binary, and refuses COMP inside a COMP-5 group', () => {
    const cb = parseCopybook(`01 R.
       05 A PIC S9(4) COMP.
       05 B PIC S9(4) COMP-4.
       05 C PIC S9(4) BINARY.
       05 D PIC S9(4) COMPUTATIONAL.
       05 E PIC S9(4) COMP-5.
       05 F PIC S9(4) COMPUTATIONAL-5.
       05 G COMP-5.
          10 H PIC S9(9).
       05 I PIC S9(3) COMP-3.`)
    expect(cb.fields.map((f) => [f.name, f.kind, f.nativeBinary ?? false])).toEqual([
      ['a', 'binary', false],
      ['b', 'binary', false],
      ['c', 'binary', false],
      ['d', 'binary', false],
      ['e', 'binary', true],
      ['f', 'binary', true],
      ['h', 'binary', true],
      ['i', 'packed', false],
    ])
    const e = thrown(() => parseCopybook('01 R.\n  05 G COMP-5.\n    10 A PIC S9(4) COMP.\n', 'r.cpy'))
    expect(e).toBeInstanceOf(SpecError)
    expect((e as Error).message).toMatch(/r\.cpy:3: A is BINARY inside G, whose USAGE is COMP-5/)
  })
})

describe('fixed: reader and Kafka message decoder, binary fields of spaces', () => {
  const CPY = `01 R.
  05 ID     PIC X(2).
  05 CNT    PIC S9(4) COMP.
  05 AMT    PIC S9(7)V99 COMP.
  05 BIG    PIC S9(18) BINARY.
  05 PACKED PIC S9(5)V99 COMP-3.
  05 NATIVE PIC S9(4) COMP-5.
`
  // ID 'R1' in cp037, then every numeric field EBCDIC spaces
  const blank = Buffer.concat([hex('D9F1'), Buffer.alloc(2 + 4 + 8 + 4 + 2, 0x40)])
  // CNT 9999, AMT -0.01, BIG 1, PACKED 12.34, NATIVE 32767
  const values = Buffer.concat([hex('D9F2'), hex('270F'), hex('FFFFFFFF'), hex('0000000000000001'), hex('0001234C'), hex('7FFF')])
  // CNT 16449 (X'4041': not spaces), the rest fine
  const wide = Buffer.concat([hex('D9F3'), hex('4041'), hex('00000000'), hex('0000000000000000'), hex('0000000C'), hex('0000')])

  it('reads spaces as "" like the COMP-3 beside them (not 16448 / 10779525.76), keeps COMP-5 spaces a value, and a value beyond the PIC is a DECODE_ERROR', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-review-comp-'))
    const cpy = tempFile(dir, 'r.cpy', CPY)
    const rs = await collect(openSource(`fixed:${tempFile(dir, 'r.dat', Buffer.concat([blank, values, wide]))}?copybook=${cpy}&encoding=cp037`))
    expect(rs[0]).toMatchObject({ok: true, fields: {id: 'R1', cnt: '', amt: '', big: '', packed: '', native: '16448'}})
    expect(rs[1]).toMatchObject({ok: true, fields: {id: 'R2', cnt: '9999', amt: '-0.01', big: '1', packed: '12.34', native: '32767'}})
    expect(rs[2]).toMatchObject({ok: false, code: 'DECODE_ERROR', field: 'cnt', value: "X'4041'", position: {record: 3, byteOffset: 44}})
    if (!rs[2]!.ok) expect(rs[2]!.message).toMatch(/record 3, byte 46: field cnt \(CNT PIC S9\(4\) binary\): binary value has 5 digits, more than the PIC's 4: .*COMP-5/)

    // the same records as Kafka messages of a `format: fixed` spec
    const decode = fixedMessageDecoder({copybook: parseCopybook(CPY), encoding: 'cp037'})
    expect(decode(blank)).toEqual({ok: true, fields: {id: 'R1', cnt: '', amt: '', big: '', packed: '', native: '16448'}})
    expect(decode(values)).toEqual({ok: true, fields: {id: 'R2', cnt: '9999', amt: '-0.01', big: '1', packed: '12.34', native: '32767'}})
    expect(decode(wide)).toMatchObject({ok: false, code: 'DECODE_ERROR', field: 'cnt', message: expect.stringMatching(/binary value has 5 digits, more than the PIC's 4/)})
  })

  it('ASCII spaces are a value where the PIC holds it (X\'2020\' = 8224 in S9(4) COMP), blank where it cannot (S9(3) COMP)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-review-comp-'))
    const cpy = tempFile(dir, 'a.cpy', '01 R.\n  05 ID PIC X(2).\n  05 C4 PIC S9(4) COMP.\n  05 C3 PIC S9(3) COMP.\n  05 C9 PIC 9(9) COMP.\n')
    const rs = await collect(openSource(`fixed:${tempFile(dir, 'a.dat', Buffer.concat([Buffer.from('A1'), Buffer.alloc(8, 0x20)]))}?copybook=${cpy}&encoding=ascii`))
    expect(rs.map((r) => r.ok && r.fields)).toEqual([{id: 'A1', c4: '8224', c3: '', c9: '538976288'}])
  })
})
