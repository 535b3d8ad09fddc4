/**
 * JSON values of records, parsed without losing a digit of their numbers.
 *
 * `JSON.parse` turns every number into a double first: `{"amt": 1234567890123456.7}` reads as
 * 1234567890123456.8, `{"acct": 40817810099910004312}` (a 20-digit account number) as
 * 40817810099910000000, and `0.30000000000000001` as 0.3, with nothing left to tell. A number
 * of at most 15 significant digits always survives the double exactly (its shortest form is
 * itself), so only values holding a number token of 16 digits or more need care:
 *
 *   1. JSON.parse (native, fast; it also rejects what is not JSON);
 *   2. when the value holds a number at all (a walk of the parsed value, ~0.05 µs; legacy
 *      records mostly send amounts as strings) and the text a run of 16 digits (a regex,
 *      ~0.5 µs), a scan of the text for such a run outside strings (card numbers sent as strings
 *      are not numbers);
 *   3. only then the value is parsed again with lossless-json, and each number a double cannot
 *      hold exactly becomes a `JsonNumberText` carrying the number as written.
 *
 * The normalizer reads a `JsonNumberText` from its text: exactly, for decimal and string fields
 * (src/normalize/record.ts). JSON.stringify writes it as a JSON string of its text (exact, though
 * no longer a number), as `String()` gives its text.
 */
import {isSafeNumber, parse as parseLossless} from 'lossless-json'

/** A JSON number that a double cannot hold exactly, as written in the value. */
export class JsonNumberText {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text
  }
  toJSON(): string {
    return this.text
  }
}

/** Sixteen digits in a row, a decimal point allowed between them: a number that may not survive a double. */
const LONG_DIGITS = /\d(?:\.?\d){15}/

/** Whether a number token of 16 digits or more stands outside the strings of the JSON text. */
export function hasLongNumber(text: string): boolean {
  let digits = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      // a string: skip to its closing quote, escapes included
      digits = 0
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i)
        if (s === 0x5c) i++
        else if (s === 0x22) break
      }
    } else if (c >= 0x30 && c <= 0x39) {
      if (++digits >= 16) return true
    } else if (c !== 0x2e) {
      digits = 0
    }
  }
  return false
}

/**
 * Whether a parsed JSON value holds a number anywhere: by recursion (no allocation: it runs for
 * every record), and below MAX_RECURSION levels by a loop (holdsNumberDeep), since JSON.parse
 * takes values nested far deeper than the stack would.
 */
function holdsNumber(v: unknown, depth = 0): boolean {
  if (typeof v === 'number') return true
  if (v === null || typeof v !== 'object') return false
  if (depth >= MAX_RECURSION) return holdsNumberDeep(v)
  if (Array.isArray(v)) {
    for (const x of v) if (holdsNumber(x, depth + 1)) return true
    return false
  }
  for (const k in v) if (holdsNumber((v as Record<string, unknown>)[k], depth + 1)) return true
  return false
}

const MAX_RECURSION = 500

function holdsNumberDeep(value: unknown): boolean {
  const pending: unknown[] = [value]
  while (pending.length > 0) {
    const v = pending.pop()
    if (typeof v === 'number') return true
    if (v === null || typeof v !== 'object') continue
    if (Array.isArray(v)) for (const x of v) pending.push(x)
    else for (const k in v) pending.push((v as Record<string, unknown>)[k])
  }
  return false
}

/** What parseJsonExact throws for a member name given twice (lossless-json refuses it; JSON.parse keeps the last). */
export class RepeatedMemberError extends SyntaxError {}

const exactNumber = (s: string): unknown => (isSafeNumber(s) ? Number(s) : new JsonNumberText(s))

/**
 * The member names of the top-level object of `text`, valid JSON that JSON.parse has read: how
 * many there are (and, with `names`, which). Strings are skipped by indexOf, so the loop touches
 * only the characters between them (a flat record of ~300 bytes: a few dozen).
 */
function topLevelMembers(text: string, names?: string[]): number {
  let depth = 0
  let count = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      let end = text.indexOf('"', i + 1)
      for (;;) {
        let slashes = 0
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++
        if (slashes % 2 === 0) break
        end = text.indexOf('"', end + 1)
      }
      if (depth === 1) {
        let k = end + 1
        while (k < text.length && (text.charCodeAt(k) === 0x20 || text.charCodeAt(k) === 0x0a || text.charCodeAt(k) === 0x0d || text.charCodeAt(k) === 0x09)) k++
        if (text.charCodeAt(k) === 0x3a) {
          count++
          names?.push(JSON.parse(text.slice(i, end + 1)) as string)
        }
      }
      i = end
    } else if (c === 0x7b || c === 0x5b) depth++
    else if (c === 0x7d || c === 0x5d) depth--
  }
  return count
}

/**
 * `JSON.parse(text)`, except that numbers a double cannot hold exactly are kept as JsonNumberText,
 * and that a member name given twice in the top-level object is a RepeatedMemberError (JSON.parse
 * would keep the last: `"amt":"1.00","amt":"2.00"` is not an amount anyone can vouch for).
 * Throws what JSON.parse throws.
 */
export function parseJsonExact(text: string): unknown {
  const value: unknown = JSON.parse(text)
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    let keys = 0
    for (const _ in value) keys++
    if (topLevelMembers(text) !== keys) {
      const names: string[] = []
      topLevelMembers(text, names)
      const repeated = names.find((n, i) => names.indexOf(n) !== i)
      throw new RepeatedMemberError(`the member name "${repeated}" is given twice`)
    }
  }
  if (!holdsNumber(value) || !LONG_DIGITS.test(text) || !hasLongNumber(text)) return value
  try {
    return parseLossless(text, null, exactNumber)
  } catch (e) {
    // lossless-json refuses a member name given twice with different values (JSON.parse keeps the last)
    throw new RepeatedMemberError(`a member name is repeated in a value holding a number of 16 or more digits (${(e as Error).message})`)
  }
}
