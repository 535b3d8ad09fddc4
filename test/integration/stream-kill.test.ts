/**
 * Kill -9 at random points: `bin/run.js stream run` is SIGKILLed five times while it works
 * (after a random amount of progress, or at a random instant of its start-up), restarted each
 * time, then run to the end. The final state must be the one a correct uninterrupted run
 * leaves (computed from the generator): same rows, same aggregates (incremented exactly once),
 * and the dead letters — once repeats from a relay killed between send and mark are dropped
 * by their source partition/offset headers — exactly the expected ones.
 */
import {describe, expect, it} from 'vitest'
import {compareWithExpected, readSinkState} from '../../fixtures/generator/pipeline.js'
import {expectedState, generateTransactions, mulberry32} from '../../fixtures/generator/transactions.js'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {kcatConsume} from '../helpers.js'
import {committedOffsets, fromGenerated, produce, sleep, startStream, streamFixture, testRecords} from './stream-support.js'

describe('stream run: kill -9', () => {
  it('killed at 5 random points and restarted, ends in the state of an uninterrupted run', async () => {
    const n = testRecords()
    const f = await streamFixture({partitions: 6, prefix: 'stream-kill'})
    const txns = generateTransactions(n, {seed: 99, dirty: 0.05})
    const expected = expectedState(txns)
    await produce(f.topic, fromGenerated(txns))
    const random = mulberry32(Number(process.env.CUTOVER_STREAM_KILL_SEED ?? Date.now() % 100000))
    // small fetches: many batches, so the kills land between and inside transactions
    const args = ['--until-idle', '--idle-ms', '500', '--json', '--max-bytes-per-partition', '32768']
    const kills: string[] = []
    for (let k = 0; k < 5; k++) {
      const s = startStream(f, args)
      const before = await committedOffsets(f)
      if (k === 2) {
        await sleep(Math.floor(random() * 1500)) // somewhere in start-up or the first batches
      } else {
        const target = before + Math.max(1, Math.floor(n * (0.04 + random() * 0.1)))
        while ((await committedOffsets(f)) < target && s.child.exitCode === null) await sleep(5)
        await sleep(Math.floor(random() * 20))
      }
      const alive = s.child.exitCode === null
      s.child.kill('SIGKILL')
      const r = await s.exited
      kills.push(`${alive ? 'killed' : `exited ${r.code}`} after ${(await committedOffsets(f)) - before} records`)
      if (!alive) expect(r.code, r.stderr).toBe(0)
    }
    expect(kills.filter((k) => k.startsWith('killed')), kills.join('; ')).toHaveLength(5)
    console.info(`stream-kill: ${kills.join('; ')}`)
    const last = startStream(f, args)
    const r = await last.exited
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out.lag_end).toBe(0)
    expect(await committedOffsets(f), kills.join('; ')).toBe(n)

    // sink rows and aggregates: identical to the expected final state
    expect(compareWithExpected(await readSinkState(f.pool, f.schema), expected), kills.join('; ')).toEqual([])
    const keys = await f.pool.query<{n: number}>('SELECT count(*)::int AS n FROM cutover.stream_dedupe WHERE pipeline = $1', [f.name])
    expect(keys.rows[0]!.n).toBe(expected.rows.size)

    // dead letters: each source record exactly once after dropping relay repeats by their headers
    const dlq = kcatConsume(f.dlqTopic)
    const unique = new Map<string, string>()
    for (const d of dlq) unique.set(`${d.headers['cutover.source.partition']}/${d.headers['cutover.source.offset']}`, d.headers['cutover.error.code']!)
    expect(unique.size).toBe(expected.deadLetteredTotal)
    const byCode: Record<string, number> = {}
    for (const code of unique.values()) byCode[code] = (byCode[code] ?? 0) + 1
    expect(byCode).toEqual(expected.deadLettered)
    const unsent = await f.pool.query<{n: number}>('SELECT count(*)::int AS n FROM cutover.outbox WHERE pipeline = $1 AND sent_at IS NULL', [f.name])
    expect(unsent.rows[0]!.n).toBe(0)
  })
})
