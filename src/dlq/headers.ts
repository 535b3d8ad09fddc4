/**
 * Dead-letter headers -> one view (`DeadLetterView`), whoever wrote the dead letter:
 *
 *   cutover (DESIGN.md)        cutover.error.code / .message / .stage, cutover.source.topic /
 *                              .partition / .offset / .timestamp, cutover.pipeline / .version,
 *                              cutover.attempts, cutover.replay.count, cutover.failed.at
 *                              (all UTF-8 text)
 *   Kafka Connect              __connect.errors.topic / .partition / .offset (UTF-8 text),
 *   (errors.deadletterqueue.   __connect.errors.connector.name, .task.id, .stage,
 *    context.headers.enable)   .class.name, .exception.class.name, .exception.message,
 *                              .exception.stacktrace (never shown)
 *   Spring Kafka               kafka_dlt-original-topic (text), -original-partition (4-byte
 *   (DeadLetterPublishing-     big-endian int), -original-offset / -original-timestamp (8-byte
 *    Recoverer)                big-endian long), -original-consumer-group, -exception-fqcn,
 *                              -exception-cause-fqcn, -exception-message, -exception-stacktrace
 *                              (older versions wrote text: both are read); a key that could not
 *                              be deserialized has -key-exception-fqcn / -message / -stacktrace
 *                              instead of the -exception-* ones (Spring 2.7+)
 *
 * Connect and Spring name a Java exception, not a cutover code: `codeOfException` maps the
 * well-known deserialization and conversion failures to DECODE_ERROR and keeps the exception's
 * simple class name as the code otherwise (so counts by code still say what failed).
 *
 * `replayHeaders` gives the headers a replayed record carries: the original ones (byte for
 * byte, minus every dead-letter header above) plus `cutover.replay.count` and `cutover.replay.id`.
 */
import type {IHeaders} from 'kafkajs'
import {RECORD_ERROR_CODES} from '../errors.js'
import {writableHeaderValue, type ReadHeaderValue} from '../kafka/headers.js'
import {DLQ_HEADERS, SOURCE_ENCODING_HEADER, VALUE_OMITTED_HEADER} from '../runtime/outbox.js'

export type DeadLetterOrigin = 'cutover' | 'connect' | 'spring' | 'unknown'

export interface SourceCoordinates {
  topic: string | null
  partition: number | null
  offset: string | null
  /** ms since epoch, as a string */
  timestamp: string | null
}

export interface DeadLetterView {
  origin: DeadLetterOrigin
  /** a DESIGN.md code, or for Connect/Spring the exception's simple class name; UNKNOWN when none */
  code: string
  message: string | null
  stage: string | null
  source: SourceCoordinates
  pipeline: string | null
  /** cutover: SHA-256 of the spec (Connect and Spring have none) */
  pipelineVersion: string | null
  attempts: number | null
  replayCount: number
  /** ISO-8601: cutover.failed.at, else the dead letter's own timestamp */
  failedAt: string | null
  /** the Java exception, for Connect and Spring */
  exceptionClass: string | null
  /**
   * set when the relay could not publish the value (cutover.value.omitted): the record cannot be
   * replayed; `dlq republish` publishes the dead letter again with its value, a later copy that
   * then stands for it (./reader.ts DeadLetterCopies)
   */
  valueOmitted: string | null
}

export const REPLAY_COUNT_HEADER = 'cutover.replay.count'
export const REPLAY_ID_HEADER = 'cutover.replay.id'
export const PARKED_BY_HEADER = 'cutover.parked.by'

/** The runtime's own dead-letter headers (DESIGN.md), plus what the relay and replays add. */
const CUTOVER_DEAD_LETTER = new Set<string>([...DLQ_HEADERS, VALUE_OMITTED_HEADER, SOURCE_ENCODING_HEADER, REPLAY_ID_HEADER, PARKED_BY_HEADER])

/** Is this header dead-letter bookkeeping (not one of the original record's headers)? */
export function isDeadLetterHeader(name: string): boolean {
  return CUTOVER_DEAD_LETTER.has(name) || name.startsWith('__connect.errors.') || name.startsWith('kafka_dlt-')
}

