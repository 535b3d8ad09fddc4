import {render} from 'ink-testing-library'
import {createElement} from 'react'
import {describe, expect, it, vi} from 'vitest'
import {evaluateGroup, evaluatePartition, LagWindow, worstStatus, type LagSample, type PartitionOffsets} from '../../src/backfill/lag.js'
import {Pacer, parseRate, type PaceChange} from '../../src/backfill/pacing.js'
import {parseTimeOption} from '../../src/backfill/run.js'
import {createLogger, silentLogger, type LogEntry} from '../../src/log.js'
import {TokenBucket} from '../../src/runtime/ratelimit.js'
import {BackfillProgress, backfillView} from '../../src/ui/backfill-progress.js'

describe('TokenBucket', () => {
  it('keeps its runtime behaviour without options: starts with one second of tokens, caps at one second', () => {
    // the legacy constructor reads Date.now (frozen here, so a busy machine cannot move it between calls)
    vi.useFakeTimers({toFake: ['Date']})
    try {
      const b = new TokenBucket(100)
      // 100 tokens at once, then 50 more cost half a second
      expect(b.reserve(100)).toBe(0)
      expect(b.reserve(50)).toBe(500)
    } finally {
      vi.useRealTimers()
    }
  })

  it('elapsed-time mode: starts with the burst, then exactly rate x elapsed', () => {
    let now = 0
    const b = new TokenBucket(1000, {burst: 200, now: () => now})
    expect(b.reserve(200)).toBe(0) // the burst
    expect(b.reserve(100)).toBeCloseTo(100) // 100 records at 1000/s
    now = 100
    expect(b.reserve(100)).toBeCloseTo(100)
  })

  it('keeps the credit of a late wake-up, so timer lateness does not lower the rate (±1% over a minute)', () => {
    let now = 0
    const rate = 2000
    const b = new TokenBucket(rate, {now: () => now})
    let sent = 0
    // a minute of 100-record batches, each wake-up 0..15 ms late (a loaded machine)
    let seed = 7
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
    while (now < 60_000) {
      const wait = b.reserve(100)
      now += wait + rnd() * 15
      sent += 100
    }
    const achieved = sent / (now / 1000)
    expect(Math.abs(achieved - rate) / rate).toBeLessThan(0.01)
  })

  it('elapsed-time mode starts its clock at the first take', () => {
    let now = 0
    const b = new TokenBucket(1000, {now: () => now})
    now = 5000 // connecting, reading the first batch
    expect(b.reserve(100)).toBeCloseTo(100)
  })

  it('a stalled taker catches up on at most catchUpMs of elapsed time; idle() forgets a deliberate pause', () => {
    let now = 0
    const b = new TokenBucket(1000, {now: () => now, catchUpMs: 500})
    expect(b.reserve(100)).toBeCloseTo(100)
    now = 3000 // stalled for 3 s: only 500 ms worth of credit is kept
    expect(b.reserve(500)).toBe(0)
    expect(b.reserve(100)).toBeCloseTo(100)
    now = 10_000
    b.idle()
    expect(b.reserve(100)).toBeCloseTo(200) // nothing earned while idle; the debt owed before is still owed
  })

  it('setRate changes the pace from now on', () => {
    let now = 0
    const b = new TokenBucket(1000, {now: () => now})
    expect(b.reserve(1000)).toBeCloseTo(1000)
    now = 1000
    b.setRate(100)
    expect(b.rate).toBe(100)
    expect(b.reserve(100)).toBeCloseTo(1000)
  })
})

describe('parseRate / parseTimeOption', () => {
  it('reads N, N/s, N/m, Nk/s', () => {
    expect(parseRate('2000')).toBe(2000)
    expect(parseRate('2000/s')).toBe(2000)
    expect(parseRate('120000/m')).toBe(2000)
    expect(parseRate('1.5k/s')).toBe(1500)
    expect(() => parseRate('fast')).toThrow(/not a rate/)
    expect(() => parseRate('0')).toThrow(/more than 0/)
  })
  it('needs a zone', () => {
    expect(parseTimeOption('2026-11-01T00:00:00Z', '--since')).toBe(Date.UTC(2026, 10, 1))
    expect(parseTimeOption('2026-11-01', '--since')).toBe(Date.UTC(2026, 10, 1))
    expect(() => parseTimeOption('2026-11-01T00:00:00', '--since')).toThrow(/with a zone/)
  })
})

const p = (committed: number | null, end: number): PartitionOffsets => ({
  topic: 't',
  partition: 0,
  end: BigInt(end),
  low: 0n,
  committed: committed === null ? null : BigInt(committed),
  lag: BigInt(end - (committed ?? 0)),
})
const times = (n: number) => Array.from({length: n}, (_, i) => i * 1000)

