/**
 * How a backfill keys a record, shared by the in-thread loop (./run.ts) and the file reader's
 * worker (./reader-worker.ts), so that both send the same key for the same record.
 */

/** The key of a record from its key field values: null when one is missing or empty. */
export function keyOf(values: unknown[]): string | null {
  if (values.length === 0 || values.some((v) => v === null || v === undefined || v === '')) return null
  return values.length === 1 ? String(values[0]) : JSON.stringify(values)
}

/** The key function for `keyFields` (the hot path, one field, builds no array per record). */
export function keyFunction(keyFields: string[]): (fields: Record<string, unknown>) => string | null {
  const single = keyFields.length === 1 ? keyFields[0]! : undefined
  if (single !== undefined) {
    return (fields) => {
      const v = fields[single]
      return v === null || v === undefined || v === '' ? null : typeof v === 'string' ? v : String(v)
    }
  }
  return (fields) => keyOf(keyFields.map((f) => fields[f]))
}
