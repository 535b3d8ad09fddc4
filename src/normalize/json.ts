/**
 * JSON values of records, parsed without losing a digit of their numbers.
 *
 * `JSON.parse` turns every number into a double first: `{"amt": 1234567890123456.7}` reads as
 * 1234567890123456.8, `{"acct": 40817810099910004312}` (a 20-digit account number) as
 * 40817810099910000000, and `0.30000000000000001` as 0.3, with nothing left to tell. A number
 * of at most 15 significant digits and an exponent of at most two digits always survives the
 * double exactly (its shortest form is itself: 1e-114 to 1e114 is well inside the normal range),
 * so only values holding a number token of 16 digits or more, or one whose exponent has three
 * digits, need care (`1e-400` is 0 to JSON.parse: an amount of "0.00", and `2.5e-324` is 5e-324):
 *
 *   1. JSON.parse (native, fast; it also rejects what is not JSON);
 *   2. when the value holds a number at all (a walk of the parsed value, ~0.05 µs; legacy
 *      records mostly send amounts as strings) and the text a run of 16 digits or a three-digit
 *      exponent (a regex, ~0.5 µs), a scan of the text for such a number outside strings (card
 *      numbers sent as strings are not numbers);
 *   3. only then the value is parsed again with lossless-json, and each number a double cannot
 *      hold exactly becomes a `JsonNumberText` carrying the number as written.
 *
 * A number the double holds but not as written (`12.500` is 12.5 to JSON.parse, `1.0` is 1) takes
 * the same second parse when the text hints at one (REWRITTEN_HINT, then a scan outside strings),
 * and becomes a `JsonNumberText` with its value: a string field keeps "12.500" as sent (a pg:
 * numeric(14,3) column backfilled as a JSON number feeds both a decimal and a string field).
 *
 * The normalizer reads a `JsonNumberText` from its text: exactly, for decimal and string fields
 * (src/normalize/record.ts); one the double holds, as that number, except for string fields. JSON.stringify writes it as a JSON string of its text (exact, though
 * no longer a number), as `String()` gives its text.
 */
import {isSafeNumber, parse as parseLossless} from 'lossless-json'

/**
 * A JSON number as written in the value, where its text says more than the double `JSON.parse`
 * gives: one a double cannot hold exactly (`number` undefined), or one it holds but whose text is
 * not the double's shortest form (`12.500`, `1.0`, `1E2`, `0.0000001`, `-0`; `number` is its
 * value). A string field reads the text as written; other fields read `number` as they read any
 * JSON number (src/normalize/record.ts).
 */
export class JsonNumberText {
  constructor(
    readonly text: string,
    readonly number?: number,
  ) {}
  toString(): string {
    return this.text
  }
  toJSON(): string {
    return this.text
  }
}

/**
 * Sixteen digits in a row (a decimal point allowed between them), or an exponent of three digits
 * or more: a number that may not survive a double (too many digits; an underflow to 0, an
 * overflow to Infinity, a subnormal's lost digits).
 */
const LONG_DIGITS = /\d(?:\.?\d){15}|[eE][+-]?\d{3}/

/**
 * Whether a number token that a double may not hold exactly stands outside the strings of the JSON
 * text: one of 16 digits or more, or one with an exponent of three digits or more (`1e-400`).
 */
export function hasLongNumber(text: string): boolean {
  let digits = 0
  /** -1 outside an exponent; else the digits of the exponent read so far */
  let exponent = -1
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      // a string: skip to its closing quote, escapes included
      digits = 0
      exponent = -1
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i)
        if (s === 0x5c) i++
        else if (s === 0x22) break
      }
    } else if (c >= 0x30 && c <= 0x39) {
      if (exponent >= 0) {
        if (++exponent >= 3) return true
      } else if (++digits >= 16) return true
    } else if ((c === 0x65 || c === 0x45) && digits > 0) {
      // e / E after a number's digits (outside strings, digits only stand in numbers)
      digits = 0
      exponent = 0
    } else if ((c === 0x2b || c === 0x2d) && exponent === 0) {
      // the exponent's sign
    } else if (c !== 0x2e || exponent >= 0) {
      digits = 0
      exponent = -1
    }
  }
  return false
}

