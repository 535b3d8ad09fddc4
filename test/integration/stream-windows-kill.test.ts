/**
 * Window state under kill -9 (src/runtime/stages/window.ts): `bin/run.js stream run` is
 * SIGKILLed twice while it works on a two-partition topic, restarted, and run to the end. The
 * window state and the watermarks must be exactly those of an uninterrupted run over the same
 * records (another pipeline reading a copy of the topic): nothing counted twice, no record's
 * lateness judged against another watermark than its offset's.
 */
import {writeFileSync} from 'node:fs'
import {describe, expect, it, onTestFinished} from 'vitest'
import {cardTransactionSpec} from '../../fixtures/generator/pipeline.js'
import {mulberry32} from '../../fixtures/generator/transactions.js'
import {forgetWindowState} from '../../src/runtime/stages/window.js'
import {kcatConsume} from '../helpers.js'
import {committedOffsets, produce, sleep, startStream, streamFixture, type StreamFixture} from './stream-support.js'

const WINDOWS = `windows:
  - name: per_minute
    by: account_id
    size: 1m
    allowed_lateness: 1m
    aggregates: { txn_count: count, amount_sum: sum(amount), smallest: min(amount), latest: max(event_time) }
  - name: velocity
    by: account_id
    size: 10m
    slide: 1m
    allowed_lateness: 1m
    aggregates: { txn_count: count, amount_sum: sum(amount) }
`

/**
 * The spec of `f` reading through consumer group `group`. The offsets are in PostgreSQL (the
 * group's are not read), so each restart may take a group of its own: it then does not wait for
 * the killed member's session to time out (~10 s per kill) before it gets the partitions.
 */
function writeSpec(f: StreamFixture, group: string): void {
  writeFileSync(f.specFile, cardTransactionSpec({name: f.name, topic: f.topic, group, dlqTopic: f.dlqTopic, retry: {initial: '50ms', max: '2s'}, extra: WINDOWS}))
}

async function windowFixture(prefix: string): Promise<StreamFixture> {
  const f = await streamFixture({partitions: 2, prefix})
  writeSpec(f, `${f.name}-group`)
  onTestFinished(async () => {
    await forgetWindowState(f.pool, f.name)
  })
  return f
}

const state = async (f: StreamFixture) =>
  (
    await f.pool.query(
      `SELECT window_name, key, window_start::text, window_end::text, aggs FROM cutover.window_state WHERE pipeline = $1 ORDER BY window_name, key, window_start`,
      [f.name],
    )
  ).rows
const watermarks = async (f: StreamFixture) =>
  (await f.pool.query(`SELECT partition, to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS wm FROM cutover.window_watermarks WHERE pipeline = $1 ORDER BY partition`, [f.name])).rows

describe('stream run: windows under kill -9', () => {
  it('killed twice and restarted, leaves the window state and watermarks of an uninterrupted run', async () => {
    const n = 3000
    const random = mulberry32(Number(process.env.CUTOVER_STREAM_KILL_SEED ?? Date.now() % 100000))
    let clock = Date.parse('2026-11-20T10:00:00Z')
    const messages = []
    for (let i = 0; i < n; i++) {
      clock += Math.floor(random() * 400)
      const back = random() < 0.1 ? Math.floor(random() * 90_000) : 0
      const ts = new Date(clock - back).toISOString().replace('Z', `${String(Math.floor(random() * 1000)).padStart(3, '0')}Z`) // microseconds
      const cents = Math.floor(random() * 50_000)
      const value = {id: `k${i}`, acct: `acct-${Math.floor(random() * 5)}`, amt: `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`, ts}
      messages.push({key: value.id, value: Buffer.from(JSON.stringify(value))})
    }
    const killed = await windowFixture('windows-kill')
    const reference = await windowFixture('windows-ref')
    await produce(killed.topic, messages)
    await produce(reference.topic, messages)

    // small fetches: many batches, so the kills land between and inside transactions
    const args = ['--until-idle', '--idle-ms', '500', '--json', '--max-bytes-per-partition', '8192']
    const kills: string[] = []
    for (let k = 0; k < 2; k++) {
      writeSpec(killed, `${killed.name}-group-${k}`)
      const s = startStream(killed, args)
      const before = await committedOffsets(killed)
      const target = before + Math.floor(n * (0.1 + random() * 0.2))
      while ((await committedOffsets(killed)) < target && s.child.exitCode === null) await sleep(5)
      await sleep(Math.floor(random() * 20))
      expect(s.child.exitCode, 'it ended before the kill').toBeNull()
      s.child.kill('SIGKILL')
      await s.exited
      kills.push(`killed after ${(await committedOffsets(killed)) - before} records`)
    }
    writeSpec(killed, `${killed.name}-group-last`)
    const last = await startStream(killed, args).exited
    expect(last.code, last.stderr).toBe(0)
    expect(await committedOffsets(killed)).toBe(n)
    const ref = await startStream(reference, args).exited
    expect(ref.code, ref.stderr).toBe(0)
    expect(JSON.parse(ref.stdout)).toMatchObject({read: n})

    const expected = await state(reference)
    expect(expected.length).toBeGreaterThan(50)
    expect(await state(killed), kills.join('; ')).toEqual(expected)
    expect(await watermarks(killed)).toEqual(await watermarks(reference))
    expect((await watermarks(reference)).length).toBe(2)
    // the same records were late, once each
    const lateOf = (f: StreamFixture) => [...new Set(kcatConsume(f.dlqTopic).filter((d) => d.headers['cutover.error.code'] === 'LATE_EVENT').map((d) => d.key))].sort()
    const late = lateOf(reference)
    expect(late.length).toBeGreaterThan(0)
    expect(lateOf(killed)).toEqual(late)
  })
})
