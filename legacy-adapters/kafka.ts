/**
 * kafka: a topic, from its start (or the first record at `from`) to its end as it was when
 * the read began (or the first record at `to`). It always ends: the end offsets are fixed
 * before the first fetch.
 *
 *   kafka:txn.raw                                                    everything there now
 *   kafka:txn.raw?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z  a day
 *   kafka:txn.raw?format=text&encoding=windows-1251                  one line per message
 *
 * Range, per partition (as kcat's `-o s@ts -o e@ts`): start = the first offset whose record
 * timestamp is >= from (the low watermark without `from`), end = the first offset whose
 * timestamp is >= to (the high watermark without `to`), exclusive. Records are read by
 * offset between the two; a producer's out-of-order timestamps inside the range are kept.
 * Only committed records are read (read_committed), and the "end" is the last stable offset:
 * a transaction still open when the read begins is not waited for.
 *
 * Message layout:
 *   value    format=json (default): a JSON object in `encoding` (default utf-8), whose
 *            members become the fields; format=text: the whole value as the field `value`
 *   key, headers   kept as they are on the record (`key`, `headers`) for dead letters
 *   raw      the value bytes
 * A value that is not JSON, or not valid in the encoding, or a tombstone (null value), is
 * a DECODE_ERROR record with its position; JSON that is not an object (an array, a number)
 * is SCHEMA_VIOLATION, as in `stream run`'s decode stage. Never an exception. A tombstone is
 * the one record without `raw` (`isTombstone`): a raw replay forwards it as it is.
 *
 * Position: topic, partition, offset, timestamp (ms, as a string).
 *
 * Start: one quick connection (fail-fast: one attempt, short timeouts), so that a broker that is
 * down fails the read in seconds (ServiceUnavailableError, exit 3); the read itself then uses
 * the resilient client, whose retries ride out a broker that blinks.
 *
 * Consumption: a consumer group of its own (`cutover-reader-<uuid>`, removed at the end),
 * no offset commits, so reading never moves anybody's offsets. When the group is joined (before
 * its first fetch, and again after a rejoin) each partition with something left to read is sought
 * to its next offset, and every other one is paused: a partition with nothing in the range (`from`
 * after its last record's timestamp, `to` before its first) is never fetched. Partitions that
 * reach their end are paused; the read holds at most one fetched batch while its caller works
 * (heartbeats go on meanwhile). The read ends within the fetch wait (200 ms) of its last record.
 *
 * Resume (`startAfter`, KafkaReaderContext): per partition the last offset already handled (a
 * backfill checkpoint's `position.partitions`); that partition's range starts after it, so the
 * records up to it are not fetched at all. A partition it does not name starts where it would have.
 *
 * At the end the event `kafka.reader.end` (info) gives per partition its range and the records
 * fetched from the broker (`fetched`, including any outside the range) and yielded (`read`).
 */
import {randomUUID} from 'node:crypto'
import type {Admin, Consumer, EachBatchPayload, KafkaMessage} from 'kafkajs'
import {UsageError} from '../src/errors.js'
import {DEFAULT_KAFKA_BROKERS, type KafkaSettings} from '../src/config/env.js'
import {connectAdmin, createKafka, mapKafkaError, probeKafka} from '../src/kafka/client.js'
import {decodeBytes, resolveEncoding, type SupportedEncoding} from '../src/normalize/encoding.js'
import {parseJsonExact, UnusableJsonError} from '../src/normalize/json.js'
import {batchedSource} from './source.js'
import type {BatchedRecords, Position, RawRecord, ReaderContext, SourceUri} from './types.js'

/** The reader's context, with what a resumed read has handled already. */
export interface KafkaReaderContext extends ReaderContext {
  /** per partition, the last offset handled already: the read of that partition starts after it */
  startAfter?: ReadonlyMap<number, bigint>
}

export interface PartitionRange {
  partition: number
  /** first offset to read */
  start: bigint
  /** first offset not to read */
  end: bigint
}

/**
 * The offsets a `kafka:` URI covers, per partition; with `startAfter`, a partition it names
 * starts after its offset there (never before the range's own start, nor past its end).
 */
export async function kafkaRange(admin: Admin, topic: string, from?: number, to?: number, startAfter?: ReadonlyMap<number, bigint>): Promise<PartitionRange[]> {
  const watermarks = await admin.fetchTopicOffsets(topic)
  const starts = from === undefined ? undefined : await admin.fetchTopicOffsetsByTimestamp(topic, from)
  const ends = to === undefined ? undefined : await admin.fetchTopicOffsetsByTimestamp(topic, to)
  return watermarks
    .map((w) => {
      const low = BigInt(w.low)
      const high = BigInt(w.high)
      const s = starts?.find((x) => x.partition === w.partition)
      const e = ends?.find((x) => x.partition === w.partition)
      let start = s ? BigInt(s.offset) : low
      let end = e ? BigInt(e.offset) : high
      const after = startAfter?.get(w.partition)
      if (after !== undefined && after + 1n > start) start = after + 1n
      if (start < low) start = low
      if (end > high) end = high
      return {partition: w.partition, start, end: end < start ? start : end}
    })
    .sort((a, b) => a.partition - b.partition)
}

