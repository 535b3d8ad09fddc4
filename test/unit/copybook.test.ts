import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'
import {
  decodeBinary,
  decodePacked,
  decodeZoned,
  encodeBinary,
  encodePacked,
  encodeZoned,
  parseCopybook,
  toSnakeCase,
} from '../../legacy-adapters/copybook.js'
import {ROOT} from '../helpers.js'

/** A decimal string that fits `digits` digits with `scale` decimals, in canonical form. */
function decimalArb(digits: number, scale: number, signed: boolean): fc.Arbitrary<string> {
  const max = 10n ** BigInt(digits) - 1n
  return fc.bigInt({min: signed ? -max : 0n, max}).map((v) => {
    const neg = v < 0n
    const s = (neg ? -v : v).toString().padStart(scale + 1, '0')
    const int = s.slice(0, s.length - scale)
    const frac = s.slice(s.length - scale)
    return (neg ? '-' : '') + int + (scale > 0 ? '.' + frac : '')
  })
}

const picture = fc.record({digits: fc.integer({min: 1, max: 31}), signed: fc.boolean()}).chain(({digits, signed}) =>
  fc.record({digits: fc.constant(digits), signed: fc.constant(signed), scale: fc.integer({min: 0, max: digits})}),
)


/** What parseCopybook throws for `text` (undefined when it parses). */
function refusal(text: string): unknown {
  try {
    parseCopybook(text, 'cb.cpy')
  } catch (e) {
    return e
  }
  return undefined
}

