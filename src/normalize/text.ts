/**
 * Strings, and how values are shown: masking of sensitive values and the length of a value
 * in characters (code points, not UTF-16 units).
 */

/** "4111 1111 1111 1111" -> "4111********1111" (card-like: 12-19 digits); anything else -> "***". */
export function maskValue(text: string): string {
  const digits = text.replace(/[\s-]/g, '')
  if (/^\d{12,19}$/.test(digits)) return digits.slice(0, 4) + '*'.repeat(digits.length - 8) + digits.slice(-4)
  return '***'
}

/** The value as shown in a rejection: masked when sensitive, cut at 200 characters. */
export function showValue(text: string, sensitive: boolean): string {
  if (sensitive) return maskValue(text)
  return text.length > 200 ? text.slice(0, 200) + '…' : text
}

/** Length in characters (code points). */
export function charLength(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0xd800 || c > 0xdbff || i + 1 >= s.length) n++
    else {
      n++
      i++
    }
  }
  return n
}
