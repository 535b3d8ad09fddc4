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

/**
 * How a dedupe key made of the fields `by` (one field's value as text, several as a JSON array)
 * is shown in a message: with the values of the `sensitive` ones masked. undefined when none of
 * them is sensitive: the key is shown as it is. The stream's dedupe stage and `normalize` share it.
 */
export function maskedKeyOf(by: readonly string[], fields: Readonly<Record<string, {sensitive?: boolean} | undefined>>): ((record: Readonly<Record<string, unknown>>) => string) | undefined {
  if (!by.some((f) => fields[f]?.sensitive)) return undefined
  return (record) => {
    const parts = by.map((f) => (fields[f]?.sensitive ? maskValue(String(record[f] ?? '')) : (record[f] ?? null)))
    return by.length === 1 ? String(parts[0]) : JSON.stringify(parts)
  }
}

/**
 * The first of `fields` that has no value in `record` (null, absent or ""), or undefined: the
 * dedupe of `normalize` and `pipeline test` refuse such a record, as the stream's validate stage
 * does (runtime/stages/validate.ts, which checks each key field for a NUL character as it goes).
 */
export function fieldWithoutValue(fields: readonly string[], record: Readonly<Record<string, unknown>>): string | undefined {
  for (const f of fields) {
    const v = record[f]
    if (v === null || v === undefined || v === '') return f
  }
  return undefined
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
