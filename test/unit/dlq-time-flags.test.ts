/**
 * `dlq inspect/replay --since/--until` take an ISO-8601 time with its zone, a date (UTC midnight)
 * or a duration back from now; nothing else. Date.parse alone took "5" for 2001-05-01 and
 * "Nov 20" for 2001-11-20: a forgotten unit or year selected a window of other years without a
 * word (a replay of everything, or of nothing and then a no-op for ever).
 */
import {describe, expect, it} from 'vitest'
import {parseTimeFlag} from '../../src/dlq/reader.js'

describe('dlq --since/--until', () => {
  const now = Date.UTC(2026, 11, 6, 12)

  it('takes ISO-8601 with a zone, a date, and durations', () => {
    expect(parseTimeFlag('2026-11-20T09:00:00+03:00', '--since', now)).toBe(Date.UTC(2026, 10, 20, 6))
    expect(parseTimeFlag('2026-11-20T06:00:00.250Z', '--since', now)).toBe(Date.UTC(2026, 10, 20, 6, 0, 0, 250))
    expect(parseTimeFlag('2026-11-20 09:00+0300', '--since', now)).toBe(Date.UTC(2026, 10, 20, 6))
    expect(parseTimeFlag('2026-11-20', '--until', now)).toBe(Date.UTC(2026, 10, 20))
    expect(parseTimeFlag('90m', '--since', now)).toBe(now - 90 * 60_000)
    expect(parseTimeFlag('7d', '--since', now)).toBe(now - 7 * 86_400_000)
  })

  it('refuses a number without a unit, a date without a year, a time without a zone', () => {
    for (const v of ['5', '90', 'Nov 20', '1 2', '2026-11-20T09:00', '2026-13-45', 'yesterday']) {
      expect(() => parseTimeFlag(v, '--since', now), v).toThrow(`--since ${v} is neither an ISO-8601 time nor a duration`)
    }
  })
})
