/**
 * Stage `window` (transactional, after dedupe): event-time windows kept in PostgreSQL
 * (`cutover.window_state`), counted exactly once with the batch's offsets.
 *
 * - Hopping windows aligned to the Unix epoch (UTC): a window of `size` starts at every multiple
 *   of `slide` (default: size, tumbling). A record of event time t is in every window [s, s+size)
 *   with s a multiple of slide and s <= t < s+size (windowStarts).
 * - The watermark of each (pipeline, topic, partition) is the largest event time of the records
 *   the partition committed so far, in offset order (a record raises it for the records after it,
 *   also within one batch), stored in `cutover.window_watermarks` in the batch transaction: a
 *   restart from the stored offset sees exactly the watermark of that offset. A record with
 *   t < watermark - allowed_lateness is LATE_EVENT (dead-lettered, stage window, counted in no
 *   window and not raising the watermark). With several windows, a record late for one of them
 *   is dead for all (one dead letter, naming the first window in spec order it is late for).
 * - A record whose event_time is empty, or whose `by` value is empty, holds U+0000 or is longer
 *   than MAX_KEY_BYTES (as stored: dedupeKeyOf), is SCHEMA_VIOLATION (stage window): the state
 *   table could not hold its key, and a window keyed by "null" would mix records silently.
 * - One statement per window per batch: the batch's contribution to each (key, window start),
 *   summed here, upserted in (key, start) order (concurrent partitions lock rows in the same
 *   order), RETURNING each row's aggregates before the update (`aggs_before`, null for a new
 *   row). Each record's value (`item.windows[name]`, its earliest window: the one covering the
 *   most time before it) is that plus the running contribution of the batch's records up to and
 *   including it, in offset order (runningValues: exact, decimals as BigInt).
 * - Aggregates are exact text: count an integer, sum PostgreSQL's numeric text (null while no
 *   value was summed, as SQL's sum), min/max the normalized text of the smallest / largest value
 *   (numbers compared as numbers, timestamps as instants, dates as dates, strings by their bytes,
 *   "C"), null for none. The same merge is written in SQL (mergeSql) and in JS (mergeValues).
 * - Retention: at most once a minute (wall clock) a batch transaction deletes, LIMIT
 *   PRUNE_LIMIT rows per window, the rows of windows that ended more than allowed_lateness + 1 h
 *   before the smallest watermark of the pipeline's partitions of its topic (those that have
 *   one): no record can count in them any more (it would be late in every partition).
 */
import pg from 'pg'
import {compareDecimals} from '../../config/rule-expression.js'
import {namesOf, parseAggregate, type AggregateFn} from '../../config/spec.js'
import {isoOf} from '../../normalize/timestamp.js'
import {maskValue} from '../../normalize/text.js'
import type {PoolClient} from '../../pg/pool.js'
import {pgArray} from '../sinks/pgarray.js'
import type {NormalizedRecord, PipelineContext, Stage, WorkItem} from '../types.js'
import {markDead} from '../types.js'
import {dedupeKeyOf} from './dedupe.js'
import type {StageStartDeps, StartableStage} from './enrich.js'
import {MAX_KEY_BYTES} from './validate.js'

/** How a min/max compares its field's values: as numbers, instants, dates or bytes. */
export type CompareAs = 'numeric' | 'timestamp' | 'date' | 'text'

export interface WindowAggregate {
  /** output name (the key in `values` and in the state's JSON) */
  name: string
  fn: AggregateFn
  /** the summed / compared field (undefined for count) */
  field?: string
  /** min/max: how values compare */
  compare?: CompareAs
}

/** Aggregate output name -> exact text, null when undefined (a min of no value). */
export type AggValues = Record<string, string | null>

/** At most once a minute (wall clock) a batch transaction prunes old windows. */
export const PRUNE_INTERVAL_MS = 60_000
/** Rows deleted per window by one prune, so that it never holds a batch long. */
export const PRUNE_LIMIT = 5_000
/** Windows are kept this long past allowed_lateness behind the smallest watermark. */
export const RETENTION_MARGIN_MS = 3_600_000
/**
 * ...and this long while a partition of the topic has no watermark yet (it committed no record
 * with windows: not yet read, behind, or empty): its first records may be of any time, and a window
 * pruned under them would be counted again from nothing (a replay of history read partition by
 * partition lost counts so). A week bounds the state an empty partition keeps.
 */
