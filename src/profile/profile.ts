/**
 * `cutover profile`: what is really in a legacy source, column by column, before anyone
 * writes a spec. For each column: the inferred type, which date formats match and whether
 * the column is ambiguous (01/02 read as 1 February or 2 January, with no value to settle
 * it), null and empty rates, distinct values, duplicate keys, and a suggested `fields`
 * section to paste into a spec.
 *
 * It uses the normalizer's own parsers (parseDecimal, parseInteger, parseBoolean,
 * DateMatcher), so what profile says parses is what `normalize` and `stream run` accept.
 *
 * Memory is bounded. Each column keeps its distinct values in memory up to a cap: 200,000, or
 * less when the table is wide (2,000,000 values shared by all columns). Past the cap, a column
 * that looks like a key (text or integer, almost every value distinct) is spilled to a temp file
 * and sorted at the end, so its distinct count and duplicate keys stay exact however long the
 * source; any other column keeps a HyperLogLog estimate (`distinct_estimate`, about 0.8% error)
 * and reports `distinct` as the lower bound it had reached (`distinct_capped: true`).
 *
 * Counts are exact (`null_count`, `empty_count`, `non_fitting`); the rates beside them are
 * rounded to 4 decimals but never to 0 or 1 when the count says otherwise (one NULL in three
 * million rows is not a null rate of 0).
 */
import {createHmac, randomBytes} from 'node:crypto'
import {IANAZone} from 'luxon'
import {stringify} from 'yaml'
import {DEFAULT_MAX_RECORD_BYTES, QUOTE_NOT_CLOSED, readCsv} from '../../legacy-adapters/csv.js'
import {openSource, parseSourceUri, type ReaderContext} from '../../legacy-adapters/index.js'
import {pgSourceDataError} from '../../legacy-adapters/pg.js'
import {recordBatches} from '../../legacy-adapters/source.js'
import {isCutoverError, UsageError} from '../errors.js'
import {type DateFormatMatch, DateMatcher, isFail, JsonNumberText, maskValue, parseBoolean, parseDecimal, parseInteger} from '../normalize/index.js'
import {HyperLogLog} from './hll.js'
import {type KeySpill, KeySpills, type SpillCount} from './key-spill.js'

/** Candidate formats tried on every text column (the spec's vocabulary). */
export const CANDIDATE_DATE_FORMATS = [
  'iso',
  'yyyy-MM-dd HH:mm:ss',
  'yyyy-MM-dd',
  'dd.MM.yyyy HH:mm:ss',
  'dd.MM.yyyy HH:mm',
  'dd.MM.yyyy',
  'dd/MM/yyyy HH:mm:ss',
  'dd/MM/yyyy HH:mm',
  'dd/MM/yyyy',
  'MM/dd/yyyy HH:mm:ss',
  'MM/dd/yyyy HH:mm',
  'MM/dd/yyyy',
  'yyyyMMddHHmmss',
  'yyyyMMdd',
  'epoch_ms',
  'epoch_s',
] as const

export type InferredType = 'string' | 'integer' | 'decimal' | 'timestamp' | 'date' | 'boolean' | 'empty'

export interface ColumnProfile {
  name: string
  inferred_type: InferredType
  /** share of non-empty values that fit the inferred type (the rest are the dirt); below 1 whenever non_fitting > 0 */
  fit_rate: number
  /** non-empty values that do not fit the inferred type (exact) */
  non_fitting: number
  non_fitting_examples: string[]
  count: number
  /** values that are NULL or absent (exact) */
  null_count: number
  null_rate: number
  /** values that are empty or blank text (exact) */
  empty_count: number
  empty_rate: number
  /** exact distinct non-empty values; the lower bound reached when distinct_capped */
  distinct: number
  distinct_capped: boolean
  /** when distinct_capped: a HyperLogLog estimate of the distinct values (about 0.8% error) */
  distinct_estimate?: number
  min_length: number
  max_length: number
  /** decimal: most fractional digits seen */
  scale?: number
  /** decimal: most integer digits seen (leading zeros not counted); a spec's `precision` must hold these plus `scale` */
  integer_digits?: number
  /**
   * The smallest and largest value: integer and decimal columns as exact decimal text (never a
   * float: 12345678901234.56 stays that), date columns as yyyy-MM-dd, timestamp columns as the
   * UTC instant (ISO-8601) read in --timezone. A card number is masked; a column of them has none.
   */
  min?: string
  max?: string
  decimal_comma?: boolean
  /**
   * decimal: the separator the column's values settle ("91,8" and "0,250" can only have a decimal
   * comma) when others read either way ("92,345": 92.345 or 92345, which normalize refuses unless
   * the field's decimal_separator says): suggested as the field's `decimal_separator`
   */
  decimal_separator?: '.' | ','
  /** date formats matching at least one value, with how many values each matches */
  date_formats?: {format: string; matches: number}[]
  /** values that read as two different instants under two matching formats */
  ambiguous_values?: number
  /** true when two formats disagree on some values and no value settles which is meant */
  ambiguous?: boolean
  ambiguity_note?: string
  /** for key-like columns (almost all values distinct): repeated values */
  duplicate_keys?: {count: number; examples: string[]}
  /** non-empty values that are card numbers, when they are most of them: `sensitive: true` is suggested */
  card_numbers?: number
  examples: string[]
  has_surrounding_spaces: boolean
}

export interface ProfileResult {
  source: string
  rows: number
  errors: {code: string; count: number; examples: string[]}[]
  /**
   * What to know before reading the columns: a source without records, records that could not be
   * read (the columns then describe only the others), and the likely fix (a missing encoding=)
   */
  notes: string[]
  columns: ColumnProfile[]
  /** a `fields:` section to paste into a pipeline spec; empty when no record could be read */
  suggested_fields: string
}

