/**
 * Per-column comparison: how two raw values (text as the readers give it, or null) are made
 * comparable and judged equal.
 *
 *   1. null == "" only with `null_equals_empty` (after trim when trimming);
 *   2. string columns: optional trim, unicode NFC, case folding (typed columns: trim and NFC
 *      only, `lower`/`upper` are ignored there: their values are compared by value);
 *   3. typed columns go through the pipeline's own normalizers (src/normalize): a CSV's
 *      "1 234,56" and a numeric column's "1234.56" are both the decimal 1234.56; timestamps
 *      become UTC instants, dates yyyy-MM-dd; values are never floats (decimals are compared
 *      as BigInt at a fixed scale);
 *   4. tolerances: absolute (`amount=0.01`), relative to the left value (`amount=0.5%`),
 *      timestamp seconds (`event_time=2s`, `event_time=0.000001s`: to the microsecond).
 *
 * Timestamps are compared exactly to the microsecond, PostgreSQL's precision and the
 * normalizer's (src/normalize/timestamp.ts keeps .123456): an instant is ms since 1970 (a
 * double, as Date) plus the microseconds within that millisecond (0-999), never a BigInt or a
 * string per value; a difference is reported in seconds (`0.000001`).
 *
 * Flag syntax (parsed here, errors are UsageError naming the fix):
 *   --tolerance col=0.01 | col=0.5% | col=2s | col=0.000001s (seconds: up to 6 decimals)
 *   --type col=decimal | decimal:, (decimal comma) | integer | timestamp | timestamp:<tz> | date | boolean | string
 *   --normalize col=trim,lower,nfc | *=trim
 *   --null-equals-empty col | *
 */
import {UsageError} from '../errors.js'
import type {FieldSpec, FieldType} from '../config/spec.js'
import {compileField, DateMatcher, isFail, parseBoolean, parseDecimal, parseInteger, type DateKind, type Fail} from '../normalize/index.js'

/** `seconds`: `us` is the tolerance in microseconds (an exact integer: 1.5s is 1500000). */
export type Tolerance = {kind: 'abs'; text: string; scaled: bigint} | {kind: 'rel'; text: string; pct: string} | {kind: 'seconds'; text: string; us: number}

export interface StringNormalization {
  trim: boolean
  nfc: boolean
  fold: 'lower' | 'upper' | undefined
}

export interface ColumnPlan {
  /** name on the left (the name reported) */
  name: string
  /** name on the right (after --map) */
  right: string
  type: FieldType
  tolerance: Tolerance | undefined
  normalize: StringNormalization
  nullEqualsEmpty: boolean
  /** raw text -> comparable canonical text, or a Fail reason (left side) */
  convert: (text: string) => string | {fail: string}
  /** the same for the right side (differs when one side is a database: decimals there use ".") */
  convertRight: (text: string) => string | {fail: string}
  /** the spec's field is `sensitive`: its values are masked in samples (reports, --json, the ledger) */
  sensitive?: boolean
}

/** Decimals without a declared scale are compared at this scale (exact; more non-zero digits are a parse failure). */
export const DEFAULT_DECIMAL_SCALE = 12
const SCALE_FACTOR = 10n ** BigInt(DEFAULT_DECIMAL_SCALE)

/**
 * Timestamps read without a spec field's formats (`--type x=timestamp`, known-difference time
 * rules): ISO and the legacy formats of the design (dd.MM.yyyy HH:mm:ss, MM/dd/yyyy HH:mm,
 * yyyyMMddHHmmss, epoch_ms). No two of them read one text two ways.
 */
export const TIMESTAMP_FORMATS = ['iso', 'dd.MM.yyyy HH:mm:ss', 'MM/dd/yyyy HH:mm', 'yyyy-MM-dd HH:mm:ss.SSS', 'yyyyMMddHHmmss', 'epoch_ms'] as const

/** Dates read without a spec field's formats (`--type x=date`). */
export const DATE_FORMATS = ['iso', 'dd.MM.yyyy', 'yyyyMMdd'] as const

