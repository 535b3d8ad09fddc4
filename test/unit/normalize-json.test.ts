/**
 * JSON values parsed without losing a digit of their numbers (src/normalize/json.ts): a number a
 * double cannot hold exactly is kept as written, and the normalizer reads amounts and account
 * numbers from that text, not from the rounded double.
 */
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'
import type {Position} from '../../legacy-adapters/types.js'
import {parseFieldSpec, type FieldSpec, type FieldSpecInput} from '../../src/config/spec.js'
import {createNormalizer, JsonNumberText, parseJsonExact} from '../../src/normalize/index.js'
import {hasLongNumber, hasRewrittenNumber, LoneSurrogateError, RepeatedMemberError} from '../../src/normalize/json.js'
import {keyText, valueText} from '../../src/parity/sources.js'

const position: Position = {scheme: 'kafka', source: 't', partition: 0, offset: '7'}

function fields(input: Record<string, FieldSpecInput>): Record<string, FieldSpec> {
  return Object.fromEntries(Object.entries(input).map(([k, v]) => [k, parseFieldSpec(k, v)]))
}

const normalize = createNormalizer(
  fields({
    acct: {type: 'string', required: true},
    amount: {from: 'amt', type: 'decimal', scale: 2, required: true},
    qty: {type: 'integer'},
  }),
)
const fromText = (text: string) => normalize({ok: true, fields: parseJsonExact(text) as Record<string, unknown>, position})

describe('parseJsonExact', () => {
  it('keeps numbers of 16 digits or more as written, and returns what JSON.parse returns otherwise', () => {
    expect(parseJsonExact('{"a": 1234567890123456.7, "b": [40817810099910004312, 2.5], "c": {"d": 0.30000000000000001}}')).toEqual({
      a: new JsonNumberText('1234567890123456.7'),
      b: [new JsonNumberText('40817810099910004312'), 2.5],
      c: {d: new JsonNumberText('0.30000000000000001')},
    })
    const plain = '{"id": "T1", "pan": "4111111111111111", "amt": 123456789012.345, "n": -0.5, "e": 1e-7}'
    expect(parseJsonExact(plain)).toEqual(JSON.parse(plain))
    // a number that a double holds exactly stays a number, however many digits it is written with
    expect(parseJsonExact('{"x": 1234567890123456, "pan": "4111111111111111"}')).toEqual({x: 1234567890123456, pan: '4111111111111111'})
  })

  it('finds long numbers outside strings only, escaped quotes included', () => {
    expect(hasLongNumber('{"pan": "4111111111111111"}')).toBe(false)
    expect(hasLongNumber('{"note": "say \\"4111111111111111\\" twice"}')).toBe(false)
    expect(hasLongNumber('{"note": "a\\\\", "n": 4111111111111111}')).toBe(true)
    expect(hasLongNumber('{"n": 123456789012345.6}')).toBe(true)
    expect(hasLongNumber('{"n": 12345678901234.5, "m": 1e1234567890123456}')).toBe(true)
    expect(hasLongNumber('{"n": 123456789012345}')).toBe(false)
  })

  it('throws on what is not JSON, and says where a name repeats beside a long number', () => {
    expect(() => parseJsonExact('{"a": 1')).toThrow(SyntaxError)
    expect(() => parseJsonExact('{"b": {"a": 1234567890123456.7, "a": 2}}')).toThrow('the member name "a" is given twice (in b)')
  })

  it('refuses a member name given twice in one object, at any depth (JSON.parse keeps the last: which amount was meant?)', () => {
    expect(() => parseJsonExact('{"id":"J1","amt":"1.00","amt":"2.00"}')).toThrow(RepeatedMemberError)
    expect(() => parseJsonExact('{"id":"J1","amt":"1.00","amt":"2.00"}')).toThrow('the member name "amt" is given twice')
    expect(() => parseJsonExact('{ "a" : 1 ,\n "a"\t: 1 }')).toThrow('the member name "a" is given twice')
    expect(() => parseJsonExact('{"\\u0061":1,"a":2}')).toThrow('"a" is given twice') // the same name, escaped
    // not repeats: names in nested objects and arrays, names inside string values, escaped quotes and backslashes
    expect(parseJsonExact('{"a":{"a":1},"b":[{"a":2},{"a":3}],"c":"\\"a\\":1","d\\\\":"x\\\\","e":"}{"}')).toEqual({a: {a: 1}, b: [{a: 2}, {a: 3}], c: '"a":1', 'd\\': 'x\\', e: '}{'})
    expect(parseJsonExact('{}')).toEqual({})
    // in a nested object too (a spec field may read `card.amt`), saying where
    expect(() => parseJsonExact('{"id":"J1","card":{"amt":"1.00","amt":"2.00"}}')).toThrow('the member name "amt" is given twice (in card)')
    expect(() => parseJsonExact('{"a":[1,{"b":{"c":1}},{"b":{"c":1,"d":{},"c":2}}]}')).toThrow('the member name "c" is given twice (in a[2].b)')
    expect(() => parseJsonExact('[{"a":1,"a":2}]')).toThrow('"a" is given twice (in [0])')
    // any object, written any way JSON.stringify writes it: read, never taken for a repeat; with one member twice: refused
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue({maxDepth: 3})), fc.string(), fc.boolean(), (obj, extra, indent) => {
        const text = JSON.stringify(obj, null, indent ? 1 : undefined)
        expect(() => parseJsonExact(text)).not.toThrow()
        const twice = `{${JSON.stringify(extra)}:1,${text.slice(1, -1)}${text.length > 2 ? ',' : ''}${JSON.stringify(extra)}:2}`
        expect(() => parseJsonExact(twice)).toThrow(RepeatedMemberError)
      }),
    )
  })

  it('parity reads a kept number as its text, key and value (not as a quoted JSON string)', () => {
    const v = parseJsonExact('{"acct": 40817810099910004312}') as {acct: unknown}
    expect(keyText(v.acct)).toBe('40817810099910004312')
    expect(valueText(v.acct)).toBe('40817810099910004312')
  })

  it('serializes a kept number as its text', () => {
    expect(JSON.stringify(parseJsonExact('{"acct": 40817810099910004312}'))).toBe('{"acct":"40817810099910004312"}')
    expect(String(new JsonNumberText('0.30000000000000001'))).toBe('0.30000000000000001')
  })
})

