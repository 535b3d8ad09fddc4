/**
 * Timestamps and dates from a list of formats, in the field's timezone, never guessed.
 *
 * Formats:
 *   Unicode tokens   yyyy (4-digit year), MM/M (month), MMM (Jan..Dec, any case), dd/d (day),
 *                    HH/H (hour 0-23), hh/h (hour 1-12) with a (AM/PM), mm (minute),
 *                    ss (second), S..SSSSSSSSS (fraction, exactly that many digits),
 *                    XXX (Z or +03:00), XX (Z or +0300), X (Z, +03 or +0300), 'quoted'
 *                    literal text; any other non-letter is itself. `yy` is refused (it
 *                    needs a century guess), and so is a format that names a part without
 *                    the one above it (mm without HH, ss without mm, S without ss: HH:ss is a
 *                    typo of HH:mm that read 12:15 as 12:00:15) or the month twice (MMM, MM).
 *   iso              2026-11-20, 2026-11-20T09:15, 2026-11-20T09:15:00, with .fraction,
 *                    with Z / +03:00 / +0300 / +03; "T" or a space before the time.
 *   epoch_s          seconds since 1970 (optionally .fraction, 1-9 digits)
 *   epoch_ms         milliseconds since 1970
 *
 * Rules:
 * - Every format is compiled once to an anchored regex; the instant is computed here
 *   (luxon is used only for zone offsets, which are cached per 15-minute bucket).
 * - A value without an offset is local time in the field's timezone, DST-correct: a local
 *   time that does not exist (spring-forward gap) is UNPARSEABLE_DATE; one that occurs
 *   twice (fall-back overlap) is AMBIGUOUS_DATE.
 * - A value without a time of day (2026-04-24, 24.04.2026) read as a timestamp names a day, not
 *   a clock reading: it is that day's local midnight, and where the zone has no midnight that
 *   day (Africa/Cairo 2026-04-24, America/Santiago, Asia/Beirut: the clocks skip 00:00-01:00)
 *   or two (America/Havana, Asia/Gaza fall back to 00:00) it is read as PostgreSQL and luxon
 *   read it: in a gap the offset before the change (the first instant of the day), in an
 *   overlap the offset after it. A day the zone skipped whole (Pacific/Apia 2011-12-30) is
 *   UNPARSEABLE_DATE.
 * - All formats are tried. Matching two formats with different instants is AMBIGUOUS_DATE
 *   (01/02/2026 with dd/MM/yyyy and MM/dd/yyyy); several with the same instant is fine. A
 *   shape that matches but names an impossible date (31.02.2026, month 13, 24:00) does not
 *   count as a match; if nothing else matches it is UNPARSEABLE_DATE saying why.
 * - epoch_s / epoch_ms match only instants from 1980-01-01 to 2099-12-31, so that
 *   20261120091500 (yyyyMMddHHmmss) is not also read as milliseconds since 1970.
 * - A fraction is kept exactly to the microsecond, PostgreSQL's precision (DB2's
 *   2026-11-20-09.15.00.123456 with yyyy-MM-dd-HH.mm.ss.SSSSSS, PostgreSQL's
 *   2026-11-20 09:15:00.123456+00 with iso). Digits beyond it (.NET's 7 of "o", Java's 9) are
 *   rounded to it as PostgreSQL rounds them on input, half to even (.1234565 is .123456,
 *   .1234575 is .123458): the value a timestamptz holds, whichever way it is loaded, and the one
 *   NDJSON, Kafka, the dedupe and the sink all see. (A date field ignores the time of day.)
 * Output: timestamp -> UTC ISO-8601 with ms ("2026-11-20T09:15:00.000Z"), or with µs when the
 * value has them ("2026-11-20T09:15:00.123456Z": one text per instant, so that the dedupe
 * compares instants); date -> the local date "yyyy-MM-dd" (in the field's timezone when the
 * value carries an offset).
 *
 * The instant is carried as ms since 1970 (a double, as Date) plus the microseconds within that
 * millisecond (P[7], 0-999), so that the common case (no fraction, or ms) costs nothing more.
 */
import {IANAZone} from 'luxon'
import {Fail} from './fail.js'

const EPOCH_MIN = Date.UTC(1980, 0, 1)
const EPOCH_MAX = Date.UTC(2100, 0, 1)
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']