export const UNKNOWN_PARTITION_MARGIN_MS = 7 * 24 * 3_600_000

// ---------------------------------------------------------------- time

/** An instant to the microsecond: ms since the epoch (exact as a Number to year 275760), and µs within that ms. */
export interface Instant {
  ms: number
  us: number
}

const ISO_FRACTION = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?Z$/

/** A normalized timestamp ("2026-11-20T10:01:00.000Z", ".123456Z") as an Instant; undefined when it is not one. */
export function parseInstant(text: string): Instant | undefined {
  const m = ISO_FRACTION.exec(text)
  if (!m) return undefined
  const base = Date.parse(m[1]! + 'Z')
  if (Number.isNaN(base)) return undefined
  const frac = (m[2] ?? '').padEnd(6, '0')
  return {ms: base + Number(frac.slice(0, 3)), us: Number(frac.slice(3))}
}

export function formatInstant(t: Instant): string {
  return isoOf(t.ms, t.us)
}

/** <0, 0, >0 as a is before, at, after b. */
export function compareInstants(a: Instant, b: Instant): number {
  return a.ms !== b.ms ? a.ms - b.ms : a.us - b.us
}

/** Whether an event at `t` is LATE_EVENT behind `watermark` for a window of `latenessMs` allowed lateness: t < watermark - allowed_lateness. */
export function isLate(t: Instant, watermark: Instant, latenessMs: number): boolean {
  return compareInstants(t, {ms: watermark.ms - latenessMs, us: watermark.us}) < 0
}

/**
 * The starts (ms since the epoch, ascending) of the windows of `sizeMs`, starting every
 * `slideMs`, that hold an instant of `ms` (+ a fraction of a ms, which changes nothing: starts are
 * whole ms): s a multiple of slide with s <= t < s + size. The first is the earliest: the smallest
 * multiple of slide above t - size.
 */
export function windowStarts(ms: number, sizeMs: number, slideMs: number): number[] {
  const first = (Math.floor((ms - sizeMs) / slideMs) + 1) * slideMs
  const out: number[] = []
  for (let s = first; s <= ms; s += slideMs) out.push(s)
  return out
}

/** "5m 0s", "2h 0m 3s", "0.5s", "1d 0h 0m 0s": a lag in µs, from its largest unit down to seconds. */
export function formatLag(us: number): string {
  const totalMs = Math.floor(us / 1000)
  const d = Math.floor(totalMs / 86_400_000)
  const h = Math.floor((totalMs % 86_400_000) / 3_600_000)
  const m = Math.floor((totalMs % 3_600_000) / 60_000)
  const sub = us - Math.floor(totalMs / 60_000) * 60_000_000
  const s = sub % 1_000_000 === 0 ? String(sub / 1_000_000) : (sub / 1_000_000).toFixed(6).replace(/0+$/, '')
  const parts: string[] = []
  if (d > 0) parts.push(`${d}d`)
  if (d > 0 || h > 0) parts.push(`${h}h`)
  if (d > 0 || h > 0 || m > 0) parts.push(`${m}m`)
  parts.push(`${s}s`)
  return parts.join(' ')
}

/** A spec duration (ms) as written: its largest exact unit ("2m", "90s", "0ms"). */
export function formatDuration(ms: number): string {
  for (const [unit, n] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) if (ms > 0 && ms % n === 0) return `${ms / n}${unit}`
  return `${ms}ms`
}

// ---------------------------------------------------------------- exact values

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/

function decimalParts(text: string): {int: bigint; scale: number} {
  const m = DECIMAL.exec(text)
  if (!m) throw new Error(`not a decimal: ${text}`)
  const frac = m[3] ?? ''
  const int = BigInt(m[2]! + frac)
  return {int: m[1] ? -int : int, scale: frac.length}
}

