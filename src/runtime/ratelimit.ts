/**
 * `--max-rate N`: a token bucket shared by all partitions of the process, paced against elapsed
 * time without a burst (run.ts). A fetched batch goes in slices of a second's worth (N records),
 * each taking as many tokens as it has records and committed before the next: the bucket may go
 * into debt, and the taker then waits until the debt is paid, so the rate is at most N records/s
 * with bursts of at most a quarter second's worth plus one slice.
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

/**
 * `dlq replay --rate N`: at most N records in any window of one second, from the first batch on.
 * A TokenBucket promises an average: it starts full, so the first second carried a second's worth
 * at once and the next one's on top (`--rate 5` sent 10 records in the first 1.2 s), and batches
 * of n records, each paid for after the one before, put n * ceil(N / n) records in some seconds.
 *
 * A batch's time is all of it from the moment it is let go (`take`) to the moment its sending
 * ended (`done`, or the next `take`): a Kafka transaction's records are stamped, appended and
 * made visible somewhere in there. A batch of n goes when the batches whose time reaches into the
 * second before it, with its own n records, are at most N, so that however a record's time is
 * read (its CreateTime, the broker's LogAppendTime, its commit) no second holds more than N. A
 * batch of more than N goes alone, once the second before it is empty.
 *
 * Batches spread over the second instead of leaving at its start: one goes no sooner than the
 * previous batch's share of a second (its records / N) after that one was due. A taker that
 * comes late keeps at most one share of credit: no catch-up burst. With batches of n the rate
 * reached is N rounded down to a multiple of n, a little less by the time sending takes (the
 * replay picks n near a divisor of N: src/dlq/replay.ts chunkUnderRate).
 */
export class WindowLimiter {
  /** batches of the last second, in the order let go: from `at` (ms) until `until` (Infinity while sending) */
  private readonly recent: {at: number; until: number; n: number}[] = []
  /** the spreading rule: no batch before this (ms) */
  private notBefore = -Infinity

  constructor(
    private readonly ratePerSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(ratePerSecond > 0)) throw new RangeError(`rate ${ratePerSecond}: must be more than 0`)
  }

  /** The records per second. */
  get rate(): number {
    return this.ratePerSecond
  }

  /** The earliest time (ms), at `t` or later, when a batch of `n` may go (Infinity: not before the batch being sent is done). */
  earliest(n: number, t: number): number {
    let at = Math.max(t, this.notBefore)
    let inWindow = 0
    for (const b of this.recent) if (b.until > at - 1000) inWindow += b.n
    // the oldest batches leave the second before `at` until this one fits (each ended before the next one went)
    for (const b of this.recent) {
      if (inWindow === 0 || inWindow + n <= this.ratePerSecond) break
      if (b.until <= at - 1000) continue
      inWindow -= b.n
      at = b.until + 1000
    }
    return at
  }

  /**
   * Waits until a batch of `n` may go and counts it as going: returns the time it went (ms), or
   * undefined when the signal aborted first (nothing counted). A batch still being sent is done now.
   */
  async take(n: number, signal?: AbortSignal): Promise<number | undefined> {
    this.done()
    for (;;) {
      if (signal?.aborted) return undefined
      const t = this.now()
      const at = this.earliest(n, t)
      if (at <= t) {
        while (this.recent.length > 0 && this.recent[0]!.until <= t - 1000) this.recent.shift()
        this.recent.push({at: t, until: Infinity, n})
        // the next share starts where this one was due (a timer that fired late does not slow
        // the pace), or at most one share before it went
        const share = (n * 1000) / this.ratePerSecond
        this.notBefore = (this.notBefore === -Infinity ? t : Math.max(this.notBefore, t - share)) + share
        return t
      }
      // timers may fire a millisecond early: the loop asks again
      await sleep(Math.max(1, Math.ceil(at - t)), signal)
    }
  }

  /** The batch last taken has been sent (its transaction committed, or failed): its time ends now. */
  done(): void {
    const last = this.recent[this.recent.length - 1]
    if (last !== undefined && last.until === Infinity) last.until = Math.max(last.at, this.now())
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