/**
 * Walks a parsed JSON value: how many object members it holds at every depth (the return), and
 * whether it holds a number anywhere (`sawNumber`). By recursion (no allocation: it runs for
 * every record), and below MAX_RECURSION levels by a loop (walkDeep), since JSON.parse takes
 * values nested far deeper than the stack would.
 */
let sawNumber = false

function walk(v: unknown, depth = 0): number {
  if (typeof v === 'number') {
    sawNumber = true
    return 0
  }
  if (v === null || typeof v !== 'object') return 0
  if (depth >= MAX_RECURSION) return walkDeep(v)
  let members = 0
  if (Array.isArray(v)) {
    for (const x of v) members += walk(x, depth + 1)
    return members
  }
  for (const k in v) members += 1 + walk((v as Record<string, unknown>)[k], depth + 1)
  return members
}

const MAX_RECURSION = 500

function walkDeep(value: unknown): number {
  const pending: unknown[] = [value]
  let members = 0
  while (pending.length > 0) {
    const v = pending.pop()
    if (typeof v === 'number') sawNumber = true
    if (v === null || typeof v !== 'object') continue
    if (Array.isArray(v)) for (const x of v) pending.push(x)
    else
      for (const k in v) {
        members++
        pending.push((v as Record<string, unknown>)[k])
      }
  }
  return members
}

/** What parseJsonExact throws for JSON text it read but whose value cannot be used as it stands (the subclasses). */
export class UnusableJsonError extends SyntaxError {}

/** What parseJsonExact throws for a member name given twice (lossless-json refuses it; JSON.parse keeps the last). */
export class RepeatedMemberError extends UnusableJsonError {}

/**
 * What parseJsonExact throws for a string holding a lone UTF-16 surrogate: a `\ud800` escape
 * without its pair is legal JSON but not Unicode text. Written to PostgreSQL (UTF-8) it would be
 * U+FFFD, a silent change of the value, and two such keys would be one key there and two here.
 * Bytes that are not UTF-8 are refused the same way (decodeBytes).
 */
export class LoneSurrogateError extends UnusableJsonError {}

/** A `\uD800`-`\uDFFF` escape in JSON text: only such an escape can give a lone surrogate (the text itself is decoded strictly). */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/
/** A lone UTF-16 surrogate: a high one without a low one after it, or a low one without a high one before it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** The top-level member (or "a value") whose name or text holds a lone surrogate, and that code unit; undefined when none does. */
function loneSurrogate(value: unknown): {where: string; unit: number} | undefined {
  const pending: {v: unknown; where: string}[] = [{v: value, where: 'a value'}]
  while (pending.length > 0) {
    const {v, where} = pending.pop()!
    if (typeof v === 'string') {
      const m = LONE_SURROGATE.exec(v)
      if (m) return {where, unit: m[0].charCodeAt(0)}
    } else if (Array.isArray(v)) for (const x of v) pending.push({v: x, where})
    else if (v !== null && typeof v === 'object')
      for (const k in v) {
        const at = where === 'a value' && v === value ? `member "${k}"` : where
        pending.push({v: k, where: at}, {v: (v as Record<string, unknown>)[k], where: at})
      }
  }
  return undefined
}

const exactNumber = (s: string): unknown => {
  if (!isSafeNumber(s)) return new JsonNumberText(s)
  const n = Number(s)
  return String(n) === s ? n : new JsonNumberText(s, n)
}

/**
 * A number token a double holds but that may not be written in its shortest form, followed by
 * what ends a number in JSON: a fraction ending in 0 (`12.500`), an exponent, `-0`, six zeros after
 * the point (below 1e-6 the shortest form is an exponent). Strings hold such text too (`"10.50"`),
 * but there a quote follows; a hit is only a hint for rewrittenNumber's scan.
 */
const REWRITTEN_HINT = /(?:\d\.\d*0|\d[eE][+-]?\d+|-0|\.000000\d*)(?:[\s,\]}]|$)/

/**
 * Whether a number token outside the strings of the JSON text is not the shortest form of its
 * double (`String(Number(token)) !== token`): its text would be lost to a string field.
 */
export function hasRewrittenNumber(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      i = stringEnd(text, i)
    } else if ((c >= 0x30 && c <= 0x39) || c === 0x2d) {
      let end = i + 1
      for (; end < text.length; end++) {
        const d = text.charCodeAt(end)
        if (!((d >= 0x30 && d <= 0x39) || d === 0x2e || d === 0x65 || d === 0x45 || d === 0x2b || d === 0x2d)) break
      }
      const token = text.slice(i, end)
      if (String(Number(token)) !== token) return true
      i = end - 1
    }
  }
  return false
}