export interface ProfileOptions {
  uri: string
  ctx?: ReaderContext
  limit?: number
  /** distinct values kept in memory per column (default 200,000) */
  distinctCap?: number
  /** distinct values kept in memory by all columns together (default 2,000,000) */
  distinctBudget?: number
  timezone?: string
  /** after each batch read; `phase` names the work after reading (sorting a key column) */
  onProgress?: (rows: number, phase?: string) => void
  /** temp folder for key columns spilled to disk (default: the OS temp folder) */
  tmpDir?: string
  /** values per sorted run when a spilled key column is sorted (tests) */
  sortRunRows?: number
}

const SEPARATORS = [',', '.'] as const
const DATE_LIKE = /^[\d\s.:/T+\-Z,]+$/
/** Decimals are read with the spec's largest scale, and up to 38 integer digits (numeric(38) and more is still seen, and counted). */
const MAX_SCALE = 30
const READ_PRECISION = MAX_SCALE + 38
/** A spec's decimal precision: its default, and its largest (config/spec.ts). */
const SPEC_PRECISION = 18
const SPEC_MAX_PRECISION = 38
const MAX_EXAMPLES = 5
export const DEFAULT_DISTINCT_CAP = 200_000
export const DEFAULT_DISTINCT_BUDGET = 2_000_000
/** A wide table still keeps at least this many distinct values per column (unless distinctCap is lower). */
const MIN_DISTINCT_CAP = 1_000

/** The decimals of a column read with a given decimal separator (ColumnStats.hinted). */
class HintedDecimals {
  count = 0
  scale = 0
  intDigits = 0
  comma = 0
  min: string | undefined
  max: string | undefined
  /** values refused with this separator too */
  misfits: string[] = []
}

class ColumnStats {
  count = 0
  nulls = 0
  empties = 0
  minLength = Infinity
  maxLength = 0
  surroundingSpaces = false
  distinct = new Map<string, number>()
  distinctCapped = false
  /** distinct values held when the cap was reached (the map is then emptied) */
  distinctAtCap = 0
  /** past the cap, a key-like column: every value goes to disk, counted exactly at the end */
  spill: KeySpill | undefined
  spilled: SpillCount | undefined
  /** past the cap, any other column: an estimate */
  hll: HyperLogLog | undefined
  /** some value has a leading zero ("007"): an identifier, not an integer */
  leadingZeros = false
  /** values of digits alone (no sign, no separator): with more than 18 of them, an account or contract number */
  digitsOnly = 0
  nonEmpty = 0
  integer = 0
  decimal = 0
  decimalComma = 0
  scale = 0
  intDigits = 0
  /** smallest and largest decimal, canonical at MAX_SCALE (comparable exactly by compareCanonical) */
  numMin: string | undefined
  numMax: string | undefined
  /** values read with a decimal comma / a decimal point (or grouped by the other one): they settle the separator */
  settles = {',': 0, '.': 0}
  /** values parseDecimal refuses as ambiguous ("1,234"), read with each decimal separator given */
  hinted = {',': new HintedDecimals(), '.': new HintedDecimals()}
  /** the decimal separator folded in by foldSeparator */
  separator: '.' | ',' | undefined
  /** per date format: the earliest and latest value it reads */
  dateRange = new Map<string, {min: DateFormatMatch; max: DateFormatMatch}>()
  boolean = 0
  dateFits = 0
  dateOnlyFits = 0
  ambiguousValues = 0
  formatMatches = new Map<string, number>()
  /** for each pair of formats "a|b": values on which they disagree */
  disagree = new Map<string, number>()
  /** for each such pair: the first value on which they disagree */
  disagreeExample = new Map<string, string>()
  /**
   * per format: values it reads that its day/month twin (dd/MM/yyyy and MM/dd/yyyy) does not, and
   * the first of them: when both twins have such values the column holds dates in both orders
   */
  twinOnly = new Map<string, {count: number; example: string}>()
  examples: string[] = []
  misfits: {integer: string[]; decimal: string[]; boolean: string[]; date: string[]} = {integer: [], decimal: [], boolean: [], date: []}
  /** non-empty values that are card numbers (cardLike) */
  cards = 0

  constructor(readonly name: string) {}
}

/**
 * Whether a value is a payment card number: 13 to 19 digits (spaces and dashes between them
 * allowed) that pass the Luhn check. profile runs before anyone wrote a spec, so nothing says
 * which columns are sensitive: such values are masked in every example it prints, and a column
 * of them is suggested as `sensitive: true`.
 */
export function cardLike(v: string): boolean {
  if (v.length < 13 || v.length > 23) return false
  const digits = v.replace(/[ -]/g, '')
  if (!/^\d{13,19}$/.test(digits)) return false
  let sum = 0
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48
    if (i % 2 === 1) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
  }
  return sum % 10 === 0
}

/** An example as profile prints it: a card number masked (maskValue: its first and last four digits). */
const shownExample = (v: string): string => (cardLike(v) ? maskValue(v) : v)

/**
 * A value as a spilled key column writes it to disk: a card number never goes there in clear,
 * but as "\0" + its HMAC-SHA-256 under a key drawn for this run (kept in memory only, so the
 * file cannot be matched against candidate card numbers) + "\0" + its masked form. Equal cards
 * stay equal; the example shown is the masked form.
 */