/** Every date-format token, with what it reads (the spec reference is generated from this). */
export const DATE_TOKENS: readonly (readonly [token: string, meaning: string])[] = [
  ['yyyy', 'year, 4 digits'],
  ['MM / M', 'month, 2 digits / 1-2 digits'],
  ['MMM', 'month name, Jan..Dec, any case'],
  ['dd / d', 'day of month, 2 digits / 1-2 digits'],
  ['HH / H', 'hour 0-23, 2 digits / 1-2 digits'],
  ['hh / h', 'hour 1-12 (needs a), 2 digits / 1-2 digits'],
  ['a', 'AM or PM, any case'],
  ['mm / m', 'minute'],
  ['ss / s', 'second'],
  ['S..SSSSSSSSS', 'fraction of a second, exactly that many digits (kept to the microsecond; digits beyond it rounded to it, half to even, as PostgreSQL does)'],
  ['XXX', 'Z or +03:00'],
  ['XX', 'Z or +0300'],
  ['X', 'Z, +03 or +0300'],
  ["'text'", 'literal text (\'\' for a quote); any other non-letter is itself'],
  ['iso', 'ISO-8601: 2026-11-20, 2026-11-20T09:15[:00[.123456]][Z|+03:00|+0300|+03], T or a space'],
  ['epoch_s', 'seconds since 1970 (optionally .fraction, kept to the microsecond), 1980-2099 only'],
  ['epoch_ms', 'milliseconds since 1970, 1980-2099 only'],
]

type Part = 'y' | 'M' | 'MMM' | 'd' | 'H' | 'h' | 'a' | 'm' | 's' | 'S' | 'X'

export interface CompiledDateFormat {
  /** the format as written */
  text: string
  kind: 'pattern' | 'iso' | 'epoch_s' | 'epoch_ms'
  re: RegExp
  /** regex group of each part (pattern formats) */
  groups: Partial<Record<Part, number>>
  minLength: number
  maxLength: number
  hasTime: boolean
  /**
   * Fixed-width formats (only dd MM yyyy HH mm ss S.. and literals) are read without a regex:
   * triples [part, offset, width] (part: 0 y, 1 M, 2 d, 3 H, 4 m, 5 s, 6 fraction) and pairs
   * [offset, char code] of the literals.
   */
  slots?: Int32Array
  literals?: Int32Array
}

const SLOT_PART: Partial<Record<Part, number>> = {y: 0, M: 1, d: 2, H: 3, m: 4, s: 5, S: 6}

