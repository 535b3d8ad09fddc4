/**
 * The pace of a backfill: `--rate N[/s] --burst B` through the project's one token bucket
 * (src/runtime/ratelimit.ts, in its elapsed-time mode), and `--max-lag N --group G` through the
 * consumer group's lag, judged Burrow-style (./lag.ts):
 *
 *   lag < N/2                 full pace (the --rate, or unthrottled)
 *   N/2 <= lag < N            slow: the rate falls linearly from the full pace to 10 % of it as the
 *                             lag nears N (unthrottled, the full pace is what the consumers drained
 *                             over the window, at least 100/s)
 *   lag >= N                  paused until the lag drains back under N/2
 *   and always: a batch is sent only if the newest measured lag plus everything sent since that
 *   measurement was asked for, plus the batch, stays within N (or nothing is outstanding at all):
 *   the lag can never pass N by more than one batch, even between two samples.
 *
 * The bucket keeps at most CATCH_UP_MS (100 ms) of credit for a taker that wakes late or is held
 * up by the broker (two batches at the default batch size of 50 ms of --rate): enough for timer
 * lateness, and small enough that when the producer runs near its own maximum, repaying the credit
 * cannot lift a 10-s window's rate by more than ~1 % (with 250 ms it lifted a 10-s run at 50,000/s,
 * just within the producer's reach, by 2-3 %, measured as the slope of the topic's end offsets).
 *
 * Every change of pace is logged (`backfill.pace`) with its reason, and the time spent waiting
 * on the lag is counted in `pausedMs`.
 */
import {UsageError} from '../errors.js'
import type {Logger} from '../log.js'
import {sleep, TokenBucket} from '../runtime/ratelimit.js'
import type {GroupVerdict} from './lag.js'

/** `2000`, `2000/s`, `120000/m`, `1.5k/s` -> records per second. */
export function parseRate(text: string, flag = '--rate'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(k)?\s*(?:\/\s*(s|sec|second|m|min|minute|h|hour))?\s*$/i.exec(text)
  if (!m) throw new UsageError(`${flag} "${text}" is not a rate`, {hint: `write records per second: ${flag} 2000 or ${flag} 2000/s (or /m, /h)`})
  let n = Number(m[1]) * (m[2] ? 1000 : 1)
  const unit = (m[3] ?? 's').toLowerCase()
  if (unit.startsWith('m')) n /= 60
  else if (unit.startsWith('h')) n /= 3600
  if (!(n > 0)) throw new UsageError(`${flag} must be more than 0`, {hint: `for example ${flag} 2000/s`})
  return n
}

export type PaceMode = 'full' | 'slow' | 'paused'

/** Credit a late taker keeps, in ms of the rate (see the header). */
export const CATCH_UP_MS = 100

export interface PaceChange {
  at: number
  mode: PaceMode
  /** records per second now; null = unthrottled */
  rate: number | null
  reason: string
  lag: number | null
}

export interface PacerOptions {
  /** records per second (undefined: as fast as the producer goes) */
  rate?: number
  /** tokens available at once beyond the rate */
  burst?: number
  /** pause above this consumer lag (needs samples through `onLag`) */
  maxLag?: number
  logger: Logger
  onChange?: (c: PaceChange) => void
}

export class Pacer {
  private bucket: TokenBucket | undefined
  private mode: PaceMode = 'full'
  private factor = 1
  private currentRate: number | null
  /** records handed to the producer so far */
  private submitted = 0
  private lagMark = 0
  private lastLag: number | null = null
  private sampled: (() => void) | undefined
  pausedMs = 0
  changes = 0
  lastVerdict: GroupVerdict | undefined

  constructor(private readonly o: PacerOptions) {
    this.currentRate = o.rate ?? null
    if (o.rate !== undefined) this.bucket = new TokenBucket(o.rate, {burst: o.burst ?? 0, catchUpMs: CATCH_UP_MS})
  }

  get pace(): {mode: PaceMode; rate: number | null; lag: number | null} {
    return {mode: this.mode, rate: this.currentRate, lag: this.lastLag}
  }