/**
 * A reader of date/timestamp text in a column's declared formats (a spec field's `formats`),
 * with the normalizer's own matcher, so that parity reads a legacy value as the pipeline does;
 * a value in none of their shapes (the streaming side's ISO output, when the spec lists only
 * the legacy formats) is read in `defaults`. A value in a declared shape that is not a date
 * (month 13), or ambiguous, stays a Fail: never read again some other way. Without declared
 * formats, `defaults` only.
 */
export function declaredDateReader(formats: readonly string[] | undefined, defaults: readonly string[], timezone: string): (text: string, kind: DateKind) => string | Fail {
  const fallback = new DateMatcher(defaults, timezone)
  if (formats === undefined || formats.length === 0) return (t, kind) => fallback.parse(t, kind)
  const declared = new DateMatcher(formats, timezone)
  return (t, kind) => {
    const v = declared.parse(t, kind)
    if (!isFail(v) || v.code !== 'UNPARSEABLE_DATE' || declared.formats.some((f) => f.re.test(t))) return v
    return fallback.parse(t, kind)
  }
}

export function parseTolerance(column: string, text: string): Tolerance {
  const t = text.trim()
  const bad = () =>
    new UsageError(`--tolerance ${column}=${text}: not a tolerance`, {hint: 'write col=0.01 (absolute), col=0.5% (relative to the left value) or col=2s (timestamp seconds, to the microsecond: 0.000001s)'})
  if (/^\d+(\.\d+)?s$/.test(t)) return {kind: 'seconds', text: t, us: toleranceMicros(column, text, t.slice(0, -1))}
  if (/^\d+(\.\d+)?%$/.test(t)) return {kind: 'rel', text: t, pct: t.slice(0, -1)}
  if (/^\d+(\.\d+)?$/.test(t)) {
    const d = parseDecimal(t, {scale: DEFAULT_DECIMAL_SCALE, precision: 38, decimalSeparator: '.'})
    if (isFail(d)) throw bad()
    return {kind: 'abs', text: t, scaled: toScaled(d)}
  }
  throw bad()
}

/**
 * Seconds ("2", "0.5", "0.000001") as exact microseconds. Digits beyond the microsecond
 * (PostgreSQL's precision, the normalizer's) are refused unless zeros: rounding 0.0000004s to 0
 * would silently make the column exact. (Before microseconds were compared, a seconds tolerance
 * was rounded to the millisecond: 0.0004s was 0, 0.0015s was 2 ms.)
 */
function toleranceMicros(column: string, text: string, seconds: string): number {
  const dot = seconds.indexOf('.')
  const int = dot < 0 ? seconds : seconds.slice(0, dot)
  const frac = dot < 0 ? '' : seconds.slice(dot + 1)
  if (/[1-9]/.test(frac.slice(6))) {
    throw new UsageError(`--tolerance ${column}=${text}: finer than a microsecond`, {hint: 'timestamps are compared to the microsecond (PostgreSQL\'s precision): write at most 6 decimals, e.g. 0.000001s'})
  }
  const us = Number(int) * 1_000_000 + Number((frac + '000000').slice(0, 6))
  if (!Number.isSafeInteger(us)) throw new UsageError(`--tolerance ${column}=${text}: too large`, {hint: 'write a tolerance under 285 years (9007199254 seconds)'})
  return us
}

/**
 * "1234.560000000000" -> 1234560000000000n at `scale` fractional digits (DEFAULT_DECIMAL_SCALE
 * unless given). Callers give a scale of at least the text's fractional digits (fracDigits):
 * digits beyond it would be cut off.
 */
export function toScaled(canonical: string, scale: number = DEFAULT_DECIMAL_SCALE): bigint {
  const neg = canonical.startsWith('-')
  const s = neg ? canonical.slice(1) : canonical
  const dot = s.indexOf('.')
  const int = dot < 0 ? s : s.slice(0, dot)
  let frac = dot < 0 ? '' : s.slice(dot + 1)
  frac = (frac + '0'.repeat(scale)).slice(0, scale)
  const v = BigInt(int + frac)
  return neg ? -v : v
}

