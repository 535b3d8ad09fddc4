/**
 * WindowLimiter (`dlq replay --rate N`): at most N records in any window of one second, on a
 * fake clock. The taker advances the clock to the time the limiter names (no real waits).
 */
import {describe, expect, it} from 'vitest'
import {WindowLimiter} from '../../src/runtime/ratelimit.js'

interface Batch {
  /** let go */
  at: number
  /** its sending done */
  until: number
  n: number
}

/**
 * Batches of `batches[i]` records through a limiter of `rate`: `delays[i]` ms pass before batch i
 * is taken, its sending takes `sending[i]` ms (default 5).
 */
async function run(rate: number, batches: number[], delays: number[] = [], sending: number[] = []): Promise<Batch[]> {
  let clock = 10_000
  const limiter = new WindowLimiter(rate, () => clock)
  const out: Batch[] = []
  for (const [i, n] of batches.entries()) {
    clock += delays[i] ?? 0
    clock = Math.max(clock, Math.ceil(limiter.earliest(n, clock)))
    const at = await limiter.take(n)
    expect(at).toBe(clock) // no wait left: the taker came at the time named
    clock += sending[i] ?? 5
    limiter.done()
    out.push({at: at!, until: clock, n})
  }
  return out
}

/**
 * The most records one window [t, t + 1 s) can hold, each record's time being anywhere in its
 * batch's [at, until] (its CreateTime, its append, its commit): the batches reaching into it.
 */
function mostInOneSecond(batches: Batch[]): number {
  const starts = batches.flatMap((b) => [b.at - 999, b.until])
  let most = 0
  for (const t of starts) most = Math.max(most, batches.filter((b) => b.at < t + 1000 && b.until >= t).reduce((s, b) => s + b.n, 0))
  return most
}

describe('WindowLimiter', () => {
  it('starts empty-handed: the first second carries N, spread over it', async () => {
    const r = await run(5, Array(20).fill(1), [], Array(20).fill(0))
    expect(mostInOneSecond(r)).toBe(5)
    expect(r.slice(0, 6).map((x) => x.at - r[0]!.at)).toEqual([0, 200, 400, 600, 800, 1000])
    // sending that takes no time: the rate is reached, 20 records in 3.8 s
    expect(r[19]!.at - r[0]!.at).toBe(3800)
    // sending that takes time: still at most 5, however a record's time is read
    expect(mostInOneSecond(await run(5, Array(20).fill(1), [], Array(20).fill(30)))).toBe(5)
  })

  it('batches that do not divide N never put more than N in a second', async () => {
    for (const [rate, n] of [
      [5, 2],
      [7, 3],
      [20, 6],
    ] as const) {
      const r = await run(rate, Array(30).fill(n), [], Array(30).fill(20))
      expect(mostInOneSecond(r), `rate ${rate}, batches of ${n}`).toBeLessThanOrEqual(rate)
    }
  })

  it('batches of varying sizes, a taker that comes late, sending that stalls: no burst', async () => {
    const sizes = [2, 1, 2, 2, 1, 1, 2, 2, 2, 1, 2, 1, 1, 2, 2, 2, 1, 2]
    const delays = [0, 0, 700, 0, 0, 1300, 0, 0, 0, 450, 0, 0, 0, 2000, 0, 0, 0, 0]
    const sending = [5, 300, 5, 5, 900, 5, 5, 5, 1500, 5, 5, 5, 5, 5, 250, 5, 5, 5]
    const r = await run(5, sizes, delays, sending)
    expect(mostInOneSecond(r)).toBeLessThanOrEqual(5)
  })

  it('a batch of more than N goes alone, once the second before it is empty', async () => {
    const r = await run(5, [1, 8, 1], [], [0, 0, 0])
    expect(r[1]!.at - r[0]!.at).toBe(1000)
    expect(r[2]!.at - r[1]!.at).toBeGreaterThanOrEqual(1000)
  })

  it('an aborted wait counts nothing', async () => {
    const limiter = new WindowLimiter(1)
    expect(await limiter.take(1)).toBeTypeOf('number')
    const c = new AbortController()
    const waiting = limiter.take(1, c.signal)
    c.abort()
    expect(await waiting).toBeUndefined()
  })
})
