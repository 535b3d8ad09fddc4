/**
 * `--max-rate N`: a token bucket shared by all partitions of the process. A batch takes as many
 * tokens as it has records; the bucket may go into debt (a batch is never split), and the taker
 * then waits until the debt is paid, so the long-run rate is at most N records/s with bursts of
 * at most one second's worth plus one batch.
 *
 * With options (`backfill --rate N --burst B`), the bucket paces against elapsed time rather than
 * timer ticks: it starts with `burst` tokens (default 0), and a taker that wakes up late, or is
 * held up by the broker, keeps the credit of that time up to `catchUpMs` (default 250 ms; backfill's
 * Pacer passes 100 ms, see src/backfill/pacing.ts) worth of
 * records, so timer lateness and short stalls do not lower the achieved rate; the credit is capped
 * at max(burst, the batch being taken, catchUpMs worth). `idle()` forgets credit earned while the
 * taker was deliberately paused. The rate can be changed while running (`setRate`).
 */
export interface TokenBucketOptions {
  /** tokens that may be taken at once beyond the rate (capacity and initial fill); default 0 */
  burst?: number
  /** how much elapsed time a late taker may catch up on, in ms (default 250: a catch-up burst moves no 5-s window by more than 5 %) */
  catchUpMs?: number
  /** the clock in ms (tests); default Date.now */
  now?: () => number
}

export class TokenBucket {
  private tokens: number
  private last: number
  private readonly capacity: number
  private readonly now: () => number
  private readonly elapsedMode: boolean
  private readonly catchUpMs: number
  private started = false

  constructor(
    private ratePerSecond: number,
    options?: TokenBucketOptions,
  ) {
    this.elapsedMode = options !== undefined
    this.catchUpMs = options?.catchUpMs ?? 250
    this.now = options?.now ?? Date.now
    this.last = this.now()
    this.capacity = this.elapsedMode ? Math.max(0, options?.burst ?? 0) : ratePerSecond
    this.tokens = this.capacity
  }

  /** The current rate, records per second. */
  get rate(): number {
    return this.ratePerSecond
  }

  private refill(cap: number): void {
    const now = this.now()
    this.tokens = Math.min(cap, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond)
    this.last = now
  }

  /** Changes the rate from now on (elapsed-time mode). */
  setRate(ratePerSecond: number): void {
    if (ratePerSecond === this.ratePerSecond) return
    if (this.elapsedMode && !this.started) {
      this.ratePerSecond = ratePerSecond
      return
    }
    this.refill(Math.max(this.capacity, this.tokens))
    this.ratePerSecond = ratePerSecond
  }

  /** Forgets the credit earned since the last take (after a deliberate pause). */
  idle(): void {
    this.last = this.now()
    this.tokens = Math.min(this.tokens, this.capacity)
  }

  /** Milliseconds until `n` tokens are paid for, having taken them (the debt is recorded). */
  reserve(n: number): number {
    if (this.elapsedMode && !this.started) {
      // the clock starts at the first take: time spent before it (connecting, reading) is no credit
      this.started = true
      this.last = this.now()
    }
    this.refill(this.elapsedMode ? Math.max(this.capacity, n, (this.ratePerSecond * this.catchUpMs) / 1000) : this.capacity)
    this.tokens -= n
    return this.tokens >= 0 ? 0 : (-this.tokens / this.ratePerSecond) * 1000
  }

  /** Waits until `n` tokens are paid for (or the signal aborts). */
  async take(n: number, signal?: AbortSignal): Promise<void> {
    const wait = this.reserve(n)
    if (wait > 0) await sleep(wait, signal)
  }
}

/** setTimeout as a promise that resolves early when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const t = setTimeout(done, ms)
    function done() {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, {once: true})
  })
}

/** Exponential backoff with full jitter: a random delay in [initial, min(max, initial * 2^(attempt-1))]. */
export function backoffMs(attempt: number, initial: number, max: number, random: () => number = Math.random): number {
  const cap = Math.min(max, initial * 2 ** Math.max(0, attempt - 1))
  return Math.round(initial + random() * Math.max(0, cap - initial))
}