/** 1234560000000000n at `scale` (default DEFAULT_DECIMAL_SCALE) -> "1234.56" (trailing zeros dropped) */
export function fromScaled(v: bigint, scale: number = DEFAULT_DECIMAL_SCALE): string {
  const neg = v < 0n
  const s = (neg ? -v : v).toString().padStart(scale + 1, '0')
  const int = s.slice(0, s.length - scale)
  const frac = s.slice(s.length - scale).replace(/0+$/, '')
  return (neg ? '-' : '') + int + (frac ? '.' + frac : '')
}

/** Fractional digits of a canonical decimal ("12.3400" -> 4, "12" -> 0). */
export function fracDigits(canonical: string): number {
  const dot = canonical.indexOf('.')
  return dot < 0 ? 0 : canonical.length - dot - 1
}

/**
 * A decimal text read exactly, as a canonical decimal: at DEFAULT_DECIMAL_SCALE digits, or, when
 * it has more (a numeric computed by a division: 1/3 is 0.33333333333333333333 in PostgreSQL), at
 * as many as it has (trailing zeros beyond DEFAULT_DECIMAL_SCALE dropped). Never rounded: reading
 * such a value at the fixed scale failed, and the value was then compared as text, so that
 * 0.33333333333333333333 against 0.3333333333334 within a tolerance was a mismatch in merge and
 * bisect while the push-down (numeric in PostgreSQL) matched it.
 */
export function decimalAtOwnScale(text: string, options: {decimalSeparator?: '.' | ','} = {}): string | Fail {
  const base = {scale: DEFAULT_DECIMAL_SCALE, precision: 38, ...(options.decimalSeparator ? {decimalSeparator: options.decimalSeparator} : {})}
  const v = parseDecimal(text, base)
  // a value has no more fractional digits than characters
  if (!isFail(v) || text.length <= DEFAULT_DECIMAL_SCALE) return v
  const scale = text.length
  // the same limit of integer digits (38 - DEFAULT_DECIMAL_SCALE) at the larger scale
  const w = parseDecimal(text, {...base, scale, precision: scale + base.precision - DEFAULT_DECIMAL_SCALE})
  if (isFail(w)) return v // the reason of the reading at the usual scale
  let end = w.length
  const min = w.indexOf('.') + 1 + DEFAULT_DECIMAL_SCALE
  while (end > min && w.charCodeAt(end - 1) === 48) end--
  return w.slice(0, end)
}

export function parseNormalization(text: string): StringNormalization {
  const n: StringNormalization = {trim: false, nfc: false, fold: undefined}
  for (const part of text.split(',').map((p) => p.trim().toLowerCase())) {
    if (part === 'trim') n.trim = true
    else if (part === 'nfc') n.nfc = true
    else if (part === 'lower' || part === 'case' || part === 'ci') n.fold = 'lower'
    else if (part === 'upper') n.fold = 'upper'
    else if (part !== '') throw new UsageError(`--normalize: unknown normalization "${part}"`, {hint: 'use trim, nfc, lower (case-insensitive) or upper, comma-separated: --normalize name=trim,lower,nfc'})
  }
  return n
}

export interface ColumnTypeSpec {
  type: FieldType
  decimalSeparator?: '.' | ','
  /** the right side's separator when it differs (`decimal:,/.`) */
  rightDecimalSeparator?: '.' | ','
  timezone?: string
  formats?: string[]
}

export function parseTypeSpec(column: string, text: string): ColumnTypeSpec {
  const [name, arg] = [text.split(':')[0]!.trim(), text.includes(':') ? text.slice(text.indexOf(':') + 1).trim() : undefined]
  switch (name) {
    case 'string':
    case 'integer':
    case 'date':
    case 'boolean':
      return {type: name}
    case 'decimal': {
      // decimal, decimal:, (both sides), decimal:,/. (left "," and right ".")
      const seps = arg === undefined ? [] : arg.split('/')
      if (seps.length > 2 || seps.some((x) => x !== ',' && x !== '.')) {
        throw new UsageError(`--type ${column}=${text}: the decimal separator must be "," or "."`, {hint: 'write decimal, decimal:, (both sides) or decimal:,/. (left, right)'})
      }
      const [l, r] = seps as ('.' | ',')[]
      return {type: 'decimal', ...(l ? {decimalSeparator: l} : {}), ...(r ?? l ? {rightDecimalSeparator: (r ?? l)!} : {})}
    }
    case 'timestamp':
      return arg ? {type: 'timestamp', timezone: arg} : {type: 'timestamp'}
    default:
      throw new UsageError(`--type ${column}=${text}: unknown type "${name}"`, {hint: 'use string, decimal, decimal:, (decimal comma), integer, timestamp, timestamp:Europe/Moscow, date or boolean'})
  }
}

