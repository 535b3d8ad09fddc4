/**
 * The canonical line of a row, the unit of the merge strategy's digests and of what the reader
 * threads send (./side-worker.ts): every key part and value as `<length>:<text>` (null `-`),
 * key parts, then `|`, then the values, then a newline.
 */
import type {KeyedRow} from './types.js'

/** The canonical line of a row: every key part and value as `<length>:<text>` (null `-`), then a newline. */
export function canonicalRow(r: KeyedRow): string {
  let line = ''
  for (const k of r.key) line += k.length + ':' + k
  line += '|'
  for (const v of r.values) line += v === null ? '-' : v.length + ':' + v
  return line + '\n'
}