interface Decode {
  format: 'json' | 'text'
  encoding: SupportedEncoding
}

/**
 * JSON.parse's message without the part of the value V8 quotes in it (`Unexpected token 'A',
 * "A1;4111111"... is not valid JSON`): a reader does not know which values are sensitive, and the
 * message goes into rejects and dead letters.
 */
function jsonErrorWithoutValue(e: unknown): string {
  return String((e as Error)?.message ?? e).replace(/, "[\s\S]*?"(\.\.\.)? is not valid JSON$/, ', not valid JSON')
}

function decodeMessage(topic: string, partition: number, m: KafkaMessage, d: Decode): RawRecord {
  const position: Position = {scheme: 'kafka', source: topic, partition, offset: m.offset, timestamp: m.timestamp}
  const origin = {key: m.key ?? null, ...(m.headers ? {headers: m.headers} : {})}
  const where = `${topic}/${partition}@${m.offset}`
  if (m.value === null) return {ok: false, code: 'DECODE_ERROR', message: `${where}: the value is null (a tombstone)`, position, ...origin}
  const raw = m.value
  let text: string
  try {
    text = decodeBytes(raw, d.encoding)
  } catch (e) {
    return {ok: false, code: 'DECODE_ERROR', message: `${where}: ${(e as Error).message}`, position, raw, ...origin}
  }
  if (d.format === 'text') return {ok: true, fields: {value: text}, position, raw, ...origin}
  let value: unknown
  try {
    value = parseJsonExact(text)
  } catch (e) {
    const why = e instanceof UnusableJsonError ? `the value is JSON, but ${e.message}` : `the value is not JSON (${jsonErrorWithoutValue(e)})`
    return {ok: false, code: 'DECODE_ERROR', message: `${where}: ${why}`, position, raw, ...origin}
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value
    return {ok: false, code: 'SCHEMA_VIOLATION', message: `${where}: the value is JSON ${kind}, not an object`, position, raw, ...origin}
  }
  return {ok: true, fields: value as Record<string, unknown>, position, raw, ...origin}
}

/** A kafka: record whose value is null (a tombstone of a compacted topic): the reader's DECODE_ERROR without `raw`. */
export function isTombstone(r: RawRecord): boolean {
  return !r.ok && r.code === 'DECODE_ERROR' && r.raw === undefined && r.position.scheme === 'kafka'
}

const HEARTBEAT_MS = 3000
/** the consumer's maxWaitTimeInMs: how late the read ends after its last record, at most (see readKafka) */
const FETCH_WAIT_MS = 200

