/**
 * Copybook numbers with an implied decimal point (V in the PIC) through the normalizer: the
 * fixed: reader writes them as "-123.456", whose "." is the decimal point. A decimal field must
 * read them as such, not by the rules for printed text: "1.234" of a PIC S9(3)V999 COMP-3 was
 * refused as ambiguous ("." may be a thousands separator), and with `decimal_separator: ","` on
 * the field it was read as 1234.000. Printed text (a PIC X field) keeps the printed-text rules.
 */
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'
import {encodePacked, encodeZoned, parseCopybook} from '../../legacy-adapters/copybook.js'
import {parseFixedChunks, type FixedOptions} from '../../legacy-adapters/fixed.js'
import {fixedMessageDecoder} from '../../legacy-adapters/message.js'
import type {RawRecord, RawRecordOk} from '../../legacy-adapters/types.js'
import {parseFieldSpec} from '../../src/config/spec.js'
import {encodeString} from '../../src/normalize/encoding.js'
import {createNormalizer} from '../../src/normalize/index.js'

const COPYBOOK = parseCopybook(
  [
    '       01  RATE-REC.',
    '           05  RATE-ID        PIC X(4).',
    '           05  RATE           PIC S9(3)V999 COMP-3.',
    '           05  WEIGHT         PIC 9(3)V999.',
    '           05  PRINTED        PIC X(6).',
  ].join('\n'),
  'rate.cpy',
)

function record(id: string, rate: string, weight: string, printed: string): Buffer {
  return Buffer.concat([encodeString(id, 'cp037'), encodePacked(rate, 6, 3, true), encodeZoned(weight, 6, 3, {charset: 'ebcdic', signed: false}), encodeString(printed.padEnd(6), 'cp037')])
}

async function read(buf: Buffer): Promise<RawRecord[]> {
  const opts: FixedOptions = {source: 'RATE.DAT', copybook: COPYBOOK, encoding: 'cp037', recordLength: COPYBOOK.recordLength, rdw: false}
  const out: RawRecord[] = []
  for await (const r of parseFixedChunks((async function* () {
    yield buf
  })(), opts)) out.push(r)
  return out
}

const fields = (separator?: '.' | ',') => ({
  rate: parseFieldSpec('rate', {type: 'decimal', scale: 3, required: true, ...(separator ? {decimal_separator: separator} : {})}),
  weight: parseFieldSpec('weight', {type: 'decimal', scale: 3, required: true, ...(separator ? {decimal_separator: separator} : {})}),
})

describe('copybook numbers with an implied decimal point, normalized', () => {
  it('reads 1.234 of a PIC S9(3)V999 COMP-3 and 12.500 of a zoned 9(3)V999 as decimals, not as ambiguous printed text', async () => {
    const rs = await read(Buffer.concat([record('R001', '1.234', '12.5', ''), record('R003', '-123.456', '999.999', '')]))
    expect(rs.map((r) => r.ok)).toEqual([true, true])
    const normalize = createNormalizer(fields())
    const got = rs.map((r) => normalize(r as RawRecordOk))
    expect(got.map((g) => (g.ok ? g.record : g.rejections.map((x) => x.message)))).toEqual([
      {rate: '1.234', weight: '12.500'},
      {rate: '-123.456', weight: '999.999'},
    ])
    // the reader's values are still the plain strings they were (JSON, equality)
    expect(JSON.stringify((rs[0] as RawRecordOk).fields)).toBe('{"rate_id":"R001","rate":"1.234","weight":"12.500","printed":""}')
  })

  it('never reads a copybook 1.234 as 1234 because the field says decimal_separator ","', async () => {
    const [r] = await read(record('R001', '1.234', '1.5', ''))
    const got = createNormalizer(fields(','))(r as RawRecordOk)
    expect(got.ok && got.record).toEqual({rate: '1.234', weight: '1.500'})
  })

  it('still refuses more digits than the field scale (never rounds), and keeps the printed-text rules for PIC X', async () => {
    const [r] = await read(record('R001', '1.235', '1', '1.234'))
    const got = createNormalizer({
      rate: parseFieldSpec('rate', {type: 'decimal', scale: 2}),
      printed: parseFieldSpec('printed', {type: 'decimal', scale: 3}),
    })(r as RawRecordOk)
    expect(got.ok).toBe(false)
    if (!got.ok) {
      expect(got.rejections.map((x) => [x.field, x.code, x.message])).toEqual([
        ['rate', 'UNPARSEABLE_AMOUNT', expect.stringMatching(/3 digits after the decimal separator but the scale is 2/)],
        ['printed', 'UNPARSEABLE_AMOUNT', expect.stringMatching(/is ambiguous/)],
      ])
    }
  })

  it('reads a fixed record sent as a Kafka message (stream run, source.format fixed) the same way', () => {
    const decode = fixedMessageDecoder({copybook: COPYBOOK, encoding: 'cp037'})
    const d = decode(record('R001', '1.234', '12.5', ''))
    expect(d.ok).toBe(true)
    if (!d.ok) return
    const got = createNormalizer(fields())({ok: true, fields: d.fields, position: {scheme: 'kafka', source: 'rates.raw', partition: 0, offset: '0'}})
    expect(got.ok && got.record).toEqual({rate: '1.234', weight: '12.500'})
  })

  it('normalizes every PIC S9(n)V9(m) COMP-3 and zoned value to its exact decimal at scale m (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({min: 1, max: 18}),
        fc.integer({min: 1, max: 6}),
        fc.bigInt({min: 0n, max: 10n ** 24n}),
        fc.boolean(),
        fc.constantFrom<'.' | ',' | undefined>('.', ',', undefined),
        async (intDigits, scale, seed, negative, separator) => {
          const digits = intDigits + scale
          const mag = (seed % 10n ** BigInt(digits)).toString().padStart(scale + 1, '0')
          const int = mag.slice(0, -scale).replace(/^0+(?=\d)/, '')
          const frac = mag.slice(-scale)
          const zero = /^0+$/.test(int + frac)
          const expected = (negative && !zero ? '-' : '') + int + '.' + frac
          const cb = parseCopybook(`       01  R.\n           05  P  PIC S9(${intDigits})V9(${scale}) COMP-3.\n           05  Z  PIC S9(${intDigits})V9(${scale}).`, 'p.cpy')
          const buf = Buffer.concat([encodePacked(expected, digits, scale, true), encodeZoned(expected, digits, scale, {charset: 'ebcdic', signed: true})])
          const d = fixedMessageDecoder({copybook: cb, encoding: 'cp037'})(buf)
          if (!d.ok) throw new Error(d.message)
          const spec = {type: 'decimal' as const, scale, precision: digits, ...(separator ? {decimal_separator: separator} : {})}
          const got = createNormalizer({p: parseFieldSpec('p', spec), z: parseFieldSpec('z', spec)})({ok: true, fields: d.fields, position: {scheme: 'fixed', source: 'p'}})
          expect(got.ok ? got.record : got.rejections.map((x) => x.message)).toEqual({p: expected, z: expected})
        },
      ),
      {numRuns: 500},
    )
  })
})
