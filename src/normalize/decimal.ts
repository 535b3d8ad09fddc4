/**
 * Exact decimals (money) from what legacy systems print. Never a JS float: the text is
 * scanned once and rebuilt as a canonical decimal string with exactly `scale` digits after
 * the point ("1234.50", "-12.50", "0.00"), ready for PostgreSQL numeric.
 *
 * Accepted text (surrounding whitespace ignored):
 *   sign       "+12", "-0,5", "12.50-" (trailing minus), "(12.50)" (accounting negative),
 *              "−12" (U+2212); at most one sign marker
 *   grouping   space, no-break space (U+00A0, U+202F), thin space (U+2009), apostrophe (' ’),
 *              or the separator that is not the decimal one: "1 234,56", "1.234,56",
 *              "1,234.56", "1'234.56". Groups must be well formed: 1-3 digits, then groups of
 *              exactly 3 ("12 34" is rejected), one grouping character per value.
 *   decimal    "." or ","; "1234.56", "1234,5", ".5" (no digits before: 0.5).
 *
 * Which of "." and "," is the decimal separator:
 *   1. the field's `decimal_separator`, when set (then the other one can only group);
 *   2. both present: the last one ("1.234,56" -> 1234.56, "1,234.56" -> 1234.56);
 *   3. one of them, several times: grouping ("1.234.567" -> 1234567);
 *   4. one of them once, with space/apostrophe grouping too: decimal ("1 234,5");
 *   5. one of them once, alone: decimal, EXCEPT the ambiguous shape "d{1,3}<sep>ddd"
 *      ("1,234", "12.500", "100,000"), which could be a thousands separator or a decimal
 *      one. That is rejected as UNPARSEABLE_AMOUNT (never guessed: a 1000x error on money
 *      is worse than a dead letter); set `decimal_separator` on the field to decide.
 *      "0,125" and "1234,567" are not ambiguous (a group cannot start with 0 or have 4
 *      digits) and are decimals.
 *
 * Scale: fewer fractional digits are padded with zeros; more are UNPARSEABLE_AMOUNT unless
 * the extra digits are all zeros ("12.5000" at scale 2 is exactly 12.50: accepted); a value
 * is never rounded. Precision (default 18, as numeric(18, scale)): more than
 * `precision - scale` integer digits is UNPARSEABLE_AMOUNT (overflow). "-0,00" is "0.00".
 *
 * JSON numbers (Kafka JSON values): accepted when they are safe integers, or when their
 * shortest printed form (`String(n)`, e.g. 12.5, 0.1; below 1e-6 written out: 1e-8 is
 * 0.00000001) fits the scale; 0.30000000000000004 is rejected. Send amounts as strings to be safe.
 */
import {Fail} from './fail.js'

export interface DecimalOptions {
  scale: number
  /** total significant digits, as numeric(precision, scale); default 18 */
  precision?: number
  /** the decimal separator, when the data is known to use one */
  decimalSeparator?: '.' | ','
}

const C_0 = 48
const C_9 = 57
const C_DOT = 46
const C_COMMA = 44

/** Grouping characters other than "." and ",": spaces and apostrophes. 0 when not one. */
function groupKind(c: number): number {
  switch (c) {
    case 32: // space
    case 0xa0: // no-break space
    case 0x202f: // narrow no-break space
    case 0x2009: // thin space
      return 32
    case 39: // '
    case 0x2019: // ’
      return 39
    default:
      return 0
  }
}

const NOT_NUMBER = 'is not a number (expected e.g. 1234.56, 1 234,56, (12.50) or 12.50-)'

/** Checks "1 234 567" style grouping of `s[from, to)` made of digits and `sep`; returns the digits or undefined. */
function ungroup(s: string, from: number, to: number, sep: number): string | undefined {
  let digits = ''
  let groupLen = 0
  let groups = 0
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i)
    if (c >= C_0 && c <= C_9) {
      groupLen++
      continue
    }
    const kind = c === C_DOT || c === C_COMMA ? c : groupKind(c)
    if (kind !== sep) return undefined
    if (groups === 0 ? groupLen < 1 || groupLen > 3 : groupLen !== 3) return undefined
    digits += s.slice(i - groupLen, i)
    groupLen = 0
    groups++
  }
  if (groups > 0 && groupLen !== 3) return undefined
  return digits + s.slice(to - groupLen, to)
}

/**
 * Parses decimal text into a canonical decimal string with exactly `scale` fractional digits,
 * or a Fail (UNPARSEABLE_AMOUNT) that says why.
 */
