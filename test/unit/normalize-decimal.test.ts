import {describe, expect, it} from 'vitest'
import {decimalFromNumber, Fail, parseDecimal} from '../../src/normalize/index.js'

const d2 = (s: string) => parseDecimal(s, {scale: 2})
const reason = (v: unknown) => (v instanceof Fail ? `${v.code}: ${v.reason}` : v)

describe('parseDecimal: the styles legacy systems print', () => {
  it.each([
    ['1234.56', '1234.56'],
    ['1234,56', '1234.56'],
    ['1 234,56', '1234.56'],
    ['1\u00a0234,56', '1234.56'],
    ['1\u202f234\u202f567,89', '1234567.89'],
    ['1.234,56', '1234.56'],
    ['1,234.56', '1234.56'],
    ["1'234.56", '1234.56'],
    ['1\u2019234.56', '1234.56'],
    ['1.234.567', '1234567.00'],
    ['1,234,567.5', '1234567.50'],
    ['(12.50)', '-12.50'],
    ['12.50-', '-12.50'],
    ['+12', '12.00'],
    ['-0,5', '-0.50'],
    ['\u221212.5', '-12.50'],
    ['  42  ', '42.00'],
    ['.5', '0.50'],
    ['0,12', '0.12'],
    ['007.10', '7.10'],
    ['-0,00', '0.00'],
    ['(0)', '0.00'],
    ['12.5000', '12.50'],
    ['1234,5', '1234.50'],
    ['1 234', '1234.00'],
    // already canonical text is returned as is; anything else is rebuilt
    ['1234.50', '1234.50'],
    ['-0.00', '0.00'],
    ['00.50', '0.50'],
    ['-0.01', '-0.01'],
    ['0.00', '0.00'],
  ])('%j -> %s', (input, expected) => {
    expect(d2(input)).toBe(expected)
  })

  it('scale 0 and scale 4', () => {
    expect(parseDecimal('-0', {scale: 0})).toBe('0')
    expect(parseDecimal('0', {scale: 0})).toBe('0')
    expect(parseDecimal('12.5', {scale: 0})).toBeInstanceOf(Fail)
    expect(parseDecimal('1 234', {scale: 0})).toBe('1234')
    expect(parseDecimal('-7', {scale: 0})).toBe('-7')
    expect(parseDecimal('0,125', {scale: 4})).toBe('0.1250')
    expect(parseDecimal('1234,5678', {scale: 4})).toBe('1234.5678')
  })
})

