/**
 * The backfill progress bar on a terminal (src/ui/backfill-progress.tsx, ink-testing-library) for
 * a pg: source: its total is PostgreSQL's row estimate (ProgressTracker.total). The plain lines
 * showed "48,500 of about 100,000 rows (~48.5%, ETA ~6 s, estimated)"; the bar showed neither a
 * percentage nor an ETA ("read 48,500 · sent 48,500 · rejected 0"). It now shows them, marked
 * estimated, never above 100%, and no ETA once the read went past a low estimate.
 */
import {render} from 'ink-testing-library'
import {createElement} from 'react'
import {afterEach, describe, expect, it, vi} from 'vitest'
import {ProgressTracker, type ProgressSnapshot} from '../../src/jobs/progress.js'
import {BackfillProgress, backfillView} from '../../src/ui/backfill-progress.js'

const estimate = {value: 100000, estimate: true, unit: 'rows'}

/** A pg: backfill's snapshot `elapsedMs` in: `done` read and sent, at this run's `ratePerSec`. */
function snapshot(done: number, ratePerSec: number, total: ProgressSnapshot['total'] | null = estimate): ProgressSnapshot {
  return {label: 'backfill', done, elapsedMs: 5000, ratePerSec, extra: {sent: done, rejected: 0, paused_ms: 0}, ...(total ? {total} : {})}
}

function frameOf(cur: ProgressSnapshot, targetRate: number | null = 15000): string {
  const ui = render(createElement(BackfillProgress, {view: backfillView(undefined, cur, targetRate)}))
  const frame = ui.lastFrame()!
  ui.unmount()
  return frame
}

afterEach(() => {
  vi.useRealTimers()
})

describe('backfill progress bar: a pg: source with PostgreSQL\'s row estimate', () => {
  it('shows the percentage, "of about N rows" and the ETA, marked estimated', () => {
    const frame = frameOf(snapshot(48500, 9700))
    expect(frame).toContain(`${'█'.repeat(15)}${'░'.repeat(15)} ~48.5%  read 48,500 of about 100,000 rows · sent 48,500 · rejected 0`)
    // (100,000 - 48,500) / 9,700 = 5.3 s
    expect(frame).toContain('rate 9,700/s of 15,000/s · ETA ~6 s (estimated) · 5 s')
  })

  it('a long ETA in formatDuration\'s units; no rate yet: a percentage, no ETA', () => {
    expect(frameOf(snapshot(10000, 10))).toContain('ETA ~2 h 30 min (estimated)')
    const start = frameOf(snapshot(0, 0))
    expect(start).toContain('~0.0%  read 0 of about 100,000 rows')
    expect(start).not.toContain('ETA')
  })

  it('never above 100%: 99.96% shows ~99.9%; a read past the estimate shows ~100% and no ETA', () => {
    expect(frameOf(snapshot(99960, 1000))).toContain('~99.9%  read 99,960 of about 100,000 rows')
    const past = frameOf(snapshot(130000, 9700))
    expect(past).toContain(`${'█'.repeat(30)} ~100%  read 130,000 of about 100,000 rows`)
    expect(past).toContain('past the estimate: ETA unknown')
    expect(past).not.toMatch(/ETA ~|-\d|1[0-9]{2}\.\d%|130\.0%/)
    // the read ends at the estimate exactly: 100%, no ETA, not "past" it
    const reached = frameOf(snapshot(100000, 9700))
    expect(reached).toContain('~100.0%  read 100,000 of about 100,000 rows')
    expect(reached).not.toMatch(/ETA|past/)
  })

  it('no estimate (a table never analyzed, query=): the counts alone, as before', () => {
    const frame = frameOf(snapshot(48500, 9700, null))
    expect(frame).toContain('read 48,500 · sent 48,500 · rejected 0')
    expect(frame).not.toMatch(/%|ETA|about|█|░/)
  })

  it('a resumed run: the rows sent before it count towards the percentage, not towards its rate (its ETA)', () => {
    vi.useFakeTimers()
    const tracker = new ProgressTracker('backfill')
    tracker.total = estimate
    tracker.done = tracker.doneBefore = 40000
    vi.advanceTimersByTime(2000)
    tracker.done = 50000
    tracker.extra = {sent: 10000, rejected: 0}
    // this run: 10,000 in 2 s = 5,000/s; 50,000 left: 10 s (not 50,000 / 25,000/s = 2 s)
    const frame = frameOf(tracker.snapshot(), null)
    expect(frame).toContain('~50.0%  read 50,000 of about 100,000 rows · sent 10,000')
    expect(frame).toContain('(unthrottled) · ETA ~10 s (estimated)')
  })
})
