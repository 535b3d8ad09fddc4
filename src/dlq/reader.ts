/**
 * Reading a dead-letter topic for `dlq inspect`, `dlq stats` and `dlq replay --dry-run`: the
 * `kafka:` legacy reader (legacy-adapters/kafka.ts) does the consuming — end offsets fixed
 * before the first fetch (so the read ends), `--since`/`--until` as record-timestamp ranges
 * per partition, a throw-away consumer group, no offset commits — and this module turns
 * each message into a `DlqRecord`: the bytes as they are plus the header view (./headers.ts).
 *
 * The value is read as latin1 text only because the reader insists on decoding something;
 * the bytes used are `raw`, untouched.
 */
import type {Admin} from 'kafkajs'
import type {KafkaSettings} from '../config/env.js'
import {nearestWord} from '../config/spec.js'
import {RECORD_ERROR_CODES, UsageError} from '../errors.js'
import {connectAdmin, createKafka, isAclRefusal, mapKafkaError} from '../kafka/client.js'
import type {Logger} from '../log.js'
import {kafkaRange, readKafka, type PartitionRange} from '../../legacy-adapters/kafka.js'
import {deadLetterView, type DeadLetterView} from './headers.js'

/** as kafkajs reads them: a header without a value (Kafka allows one) is null (./headers.ts) */
export type DlqHeaders = Record<string, Buffer | string | null | (Buffer | string | null)[] | undefined>

export interface DlqRecord {
  partition: number
  offset: string
  /** the dead letter's Kafka timestamp, ms as a string */
  timestamp: string
  key: Buffer | null
  value: Buffer | null
  headers: DlqHeaders
  view: DeadLetterView
}

export interface DlqReadOptions {
  topic: string
  kafka: KafkaSettings
  /** ms since epoch: the first record at or after (per partition) */
  since?: number
  /** ms since epoch: up to the first record at or after, exclusive */
  until?: number
  logger?: Logger
  signal?: AbortSignal
}

/** An ISO-8601 time with a zone, or a date alone (UTC midnight), as `backfill --since` takes them. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2}))?$/

/**
 * Parses `--since`/`--until`: ISO-8601 with a zone (or a date: UTC midnight), or a duration back
 * from now ("2h", "30m", "7d"). Nothing else: Date.parse alone would take "5" for 2001-05-01 and
 * "Nov 20" for 2001-11-20 (a forgotten unit, a year left out: a window of the wrong years, without a
 * word), and a time without a zone for the host's local time.
 */
export function parseTimeFlag(value: string | undefined, flag: string, now = Date.now()): number | undefined {
  if (value === undefined) return undefined
  const rel = /^(\d+)\s*(s|m|h|d)$/.exec(value.trim())
  if (rel) return now - Number(rel[1]) * {s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000}[rel[2] as 's' | 'm' | 'h' | 'd']
  const iso = value.trim()
  const ms = ISO_TIME.test(iso) ? Date.parse(iso) : Number.NaN
  if (!Number.isFinite(ms)) {
    throw new UsageError(`${flag} ${value} is neither an ISO-8601 time nor a duration`, {
      hint: `an ISO-8601 time with its zone (${flag} 2026-11-20T09:00:00+03:00), a date (${flag} 2026-11-20: UTC midnight) or a duration back from now (${flag} 2h; s, m, h, d)`,
    })
  }
  return ms
}

/**
 * `--code` values: a DESIGN.md code (any case), UNKNOWN, or a Connect/Spring exception's class
 * name (CamelCase, as dlq inspect counts them). An upper-case word that is none of these is a
 * typo that would select nothing without a word: a UsageError naming the codes.
 */
export function parseCodeFlags(codes: readonly string[] | undefined): string[] | undefined {
  if (codes === undefined) return undefined
  return codes.map((given) => {
    const code = given.trim()
    const upper = code.toUpperCase()
    if ((RECORD_ERROR_CODES as readonly string[]).includes(upper) || upper === 'UNKNOWN') return upper
    // a class name is mixed case without underscores (DataException); all one case or snake_case is meant as a code
    if (/^[A-Za-z0-9_]+$/.test(code) && (code === upper || code === code.toLowerCase() || code.includes('_'))) {
      const near = nearestWord(upper, RECORD_ERROR_CODES)
      throw new UsageError(`--code ${given} is not a dead-letter code${near ? ` (did you mean ${near}?)` : ''}`, {
        hint: `the codes: ${RECORD_ERROR_CODES.join(', ')}, UNKNOWN; or the class name of a Kafka Connect or Spring exception`,
      })
    }
    return code
  })
}

/** The dead-letter topic's partitions and the offsets a read covers (fixed now). */
export async function dlqRanges(admin: Admin, settings: KafkaSettings, topic: string, since?: number, until?: number): Promise<PartitionRange[]> {
  let topics: string[]
  try {
    topics = await admin.listTopics()
  } catch (e) {
    throw mapKafkaError(e, settings, 'list topics')
  }
  if (!topics.includes(topic)) {
    // Kafka's ACLs leave a topic the principal may not DESCRIBE out of the list: asked for by name,
    // the broker says so (exit 2 naming the ACL to grant), where "does not exist" would mislead
    const hidden = await admin.fetchTopicMetadata({topics: [topic]}).then(
      () => undefined,
      (e: unknown) => mapKafkaError(e, settings, `the metadata of topic ${topic}`, {operation: 'Read', topics: [topic]}),
    )
    if (isAclRefusal(hidden)) {
      // (the broker answers so for a topic that does not exist too: it tells such a principal nothing more)
      throw new UsageError(`${hidden.message}; or it does not exist (Kafka does not say which to a principal that may not DESCRIBE it)`, {cause: hidden, ...(hidden.hint ? {hint: `check --topic, then ${hidden.hint}`} : {}), details: hidden.details})
    }
    throw new UsageError(`topic ${topic} does not exist on ${settings.brokers.join(',')}`, {hint: 'check --topic (the spec names it under dlq.topic) and KAFKA_BROKERS'})
  }
  try {
    return await kafkaRange(admin, topic, since, until)
  } catch (e) {
    throw mapKafkaError(e, settings, `read offsets of ${topic}`)
  }
}