export function parseDecimal(text: string, options: DecimalOptions): string | Fail {
  const {scale} = options
  const precision = options.precision ?? 18
  // the fast path reads "." as the decimal point: not when the field says "," is (then "1.234" is
  // 1234), nor, at scale 3 without a separator, for the ambiguous "d{1,3}.ddd" (rule 5)
  if (options.decimalSeparator !== ',' && isCanonical(text, scale, precision, options.decimalSeparator === '.')) return text
  let s = text
  let start = 0
  let end = s.length
  // surrounding whitespace
  while (start < end && (s.charCodeAt(start) <= 32 || groupKind(s.charCodeAt(start)) === 32)) start++
  while (end > start && (s.charCodeAt(end - 1) <= 32 || groupKind(s.charCodeAt(end - 1)) === 32)) end--
  if (start === end) return new Fail('UNPARSEABLE_AMOUNT', 'is empty, not an amount')
  if (start !== 0 || end !== s.length) {
    s = s.slice(start, end)
    start = 0
    end = s.length
  }

  // sign markers: one of leading +/-/−, trailing -/+, or (...)
  let negative = false
  let signs = 0
  const first = s.charCodeAt(0)
  if (first === 40 /* ( */) {
    if (s.charCodeAt(end - 1) !== 41 /* ) */) return new Fail('UNPARSEABLE_AMOUNT', NOT_NUMBER)
    negative = true
    signs++
    start++
    end--
  }
  let c = s.charCodeAt(start)
  if (c === 45 /* - */ || c === 0x2212 || c === 43 /* + */) {
    negative = c !== 43
    signs++
    start++
  }
  c = s.charCodeAt(end - 1)
  if (end > start && (c === 45 || c === 43)) {
    negative = c === 45
    signs++
    end--
  }
  if (signs > 1) return new Fail('UNPARSEABLE_AMOUNT', 'has more than one sign')
  if (start >= end) return new Fail('UNPARSEABLE_AMOUNT', NOT_NUMBER)

  // one scan: what separators are there
  let dots = 0
  let commas = 0
  let lastDot = -1
  let lastComma = -1
  let spaceKind = 0
  for (let i = start; i < end; i++) {
    const ch = s.charCodeAt(i)
    if (ch >= C_0 && ch <= C_9) continue
    if (ch === C_DOT) {
      dots++
      lastDot = i
    } else if (ch === C_COMMA) {
      commas++
      lastComma = i
    } else {
      const k = groupKind(ch)
      if (k === 0 || (spaceKind !== 0 && k !== spaceKind)) return new Fail('UNPARSEABLE_AMOUNT', NOT_NUMBER)
      spaceKind = k
    }
  }

  // which separator is the decimal one (see the header)
  let dec = -1 // index of the decimal separator
  let groupSep = spaceKind
  const pick = (sepChar: number, count: number, last: number, other: number, otherCount: number): Fail | undefined => {
    if (count > 1) return new Fail('UNPARSEABLE_AMOUNT', `has the decimal separator "${String.fromCharCode(sepChar)}" more than once`)
    if (count === 1) dec = last
    if (otherCount > 0) {
      if (spaceKind !== 0) return new Fail('UNPARSEABLE_AMOUNT', 'mixes grouping characters')
      groupSep = other
    }
    return undefined
  }
  let f: Fail | undefined
  if (options.decimalSeparator !== undefined) {
    f =
      options.decimalSeparator === '.'
        ? pick(C_DOT, dots, lastDot, C_COMMA, commas)
        : pick(C_COMMA, commas, lastComma, C_DOT, dots)
  } else if (dots > 0 && commas > 0) {
    f = lastDot > lastComma ? pick(C_DOT, dots, lastDot, C_COMMA, commas) : pick(C_COMMA, commas, lastComma, C_DOT, dots)
  } else if (dots + commas > 1) {
    if (spaceKind !== 0) return new Fail('UNPARSEABLE_AMOUNT', 'mixes grouping characters')
    groupSep = dots > 0 ? C_DOT : C_COMMA
  } else if (dots + commas === 1) {
    const at = dots > 0 ? lastDot : lastComma
    if (spaceKind === 0 && end - at - 1 === 3 && at - start >= 1 && at - start <= 3 && s.charCodeAt(start) !== C_0) {
      return new Fail(
        'UNPARSEABLE_AMOUNT',
        `is ambiguous: "${s[at]}" may be a thousands or a decimal separator (set decimal_separator on the field to decide)`,
      )
    }
    dec = at
  }
  if (f) return f

  // integer and fraction digits
  const intEnd = dec < 0 ? end : dec
  let intDigits: string | undefined
  if (groupSep === 0) {
    for (let i = start; i < intEnd; i++) {
      const ch = s.charCodeAt(i)
      if (ch < C_0 || ch > C_9) return new Fail('UNPARSEABLE_AMOUNT', NOT_NUMBER)
    }
    intDigits = s.slice(start, intEnd)
  } else {
    intDigits = ungroup(s, start, intEnd, groupSep)
    if (intDigits === undefined) return new Fail('UNPARSEABLE_AMOUNT', 'has misplaced digit grouping (expected groups of 3 digits, as in 1 234 567,89)')
  }
  let frac = ''
  if (dec >= 0) {
    frac = s.slice(dec + 1, end)
    if (frac.length === 0) return new Fail('UNPARSEABLE_AMOUNT', 'has no digits after the decimal separator')
    for (let i = 0; i < frac.length; i++) {
      const ch = frac.charCodeAt(i)
      if (ch < C_0 || ch > C_9) return new Fail('UNPARSEABLE_AMOUNT', 'has grouping after the decimal separator')
    }
  }
  if (intDigits.length === 0 && frac.length === 0) return new Fail('UNPARSEABLE_AMOUNT', NOT_NUMBER)
  return canonical(negative, intDigits, frac, scale, precision)
}

