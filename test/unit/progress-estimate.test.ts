/**
 * The progress line's total (src/jobs/progress.ts): an estimated total is "about N", its
 * percentage and ETA marked estimated, never above 100% nor a negative ETA when the work goes
 * past it; a resumed job's earlier units count in `done`, not in this run's rate.
 */
import {describe, expect, it} from 'vitest'
import {formatDuration, formatProgress, progressFraction, ProgressTracker, type ProgressSnapshot} from '../../src/jobs/progress.js'

const snap = (done: number, total: ProgressSnapshot['total'], ratePerSec = 1000): ProgressSnapshot => ({label: 'backfill', done, elapsedMs: 5000, ratePerSec, extra: {sent: done}, ...(total ? {total} : {})})

describe('progress line with a total', () => {
  it('no total: the line as before', () => {
    expect(formatProgress(snap(98000, undefined, 19510))).toBe('backfill: 98,000 (19,510/s, 5.0 s), sent 98,000')
  })

  it('an estimate: about N rows, percentage and ETA marked estimated', () => {
    const line = formatProgress(snap(50_000_000, {value: 200_000_000, estimate: true, unit: 'rows'}, 20000))
    expect(line).toBe('backfill: 50,000,000 of about 200,000,000 rows (~25.0%, ETA ~2 h 5 min, estimated) (20,000/s, 5.0 s), sent 50,000,000')
  })

  it('past a low estimate: 100% at most, no ETA (never a negative one)', () => {
    const s = snap(120_000, {value: 100_000, estimate: true, unit: 'rows'})
    expect(progressFraction(s)).toEqual({fraction: 1, etaS: null, past: true})
    expect(formatProgress(s)).toBe('backfill: 120,000 of about 100,000 rows (~100%, past the estimate: ETA unknown) (1,000/s, 5.0 s), sent 120,000')
  })

  it('the total reached exactly (the last line of a fixed file): 100%, no ETA, not past it', () => {
    const s = snap(600, {value: 600, estimate: false, unit: 'records'})
    expect(progressFraction(s)).toEqual({fraction: 1, etaS: null, past: false})
    expect(formatProgress(s)).toBe('backfill: 600 of 600 records (100.0%) (1,000/s, 5.0 s), sent 600')
  })

  it('no rate yet: a percentage without an ETA; an exact total is not marked', () => {
    expect(formatProgress(snap(0, {value: 10, estimate: false}, 0))).toBe('backfill: 0 of 10 (0.0%) (0/s, 5.0 s), sent 0')
  })

  it('a zero total is no total', () => {
    expect(progressFraction(snap(5, {value: 0, estimate: true}))).toBeUndefined()
  })

  it('durations', () => {
    expect([formatDuration(-3), formatDuration(0.2), formatDuration(89), formatDuration(600), formatDuration(10_000), formatDuration(5 * 86400 + 3600)]).toEqual(['0 s', '1 s', '89 s', '10 min', '2 h 47 min', '5 d 1 h'])
  })

  it("a resumed job's earlier units are not this run's rate", () => {
    const t = new ProgressTracker('backfill')
    t.done = t.doneBefore = 1_000_000
    t.done += 10
    const s = t.snapshot()
    // at most 10 units over the elapsed ms (>= 0): never the million done before
    expect(s.ratePerSec).toBeLessThanOrEqual(10 * 1000)
    expect(s.done).toBe(1_000_010)
  })
})