function failOf(v: unknown): {fail: string} {
  return {fail: (v as {reason: string}).reason}
}

/** The converter of a column: from the pipeline spec's field when given, else from the declared type. */
export function columnConverter(type: ColumnTypeSpec, field: FieldSpec | undefined, name: string): (text: string) => string | {fail: string} {
  if (field !== undefined && field.type !== 'string') {
    const compiled = compileField(name, {...field, required: false, default: undefined, pattern: undefined, max_length: undefined})
    if (field.type === 'decimal') {
      // compare at the common scale so that a side with fewer digits still converts
      const opts = field.decimal_separator ? {decimalSeparator: field.decimal_separator} : {}
      return (t) => {
        const v = decimalAtOwnScale(t, opts)
        return isFail(v) ? failOf(v) : v
      }
    }
    if (field.type === 'timestamp' || field.type === 'date') {
      // the field's formats, as the pipeline reads the legacy value; the other side's text in
      // none of their shapes (the stream's ISO, a pg: timestamptz) in the default formats: a spec
      // listing only "dd.MM.yyyy HH:mm:ss" made every row a mismatch against the stream's table
      const kind = field.type
      const read = declaredDateReader(field.formats, kind === 'date' ? DATE_FORMATS : TIMESTAMP_FORMATS, field.timezone ?? 'UTC')
      return (t) => {
        const v = read(t.trim(), kind)
        return isFail(v) ? failOf(v) : v
      }
    }
    return (t) => {
      const v = compiled.convert(t)
      return isFail(v) ? failOf(v) : String(v)
    }
  }
  switch (type.type) {
    case 'string':
      return (t) => t
    case 'decimal': {
      const opts = type.decimalSeparator ? {decimalSeparator: type.decimalSeparator} : {}
      return (t) => {
        const v = decimalAtOwnScale(t, opts)
        return isFail(v) ? failOf(v) : v
      }
    }
    case 'integer':
      return (t) => {
        const v = parseInteger(t)
        return isFail(v) ? failOf(v) : v
      }
    case 'boolean':
      return (t) => {
        const v = parseBoolean(t)
        return isFail(v) ? failOf(v) : String(v)
      }
    case 'timestamp':
    case 'date': {
      const kind = type.type
      const m = new DateMatcher(type.formats ?? (kind === 'date' ? DATE_FORMATS : TIMESTAMP_FORMATS), type.timezone ?? 'UTC')
      return (t) => {
        const v = m.parse(t.trim(), kind)
        return isFail(v) ? failOf(v) : v
      }
    }
  }
}

/** Whether a column's values are numbers (a numeric difference can be computed). */
export function isNumericType(t: FieldType): boolean {
  return t === 'decimal' || t === 'integer'
}

export interface ValueComparison {
  equal: boolean
  /** |l - r| as a decimal string (numbers), seconds (timestamps); undefined otherwise */
  absDiff?: string
  /** scaled |l - r| for numbers, microseconds for timestamps: to find the max */
  absDiffRank?: bigint
  /** the scale of absDiffRank when it is not DEFAULT_DECIMAL_SCALE (a number with more fractional digits) */
  absDiffScale?: number
}

/** Shared answers for the common cases: no object per compared value. */
const EQUAL: ValueComparison = Object.freeze({equal: true})
const DIFFERENT: ValueComparison = Object.freeze({equal: false})
const same = (b: boolean): ValueComparison => (b ? EQUAL : DIFFERENT)

function prepareString(v: string, n: StringNormalization): string {
  let s = v
  if (n.trim) s = s.trim()
  if (n.nfc) s = s.normalize('NFC')
  if (n.fold === 'lower') s = s.toLowerCase()
  else if (n.fold === 'upper') s = s.toUpperCase()
  return s
}