/** Throws an Error with a human message when the format cannot be compiled. */
export function compileDateFormat(format: string): CompiledDateFormat {
  if (format === 'iso') {
    return {
      text: format,
      kind: 'iso',
      re: /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/,
      groups: {},
      minLength: 10,
      maxLength: 35,
      hasTime: true,
    }
  }
  if (format === 'epoch_s') return {text: format, kind: 'epoch_s', re: /^(\d{9,10})(?:\.(\d{1,9}))?$/, groups: {}, minLength: 9, maxLength: 20, hasTime: true}
  if (format === 'epoch_ms') return {text: format, kind: 'epoch_ms', re: /^\d{12,13}$/, groups: {}, minLength: 12, maxLength: 13, hasTime: true}

  let re = '^'
  let group = 0
  let minLength = 0
  let maxLength = 0
  const groups: Partial<Record<Part, number>> = {}
  const slots: number[] = []
  const literals: number[] = []
  let fixedWidth = true
  // the variable-width digit tokens (d, M, H, h, m, s) of the current run of digit tokens with no
  // literal between them: with two, a value splits more than one way (dMyyyy: 1112026 is
  // 11 Jan or 1 Nov), and the first split the pattern finds would be a guess
  let variableInRun: string | undefined
  const add = (part: Part, src: string, min: number, max: number, token: string) => {
    if (groups[part] !== undefined) throw new Error(`"${token}" appears twice in the date format "${format}"`)
    if (src.startsWith('\\d')) {
      if (min !== max) {
        if (variableInRun !== undefined) {
          throw new Error(`"${variableInRun}" and "${token}" stand side by side in the date format "${format}", so a value can be read more than one way; write ${variableInRun.repeat(2)} and ${token.repeat(2)}, or put a separator between them`)
        }
        variableInRun = token
      }
    } else variableInRun = undefined
    groups[part] = ++group
    re += `(${src})`
    const slot = SLOT_PART[part]
    if (slot === undefined || min !== max) fixedWidth = false
    else slots.push(slot, minLength, min)
    minLength += min
    maxLength += max
  }
  const literal = (lit: string) => {
    variableInRun = undefined
    re += escapeRegex(lit)
    for (let k = 0; k < lit.length; k++) literals.push(minLength + k, lit.charCodeAt(k))
    minLength += lit.length
    maxLength += lit.length
  }
  let i = 0
  while (i < format.length) {
    const ch = format[i]!
    if (ch === "'") {
      const close = format.indexOf("'", i + 1)
      if (close < 0) throw new Error(`unclosed quote in the date format "${format}"`)
      literal(close === i + 1 ? "'" : format.slice(i + 1, close))
      i = close + 1
      continue
    }
    if (!/[A-Za-z]/.test(ch)) {
      literal(ch)
      i++
      continue
    }
    let j = i
    while (j < format.length && format[j] === ch) j++
    const token = format.slice(i, j)
    const n = token.length
    switch (true) {
      case token === 'yyyy':
        add('y', '\\d{4}', 4, 4, token)
        break
      case ch === 'y':
        throw new Error(`"${token}" in "${format}": use yyyy (a two-digit year needs a century guess)`)
      case token === 'MMM':
        add('MMM', '[A-Za-z]{3}', 3, 3, token)
        break
      case token === 'MM' || token === 'dd' || token === 'HH' || token === 'hh' || token === 'mm' || token === 'ss':
        add(partOf(ch), '\\d{2}', 2, 2, token)
        break
      case token === 'M' || token === 'd' || token === 'H' || token === 'h' || token === 'm' || token === 's':
        add(partOf(ch), '\\d{1,2}', 1, 2, token)
        break
      case ch === 'S' && n <= 9:
        add('S', `\\d{${n}}`, n, n, token)
        break
      case token === 'XXX':
        add('X', 'Z|[+-]\\d{2}:\\d{2}', 1, 6, token)
        break
      case token === 'XX':
        add('X', 'Z|[+-]\\d{4}', 1, 5, token)
        break
      case token === 'X':
        add('X', 'Z|[+-]\\d{2}(?:\\d{2})?', 1, 5, token)
        break
      case token === 'a':
        add('a', '[AaPp][Mm]', 2, 2, token)
        break
      default:
        throw new Error(
          `unknown token "${token}" in the date format "${format}"; allowed: ${DATE_TOKENS.map(([t]) => t).join(', ')}`,
        )
    }
    i = j
  }
  if (groups.y === undefined || (groups.M === undefined && groups.MMM === undefined) || groups.d === undefined) {
    throw new Error(`the date format "${format}" needs a year (yyyy), a month (MM) and a day (dd)`)
  }
  if ((groups.h === undefined) !== (groups.a === undefined)) throw new Error(`the date format "${format}" uses hh (1-12) without a (AM/PM), or a without hh`)
  if (groups.H !== undefined && groups.h !== undefined) throw new Error(`the date format "${format}" has both HH and hh`)
  if (groups.m !== undefined && groups.H === undefined && groups.h === undefined) throw new Error(`the date format "${format}" has minutes (mm) without hours (HH)`)
  // a typo for mm (HH:ss read 12:15 as 12:00:15) or for ss, never a layout: refused as mm without HH is
  if (groups.s !== undefined && groups.m === undefined) throw new Error(`the date format "${format}" has seconds (ss) without minutes (mm)`)
  if (groups.S !== undefined && groups.s === undefined) throw new Error(`the date format "${format}" has a fraction of a second (S) without seconds (ss)`)
  // two months that could disagree (20 Nov (12) 2026): the one read would be a guess
  if (groups.M !== undefined && groups.MMM !== undefined) throw new Error(`the date format "${format}" has the month twice (MMM and MM)`)
  return {
    text: format,
    kind: 'pattern',
    re: new RegExp(re + '$'),
    groups,
    minLength,
    maxLength,
    hasTime: groups.H !== undefined || groups.h !== undefined,
    ...(fixedWidth ? {slots: Int32Array.from(slots), literals: Int32Array.from(literals)} : {}),
  }
}