const spillKeyOf = (secret: Buffer) => (v: string, card: boolean): string => (card ? `\0${createHmac('sha256', secret).update(v).digest('base64')}\0${maskValue(v)}` : v)
const shownSpilled = (k: string): string => (k.charCodeAt(0) === 0 ? k.slice(k.lastIndexOf('\0') + 1) : shownExample(k))

/** A reader's message with the card numbers in it masked (a rejected line may be quoted). */
const maskCardsIn = (text: string): string => text.replace(/\d(?:[ -]?\d){12,18}/g, (m) => (cardLike(m) ? maskValue(m) : m))

function pushExample(list: string[], v: string): void {
  if (list.length < MAX_EXAMPLES && !list.includes(v)) list.push(v)
}

const trimNumber = (s: string) => s.replace(/^-/, '').replace(/^0+(?=\d)/, '').replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '')

/**
 * The scale as written ("1,50" is 2, "12.00" is 2, "1 234" is 0): the digits after the last
 * "." or "," when the normalizer read that character as the decimal separator, i.e. when the
 * value equals the digits with the point put there.
 */
function writtenScale(text: string, canonical: string): number {
  const m = /[.,](\d+)\)?-?\s*$/.exec(text)
  if (!m) return 0
  const digits = text.replace(/\D/g, '')
  const n = m[1]!.length
  const pointed = digits.slice(0, digits.length - n) + '.' + digits.slice(digits.length - n)
  return trimNumber(pointed.startsWith('.') ? '0' + pointed : pointed) === trimNumber(canonical) ? n : 0
}

/** Integer digits of a canonical decimal ("-0.50" has none, "120.00" three). */
function integerDigits(canonical: string): number {
  const start = canonical.charCodeAt(0) === 45 ? 1 : 0
  const dot = canonical.indexOf('.')
  const n = (dot === -1 ? canonical.length : dot) - start
  return n === 1 && canonical.charCodeAt(start) === 48 ? 0 : n
}

/** Compares two canonical decimals of the same scale exactly (sign, then integer digits, then text). */
export function compareCanonical(a: string, b: string): number {
  const na = a.charCodeAt(0) === 45
  const nb = b.charCodeAt(0) === 45
  if (na !== nb) return na ? -1 : 1
  const ia = a.indexOf('.') === -1 ? a.length : a.indexOf('.')
  const ib = b.indexOf('.') === -1 ? b.length : b.indexOf('.')
  const mag = ia !== ib ? ia - ib : a < b ? -1 : a > b ? 1 : 0
  return na ? -mag : mag
}

/** A canonical decimal cut to `scale` fractional digits (only zeros are cut: `scale` is the most written). */
function atScale(canonical: string, scale: number): string {
  const dot = canonical.indexOf('.')
  if (dot === -1) return canonical
  return scale === 0 ? canonical.slice(0, dot) : canonical.slice(0, dot + 1 + scale)
}

/**
 * Whether a value read with `format` has a time of day: a format with hour, minute or second
 * tokens, an epoch, or `iso` when the value goes on past its date (2026-11-20T09:15). A column
 * whose values never have one is suggested as `date`: as a `timestamp` its midnight would be
 * read in the zone and a business date east of UTC would move back a day.
 */
