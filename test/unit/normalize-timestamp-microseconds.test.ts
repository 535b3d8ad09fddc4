/**
 * Fractions of a second kept exactly to the microsecond (PostgreSQL's precision) in every
 * format that has one, through each reader (the ISO reader, the fixed-width reader, the regex of
 * a variable-width pattern, epoch_s); digits beyond the µs read when zeros and refused
 * (UNPARSEABLE_DATE) otherwise; milliseconds and no fraction print as before (".123Z", ".000Z").
 */
import {describe, expect, it} from 'vitest'
import {businessDateOf} from '../../src/runtime/sinks/aggregate.js'
import {DateMatcher, Fail, isoOf, matchDateFormats} from '../../src/normalize/index.js'

const reason = (v: unknown) => (v instanceof Fail ? `${v.code}: ${v.reason}` : v)
const ts = (formats: string[], tz: string, value: string) => reason(new DateMatcher(formats, tz).parse(value, 'timestamp'))
const date = (formats: string[], tz: string, value: string) => reason(new DateMatcher(formats, tz).parse(value, 'date'))

describe('isoOf', () => {
  it('prints ms, or µs when there are any', () => {
    const ms = Date.UTC(2026, 10, 20, 9, 15, 0, 123)
    expect(isoOf(ms)).toBe('2026-11-20T09:15:00.123Z')
    expect(isoOf(ms, 0)).toBe('2026-11-20T09:15:00.123Z')
    expect(isoOf(ms, 456)).toBe('2026-11-20T09:15:00.123456Z')
    expect(isoOf(ms, 7)).toBe('2026-11-20T09:15:00.123007Z')
    expect(isoOf(Date.UTC(2026, 10, 20, 23, 59, 59, 999), 999)).toBe('2026-11-20T23:59:59.999999Z')
    expect(isoOf(Date.UTC(1969, 11, 31, 23, 59, 59, 0), 1)).toBe('1969-12-31T23:59:59.000001Z')
  })
})

describe('microseconds kept in every format with a fraction', () => {
  it.each([
    // the ISO reader: T or space, Z / ±HH:mm / ±HHmm / ±HH / none, "." or ","
    [['iso'], 'UTC', '2026-11-20T09:15:00.123456Z', '2026-11-20T09:15:00.123456Z'],
    [['iso'], 'Europe/Moscow', '2026-11-20T09:15:00.123456+03:00', '2026-11-20T06:15:00.123456Z'],
    [['iso'], 'UTC', '2026-11-20 09:15:00.123456+00', '2026-11-20T09:15:00.123456Z'], // PostgreSQL's text
    [['iso'], 'UTC', '2026-11-20T12:15:00,000456+0300', '2026-11-20T09:15:00.000456Z'],
    [['iso'], 'Europe/Moscow', '2026-11-20 12:15:00.999999', '2026-11-20T09:15:00.999999Z'], // local time
    [['iso'], 'UTC', '2026-11-20T09:15:00.1234Z', '2026-11-20T09:15:00.123400Z'],
    [['iso'], 'UTC', '2026-11-20T09:15:00.12345Z', '2026-11-20T09:15:00.123450Z'],
    [['iso'], 'UTC', '2026-11-20T09:15:00.123456000Z', '2026-11-20T09:15:00.123456Z'], // Java's 9 digits, zeros
    // the fixed-width reader: DB2 TIMESTAMP, and digits run together
    [['yyyy-MM-dd-HH.mm.ss.SSSSSS'], 'Europe/Moscow', '2026-11-20-09.15.00.123456', '2026-11-20T06:15:00.123456Z'],
    [['yyyyMMddHHmmssSSSSSS'], 'UTC', '20261120091500000001', '2026-11-20T09:15:00.000001Z'],
    [['yyyy-MM-dd HH:mm:ss.SSSS'], 'UTC', '2026-11-20 09:15:00.9999', '2026-11-20T09:15:00.999900Z'],
    [['yyyy-MM-dd HH:mm:ss.SSSSSSSSS'], 'UTC', '2026-11-20 09:15:00.123456000', '2026-11-20T09:15:00.123456Z'],
    // the regex of a variable-width pattern (XXX, MMM)
    [["yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"], 'UTC', '2026-11-20T12:15:00.123456+03:00', '2026-11-20T09:15:00.123456Z'],
    [['dd-MMM-yyyy HH:mm:ss.SSSSS'], 'UTC', '20-Nov-2026 09:15:00.12345', '2026-11-20T09:15:00.123450Z'],
    [['dd-MMM-yyyy HH:mm:ss.SSSSSSSS'], 'UTC', '20-Nov-2026 09:15:00.12345600', '2026-11-20T09:15:00.123456Z'],
    // epoch_s
    [['epoch_s'], 'UTC', '1795166100.123456', '2026-11-20T09:15:00.123456Z'],
    [['epoch_s'], 'UTC', '1795166100.0000010', '2026-11-20T09:15:00.000001Z'],
  ])('%j in %s: %s -> %s', (formats, tz, value, expected) => {
    expect(ts(formats, tz, value)).toBe(expected)
  })

  it.each([
    [['iso'], '2026-11-20T09:15:00.123Z'],
    [['iso'], '2026-11-20T09:15:00.123000Z'],
    [['yyyy-MM-dd-HH.mm.ss.SSSSSS'], '2026-11-20-09.15.00.123000'],
    [["yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"], '2026-11-20T09:15:00.123000Z'],
    [['epoch_s'], '1795166100.123000'],
  ])('%j: a whole number of ms (%s) prints as ms, one text per instant', (formats, value) => {
    expect(ts(formats, 'UTC', value)).toBe('2026-11-20T09:15:00.123Z')
  })

  it('no fraction prints .000Z as before', () => {
    expect(ts(['iso'], 'UTC', '2026-11-20T09:15:00Z')).toBe('2026-11-20T09:15:00.000Z')
    expect(ts(['yyyyMMddHHmmss'], 'UTC', '20261120091500')).toBe('2026-11-20T09:15:00.000Z')
  })
})