function partOf(ch: string): Part {
  return ch as Part
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

function daysInMonth(y: number, m: number): number {
  return m === 2 ? (y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28) : m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31
}

/** Whether a zone name is read as UTC without a zone database: UTC, Etc/UTC, GMT and Z, any case. */
function isUtcName(name: string): boolean {
  const upper = name.toUpperCase()
  return upper === 'UTC' || upper === 'ETC/UTC' || upper === 'Z' || upper === 'GMT'
}

/**
 * The name of a field's timezone as Intl (and PostgreSQL) know it: a name ZoneOffsets reads as
 * UTC is "UTC" (Intl refuses "Z", which the spec check accepts), any other is itself.
 */
export function intlZoneName(name: string): string {
  return isUtcName(name) ? 'UTC' : name
}

/** Offsets (minutes east of UTC) of one zone, cached per 15-minute bucket where constant. */
export class ZoneOffsets {
  readonly name: string
  private readonly zone: IANAZone | undefined
  private readonly cache = new Map<number, number>()
  /** wall-clock 15-minute bucket -> offset, where that offset is the only one possible */
  private readonly localCache = new Map<number, number>()

  constructor(name: string) {
    this.name = name
    if (isUtcName(name)) {
      this.zone = undefined
    } else {
      if (!IANAZone.isValidZone(name)) throw new Error(`unknown timezone "${name}" (expected an IANA name such as Europe/Moscow or UTC)`)
      this.zone = IANAZone.create(name)
    }
  }

  get fixed(): boolean {
    return this.zone === undefined
  }

  offsetAt(ts: number): number {
    const zone = this.zone
    if (zone === undefined) return 0
    const bucket = Math.floor(ts / 900_000)
    const hit = this.cache.get(bucket)
    if (hit !== undefined) return hit
    const start = bucket * 900_000
    const o = zone.offset(ts)
    if (zone.offset(start) === o && zone.offset(start + 899_999) === o) {
      if (this.cache.size > 100_000) this.cache.clear()
      this.cache.set(bucket, o)
    }
    return o
  }

  /** The instant of a local wall-clock time `local` (ms, read as if UTC): a number, 'gap' or 'overlap'. */
  resolveLocal(local: number): number | 'gap' | 'overlap' {
    if (this.zone === undefined) return local
    const bucket = Math.floor(local / 900_000)
    const hit = this.localCache.get(bucket)
    if (hit !== undefined) return local - hit * 60_000
    const r = this.resolveSlow(local)
    // the offset is the same for the whole wall-clock bucket when nothing changes within a day of it
    const start = bucket * 900_000
    if (typeof r === 'number' && this.offsetAt(start - 2 * 86_400_000) === this.offsetAt(start + 2 * 86_400_000)) {
      const o = (local - r) / 60_000
      if (this.offsetAt(start - o * 60_000) === o && this.offsetAt(start + 899_999 - o * 60_000) === o) {
        if (this.localCache.size > 100_000) this.localCache.clear()
        this.localCache.set(bucket, o)
      }
    }
    return r
  }

  /**
   * The instant of local midnight `local` (ms, read as if UTC) of a day whose midnight is in a
   * gap or an overlap, as PostgreSQL reads it (`'2026-04-24'::timestamp AT TIME ZONE
   * 'Africa/Cairo'`): in a gap the offset before the change, in an overlap the offset after it;
   * undefined when no instant has that local date (the zone skipped the whole day).
   */
  resolveMidnight(local: number): number | undefined {
    const r = this.resolveLocal(local)
    if (typeof r === 'number') return r
    const before = this.offsetAt(local - 86_400_000)
    const after = this.offsetAt(local + 86_400_000)
    if (before === after) return undefined // two changes within a day: no offset to call "before"
    const u = local - (r === 'gap' ? before : after) * 60_000
    // the instant must be of that day: Pacific/Apia went from 2011-12-29 24:00 to 2011-12-31 00:00
    return Math.floor((u + this.offsetAt(u) * 60_000) / 86_400_000) === Math.floor(local / 86_400_000) ? u : undefined
  }

  private resolveSlow(local: number): number | 'gap' | 'overlap' {
    const before = this.offsetAt(local - 86_400_000)
    const after = this.offsetAt(local + 86_400_000)
    let found = NaN
    let n = 0
    const candidates = before === after ? [before, this.offsetAt(local)] : [before, after]
    for (const o of candidates) {
      const u = local - o * 60_000
      if (this.offsetAt(u) !== o) continue
      if (n === 0) {
        found = u
        n = 1
      } else if (u !== found) return 'overlap'
    }
    return n === 0 ? 'gap' : found
  }
}

function pad2(n: number): string {
  return n < 10 ? '0' + n : String(n)
}

const P2 = Array.from({length: 100}, (_, i) => String(i).padStart(2, '0'))
const P3 = Array.from({length: 1000}, (_, i) => String(i).padStart(3, '0'))
const YEARS: string[] = []
let isoDay = NaN
let isoPrefix = ''

/** "yyyy-MM-dd" of a day number (days since 1970-01-01), without a Date (civil-from-days, H. Hinnant). */
function dayText(day: number): string {
  const z = day + 719_468
  const era = Math.floor(z / 146_097)
  const doe = z - era * 146_097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1
  const m = mp < 10 ? mp + 3 : mp - 9
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0)
  if (y < 0 || y > 9999) return new Date(day * 86_400_000).toISOString().slice(0, -14)
  const yt = (YEARS[y] ??= String(y).padStart(4, '0'))
  return yt + '-' + P2[m] + '-' + P2[d]
}

/**
 * `new Date(ms).toISOString()`, several times faster: no Date, the time from lookup tables,
 * and the "yyyy-MM-ddT" of the last day reused (records often arrive in time order). `us`: the
 * microseconds within that millisecond (0-999); when not 0 the fraction has 6 digits.
 */