/**
 * Compares two raw values of one column. Unparseable values on either side are compared as
 * text (after string normalization): equal only when identical (notANumber tells a
 * decimal/integer column's apart).
 */
export function compareValues(col: ColumnPlan, left: string | null, right: string | null): ValueComparison {
  let l = left
  let r = right
  if (l !== null) l = prepareString(l, col.normalize)
  if (r !== null) r = prepareString(r, col.normalize)
  if (col.nullEqualsEmpty) {
    if (l !== null && l.trim() === '') l = null
    if (r !== null && r.trim() === '') r = null
  }
  if (l === null || r === null) return same(l === r)
  if (l === r && col.tolerance === undefined) return EQUAL
  if (col.type === 'string') return same(l === r)
  if (col.type !== 'decimal' && col.type !== 'integer' && col.type !== 'timestamp' && col.type !== 'date' && l === r) return EQUAL
  if (col.type === 'timestamp') {
    // fast path: both values ISO-8601 with an explicit offset (what databases print); the
    // instant does not depend on the zone or the format list then
    if (isoScan(l, 0, l.length)) {
      const a = scanInstant()
      const au = sus
      if (isoScan(r, 0, r.length)) return timestampComparison(col, a, au, scanInstant(), sus)
    }
  }
  // empty text of a typed column is null for the normalizers
  const lc = l.trim() === '' ? null : col.convert(l)
  const rc = r.trim() === '' ? null : col.convertRight(r)
  if (lc === null || rc === null) return same(lc === rc)
  if (typeof lc !== 'string' || typeof rc !== 'string') return same(l === r)
  if (isNumericType(col.type)) {
    // exact at the common scale of the two values (at least DEFAULT_DECIMAL_SCALE)
    const scale = col.type === 'integer' ? DEFAULT_DECIMAL_SCALE : Math.max(DEFAULT_DECIMAL_SCALE, fracDigits(lc), fracDigits(rc))
    const a = col.type === 'integer' ? BigInt(lc) * SCALE_FACTOR : toScaled(lc, scale)
    const b = col.type === 'integer' ? BigInt(rc) * SCALE_FACTOR : toScaled(rc, scale)
    const d = a > b ? a - b : b - a
    if (d === 0n) return EQUAL
    let equal = false
    const t = col.tolerance
    if (t?.kind === 'abs') equal = d <= t.scaled * 10n ** BigInt(scale - DEFAULT_DECIMAL_SCALE)
    else if (t?.kind === 'rel') {
      // d <= pct/100 * |a|, exactly: d * 100 * 10^k <= pct*10^k * |a|
      const [ip, fp = ''] = t.pct.split('.')
      const pctScaled = BigInt(ip! + fp)
      const k = 10n ** BigInt(fp.length)
      equal = d * 100n * k <= pctScaled * (a < 0n ? -a : a)
    }
    return equal ? EQUAL : {equal, absDiff: fromScaled(d, scale), absDiffRank: d, ...(scale !== DEFAULT_DECIMAL_SCALE ? {absDiffScale: scale} : {})}
  }
  if (col.type === 'timestamp') return timestampComparison(col, Date.parse(lc), canonicalMicros(lc), Date.parse(rc), canonicalMicros(rc))
  return same(lc === rc)
}

/** A decimal/integer column's value that is not a number of its type, on one side or both (notANumber). */
export interface NotANumber {
  side: 'left' | 'right' | 'both'
  /** why, in words: the normalizer's reason per side (never the value, which a sensitive column's sample masks) */
  reason: string
}

/**
 * Of two values of a decimal/integer column that compareValues found different: the side(s)
 * whose value is not a number of the column's type (`12,5O`, `n/a`), which were compared as
 * text; undefined when both are numbers (or null, or blank). Read as compareValues reads them
 * (string normalization, then the column's converters); for a mismatch's sample, off the
 * per-value path.
 */
