/**
 * Date formats whose reading would be a silent guess are refused when the spec is checked
 * (src/normalize/timestamp.ts compileDateFormat), and the zone names the normalizer reads as UTC
 * are UTC to the aggregate sink's business_date too.
 */
import {describe, expect, it} from 'vitest'
import {compileDateFormat, DateMatcher, Fail} from '../../src/normalize/index.js'
import {checkFieldSpec} from '../../src/normalize/check.js'
import {businessDateOf} from '../../src/runtime/sinks/aggregate.js'

describe('formats that would read a value as another time are refused', () => {
  it('seconds without minutes: "HH:ss" (a typo of HH:mm) read 12:15 as 12:00:15', () => {
    expect(() => compileDateFormat('dd.MM.yyyy HH:ss')).toThrow('has seconds (ss) without minutes (mm)')
    expect(() => compileDateFormat('yyyy-MM-dd ss')).toThrow('has seconds (ss) without minutes (mm)')
    expect(() => new DateMatcher(['dd.MM.yyyy HH:ss'], 'Europe/Moscow')).toThrow('without minutes')
  })

  it('a fraction without seconds: "HH:mm.SSS" read 12:15.250 as 12:15:00.250', () => {
    expect(() => compileDateFormat('yyyy-MM-dd HH:mm.SSS')).toThrow('has a fraction of a second (S) without seconds (ss)')
  })

  it('the month twice: "dd MMM (MM) yyyy" read 20 Nov (12) 2026 as November, ignoring the 12', () => {
    expect(() => compileDateFormat('dd MMM (MM) yyyy')).toThrow('has the month twice (MMM and MM)')
  })

  it('the formats that name each part once, in order, still read', () => {
    const m = new DateMatcher(['dd.MM.yyyy HH:mm:ss.SSS', 'dd-MMM-yyyy HH:mm', 'yyyyMMddHHmmss'], 'UTC')
    expect(m.parse('20.11.2026 12:15:07.250', 'timestamp')).toBe('2026-11-20T12:15:07.250Z')
    expect(m.parse('20-Nov-2026 12:15', 'timestamp')).toBe('2026-11-20T12:15:00.000Z')
    expect(m.parse('20261120121507', 'timestamp')).toBe('2026-11-20T12:15:07.000Z')
  })

  it('the spec check names the field and the format', () => {
    const out = checkFieldSpec('at', {type: 'timestamp', formats: ['iso', 'dd.MM.yyyy HH:ss'], timezone: 'Europe/Moscow'} as never)
    expect(out).toEqual([{key: ['formats', 1], message: 'the date format "dd.MM.yyyy HH:ss" has seconds (ss) without minutes (mm)'}])
  })
})

describe('zone names read as UTC', () => {
  it.each(['Z', 'z', 'UTC', 'utc', 'Etc/UTC', 'GMT'])('%s: the normalizer and business_date agree on the UTC date', (zone) => {
    const instant = new DateMatcher(['yyyy-MM-dd HH:mm:ss'], zone).parse('2026-11-20 23:59:59', 'timestamp')
    expect(instant).not.toBeInstanceOf(Fail)
    expect(instant).toBe('2026-11-20T23:59:59.000Z')
    expect(businessDateOf(zone)(instant as string)).toBe('2026-11-20')
    expect(businessDateOf(zone)('2026-11-21T00:00:00.000Z')).toBe('2026-11-21')
  })
})
