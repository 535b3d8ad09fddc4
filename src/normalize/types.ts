/**
 * The contract of the normalizer: one path, used by `normalize`, `stream run`, backfill and
 * parity. It turns a raw record (field name -> text or JSON value) into the typed record the
 * spec's `fields` describe, or into rejections that each carry a DESIGN.md code, the field,
 * the value (masked when the field is `sensitive`) and the record's position.
 */
import type {RecordErrorCode} from '../errors.js'
import type {Position} from '../../legacy-adapters/types.js'

/**
 * A normalized value: strings stay strings; `decimal` is an exact decimal string with exactly
 * `scale` digits after the point ("1234.50", "-12.50"); `integer` is a decimal string of an
 * integer ("42"; bigint-safe); `timestamp` is UTC ISO-8601 with milliseconds
 * ("2026-11-20T09:15:00.000Z"); `date` is "yyyy-MM-dd"; `boolean` is true/false; null for missing.
 */
export type NormalizedValue = string | boolean | null

export interface Rejection {
  code: RecordErrorCode
  field: string | null
  /** the offending value, masked if the field is sensitive; null when absent */
  value: string | null
  /** one human sentence naming the field and the value */
  message: string
  position: Position
}

export interface NormalizeOk {
  ok: true
  record: Record<string, NormalizedValue>
  /** original text of each timestamp/date/decimal field that was converted, for audit */
  original: Record<string, string>
  position: Position
}

export interface NormalizeRejected {
  ok: false
  rejections: Rejection[]
  position: Position
}

export type NormalizeResult = NormalizeOk | NormalizeRejected
