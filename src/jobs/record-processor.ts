/**
 * The per-record work of `cutover normalize` (./normalize.ts), in a module of its own so that
 * the worker thread (./normalize-worker.ts) loads only this and the normalizers, not the
 * readers: normalize, serialize, dedupe, and the clean and reject NDJSON of each batch.
 */
import type {Position, RawRecord, RawRecordError} from '../../legacy-adapters/types.js'
import type {RecordErrorCode} from '../errors.js'
import type {PipelineSpec} from '../config/spec.js'
import {createNormalizer, fieldWithoutValue, maskedKeyOf, showValue} from '../normalize/index.js'
import type {Rejection} from '../normalize/types.js'
import {cyrb53, KeyTable} from './key-table.js'

export interface RejectLine {
  code: RecordErrorCode
  field: string | null
  value: string | null
  message: string
  position: Position
  /**
   * A record the reader could not read (a malformed or unclosed quote, a wrong field count, bytes
   * invalid in the encoding, a bad copybook field): what the reader keeps for its dead letter
   * (`raw`, see deadLetterRaw in legacy-adapters/csv.ts). A csv record's lines as UTF-8 text when
   * every byte is a character of the file's encoding (windows-1251 decoded)...
   */
  original?: string
  /**
   * ...else the file's bytes as they are, in base64: a csv record's lines holding a byte invalid
   * in the encoding, a fixed record (always: EBCDIC, packed fields)...
   */
  original_base64?: string
  /** ...in this encoding (the reader's `rawEncoding`): the file's, not UTF-8 */
  original_encoding?: string
  /**
   * Why neither is there although the reader kept the lines: the spec has `sensitive` fields, and
   * a record that could not be split into fields cannot be masked field by field (its values may
   * sit in other columns, and a sensitive value need not look like a card number).
   */
  original_withheld?: string
}

// eslint-disable-next-line no-control-regex -- control characters are exactly what JSON must escape
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u2028\u2029\ud800-\udfff]/

/** Whether JSON.stringify would escape a character of `s` (a loop beats the regex on short values). */
function needsEscape(s: string): boolean {
  const n = s.length
  if (n > 32) return NEEDS_ESCAPE.test(s)
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0x2028 && (c <= 0x2029 || (c >= 0xd800 && c <= 0xdfff)))) return true
  }
  return false
}

/**
 * A serializer for the spec's records (fixed keys, string/boolean/null values), several times
 * faster than JSON.stringify on them; the output is byte-identical to JSON.stringify's.
 * Generated per spec: constant property reads and one concatenation when every field is
 * present (the normal case); the general loop when one is undefined (left out, as JSON does).
 */
export function recordSerializer(names: readonly string[]): (record: Record<string, unknown>) => string {
  const keys = names.map((n) => JSON.stringify(n) + ':')
  const n = names.length
  const general = (record: Record<string, unknown>): string => {
    let out = '{'
    for (let i = 0; i < n; i++) {
      const v = record[names[i]!]
      if (v === undefined) continue
      out += (out.length === 1 ? '' : ',') + keys[i]!
      if (typeof v === 'string') out += needsEscape(v) ? JSON.stringify(v) : '"' + v + '"'
      else out += JSON.stringify(v)
    }
    return out + '}'
  }
  if (n === 0) return general
  const vs = names.map((_, i) => `v${i}`)
  const value = (v: string) => `(typeof ${v} === 'string' ? (E(${v}) ? J(${v}) : '"' + ${v} + '"') : J(${v}))`
  const body =
    names.map((name, i) => `const v${i} = r[${JSON.stringify(name)}];`).join('\n') +
    `\nif (${vs.map((v) => `${v} === undefined`).join(' || ')}) return G(r);\n` +
    `return ${vs.map((v, i) => `${JSON.stringify((i === 0 ? '{' : ',') + keys[i])} + ${value(v)}`).join(' + ')} + '}';`
  const make = new Function('E', 'J', 'G', `return (r) => {\n${body}\n}`) as (
    e: (s: string) => boolean,
    j: typeof JSON.stringify,
    g: typeof general,
  ) => (record: Record<string, unknown>) => string
  return make(needsEscape, JSON.stringify, general)
}

/**
 * The reject of a record the reader could not read: the field it names (an input name) as the
 * spec field that reads it (`from`), and its value as read, masked when that field is sensitive.
 * A field the spec does not read keeps the reader's name, without its value: nothing says whether
 * it is safe to show. A csv or fixed record's original (the reader's `raw`) is kept as `original`
 * (text) or, when the reader says it is the file's bytes (`rawEncoding`), as `original_base64`
 * with `original_encoding`: never guessed from the bytes (windows-1251 `D0 98`, Р and the
 * invalid 0x98, is valid UTF-8 "И"). The spec has sensitive fields: `original_withheld` instead.
 * Only rejected records pay for this; good records never reach here.
 */
