/**
 * The one normalizer path (used by `normalize`, `stream run`, backfill, parity and
 * `pipeline test`): `createNormalizer(spec.fields)` compiles every field once (converters,
 * date formats, zones, patterns, defaults); the returned function turns one raw record into
 * the typed record, or into the list of ALL its field rejections.
 *
 * Per field, in order:
 *  1. read `raw.fields[from]` (or, when there is no such key and `from` has dots, the nested
 *     JSON value: "card.number"); undefined/null is missing; a JSON object or list is
 *     SCHEMA_VIOLATION; JSON numbers and booleans are accepted where the type allows
 *     (see decimal.ts, integer.ts, boolean.ts; a string field gets String(n));
 *  2. text is trimmed when `trim: true`, and always for non-string types;
 *  3. empty text is missing for non-string types and with `empty_as_null`; a string field
 *     keeps "" otherwise (but `required` still rejects it, and `default` replaces it);
 *  4. missing: `default` if set, else REQUIRED_FIELD_EMPTY if `required`, else null;
 *  5. `pattern` (PATTERN_MISMATCH) and `max_length` (SCHEMA_VIOLATION) check the text;
 *  6. the type's converter (decimal, integer, boolean, timestamp, date).
 * Values in rejections are masked for `sensitive` fields; `original` keeps the input text of
 * converted decimal/timestamp/date fields for audit (sensitive ones are not kept).
 */
import type {Position, RawRecordOk} from '../../legacy-adapters/types.js'
import type {FieldSpec, FieldType} from '../config/spec.js'
import {booleanFromNumber, parseBoolean} from './boolean.js'
import {decimalFromNumber, decimalFromNumberText, exactDecimalsOf, parseDecimal, parseExactDecimal} from './decimal.js'
import {Fail} from './fail.js'
import {integerFromNumber, parseInteger} from './integer.js'
import {JsonNumberText} from './json.js'
import {charLength, showValue} from './text.js'
import {DateMatcher} from './timestamp.js'
import type {NormalizedValue, NormalizeResult, Rejection} from './types.js'

/** Options that apply to all fields. */
export interface NormalizerOptions {
  /**
   * Keep the input text of converted fields in `original` (default true). `normalize`, which
   * never reads it, turns it off: one object and its properties less per record.
   */
  original?: boolean
}

/** `original` when it is not kept. */
const NO_ORIGINAL: Record<string, string> = Object.freeze({}) as Record<string, string>

export type Normalizer = (raw: RawRecordOk) => NormalizeResult

type Convert = (text: string) => NormalizedValue | Fail
type ConvertNumber = (n: number) => NormalizedValue | Fail

export interface CompiledField {
  name: string
  from: string
  /** `from` split at dots, for nested JSON values ("card.number"); undefined when it has no dot */
  path: string[] | undefined
  type: FieldType
  required: boolean
  trim: boolean
  emptyAsNull: boolean
  sensitive: boolean
  pattern: RegExp | undefined
  maxLength: number | undefined
  /** the normalized default; undefined when none */
  defaultValue: NormalizedValue | undefined
  keepOriginal: boolean
  convert: Convert
  fromNumber: ConvertNumber
  /** a JSON number that a double cannot hold exactly, from its text as written (./json.ts) */
  fromNumberText: Convert
  fromBoolean: ((b: boolean) => NormalizedValue | Fail) | undefined
  /** decimal fields: a value the reader marks as an exact decimal ("." the point: EXACT_DECIMALS in ./decimal.ts) */
  exactDecimal: Convert | undefined
}

