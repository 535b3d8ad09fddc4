/**
 * SQL identifiers from specs and flags are always quoted, never interpolated raw: the one
 * helper every module uses (values go as parameters, never through here).
 */
export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"'
}
