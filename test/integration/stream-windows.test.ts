/**
 * Event-time windows through `bin/run.js stream run` against the real broker and PostgreSQL
 * (src/runtime/stages/window.ts): the state rows of a tumbling and a hopping window exactly, a
 * record beyond allowed_lateness dead-lettered as LATE_EVENT (read back from the DLQ with kcat)
 * and one within it counted in its older window; the same input in two runs gives the state and
 * watermark of one run; windows far behind the watermark are pruned.
 */
import {writeFileSync} from 'node:fs'
import {describe, expect, it, onTestFinished} from 'vitest'
import {cardTransactionSpec} from '../../fixtures/generator/pipeline.js'
import {mulberry32} from '../../fixtures/generator/transactions.js'
import {forgetWindowState} from '../../src/runtime/stages/window.js'
import {kcatConsume, runCli} from '../helpers.js'
import {produce, streamFixture, type StreamFixture} from './stream-support.js'

const WINDOWS = `windows:
  - name: per_minute
    by: account_id
    size: 1m
    allowed_lateness: 2m
    aggregates: { txn_count: count, amount_sum: sum(amount) }
  - name: velocity
    by: account_id
    size: 10m
    slide: 1m
    allowed_lateness: 2m
    aggregates: { txn_count: count, amount_sum: sum(amount) }
`

const MIN = 60_000

/** A topic and schema of the card-transactions pipeline (stream-support streamFixture) with `windows` in its spec. */
async function windowFixture(prefix: string, windows = WINDOWS, partitions = 1): Promise<StreamFixture> {
  const f = await streamFixture({partitions, prefix})
  writeFileSync(f.specFile, cardTransactionSpec({name: f.name, topic: f.topic, group: `${f.name}-group`, dlqTopic: f.dlqTopic, retry: {initial: '50ms', max: '2s'}, extra: windows}))
  onTestFinished(async () => {
    await forgetWindowState(f.pool, f.name)
  })
  return f
}

interface Txn {
  id: string
  acct: string
  amt: string
  ts: string
}

const message = (t: Txn) => ({key: t.id, value: Buffer.from(JSON.stringify(t))})

async function run(f: StreamFixture) {
  const r = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '500', '--json'])
  expect(r.code, r.stderr).toBe(0)
  return r.json as {read: number; written: number; dead_lettered: Record<string, number>}
}

interface Row {
  window: string
  key: string
  start: string
  end: string
  aggs: Record<string, string | null>
}

/** The pipeline's window rows, in order, without the pipeline's name (to compare two pipelines). */
async function stateOf(f: StreamFixture, pipeline = f.name): Promise<Row[]> {
  const r = await f.pool.query<Row>(
    `SELECT window_name AS window, key, to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS start,
            to_char(window_end AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS end, aggs
       FROM cutover.window_state WHERE pipeline = $1 ORDER BY window_name, key, window_start`,
    [pipeline],
  )
  return r.rows
}

async function watermarksOf(f: StreamFixture, pipeline = f.name): Promise<{partition: number; wm: string}[]> {
  const r = await f.pool.query<{partition: number; wm: string}>(
    `SELECT partition, to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS wm FROM cutover.window_watermarks WHERE pipeline = $1 ORDER BY partition`,
    [pipeline],
  )
  return r.rows
}

const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z')

/**
 * The oracle: the rows the windows must hold after `counted` (the records not late), by the
 * definition (every s, a multiple of slide, with s <= t < s + size), counts and sums in cents.
 */
function expectedRows(counted: readonly Txn[], windows: {name: string; size: number; slide: number}[]): Row[] {
  const rows: Row[] = []
  for (const w of windows) {
    const by = new Map<string, {n: number; cents: bigint}>()
    for (const t of counted) {
      const ms = Date.parse(t.ts)
      for (let s = Math.floor(ms / w.slide) * w.slide; s > ms - w.size; s -= w.slide) {
        const id = `${t.acct}|${s}`
        const a = by.get(id) ?? {n: 0, cents: 0n}
        a.n++
        a.cents += BigInt(t.amt.replace('.', ''))
        by.set(id, a)
      }
    }
    const entries = [...by].map(([id, a]) => {
      const [key, s] = id.split('|') as [string, string]
      return {key, s: Number(s), a}
    })
    entries.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : x.s - y.s))
    for (const {key, s, a} of entries) {
      const abs = a.cents < 0n ? -a.cents : a.cents
      const sum = `${a.cents < 0n ? '-' : ''}${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`
      rows.push({window: w.name, key, start: iso(s), end: iso(s + w.size), aggs: {txn_count: String(a.n), amount_sum: sum}})
    }
  }
  return rows.sort((x, y) => (x.window < y.window ? -1 : x.window > y.window ? 1 : 0))
}

