/**
 * `dlq inspect`: what failed and why. One pass over the dead-letter topic up to its end offsets
 * as they were at the start (never commits a group offset), through a pure aggregator:
 * counts by code, by source topic/partition, by hour (of the failure), by pipeline version;
 * the first and last occurrence; up to `limit` samples per code (the first ones, in read
 * order) with the message, the source coordinates and the value masked (./mask.ts), decoded
 * from the encoding its cutover.source.encoding header names when it has one, else, for a dead
 * letter of the --spec's pipeline (`stream run`'s: the message as the topic held it), from the
 * spec's source.encoding when that is not utf-8 or the value is not UTF-8 (mask.ts valueDecodingOf).
 *
 * Repeats that the outbox relay may publish (at-least-once) have identical headers and are
 * counted once (`repeats` says how many were dropped); they are looked for among the latest
 * 500,000 dead letters, since a relay repeat follows its original closely. A dead letter the
 * relay published without its value (`cutover.value.omitted`) and `dlq republish` published again
 * with it is counted once too, and the copy with the value stands for it: it takes the other's
 * place among the samples (./reader.ts DeadLetterCopies).
 */
import type {KafkaSettings} from '../config/env.js'
import {loadSpec, type PipelineSpec} from '../config/spec.js'
import type {Logger} from '../log.js'
import type {DeadLetterOrigin} from './headers.js'
import {keyIsSensitive, sensitivePaths, showDeadLetterKey, showDeadLetterValue, valueDecodingOf, type ValueMasking} from './mask.js'
import {nextSteps} from './next-steps.js'
import {DeadLetterCopies, deadLetterIdentity, dlqRanges, matchesFilter, readDeadLetters, withAdmin, type DlqFilter, type DlqRecord} from './reader.js'

export interface DlqSample {
  dlq: {partition: number; offset: string; timestamp: string}
  source: {topic: string | null; partition: number | null; offset: string | null; timestamp: string | null}
  /** the Kafka key; masked without a spec, or when the spec's key is a sensitive field (mask.ts keyIsSensitive) */
  key: string | null
  code: string
  message: string | null
  stage: string | null
  origin: DeadLetterOrigin
  exception_class: string | null
  failed_at: string | null
  replay_count: number
  value: unknown
  value_masking: ValueMasking
  value_note?: string
  /** the relay published it without its value (cutover.value.omitted: why); `dlq republish` publishes it again with it */
  value_omitted?: string
  /**
   * The value is bytes in this encoding, not UTF-8: its cutover.source.encoding header says so (a
   * backfill's dead letter of a windows-1251 line with an invalid byte, of an EBCDIC record), or
   * it is a dead letter of the --spec's pipeline and that is the spec's source.encoding (a stream
   * run's dead letter of a windows-1251 CSV line); `value_note` says which. `value`, when shown, is
   * them decoded with it, each byte with no character in it written \x98
   */
  value_encoding?: string
}

export interface DlqOccurrence {
  at: string
  code: string
  dlq: {partition: number; offset: string}
}

/** The `--json` document of `cutover dlq inspect`. */
export interface DlqInspectResult {
  topic: string
  since: string | null
  until: string | null
  filter: {codes: string[]; key: string | null}
  /** the offsets read, per partition (end: the end offset when the read began, exclusive) */
  partitions: {partition: number; start: string; end: string}[]
  /** dead letters read in the range */
  scanned: number
  /** dead letters matching the filter (repeats excluded): the sum of by_code */
  total: number
  /** relay repeats dropped (same headers as one already counted), a copy published again with its value (dlq republish) included */
  repeats: number
  by_code: Record<string, number>
  by_origin: Partial<Record<DeadLetterOrigin, number>>
  by_source: {topic: string | null; partition: number | null; count: number}[]
  /** hour of the failure, UTC ("2026-11-20T09:00:00.000Z") */
  by_hour: {hour: string; count: number}[]
  by_pipeline_version: {pipeline: string | null; version: string | null; count: number}[]
  first: DlqOccurrence | null
  last: DlqOccurrence | null
  samples: Record<string, DlqSample[]>
  /** how values in samples are masked: only the spec's sensitive fields, or all of them */
  value_masking: ValueMasking
  /** what to do about each code of by_code that DESIGN.md's catalogue has (./next-steps.ts) */
  next_steps: Record<string, string>
}