describe('the normalizer reads long JSON numbers exactly', () => {
  it.each([
    ['{"acct": 40817810099910004312, "amt": 1234567890123456.7}', {acct: '40817810099910004312', amount: '1234567890123456.70'}],
    ['{"acct": 40817810099910004313, "amt": 4503599627370497.5}', {acct: '40817810099910004313', amount: '4503599627370497.50'}],
    ['{"acct": "A1", "amt": 12.5, "qty": 90071992547409930}', {acct: 'A1', amount: '12.50', qty: '90071992547409930'}],
  ])('%s', (text, record) => {
    const r = fromText(text)
    expect(r.ok).toBe(true)
    if (r.ok) expect(r.record).toEqual({qty: null, ...record})
  })

  it('rejects what a double would have rounded into range, with the value as written', () => {
    const r = fromText('{"acct": "A1", "amt": 0.30000000000000001}')
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.rejections).toEqual([expect.objectContaining({code: 'UNPARSEABLE_AMOUNT', field: 'amount', value: '0.30000000000000001'})])
    const big = fromText('{"acct": "A1", "amt": 1.2345678901234567e20}')
    expect(big.ok).toBe(false)
    if (!big.ok) expect(big.rejections[0]).toMatchObject({code: 'UNPARSEABLE_AMOUNT', value: '1.2345678901234567e20', message: expect.stringContaining('exponent') as unknown})
    // 17 digits that a double gives back are read as the number (here: too many decimals), shown as sent
    const back = fromText('{"acct": "A1", "amt": 1.2345678901234567e3}')
    if (!back.ok) expect(back.rejections[0]).toMatchObject({code: 'UNPARSEABLE_AMOUNT', value: '1.2345678901234567e3'})
    expect(back.ok).toBe(false)
  })
})