export function isoOf(ms: number, us = 0): string {
  const day = Math.floor(ms / 86_400_000)
  if (day !== isoDay) {
    isoDay = day
    isoPrefix = dayText(day) + 'T'
  }
  let r = ms - day * 86_400_000
  const h = (r / 3_600_000) | 0
  r -= h * 3_600_000
  const m = (r / 60_000) | 0
  r -= m * 60_000
  const sec = (r / 1000) | 0
  const text = isoPrefix + P2[h] + ':' + P2[m] + ':' + P2[sec] + '.' + P3[r - sec * 1000]
  return us === 0 ? text + 'Z' : text + P3[us] + 'Z'
}

/** "yyyy-MM-dd" of a wall-clock time (ms, read as if UTC). */
function localDate(local: number): string {
  return dayText(Math.floor(local / 86_400_000))
}

/** An offset's minutes (+03:00 -> 180); NaN when its minutes are over 59 (+03:99 is no offset). */
function parseOffset(t: string): number {
  if (t === 'Z') return 0
  const sign = t[0] === '-' ? -1 : 1
  const hh = Number(t.slice(1, 3))
  const mm = t.length > 3 ? Number(t.slice(t.length - 2)) : 0
  if (mm > 59) return NaN
  return sign * (hh * 60 + mm)
}

function formatOffset(minutes: number): string {
  const a = Math.abs(minutes)
  return `${minutes < 0 ? '-' : '+'}${pad2(Math.floor(a / 60))}:${pad2(a % 60)}`
}

/**
 * Reads the digits of a fraction of a second (1-9) into P: ms (P[6]), µs within the ms (P[7]),
 * and P[8] = 1 when the digits beyond the µs round it up (roundsUp). Used where a regex matched
 * (the fixed-width and ISO readers do the same inline).
 */
function readFraction(t: string | undefined): void {
  P[6] = P[7] = P[8] = 0
  if (!t) return
  const n = t.length
  P[6] = Number(n >= 3 ? t.slice(0, 3) : (t + '00').slice(0, 3))
  if (n > 3) P[7] = Number(n >= 6 ? t.slice(3, 6) : (t.slice(3) + '00').slice(0, 3))
  if (n > 6) {
    let rest = false
    for (let i = 7; i < n; i++) if (t.charCodeAt(i) !== 48) rest = true
    P[8] = roundsUp(t.charCodeAt(6) - 48, rest, P[7]!)
  }
}

/**
 * Whether digits beyond the microsecond round it up, as PostgreSQL rounds them (half to even:
 * .1234565 is .123456, .1234575 is .123458, .1234567 is .123457): `first` the 7th digit of the
 * fraction, `rest` whether a later one is not 0, `us` the µs within the ms. 1 or 0.
 */
function roundsUp(first: number, rest: boolean, us: number): number {
  return first > 5 || (first === 5 && (rest || (us & 1) === 1)) ? 1 : 0
}

/** Digits of `text` at [at, at+width) as a number, or -1. */
function digitsAt(text: string, at: number, width: number): number {
  let v = 0
  for (let i = at; i < at + width; i++) {
    const c = text.charCodeAt(i) - 48 // NaN past the end
    if (!(c >= 0 && c <= 9)) return -1
    v = v * 10 + c
  }
  return v
}

/**
 * Scratch of the parts read by the last reader: y, M, d, H, m, s, ms, µs within the ms (0-999),
 * and 1 when the fraction has a non-zero digit beyond the µs.
 */
const P = new Int32Array(9)
const SCALE = [0, 100, 10, 1]
/** 10 ** n */
const POW10 = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000]

/** Reads a fixed-width format into P without a regex; false when the text does not have its shape. */
function readFixed(f: CompiledDateFormat, text: string): boolean {
  if (text.length !== f.minLength) return false
  const lits = f.literals!
  for (let i = 0; i < lits.length; i += 2) if (text.charCodeAt(lits[i]!) !== lits[i + 1]) return false
  P.fill(0)
  const slots = f.slots!
  for (let i = 0; i < slots.length; i += 3) {
    const width = slots[i + 2]!
    const v = digitsAt(text, slots[i + 1]!, width)
    if (v < 0) return false
    const part = slots[i]!
    if (part !== 6) P[part] = v
    else if (width <= 3) P[6] = v * SCALE[width]!
    else {
      // SSSS..SSSSSSSSS: the ms, the µs after them, and whether anything is left beyond the µs
      const sub = POW10[width - 3]!
      P[6] = Math.floor(v / sub)
      const rest = v - P[6] * sub
      if (width <= 6) P[7] = rest * POW10[6 - width]!
      else {
        // the digits beyond the µs, rounded half to even as PostgreSQL rounds them (roundsUp)
        const beyond = POW10[width - 6]!
        P[7] = Math.floor(rest / beyond)
        const left = rest % beyond
        if (left * 2 > beyond || (left * 2 === beyond && (P[7]! & 1) === 1)) P[8] = 1
      }
    }
  }
  return true
}