export function notANumber(col: ColumnPlan, left: string | null, right: string | null): NotANumber | undefined {
  if (!isNumericType(col.type) || left === null || right === null) return undefined
  const l = prepareString(left, col.normalize)
  const r = prepareString(right, col.normalize)
  // blank is null for the normalizers (and with null_equals_empty)
  if (l === r || l.trim() === '' || r.trim() === '') return undefined
  const lc = col.convert(l)
  const rc = col.convertRight(r)
  const sides = [...(typeof lc === 'string' ? [] : [`left value ${lc.fail}`]), ...(typeof rc === 'string' ? [] : [`right value ${rc.fail}`])]
  if (sides.length === 0) return undefined
  return {side: sides.length === 2 ? 'both' : typeof lc === 'string' ? 'right' : 'left', reason: `not read as ${col.type}, compared as text: ${sides.join('; ')}`}
}

/**
 * The microseconds within the millisecond of a normalizer's timestamp (isoOf: "...ss.SSSZ", or
 * "...ss.SSSSSSZ" when it has microseconds); Date.parse reads the ms of both.
 */
export function canonicalMicros(iso: string): number {
  return iso.length === 27 ? digits(iso, 23, 3) : 0
}

/** Largest |ms difference| whose microseconds are an exact double (2^53 µs, about 285 years). */
const SAFE_MS_DIFF = Math.floor(Number.MAX_SAFE_INTEGER / 1000) - 1

/**
 * Two instants, each ms since 1970 plus the microseconds within that ms (0-999), compared
 * exactly; the difference is reported in seconds ("0.000001", "2.001") and ranked in µs.
 */
function timestampComparison(col: ColumnPlan, a: number, au: number, b: number, bu: number): ValueComparison {
  const dms = a - b
  if (dms === 0 && au === bu) return EQUAL
  const t = col.tolerance
  if (Math.abs(dms) <= SAFE_MS_DIFF) {
    const d = Math.abs(dms * 1000 + (au - bu))
    if (t?.kind === 'seconds' && d <= t.us) return EQUAL
    const rank = BigInt(d)
    return {equal: false, absDiff: fromScaled(rank * US_TO_SCALED), absDiffRank: rank}
  }
  // centuries apart: the difference exact as a BigInt
  let rank = BigInt(dms) * 1000n + BigInt(au - bu)
  if (rank < 0n) rank = -rank
  if (t?.kind === 'seconds' && rank <= BigInt(t.us)) return EQUAL
  return {equal: false, absDiff: fromScaled(rank * US_TO_SCALED), absDiffRank: rank}
}

const US_TO_SCALED = 10n ** BigInt(DEFAULT_DECIMAL_SCALE - 6)

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

function digits(t: string, at: number, n: number): number {
  let v = 0
  for (let i = at; i < at + n; i++) {
    const c = t.charCodeAt(i) - 48
    if (c < 0 || c > 9) return -1
    v = v * 10 + c
  }
  return v
}

/**
 * ms since epoch of "2026-11-20T06:15:00Z", "2026-11-20 06:15:00.5+03", "...+03:00", "...+0300";
 * undefined for anything else (no offset, another format, an impossible date, non-zero digits
 * beyond the microsecond, which the normalizer rounds to it), which then takes the normalizer's path. The microseconds within that
 * ms (.123456: 456) are not in the number: compareValues and equalInPlace read them from the
 * same scan (a double of µs since 1970 is not exact for every year). Read by character codes:
 * no regex, no allocation.
 */
export function isoInstant(t: string): number | undefined {
  return isoInstantAt(t, 0, t.length)
}

// The fields of the last isoScan (module scratch: no object per value).
let sy = 0
let smo = 0
let sd = 0
let sh = 0
let smi = 0
let ss = 0
let sms = 0
/** microseconds within the millisecond, 0-999 */
let sus = 0
/** offset east of UTC, minutes */
let soff = 0

