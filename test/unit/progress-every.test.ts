/**
 * CUTOVER_PROGRESS_EVERY: how often backfill, normalize and parity check write plain progress lines
 * (a scheduler's log wants fewer, a test more); unset: every 5 s off a terminal, every second on one.
 */
import {describe, expect, it} from 'vitest'
import {progressEveryMs} from '../../src/cli/output.js'
import {UsageError} from '../../src/errors.js'

describe('progressEveryMs', () => {
  it('unset or empty: 5 s off a terminal, 1 s on one', () => {
    expect(progressEveryMs({}, false)).toBe(5000)
    expect(progressEveryMs({}, true)).toBe(1000)
    expect(progressEveryMs({CUTOVER_PROGRESS_EVERY: ' '}, false)).toBe(5000)
  })

  it('a duration, on a terminal or off it', () => {
    expect(progressEveryMs({CUTOVER_PROGRESS_EVERY: '500ms'}, false)).toBe(500)
    expect(progressEveryMs({CUTOVER_PROGRESS_EVERY: '30s'}, true)).toBe(30_000)
    expect(progressEveryMs({CUTOVER_PROGRESS_EVERY: '2m'}, false)).toBe(120_000)
  })

  it('not a duration, or under 100ms: exit 2 naming the variable, with the fix', () => {
    for (const v of ['5', 'fast', '50ms', '0s', '-1s']) {
      let err: unknown
      try {
        progressEveryMs({CUTOVER_PROGRESS_EVERY: v}, false)
      } catch (e) {
        err = e
      }
      expect(err, v).toBeInstanceOf(UsageError)
      expect((err as UsageError).exitCode).toBe(2)
      expect((err as UsageError).message).toContain('CUTOVER_PROGRESS_EVERY')
      expect((err as UsageError).hint).toMatch(/500ms, 30s or 2m/)
    }
  })
})