describe('Burrow-style evaluation', () => {
  it('OK when the lag is 0, or steady / shrinking while the consumer moves', () => {
    expect(evaluatePartition([p(0, 10), p(10, 10)], times(2), 1).status).toBe('OK')
    expect(evaluatePartition([p(0, 100), p(50, 120), p(110, 130)], times(3), 1).status).toBe('OK')
  })
  it('WARN when the lag grows at every sample although the consumer moves', () => {
    const v = evaluatePartition([p(0, 100), p(10, 200), p(20, 300)], times(3), 1)
    expect(v.status).toBe('WARN')
    expect(v.consumedPerSec).toBe(10)
  })
  it('STALL when the committed offset does not move over the window with lag, members present', () => {
    expect(evaluatePartition([p(5, 100), p(5, 100), p(5, 120)], times(3), 1).status).toBe('STALL')
  })
  it('STOP when nobody consumes', () => {
    expect(evaluatePartition([p(5, 100), p(5, 100)], times(2), 0).status).toBe('STOP')
    expect(evaluatePartition([p(null, 100)], times(1), 1).status).toBe('STOP')
  })
  it('ERR when the committed offset goes back', () => {
    expect(evaluatePartition([p(50, 100), p(10, 100)], times(2), 1).status).toBe('ERR')
  })
  it('the group is its worst partition; the window slides', () => {
    expect(worstStatus(['OK', 'WARN', 'STALL'])).toBe('STALL')
    const sample = (at: number, parts: PartitionOffsets[], members = 1): LagSample => ({at, group: 'g', state: 'Stable', members, partitions: parts, totalLag: parts.reduce((a, x) => a + x.lag, 0n)})
    const q = (partition: number, committed: number, end: number): PartitionOffsets => ({...p(committed, end), partition})
    const v = evaluateGroup([sample(0, [q(0, 0, 10), q(1, 0, 10)]), sample(1000, [q(0, 10, 10), q(1, 0, 10)])])
    expect(v.status).toBe('STALL')
    expect(v.partitions.map((x) => x.status)).toEqual(['OK', 'STALL'])
    expect(v.totalLag).toBe(10n)
    const w = new LagWindow(2)
    w.add(sample(0, [q(0, 0, 10)]))
    w.add(sample(1000, [q(0, 0, 10)]))
    expect(w.add(sample(2000, [q(0, 10, 10)])).status).toBe('OK')
  })
})

describe('Pacer with --max-lag', () => {
  const verdict = (lag: number, consumed = 1000) => ({status: 'OK' as const, totalLag: BigInt(lag), partitions: [], consumedPerSec: consumed, reason: 'test'})

  it('never lets measured lag + sent since the sample + the batch pass max-lag; logs each change with its reason', async () => {
    const entries: LogEntry[] = []
    const changes: PaceChange[] = []
    const pacer = new Pacer({maxLag: 1000, logger: createLogger({level: 'info', sink: (e) => entries.push(e)}), onChange: (c) => changes.push(c)})
    pacer.onLag(verdict(0), pacer.markSample())
    expect(await pacer.acquire(400)).toBe(true)
    expect(await pacer.acquire(400)).toBe(true)
    // 800 outstanding: 400 more would pass 1000; a new sample (lag 300, sample started now) opens it
    let done = false
    const waiting = pacer.acquire(400).then((ok) => (done = ok))
    await new Promise((r) => setTimeout(r, 20))
    expect(done).toBe(false)
    pacer.onLag(verdict(300), pacer.markSample())
    await waiting
    expect(done).toBe(true)
    // above max: paused until drained under half
    pacer.onLag(verdict(1200), pacer.markSample())
    expect(pacer.pace.mode).toBe('paused')
    pacer.onLag(verdict(700), pacer.markSample())
    expect(pacer.pace.mode).toBe('paused') // still above 500
    pacer.onLag(verdict(400), pacer.markSample())
    expect(pacer.pace.mode).toBe('full')
    pacer.onLag(verdict(800, 2000), pacer.markSample())
    expect(pacer.pace.mode).toBe('slow')
    expect(pacer.pace.rate).toBeCloseTo(2000 * 0.4)
    expect(changes.map((c) => c.mode)).toEqual(['paused', 'full', 'slow'])
    const logged = entries.filter((e) => e.event === 'backfill.pace')
    expect(logged.map((e) => e.pace)).toEqual(['paused', 'full', 'slow'])
    expect(logged.every((e) => typeof e.reason === 'string' && (e.reason as string).length > 0)).toBe(true)
    expect(pacer.pausedMs).toBeGreaterThan(0)
  })

  it('aborting a wait returns false', async () => {
    const pacer = new Pacer({maxLag: 10, logger: silentLogger})
    const c = new AbortController()
    const w = pacer.acquire(5, c.signal)
    c.abort()
    expect(await w).toBe(false)
  })
})

describe('backfill progress (ink)', () => {
  it('shows done/total, rate now and target, ETA and lag', () => {
    const prev = {label: 'backfill', done: 1000, elapsedMs: 1000, ratePerSec: 0, extra: {sent: 1000}}
    const cur = {label: 'backfill', done: 3000, elapsedMs: 2000, ratePerSec: 0, extra: {sent: 3000, rejected: 2, lag: 1234, bytes_done: 50, bytes_total: 100, paused_ms: 0}}
    const view = backfillView(prev, cur, 2000)
    expect(view.rateNow).toBe(2000)
    expect(view.etaS).toBeCloseTo(2)
    const {lastFrame} = render(createElement(BackfillProgress, {view}))
    const frame = lastFrame()!
    expect(frame).toContain('50.0%')
    expect(frame).toContain('sent 3,000')
    expect(frame).toContain('rate 2,000/s of 2,000/s')
    expect(frame).toContain('ETA 2 s')
    expect(frame).toContain('consumer lag 1,234')
  })
})
