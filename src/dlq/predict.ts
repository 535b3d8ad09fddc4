/**
 * `dlq replay --dry-run`: what a replay would do with the CURRENT spec, writing nothing.
 *
 * Each selected dead letter goes through the stream runtime's own prepare stages (decode,
 * normalize, validate: src/runtime/stages, built from the current spec exactly as `stream run`
 * builds them), then through a read-only copy of the dedupe decision: the key's stored payload
 * hash in `cutover.stream_dedupe` (same hash: a duplicate, dropped; another hash:
 * DUPLICATE_CONFLICT), and the keys seen earlier in the same selection (the first one wins, as
 * when the replayed records are consumed in order). What passes all of that "would now pass":
 * it is what the sink gains. With `windows`, a record that would pass is predicted LATE_EVENT
 * when its event time is further behind the smallest watermark of the source topic's partitions
 * than a window's allowed_lateness (only when every partition of the topic has a watermark: a
 * partition without one takes any record; and only for records replayed into the topic the spec
 * reads): late on whichever partition it lands, as a replay of a LATE_EVENT is unless
 * allowed_lateness now covers it. Enrichment and sink constraints are not predicted.
 * Records past --max-replays, and those whose value the relay could not publish
 * (`cutover.value.omitted`), are counted as `would_park` and not run.
 */
import type {Admin, KafkaMessage} from 'kafkajs'
import type {LoadedSpec} from '../config/spec.js'
import {namesOf} from '../config/spec.js'
import type {Logger} from '../log.js'
import type {Pool} from '../pg/pool.js'
import {isLate, parseInstant, type Instant} from '../runtime/stages/window.js'
import {checkSourceFormat} from '../runtime/stages/decode.js'
import {dedupeKeyOf, payloadHash, storedKeys} from '../runtime/stages/dedupe.js'
import {STAGES} from '../runtime/stages/index.js'
import type {NormalizedRecord, PipelineContext, Stage, WorkItem} from '../runtime/types.js'
import type {DlqRecord} from './reader.js'

/** What a dry run predicts for the dead letters of one (original) code. */
export interface DlqPrediction {
  selected: number
  /** pass decode, normalize, validate and dedupe: the sink gains these */
  would_pass: number
  /** pass, but repeat a record already written (or earlier in the selection): dropped */
  duplicates: number
  /** new code -> count */
  still_failing: Record<string, number>
  /** past --max-replays, or without their value: would go to the parking topic */
  would_park: number
}

const PREPARE = ['decode', 'normalize', 'validate'] as const
const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024

export class ReplayPredictor {
  private readonly stages: Stage[]
  private readonly by: string[]
  private readonly seen = new Map<string, string>()
  readonly predictions = new Map<string, DlqPrediction>()
  private dedupeTable = true
  /** the smallest watermark of the source topic's partitions, when every one has one (watermarkFloor) */
  watermarkFloor: Instant | undefined

  constructor(
    private readonly loaded: LoadedSpec,
    private readonly pool: Pool | undefined,
    private readonly maxReplays: number,
    logger: Logger,
    maxRecordBytes = DEFAULT_MAX_RECORD_BYTES,
  ) {
    const ctx: PipelineContext = {loaded, pipeline: loaded.spec.name, schema: 'public', maxRecordBytes, dedupeRetentionMs: 7 * 86_400_000, logger}
    checkSourceFormat(ctx)
    this.stages = PREPARE.map((name) => {
      const make = STAGES.get(name)
      const stage = make?.(ctx)
      if (!stage) throw new Error(`the runtime has no ${name} stage`)
      return stage
    })
    this.by = namesOf(loaded.spec.dedupe?.by)
    this.keyOf = dedupeKeyOf(this.by)
  }

  private prediction(code: string): DlqPrediction {
    let p = this.predictions.get(code)
    if (!p) {
      p = {selected: 0, would_pass: 0, duplicates: 0, still_failing: {}, would_park: 0}
      this.predictions.set(code, p)
    }
    return p
  }

  /** The dedupe stage's own key */
  private readonly keyOf: (r: NormalizedRecord) => string

  private async storedHashes(keys: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>()
    if (!this.pool || keys.length === 0 || !this.dedupeTable) return out
    try {
      const r = await this.pool.query<{key: string; h: string}>(
        storedKeys('unnest($2::text[])', "k.key AS key, encode(d.payload_sha256, 'hex') AS h"),
        [this.loaded.spec.name, keys],
      )
      for (const row of r.rows) out.set(row.key, row.h)
    } catch (e) {
      if ((e as {code?: string}).code !== '42P01') throw e
      this.dedupeTable = false // never migrated: nothing was ever written
    }
    return out
  }