/** Compiles one field; throws an Error with a human message when the spec of the field cannot work. */
export function compileField(name: string, f: FieldSpec): CompiledField {
  let convert: Convert
  let fromNumber: ConvertNumber
  let fromNumberText: Convert | undefined
  let fromBoolean: CompiledField['fromBoolean']
  let exactDecimal: Convert | undefined
  switch (f.type) {
    case 'string':
      convert = (t) => t
      fromNumber = (n) => String(n)
      fromNumberText = (t) => t
      fromBoolean = (b) => String(b)
      break
    case 'integer':
      convert = parseInteger
      fromNumber = integerFromNumber
      fromNumberText = parseInteger
      break
    case 'decimal': {
      if (f.scale === undefined) throw new Error('a decimal field needs `scale` (digits after the point)')
      if (f.precision < f.scale) throw new Error(`precision ${f.precision} is less than scale ${f.scale}`)
      const options = {scale: f.scale, precision: f.precision, decimalSeparator: f.decimal_separator}
      convert = (t) => parseDecimal(t, options)
      fromNumber = (n) => decimalFromNumber(n, options)
      fromNumberText = (t) => decimalFromNumberText(t, options)
      exactDecimal = (t) => parseExactDecimal(t, options)
      break
    }
    case 'timestamp':
    case 'date': {
      const kind = f.type
      if (kind === 'timestamp' && (f.formats === undefined || f.formats.length === 0)) {
        throw new Error('a timestamp field needs `formats` (e.g. ["iso", "dd.MM.yyyy HH:mm:ss"])')
      }
      const matcher = new DateMatcher(f.formats ?? ['yyyy-MM-dd'], f.timezone)
      convert = (t) => matcher.parse(t, kind)
      // a JSON number is read as its text would be (1795166100.5 as "1795166100.5": epoch_s with
      // a fraction, kept to the µs); String(n) is in exponent form from 1e21 and below 1e-6,
      // which no format reads: UNPARSEABLE_DATE, as that text would be
      fromNumber = (n) => (Number.isFinite(n) && n >= 0 ? matcher.parse(String(n), kind) : new Fail('UNPARSEABLE_DATE', 'is a JSON number that is not an epoch time'))
      // a number a double cannot hold (1795166100.123456, 16 digits) from its text as written,
      // exactly as the string "1795166100.123456" is read (to the µs)
      fromNumberText = (t) => matcher.parse(t, kind)
      break
    }
    case 'boolean':
      convert = parseBoolean
      fromNumber = booleanFromNumber
      fromBoolean = (b) => b
      break
  }
  let pattern: RegExp | undefined
  if (f.pattern !== undefined) {
    try {
      pattern = new RegExp(f.pattern)
    } catch (e) {
      throw new Error(`pattern is not a valid regular expression: ${(e as Error).message}`, {cause: e})
    }
  }
  const field: CompiledField = {
    name,
    from: f.from,
    path: f.from.includes('.') ? f.from.split('.') : undefined,
    type: f.type,
    required: f.required,
    trim: f.trim,
    emptyAsNull: f.empty_as_null,
    sensitive: f.sensitive,
    pattern,
    maxLength: f.max_length,
    defaultValue: undefined,
    keepOriginal: (f.type === 'decimal' || f.type === 'timestamp' || f.type === 'date') && !f.sensitive,
    convert,
    fromNumber,
    fromNumberText: fromNumberText ?? ((t) => fromNumber(Number(t))),
    fromBoolean,
    exactDecimal,
  }
  if (f.default !== undefined) {
    const d = f.default
    const v = typeof d === 'string' ? convert(f.type === 'string' && !f.trim ? d : d.trim()) : typeof d === 'number' ? fromNumber(d) : fromBoolean ? fromBoolean(d) : new Fail('SCHEMA_VIOLATION', `is not a ${f.type}`)
    if (v instanceof Fail) throw new Error(`default ${JSON.stringify(d)} ${v.reason}`)
    // a default is held to what an input value is held to: the pattern and max_length on its text (a YAML number's too)
    const text = typeof d === 'string' ? (f.type === 'string' && !f.trim ? d : d.trim()) : String(d)
    if (pattern && !pattern.test(text)) throw new Error(`default ${JSON.stringify(d)} does not match the pattern ${f.pattern}`)
    if (f.max_length !== undefined && charLength(text) > f.max_length) throw new Error(`default ${JSON.stringify(d)} is longer than max_length ${f.max_length}`)
    field.defaultValue = v
  }
  return field
}

/** A nested JSON value: {card: {number: "4111..."}} at ["card", "number"]. */
function dig(input: Record<string, unknown>, path: string[]): unknown {
  let v: unknown = input
  for (const p of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined
    v = (v as Record<string, unknown>)[p]
  }
  return v
}

function isTrimmable(s: string): boolean {
  const a = s.charCodeAt(0)
  const b = s.charCodeAt(s.length - 1)
  return a <= 32 || b <= 32 || a === 0xa0 || b === 0xa0 || a === 0xfeff || a === 0x2009 || b === 0x2009 || a === 0x202f || b === 0x202f || a === 0x3000 || b === 0x3000
}

function describeJson(v: unknown): string {
  return Array.isArray(v) ? 'a JSON list' : 'a JSON object'
}

function reject(f: CompiledField, code: Rejection['code'], text: string | null, reason: string, position: Position): Rejection {
  const value = text === null ? null : showValue(text, f.sensitive)
  const message = value === null ? `Field ${f.name} ${reason}.` : `Field ${f.name} value ${JSON.stringify(value)} ${reason}.`
  return {code, field: f.name, value, message, position}
}