describe('lone UTF-16 surrogates', () => {
  it('a string or a member name holding one is a LoneSurrogateError naming the top-level member; a surrogate pair is text', () => {
    expect(() => parseJsonExact('{"id": "x\\ud800", "a": 1}')).toThrow(LoneSurrogateError)
    expect(() => parseJsonExact('{"id": "x\\ud800"}')).toThrow('member "id" holds a lone UTF-16 surrogate (\\ud800 without its pair)')
    expect(() => parseJsonExact('{"n": {"deep": ["\\uDC00y"]}}')).toThrow('member "n" holds a lone UTF-16 surrogate (\\udc00 without its pair)')
    expect(() => parseJsonExact('{"k\\udbff": 1}')).toThrow(LoneSurrogateError)
    expect(() => parseJsonExact('"\\ud800\\ud800\\udc00"')).toThrow('a value holds a lone UTF-16 surrogate')
    expect(parseJsonExact('{"e": "\\ud83d\\ude00", "t": "\\\\ud800"}')).toEqual({e: '\u{1f600}', t: '\\ud800'})
  })
})

describe('a number the double holds but not as written (12.500, 1.0, 1E2)', () => {
  const both = createNormalizer(
    fields({
      fee: {type: 'decimal', scale: 2},
      fee_text: {from: 'fee', type: 'string'},
      n: {type: 'integer'},
      n_text: {from: 'n', type: 'string'},
      on: {type: 'boolean'},
    }),
  )
  const read = (text: string) => both({ok: true, fields: parseJsonExact(text) as Record<string, unknown>, position})

  it('is kept with its text and value; the string field reads the text, the others the value as before', () => {
    expect(parseJsonExact('{"fee": 12.500, "n": 1.0, "s": "10.50", "e": 1E2, "z": -0, "t": 0.0000001, "k": [2.50]}')).toEqual({
      fee: new JsonNumberText('12.500', 12.5),
      n: new JsonNumberText('1.0', 1),
      s: '10.50',
      e: new JsonNumberText('1E2', 100),
      z: new JsonNumberText('-0', -0),
      t: new JsonNumberText('0.0000001', 1e-7),
      k: [new JsonNumberText('2.50', 2.5)],
    })
    expect(read('{"fee": 12.500, "n": 1.0, "on": 1.0}')).toMatchObject({ok: true, record: {fee: '12.50', fee_text: '12.500', n: '1', n_text: '1.0', on: true}})
    expect(read('{"fee": 1E2, "n": 2E1}')).toMatchObject({ok: true, record: {fee: '100.00', fee_text: '1E2', n: '20', n_text: '2E1'}})
    expect(read('{"fee": 0.0000001}')).toMatchObject({ok: false, rejections: [expect.objectContaining({field: 'fee', value: '0.0000001'})]})
  })

  it('text that only looks like such a number inside a string changes nothing', () => {
    for (const text of ['{"fee": "12.500", "n": 3}', '{"note": "a 1.0, b", "n": 3}', '{"note": "1e5}", "n": 3}']) expect(parseJsonExact(text)).toEqual(JSON.parse(text))
    expect(hasRewrittenNumber('{"a": "1.0", "b": 2}')).toBe(false)
    expect(hasRewrittenNumber('{"a": "x\\"", "b": 2.0}')).toBe(true)
  })

  it('any JSON number: parsed again as the double it is, or kept with its text when that differs', () => {
    fc.assert(
      fc.property(fc.double({noNaN: true, noDefaultInfinity: true}), fc.integer({min: 0, max: 3}), (d, zeros) => {
        const shortest = JSON.stringify(d)
        const written = shortest.includes('.') && !shortest.includes('e') ? shortest + '0'.repeat(zeros) : shortest
        const v = (parseJsonExact(`{"x": ${written}}`) as {x: unknown}).x
        if (v instanceof JsonNumberText) {
          expect(v.text).toBe(written)
          if (v.number !== undefined) expect(Object.is(v.number, Number(written))).toBe(true)
        } else expect(Object.is(v, d === 0 ? 0 : d) || v === d).toBe(true)
      }),
    )
  })
})

