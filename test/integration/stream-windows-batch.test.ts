/**
 * The window stage (src/runtime/stages/window.ts) in the batch transaction, against the real
 * PostgreSQL (batch.ts commitBatch / commitBatches, no Kafka): each record's running values
 * (`item.windows`, what the rules stage reads), the state rows, the watermark per partition
 * (a record late for partition 0 is not late on partition 1, also in one group transaction), a
 * record late for the window of the smaller lateness dead-lettered naming it, a transaction
 * run again (a plain INSERT met an existing key) counting its records once, the watermark gauge,
 * and a window kept by a lookup column of enrich.
 */
import {describe, expect, it, onTestFinished} from 'vitest'
import {commitBatch, commitBatches, InsertFirst, type BatchOutcome} from '../../src/runtime/batch.js'
import {RuntimeMetrics} from '../../src/runtime/metrics.js'
import {pgArray} from '../../src/runtime/sinks/pgarray.js'
import {startStages} from '../../src/runtime/stages/index.js'
import {forgetWindowState, mergeValues, upsertSql, type AggValues, type WindowAggregate} from '../../src/runtime/stages/window.js'
import type {WorkItem} from '../../src/runtime/types.js'
import {batchFixture} from './stream-support.js'

const SPEC = `fields:
  id: {type: string, required: true}
  acct: {type: string, required: true}
  amount: {type: decimal, scale: 2, required: true}
  ts: {type: timestamp, required: true, formats: [iso]}
key: id
event_time: ts
dedupe: {by: id}
windows:
  - name: minute
    by: acct
    size: 1m
    allowed_lateness: 1m
    aggregates: {n: count, total: sum(amount)}
  - name: velocity
    by: acct
    size: 10m
    slide: 1m
    allowed_lateness: 5m
    aggregates: {txn_count: count, amount_sum: sum(amount), smallest: min(amount), last_ts: max(ts)}
sinks: [{table: t}]
`

type Rec = {id: string; acct: string; amount: string; ts: string}

async function setup() {
  const f = await batchFixture({prefix: 'windows', tables: (schema) => [`CREATE TABLE "${schema}".t (id text PRIMARY KEY, acct text, amount numeric(12,2), ts timestamptz)`], spec: SPEC})
  onTestFinished(async () => {
    for (const table of ['window_state', 'window_watermarks', 'stream_offsets', 'stream_dedupe', 'outbox']) await f.pool.query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [f.name])
  })
  /** records `recs` as offsets `from`.. of `partition` */
  const batch = (partition: number, from: number, recs: Rec[]) => f.batch(partition, from, from + recs.length - 1, (o) => recs[o - from]!)
  const state = async (window: string) =>
    (
      await f.pool.query<{key: string; start: string; end: string; aggs: Record<string, string | null>}>(
        `SELECT key, to_char(window_start AT TIME ZONE 'UTC', 'HH24:MI') AS start, to_char(window_end AT TIME ZONE 'UTC', 'HH24:MI') AS end, aggs
           FROM cutover.window_state WHERE pipeline = $1 AND window_name = $2 ORDER BY key, window_start`,
        [f.name, window],
      )
    ).rows
  const watermarks = async () =>
    (await f.pool.query<{partition: number; wm: string}>(`SELECT partition, to_char(watermark AT TIME ZONE 'UTC', 'HH24:MI:SS.US') AS wm FROM cutover.window_watermarks WHERE pipeline = $1 ORDER BY partition`, [f.name])).rows
  return {...f, batch, state, watermarks}
}

const T = (hms: string) => `2026-11-20T${hms}Z`
/** the normalized text of T(hms) of a whole second */
const N = (hms: string) => `2026-11-20T${hms}.000Z`
const committed = (o: BatchOutcome) => {
  if (o.kind !== 'committed') throw new Error(`batch not committed: ${o.kind}`)
  return o
}
/** what the rules stage would read of the record with id `id` */
const seen = (items: WorkItem[], id: string) => items.find((i) => i.record?.id === id)?.windows