const TYPE_NAMES: Record<FieldType, string> = {
  string: 'text',
  integer: 'an integer',
  decimal: 'a decimal',
  timestamp: 'a timestamp',
  date: 'a date',
  boolean: 'a boolean',
}

/**
 * Compiles the fields of a spec once; the result normalizes one raw record per call.
 * Throws an Error naming the field when a field spec cannot work (loadSpec reports these
 * as spec errors before anything runs).
 */
export function createNormalizer(fields: Record<string, FieldSpec>, options: NormalizerOptions = {}): Normalizer {
  const keepOriginal = options.original !== false
  const compiled: CompiledField[] = []
  for (const [name, f] of Object.entries(fields)) {
    try {
      compiled.push(compileField(name, f))
    } catch (e) {
      throw new Error(`field ${name}: ${(e as Error).message}`, {cause: e})
    }
  }
  const n = compiled.length
  const anyDecimal = compiled.some((f) => f.exactDecimal !== undefined)

  return (raw: RawRecordOk): NormalizeResult => {
    const input = raw.fields
    const position = raw.position
    const record: Record<string, NormalizedValue> = {}
    const original: Record<string, string> = keepOriginal ? {} : NO_ORIGINAL
    let rejections: Rejection[] | undefined
    // the values the reader wrote as exact decimals (copybook numbers: "1.234" is 1.234, never ambiguous)
    const exact = anyDecimal ? exactDecimalsOf(input) : undefined
    for (let i = 0; i < n; i++) {
      const f = compiled[i]!
      let v = input[f.from]
      if (v === undefined && f.path !== undefined) v = dig(input, f.path)
      let text: string | undefined
      let value: NormalizedValue | Fail
      if (v === undefined || v === null) {
        text = undefined
      } else if (typeof v === 'string') {
        text = v
        if (text.length > 0 && (f.trim || f.type !== 'string') && isTrimmable(text)) text = text.trim()
        if (text.length === 0 && (f.emptyAsNull || f.type !== 'string' || f.defaultValue !== undefined || f.required)) text = undefined
      } else if (typeof v === 'number') {
        text = String(v)
      } else if (typeof v === 'boolean') {
        text = String(v)
      } else if (v instanceof JsonNumberText) {
        text = v.text
      } else {
        ;(rejections ??= []).push(reject(f, 'SCHEMA_VIOLATION', f.sensitive ? '***' : JSON.stringify(v).slice(0, 200), `is ${describeJson(v)}, not ${TYPE_NAMES[f.type]}`, position))
        continue
      }

      if (text === undefined) {
        if (f.defaultValue !== undefined) record[f.name] = f.defaultValue
        else if (f.required) (rejections ??= []).push(reject(f, 'REQUIRED_FIELD_EMPTY', null, v === undefined || v === null ? 'is required but missing' : 'is required but empty', position))
        else record[f.name] = null
        continue
      }
      if (f.pattern !== undefined && !f.pattern.test(text)) {
        ;(rejections ??= []).push(reject(f, 'PATTERN_MISMATCH', text, `does not match the pattern ${f.pattern.source}`, position))
        continue
      }
      if (f.maxLength !== undefined && text.length > f.maxLength && charLength(text) > f.maxLength) {
        ;(rejections ??= []).push(reject(f, 'SCHEMA_VIOLATION', text, `is longer than max_length ${f.maxLength}`, position))
        continue
      }
      if (typeof v === 'number') value = f.fromNumber(v)
      else if (v instanceof JsonNumberText) value = v.number === undefined || f.type === 'string' ? f.fromNumberText(text) : f.fromNumber(v.number)
      else if (typeof v === 'boolean') value = f.fromBoolean ? f.fromBoolean(v) : new Fail('SCHEMA_VIOLATION', `is a JSON boolean, not ${TYPE_NAMES[f.type]}`)
      else if (exact !== undefined && f.exactDecimal !== undefined && typeof v === 'string' && exact.has(f.from)) value = f.exactDecimal(text)
      else value = f.convert(text)
      if (value instanceof Fail) {
        ;(rejections ??= []).push(reject(f, value.code, text, value.reason, position))
        continue
      }
      record[f.name] = value
      if (f.keepOriginal && keepOriginal) original[f.name] = text
    }
    if (rejections !== undefined) return {ok: false, rejections, position}
    return {ok: true, record, original, position}
  }
}