function readerRejectOf(fields: RecordProcessorSpec['fields']): (raw: RawRecordError) => RejectLine {
  const byInput = new Map<string, {name: string; sensitive: boolean}>()
  for (const [name, f] of Object.entries(fields)) {
    const seen = byInput.get(f.from)
    if (!seen) byInput.set(f.from, {name, sensitive: f.sensitive === true})
    else if (f.sensitive) seen.sensitive = true // read by two fields, one sensitive: masked
  }
  const sensitive = Object.entries(fields).filter(([, f]) => f.sensitive === true).map(([name]) => name)
  const withheld = sensitive.length > 0 ? `not shown: the spec marks ${sensitive.join(', ')} sensitive, and a record that could not be read cannot be masked field by field` : undefined
  return (raw) => {
    const target = raw.field === undefined ? undefined : byInput.get(raw.field)
    const line: RejectLine = {
      code: raw.code,
      field: target?.name ?? raw.field ?? null,
      value: raw.value === undefined || target === undefined ? null : showValue(raw.value, target.sensitive),
      message: raw.message,
      position: raw.position,
    }
    // file records only: a kafka: record's raw is the message value, on its topic already
    if (raw.raw !== undefined && (raw.position.scheme === 'csv' || raw.position.scheme === 'fixed')) {
      if (withheld !== undefined) line.original_withheld = withheld
      else if (raw.rawEncoding === undefined) line.original = raw.raw.toString('utf8')
      else {
        line.original_base64 = raw.raw.toString('base64')
        line.original_encoding = raw.rawEncoding
      }
    }
    return line
  }
}

/** What the per-record work needs of a spec (plain data: it is also sent to the worker thread). */
export interface RecordProcessorSpec {
  fields: PipelineSpec['fields']
  dedupe?: PipelineSpec['dedupe']
}

/** Counts kept while records are processed (the summary's counting part). */
export interface NormalizeCounts {
  read: number
  ok: number
  rejected: Partial<Record<RecordErrorCode, number>>
  duplicates: number
}

/**
 * The per-record work of `normalize`, one batch at a time, in input order: normalize,
 * serialize, dedupe (first occurrence wins), and the clean and reject NDJSON of the batch.
 * The single-threaded path and the worker thread (./normalize-worker.ts) both run exactly this.
 */
export function createRecordProcessor(spec: RecordProcessorSpec, withRejects: boolean, counts: NormalizeCounts): (batch: readonly RawRecord[]) => {clean: string; bad: string} {
  const normalize = createNormalizer(spec.fields, {original: false})
  const dedupeBy = spec.dedupe?.by ?? undefined
  const dedupeFields = dedupeBy === undefined ? [] : Array.isArray(dedupeBy) ? dedupeBy : [dedupeBy]
  const seen = dedupeFields.length > 0 ? new KeyTable() : undefined
  // the key as a rejection shows it: a sensitive field's value masked, as the stream's dedupe stage does
  const maskedKey = maskedKeyOf(dedupeFields, spec.fields)
  const count = (code: RecordErrorCode) => (counts.rejected[code] = (counts.rejected[code] ?? 0) + 1)
  const rejectLine = (r: RejectLine) => JSON.stringify(r) + '\n'
  const serialize = recordSerializer(Object.keys(spec.fields))
  const readerReject = readerRejectOf(spec.fields)

  return (batch) => {
    let clean = ''
    let bad = ''
    for (const raw of batch) {
      counts.read++
      if (!raw.ok) {
        count(raw.code)
        if (withRejects) bad += rejectLine(readerReject(raw))
        continue
      }
      const result = normalize(raw)
      if (!result.ok) {
        // A record is rejected once, under its first rejection's code; all its rejections are written.
        const first = result.rejections[0] as Rejection
        count(first.code)
        if (withRejects) for (const r of result.rejections) bad += rejectLine(r)
        continue
      }
      if (seen) {
        // as the stream's validate stage: a record without a dedupe key is refused, not deduplicated
        // under the key "null" (shared with the text "null" and with every other record without one)
        const missing = fieldWithoutValue(dedupeFields, result.record)
        if (missing !== undefined) {
          count('SCHEMA_VIOLATION')
          if (withRejects) {
            bad += rejectLine({code: 'SCHEMA_VIOLATION', field: missing, value: null, message: `field ${missing} has no value, and the pipeline needs it (dedupe)`, position: raw.position})
          }
          continue
        }
      }
      const line = serialize(result.record)
      if (seen) {
        const key = dedupeFields.length === 1 ? String(result.record[dedupeFields[0]!]) : JSON.stringify(dedupeFields.map((f) => result.record[f]))
        const hash = cyrb53(line)
        const before = seen.getOrAdd(key, hash)
        if (before !== undefined) {
          if (before === hash) {
            counts.duplicates++
          } else {
            count('DUPLICATE_CONFLICT')
            if (withRejects) {
              const shown = maskedKey ? maskedKey(result.record) : key
              bad += rejectLine({
                code: 'DUPLICATE_CONFLICT',
                field: dedupeFields.join(','),
                value: shown,
                message: `${dedupeFields.join(',')} "${shown}" was seen before with a different payload`,
                position: raw.position,
              })
            }
          }
          continue
        }
      }
      counts.ok++
      clean += line + '\n'
    }
    return {clean, bad}
  }
}

