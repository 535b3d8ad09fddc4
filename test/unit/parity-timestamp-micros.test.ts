/**
 * Parity's timestamps to the microsecond: the seconds tolerance read exactly (µs), the fast ISO
 * reader and the normalizer's path agreeing on .123456, the merge's in-place shortcut agreeing
 * with compareValues, differences in seconds with µs digits, and time rules that see µs.
 */
import {describe, expect, it} from 'vitest'
import type {ComparePlan} from '../../src/parity/compare.js'
import {buildPlan, type ParityOptions} from '../../src/parity/plan.js'
import {parseRules} from '../../src/parity/rules.js'
import {compareValues, equalInPlace, isoInstant, parseTolerance} from '../../src/parity/tolerances.js'

function plan(o: Partial<ParityOptions> & {cols: string[]}): ComparePlan {
  return buildPlan({left: 'l', right: 'r', key: ['id'], ...o}, ['id', ...o.cols], ['id', ...o.cols], [], undefined, {left: 'csv', right: 'csv'})
}

const tsCol = (tolerance?: string, type = 'timestamp') => plan({cols: ['ts'], types: {ts: type}, ...(tolerance ? {tolerance: {ts: tolerance}} : {})}).columns[0]!

describe('--tolerance col=<seconds>s', () => {
  it('is read exactly in microseconds', () => {
    expect(parseTolerance('ts', '2s')).toEqual({kind: 'seconds', text: '2s', us: 2_000_000})
    expect(parseTolerance('ts', '0.000001s')).toEqual({kind: 'seconds', text: '0.000001s', us: 1})
    expect(parseTolerance('ts', '0.0015s')).toEqual({kind: 'seconds', text: '0.0015s', us: 1500})
    expect(parseTolerance('ts', '1.5s')).toEqual({kind: 'seconds', text: '1.5s', us: 1_500_000})
    expect(parseTolerance('ts', ' 0.000001000s ')).toEqual({kind: 'seconds', text: '0.000001000s', us: 1})
    expect(parseTolerance('ts', '86400s')).toEqual({kind: 'seconds', text: '86400s', us: 86_400_000_000})
    expect(parseTolerance('ts', '0s')).toEqual({kind: 'seconds', text: '0s', us: 0})
  })

  it('refuses digits beyond the microsecond, and what is not a number of seconds', () => {
    expect(() => parseTolerance('ts', '0.0000005s')).toThrow(/finer than a microsecond/)
    expect(() => parseTolerance('ts', '1.0000001s')).toThrow(/finer than a microsecond/)
    expect(() => parseTolerance('ts', '99999999999s')).toThrow(/too large/)
    for (const t of ['.5s', '1e-6s', '-1s', '1 s', '1ms', 's', '0,5s']) expect(() => parseTolerance('ts', t), t).toThrow(/not a tolerance/)
  })
})