/** The index of the quote closing the JSON string that opens at `i`. */
function stringEnd(text: string, i: number): number {
  let end = text.indexOf('"', i + 1)
  for (;;) {
    let slashes = 0
    while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++
    if (slashes % 2 === 0) return end
    end = text.indexOf('"', end + 1)
  }
}

/** Whether a colon follows position `k` (after JSON whitespace): the string before it is a member name. */
function colonAt(text: string, k: number): boolean {
  while (k < text.length && (text.charCodeAt(k) === 0x20 || text.charCodeAt(k) === 0x0a || text.charCodeAt(k) === 0x0d || text.charCodeAt(k) === 0x09)) k++
  return text.charCodeAt(k) === 0x3a
}

/**
 * How many member names `text` (valid JSON that JSON.parse has read) gives, in objects at every
 * depth: a string followed by a colon is always one. Strings are skipped by indexOf, so the loop
 * touches only the characters between them (a flat record of ~300 bytes: a few dozen).
 */
function memberCount(text: string): number {
  let count = 0
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) !== 0x22) continue
    const end = stringEnd(text, i)
    if (colonAt(text, end + 1)) count++
    i = end
  }
  return count
}

/** The first member name that an object of `text` gives twice, with the path of that object ("" for the top level). */
function repeatedMember(text: string): {name: string; path: string} | undefined {
  // one frame per open object or array: the names seen in it (objects), the name or index it stands at
  const frames: {names: Set<string> | null; at: string; index: number}[] = []
  let lastName = ''
  const path = () =>
    frames
      .slice(1)
      .map((f) => f.at)
      .join('')
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      const end = stringEnd(text, i)
      const top = frames[frames.length - 1]
      if (top?.names && colonAt(text, end + 1)) {
        const name = JSON.parse(text.slice(i, end + 1)) as string
        if (top.names.has(name)) return {name, path: path()}
        top.names.add(name)
        lastName = name
      }
      i = end
    } else if (c === 0x7b || c === 0x5b) {
      const parent = frames[frames.length - 1]
      const at = parent === undefined ? '' : parent.names ? `${frames.length > 1 ? '.' : ''}${lastName}` : `[${parent.index}]`
      frames.push({names: c === 0x7b ? new Set() : null, at, index: 0})
    } else if (c === 0x7d || c === 0x5d) frames.pop()
    else if (c === 0x2c) {
      const top = frames[frames.length - 1]
      if (top && !top.names) top.index++
    }
  }
  return undefined
}

/**
 * `JSON.parse(text)`, except that numbers a double cannot hold exactly are kept as JsonNumberText,
 * and that a member name given twice in one object, at any depth, is a RepeatedMemberError (JSON.parse
 * would keep the last: `"amt":"1.00","amt":"2.00"` is not an amount anyone can vouch for), and a
 * string holding a lone surrogate a LoneSurrogateError (both UnusableJsonError).
 * Throws what JSON.parse throws.
 */
export function parseJsonExact(text: string): unknown {
  const value: unknown = JSON.parse(text)
  sawNumber = false
  const members = walk(value)
  if (members !== 0 && memberCount(text) !== members) {
    const repeated = repeatedMember(text)
    throw new RepeatedMemberError(`the member name "${repeated?.name}" is given twice${repeated?.path ? ` (in ${repeated.path})` : ''}`)
  }
  if (text.includes('\\u') && SURROGATE_ESCAPE.test(text)) {
    const lone = loneSurrogate(value)
    if (lone) throw new LoneSurrogateError(`${lone.where} holds a lone UTF-16 surrogate (\\u${lone.unit.toString(16)} without its pair): not Unicode text (PostgreSQL would store U+FFFD in its place)`)
  }
  if (!sawNumber) return value
  if (!(LONG_DIGITS.test(text) && hasLongNumber(text)) && !(REWRITTEN_HINT.test(text) && hasRewrittenNumber(text))) return value
  try {
    return parseLossless(text, null, exactNumber)
  } catch (e) {
    // lossless-json refuses a member name given twice with different values (JSON.parse keeps the last)
    throw new RepeatedMemberError(`a member name is repeated in a value holding a number a double may not hold exactly (${(e as Error).message})`)
  }
}