/** Opens an admin client, runs `fn`, disconnects. */
export async function withAdmin<T>(settings: KafkaSettings, logger: Logger | undefined, fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = await connectAdmin(createKafka(settings, {mode: 'fail-fast', ...(logger ? {logger} : {})}), settings)
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

/** The dead letters of `topic` in the range, in batches (one fetch of one partition each). */
export async function* readDeadLetters(o: DlqReadOptions): AsyncGenerator<DlqRecord[]> {
  const params: Record<string, string> = {format: 'text', encoding: 'latin1'}
  if (o.since !== undefined) params.from = new Date(o.since).toISOString()
  if (o.until !== undefined) params.to = new Date(o.until).toISOString()
  const source = readKafka(
    {scheme: 'kafka', target: o.topic, params, text: `kafka:${o.topic}`},
    {kafka: o.kafka, ...(o.logger ? {logger: o.logger} : {}), ...(o.signal ? {signal: o.signal} : {})},
  )
  for await (const batch of source.batches()) {
    yield batch.map((r) => {
      const headers = (r.headers ?? {}) as DlqHeaders
      const timestamp = r.position.timestamp ?? '0'
      return {
        partition: r.position.partition ?? 0,
        offset: r.position.offset ?? '0',
        timestamp,
        key: r.key ?? null,
        value: r.raw ?? null,
        headers,
        view: deadLetterView(headers, timestamp),
      }
    })
  }
}

/**
 * The relay publishes at least once (src/runtime/relay.ts): a repeat has the same headers, so
 * the same source coordinates and failure time. This is the identity used to drop repeats.
 */
export function deadLetterIdentity(r: DlqRecord): string | null {
  const v = r.view
  if (v.origin !== 'cutover' || v.source.topic === null || v.source.offset === null) return null
  return `${v.pipeline ?? ''}\u0000${v.source.topic}\u0000${v.source.partition ?? ''}\u0000${v.source.offset}\u0000${v.failedAt ?? ''}`
}

/** repeats are looked for among this many latest dead letters (about 100 MB at most) */
export const MAX_REMEMBERED = 500_000

/**
 * Drops relay repeats: remembers the identities of the latest `max` dead letters it was shown
 * (a relay repeat follows its original closely). Shared by inspect, stats, the dry run and the
 * replay, so that all of them count (and send) a dead letter published twice once.
 */
export class RepeatFilter {
  private readonly seen = new Set<string>()
  constructor(private readonly max = MAX_REMEMBERED) {}

  /** True when `r` repeats a dead letter shown before; otherwise remembers it (when it has an identity). */
  isRepeat(r: DlqRecord): boolean {
    const id = deadLetterIdentity(r)
    if (id === null) return false
    if (this.seen.has(id)) return true
    this.seen.add(id)
    if (this.seen.size > this.max) this.seen.delete(this.seen.values().next().value!)
    return false
  }
}

/**
 * What a copy of a dead letter on the DLQ topic is, for a reader that counts, samples or replays
 * each dead letter once (after RepeatFilter, which it wraps: the same identity, the latest
 * MAX_REMEMBERED dead letters; `dlq republish`, ./republish.ts, makes the copies with a value):
 *
 * - `first`: the first copy seen (with its value or without);
 * - `value`: a copy WITH its value after copies without it (`dlq republish`): it is the dead
 *   letter (what a replay sends, what inspect samples), not a repeat to drop;
 * - `repeat`: any other copy (a relay repeat; a copy without its value after one with it).
 */
export type DeadLetterCopy = 'first' | 'value' | 'repeat'

export class DeadLetterCopies {
  private readonly repeats: RepeatFilter
  /** identities seen so far only without their value, oldest first */
  private readonly withoutValue = new Set<string>()

  constructor(private readonly max = MAX_REMEMBERED) {
    this.repeats = new RepeatFilter(max)
  }

  /** Classifies `r` and remembers it (read in DLQ order). */
  classify(r: DlqRecord): DeadLetterCopy {
    const id = deadLetterIdentity(r)
    if (id === null) return 'first'
    const omitted = r.view.valueOmitted !== null
    if (!this.repeats.isRepeat(r)) {
      if (!omitted) this.withoutValue.delete(id)
      else {
        this.withoutValue.add(id)
        if (this.withoutValue.size > this.max) this.withoutValue.delete(this.withoutValue.values().next().value!)
      }
      return 'first'
    }
    return !omitted && this.withoutValue.delete(id) ? 'value' : 'repeat'
  }
}

export interface DlqFilter {
  codes?: readonly string[]
  key?: string
  /** only cutover's dead letters of this pipeline (cutover.pipeline); Connect's and Spring's are kept */
  pipeline?: string
}

/** A dead letter that cutover wrote for another pipeline than `pipeline`. */
export function ofOtherPipeline(r: DlqRecord, pipeline: string): boolean {
  return r.view.origin === 'cutover' && r.view.pipeline !== null && r.view.pipeline !== pipeline
}

export function matchesFilter(r: DlqRecord, f: DlqFilter): boolean {
  if (f.pipeline !== undefined && ofOtherPipeline(r, f.pipeline)) return false
  if (f.codes && f.codes.length > 0 && !f.codes.includes(r.view.code)) return false
  if (f.key !== undefined && (r.key === null || r.key.toString('utf8') !== f.key)) return false
  return true
}