/** The reader registered for `kafka:`. */
export function readKafka(uri: SourceUri, ctx: KafkaReaderContext = {}): BatchedRecords {
  const settings: KafkaSettings = ctx.kafka ?? {brokers: [DEFAULT_KAFKA_BROKERS], clientId: 'cutover'}
  const topic = uri.target
  const from = uri.params.from ? Date.parse(uri.params.from) : undefined
  const to = uri.params.to ? Date.parse(uri.params.to) : undefined
  const decode: Decode = {format: uri.params.format === 'text' ? 'text' : 'json', encoding: resolveEncoding(uri.params.encoding ?? 'utf-8')}
  const log = ctx.logger?.namespace('kafka-reader')

  return batchedSource(async function* () {
    // One quick attempt first (as stream run and backfill make at start): an unreachable broker is
    // exit 3 naming the broker in seconds, not after the resilient client's retries (~30 s).
    await probeKafka(settings, ctx.logger)
    const kafka = createKafka(settings, {mode: 'resilient', ...(ctx.logger ? {logger: ctx.logger} : {})})
    const admin = await connectAdmin(kafka, settings)
    const groupId = `cutover-reader-${randomUUID()}`
    let consumer: Consumer | undefined
    let taken: (() => void) | undefined // releases the eachBatch that waits for its batch to be taken
    let wakeReader: (() => void) | undefined
    const wake = () => {
      const w = wakeReader
      wakeReader = undefined
      w?.()
    }
    ctx.signal?.addEventListener('abort', wake, {once: true})
    try {
      let ranges: PartitionRange[]
      try {
        const topics = await admin.listTopics()
        if (!topics.includes(topic)) {
          throw new UsageError(`source "${uri.text}": topic ${topic} does not exist`, {hint: 'check the topic name (kafka:<topic>) and KAFKA_BROKERS'})
        }
        ranges = await kafkaRange(admin, topic, from, to, ctx.startAfter)
      } catch (e) {
        if (e instanceof UsageError) throw e
        throw mapKafkaError(e, settings, `read offsets of ${topic}`)
      }
      log?.info('kafka.reader.range', {topic, ranges: ranges.map((r) => ({partition: r.partition, start: String(r.start), end: String(r.end)}))})
      const open = new Map(ranges.filter((r) => r.end > r.start).map((r) => [r.partition, r]))
      if (open.size === 0) return

      // The bridge between kafkajs' push (eachBatch) and our pull (the generator).
      const next = new Map<number, bigint>() // per partition: first offset not yet yielded
      const fetched = new Map<number, number>() // per partition: messages the broker gave (kafka.reader.end)
      const yielded = new Map<number, number>()
      const queue: RawRecord[][] = []
      let failure: unknown
      const c = kafka.consumer({
        groupId,
        allowAutoTopicCreation: false,
        readUncommitted: false,
        retry: {retries: 8},
        // The end of the read waits for the fetch in flight (disconnect stops the consumer, which
        // lets its fetch loop finish), and once every partition is paused (all at their end) that
        // loop sleeps this long between fetches: kafkajs' 5 s default made every kafka: read end
        // 5 s late. 200 ms, as stream run's: at most 5 empty fetches a second while there is nothing
        // to fetch, which during a read is only at its end (minBytes 1: data is returned at once).
        maxWaitTimeInMs: FETCH_WAIT_MS,
      })
      consumer = c
      const markProgress = (partition: number, lastOffset: string) => {
        const r = open.get(partition)
        if (!r) return
        if (BigInt(lastOffset) + 1n >= r.end) {
          open.delete(partition)
          c.pause([{topic, partitions: [partition]}])
          if (open.size === 0) wake()
        }
      }
      // Also fires for batches made only of control records or aborted messages, which eachBatch never sees.
      c.on(c.events.END_BATCH_PROCESS, (e) => {
        if (e.payload.topic === topic) markProgress(e.payload.partition, e.payload.lastOffset)
      })
      // Before the first fetch (kafkajs applies seeks and pauses on its next fetch), and after a
      // rejoin (a restarted consumer forgets both): what is left to read starts at its next offset,
      // the rest is never fetched. subscribe's fromBeginning would otherwise read every partition
      // from its low watermark, the finished and the empty ones to their end.
      // (Partitions added since the range was taken are assigned too, and have nothing in it.)
      c.on(c.events.GROUP_JOIN, (e) => {
        const assigned = e.payload.memberAssignment[topic] ?? []
        const idle = [...new Set([...ranges.map((r) => r.partition), ...assigned])].filter((p) => !open.has(p))
        if (idle.length > 0) c.pause([{topic, partitions: idle}])
        for (const r of open.values()) c.seek({topic, partition: r.partition, offset: String(next.get(r.partition) ?? r.start)})
      })
      c.on(c.events.CRASH, (e) => {
        if (!e.payload.restart) {
          failure = e.payload.error
          wake()
        }
      })

      const eachBatch = async ({batch, heartbeat}: EachBatchPayload): Promise<void> => {
        fetched.set(batch.partition, (fetched.get(batch.partition) ?? 0) + batch.messages.length)
        const r = open.get(batch.partition)
        if (!r) return
        const from = next.get(batch.partition) ?? r.start
        const records: RawRecord[] = []
        for (const m of batch.messages) {
          const o = BigInt(m.offset)
          if (o < from || o >= r.end) continue // before the range (a fetch before our seek) or after it
          records.push(decodeMessage(topic, batch.partition, m, decode))
        }
        if (records.length > 0) {
          next.set(batch.partition, BigInt(records[records.length - 1]!.position.offset!) + 1n)
          yielded.set(batch.partition, (yielded.get(batch.partition) ?? 0) + records.length)
          queue.push(records)
          wake()
          // Hold the fetch until the reader has taken this batch; keep the group alive meanwhile.
          await new Promise<void>((resolve) => {
            taken = resolve
            const beat = setInterval(() => void heartbeat().catch(() => {}), HEARTBEAT_MS)
            const done = taken
            taken = () => {
              clearInterval(beat)
              done()
            }
          })
        }
      }

      try {
        await c.connect()
        await c.subscribe({topics: [topic], fromBeginning: true})
        await c.run({autoCommit: false, eachBatchAutoResolve: true, partitionsConsumedConcurrently: 1, eachBatch})
      } catch (e) {
        throw mapKafkaError(e, settings, `consume ${topic}`)
      }

      for (;;) {
        if (ctx.signal?.aborted) throw ctx.signal.reason ?? new Error('aborted')
        const b = queue.shift()
        if (b) {
          const t = taken
          taken = undefined
          t?.()
          yield b
          continue
        }
        if (failure) throw mapKafkaError(failure, settings, `consume ${topic}`)
        if (open.size === 0) {
          log?.info('kafka.reader.end', {
            topic,
            partitions: ranges.map((r) => ({partition: r.partition, start: String(r.start), end: String(r.end), fetched: fetched.get(r.partition) ?? 0, read: yielded.get(r.partition) ?? 0})),
          })
          return
        }
        await new Promise<void>((resolve) => (wakeReader = resolve))
      }
    } finally {
      ctx.signal?.removeEventListener('abort', wake)
      taken?.() // an early stop: let a waiting eachBatch return, or disconnect would wait for it
      if (consumer) await consumer.disconnect().catch((e: unknown) => log?.warn('kafka.reader.disconnect_failed', {error: e}))
      await admin.deleteGroups([groupId]).catch(() => {}) // never joined, or already gone: nothing to remove
      await admin.disconnect().catch(() => {})
    }
  })
}