describe('digits beyond the microsecond', () => {
  // each expected value is what PostgreSQL 15 stores for the same text in a timestamptz
  // (SELECT '2026-11-20T09:15:00.1234565Z'::timestamptz): rounded to the µs, half to even
  it.each([
    [['iso'], '2026-11-20T09:15:00.123456789Z', '2026-11-20T09:15:00.123457Z'],
    [['iso'], '2026-11-20T09:15:00.1234565Z', '2026-11-20T09:15:00.123456Z'],
    [['iso'], '2026-11-20T09:15:00.1234575Z', '2026-11-20T09:15:00.123458Z'],
    [['iso'], '2026-11-20T09:15:00.123456501Z', '2026-11-20T09:15:00.123457Z'],
    [['iso'], '2026-11-20T09:15:00.9999999', '2026-11-20T09:15:01.000Z'],
    [['iso'], '2026-12-31T23:59:59.9999995Z', '2027-01-01T00:00:00.000Z'],
    [['yyyy-MM-dd HH:mm:ss.SSSSSSSSS'], '2026-11-20 09:15:00.123456001', '2026-11-20T09:15:00.123456Z'],
    [['yyyy-MM-dd HH:mm:ss.SSSSSSS'], '2026-11-20 09:15:00.1234575', '2026-11-20T09:15:00.123458Z'],
    [['dd-MMM-yyyy HH:mm:ss.SSSSSSS'], '20-Nov-2026 09:15:00.0000001', '2026-11-20T09:15:00.000Z'],
    [['dd-MMM-yyyy HH:mm:ss.SSSSSSS'], '20-Nov-2026 09:15:00.0009995', '2026-11-20T09:15:00.001Z'],
    [['epoch_s'], '1795166100.123456789', '2026-11-20T09:15:00.123457Z'],
    [['yyyyMMddHHmmssSSSSSSSSS'], '20261120091500123456789', '2026-11-20T09:15:00.123457Z'],
  ])('%j %s: rounded to the µs as PostgreSQL rounds it (.NET\'s 7 digits, Java\'s 9)', (formats, value, expected) => {
    expect(ts(formats, 'UTC', value)).toBe(expected)
  })

  it('a date field ignores the time of day, its fraction included', () => {
    expect(date(['iso'], 'UTC', '2026-11-20T09:15:00.123456789Z')).toBe('2026-11-20')
    expect(date(['yyyy-MM-dd-HH.mm.ss.SSSSSSSSS'], 'UTC', '2026-11-20-09.15.00.123456789')).toBe('2026-11-20')
  })
})

describe('two formats, two instants a microsecond apart', () => {
  it('are AMBIGUOUS_DATE naming both, not the same instant', () => {
    // made-up pairs: iso, and a pattern that reads the last digit as a literal
    const m = new DateMatcher(['iso', "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'0'X"], 'UTC')
    expect(reason(m.parse('2026-11-20T09:15:00.1234560Z', 'timestamp'))).toBe('2026-11-20T09:15:00.123456Z') // one instant
    const n = new DateMatcher(['iso', "yyyy-MM-dd'T'HH:mm:ss.SSSSS'1'X"], 'UTC')
    expect(reason(n.parse('2026-11-20T09:15:00.123451Z', 'timestamp'))).toBe(
      'AMBIGUOUS_DATE: is ambiguous: it reads as 2026-11-20T09:15:00.123451Z with "iso" and as 2026-11-20T09:15:00.123450Z with "yyyy-MM-dd\'T\'HH:mm:ss.SSSSS\'1\'X"',
    )
  })

  it('matchDateFormats (profile) gives the instant with its µs', () => {
    expect(matchDateFormats('2026-11-20T09:15:00.123456Z', ['iso'], 'UTC')).toEqual([{format: 'iso', instant: '2026-11-20T09:15:00.123456Z', epochMs: Date.UTC(2026, 10, 20, 9, 15, 0, 123), date: '2026-11-20'}])
  })
})

describe('the business date of a µs timestamp', () => {
  it('is the local day of the instant, a microsecond either side of midnight', () => {
    const day = businessDateOf('Europe/Moscow')
    expect(day(String(ts(['iso'], 'Europe/Moscow', '2026-11-20 23:59:59.999999')))).toBe('2026-11-20')
    expect(day(String(ts(['iso'], 'Europe/Moscow', '2026-11-21 00:00:00.000001')))).toBe('2026-11-21')
  })
})