/** Reads text[start, end) as isoInstant does into the scratch fields; false where isoInstant is undefined. */
function isoScan(t: string, b: number, end: number): boolean {
  const n = end - b
  if (n < 20 || t.charCodeAt(b + 4) !== 45 || t.charCodeAt(b + 7) !== 45 || t.charCodeAt(b + 13) !== 58 || t.charCodeAt(b + 16) !== 58) return false
  const sep = t.charCodeAt(b + 10)
  if (sep !== 84 && sep !== 32) return false
  const y = digits(t, b, 4)
  const mo = digits(t, b + 5, 2)
  const d = digits(t, b + 8, 2)
  const h = digits(t, b + 11, 2)
  const mi = digits(t, b + 14, 2)
  const sec = digits(t, b + 17, 2)
  // years 0-99: Date.UTC would read them as 1900-1999; the full reading (DateMatcher) handles them
  if (y < 100 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59) return false
  const leap = mo === 2 && y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)
  if (d > DAYS[mo - 1]! + (leap ? 1 : 0)) return false
  let p = b + 19
  let ms = 0
  let us = 0
  if (t.charCodeAt(p) === 46) {
    p++
    const fs = p
    while (p < end && t.charCodeAt(p) >= 48 && t.charCodeAt(p) <= 57) p++
    const len = p - fs
    if (len === 0 || len > 9) return false
    ms = digits(t, fs, Math.min(3, len)) * (len === 1 ? 100 : len === 2 ? 10 : 1)
    if (len > 3) {
      us = digits(t, fs + 3, Math.min(3, len - 3)) * (len === 4 ? 100 : len === 5 ? 10 : 1)
      // beyond the microsecond: zeros only here; other digits take the normalizer's path, which rounds them as PostgreSQL does
      for (let i = fs + 6; i < p; i++) if (t.charCodeAt(i) !== 48) return false
    }
  }
  if (p >= end) return false
  const o = t.charCodeAt(p)
  let off = 0
  if (o === 90) {
    if (p + 1 !== end) return false // Z
  } else {
    if (o !== 43 && o !== 45) return false
    const rest = end - p - 1
    let oh: number
    let om = 0
    if (rest === 2) oh = digits(t, p + 1, 2)
    else if (rest === 4) {
      oh = digits(t, p + 1, 2)
      om = digits(t, p + 3, 2)
    } else if (rest === 5 && t.charCodeAt(p + 3) === 58) {
      oh = digits(t, p + 1, 2)
      om = digits(t, p + 4, 2)
    } else return false
    // +03:99 is no offset; beyond ±18:00 the normalizer refuses it (out of range), so it is not an instant here either
    if (oh < 0 || om < 0 || om > 59 || oh > 18 || (oh === 18 && om > 0)) return false
    off = o === 45 ? -(oh * 60 + om) : oh * 60 + om
  }
  sy = y
  smo = mo
  sd = d
  sh = h
  smi = mi
  ss = sec
  sms = ms
  sus = us
  soff = off
  return true
}

/** ms since epoch of the last isoScan. */
function scanInstant(): number {
  return Date.UTC(sy, smo - 1, sd, sh, smi, ss, sms) - soff * 60_000
}

/** isoInstant of `text.slice(start, end)`, without the slice (the merge reads values in place). */
export function isoInstantAt(text: string, start: number, end: number): number | undefined {
  if (!isoScan(text, start, end)) return undefined
  return scanInstant()
}

/**
 * The merge's in-place shortcut for a column whose raw texts differ: true when
 * compareValues(col, l, r) is certainly {equal: true} for the two non-null values
 * text[ls, le) and text2[rs, re) read without slicing them: a timestamp column with no string
 * normalization and no null-equals-empty whose values are both ISO-8601 with an offset
 * (compareValues' own fast path) and the same instant (within the tolerance). false means
 * "not known here": call compareValues.
 */
export function equalInPlace(col: ColumnPlan, text: string, ls: number, le: number, text2: string, rs: number, re: number): boolean {
  if (col.type !== 'timestamp' || col.nullEqualsEmpty) return false
  const n = col.normalize
  if (n.trim || n.nfc || n.fold !== undefined) return false
  if (!isoScan(text, ls, le)) return false
  const y = sy
  const mo = smo
  const d = sd
  const h = sh
  const mi = smi
  const sec = ss
  const ms = sms
  const us = sus
  const off = soff
  if (!isoScan(text2, rs, re)) return false
  // the same fields at the same offset are the same instant (equal whatever the tolerance)
  if (off === soff && y === sy && mo === smo && d === sd && h === sh && mi === smi && sec === ss && ms === sms && us === sus) return true
  const a = Date.UTC(y, mo - 1, d, h, mi, sec, ms) - off * 60_000
  return timestampComparison(col, a, us, scanInstant(), sus).equal
}
