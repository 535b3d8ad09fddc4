/**
 * `dlq stats`: totals by code and the rate of the last hour, for scripts and alerts. The same
 * read and aggregation as `dlq inspect` (./inspect.ts), without samples.
 */
import type {KafkaSettings} from '../config/env.js'
import type {Logger} from '../log.js'
import {DlqAggregator, readOptionsOf} from './inspect.js'
import {dlqRanges, readDeadLetters, withAdmin} from './reader.js'

/** The `--json` document of `cutover dlq stats`. */
export interface DlqStatsResult {
  topic: string
  /** when the end offsets were read */
  as_of: string
  /** dead letters in the topic, repeats included (read, not end - start: a topic written in transactions has commit markers between them) */
  records: number
  /** dead letters (relay repeats counted once; so is one published without its value and again with it: dlq republish) */
  total: number
  by_code: Record<string, number>
  last_hour: {count: number; per_minute: number; per_second: number}
  partitions: {partition: number; start: string; end: string}[]
}

export interface DlqStatsOptions {
  topic: string
  kafka: KafkaSettings
  logger?: Logger
  signal?: AbortSignal
  now?: number
  /** dead letters read so far, after each fetched batch */
  onProgress?: (scanned: number) => void
}

export async function dlqStats(o: DlqStatsOptions): Promise<DlqStatsResult> {
  const now = o.now ?? Date.now()
  const ranges = await withAdmin(o.kafka, o.logger, (admin) => dlqRanges(admin, o.kafka, o.topic))
  const agg = new DlqAggregator({filter: {}, limit: 0, sensitive: [], recentSince: now - 3_600_000})
  for await (const batch of readDeadLetters({topic: o.topic, kafka: o.kafka, ...readOptionsOf(o)})) {
    for (const r of batch) agg.add(r)
    o.onProgress?.(agg.scanned)
  }
  return {
    topic: o.topic,
    as_of: new Date(now).toISOString(),
    records: agg.scanned,
    total: agg.total,
    by_code: agg.byCodeRecord(),
    last_hour: {count: agg.recent, per_minute: Math.round((agg.recent / 60) * 100) / 100, per_second: Math.round((agg.recent / 3600) * 1000) / 1000},
    partitions: ranges.map((r) => ({partition: r.partition, start: r.start.toString(), end: r.end.toString()})),
  }
}
