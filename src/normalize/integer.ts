/**
 * Integers, exact and bigint-safe, as decimal strings ("42", "-1234567890123").
 *
 * Accepted: an optional sign (+, -, U+2212), digits, optionally grouped by spaces or
 * apostrophes in groups of 3 ("1 234 567", "1'234"). Not accepted: "." or "," (in an
 * integer field "1.234" may be a mistaken decimal or a grouped integer: never guessed),
 * a fractional part, exponents. Range: int64 (PostgreSQL bigint); beyond it, or anything
 * else, is SCHEMA_VIOLATION. JSON numbers are accepted when they are safe integers.
 */
import {Fail} from './fail.js'

const INT = /^[+\-\u2212]?(\d{1,3}(?:([ \u00a0\u202f\u2009'\u2019])\d{3}(?:\2\d{3})*)?|\d+)$/
const MAX = '9223372036854775807'

export function parseInteger(text: string): string | Fail {
  const s = text.trim()
  if (!INT.test(s)) return new Fail('SCHEMA_VIOLATION', 'is not an integer')
  let i = 0
  let negative = false
  const c = s.charCodeAt(0)
  if (c === 43 || c === 45 || c === 0x2212) {
    negative = c !== 43
    i = 1
  }
  let digits = ''
  for (; i < s.length; i++) {
    const d = s.charCodeAt(i)
    if (d >= 48 && d <= 57) digits += s[i]
  }
  let z = 0
  while (z < digits.length - 1 && digits.charCodeAt(z) === 48) z++
  if (z > 0) digits = digits.slice(z)
  const limit = negative ? '9223372036854775808' : MAX
  if (digits.length > limit.length || (digits.length === limit.length && digits > limit)) {
    return new Fail('SCHEMA_VIOLATION', 'is out of the 64-bit integer range')
  }
  return negative && digits !== '0' ? '-' + digits : digits
}

export function integerFromNumber(n: number): string | Fail {
  if (!Number.isSafeInteger(n)) {
    return new Fail('SCHEMA_VIOLATION', Number.isInteger(n) ? 'is a JSON number too large to be exact (send it as a string)' : 'is not an integer')
  }
  return String(n === 0 ? 0 : n)
}