export interface DlqInspectOptions {
  topic: string
  kafka: KafkaSettings
  since?: number
  until?: number
  codes?: string[]
  key?: string
  /** samples per code (default 3) */
  limit?: number
  /** a pipeline spec: which fields are sensitive */
  spec?: string
  logger?: Logger
  signal?: AbortSignal
  onProgress?: (scanned: number) => void
}

const keyText = (k: Buffer | null) => (k === null ? null : k.toString('utf8'))

/** The pure core of inspect (and stats): feed it records, then ask for the result. */
export class DlqAggregator {
  scanned = 0
  total = 0
  repeats = 0
  /** identities of recent dead letters (bounded: relay repeats follow their original closely) */
  private readonly seen = new DeadLetterCopies()
  /** samples of copies without their value, by identity: a later copy with the value takes their place */
  private readonly withoutValue = new Map<string, {code: string; index: number}>()
  readonly byCode = new Map<string, number>()
  private readonly byOrigin = new Map<DeadLetterOrigin, number>()
  private readonly bySource = new Map<string, {topic: string | null; partition: number | null; count: number}>()
  private readonly byHour = new Map<string, number>()
  private readonly byVersion = new Map<string, {pipeline: string | null; version: string | null; count: number}>()
  private readonly samples = new Map<string, DlqSample[]>()
  first: DlqOccurrence | null = null
  last: DlqOccurrence | null = null
  /** matching dead letters that failed at or after `recentSince` (ms) */
  recent = 0

  constructor(
    private readonly o: {
      filter: DlqFilter
      limit: number
      sensitive: string[][] | undefined
      recentSince?: number
      maskKeys?: boolean
      /** the --spec: its pipeline's dead letters are read in its source.encoding (mask.ts valueDecodingOf) */
      spec?: PipelineSpec
    },
  ) {}

  add(r: DlqRecord): void {
    this.scanned++
    if (!matchesFilter(r, this.o.filter)) return
    const copy = this.seen.classify(r)
    if (copy !== 'first') {
      // counted already; a copy with the value after one without it is the one to show
      this.repeats++
      if (copy === 'value') this.showInstead(r)
      return
    }
    const v = r.view
    this.total++
    const inc = <K>(m: Map<K, number>, k: K) => m.set(k, (m.get(k) ?? 0) + 1)
    inc(this.byCode, v.code)
    inc(this.byOrigin, v.origin)
    const sk = `${v.source.topic}\u0000${v.source.partition}`
    const s = this.bySource.get(sk) ?? {topic: v.source.topic, partition: v.source.partition, count: 0}
    s.count++
    this.bySource.set(sk, s)
    const at = v.failedAt ?? new Date(Number(r.timestamp)).toISOString()
    const atMs = Date.parse(at)
    if (Number.isFinite(atMs)) {
      inc(this.byHour, new Date(atMs - (atMs % 3_600_000)).toISOString())
      if (this.o.recentSince !== undefined && atMs >= this.o.recentSince) this.recent++
    }
    const vk = `${v.pipeline}\u0000${v.pipelineVersion}`
    const pv = this.byVersion.get(vk) ?? {pipeline: v.pipeline, version: v.pipelineVersion, count: 0}
    pv.count++
    this.byVersion.set(vk, pv)
    const occ: DlqOccurrence = {at, code: v.code, dlq: {partition: r.partition, offset: r.offset}}
    if (this.first === null || at < this.first.at) this.first = occ
    if (this.last === null || at >= this.last.at) this.last = occ
    const list = this.samples.get(v.code) ?? []
    if (list.length < this.o.limit) {
      if (v.valueOmitted !== null) this.withoutValue.set(deadLetterIdentity(r) ?? '', {code: v.code, index: list.length})
      list.push(this.sample(r))
    }
    this.samples.set(v.code, list)
  }

  /** `r`, a copy with the value of a dead letter sampled from a copy without it, in that sample's place. */
  private showInstead(r: DlqRecord): void {
    const id = deadLetterIdentity(r) ?? ''
    const at = this.withoutValue.get(id)
    if (!at) return
    this.withoutValue.delete(id)
    const list = this.samples.get(at.code)
    if (list && at.index < list.length) list[at.index] = this.sample(r)
  }