/** A header's value as kafkajs reads it: null for a header without a value, which reads as absent (../kafka/headers.ts). */
type HeaderValue = ReadHeaderValue

function first(headers: IHeaders | Record<string, HeaderValue> | undefined, name: string): Buffer | undefined {
  const v = headers?.[name] as HeaderValue
  if (v === undefined || v === null) return undefined
  const one = Array.isArray(v) ? v[v.length - 1] : v
  if (one === undefined || one === null) return undefined
  return Buffer.isBuffer(one) ? one : Buffer.from(one, 'utf8')
}

function text(headers: IHeaders | Record<string, HeaderValue> | undefined, name: string): string | null {
  const b = first(headers, name)
  return b === undefined ? null : b.toString('utf8')
}

/** A header's text (UTF-8; the last of a repeated name), null when the record has none. */
export function headerText(headers: IHeaders | Record<string, HeaderValue> | undefined, name: string): string | null {
  return text(headers, name)
}

function int(s: string | null): number | null {
  if (s === null || !/^-?\d+$/.test(s.trim())) return null
  return Number(s.trim())
}

/** Spring writes ints and longs as big-endian binary (4 and 8 bytes); older versions as text. */
function springNumber(b: Buffer | undefined): string | null {
  if (b === undefined) return null
  if (b.length === 4) return String(b.readInt32BE(0))
  if (b.length === 8) return b.readBigInt64BE(0).toString()
  const s = b.toString('utf8').trim()
  return /^-?\d+$/.test(s) ? s : null
}

const CODES = new Set<string>(RECORD_ERROR_CODES)

/** Java exceptions that mean "the bytes could not be read": DECODE_ERROR. */
const DECODE_EXCEPTIONS = [
  'SerializationException',
  'DeserializationException',
  'RecordDeserializationException',
  'JsonParseException',
  'JsonProcessingException',
  'MismatchedInputException',
  'CharacterCodingException',
  'MalformedInputException',
]

/** org.apache.kafka.connect.errors.DataException -> DECODE_ERROR (when it is a conversion failure) or DataException. */
export function codeOfException(fqcn: string | null, message: string | null): string {
  if (!fqcn) return 'UNKNOWN'
  const simple = fqcn.slice(fqcn.lastIndexOf('.') + 1).replace(/[^A-Za-z0-9_$]/g, '')
  if (DECODE_EXCEPTIONS.includes(simple)) return 'DECODE_ERROR'
  // Connect's converters wrap deserialization failures in DataException ("Converting byte[] to Kafka Connect data failed ...")
  if (simple === 'DataException' && message && /converting byte\[\]|deserializ|serializ|json/i.test(message)) return 'DECODE_ERROR'
  return simple || 'UNKNOWN'
}

function isoOfMs(ms: string | null): string | null {
  if (ms === null) return null
  const n = Number(ms)
  return Number.isFinite(n) && n > 0 ? new Date(n).toISOString() : null
}

/**
 * The view of one dead letter. `dlqTimestamp` (the dead letter's own Kafka timestamp, ms) stands
 * in for the failure time when the headers do not say.
 */