/** Already "-123.45" with exactly `scale` digits, no leading zero, not negative zero: returned as is. */
function isCanonical(s: string, scale: number, precision: number, pointIsDecimal: boolean): boolean {
  const n = s.length
  let i = s.charCodeAt(0) === 45 ? 1 : 0
  const intStart = i
  while (i < n) {
    const c = s.charCodeAt(i)
    if (c < C_0 || c > C_9) break
    i++
  }
  const intLen = i - intStart
  if (intLen === 0 || intLen > precision - scale || (intLen > 1 && s.charCodeAt(intStart) === C_0)) return false
  if (scale === 0) return i === n && !(intStart === 1 && intLen === 1 && s.charCodeAt(1) === C_0)
  if (i !== n - scale - 1 || s.charCodeAt(i) !== C_DOT) return false
  if (scale === 3 && intLen <= 3 && !pointIsDecimal) return false // "1.234": grouping or a point? the full scan decides (rule 5)
  let nonZero = intLen > 1 || s.charCodeAt(intStart) !== C_0
  for (let k = i + 1; k < n; k++) {
    const c = s.charCodeAt(k)
    if (c < C_0 || c > C_9) return false
    if (c !== C_0) nonZero = true
  }
  return intStart === 0 || nonZero
}

function canonical(negative: boolean, intDigits: string, frac: string, scale: number, precision: number): string | Fail {
  if (frac.length > scale) {
    for (let i = scale; i < frac.length; i++) {
      if (frac.charCodeAt(i) !== C_0) {
        return new Fail('UNPARSEABLE_AMOUNT', `has ${frac.length} digits after the decimal separator but the scale is ${scale} (amounts are never rounded)`)
      }
    }
    frac = frac.slice(0, scale)
  } else if (frac.length < scale) {
    frac = frac + '0'.repeat(scale - frac.length)
  }
  let z = 0
  while (z < intDigits.length - 1 && intDigits.charCodeAt(z) === C_0) z++
  if (z > 0) intDigits = intDigits.slice(z)
  if (intDigits.length === 0) intDigits = '0'
  if (intDigits.length > precision - scale && !(intDigits === '0' && precision - scale === 0)) {
    return new Fail('UNPARSEABLE_AMOUNT', `overflows numeric(${precision},${scale}) (at most ${precision - scale} digits before the decimal separator)`)
  }
  let isZero = intDigits === '0'
  if (isZero) {
    for (let i = 0; i < frac.length; i++) {
      if (frac.charCodeAt(i) !== C_0) {
        isZero = false
        break
      }
    }
  }
  const body = scale > 0 ? `${intDigits}.${frac}` : intDigits
  return negative && !isZero ? '-' + body : body
}

/**
 * Marks the fields object of a reader's record (on its prototype: invisible to JSON.stringify,
 * Object.keys and equality checks) with the names of the values that are exact decimals in
 * canonical form, "." the decimal point and no grouping ("-1234.567"): a COBOL COMP-3, zoned or
 * binary field with V in its PIC, decoded from its digits. A decimal field reads such a value
 * with "." as the point (`parseExactDecimal`), never by the rules for printed text: rule 5
 * refused 1.234 from PIC S9(3)V999 COMP-3 as ambiguous, and a field's `decimal_separator: ","`
 * read it as 1234.000. A record that lost its prototype (copied, sent to a thread) is read as
 * text, as before.
 */
export const EXACT_DECIMALS: unique symbol = Symbol('cutover.exactDecimals')

/** A prototype for fields objects whose `names` are exact decimals (see EXACT_DECIMALS); undefined when there are none. */
export function exactDecimalsPrototype(names: readonly string[]): object | undefined {
  if (names.length === 0) return undefined
  return Object.freeze({[EXACT_DECIMALS]: new Set(names) as ReadonlySet<string>})
}

/** The names of a fields object's exact decimals (EXACT_DECIMALS), or undefined. */
export function exactDecimalsOf(fields: object): ReadonlySet<string> | undefined {
  return (fields as {[EXACT_DECIMALS]?: ReadonlySet<string>})[EXACT_DECIMALS]
}

