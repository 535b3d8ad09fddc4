/**
 * Kafka record headers as kafkajs reads them, and as it can write them. Kafka allows a header
 * without a value (length -1: Kafka Connect writes one for an exception without a message, and any
 * producer may), which kafkajs reads as null; its record encoder cannot write one (sizeOfHeaders
 * calls Buffer.byteLength(null) and throws, kafkajs 2.2.4). A record passed on (a replay, a
 * parked dead letter, a kafka: backfill) carries such a header empty, the nearest kafkajs can send.
 */
import type {IHeaders} from 'kafkajs'

/** A header's value as kafkajs reads it: null for a header without a value. */
export type ReadHeaderValue = Buffer | string | null | (Buffer | string | null)[] | undefined

const EMPTY = Buffer.alloc(0)

/** A header value kafkajs can write: a value-less header (null) empty, every other value as it is. */
export function writableHeaderValue(v: Exclude<ReadHeaderValue, undefined>): IHeaders[string] {
  if (v === null) return EMPTY
  if (Array.isArray(v)) return v.map((one) => (one === null ? EMPTY : one)) as IHeaders[string]
  return v
}

/** Headers as read, made writable (writableHeaderValue); undefined values dropped. */
export function writableHeaders(headers: Record<string, ReadHeaderValue> | IHeaders): IHeaders {
  const out: IHeaders = {}
  for (const [name, v] of Object.entries(headers as Record<string, ReadHeaderValue>)) if (v !== undefined) out[name] = writableHeaderValue(v)
  return out
}