describe('window stage: the batch transaction', () => {
  it('each record sees its window after itself and the records before it; the state holds the totals; a late record names the window it is late for', async () => {
    const s = await setup()
    const one = committed(
      await commitBatch(
        s.deps,
        await s.batch(0, 0, [
          {id: 'a1', acct: 'A', amount: '1.00', ts: T('10:00:10')},
          {id: 'a2', acct: 'A', amount: '2.50', ts: T('10:00:20')},
          {id: 'b1', acct: 'B', amount: '5.00', ts: T('10:00:40')},
          {id: 'a3', acct: 'A', amount: '0.10', ts: T('10:00:30.000001')},
          {id: 'a1', acct: 'A', amount: '1.00', ts: T('10:00:10')}, // an identical repeat: dropped by dedupe, not counted
          {id: 'a4', acct: 'A', amount: '1.00', ts: T('10:01:05')},
        ]),
        1,
      ),
    )
    expect(one.counts).toMatchObject({written: 5, duplicates: 1})
    // the 3rd record of A in an empty window sees count 3
    expect(seen(one.items, 'a3')).toEqual({
      minute: {start: '2026-11-20T10:00:00.000Z', end: '2026-11-20T10:01:00.000Z', key: 'A', values: {n: '3', total: '3.60'}},
      velocity: {start: '2026-11-20T09:51:00.000Z', end: '2026-11-20T10:01:00.000Z', key: 'A', values: {txn_count: '3', amount_sum: '3.60', smallest: '0.10', last_ts: T('10:00:30.000001')}},
    })
    expect(seen(one.items, 'a1')!.minute!.values).toEqual({n: '1', total: '1.00'})
    expect(seen(one.items, 'b1')!.minute).toEqual({start: '2026-11-20T10:00:00.000Z', end: '2026-11-20T10:01:00.000Z', key: 'B', values: {n: '1', total: '5.00'}})
    expect(seen(one.items, 'a4')).toEqual({
      minute: {start: '2026-11-20T10:01:00.000Z', end: '2026-11-20T10:02:00.000Z', key: 'A', values: {n: '1', total: '1.00'}},
      velocity: {start: '2026-11-20T09:52:00.000Z', end: '2026-11-20T10:02:00.000Z', key: 'A', values: {txn_count: '4', amount_sum: '4.60', smallest: '0.10', last_ts: N('10:01:05')}},
    })
    expect(one.items.filter((i) => i.status !== 'ok').every((i) => i.windows === undefined)).toBe(true)
    expect(await s.watermarks()).toEqual([{partition: 0, wm: '10:01:05.000000'}])

    // the next batch: a record 15 s behind the watermark (within both latenesses) adds to the
    // stored window; one 1m35s behind is late for `minute` (1m) though not `velocity` (5m): dead,
    // naming minute; one 7m behind is late for both: named by the first, minute
    const two = committed(
      await commitBatch(
        s.deps,
        await s.batch(0, 6, [
          {id: 'a5', acct: 'A', amount: '0.40', ts: T('10:00:50')},
          {id: 'a6', acct: 'A', amount: '9.99', ts: T('09:59:30')},
          {id: 'a7', acct: 'A', amount: '9.99', ts: T('09:54:05')},
          {id: 'b2', acct: 'B', amount: '0.01', ts: T('10:00:41')},
        ]),
        1,
      ),
    )
    expect(two.counts).toMatchObject({written: 2, dead: {LATE_EVENT: 2}})
    expect(seen(two.items, 'a5')).toEqual({
      minute: {start: '2026-11-20T10:00:00.000Z', end: '2026-11-20T10:01:00.000Z', key: 'A', values: {n: '4', total: '4.00'}},
      velocity: {start: '2026-11-20T09:51:00.000Z', end: '2026-11-20T10:01:00.000Z', key: 'A', values: {txn_count: '4', amount_sum: '4.00', smallest: '0.10', last_ts: N('10:00:50')}},
    })
    expect(seen(two.items, 'b2')!.minute!.values).toEqual({n: '2', total: '5.01'})
    const dead = two.items.filter((i) => i.status === 'dead').map((i) => i.dead)
    expect(dead).toEqual([
      {
        code: 'LATE_EVENT',
        stage: 'window',
        field: 'ts',
        message: "ts 2026-11-20T09:59:30.000Z is 1m 35s behind the partition's watermark 2026-11-20T10:01:05.000Z, more than allowed_lateness 1m of window minute",
      },
      {
        code: 'LATE_EVENT',
        stage: 'window',
        field: 'ts',
        message: "ts 2026-11-20T09:54:05.000Z is 7m 0s behind the partition's watermark 2026-11-20T10:01:05.000Z, more than allowed_lateness 1m of window minute",
      },
    ])
    expect(await s.state('minute')).toEqual([
      {key: 'A', start: '10:00', end: '10:01', aggs: {n: '4', total: '4.00'}},
      {key: 'A', start: '10:01', end: '10:02', aggs: {n: '1', total: '1.00'}},
      {key: 'B', start: '10:00', end: '10:01', aggs: {n: '2', total: '5.01'}},
    ])
    // velocity: each record in the ten windows that hold it
    const velocity = await s.state('velocity')
    expect(velocity).toHaveLength(11 + 10)
    expect(velocity.find((r) => r.key === 'A' && r.start === '10:00')).toEqual({key: 'A', start: '10:00', end: '10:10', aggs: {txn_count: '5', amount_sum: '5.00', smallest: '0.10', last_ts: N('10:01:05')}})
    expect(velocity.find((r) => r.key === 'A' && r.start === '10:01')!.aggs).toEqual({txn_count: '1', amount_sum: '1.00', smallest: '1.00', last_ts: N('10:01:05')})
    expect(velocity.find((r) => r.key === 'B' && r.start === '09:51')!.aggs).toEqual({txn_count: '2', amount_sum: '5.01', smallest: '0.01', last_ts: N('10:00:41')})
    expect(await s.watermarks()).toEqual([{partition: 0, wm: '10:01:05.000000'}])
  })

  it('the watermark is per partition, alone and in one group transaction; a transaction run again counts its records once', async () => {
    const s = await setup()
    await s.pool.query(`INSERT INTO "${s.schema}".t (id) VALUES ('p0-old')`)
    const deps = {...s.deps, insertFirst: new InsertFirst()}
    const metrics = new RuntimeMetrics(s.name, {defaultMetrics: false})
    await startStages({prepare: [], transact: [...deps.transact]}, {pool: s.pool, metrics})
    committed(await commitBatch(deps, await s.batch(0, 0, [{id: 'p0', acct: 'A', amount: '1.00', ts: T('10:10:00')}]), 1))
    // 8 minutes behind partition 0's watermark, but partition 1 has none: not late
    const p1 = committed(await commitBatch(deps, await s.batch(1, 0, [{id: 'p1', acct: 'A', amount: '2.00', ts: T('10:02:00')}]), 1))
    expect(p1.counts).toMatchObject({written: 1})
    // a group transaction: partition 0 late (dead), partition 1 at its own watermark (counted);
    // 'p0-old' is in t already, so the plain INSERT fails and the transaction runs again
    const [g0, g1] = await commitBatches(deps, [
      {input: await s.batch(0, 1, [{id: 'p0late', acct: 'A', amount: '4.00', ts: T('10:02:00')}, {id: 'p0-old', acct: 'A', amount: '8.00', ts: T('10:10:30')}]), attempt: 1},
      {input: await s.batch(1, 1, [{id: 'p1b', acct: 'A', amount: '16.00', ts: T('10:02:00')}]), attempt: 1},
    ])
    expect(committed(g0!).counts).toMatchObject({written: 1, dead: {LATE_EVENT: 1}})
    expect(committed(g1!).counts).toMatchObject({written: 1})
    expect(deps.insertFirst.upsertsAhead).toBeGreaterThan(0) // it did run again
    expect(seen(committed(g1!).items, 'p1b')!.minute!.values).toEqual({n: '2', total: '18.00'})
    expect(await s.state('minute')).toEqual([
      {key: 'A', start: '10:02', end: '10:03', aggs: {n: '2', total: '18.00'}},
      {key: 'A', start: '10:10', end: '10:11', aggs: {n: '2', total: '9.00'}},
    ])
    expect(await s.watermarks()).toEqual([
      {partition: 0, wm: '10:10:30.000000'},
      {partition: 1, wm: '10:02:00.000000'},
    ])
    // the gauge, per partition
    const gauge = (await metrics.registry.getSingleMetric('cutover_watermark_seconds')!.get()).values.map((v) => [v.labels.partition, v.value])
    expect(gauge.sort()).toEqual([
      ['0', Date.parse(T('10:10:30')) / 1000],
      ['1', Date.parse(T('10:02:00')) / 1000],
    ])
  })

  it('a window kept by a lookup column of enrich: the column is on the record when the window stage runs', async () => {
    const f = await batchFixture({
      prefix: 'windows-enrich',
      tables: (schema) => [
        `CREATE TABLE "${schema}".accounts (acct text PRIMARY KEY, segment text NOT NULL)`,
        `INSERT INTO "${schema}".accounts VALUES ('A', 'retail'), ('B', 'retail'), ('C', 'corp')`,
        `CREATE TABLE "${schema}".t (id text PRIMARY KEY, acct text, amount numeric(12,2), ts timestamptz)`,
      ],
      spec: `fields:
  id: {type: string, required: true}
  acct: {type: string, required: true}
  amount: {type: decimal, scale: 2, required: true}
  ts: {type: timestamp, required: true, formats: [iso]}
key: id
event_time: ts
enrich:
  - {name: account, table: accounts, on: acct, select: [segment]}
windows:
  - {name: by_segment, by: segment, size: 1m, aggregates: {n: count, total: sum(amount)}}
sinks: [{table: t}]
`,
    })
    onTestFinished(async () => {
      for (const table of ['window_state', 'window_watermarks', 'stream_offsets', 'outbox']) await f.pool.query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [f.name])
    })
    await startStages({prepare: [], transact: [...f.deps.transact]}, {pool: f.pool})
    const recs: Rec[] = [
      {id: 'e1', acct: 'A', amount: '1.00', ts: T('10:00:10')},
      {id: 'e2', acct: 'C', amount: '2.00', ts: T('10:00:20')},
      {id: 'e3', acct: 'B', amount: '3.00', ts: T('10:00:30')},
    ]
    const out = committed(await commitBatch(f.deps, await f.batch(0, 0, 2, (o) => recs[o]!), 1))
    expect(seen(out.items, 'e3')).toEqual({by_segment: {start: '2026-11-20T10:00:00.000Z', end: '2026-11-20T10:01:00.000Z', key: 'retail', values: {n: '2', total: '4.00'}}})
    const rows = await f.pool.query(`SELECT key, aggs FROM cutover.window_state WHERE pipeline = $1 ORDER BY key`, [f.name])
    expect(rows.rows).toEqual([
      {key: 'corp', aggs: {n: '1', total: '2.00'}},
      {key: 'retail', aggs: {n: '2', total: '4.00'}},
    ])
  })

  it('the merge written in SQL (the upsert) keeps what the one in JS (the running values) does, for every kind of aggregate', async () => {
    const f = await batchFixture({prefix: 'windows-merge', tables: () => [], spec: 'fields: {id: {type: string}}\nkey: id\nsinks: []\n'})
    onTestFinished(() => forgetWindowState(f.pool, f.name).then(() => undefined))
    const aggs: WindowAggregate[] = [
      {name: 'n', fn: 'count'},
      {name: 'total', fn: 'sum', field: 'amount'},
      {name: 'lo', fn: 'min', field: 'amount', compare: 'numeric'},
      {name: 'hi', fn: 'max', field: 'amount', compare: 'numeric'},
      {name: 'first', fn: 'min', field: 'ts', compare: 'timestamp'},
      {name: 'last', fn: 'max', field: 'ts', compare: 'timestamp'},
      {name: 'day', fn: 'min', field: 'd', compare: 'date'},
      {name: 'name', fn: 'min', field: 's', compare: 'text'},
      {name: 'top', fn: 'max', field: 's', compare: 'text'},
    ]
    const cases: [AggValues, AggValues][] = [
      [
        {n: '2', total: '10.05', lo: '-1.50', hi: '9.00', first: '2026-11-20T10:00:00.000001Z', last: '2026-11-20T10:00:00.000Z', day: '2026-11-20', name: 'b', top: 'Z'},
        {n: '3', total: '-0.05', lo: '-1.49', hi: '10.00', first: '2026-11-20T10:00:00.000Z', last: '2026-11-20T10:00:00.000001Z', day: '2026-11-19', name: 'B', top: 'a'},
      ],
      [
        {n: '1', total: null, lo: null, hi: '1.00', first: null, last: '2026-11-20T10:00:00.000Z', day: null, name: 'é', top: '\uFFFD'},
        {n: '1', total: '0.10', lo: '0.10', hi: null, first: '2026-01-01T00:00:00.000Z', last: null, day: '2026-01-01', name: 'z', top: '\u{1F600}'},
      ],
    ]
    // U+FFFD sorts after U+1F600 in UTF-16 but before it in UTF-8 bytes ("C"): the max is U+1F600
    expect(mergeValues(aggs, cases[1]![0], cases[1]![1]).top).toBe('\u{1F600}')
    const sql = upsertSql(aggs)
    for (const [k, [a, b]] of cases.entries()) {
      const at = String(Date.parse('2026-11-20T10:00:00Z') + k * 60_000)
      const write = async (values: AggValues) =>
        (await f.pool.query<{aggs_before: AggValues | null}>(sql, [f.name, 'merge', '{"k"}', `{"${new Date(Number(at)).toISOString()}"}`, `{"${new Date(Number(at) + 60_000).toISOString()}"}`, pgArray([JSON.stringify(values)])])).rows[0]!.aggs_before
      expect(await write(a)).toBeNull()
      expect(await write(b)).toEqual(a)
      const stored = await f.pool.query<{aggs: AggValues}>(`SELECT aggs FROM cutover.window_state WHERE pipeline = $1 AND window_start = to_timestamp($2::bigint / 1000.0)`, [f.name, at])
      expect(stored.rows[0]!.aggs).toEqual(mergeValues(aggs, a, b))
    }
  })

  it('a record the sink refuses is not counted in its window: the transaction runs again with it dead from the start', async () => {
    const f = await batchFixture({
      prefix: 'windows-refused',
      tables: (schema) => [`CREATE TABLE "${schema}".t (id text PRIMARY KEY, acct text, amount numeric(12,2) CHECK (amount < 1000), ts timestamptz)`],
      spec: SPEC,
    })
    onTestFinished(async () => {
      for (const table of ['window_state', 'window_watermarks', 'stream_offsets', 'stream_dedupe', 'outbox']) await f.pool.query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [f.name])
    })
    const recs: Rec[] = [
      {id: 'r1', acct: 'A', amount: '10.00', ts: T('10:00:10')},
      {id: 'r2', acct: 'A', amount: '2000.00', ts: T('10:00:20')}, // refused by the CHECK
      {id: 'r3', acct: 'A', amount: '20.00', ts: T('10:00:30')},
    ]
    const out = committed(await commitBatch(f.deps, await f.batch(0, 0, 2, (o) => recs[o]!), 1))
    expect(out.counts).toMatchObject({written: 2, dead: {SINK_REJECTED: 1}})
    expect(seen(out.items, 'r2')).toBeUndefined()
    // r3 sees r1 and itself, not the refused r2
    expect(seen(out.items, 'r3')!.minute!.values).toEqual({n: '2', total: '30.00'})
    const rows = await f.pool.query<{aggs: Record<string, string>}>(`SELECT aggs FROM cutover.window_state WHERE pipeline = $1 AND window_name = 'minute'`, [f.name])
    expect(rows.rows.map((r) => r.aggs)).toEqual([{n: '2', total: '30.00'}])
    expect((await f.pool.query(`SELECT id FROM "${f.schema}".t ORDER BY id`)).rows).toEqual([{id: 'r1'}, {id: 'r3'}])
  })
})
