/**
 * PostgreSQL array literals for `unnest($1::<type>[], ...)`, built in one pass.
 *
 *   ['a', null, 'x"y']  ->  {"a",NULL,"x\"y"}
 *
 * node-postgres would serialize a JS array the same way, element by element through its
 * generic value preparation; this is the hot path of every sink (one call per column per batch),
 * and the values here are only strings, booleans and nulls (normalized values).
 */
export function pgArray(values: readonly (string | boolean | null | undefined)[]): string {
  // the common column: strings only, none with a quote or a backslash -> one join, no per-element strings
  let plain = true
  for (let i = 0; i < values.length && plain; i++) {
    const v = values[i]
    plain = typeof v === 'string' && !v.includes('"') && !v.includes('\\')
  }
  if (plain) return values.length === 0 ? '{}' : '{"' + (values as readonly string[]).join('","') + '"}'
  const parts = new Array<string>(values.length)
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (v === null || v === undefined) parts[i] = 'NULL'
    else if (typeof v === 'boolean') parts[i] = v ? 't' : 'f'
    else parts[i] = '"' + (v.includes('"') || v.includes('\\') ? v.replace(/[\\"]/g, '\\$&') : v) + '"'
  }
  return '{' + parts.join(',') + '}'
}