describe('parseDecimal: rejections (UNPARSEABLE_AMOUNT), never rounded', () => {
  it.each([
    ['1234.567', 'UNPARSEABLE_AMOUNT: has 3 digits after the decimal separator but the scale is 2 (amounts are never rounded)'],
    ['12.501', 'UNPARSEABLE_AMOUNT: is ambiguous: "." may be a thousands or a decimal separator (set decimal_separator on the field to decide)'],
    ['abc', 'UNPARSEABLE_AMOUNT: is not a number (expected e.g. 1234.56, 1 234,56, (12.50) or 12.50-)'],
    ['', 'UNPARSEABLE_AMOUNT: is empty, not an amount'],
    ['12 34', 'UNPARSEABLE_AMOUNT: has misplaced digit grouping (expected groups of 3 digits, as in 1 234 567,89)'],
    ['1,23,456.00', 'UNPARSEABLE_AMOUNT: has misplaced digit grouping (expected groups of 3 digits, as in 1 234 567,89)'],
    ['(-12.50)', 'UNPARSEABLE_AMOUNT: has more than one sign'],
    ['-12.50-', 'UNPARSEABLE_AMOUNT: has more than one sign'],
    ['(12.50', 'UNPARSEABLE_AMOUNT: is not a number (expected e.g. 1234.56, 1 234,56, (12.50) or 12.50-)'],
    ['12.', 'UNPARSEABLE_AMOUNT: has no digits after the decimal separator'],
    ['1.234.56', 'UNPARSEABLE_AMOUNT: has misplaced digit grouping (expected groups of 3 digits, as in 1 234 567,89)'],
    ['1 234.567,89', 'UNPARSEABLE_AMOUNT: mixes grouping characters'],
    ["1'234 567", 'UNPARSEABLE_AMOUNT: is not a number (expected e.g. 1234.56, 1 234,56, (12.50) or 12.50-)'],
    ['1e5', 'UNPARSEABLE_AMOUNT: is not a number (expected e.g. 1234.56, 1 234,56, (12.50) or 12.50-)'],
    ['12,50,1', 'UNPARSEABLE_AMOUNT: has misplaced digit grouping (expected groups of 3 digits, as in 1 234 567,89)'],
    ['1.234,5,6', 'UNPARSEABLE_AMOUNT: has the decimal separator "," more than once'],
    ['+', 'UNPARSEABLE_AMOUNT: is not a number (expected e.g. 1234.56, 1 234,56, (12.50) or 12.50-)'],
  ])('%j', (input, why) => {
    expect(reason(d2(input))).toBe(why)
  })

  it('the lone-separator rule: d{1,3}<sep>ddd is ambiguous unless decimal_separator is set', () => {
    for (const s of ['1,234', '1.234', '12,500', '100.000']) expect(reason(d2(s))).toMatch(/is ambiguous/)
    expect(parseDecimal('1,234', {scale: 2, decimalSeparator: '.'})).toBe('1234.00')
    expect(parseDecimal('1.234', {scale: 2, decimalSeparator: ','})).toBe('1234.00')
    expect(parseDecimal('1,234', {scale: 3, decimalSeparator: ','})).toBe('1.234')
    expect(parseDecimal('1.234', {scale: 3, decimalSeparator: '.'})).toBe('1.234')
    // at scale 3 the text looks canonical, yet is as ambiguous (the fast path took it as 1.234)
    for (const s of ['1.234', '12.500', '100.000', '-1.234']) expect(reason(parseDecimal(s, {scale: 3})), s).toMatch(/is ambiguous/)
    expect(parseDecimal('1.234', {scale: 3, decimalSeparator: ','})).toBe('1234.000')
    expect(parseDecimal('0.125', {scale: 3})).toBe('0.125')
    expect(parseDecimal('1234.567', {scale: 3})).toBe('1234.567')
    // not ambiguous: a group cannot start with 0 or have 4+ digits, and space grouping decides
    expect(parseDecimal('0,125', {scale: 3})).toBe('0.125')
    expect(parseDecimal('1234,567', {scale: 3})).toBe('1234.567')
    expect(parseDecimal('1 234,567', {scale: 3})).toBe('1234.567')
    expect(parseDecimal('1,23', {scale: 2})).toBe('1.23')
  })

  it('with decimal_separator, the other separator only groups', () => {
    expect(reason(parseDecimal('1,5', {scale: 2, decimalSeparator: '.'}))).toMatch(/misplaced digit grouping/)
    expect(parseDecimal('1.234.567,5', {scale: 2, decimalSeparator: ','})).toBe('1234567.50')
    // canonical-looking text with a point, where the field's separator is the comma: not 12.50
    expect(reason(parseDecimal('12.50', {scale: 2, decimalSeparator: ','}))).toMatch(/grouping/)
  })

  it('overflow of numeric(precision, scale) is rejected', () => {
    expect(d2('9999999999999999.99')).toBe('9999999999999999.99') // 16 + 2 = 18 digits
    expect(reason(d2('12345678901234567.00'))).toBe('UNPARSEABLE_AMOUNT: overflows numeric(18,2) (at most 16 digits before the decimal separator)')
    expect(reason(parseDecimal('1000', {scale: 2, precision: 5}))).toMatch(/overflows numeric\(5,2\)/)
    expect(parseDecimal('000999.5', {scale: 2, precision: 5})).toBe('999.50')
    expect(parseDecimal('0.5', {scale: 2, precision: 2})).toBe('0.50')
  })

  it('stays exact far beyond float precision', () => {
    expect(parseDecimal('123 456 789 012 345 678,123456789012', {scale: 12, precision: 38})).toBe('123456789012345678.123456789012')
  })
})

describe('decimalFromNumber (Kafka JSON numbers)', () => {
  it('accepts safe integers and short decimals that fit the scale', () => {
    expect(decimalFromNumber(12, {scale: 2})).toBe('12.00')
    expect(decimalFromNumber(12.5, {scale: 2})).toBe('12.50')
    expect(decimalFromNumber(-0.1, {scale: 2})).toBe('-0.10')
    expect(decimalFromNumber(1234.5, {scale: 2})).toBe('1234.50') // never read as a grouped 1,234
  })

  it('rejects what cannot be exact', () => {
    expect(reason(decimalFromNumber(0.1 + 0.2, {scale: 2}))).toMatch(/^UNPARSEABLE_AMOUNT: has 17 digits after the decimal separator/)
    expect(reason(decimalFromNumber(2 ** 60, {scale: 2}))).toMatch(/too large to be exact/)
    expect(reason(decimalFromNumber(1e-7, {scale: 2}))).toMatch(/exponent form/)
    expect(reason(decimalFromNumber(Number.NaN, {scale: 2}))).toMatch(/not a finite number/)
  })
})