describe('timestamps compared to the microsecond', () => {
  it('a microsecond apart is a mismatch of 0.000001 s, on the fast path and the normalizer\'s alike', () => {
    const c = tsCol()
    // both with an offset (the fast path)
    expect(compareValues(c, '2026-11-20T06:15:00.123456Z', '2026-11-20T06:15:00.123457Z')).toEqual({equal: false, absDiff: '0.000001', absDiffRank: 1n})
    expect(compareValues(c, '2026-11-20 09:15:00.123456+03:00', '2026-11-20T06:15:00.123456Z')).toEqual({equal: true})
    expect(compareValues(c, '2026-11-20T06:15:00.999999Z', '2026-11-20T06:15:01Z')).toEqual({equal: false, absDiff: '0.000001', absDiffRank: 1n})
    expect(compareValues(c, '2026-11-20T06:15:00.1234Z', '2026-11-20T06:15:00.12340+00')).toEqual({equal: true})
    expect(compareValues(c, '2026-11-20T06:15:00.12345Z', '2026-11-20T06:15:00.123451Z')).toMatchObject({equal: false, absDiff: '0.000001'})
    // zeros beyond the µs are read on the fast path; other digits there take the normalizer's path,
    // which rounds them to the µs as PostgreSQL stores them (half to even)
    expect(compareValues(c, '2026-11-20T06:15:00.123456000Z', '2026-11-20T06:15:00.123456Z')).toEqual({equal: true})
    expect(isoInstant('2026-11-20T06:15:00.123456001Z')).toBeUndefined()
    expect(compareValues(c, '2026-11-20T06:15:00.123456001Z', '2026-11-20T06:15:00.123456Z')).toEqual({equal: true})
    expect(compareValues(c, '2026-11-20T06:15:00.1234565Z', '2026-11-20T06:15:00.123456Z')).toEqual({equal: true})
    expect(compareValues(c, '2026-11-20T06:15:00.1234575Z', '2026-11-20T06:15:00.123458Z')).toEqual({equal: true})
    expect(compareValues(c, '2026-11-20T06:15:00.1234575Z', '2026-11-20T06:15:00.123457Z')).toEqual({equal: false, absDiff: '0.000001', absDiffRank: 1n})
    // no offset: the normalizer's path (UTC)
    expect(compareValues(c, '2026-11-20 06:15:00.123456', '2026-11-20T06:15:00.123457Z')).toEqual({equal: false, absDiff: '0.000001', absDiffRank: 1n})
    expect(compareValues(c, '2026-11-20 06:15:00.123457', '2026-11-20T06:15:00.123457Z')).toEqual({equal: true})
    expect(compareValues(tsCol(undefined, 'timestamp:Europe/Moscow'), '2026-11-20 09:15:00.000001', '2026-11-20T06:15:00Z')).toMatchObject({equal: false, absDiff: '0.000001'})
  })

  it('values with no fraction or ms only give the same results as before', () => {
    const c = tsCol('2s')
    expect(compareValues(c, '2026-11-20T06:15:00Z', '2026-11-20T06:15:02Z')).toEqual({equal: true})
    expect(compareValues(c, '2026-11-20T06:15:00Z', '2026-11-20T06:15:02.001Z')).toEqual({equal: false, absDiff: '2.001', absDiffRank: 2_001_000n})
    expect(compareValues(tsCol(), '2026-11-20T06:15:00.5Z', '2026-11-20 06:15:00.25')).toEqual({equal: false, absDiff: '0.25', absDiffRank: 250_000n})
  })

  it('a difference beyond 2^53 µs (centuries) is exact too', () => {
    // (9999-12-31T23:59:59.999 - 1901-01-01) in ms, times 1000, plus 999 µs
    const us = BigInt(Date.UTC(9999, 11, 31, 23, 59, 59, 999) - Date.UTC(1901, 0, 1)) * 1000n + 999n
    expect(us > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true)
    expect(compareValues(tsCol('9007199254s'), '1901-01-01T00:00:00Z', '9999-12-31T23:59:59.999999Z')).toEqual({equal: false, absDiff: '255579753599.999999', absDiffRank: us})
  })

  it('a tolerance of 0.000001s takes one microsecond, not two', () => {
    const c = tsCol('0.000001s')
    expect(compareValues(c, '2026-11-20T06:15:00.123456Z', '2026-11-20T06:15:00.123457Z')).toEqual({equal: true})
    expect(compareValues(c, '2026-11-20T06:15:00.123457Z', '2026-11-20T06:15:00.123456Z')).toEqual({equal: true})
    expect(compareValues(c, '2026-11-20T06:15:00.123456Z', '2026-11-20T06:15:00.123458Z')).toEqual({equal: false, absDiff: '0.000002', absDiffRank: 2n})
    expect(compareValues(tsCol('0.0015s'), '2026-11-20T06:15:00Z', '2026-11-20T06:15:00.0015Z')).toEqual({equal: true})
    expect(compareValues(tsCol('0.0015s'), '2026-11-20T06:15:00Z', '2026-11-20T06:15:00.001501Z').equal).toBe(false)
  })

  it('the merge\'s in-place shortcut says equal only where compareValues does', () => {
    const values = ['2026-11-20T06:15:00.123456Z', '2026-11-20 09:15:00.123456+03:00', '2026-11-20T06:15:00.123457Z', '2026-11-20T06:15:00.123Z', '2026-11-20T06:15:00.123000+00', '2026-11-20T06:15:00.123456001Z', '2026-11-20T06:15:00.1234560Z']
    for (const tol of [undefined, '0.000001s', '2s']) {
      const col = tsCol(tol)
      for (const x of values) {
        for (const y of values) {
          const text = `${x}|${y}`
          const fast = equalInPlace(col, text, 0, x.length, text, x.length + 1, text.length)
          const slow = compareValues(col, x, y).equal
          if (fast) expect(slow, `${x} ${y} ${tol}`).toBe(true)
          else if (isoInstant(x) !== undefined && isoInstant(y) !== undefined) expect(slow, `${x} ${y} ${tol}`).toBe(false)
        }
      }
    }
  })
})

describe('time rules see the microseconds', () => {
  it('23:59:59.000001 is after 23:59:59, with and without a business day', () => {
    const [r] = parseRules('- name: cut\n  reason: legacy cut\n  when: {kind: extra_in_right, column: t, right_time_after: "23:59:59"}\n', 'k.yaml')
    const facts = (t: string, date: string | null) => ({kind: 'extra_in_right' as const, column: null, left: undefined, right: {t}, absDiff: undefined, date})
    for (const date of [null, '2026-11-20']) {
      expect(r!.matches(facts('2026-11-20T23:59:59.000001Z', date)), String(date)).toBe(true)
      expect(r!.matches(facts('2026-11-20 23:59:59.000001+00', date)), String(date)).toBe(true)
      expect(r!.matches(facts('2026-11-20T23:59:59Z', date)), String(date)).toBe(false)
      expect(r!.matches(facts('2026-11-20T23:59:59.000Z', date)), String(date)).toBe(false)
    }
  })
})