describe('COMP-3 packed decimal', () => {
  it('decodes known bytes', () => {
    expect(decodePacked(Buffer.from([0x01, 0x23, 0x45, 0x6c]), 2)).toBe('1234.56')
    expect(decodePacked(Buffer.from([0x01, 0x23, 0x45, 0x6d]), 2)).toBe('-1234.56')
    expect(decodePacked(Buffer.from([0x01, 0x23, 0x4f]), 0)).toBe('1234')
    expect(decodePacked(Buffer.from([0x00, 0x0d]), 2)).toBe('0.00') // negative zero is zero
    expect(encodePacked('-1234.56', 7, 2)).toEqual(Buffer.from([0x01, 0x23, 0x45, 0x6d]))
    expect(encodePacked('1234', 5, 0, false)).toEqual(Buffer.from([0x01, 0x23, 0x4f]))
  })

  it('round-trips any decimal within the picture (property)', () => {
    fc.assert(
      fc.property(picture.chain((p) => fc.tuple(fc.constant(p), decimalArb(p.digits, p.scale, p.signed))), ([p, value]) => {
        const bytes = encodePacked(value, p.digits, p.scale, p.signed)
        expect(bytes.length).toBe(Math.floor(p.digits / 2) + 1)
        const back = decodePacked(bytes, p.scale)
        expect(back).toBe(value === '-0' || /^-0\.?0*$/.test(value) ? value.slice(1) : value)
      }),
      {numRuns: 2000},
    )
  })

  it('refuses what its PIC cannot hold: a negative sign when unsigned, a pad nibble that is a digit', () => {
    // PIC 9(5)V99 COMP-3 (unsigned): a D sign would have turned 123.45 negative
    expect(() => decodePacked(Buffer.from([0x00, 0x12, 0x34, 0x5d]), 2, 0, 4, {digits: 7, signed: false})).toThrow(/negative packed-decimal sign nibble D at offset 3 in an unsigned field/)
    expect(decodePacked(Buffer.from([0x00, 0x12, 0x34, 0x5f]), 2, 0, 4, {digits: 7, signed: false})).toBe('123.45')
    expect(decodePacked(Buffer.from([0x00, 0x12, 0x34, 0x5c]), 2, 0, 4, {digits: 7, signed: false})).toBe('123.45')
    // PIC S9(4)V99 COMP-3 (6 digits in 4 bytes): the first nibble pads; 9 there read as 91234.56
    expect(() => decodePacked(Buffer.from([0x91, 0x23, 0x45, 0x6c]), 2, 0, 4, {digits: 6, signed: true})).toThrow(/pad nibble 9 at offset 0 is not 0: more digits than the PIC's 6/)
    expect(decodePacked(Buffer.from([0x01, 0x23, 0x45, 0x6d]), 2, 0, 4, {digits: 6, signed: true})).toBe('-1234.56')
    // an odd digit count has no pad nibble
    expect(decodePacked(Buffer.from([0x91, 0x23, 0x45, 0x6c]), 2, 0, 4, {digits: 7, signed: true})).toBe('91234.56')
  })

  it('reports a bad nibble with its byte offset', () => {
    expect(() => decodePacked(Buffer.from([0x01, 0x2a, 0x3c]), 0)).toThrow(/0x2A at offset 1/)
    expect(() => decodePacked(Buffer.from([0x01, 0x23, 0x45]), 0)).toThrow(/sign nibble 5 at offset 2/)
    try {
      decodePacked(Buffer.from([0x01, 0x2a, 0x3c]), 0)
    } catch (e) {
      expect(e).toMatchObject({code: 'DECODE_ERROR', details: {byteOffset: 1}})
    }
  })

  it('refuses values that do not fit the picture', () => {
    expect(() => encodePacked('12345.6', 5, 1)).toThrow(RangeError)
    expect(() => encodePacked('1.234', 5, 2)).toThrow(RangeError)
    expect(() => encodePacked('-1', 3, 0, false)).toThrow(RangeError)
  })
})

describe('zoned decimal', () => {
  it('decodes EBCDIC and ASCII overpunch', () => {
    expect(decodeZoned(Buffer.from([0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xc6]), 2, {charset: 'ebcdic'})).toBe('1234.56')
    expect(decodeZoned(Buffer.from([0xf1, 0xf2, 0xd3]), 2, {charset: 'ebcdic'})).toBe('-1.23')
    expect(decodeZoned(Buffer.from('12}'), 0, {charset: 'ascii'})).toBe('-120')
    expect(decodeZoned(Buffer.from('12J'), 1, {charset: 'ascii'})).toBe('-12.1')
    expect(decodeZoned(Buffer.from('12{'), 1, {charset: 'ascii'})).toBe('12.0')
    expect(decodeZoned(Buffer.from('12C'), 0, {charset: 'ascii'})).toBe('123')
    expect(decodeZoned(Buffer.from('12q'), 0, {charset: 'ascii'})).toBe('-121') // Micro Focus style
    expect(decodeZoned(Buffer.from('123'), 0, {charset: 'ascii'})).toBe('123')
    expect(decodeZoned(Buffer.from('-0042'), 2, {charset: 'ascii', separate: 'leading'})).toBe('-0.42')
    expect(encodeZoned('-1.23', 3, 2, {charset: 'ebcdic'})).toEqual(Buffer.from([0xf1, 0xf2, 0xd3]))
    expect(encodeZoned('-120', 3, 0, {charset: 'ascii'}).toString('latin1')).toBe('12}')
  })

  it('refuses a negative sign in an unsigned field (PIC without S), EBCDIC and ASCII', () => {
    expect(() => decodeZoned(Buffer.from([0xf0, 0xf1, 0xf2, 0xf3, 0xd4]), 2, {charset: 'ebcdic', signed: false})).toThrow(/negative zoned-decimal sign 0xD4 at offset 4 in an unsigned field/)
    expect(() => decodeZoned(Buffer.from('0012}'), 2, {charset: 'ascii', signed: false})).toThrow(/negative zoned-decimal sign '}' at offset 4 in an unsigned field/)
    expect(() => decodeZoned(Buffer.from('0012q'), 2, {charset: 'ascii', signed: false})).toThrow(/unsigned field/)
    expect(decodeZoned(Buffer.from([0xf0, 0xf1, 0xf2, 0xf3, 0xf4]), 2, {charset: 'ebcdic', signed: false})).toBe('12.34')
    expect(decodeZoned(Buffer.from([0xf0, 0xf1, 0xf2, 0xf3, 0xd4]), 2, {charset: 'ebcdic', signed: true})).toBe('-12.34')
  })

  it('round-trips any decimal within the picture, EBCDIC and ASCII, trailing, leading and separate signs (property)', () => {
    const style = fc.constantFrom<{leading?: boolean; separate?: 'leading' | 'trailing'}>({}, {leading: true}, {separate: 'leading'}, {separate: 'trailing'})
    fc.assert(
      fc.property(
        picture.chain((p) => fc.tuple(fc.constant(p), decimalArb(p.digits, p.scale, p.signed), fc.constantFrom('ebcdic' as const, 'ascii' as const), style)),
        ([p, value, charset, st]) => {
          const opts = {charset, signed: p.signed || st.separate !== undefined, ...st}
          const bytes = encodeZoned(value, p.digits, p.scale, opts)
          expect(bytes.length).toBe(p.digits + (st.separate ? 1 : 0))
          expect(decodeZoned(bytes, p.scale, opts)).toBe(/^-0\.?0*$/.test(value) ? value.slice(1) : value)
        },
      ),
      {numRuns: 2000},
    )
  })

  it('reports a byte that is not a digit with its offset', () => {
    expect(() => decodeZoned(Buffer.from([0xf1, 0x40, 0xf3]), 0, {charset: 'ebcdic'})).toThrow(/0x40 at offset 1/)
    expect(() => decodeZoned(Buffer.from('1x3'), 0, {charset: 'ascii'})).toThrow(/0x78 at offset 1/)
  })
})

describe('binary', () => {
  it('round-trips signed and unsigned big-endian values (property)', () => {
    fc.assert(
      fc.property(
        fc.record({digits: fc.integer({min: 1, max: 18}), signed: fc.boolean()}).chain((p) =>
          fc.tuple(fc.constant(p), fc.integer({min: 0, max: p.digits}).chain((scale) => fc.tuple(fc.constant(scale), decimalArb(p.digits, scale, p.signed)))),
        ),
        ([p, [scale, value]]) => {
          const bytes = encodeBinary(value, p.digits, scale, p.signed)
          expect(bytes.length).toBe(p.digits <= 4 ? 2 : p.digits <= 9 ? 4 : 8)
          expect(decodeBinary(bytes, scale, p.signed)).toBe(/^-0\.?0*$/.test(value) ? value.slice(1) : value)
        },
      ),
      {numRuns: 1000},
    )
    expect(decodeBinary(Buffer.from([0xff, 0xfe]), 0, true)).toBe('-2')
    expect(decodeBinary(Buffer.from([0xff, 0xfe]), 0, false)).toBe('65534')
    expect(decodeBinary(Buffer.from([0x00, 0x00, 0x30, 0x39]), 2, true)).toBe('123.45')
  })
})

describe('parseCopybook', () => {
  it('lays out the fixture copybook: groups, FILLER, OCCURS, COMP-3, zoned, binary, 88 levels', () => {
    const cb = parseCopybook(readFileSync(join(ROOT, 'fixtures/legacy/txn.cpy'), 'utf8'), 'txn.cpy')
    expect(cb.name).toBe('txn_record')
    expect(cb.recordLength).toBe(100)
    const layout = cb.fields.map((f) => [f.name, f.kind, f.offset, f.length])
    expect(layout).toEqual([
      ['txn_id', 'text', 0, 10],
      ['acct_id', 'text', 10, 8],
      ['txn_ts', 'text', 18, 14],
      ['txn_date', 'zoned', 18, 8],
      ['txn_time', 'zoned', 26, 6],
      ['amount', 'packed', 32, 6],
      ['currency', 'text', 38, 3],
      ['merchant', 'text', 41, 20],
      ['mcc', 'zoned', 61, 4],
      ['fee', 'zoned', 65, 7],
      ['status_code', 'text', 72, 1],
      ['auth_count', 'binary', 73, 2],
      ['last_amt_1', 'packed', 79, 5],
      ['last_amt_2', 'packed', 84, 5],
      ['last_amt_3', 'packed', 89, 5],
    ])
    const amount = cb.fields.find((f) => f.name === 'amount')!
    expect(amount).toMatchObject({digits: 11, scale: 2, signed: true, cobolName: 'AMOUNT', picture: 'S9(9)V99'})
    expect(cb.fields.find((f) => f.name === 'last_amt_2')!.cobolName).toBe('LAST-AMT(2)')
  })

  it('reads free-format copybooks, nested OCCURS on groups, and qualifies repeated leaf names', () => {
    const cb = parseCopybook(
      `01 CUSTOMER-REC.
         05 CUST-ID PIC 9(6).
         05 START-DATE.
            10 YY PIC 9(4).
            10 MM PIC 99.
         05 END-DATE.
            10 YY PIC 9(4).
            10 MM PIC 99.
         05 HISTORY OCCURS 2 TIMES.
            10 BAL PIC S9(5)V99 COMP-3.
            10 FLAGS PIC X OCCURS 3.
         05 FILLER PIC X(2). *> padding
         05 RATE PIC SV9(4) USAGE IS COMP-3.
         05 EDITED PIC ZZ,ZZ9.99-.`,
    )
    expect(cb.fields.map((f) => f.name)).toEqual([
      'cust_id',
      'start_date',
      'start_date_yy',
      'start_date_mm',
      'end_date',
      'end_date_yy',
      'end_date_mm',
      'bal_1',
      'flags_1_1',
      'flags_1_2',
      'flags_1_3',
      'bal_2',
      'flags_2_1',
      'flags_2_2',
      'flags_2_3',
      'rate',
      'edited',
    ])
    expect(cb.fields.find((f) => f.name === 'rate')).toMatchObject({kind: 'packed', digits: 4, scale: 4, length: 3})
    expect(cb.fields.find((f) => f.name === 'edited')).toMatchObject({kind: 'text', length: 10})
    expect(cb.recordLength).toBe(6 + 6 + 6 + 2 * (4 + 3) + 2 + 3 + 10)
  })

  it('skips sequence numbers, comment lines and the identification area of fixed-format copybooks', () => {
    const cb = parseCopybook(
      [
        '000100 01  REC.                                                         REC00001',
        '000200*    A COMMENT WITH PIC X(99). IN IT                               REC00002',
        '000300     05  A-FIELD     PIC X(3).                                    REC00003',
        '000400     05  B-FIELD     PIC S9(3)                                    REC00004',
        '000500                     COMP.                                        REC00005',
      ].join('\n'),
    )
    expect(cb.fields.map((f) => [f.name, f.kind, f.length])).toEqual([
      ['a_field', 'text', 3],
      ['b_field', 'binary', 2],
    ])
  })

  it('rejects what it cannot lay out, with file:line and the fix', () => {
    const cases: [string, RegExp, RegExp][] = [
      ['01 R.\n  05 A PIC X(4).\n  05 B REDEFINES A PIC 9(4).', /cb\.cpy:3: B REDEFINES A/, /one layout/],
      ['01 R.\n  05 N PIC 9.\n  05 A PIC X OCCURS 1 TO 5 DEPENDING ON N.', /cb\.cpy:3: .*DEPENDING ON/, /fixed OCCURS/],
      ['01 R.\n  05 F COMP-2.', /floating point/, /COMP-3/],
      ['01 R.\n  05 A PIC Q(3).', /unrecognised picture/, /X\(n\)/],
      ['01 R.\n  05 A PIC X(3) FOO.', /unexpected "FOO"/, /supported clauses/],
      ['', /no items/, /01 RECORD/],
    ]
    for (const [text, message, hint] of cases) {
      const err = refusal(text)
      expect(err, text).toMatchObject({code: 'SPEC_INVALID'})
      expect((err as Error).message).toMatch(message)
      expect((err as {hint: string}).hint).toMatch(hint)
    }
  })

  it('reads a period followed by a space inside a literal as part of the literal, not the end of the entry', () => {
    const cb = parseCopybook(
      [
        "       01  ADDR-REC.",
        "           05  CUR         PIC X(3) VALUE 'U.S. '.",
        "           05  ST          PIC X(2).",
        "               88  ST-NA   VALUE 'N. A.'.",
        '               88  ST-QQ   VALUE "Q. ""R. "" S.".',
        "               88  ST-IT   VALUE 'IT''S. OK'.",
        "           05  NOTE-TXT    PIC X(30) VALUE 'LONG LITERAL. WITH A PERIOD. AND",
        "      -    ' MORE. TEXT'.",
        '           05  AMT         PIC S9(5)V99 COMP-3. *> not a literal: \'. \'',
      ].join('\n'),
      'addr.cpy',
    )
    expect(cb.fields.map((f) => [f.name, f.offset, f.length])).toEqual([
      ['cur', 0, 3],
      ['st', 3, 2],
      ['note_txt', 5, 30],
      ['amt', 35, 4],
    ])
    expect(cb.recordLength).toBe(39)
    // free format, on one line
    expect(parseCopybook(`01 R. 05 A PIC X(4) VALUE "A. B". 05 B PIC 9(2).`).fields.map((f) => [f.name, f.offset])).toEqual([
      ['a', 0],
      ['b', 4],
    ])
  })

  it('accepts SYNC where it changes nothing: binary items already on their boundary, DISPLAY and COMP-3 items', () => {
    const cb = parseCopybook(
      `01 REC.
         05 CODE PIC XX.
         05 HALF PIC S9(4) COMP SYNC.
         05 FULL PIC S9(9) COMP-5 SYNCHRONIZED.
         05 DBL PIC S9(18) BINARY SYNC RIGHT.
         05 FLAG PIC X SYNC.
         05 PACKED PIC S9(5) COMP-3 SYNC LEFT.
         05 ZONED PIC 9(2) SYNC.
         05 TBL PIC S9(4) COMP SYNC OCCURS 3.`,
    )
    expect(cb.fields.map((f) => [f.name, f.offset, f.length])).toEqual([
      ['code', 0, 2],
      ['half', 2, 2],
      ['full', 4, 4],
      ['dbl', 8, 8],
      ['flag', 16, 1],
      ['packed', 17, 3],
      ['zoned', 20, 2],
      ['tbl_1', 22, 2],
      ['tbl_2', 24, 2],
      ['tbl_3', 26, 2],
    ])
    expect(cb.recordLength).toBe(28)
  })

  it('refuses SYNC on a binary item that COBOL would move with slack bytes, instead of reading the wrong offsets', () => {
    const cases: [string, RegExp, RegExp][] = [
      // IBM: CNT at 4 (3 slack bytes), record 8 bytes; read as written it would be at 1
      ['01 R.\n  05 A PIC X.\n  05 CNT PIC S9(8) COMP SYNC.', /cb\.cpy:3: CNT PIC S9\(8\) \(field cnt\) is binary with SYNC at byte 1 .*4-byte boundary with 3 slack bytes/, /FILLER PIC X\(3\)/],
      ['01 R.\n  05 A PIC X(3).\n  05 H PIC 9(4) COMP-4 SYNCHRONIZED.', /cb\.cpy:3: H .*at byte 3 .*2-byte boundary with 1 slack byte before/, /FILLER PIC X\(1\)/],
      ['01 R.\n  05 A PIC X(4).\n  05 D PIC S9(12) BINARY SYNC.', /cb\.cpy:3: D .*at byte 4 .*8-byte boundary with 4 slack bytes/, /FILLER PIC X\(4\)/],
      // SYNC on the 01 group synchronizes each of its elementary items
      ['01 R SYNC.\n  05 A PIC X.\n  05 H PIC S9(4) COMP.', /cb\.cpy:3: H .*at byte 1/, /FILLER/],
      // in an OCCURS group: the second occurrence is off its boundary (IBM pads each occurrence)
      ['01 R.\n  05 G OCCURS 2.\n    10 H PIC S9(4) COMP SYNC.\n    10 X PIC X.', /cb\.cpy:3: H .*\(field h_2\) .*at byte 3/, /end of each occurrence/],
    ]
    for (const [text, message, hint] of cases) {
      const err = refusal(text)
      expect(err, text).toMatchObject({code: 'SPEC_INVALID', exitCode: 2})
      expect((err as Error).message, text).toMatch(message)
      expect((err as {hint: string}).hint, text).toMatch(hint)
    }
    // the fix the hint gives: the slack bytes as FILLER
    expect(parseCopybook('01 R.\n  05 A PIC X.\n  05 FILLER PIC X(3).\n  05 CNT PIC S9(8) COMP SYNC.').fields.map((f) => [f.name, f.offset])).toEqual([
      ['a', 0],
      ['cnt', 4],
    ])
  })

  it('names fields in lower_snake_case', () => {
    expect(toSnakeCase('TXN-ID')).toBe('txn_id')
    expect(toSnakeCase('WS-ACCT-NO-2')).toBe('ws_acct_no_2')
  })
})