function formatDecimal(int: bigint, scale: number): string {
  const neg = int < 0n
  const digits = (neg ? -int : int).toString().padStart(scale + 1, '0')
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`
  return neg ? `-${text}` : text
}

/** a + b exactly, with the larger of their scales, as PostgreSQL's numeric addition prints it. */
export function addDecimal(a: string, b: string): string {
  const x = decimalParts(a)
  const y = decimalParts(b)
  const scale = Math.max(x.scale, y.scale)
  return formatDecimal(x.int * 10n ** BigInt(scale - x.scale) + y.int * 10n ** BigInt(scale - y.scale), scale)
}

/** Strings in the order of their UTF-8 bytes (PostgreSQL's "C"): UTF-16 order differs only from U+D800 up. */
function compareBytes(a: string, b: string): number {
  if (/[\uD800-\uFFFF]/.test(a) || /[\uD800-\uFFFF]/.test(b)) return Buffer.compare(Buffer.from(a), Buffer.from(b))
  return a < b ? -1 : a > b ? 1 : 0
}

function compareAs(how: CompareAs, a: string, b: string): number {
  switch (how) {
    case 'numeric':
      return compareDecimals(a, b)
    case 'timestamp':
      return compareInstants(parseInstant(a)!, parseInstant(b)!)
    default:
      // dates ("yyyy-MM-dd") compare as their text
      return compareBytes(a, b)
  }
}

/** One record's own values (count 1, its field's value). */
export function recordValues(aggs: readonly WindowAggregate[], record: NormalizedRecord): AggValues {
  const out: AggValues = {}
  for (const a of aggs) {
    if (a.fn === 'count') out[a.name] = '1'
    else {
      const v = record[a.field!]
      out[a.name] = v === null || v === undefined ? null : String(v)
    }
  }
  return out
}

/**
 * `earlier` and then `later` together (both exact texts): counts and sums added, the min/max
 * kept (the earlier one on a tie, as mergeSql). Undefined aggregates (null) are no value.
 */
export function mergeValues(aggs: readonly WindowAggregate[], earlier: AggValues, later: AggValues): AggValues {
  const out: AggValues = {}
  for (const a of aggs) {
    const x = earlier[a.name] ?? null
    const y = later[a.name] ?? null
    if (a.fn === 'count') out[a.name] = String(Number(x ?? '0') + Number(y ?? '0'))
    else if (x === null) out[a.name] = y
    else if (y === null) out[a.name] = x
    else if (a.fn === 'sum') out[a.name] = addDecimal(x, y)
    else {
      const c = compareAs(a.compare ?? 'text', y, x)
      out[a.name] = (a.fn === 'min' ? c < 0 : c > 0) ? y : x
    }
  }
  return out
}

/**
 * Each record's values, in the order given (offset order), after itself and the records before
 * it: `stored` (the window's values before the batch; undefined for a new window) merged with
 * the running contribution of `records`.
 */
export function runningValues(aggs: readonly WindowAggregate[], stored: AggValues | undefined, records: readonly NormalizedRecord[]): AggValues[] {
  const out: AggValues[] = []
  let acc = stored
  for (const r of records) {
    const own = recordValues(aggs, r)
    acc = acc === undefined ? own : mergeValues(aggs, acc, own)
    out.push(acc)
  }
  return out
}

// ---------------------------------------------------------------- SQL

/** The aggregates' merge of the stored row `t` and the batch's contribution `excluded`, as a jsonb_build_object (the same as mergeValues). */
export function mergeSql(aggs: readonly WindowAggregate[]): string {
  const parts = aggs.map((a) => {
    const name = pg.escapeLiteral(a.name)
    const old = `(t.aggs ->> ${name})`
    const add = `(excluded.aggs ->> ${name})`
    if (a.fn === 'count') return `${name}, (COALESCE(${old}, '0')::bigint + COALESCE(${add}, '0')::bigint)::text`
    const either = `WHEN ${old} IS NULL THEN ${add} WHEN ${add} IS NULL THEN ${old}`
    if (a.fn === 'sum') return `${name}, CASE ${either} ELSE (${old}::numeric + ${add}::numeric)::text END`
    const cast = (e: string) => (a.compare === 'numeric' ? `${e}::numeric` : a.compare === 'timestamp' ? `${e}::timestamptz` : a.compare === 'date' ? `${e}::date` : `${e} COLLATE "C"`)
    return `${name}, CASE ${either} WHEN ${cast(add)} ${a.fn === 'min' ? '<' : '>'} ${cast(old)} THEN ${add} ELSE ${old} END`
  })
  return `jsonb_build_object(${parts.join(', ')})`
}

/** The batch's contribution per (key, start), upserted in (key, start) order; RETURNING the values before it (null: a new row). */
export function upsertSql(aggs: readonly WindowAggregate[]): string {
  return `INSERT INTO cutover.window_state AS t (pipeline, window_name, key, window_start, window_end, aggs, updated_at)
SELECT $1, $2, u.k, u.s, u.e, u.a, now() FROM unnest($3::text[], $4::timestamptz[], $5::timestamptz[], $6::jsonb[]) AS u(k, s, e, a)
 ORDER BY u.k COLLATE "C", u.s
ON CONFLICT (pipeline, window_name, key, window_start) DO UPDATE
   SET aggs = ${mergeSql(aggs)}, aggs_before = t.aggs, updated_at = now()
RETURNING key, (extract(epoch FROM window_start) * 1000)::bigint::text AS s, aggs_before`
}

const WATERMARKS_SQL = `SELECT partition, to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS wm
  FROM cutover.window_watermarks WHERE pipeline = $1 AND topic = $2 AND partition = ANY($3::int[])`

const RAISE_WATERMARKS_SQL = `INSERT INTO cutover.window_watermarks AS w (pipeline, topic, partition, watermark, updated_at)
SELECT $1, $2, u.p, u.wm, now() FROM unnest($3::int[], $4::timestamptz[]) AS u(p, wm) ORDER BY u.p
ON CONFLICT (pipeline, topic, partition) DO UPDATE SET watermark = GREATEST(w.watermark, excluded.watermark), updated_at = now()`

/**
 * Deletes up to PRUNE_LIMIT rows of window $2 that ended more than $3 seconds before the smallest
 * watermark of the pipeline's partitions of topic $4 when all $5 partitions of the topic have one,
 * else more than $6 seconds before it (UNKNOWN_PARTITION_MARGIN_MS: a partition without one may
 * still bring records of any time).
 */
export const PRUNE_SQL = `DELETE FROM cutover.window_state WHERE ctid IN (
  SELECT ctid FROM cutover.window_state
   WHERE pipeline = $1 AND window_name = $2
     AND window_end < (SELECT min(watermark) - make_interval(secs => CASE WHEN count(*) >= $5::int THEN $3::float8 ELSE $6::float8 END)
                         FROM cutover.window_watermarks WHERE pipeline = $1 AND topic = $4)
   LIMIT ${PRUNE_LIMIT})`

/** Deletes a pipeline's window state and watermarks (all of it: a pipeline forgotten, or its windows reset). */
export async function forgetWindowState(db: {query: PoolClient['query']}, pipeline: string): Promise<{rows: number; watermarks: number}> {
  const rows = await db.query('DELETE FROM cutover.window_state WHERE pipeline = $1', [pipeline])
  const wms = await db.query('DELETE FROM cutover.window_watermarks WHERE pipeline = $1', [pipeline])
  return {rows: rows.rowCount ?? 0, watermarks: wms.rowCount ?? 0}
}

// ---------------------------------------------------------------- the stage

interface WindowDef {
  name: string
  sizeMs: number
  slideMs: number
  latenessMs: number
  aggs: WindowAggregate[]
  by: string[]
  keyOf: (r: NormalizedRecord) => string
  sql: string
}

interface Counted {
  item: WorkItem
  t: Instant
  /** per window, the record's key */
  keys: string[]
}

export function windowStage(ctx: PipelineContext): Stage | null {
  const {spec} = ctx.loaded
  if (spec.windows.length === 0 || spec.event_time === undefined) return null
  const et = spec.event_time
  const etSensitive = spec.fields[et]?.sensitive === true
  const shown = (text: string) => (etSensitive ? maskValue(text) : text)
  const compareOf = (field: string): CompareAs => {
    const type = spec.fields[field]?.type
    return type === 'integer' || type === 'decimal' ? 'numeric' : type === 'timestamp' ? 'timestamp' : type === 'date' ? 'date' : 'text'
  }
  const windows: WindowDef[] = spec.windows.map((w) => {
    const aggs = Object.entries(w.aggregates).map(([name, expr]) => {
      const a = parseAggregate(expr)
      return {name, ...a, ...(a.fn === 'min' || a.fn === 'max' ? {compare: compareOf(a.field!)} : {})}
    })
    const by = namesOf(w.by)
    return {name: w.name, sizeMs: w.size, slideMs: w.slide ?? w.size, latenessMs: w.allowed_lateness, aggs, by, keyOf: dedupeKeyOf(by), sql: upsertSql(aggs)}
  })
  let lastPrune = 0
  let metrics: StageStartDeps['metrics']
  /** the source topic's partition count (run.ts, at start): the prune waits for a watermark of each */
  let topicPartitions: number | undefined

  /** The record's key of window `w`, or a reason it has none (SCHEMA_VIOLATION). */
  const keyOf = (w: WindowDef, r: NormalizedRecord): string | {field: string; why: string} => {
    for (const f of w.by) {
      const v = r[f]
      if (v === null || v === undefined || v === '') return {field: f, why: `field ${f} is empty: window ${w.name} is kept by ${w.by.join(', ')}`}
      if (typeof v === 'string' && v.includes('\u0000')) return {field: f, why: `field ${f} holds U+0000, which a PostgreSQL text cannot (window ${w.name} is kept by it)`}
    }
    const key = w.keyOf(r)
    if (key.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(key) > MAX_KEY_BYTES) {
      return {field: w.by[0]!, why: `the key of window ${w.name} (${w.by.join(', ')}) is ${Buffer.byteLength(key)} bytes long as stored, over the ${MAX_KEY_BYTES} a key may be (PostgreSQL's B-tree index of the state table cannot hold longer ones)`}
    }
    return key
  }

  const stage: StartableStage = {
    name: 'window',
    phase: 'transact',
    keepsState: true,
    // the metrics, for the watermark gauge (run.ts startStages)
    start(deps) {
      metrics = deps.metrics
      topicPartitions = deps.sourcePartitions
      return Promise.resolve()
    },
    async run(items, tx) {
      if (!tx) throw new Error('window runs inside the batch transaction')
      const live = items.filter((i) => i.status === 'ok' && i.record)
      if (live.length === 0) return
      const topic = live[0]!.topic
      const partitions = [...new Set(live.map((i) => i.partition))]
      const wms = new Map<number, Instant>()
      const stored = await tx.query<{partition: number; wm: string}>(WATERMARKS_SQL, [ctx.pipeline, topic, `{${partitions.join(',')}}`])
      for (const r of stored.rows) wms.set(r.partition, parseInstant(r.wm)!)
      const raised = new Set<number>()

      // offset order within each partition (items are): lateness, then the watermark
      const counted: Counted[] = []
      for (const item of live) {
        const record = item.record!
        const text = record[et]
        const t = typeof text === 'string' ? parseInstant(text) : undefined
        if (t === undefined) {
          markDead(item, {code: 'SCHEMA_VIOLATION', message: `${et} is empty: windows (${windows.map((w) => w.name).join(', ')}) need the event time`, stage: 'window', field: et})
          continue
        }
        const keys: string[] = []
        let bad: {field: string; why: string} | undefined
        for (const w of windows) {
          const k = keyOf(w, record)
          if (typeof k === 'string') keys.push(k)
          else {
            bad = k
            break
          }
        }
        if (bad) {
          markDead(item, {code: 'SCHEMA_VIOLATION', message: bad.why, stage: 'window', field: bad.field})
          continue
        }
        const wm = wms.get(item.partition)
        if (wm !== undefined) {
          const late = windows.find((w) => isLate(t, wm, w.latenessMs))
          if (late) {
            const behind = (wm.ms - t.ms) * 1000 + (wm.us - t.us)
            markDead(item, {
              code: 'LATE_EVENT',
              message: `${et} ${shown(text as string)} is ${formatLag(behind)} behind the partition's watermark ${shown(formatInstant(wm))}, more than allowed_lateness ${formatDuration(late.latenessMs)} of window ${late.name}`,
              stage: 'window',
              field: et,
            })
            continue
          }
        }
        counted.push({item, t, keys})
        if (wm === undefined || compareInstants(t, wm) > 0) {
          wms.set(item.partition, t)
          raised.add(item.partition)
        }
      }

      for (let wi = 0; wi < windows.length && counted.length > 0; wi++) {
        const w = windows[wi]!
        // per (key, start): the batch's running contribution; per record: its earliest window and the contribution up to it
        const groups = new Map<string, {key: string; start: number; acc: AggValues}>()
        const seen = new Array<{id: string; acc: AggValues; start: number; key: string}>(counted.length)
        for (let i = 0; i < counted.length; i++) {
          const c = counted[i]!
          const key = c.keys[wi]!
          const own = recordValues(w.aggs, c.item.record!)
          const starts = windowStarts(c.t.ms, w.sizeMs, w.slideMs)
          for (let j = 0; j < starts.length; j++) {
            const start = starts[j]!
            const id = `${key}\u0000${start}`
            const g = groups.get(id)
            if (g) g.acc = mergeValues(w.aggs, g.acc, own)
            else groups.set(id, {key, start, acc: own})
            if (j === 0) seen[i] = {id, acc: (g ?? groups.get(id)!).acc, start, key}
          }
        }
        const rows = [...groups.values()]
        const r = await tx.query<{key: string; s: string; aggs_before: AggValues | null}>(w.sql, [
          ctx.pipeline,
          w.name,
          pgArray(rows.map((g) => g.key)),
          pgArray(rows.map((g) => isoOf(g.start))),
          pgArray(rows.map((g) => isoOf(g.start + w.sizeMs))),
          pgArray(rows.map((g) => JSON.stringify(g.acc))),
        ])
        const before = new Map<string, AggValues | null>()
        for (const row of r.rows) before.set(`${row.key}\u0000${row.s}`, row.aggs_before)
        for (let i = 0; i < counted.length; i++) {
          const c = counted[i]!
          const s = seen[i]!
          const b = before.get(s.id)
          const values = b ? mergeValues(w.aggs, b, s.acc) : s.acc
          const windowsOf = (c.item.windows ??= {})
          windowsOf[w.name] = {start: isoOf(s.start), end: isoOf(s.start + w.sizeMs), key: s.key, values}
        }
      }

      if (raised.size > 0) {
        const ps = [...raised].sort((a, b) => a - b)
        await tx.query(RAISE_WATERMARKS_SQL, [ctx.pipeline, topic, `{${ps.join(',')}}`, pgArray(ps.map((p) => formatInstant(wms.get(p)!)))])
      }
      // as this transaction sets it (a rollback runs the batch again, to the same watermark)
      if (metrics) for (const [p, wm] of wms) metrics.watermark(topic, p, wm.ms / 1000 + wm.us / 1e6)

      const now = Date.now()
      if (now - lastPrune >= PRUNE_INTERVAL_MS) {
        lastPrune = now
        // the topic's partition count from the start (run.ts); unknown (no start: tests of the stage alone): as if one had no watermark
        const all = topicPartitions ?? Number.MAX_SAFE_INTEGER
        for (const w of windows) {
          await tx.query(PRUNE_SQL, [ctx.pipeline, w.name, (w.latenessMs + RETENTION_MARGIN_MS) / 1000, topic, Math.min(all, 2_147_483_647), Math.max(w.latenessMs + RETENTION_MARGIN_MS, UNKNOWN_PARTITION_MARGIN_MS) / 1000])
        }
      }
    },
  }
  return stage
}