/**
 * A decimal a machine wrote ("-1234.567": a copybook number, see EXACT_DECIMALS): "." is the
 * decimal point whatever `options.decimalSeparator` says; scale and precision as parseDecimal
 * (more fractional digits than the scale that are not zeros are refused, never rounded).
 */
export function parseExactDecimal(text: string, options: DecimalOptions): string | Fail {
  return parseDecimal(plainExactDecimal(text) ?? text, {...options, decimalSeparator: '.'})
}

/** A number in exponent form as a machine writes it ("1e-07", "-1.2345678901234567e+20": PostgreSQL's float4/float8 output). */
const EXPONENT_FORM = /^([+-]?)(\d+)(?:\.(\d+))?[eE]([+-]?\d{1,3})$/

/**
 * An exact decimal in exponent form written out in plain digits, digit for digit ("1e-07" ->
 * "0.0000001", "1.5e+20" -> "150000000000000000000"), or undefined when `text` is not in exponent
 * form. PostgreSQL prints a float8 below 1e-4 or from 1e15 so (a float column is an exact decimal
 * of the digits printed, see EXACT_DECIMALS): a rate of 0.00005 would be refused as no number.
 * Exponents of more than three digits are not PostgreSQL's (its doubles end near 1e308) and are left alone.
 */
export function plainExactDecimal(text: string): string | undefined {
  const m = EXPONENT_FORM.exec(text)
  if (m === null) return undefined
  const sign = m[1] === '-' ? '-' : ''
  const int = m[2]!
  const frac = m[3] ?? ''
  const digits = (int + frac).replace(/^0+(?=\d)/, '')
  // where the decimal point falls in `digits`
  const point = digits.length - frac.length + Number(m[4])
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`
}

/** An exact decimal that JSON can carry as a number as it is written ("-1234.567"; not "NaN", "1e+100"). */
const PLAIN_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?$/

/**
 * The fields of a record as JSON, with the exact decimals (EXACT_DECIMALS) among `numeric` (the
 * input names of a spec's decimal fields) written as JSON numbers, digit for digit: what a JSON
 * reader of them (`stream run`: parseJsonExact) takes as the number it is, where the text
 * "1.234" would be printed text (ambiguous, or 1234 with decimal_separator ","). Other fields, and
 * records without exact decimals, as JSON.stringify writes them.
 */
export function fieldsJson(fields: Record<string, unknown>, numeric: ReadonlySet<string>): string {
  const exact = numeric.size > 0 ? exactDecimalsOf(fields) : undefined
  if (exact === undefined) return JSON.stringify(fields)
  let out = '{'
  for (const k of Object.keys(fields)) {
    const v = fields[k]
    if (v === undefined || typeof v === 'function') continue
    let n = typeof v === 'string' && exact.has(k) && numeric.has(k) ? v : undefined
    // a float's exponent form ("1e-07") written out: `stream run` takes no JSON number in exponent form as exact
    if (n !== undefined && !PLAIN_NUMBER.test(n)) n = plainExactDecimal(n)
    out += (out.length === 1 ? '' : ',') + JSON.stringify(k) + ':' + (n !== undefined && PLAIN_NUMBER.test(n) ? n : JSON.stringify(v))
  }
  return out + '}'
}

/** A JSON number as a decimal: safe integers, or a shortest form without exponent that fits the scale. */
export function decimalFromNumber(n: number, options: DecimalOptions): string | Fail {
  if (!Number.isFinite(n)) return new Fail('UNPARSEABLE_AMOUNT', 'is not a finite number')
  if (Number.isInteger(n) && !Number.isSafeInteger(n)) {
    return new Fail('UNPARSEABLE_AMOUNT', 'is a JSON number too large to be exact (send amounts as strings)')
  }
  // below 1e-6 the shortest form is in exponent form ("1e-8" of the JSON number 0.00000001): its
  // digits are still the ones written (the number survived the double), written out in full
  const t = String(n)
  const plain = t.includes('e') ? plainExactDecimal(t) : undefined
  if (plain === undefined) return decimalFromNumberText(t, options)
  const v = parseDecimal(plain, {...options, decimalSeparator: '.'})
  return v instanceof Fail ? new Fail(v.code, `is a JSON number that prints in exponent form (${t}, that is ${plain}) and ${v.reason}`) : v
}

/** A JSON number a double cannot hold exactly, from its text as written (./json.ts): exact, under the same rules as decimalFromNumber. */
export function decimalFromNumberText(t: string, options: DecimalOptions): string | Fail {
  if (t.includes('e') || t.includes('E')) return new Fail('UNPARSEABLE_AMOUNT', 'is a JSON number in exponent form, which cannot be trusted to be exact (send amounts as strings)')
  return parseDecimal(t, {...options, decimalSeparator: '.'})
}