  private sample(r: DlqRecord): DlqSample {
    const v = r.view
    const shown = showDeadLetterValue(r.value, this.o.sensitive, valueDecodingOf(r.headers, r.value, this.o.spec))
    return {
      dlq: {partition: r.partition, offset: r.offset, timestamp: r.timestamp},
      source: v.source,
      key: showDeadLetterKey(keyText(r.key), this.o.maskKeys ?? this.o.sensitive === undefined),
      code: v.code,
      message: v.message,
      stage: v.stage,
      origin: v.origin,
      exception_class: v.exceptionClass,
      failed_at: v.failedAt,
      replay_count: v.replayCount,
      value: shown.value,
      value_masking: shown.masking,
      ...(shown.note ? {value_note: shown.note} : {}),
      ...(shown.encoding ? {value_encoding: shown.encoding} : {}),
      ...(v.valueOmitted !== null ? {value_omitted: v.valueOmitted} : {}),
    }
  }

  byCodeRecord(): Record<string, number> {
    return Object.fromEntries([...this.byCode].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])))
  }

  result(base: Pick<DlqInspectResult, 'topic' | 'since' | 'until' | 'filter' | 'partitions'>): DlqInspectResult {
    const byCode = this.byCodeRecord()
    return {
      ...base,
      scanned: this.scanned,
      total: this.total,
      repeats: this.repeats,
      by_code: byCode,
      by_origin: Object.fromEntries(this.byOrigin),
      by_source: [...this.bySource.values()].sort((a, b) => String(a.topic).localeCompare(String(b.topic)) || (a.partition ?? -1) - (b.partition ?? -1)),
      by_hour: [...this.byHour].sort((a, b) => a[0].localeCompare(b[0])).map(([hour, count]) => ({hour, count})),
      by_pipeline_version: [...this.byVersion.values()].sort((a, b) => b.count - a.count),
      first: this.first,
      last: this.last,
      samples: Object.fromEntries([...this.samples].sort((a, b) => a[0].localeCompare(b[0]))),
      value_masking: this.o.sensitive ? 'sensitive-fields' : 'all',
      next_steps: nextSteps(Object.keys(byCode)),
    }
  }
}

/** Reads the dead-letter topic once and aggregates it. */
export async function inspectDlq(o: DlqInspectOptions): Promise<DlqInspectResult> {
  const loaded = o.spec ? await loadSpec(o.spec) : undefined
  const ranges = await withAdmin(o.kafka, o.logger, (admin) => dlqRanges(admin, o.kafka, o.topic, o.since, o.until))
  const filter: DlqFilter = {...(o.codes ? {codes: o.codes} : {}), ...(o.key !== undefined ? {key: o.key} : {})}
  const agg = new DlqAggregator({filter, limit: o.limit ?? 3, sensitive: sensitivePaths(loaded?.spec), maskKeys: keyIsSensitive(loaded?.spec), ...(loaded ? {spec: loaded.spec} : {})})
  for await (const batch of readDeadLetters({topic: o.topic, kafka: o.kafka, ...pick(o)})) {
    for (const r of batch) agg.add(r)
    o.onProgress?.(agg.scanned)
  }
  return agg.result({
    topic: o.topic,
    since: o.since === undefined ? null : new Date(o.since).toISOString(),
    until: o.until === undefined ? null : new Date(o.until).toISOString(),
    // the --key given as the samples' keys show: masked without a spec or when the key is sensitive
    filter: {codes: o.codes ?? [], key: o.key === undefined ? null : showDeadLetterKey(o.key, keyIsSensitive(loaded?.spec))},
    partitions: ranges.map((r) => ({partition: r.partition, start: r.start.toString(), end: r.end.toString()})),
  })
}

function pick(o: {since?: number; until?: number; logger?: Logger; signal?: AbortSignal}) {
  return {
    ...(o.since !== undefined ? {since: o.since} : {}),
    ...(o.until !== undefined ? {until: o.until} : {}),
    ...(o.logger ? {logger: o.logger} : {}),
    ...(o.signal ? {signal: o.signal} : {}),
  }
}

export {pick as readOptionsOf}