function carriesTime(format: string, value: string): boolean {
  if (format === 'iso') return value.length > 'yyyy-MM-dd'.length
  return format.startsWith('epoch') || /[HhmsS]/.test(format.replace(/'[^']*'/g, ''))
}

export async function profileSource(options: ProfileOptions): Promise<ProfileResult> {
  const cap = options.distinctCap ?? DEFAULT_DISTINCT_CAP
  const budget = options.distinctBudget ?? DEFAULT_DISTINCT_BUDGET
  if (options.limit !== undefined && (!Number.isInteger(options.limit) || options.limit < 1)) {
    throw new UsageError(`--limit ${options.limit}: expected a whole number of records, 1 or more`, {hint: 'leave --limit out to read the whole source'})
  }
  const timezone = options.timezone ?? 'UTC'
  if (!IANAZone.isValidZone(timezone)) {
    throw new UsageError(`--timezone ${timezone}: not a time zone`, {hint: 'give an IANA zone name such as Europe/Moscow, America/New_York or UTC'})
  }
  const matcher = new DateMatcher(CANDIDATE_DATE_FORMATS, timezone)
  const columns = new Map<string, ColumnStats>()
  const errors = new Map<string, {count: number; examples: string[]}>()
  let rows = 0
  const spills = new KeySpills(options.tmpDir)
  const spillKey = spillKeyOf(randomBytes(32))
  const capFor = () => Math.min(cap, Math.max(MIN_DISTINCT_CAP, Math.floor(budget / Math.max(columns.size, 1))))

  /** The cap is reached: spill a key-like column to disk, estimate any other; free the map. */
  const capColumn = (col: ColumnStats) => {
    col.distinctCapped = true
    col.distinctAtCap = col.distinct.size
    const {type} = inferType(col)
    if ((type === 'string' || type === 'integer') && keyLike(col.name, col.distinct.size, col.nonEmpty)) {
      col.spill = spills.open()
      for (const [v, n] of col.distinct) col.spill.add(spillKey(v, cardLike(v)), n)
    } else {
      col.hll = new HyperLogLog()
      for (const v of col.distinct.keys()) col.hll.add(v)
    }
    col.distinct = new Map()
  }

  const observe = (col: ColumnStats, raw: unknown) => {
    col.count++
    if (raw === undefined || raw === null) {
      col.nulls++
      return
    }
    // a JSON number of 16+ digits (normalize/json.ts) is its text, as any other number
    const v = typeof raw === 'string' ? raw : raw instanceof JsonNumberText ? raw.text : typeof raw === 'object' ? JSON.stringify(raw) : String(raw)
    const t = v.trim()
    if (t.length !== v.length) col.surroundingSpaces = true
    if (t.length === 0) {
      col.empties++
      return
    }
    col.nonEmpty++
    col.minLength = Math.min(col.minLength, t.length)
    col.maxLength = Math.max(col.maxLength, t.length)
    pushExample(col.examples, t)
    const card = cardLike(t)
    if (card) col.cards++
    if (col.spill) col.spill.add(spillKey(t, card))
    else if (col.hll) col.hll.add(t)
    else {
      col.distinct.set(t, (col.distinct.get(t) ?? 0) + 1)
      if (col.distinct.size > capFor()) capColumn(col)
    }
    if (!col.leadingZeros && t.length > 1 && t.charCodeAt(0) === 48 && t.charCodeAt(1) >= 48 && t.charCodeAt(1) <= 57) col.leadingZeros = true
    if (/^\d+$/.test(t)) col.digitsOnly++

    if (isFail(parseBoolean(t))) pushExample(col.misfits.boolean, t)
    else col.boolean++
    if (isFail(parseInteger(t))) pushExample(col.misfits.integer, t)
    else col.integer++
    const d = parseDecimal(t, {scale: MAX_SCALE, precision: READ_PRECISION})
    // an ambiguous value ("1,234"): how it reads with each decimal separator (see foldSeparator)
    const sep = t.includes(',') || t.includes('.')
    for (const s of sep && isFail(d) ? SEPARATORS : []) {
      const h = parseDecimal(t, {scale: MAX_SCALE, precision: READ_PRECISION, decimalSeparator: s})
      const hd = col.hinted[s]
      if (isFail(h)) {
        pushExample(hd.misfits, t)
        continue
      }
      hd.count++
      hd.scale = Math.max(hd.scale, writtenScale(t, h))
      hd.intDigits = Math.max(hd.intDigits, integerDigits(h))
      if (hd.min === undefined || compareCanonical(h, hd.min) < 0) hd.min = h
      if (hd.max === undefined || compareCanonical(h, hd.max) > 0) hd.max = h
      if (s === ',') hd.comma++
    }
    if (isFail(d)) {
      pushExample(col.misfits.decimal, t)
      // without a separator the separator changes nothing: a misfit with either one
      if (!sep) for (const s of SEPARATORS) pushExample(col.hinted[s].misfits, t)
    } else {
      col.decimal++
      const written = writtenScale(t, d)
      // the separator it settles: the last "." or "," when read as the decimal one, else (a
      // grouping one: "1.234.567", "1,234") the other
      if (sep) {
        const last = t.lastIndexOf(',') > t.lastIndexOf('.') ? ',' : '.'
        col.settles[written > 0 ? last : last === ',' ? '.' : ',']++
      }
      col.scale = Math.max(col.scale, written)
      col.intDigits = Math.max(col.intDigits, integerDigits(d))
      if (col.numMin === undefined || compareCanonical(d, col.numMin) < 0) col.numMin = d
      if (col.numMax === undefined || compareCanonical(d, col.numMax) > 0) col.numMax = d
      if (/\d,\d{1,2}$|\d,\d+\D*$/.test(t) && !/\./.test(t)) col.decimalComma++
    }
    if (!DATE_LIKE.test(t)) {
      pushExample(col.misfits.date, t)
      return
    }
    const matches = matcher.match(t)
    if (matches.length === 0) {
      pushExample(col.misfits.date, t)
      return
    }
    col.dateFits++
    if (!matches.some((m) => carriesTime(m.format, t))) col.dateOnlyFits++
    for (const m of matches) {
      col.formatMatches.set(m.format, (col.formatMatches.get(m.format) ?? 0) + 1)
      const range = col.dateRange.get(m.format)
      if (!range) col.dateRange.set(m.format, {min: m, max: m})
      else if (m.epochMs < range.min.epochMs) range.min = m
      else if (m.epochMs > range.max.epochMs) range.max = m
    }
    for (const m of matches) {
      const tw = twinOf(m.format)
      if (tw === undefined || matches.some((o) => o !== m && twinOf(o.format) === tw)) continue
      const seen = col.twinOnly.get(m.format)
      if (seen) seen.count++
      else col.twinOnly.set(m.format, {count: 1, example: t})
    }
    let ambiguous = false
    for (let i = 0; i < matches.length; i++) {
      for (let j = i + 1; j < matches.length; j++) {
        if (matches[i]!.epochMs !== matches[j]!.epochMs) {
          ambiguous = true
          const key = `${matches[i]!.format}|${matches[j]!.format}`
          col.disagree.set(key, (col.disagree.get(key) ?? 0) + 1)
          if (!col.disagreeExample.has(key)) col.disagreeExample.set(key, t)
        }
      }
    }
    if (ambiguous) col.ambiguousValues++
  }

  try {
    // csv: a record larger than max_record_bytes (a broken line, a huge field) is counted as
    // RECORD_TOO_LARGE and the profile reads on after it (resyncTooLarge), as it does past any
    // other unreadable record; only a quote never closed, which leaves nothing after it to read,
    // ends it (SpecError, exit 2, naming the line where the quote opened, as normalize stops)
    const parsed = parseSourceUri(options.uri)
    const source = parsed.scheme === 'csv' ? readCsv(parsed, options.ctx ?? {}, {resyncTooLarge: true}) : openSource(parsed, options.ctx ?? {})
    for await (const batch of recordBatches(source)) {
      for (const r of batch) {
        if (options.limit !== undefined && rows >= options.limit) break
        rows++
        if (!r.ok) {
          const e = errors.get(r.code) ?? {count: 0, examples: []}
          e.count++
          pushExample(e.examples, maskCardsIn(r.message))
          errors.set(r.code, e)
          continue
        }
        for (const [name, value] of Object.entries(r.fields)) {
          let col = columns.get(name)
          if (!col) {
            col = new ColumnStats(name)
            col.count = rows - 1 - sumErrors(errors)
            col.nulls = col.count // earlier rows did not have this column
            columns.set(name, col)
          }
          observe(col, value)
        }
        for (const col of columns.values()) if (!(col.name in r.fields)) observe(col, undefined)
      }
      options.onProgress?.(rows)
      if (options.limit !== undefined && rows >= options.limit) break
    }
    for (const col of columns.values()) {
      if (!col.spill) continue
      options.onProgress?.(rows, `sorting ${col.spill.values.toLocaleString('en-US')} values of key column ${col.name} for its duplicates`)
      col.spilled = await col.spill.count(MAX_EXAMPLES, {...(options.tmpDir ? {tmpDir: options.tmpDir} : {}), ...(options.sortRunRows ? {runRows: options.sortRunRows} : {})})
      col.spill = undefined
    }
  } catch (e) {
    // a pg: source's SQL that fails on a value it reads (class 22: a where= literal that is no date,
    // a division by zero in query=, SQL_ASCII bytes that are no UTF-8) is exit 2 with the fix, as
    // backfill and normalize give it (the reader itself gives a dotted name's and a bind parameter's)
    if (!isCutoverError(e) || e.code !== 'PG_ERROR') throw e
    throw pgSourceDataError(e, parseSourceUri(options.uri))
  } finally {
    for (const col of columns.values()) col.spill?.discard()
    spills.close()
  }

  const profiles = [...columns.values()].map((c) => summarize(c))
  return {
    source: options.uri,
    rows,
    errors: [...errors.entries()].map(([code, e]) => ({code, ...e})),
    notes: notesOf(options.uri, rows, errors),
    columns: profiles,
    suggested_fields: profiles.length === 0 ? '' : suggestFields(profiles, options.timezone),
  }
}

/**
 * The notes of a profile (ProfileResult.notes). A csv: or kafka: source read as UTF-8 (no
 * encoding=) whose records hold bytes invalid in UTF-8 is most often a windows-1251 or ibm866
 * file given without its encoding: the note names the URI that reads it.
 */
function notesOf(uri: string, rows: number, errors: ReadonlyMap<string, {count: number; examples: string[]}>): string[] {
  const notes: string[] = []
  const unreadable = sumErrors(errors)
  if (rows === 0) notes.push('the source has no records (an empty file, a header alone, or nothing in the range): there is nothing to profile and no fields to suggest')
  else if (unreadable === rows) notes.push(`none of the ${rows} records could be read (see errors): there are no columns to profile and no fields to suggest`)
  else if (unreadable > 0) notes.push(`${unreadable} of ${rows} records could not be read (see errors): the columns describe only the ${rows - unreadable} that could`)
  const parsed = parseSourceUri(uri)
  const tooLarge = errors.get('RECORD_TOO_LARGE')
  if (tooLarge && parsed.scheme === 'csv') {
    const limit = parsed.params.max_record_bytes ?? String(DEFAULT_MAX_RECORD_BYTES)
    notes.push(
      `${tooLarge.count} record(s) larger than max_record_bytes (${limit} bytes) were skipped without reading them into memory, and the profile read on after each (see errors: the lines and bytes each spans); ` +
        'such a record is most often a broken line or a quote that closes far too late: look at those lines before raising max_record_bytes',
    )
  }
  // a quote never closed in a record smaller than max_record_bytes, where the reader could not read on
  // after its line: the rest of the file was read as that one record (a DECODE_ERROR), which the count
  // of unreadable records alone does not tell (when it could, its error says so, and no note is needed)
  const runaway = errors.get('DECODE_ERROR')?.examples.find((e) => e.includes(QUOTE_NOT_CLOSED) && e.includes('the rest of the file'))
  const runawayLine = runaway === undefined ? undefined : /:(\d+): malformed quote/.exec(runaway)?.[1]
  if (runawayLine !== undefined) {
    notes.push(
      `the record on line ${runawayLine} opens a quote that is never closed: everything from line ${runawayLine} to the end of the file was read as that one unreadable record, ` +
        `so the columns describe only the records before it; close the quote on line ${runawayLine} (a quote inside a quoted field is written twice: "")`,
    )
  }
  const decode = errors.get('DECODE_ERROR')
  if (decode && decode.examples.some((e) => /not valid utf-8|invalid UTF-8/i.test(e))) {
    const encoding = (parsed.params.encoding ?? 'utf-8').toLowerCase()
    if ((parsed.scheme === 'csv' || parsed.scheme === 'kafka') && (encoding === 'utf-8' || encoding === 'utf8')) {
      const base = parsed.params.encoding === undefined ? `${uri.trim()}${uri.includes('?') ? '&' : '?'}encoding=windows-1251` : uri.trim().replace(/encoding=[^&]*/i, 'encoding=windows-1251')
      notes.push(`${decode.count} record(s) hold bytes that are not UTF-8: if the source was written in another encoding, give it, e.g. ${base} (or encoding=ibm866, latin1)`)
    }
  }
  return notes
}

function sumErrors(errors: ReadonlyMap<string, {count: number}>): number {
  let n = 0
  for (const e of errors.values()) n += e.count
  return n
}

const FIT = 0.95

/**
 * n of d as a rate rounded to 4 decimals, which is never 0 when n > 0 nor 1 when n < d: a
 * rate under 0.0001 keeps two significant digits (1 in 3,000,000 is 3.3e-7), one just under 1
 * is floored (0.9999).
 */
export function share(n: number, d: number): number {
  if (d === 0 || n === 0) return 0
  if (n >= d) return 1
  const r = n / d
  const rounded = +r.toFixed(4)
  if (rounded === 0) return +r.toPrecision(2)
  if (rounded === 1) return Math.floor(r * 1e4) / 1e4
  return rounded
}

const distinctSoFar = (c: ColumnStats) => (c.spilled ? c.spilled.distinct : c.distinctCapped ? c.distinctAtCap : c.distinct.size)

/** Key-like: named like an identifier or almost every value distinct. */
function keyLike(name: string, distinct: number, nonEmpty: number): boolean {
  const idName = /(^|[_-])(id|key|ref|no|num|number|uuid)$/i.test(name) || /Id$/.test(name)
  return nonEmpty > 1 && (distinct >= 0.98 * nonEmpty || (idName && distinct >= 0.8 * nonEmpty))
}

/** The type the values seen so far fit, how many fit it, and examples of those that do not. */
function inferType(c: ColumnStats): {type: InferredType; fitting: number; misfits: string[]; dateFormats: {format: string; matches: number}[]} {
  const ne = c.nonEmpty
  // "Almost every value": at most 5% misfits, and at least one misfit tolerated in a small sample.
  const fits = (n: number) => n > ne / 2 && ne - n <= Math.max(Math.floor(ne * (1 - FIT)), 1)
  const dateFormats = [...c.formatMatches.entries()].sort((a, b) => b[1] - a[1]).map(([format, matches]) => ({format, matches}))
  // Order matters: booleans and integers are also decimals; all-digit dates (yyyyMMdd,
  // yyyyMMddHHmmss, epoch_ms) are also integers. A column is a date when one format alone
  // explains almost every value (epoch formats only for values of 10 digits or more).
  const best = dateFormats.find((f) => !f.format.startsWith('epoch') || c.minLength >= 10)
  const oneFormatExplains = best !== undefined && fits(best.matches)
  let type: InferredType = 'string'
  let fitting = ne
  let misfits: string[] = []
  if (ne === 0) type = 'empty'
  else if (fits(c.boolean) && distinctSoFar(c) <= 4) [type, fitting, misfits] = ['boolean', c.boolean, c.misfits.boolean]
  else if (fits(c.dateFits) && (!fits(c.integer) || oneFormatExplains) && dateFormats.length > 0)
    [type, fitting, misfits] = [c.dateOnlyFits === c.dateFits ? 'date' : 'timestamp', c.dateFits, c.misfits.date]
  else if (fits(c.integer) && c.scale === 0) [type, fitting, misfits] = ['integer', c.integer, c.misfits.integer]
  else if (fits(c.decimal)) [type, fitting, misfits] = ['decimal', c.decimal, c.misfits.decimal]
  if (type === 'integer' && c.maxLength > 1 && c.leadingZeros) type = 'string' // leading zeros: an identifier
  // Digits alone, too many for an int64 (a 20-digit account number 40817810000000000001): an
  // identifier too, not a numeric(20, 0), which would drop a leading zero (00017810000000000002
  // written as 17810000000000002) and let it be summed
  if (type === 'decimal' && c.scale === 0 && c.intDigits > 18 && c.digitsOnly >= c.decimal) type = 'string'
  // card numbers: identifiers, not quantities (19 digits overflow bigint; summed or rounded, never)
  if (type === 'integer' && c.cards >= 0.5 * ne) type = 'string'
  if (type === 'string') [fitting, misfits] = [ne, []]
  return {type, fitting, misfits, dateFormats}
}

/**
 * A column whose values settle the decimal separator (some read only with a decimal comma, none
 * only with a decimal point, or the reverse) while others are ambiguous to parseDecimal ("92,345"
 * may be 92.345 or 92345; normalize refuses it unless the field's decimal_separator says): the
 * ambiguous ones are read with the settled separator, as a spec with that decimal_separator reads
 * them, and counted as decimals. Without this, a column of FX rates or quantities with 3 decimals
 * was called `string`, or a money column had its ambiguous values suggested as dirt.
 */
function foldSeparator(c: ColumnStats): void {
  const s = c.settles[','] > 0 && c.settles['.'] === 0 ? ',' : c.settles['.'] > 0 && c.settles[','] === 0 ? '.' : undefined
  if (s === undefined || c.separator !== undefined) return
  const h = c.hinted[s]
  if (h.count === 0) return
  c.separator = s
  c.decimal += h.count
  c.scale = Math.max(c.scale, h.scale)
  c.intDigits = Math.max(c.intDigits, h.intDigits)
  c.decimalComma += h.comma
  if (h.min !== undefined && (c.numMin === undefined || compareCanonical(h.min, c.numMin) < 0)) c.numMin = h.min
  if (h.max !== undefined && (c.numMax === undefined || compareCanonical(h.max, c.numMax) > 0)) c.numMax = h.max
  c.misfits.decimal = h.misfits
}

function summarize(c: ColumnStats): ColumnProfile {
  foldSeparator(c)
  const ne = c.nonEmpty
  const {type, fitting, misfits, dateFormats} = inferType(c)
  const nonFitting = ne - fitting
  const distinct = distinctSoFar(c)
  const capped = c.distinctCapped && c.spilled === undefined

  const p: ColumnProfile = {
    name: c.name,
    inferred_type: type,
    fit_rate: ne === 0 ? 1 : share(fitting, ne),
    non_fitting: nonFitting,
    non_fitting_examples: nonFitting > 0 ? misfits.map(shownExample) : [],
    count: c.count,
    null_count: c.nulls,
    null_rate: share(c.nulls, c.count),
    empty_count: c.empties,
    empty_rate: share(c.empties, c.count),
    distinct,
    distinct_capped: capped,
    ...(capped && c.hll ? {distinct_estimate: Math.max(c.hll.estimate(), distinct)} : {}),
    min_length: c.minLength === Infinity ? 0 : c.minLength,
    max_length: c.maxLength,
    examples: c.examples.map(shownExample),
    has_surrounding_spaces: c.surroundingSpaces,
  }
  // most values are card numbers: the column is suggested as sensitive
  if (ne > 0 && c.cards >= 0.5 * ne) p.card_numbers = c.cards
  if (type === 'decimal') {
    p.scale = c.scale
    p.integer_digits = c.intDigits
    p.decimal_comma = c.decimalComma > 0
    if (c.separator !== undefined) p.decimal_separator = c.separator
  }
  // not for a column of card numbers: its smallest and largest are card numbers
  if ((type === 'decimal' || type === 'integer') && c.numMin !== undefined && c.numMax !== undefined && p.card_numbers === undefined) {
    const scale = type === 'integer' ? 0 : c.scale
    p.min = shownExample(atScale(c.numMin, scale))
    p.max = shownExample(atScale(c.numMax, scale))
  }
  if (type === 'timestamp' || type === 'date') {
    p.date_formats = dateFormats
    p.ambiguous_values = c.ambiguousValues
    // Two formats that both match every dated value yet disagree on some: nothing in the
    // column says which one is meant (e.g. all days <= 12 under dd/MM and MM/dd).
    const full = dateFormats.filter((f) => f.matches === c.dateFits).map((f) => f.format)
    const conflicts = [...c.disagree.keys()].map((k) => k.split('|') as [string, string]).filter(([a, b]) => full.includes(a) && full.includes(b))
    // Day/month twins that read the same values and disagree on some, beside values in another
    // format (20.11.2026 with 03/04/2026 and 05/06/2026): no value only one of them reads, so
    // nothing settles the order of the slashed ones either, though neither matches every value
    const unsettledTwins = [...c.disagree.keys()]
      .map((k) => k.split('|') as [string, string])
      .filter(([a, b]) => !(full.includes(a) && full.includes(b)) && twinOf(a) !== undefined && twinOf(a) === twinOf(b) && !c.twinOnly.has(a) && !c.twinOnly.has(b))
    // Dates in both orders: some values only dd/MM reads (22/11/2026), others only MM/dd
    // (11/23/2026). No value settles the column: a value both read (05/06/2026) is either, and
    // listing one order alone would read the other's such values as another day, silently.
    const mixed = [...c.twinOnly.keys()]
      .map((f) => [f, [...c.twinOnly.keys()].find((g) => g !== f && twinOf(g) === twinOf(f))] as const)
      .find((pair): pair is readonly [string, string] => pair[1] !== undefined)
    p.ambiguous = conflicts.length > 0 || unsettledTwins.length > 0 || mixed !== undefined
    if (conflicts.length > 0) {
      const [a, b] = conflicts[0]!
      p.ambiguity_note = `every value matches both "${a}" and "${b}", which read ${c.ambiguousValues} value(s) differently; ask the source system which one it writes`
    } else if (unsettledTwins.length > 0) {
      const [a, b] = unsettledTwins[0]!
      const key = `${a}|${b}`
      p.ambiguity_note =
        `${c.disagree.get(key)} value(s) match both "${a}" and "${b}", which read them differently (e.g. ${c.disagreeExample.get(key)}), and no value reads under only one of them, so nothing settles which one the column uses ` +
        `(with both formats listed, normalize rejects such values as AMBIGUOUS_DATE); ask the source system which one it writes`
    } else if (mixed) {
      const [a, b] = mixed
      const ea = c.twinOnly.get(a)!
      const eb = c.twinOnly.get(b)!
      const both = c.disagree.get(`${a}|${b}`) ?? c.disagree.get(`${b}|${a}`) ?? 0
      p.ambiguity_note =
        `the column holds dates in both orders: ${ea.count} value(s) read only as "${a}" (e.g. ${ea.example}), ${eb.count} only as "${b}" (e.g. ${eb.example}); ` +
        `${both} value(s) read differently by the two cannot be settled (with both formats listed, normalize rejects such values as AMBIGUOUS_DATE); ask the source system which rows use which order`
    } else if (c.ambiguousValues > 0) {
      p.ambiguity_note = `${c.ambiguousValues} value(s) match two formats with different results; other values settle the column's format, so list only that format`
    }
    // the range under the formats a spec would list (an ambiguous column's range is one of its readings)
    let lo: DateFormatMatch | undefined
    let hi: DateFormatMatch | undefined
    for (const f of chosenFormats(p)) {
      const r = c.dateRange.get(f)
      if (!r) continue
      if (!lo || r.min.epochMs < lo.epochMs) lo = r.min
      if (!hi || r.max.epochMs > hi.epochMs) hi = r.max
    }
    if (lo && hi) [p.min, p.max] = type === 'date' ? [lo.date, hi.date] : [lo.instant, hi.instant]
  }
  // Key-like columns (text or integer): their repeated values, exact (in memory, or sorted on disk past the cap).
  if ((type === 'string' || type === 'integer') && !capped && keyLike(c.name, distinct, ne)) {
    if (c.spilled) p.duplicate_keys = {count: c.spilled.duplicates, examples: c.spilled.examples.map(shownSpilled)}
    else {
      const dups = [...c.distinct.entries()].filter(([, n]) => n > 1)
      p.duplicate_keys = {count: dups.reduce((s, [, n]) => s + n - 1, 0), examples: dups.slice(0, MAX_EXAMPLES).map(([k]) => shownExample(k))}
    }
  }
  return p
}

function snake(name: string): string {
  const s =
    name
      .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
      .replace(/[^A-Za-z0-9]+/g, '_')
      .replace(/^_+|_+$/g, '')
      .toLowerCase() || 'field'
  return /^\d/.test(s) ? `field_${s}` : s // a field name does not start with a digit
}

/**
 * The field name suggested for each column (in column order): its snake_case name, unique.
 * Columns whose snake_case names collide ("Amount" and "amount", "card no" and "card_no") all
 * get a field: a column already named in snake_case keeps its name, the others get the first
 * free `_2`, `_3`, ... suffix (and `from:` their column). No column is left out of the spec.
 */
export function suggestedNames(columns: readonly string[]): string[] {
  const taken = new Set<string>()
  const names: (string | undefined)[] = columns.map((c) => {
    const n = snake(c)
    if (n !== c || taken.has(n)) return undefined
    taken.add(n)
    return n
  })
  return columns.map((c, i) => {
    const given = names[i]
    if (given !== undefined) return given
    const base = snake(c)
    let n = base
    for (let k = 2; taken.has(n); k++) n = `${base}_${k}`
    taken.add(n)
    return n
  })
}

/** A date format's day/month twin class ("dd/MM/yyyy" and "MM/dd/yyyy" share one); undefined for a format without both. */
function twinOf(format: string): string | undefined {
  return /dd/.test(format) && /MM/.test(format) ? format.replace(/dd|MM/g, 'XX') : undefined
}

/** Orders the matching formats so that the most specific, settled ones are listed. */
function chosenFormats(p: ColumnProfile): string[] {
  const formats = p.date_formats ?? []
  const total = Math.max(...formats.map((f) => f.matches), 0)
  // Prefer formats that explain values; drop a format that only ever matches values another
  // (full-coverage) format also matches with the same result is not knowable here, so keep
  // the covering set: greedy by matches, skipping ambiguous twins of an already chosen format.
  const chosen: string[] = []
  for (const f of formats) {
    if (f.matches === 0) continue
    const twin = chosen.some((c) => twinOf(c) !== undefined && twinOf(c) === twinOf(f.format))
    if (twin && !p.ambiguous) continue
    if (chosen.length > 0 && f.matches < total * 0.001) continue
    chosen.push(f.format)
  }
  return chosen
}

export function suggestFields(columns: ColumnProfile[], timezone?: string): string {
  const fields: Record<string, Record<string, unknown>> = {}
  const names = suggestedNames(columns.map((c) => c.name))
  for (const [i, c] of columns.entries()) {
    const name = names[i]!
    const f: Record<string, unknown> = {}
    if (name !== c.name) f.from = c.name
    f.type = c.inferred_type === 'empty' ? 'string' : c.inferred_type
    // Required: never empty, or a key-like column whose few empties are the dirt to reject.
    if ((c.null_count === 0 && c.empty_count === 0 && c.count > 0) || c.duplicate_keys !== undefined) f.required = true
    if (c.inferred_type === 'string' && c.has_surrounding_spaces) f.trim = true
    if (c.inferred_type === 'string' && c.empty_count > 0 && f.required !== true) f.empty_as_null = true
    if (c.inferred_type === 'decimal') {
      if (c.decimal_separator !== undefined) f.decimal_separator = c.decimal_separator
      f.scale = Math.max(c.scale ?? 2, 0)
      // numeric(18, scale) by default: wider amounts would be UNPARSEABLE_AMOUNT under the suggestion
      const digits = (c.integer_digits ?? 0) + (f.scale as number)
      if (digits > SPEC_PRECISION) f.precision = Math.min(digits, SPEC_MAX_PRECISION)
    }
    if (c.inferred_type === 'timestamp' || c.inferred_type === 'date') {
      f.formats = chosenFormats(c)
      if (c.inferred_type === 'timestamp') f.timezone = timezone ?? 'UTC'
    }
    if (c.inferred_type === 'string' && c.max_length > 0) f.max_length = c.max_length
    if (c.card_numbers !== undefined) f.sensitive = true
    fields[name] = f
  }
  let yaml = stringify({fields}, {flowCollectionPadding: true, collectionStyle: 'block'})
  const notes = columns.flatMap((c, i) => (c.ambiguous ? [`# ${names[i]}: AMBIGUOUS: ${c.ambiguity_note}`] : []))
  // a local date-time (no offset in it) is read in `timezone`: UTC only because none was given,
  // which for a Moscow system's 20.11.2026 10:00:00 is 3 hours off; said, not assumed silently
  if (timezone === undefined) {
    for (const [i, c] of columns.entries()) {
      const local = c.inferred_type === 'timestamp' && (fields[names[i]!]!.formats as string[]).some((f) => f !== 'epoch_s' && f !== 'epoch_ms' && !/X/.test(f))
      if (local) notes.push(`# ${names[i]}: timezone UTC only because profile had no --timezone: set the zone the source system writes local times in (e.g. Europe/Moscow), or its times are read hours off`)
    }
  }
  if (notes.length > 0) yaml = notes.join('\n') + '\n' + yaml
  return yaml
}
