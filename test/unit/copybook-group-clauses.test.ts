/**
 * USAGE and SIGN written on a group apply to each elementary item under it (COBOL). The bytes
 * below were written by GnuCOBOL 3.1.2 (`cobc -x -fbinary-byteorder=big-endian`) from these
 * copybooks, with MOVE -12345.67 TO AMT1, 765.4 TO AMT2, -1234 TO C1, 123456789 TO C2 and
 * MOVE -42 TO S1, 7 TO U1: FUNCTION LENGTH(REC) was 20 and FUNCTION LENGTH(SREC) 9.
 */
import {describe, expect, it} from 'vitest'
import {parseCopybook} from '../../legacy-adapters/copybook.js'
import {recordDecoder} from '../../legacy-adapters/fixed.js'
import {SpecError} from '../../src/errors.js'

const GROUP_USAGE = `       01  REC.
           05  REC-ID    PIC X(4).
           05  AMOUNTS   COMP-3.
               10  AMT1  PIC S9(5)V99.
               10  AMT2  PIC S9(5)V99.
           05  CNTS      USAGE IS BINARY.
               10  C1    PIC S9(4).
               10  C2    PIC S9(9).
           05  TAIL      PIC X(2).
`
const GROUP_USAGE_BYTES = Buffer.from('523030311234567d0076540cfb2e075bcd155a5a', 'hex')

const GROUP_SIGN = `       01  SREC.
           05  SGN       SIGN IS LEADING SEPARATE.
               10  S1    PIC S9(4).
               10  U1    PIC 9(2).
           05  STAIL     PIC X(2).
`
const GROUP_SIGN_BYTES = Buffer.from('-004207QQ', 'latin1')

describe('copybook: USAGE and SIGN on a group', () => {
  it('a group USAGE COMP-3 / BINARY makes its items packed / binary, as GnuCOBOL lays them out', () => {
    const cb = parseCopybook(GROUP_USAGE)
    expect(cb.recordLength).toBe(20)
    expect(cb.fields.map((f) => [f.name, f.kind, f.offset, f.length])).toEqual([
      ['rec_id', 'text', 0, 4],
      ['amt1', 'packed', 4, 4],
      ['amt2', 'packed', 8, 4],
      ['c1', 'binary', 12, 2],
      ['c2', 'binary', 14, 4],
      ['tail', 'text', 18, 2],
    ])
    expect(recordDecoder(cb, 'latin1')(GROUP_USAGE_BYTES, 0)).toEqual({rec_id: 'R001', amt1: '-12345.67', amt2: '765.40', c1: '-1234', c2: '123456789', tail: 'ZZ'})
  })

  it('USAGE on the 01 record applies to every item', () => {
    const cb = parseCopybook('       01  R COMP-3.\n           05  A  PIC S9(4).\n           05  B  PIC 9(3).\n')
    expect(cb.fields.map((f) => [f.kind, f.offset, f.length])).toEqual([
      ['packed', 0, 3],
      ['packed', 3, 2],
    ])
  })

  it('a group SIGN LEADING SEPARATE gives its signed items a leading sign byte, not its unsigned ones', () => {
    const cb = parseCopybook(GROUP_SIGN)
    expect(cb.recordLength).toBe(9)
    expect(recordDecoder(cb, 'latin1')(GROUP_SIGN_BYTES, 0)).toEqual({s1: '-42', u1: '07', stail: 'QQ'})
  })

  it("an item's own SIGN clause wins over its group's", () => {
    const cb = parseCopybook('       01  R.\n           05  G  SIGN LEADING SEPARATE.\n               10  A  PIC S9(3) SIGN TRAILING.\n')
    expect(cb.recordLength).toBe(3)
    expect(cb.fields[0]!.signSeparate).toBeUndefined()
  })

  it('an item USAGE that contradicts its group USAGE is a SpecError naming the line', () => {
    const text = '       01  R.\n           05  G  COMP-3.\n               10  A  PIC S9(4) COMP.\n'
    expect(() => parseCopybook(text, 'r.cpy')).toThrow(SpecError)
    expect(() => parseCopybook(text, 'r.cpy')).toThrow(/r\.cpy:3: A is BINARY inside G, whose USAGE is COMP-3/)
  })
})