/** The wall-clock time (ms, as if UTC) of the last successful `applyFormat` (when asked for). */
let lastLocal = 0

/** What `applyFormat` computes: the instant only, the local date only, or both. */
const INSTANT = 0
const DATE = 1
const BOTH = 2

/** Offset (minutes) read by `readIso`, NaN when the value has none. */
let isoOffset = NaN

/**
 * Reads ISO-8601 into P without a regex: yyyy-MM-dd, then optionally "T" or " ", HH:mm,
 * optionally :ss and .fraction (1-9 digits), then optionally Z, ±HH, ±HHmm or ±HH:mm.
 */
function readIso(text: string): boolean {
  const n = text.length
  if (n < 10 || text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45) return false
  const y = digitsAt(text, 0, 4)
  const mo = digitsAt(text, 5, 2)
  const d = digitsAt(text, 8, 2)
  if (y < 0 || mo < 0 || d < 0) return false
  P[0] = y
  P[1] = mo
  P[2] = d
  P[3] = P[4] = P[5] = P[6] = P[7] = P[8] = 0
  isoOffset = NaN
  if (n === 10) return true
  const sep = text.charCodeAt(10)
  if ((sep !== 84 && sep !== 32) || n < 16 || text.charCodeAt(13) !== 58) return false
  const h = digitsAt(text, 11, 2)
  const mi = digitsAt(text, 14, 2)
  if (h < 0 || mi < 0) return false
  P[3] = h
  P[4] = mi
  let i = 16
  if (i < n && text.charCodeAt(i) === 58) {
    const sec = digitsAt(text, i + 1, 2)
    if (sec < 0 || i + 3 > n) return false
    P[5] = sec
    i += 3
    const c = text.charCodeAt(i)
    if (i < n && (c === 46 || c === 44)) {
      let j = i + 1
      let ms = 0
      let us = 0
      let first = 0 // the 7th digit, and whether a later one is not 0: rounding to the µs
      let rest = false
      while (j < n && j - i - 1 < 9) {
        const dgt = text.charCodeAt(j) - 48
        if (dgt < 0 || dgt > 9) break
        const k = j - i - 1
        if (k < 3) ms = ms * 10 + dgt
        else if (k < 6) us = us * 10 + dgt
        else if (k === 6) first = dgt
        else if (dgt !== 0) rest = true
        j++
      }
      const digits = j - i - 1
      if (digits === 0) return false
      P[6] = digits === 1 ? ms * 100 : digits === 2 ? ms * 10 : ms
      if (digits > 3) P[7] = digits === 4 ? us * 100 : digits === 5 ? us * 10 : us
      if (digits > 6) P[8] = roundsUp(first, rest, us)
      i = j
    }
  }
  if (i === n) return true
  const c = text.charCodeAt(i)
  if (c === 90 /* Z */) {
    isoOffset = 0
    return i + 1 === n
  }
  if (c !== 43 && c !== 45) return false
  const oh = digitsAt(text, i + 1, 2)
  if (oh < 0) return false
  let om = 0
  const rest = n - i - 3
  if (rest === 3 && text.charCodeAt(i + 3) === 58) om = digitsAt(text, i + 4, 2)
  else if (rest === 2) om = digitsAt(text, i + 3, 2)
  else if (rest !== 0) return false
  if (om < 0 || om > 59) return false // +03:99 is no offset
  isoOffset = (c === 45 ? -1 : 1) * (oh * 60 + om)
  return true
}

/**
 * Applies one compiled format: the instant (ms since epoch), a string saying why the shape is
 * not a date, or undefined when the text does not have the format's shape. `mode`: INSTANT
 * (timestamp fields), DATE (date fields: a value without an offset is not resolved in the zone,
 * its local date is the answer, and the number returned is the wall-clock time) or BOTH
 * (`match`). Sets `lastLocal` (the wall-clock time) unless the mode is INSTANT.
 */