const BOTH = [
  {name: 'per_minute', size: MIN, slide: MIN},
  {name: 'velocity', size: 10 * MIN, slide: MIN},
]

describe('stream run: event-time windows', () => {
  it('keeps the windows exactly; a record beyond allowed_lateness is LATE_EVENT in the DLQ, one within it counts in its older window', async () => {
    const f = await windowFixture('windows')
    const T = (hms: string) => `2026-11-20T${hms}Z`
    const txns: Txn[] = [
      {id: 't1', acct: 'A', amt: '1.00', ts: T('10:00:10')},
      {id: 't2', acct: 'A', amt: '2.50', ts: T('10:00:50')},
      {id: 't3', acct: 'B', amt: '5.00', ts: T('10:00:30')},
      {id: 't4', acct: 'A', amt: '0.10', ts: T('10:01:10')},
      {id: 't5', acct: 'B', amt: '7.77', ts: T('10:05:00')}, // the watermark: 10:05
      {id: 't6', acct: 'A', amt: '3.00', ts: T('10:03:30')}, // 1m30s behind: within 2m, counted in 10:03's windows
      {id: 't7', acct: 'A', amt: '9.99', ts: T('10:02:00')}, // 3m behind: LATE_EVENT
      {id: 't8', acct: 'B', amt: '0.01', ts: T('10:06:00')},
    ]
    await produce(f.topic, txns.map(message))
    expect(await run(f)).toMatchObject({read: 8, written: 7, dead_lettered: {LATE_EVENT: 1}})

    const state = await stateOf(f)
    expect(state.filter((r) => r.window === 'per_minute')).toEqual([
      {window: 'per_minute', key: 'A', start: T('10:00:00'), end: T('10:01:00'), aggs: {txn_count: '2', amount_sum: '3.50'}},
      {window: 'per_minute', key: 'A', start: T('10:01:00'), end: T('10:02:00'), aggs: {txn_count: '1', amount_sum: '0.10'}},
      {window: 'per_minute', key: 'A', start: T('10:03:00'), end: T('10:04:00'), aggs: {txn_count: '1', amount_sum: '3.00'}},
      {window: 'per_minute', key: 'B', start: T('10:00:00'), end: T('10:01:00'), aggs: {txn_count: '1', amount_sum: '5.00'}},
      {window: 'per_minute', key: 'B', start: T('10:05:00'), end: T('10:06:00'), aggs: {txn_count: '1', amount_sum: '7.77'}},
      {window: 'per_minute', key: 'B', start: T('10:06:00'), end: T('10:07:00'), aggs: {txn_count: '1', amount_sum: '0.01'}},
    ])
    // the hopping window: every row, by the oracle; and one spelled out (A's window starting
    // 10:00 holds t1, t2, t4 and the late-but-allowed t6)
    expect(state).toEqual(expectedRows(txns.filter((t) => t.id !== 't7'), BOTH))
    expect(state.find((r) => r.window === 'velocity' && r.key === 'A' && r.start === T('10:00:00'))!.aggs).toEqual({txn_count: '4', amount_sum: '6.60'})
    expect(await watermarksOf(f)).toEqual([{partition: 0, wm: '2026-11-20T10:06:00.000000Z'}])

    const dlq = kcatConsume(f.dlqTopic)
    expect(dlq).toHaveLength(1)
    expect(dlq[0]!.key).toBe('t7')
    expect(dlq[0]!.headers).toMatchObject({
      'cutover.error.code': 'LATE_EVENT',
      'cutover.error.stage': 'window',
      'cutover.error.message': "event_time 2026-11-20T10:02:00.000Z is 3m 0s behind the partition's watermark 2026-11-20T10:05:00.000Z, more than allowed_lateness 2m of window per_minute",
      'cutover.source.offset': '6',
    })
  })

  it('dlq replay --dry-run predicts a LATE_EVENT late again, until allowed_lateness covers it; then the replay writes it', async () => {
    const f = await windowFixture('windows-late-replay', WINDOWS, 2)
    const T = (hms: string) => `2026-11-20T${hms}Z`
    await produce(f.topic, [
      {id: 'a1', acct: 'A', amt: '1.00', ts: T('10:00:10')},
      {id: 'a2', acct: 'A', amt: '2.00', ts: T('10:05:00')},
      {id: 'a3', acct: 'A', amt: '3.00', ts: T('10:02:00')}, // 3m behind 10:05: LATE_EVENT
      {id: 'b1', acct: 'B', amt: '4.00', ts: T('10:04:00')},
    ].map((t) => ({...message(t), partition: t.acct === "A" ? 0 : 1})))
    expect(await run(f)).toMatchObject({read: 4, written: 3, dead_lettered: {LATE_EVENT: 1}})
    // watermarks 10:05 (partition 0) and 10:04 (partition 1): 10:02 is 2m behind the smaller, not more than 2m
    const dry = async () => {
      const r = await runCli(['dlq', 'replay', '--topic', f.dlqTopic, '--spec', f.specFile, '--dry-run', '--json'])
      expect(r.code, r.stderr).toBe(0)
      return (r.json as {prediction: Record<string, unknown>}).prediction
    }
    expect(await dry()).toEqual({LATE_EVENT: {selected: 1, would_pass: 1, duplicates: 0, still_failing: {}, would_park: 0}})
    // the later partition moves on: 10:02 is more than 2m behind both
    await produce(f.topic, [{...message({id: 'b2', acct: 'B', amt: '5.00', ts: T('10:06:00')}), partition: 1}])
    expect(await run(f)).toMatchObject({read: 1, written: 1})
    expect(await dry()).toEqual({LATE_EVENT: {selected: 1, would_pass: 0, duplicates: 0, still_failing: {LATE_EVENT: 1}, would_park: 0}})
    // allowed_lateness 10m on both windows: it would pass, and a real replay writes it
    writeFileSync(f.specFile, cardTransactionSpec({name: f.name, topic: f.topic, group: `${f.name}-group`, dlqTopic: f.dlqTopic, retry: {initial: '50ms', max: '2s'}, extra: WINDOWS.replaceAll('allowed_lateness: 2m', 'allowed_lateness: 10m')}))
    expect(await dry()).toEqual({LATE_EVENT: {selected: 1, would_pass: 1, duplicates: 0, still_failing: {}, would_park: 0}})
    const replay = await runCli(['dlq', 'replay', '--topic', f.dlqTopic, '--spec', f.specFile, '--json'])
    expect(replay.code, replay.stderr).toBe(0)
    expect(await run(f)).toMatchObject({read: 1, written: 1, dead_lettered: {}})
    expect((await f.pool.query(`SELECT txn_id FROM "${f.schema}".txn_clean ORDER BY txn_id`)).rows.map((r: {txn_id: string}) => r.txn_id)).toEqual(['a1', 'a2', 'a3', 'b1', 'b2'])
  })

  it('the same input in two runs leaves the state and watermark of one run', async () => {
    const random = mulberry32(7)
    const base = Date.parse('2026-11-20T10:00:00Z')
    const txns: Txn[] = []
    let clock = base
    for (let i = 0; i < 240; i++) {
      clock += Math.floor(random() * 20_000)
      // now and then a record behind the clock: within allowed_lateness or beyond it
      const back = random() < 0.15 ? Math.floor(random() * 4 * MIN) : 0
      const cents = Math.floor(random() * 100_000) - 20_000
      const amt = `${cents < 0 ? '-' : ''}${Math.floor(Math.abs(cents) / 100)}.${String(Math.abs(cents) % 100).padStart(2, '0')}`
      txns.push({id: `x${i}`, acct: `acct-${Math.floor(random() * 3)}`, amt, ts: new Date(clock - back).toISOString()})
    }
    const twice = await windowFixture('windows-twice')
    const once = await windowFixture('windows-once')
    await produce(twice.topic, txns.slice(0, 100).map(message))
    const first = await run(twice)
    await produce(twice.topic, txns.slice(100).map(message))
    const second = await run(twice)
    await produce(once.topic, txns.map(message))
    const all = await run(once)
    expect(first.read + second.read).toBe(240)
    expect(all.read).toBe(240)
    expect((first.dead_lettered.LATE_EVENT ?? 0) + (second.dead_lettered.LATE_EVENT ?? 0)).toBe(all.dead_lettered.LATE_EVENT ?? 0)
    expect(all.dead_lettered.LATE_EVENT).toBeGreaterThan(0)
    const state = await stateOf(once)
    expect(state.length).toBeGreaterThan(100)
    expect(await stateOf(twice)).toEqual(state)
    expect(await watermarksOf(twice)).toEqual(await watermarksOf(once))
    // and it is the oracle's: the records not dead-lettered, each in its windows
    const late = new Set(kcatConsume(once.dlqTopic).map((d) => d.key))
    expect(late.size).toBe(all.dead_lettered.LATE_EVENT)
    expect(state).toEqual(expectedRows(txns.filter((t) => !late.has(t.id)), BOTH))
  })

  it('prunes windows that ended more than allowed_lateness + 1 h before the watermark', async () => {
    const f = await windowFixture('windows-prune')
    const T = (hms: string) => `2026-11-20T${hms}Z`
    const early: Txn[] = [
      {id: 'e1', acct: 'A', amt: '1.00', ts: T('10:00:00')},
      {id: 'e2', acct: 'A', amt: '2.00', ts: T('10:55:30')},
      {id: 'e3', acct: 'A', amt: '4.00', ts: T('11:00:10')},
    ]
    await produce(f.topic, early.map(message))
    await run(f)
    expect(await stateOf(f)).toEqual(expectedRows(early, BOTH)) // nothing pruned: the watermark is 11:00:10
    // a new run (its first batch prunes) with the watermark at 12:00: windows that ended before
    // 12:00 - 2m - 1h = 10:58 go; one that ends at 10:58 stays
    const late: Txn[] = [{id: 'l1', acct: 'B', amt: '8.00', ts: T('12:00:00')}]
    await produce(f.topic, late.map(message))
    await run(f)
    const kept = expectedRows([...early, ...late], BOTH).filter((r) => r.end >= T('10:58:00'))
    expect(kept.some((r) => r.end === T('10:58:00'))).toBe(true)
    expect(await stateOf(f)).toEqual(kept)
    expect(kept.some((r) => r.key === 'A' && r.start === T('10:55:00') && r.window === 'per_minute')).toBe(false)
  })

  it('a partition without a watermark yet holds the prune back: its old records count in the windows the others counted in', async () => {
    const f = await windowFixture('windows-prune-wait', WINDOWS, 2)
    const T = (hms: string) => `2026-11-20T${hms}Z`
    // partition 0 runs two hours ahead; partition 1 has committed nothing yet
    const ahead: Txn[] = [
      {id: 'p0a', acct: 'A', amt: '1.00', ts: T('10:00:00')},
      {id: 'p0b', acct: 'A', amt: '2.00', ts: T('12:00:00')},
    ]
    await produce(f.topic, ahead.map((t) => ({...message(t), partition: 0})))
    await run(f)
    expect(await watermarksOf(f)).toEqual([{partition: 0, wm: '2026-11-20T12:00:00.000000Z'}])
    // the 10:00 windows stay (a prune against partition 0's watermark alone would have deleted them)
    expect(await stateOf(f)).toEqual(expectedRows(ahead, BOTH))
    // partition 1's first record, of 10:00:30, is not late (its partition's first) and adds to them
    const behind: Txn[] = [{id: 'p1a', acct: 'A', amt: '4.00', ts: T('10:00:30')}]
    await produce(f.topic, behind.map((t) => ({...message(t), partition: 1})))
    const r = await run(f)
    expect(r).toMatchObject({read: 1, written: 1})
    const rows = await stateOf(f)
    expect(rows).toEqual(expectedRows([...ahead, ...behind], BOTH))
    expect(rows.find((x) => x.window === 'per_minute' && x.start === T('10:00:00'))!.aggs).toEqual({txn_count: '2', amount_sum: '5.00'})
  })
})