  /** Call just before asking for a lag sample: records submitted after this may not be in it. */
  markSample(): number {
    return this.submitted
  }

  /** A new lag verdict (from a sample started at `mark`). */
  onLag(v: GroupVerdict, mark: number): void {
    this.lastVerdict = v
    this.lagMark = mark
    const lag = Number(v.totalLag)
    this.lastLag = lag
    const n = this.o.maxLag
    if (n !== undefined) {
      if (this.mode === 'paused' ? lag > n / 2 : lag >= n) {
        this.set('paused', 0, `lag ${lag} ${this.mode === 'paused' ? `still above ${Math.floor(n / 2)} (draining)` : `reached --max-lag ${n}`}; group ${v.status}: ${v.reason}`, lag)
      } else if (lag >= n / 2) {
        const f = Math.max(0.1, (n - lag) / (n / 2))
        this.set('slow', f, `lag ${lag} above ${Math.floor(n / 2)} (half of --max-lag ${n}); group ${v.status}: ${v.reason}`, lag, v.consumedPerSec)
      } else {
        this.set('full', 1, `lag ${lag} below ${Math.floor(n / 2)}; group ${v.status}`, lag)
      }
    }
    const wake = this.sampled
    this.sampled = undefined
    wake?.()
  }

  private set(mode: PaceMode, factor: number, reason: string, lag: number, consumedPerSec = 0): void {
    const base = this.o.rate ?? Math.max(100, consumedPerSec)
    const rate = mode === 'full' ? (this.o.rate ?? null) : mode === 'paused' ? 0 : base * factor
    const prev = this.currentRate
    const changed = mode !== this.mode || (mode === 'slow' && (prev === null || Math.abs(rate! - prev) > 0.1 * Math.max(prev, 1)))
    if (!changed) return
    this.mode = mode
    this.factor = factor
    this.currentRate = rate
    if (mode === 'slow') {
      if (this.bucket) this.bucket.setRate(rate!)
      else this.bucket = new TokenBucket(rate!, {burst: 0, catchUpMs: CATCH_UP_MS})
    } else if (mode === 'full') {
      if (this.o.rate !== undefined) this.bucket!.setRate(this.o.rate)
      else this.bucket = undefined
    }
    this.changes++
    const change: PaceChange = {at: Date.now(), mode, rate: rate === null ? null : Math.round(rate), reason, lag}
    this.o.logger.info('backfill.pace', {pace: mode, rate: change.rate, reason, lag})
    this.o.onChange?.(change)
  }

  private gateOpen(n: number): boolean {
    const max = this.o.maxLag
    if (max === undefined) return true
    if (this.lastLag === null) return false // no measurement yet
    if (this.mode === 'paused') return false
    const outstanding = this.lastLag + (this.submitted - this.lagMark)
    return outstanding === 0 || outstanding + n <= max
  }

  /**
   * Waits until `n` records may be sent: the lag gate (when --max-lag), then the tokens.
   * Returns false when the signal aborted while waiting.
   */
  async acquire(n: number, signal?: AbortSignal): Promise<boolean> {
    if (!this.gateOpen(n)) {
      const started = Date.now()
      let logged = false
      while (!this.gateOpen(n)) {
        if (signal?.aborted) break
        if (!logged && this.mode !== 'paused' && this.lastLag !== null) {
          logged = true
          this.o.logger.debug('backfill.pace.wait', {reason: `lag ${this.lastLag} + ${this.submitted - this.lagMark} sent since the sample + ${n} would pass --max-lag ${this.o.maxLag}`})
        }
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(t)
            signal?.removeEventListener('abort', done)
            resolve()
          }
          const t = setTimeout(done, 1500)
          this.sampled = done
          signal?.addEventListener('abort', done, {once: true})
        })
      }
      this.pausedMs += Date.now() - started
      this.bucket?.idle()
      if (signal?.aborted) return false
    }
    if (this.bucket) {
      const wait = this.bucket.reserve(n)
      if (wait > 0) await sleep(wait, signal)
      if (signal?.aborted) return false
    }
    this.submitted += n
    return true
  }
}