function applyFormat(f: CompiledDateFormat, text: string, zone: ZoneOffsets, mode: number): number | string | undefined {
  if (text.length < f.minLength || text.length > f.maxLength) return undefined
  const dateOnly = mode === DATE
  let off: string | undefined
  let offsetMinutes = NaN
  if (f.slots !== undefined) {
    if (!readFixed(f, text)) return undefined
  } else if (f.kind === 'iso') {
    if (!readIso(text)) return undefined
    offsetMinutes = isoOffset
  } else {
    const m = f.re.exec(text)
    if (!m) return undefined
    if (f.kind === 'epoch_ms' || f.kind === 'epoch_s') {
      readFraction(f.kind === 'epoch_ms' ? undefined : m[2])
      const ms = f.kind === 'epoch_ms' ? Number(text) : Number(m[1]) * 1000 + P[6]! + roundedUp()
      if (ms < EPOCH_MIN || ms >= EPOCH_MAX) return undefined
      if (mode !== INSTANT) lastLocal = ms + zone.offsetAt(ms) * 60_000
      return ms
    }
    P.fill(0)
    {
      const g = f.groups
      P[0] = Number(m[g.y!])
      if (g.MMM !== undefined) {
        P[1] = MONTHS.indexOf(m[g.MMM]!.toLowerCase()) + 1
        if (P[1] === 0) return `"${m[g.MMM]}" is not a month name (Jan..Dec)`
      } else P[1] = Number(m[g.M!])
      P[2] = Number(m[g.d!])
      if (g.H !== undefined) P[3] = Number(m[g.H])
      if (g.h !== undefined) {
        const h12 = Number(m[g.h])
        if (h12 < 1 || h12 > 12) return `hour ${h12} is not 1-12`
        const pm = m[g.a!]![0] === 'P' || m[g.a!]![0] === 'p'
        P[3] = (h12 % 12) + (pm ? 12 : 0)
      }
      if (g.m !== undefined) P[4] = Number(m[g.m])
      if (g.s !== undefined) P[5] = Number(m[g.s])
      if (g.S !== undefined) readFraction(m[g.S])
      if (g.X !== undefined) off = m[g.X]
    }
  }
  const y = P[0]!
  const mo = P[1]!
  const d = P[2]!
  const h = P[3]!
  const mi = P[4]!
  const s = P[5]!
  if (mo < 1 || mo > 12) return `month ${mo} does not exist`
  if (d < 1 || d > daysInMonth(y, mo)) return `day ${d} does not exist in ${y}-${pad2(mo)}`
  if (h > 23 || mi > 59 || s > 59) return `${pad2(h)}:${pad2(mi)}:${pad2(s)} is not a time of day`
  // Date.UTC carries a millisecond of 1000 (.9999995 rounded up) into the second, and on
  const local = Date.UTC(y, mo - 1, d, h, mi, s, P[6]! + roundedUp()) + (y < 100 ? yearFix(y) : 0)
  if (off !== undefined) {
    offsetMinutes = parseOffset(off)
    if (Number.isNaN(offsetMinutes)) return `offset ${off} is not an offset (its minutes are over 59)`
  }
  if (!Number.isNaN(offsetMinutes)) {
    if (Math.abs(offsetMinutes) > 18 * 60) return `offset ${off ?? formatOffset(offsetMinutes)} is out of range`
    const u = local - offsetMinutes * 60_000
    if (mode !== INSTANT) lastLocal = u + zone.offsetAt(u) * 60_000
    return u
  }
  lastLocal = local
  // a date needs no instant when the value carries no offset: its local date is the answer
  if (dateOnly) return local
  const u = zone.resolveLocal(local)
  if (typeof u !== 'number' && (f.kind === 'iso' ? text.length === 10 : !f.hasTime)) {
    // no time of day: the value names a day, whose midnight is missing or doubled in the zone
    const midnight = zone.resolveMidnight(local)
    return midnight ?? `day ${localDate(local)} does not exist in ${zone.name} (the clocks skipped it)`
  }
  if (u === 'gap') return `local time ${localIso(local)} does not exist in ${zone.name} (clocks moved forward)`
  if (u === 'overlap') return `overlap:local time ${localIso(local)} occurs twice in ${zone.name} (clocks moved back)`
  return u
}

/**
 * Applies the rounding the reader found (P[8]): one µs more, and when that makes 1000 µs, 0 µs
 * and 1 ms to add to the instant (returned). 0 otherwise.
 */
function roundedUp(): number {
  if (P[8] === 0) return 0
  P[8] = 0
  if (P[7]! < 999) {
    P[7]!++
    return 0
  }
  P[7] = 0
  return 1
}

/** Date.UTC maps years 0-99 to 1900-1999. */
function yearFix(y: number): number {
  const a = new Date(Date.UTC(2000, 0, 1))
  a.setUTCFullYear(y)
  const b = new Date(Date.UTC(1900 + y, 0, 1))
  return a.getTime() - b.getTime()
}

function localIso(local: number): string {
  return new Date(local).toISOString().slice(0, 19).replace('T', ' ')
}

