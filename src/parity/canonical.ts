/**
 * The canonical line of a row, the unit of the merge strategy's digests and of what the reader
 * threads send (./side-worker.ts): every key part and value as `<length>:<text>` (null `-`),
 * key parts, then `|`, then the values, then a newline; and the index the merge reads them
 * by (FlatBatch).
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

/**
 * A batch of rows as their canonical lines, with each field's place in the text: for row i and
 * field f (key parts first, then values), `offs[2 * (i * fields + f)]` is the start and the
 * next entry the end, both -1 for a null. The merge compares in place: no object, array or
 * string per row unless the row differs (or ends a batch, or has a duplicate key).
 */
export interface FlatBatch {
  text: string
  rows: number
  offs: Int32Array
}

/** Field places of canonical lines (canonicalRow), without a string per field. */
export function indexCanonical(text: string, nk: number, nv: number): FlatBatch {
  const nf = nk + nv
  let offs = new Int32Array(256 * nf * 2)
  const n = text.length
  let p = 0
  let o = 0
  let rows = 0
  while (p < n) {
    if (o + nf * 2 > offs.length) {
      const grown = new Int32Array(offs.length * 2)
      grown.set(offs)
      offs = grown
    }
    for (let f = 0; f < nf; f++) {
      if (f === nk) p++ // '|'
      if (f >= nk && text.charCodeAt(p) === 45) {
        // '-': null
        offs[o++] = -1
        offs[o++] = -1
        p++
        continue
      }
      let len = 0
      for (;;) {
        const c = text.charCodeAt(p++)
        if (c === 58 || p > n) break // ':'
        len = len * 10 + (c - 48)
      }
      offs[o++] = p
      offs[o++] = p + len
      p += len
    }
    if (nf === nk) p++ // '|' of a row without values
    p++ // '\n'
    rows++
  }
  return {text, rows, offs}
}