  /** Whether a record that passed would be LATE_EVENT on any partition of the spec's topic (see watermarkFloor). */
  private late(item: WorkItem): boolean {
    const floor = this.watermarkFloor
    const {spec} = this.loaded
    if (!floor || !spec.event_time || item.topic !== spec.source.topic) return false
    const text = item.record?.[spec.event_time]
    const t = typeof text === 'string' ? parseInstant(text) : undefined
    return t !== undefined && spec.windows.some((w) => isLate(t, floor, w.allowed_lateness))
  }

  /** Predicts a batch of selected dead letters (in DLQ order). */
  async add(records: readonly DlqRecord[]): Promise<void> {
    const items: {item: WorkItem; code: string}[] = []
    for (const r of records) {
      const p = this.prediction(r.view.code)
      p.selected++
      if (r.view.replayCount + 1 > this.maxReplays || r.view.valueOmitted !== null) {
        p.would_park++
        continue
      }
      const message = {key: r.key, value: r.value, headers: r.headers, timestamp: r.view.source.timestamp ?? r.timestamp, attributes: 0, offset: r.view.source.offset ?? r.offset} as KafkaMessage
      items.push({
        code: r.view.code,
        item: {message, topic: r.view.source.topic ?? this.loaded.spec.source.topic, partition: r.view.source.partition ?? r.partition, offset: BigInt(message.offset), status: 'ok'},
      })
    }
    const work = items.map((i) => i.item)
    for (const stage of this.stages) await stage.run(work, null)
    const okKeys = this.by.length === 0 ? [] : [...new Set(work.filter((i) => i.status === 'ok' && i.record).map((i) => this.keyOf(i.record!)))]
    const stored = await this.storedHashes(okKeys)
    for (const {item, code} of items) {
      const p = this.prediction(code)
      if (item.status !== 'ok') {
        const c = item.dead?.code ?? 'SCHEMA_VIOLATION'
        p.still_failing[c] = (p.still_failing[c] ?? 0) + 1
        continue
      }
      if (this.by.length === 0 || !item.record) {
        if (this.late(item)) p.still_failing.LATE_EVENT = (p.still_failing.LATE_EVENT ?? 0) + 1
        else p.would_pass++
        continue
      }
      const key = this.keyOf(item.record)
      const hash = payloadHash(item.record)
      const ref = stored.get(key) ?? this.seen.get(key)
      if (ref === undefined) {
        // the window stage runs after dedupe; a record it dead-letters keeps no dedupe key
        if (this.late(item)) {
          p.still_failing.LATE_EVENT = (p.still_failing.LATE_EVENT ?? 0) + 1
          continue
        }
        this.seen.set(key, hash)
        p.would_pass++
      } else if (ref === hash) p.duplicates++
      else p.still_failing.DUPLICATE_CONFLICT = (p.still_failing.DUPLICATE_CONFLICT ?? 0) + 1
    }
  }

  result(): Record<string, DlqPrediction> {
    return Object.fromEntries([...this.predictions].sort((a, b) => b[1].selected - a[1].selected || a[0].localeCompare(b[0])))
  }
}

/**
 * The smallest watermark (cutover.window_watermarks) of `pipeline`'s partitions of `topic`, when
 * every partition the broker lists for it has one; undefined otherwise (a partition without a
 * watermark takes a record of any time), or when nothing was ever migrated.
 */
export async function watermarkFloor(pool: Pool, admin: Admin, pipeline: string, topic: string): Promise<Instant | undefined> {
  const meta = await admin.fetchTopicMetadata({topics: [topic]}).catch(() => undefined)
  const partitions = meta?.topics[0]?.partitions.length ?? 0
  if (partitions === 0) return undefined
  try {
    const r = await pool.query<{n: number; wm: string | null}>(
      `SELECT count(*)::int AS n, to_char(min(watermark) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS wm
         FROM cutover.window_watermarks WHERE pipeline = $1 AND topic = $2`,
      [pipeline, topic],
    )
    const row = r.rows[0]
    return row && row.n >= partitions && row.wm ? parseInstant(row.wm) : undefined
  } catch (e) {
    if ((e as {code?: string}).code === '42P01' || (e as {code?: string}).code === '3F000') return undefined
    throw e
  }
}