export interface DateFormatMatch {
  /** the format as written */
  format: string
  /** UTC ISO-8601 with ms, or µs when the value has them */
  instant: string
  epochMs: number
  /** the local date in the zone, yyyy-MM-dd */
  date: string
}

export type DateKind = 'timestamp' | 'date'

/**
 * A compiled list of formats in one zone. `match` lists every format a value matches (for
 * `profile`); `parse` gives the normalized value or a Fail.
 */
export class DateMatcher {
  readonly formats: readonly CompiledDateFormat[]
  readonly zone: ZoneOffsets

  constructor(formats: readonly string[], timezone = 'UTC') {
    this.formats = formats.map(compileDateFormat)
    this.zone = new ZoneOffsets(timezone)
  }

  /** Every format the value matches as a real date, with its instant. */
  match(value: string): DateFormatMatch[] {
    const out: DateFormatMatch[] = []
    const text = value.trim()
    for (const f of this.formats) {
      const p = applyFormat(f, text, this.zone, BOTH)
      if (typeof p === 'number') out.push({format: f.text, instant: isoOf(p, P[7]), epochMs: p, date: localDate(lastLocal)})
    }
    return out
  }

  /** timestamp -> "2026-11-20T09:15:00.000Z" (".123456Z" with µs); date -> "2026-11-20"; or UNPARSEABLE_DATE / AMBIGUOUS_DATE. */
  parse(text: string, kind: DateKind): string | Fail {
    const isDate = kind === 'date'
    let first = NaN // instant (timestamp) or local day number (date)
    let firstUs = 0 // µs within the ms of the instant (timestamp)
    let firstLocal = 0
    let firstFormat = ''
    let why: string | undefined
    const formats = this.formats
    for (let i = 0; i < formats.length; i++) {
      const f = formats[i]!
      const p = applyFormat(f, text, this.zone, isDate ? DATE : INSTANT)
      if (p === undefined) continue
      if (typeof p === 'string') {
        if (p.startsWith('overlap:')) return new Fail('AMBIGUOUS_DATE', `is ambiguous: ${p.slice(8)}`)
        why ??= `${p} (format ${f.text})`
        continue
      }
      const v = isDate ? Math.floor(lastLocal / 86_400_000) : p
      const us = isDate ? 0 : P[7]!
      if (Number.isNaN(first)) {
        first = v
        firstUs = us
        firstLocal = lastLocal
        firstFormat = f.text
      } else if (v !== first || us !== firstUs) {
        const a = isDate ? localDate(firstLocal) : isoOf(first, firstUs)
        const b = isDate ? localDate(lastLocal) : isoOf(p, us)
        return new Fail('AMBIGUOUS_DATE', `is ambiguous: it reads as ${a} with "${firstFormat}" and as ${b} with "${f.text}"`)
      }
    }
    if (Number.isNaN(first)) {
      return new Fail('UNPARSEABLE_DATE', why !== undefined ? `is not a valid date: ${why}` : `matches none of the formats ${formats.map((f) => `"${f.text}"`).join(', ')}`)
    }
    // the ISO text it becomes must be a year 0001-9999: local 0001-01-01 00:00 east of UTC is
    // still year 0 in UTC, which PostgreSQL refuses (a SINK_REJECTED far from its cause)
    const day = isDate ? first : Math.floor(first / 86_400_000)
    if (day < FIRST_DAY || day > LAST_DAY) {
      return new Fail('UNPARSEABLE_DATE', `is ${isDate ? localDate(firstLocal) : isoOf(first, firstUs)}, outside the years 0001-9999 that an ISO date (and PostgreSQL) can hold`)
    }
    return isDate ? localDate(firstLocal) : isoOf(first, firstUs)
  }
}

/** Day numbers (days since 1970-01-01) of 0001-01-01 and 9999-12-31. */
const FIRST_DAY = Math.floor(new Date(0).setUTCFullYear(1, 0, 1) / 86_400_000)
const LAST_DAY = Math.floor(new Date(0).setUTCFullYear(9999, 11, 31) / 86_400_000)

const matchers = new Map<string, DateMatcher>()

/**
 * Which of `formats` the value matches, each with its instant (e.g. for `profile` to find
 * columns where 01/02 vs 02/01 is ambiguous). Compiled matchers are cached.
 */
export function matchDateFormats(value: string, formats: readonly string[], timezone = 'UTC'): DateFormatMatch[] {
  const key = `${timezone}\u0000${formats.join('\u0000')}`
  let m = matchers.get(key)
  if (!m) {
    if (matchers.size > 1000) matchers.clear()
    m = new DateMatcher(formats, timezone)
    matchers.set(key, m)
  }
  return m.match(value)
}