export function deadLetterView(headers: IHeaders | Record<string, HeaderValue> | undefined, dlqTimestamp?: string): DeadLetterView {
  const replayCount = int(text(headers, REPLAY_COUNT_HEADER)) ?? 0
  const cutoverCode = text(headers, 'cutover.error.code')
  if (cutoverCode !== null) {
    return {
      origin: 'cutover',
      code: CODES.has(cutoverCode) ? cutoverCode : cutoverCode || 'UNKNOWN',
      message: text(headers, 'cutover.error.message'),
      stage: text(headers, 'cutover.error.stage'),
      source: {
        topic: text(headers, 'cutover.source.topic'),
        partition: int(text(headers, 'cutover.source.partition')),
        offset: text(headers, 'cutover.source.offset'),
        timestamp: text(headers, 'cutover.source.timestamp'),
      },
      pipeline: text(headers, 'cutover.pipeline'),
      pipelineVersion: text(headers, 'cutover.pipeline.version'),
      attempts: int(text(headers, 'cutover.attempts')),
      replayCount,
      failedAt: text(headers, 'cutover.failed.at') ?? isoOfMs(dlqTimestamp ?? null),
      exceptionClass: null,
      valueOmitted: text(headers, VALUE_OMITTED_HEADER),
    }
  }
  const connectClass = text(headers, '__connect.errors.exception.class.name')
  if (connectClass !== null || text(headers, '__connect.errors.topic') !== null) {
    const message = text(headers, '__connect.errors.exception.message')
    return {
      origin: 'connect',
      code: codeOfException(connectClass, message),
      message,
      stage: text(headers, '__connect.errors.stage'),
      source: {
        topic: text(headers, '__connect.errors.topic'),
        partition: int(text(headers, '__connect.errors.partition')),
        offset: text(headers, '__connect.errors.offset'),
        timestamp: null,
      },
      pipeline: text(headers, '__connect.errors.connector.name'),
      pipelineVersion: null,
      attempts: null,
      replayCount,
      failedAt: isoOfMs(dlqTimestamp ?? null),
      exceptionClass: connectClass,
      valueOmitted: null,
    }
  }
  const springValueClass = text(headers, 'kafka_dlt-exception-fqcn')
  const springClass = springValueClass ?? text(headers, 'kafka_dlt-key-exception-fqcn')
  if (springClass !== null || text(headers, 'kafka_dlt-original-topic') !== null) {
    const message = springValueClass !== null ? text(headers, 'kafka_dlt-exception-message') : text(headers, 'kafka_dlt-key-exception-message')
    const cause = text(headers, 'kafka_dlt-exception-cause-fqcn')
    const partition = springNumber(first(headers, 'kafka_dlt-original-partition'))
    // Spring wraps the listener's exception in ListenerExecutionFailedException; the cause says more
    const cls = cause && /ListenerExecutionFailedException$/.test(springClass ?? '') ? cause : springClass
    return {
      origin: 'spring',
      code: codeOfException(cls, message),
      message,
      stage: null,
      source: {
        topic: text(headers, 'kafka_dlt-original-topic'),
        partition: partition === null ? null : Number(partition),
        offset: springNumber(first(headers, 'kafka_dlt-original-offset')),
        timestamp: springNumber(first(headers, 'kafka_dlt-original-timestamp')),
      },
      pipeline: text(headers, 'kafka_dlt-original-consumer-group'),
      pipelineVersion: null,
      attempts: null,
      replayCount,
      failedAt: isoOfMs(dlqTimestamp ?? null),
      exceptionClass: cls,
      valueOmitted: null,
    }
  }
  return {
    origin: 'unknown',
    code: 'UNKNOWN',
    message: null,
    stage: null,
    source: {topic: null, partition: null, offset: null, timestamp: null},
    pipeline: null,
    pipelineVersion: null,
    attempts: null,
    replayCount,
    failedAt: isoOfMs(dlqTimestamp ?? null),
    exceptionClass: null,
    valueOmitted: null,
  }
}

/**
 * The headers of a replayed record: the dead letter's original headers, byte for byte and in
 * their order, without the dead-letter bookkeeping (one without a value goes empty: writableHeaderValue);
 * then `cutover.replay.count` (the previous count + 1) and `cutover.replay.id`.
 */
export function replayHeaders(headers: IHeaders | Record<string, HeaderValue> | undefined, replayId: string, count: number): IHeaders {
  const out: IHeaders = {}
  for (const [name, v] of Object.entries(headers ?? {})) {
    if (v === undefined || isDeadLetterHeader(name)) continue
    out[name] = writableHeaderValue(v as Exclude<HeaderValue, undefined>)
  }
  out[REPLAY_COUNT_HEADER] = Buffer.from(String(count), 'utf8')
  out[REPLAY_ID_HEADER] = Buffer.from(replayId, 'utf8')
  return out
}

/** The headers of a parked record: everything the dead letter had, plus who parked it. */
export function parkedHeaders(headers: IHeaders | Record<string, HeaderValue> | undefined, replayId: string): IHeaders {
  const out: IHeaders = {}
  for (const [name, v] of Object.entries(headers ?? {})) {
    if (v === undefined || name === PARKED_BY_HEADER) continue
    out[name] = writableHeaderValue(v as Exclude<HeaderValue, undefined>)
  }
  out[PARKED_BY_HEADER] = Buffer.from(replayId, 'utf8')
  return out
}
