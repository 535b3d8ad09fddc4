/**
 * "Did you mean": the known word nearest to a typo. A module of its own, without zod or yaml, so
 * that the source URI parser (legacy-adapters/uri.ts, loaded by the reader threads of normalize
 * and backfill) can use it without loading the spec parser; src/config/spec.ts re-exports it.
 */

/**
 * Edit distance with adjacent transpositions (optimal string alignment): `kye` is one edit from
 * `key`, as `scal` is from `scale`: swapped letters are the commonest typo.
 */
export function editDistance(a: string, b: string): number {
  let before: number[] = [] // row i-2
  let prev = Array.from({length: b.length + 1}, (_, j) => j) // row i-1
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1)
      cur.push(d)
    }
    before = prev
    prev = cur
  }
  return prev[b.length]!
}

/** The one of `candidates` nearest to `word` (edit distance), if close enough to be a typo of it. */
export function nearestWord(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestD = Infinity
  for (const a of candidates) {
    const dd = editDistance(word, a)
    if (dd < bestD) [best, bestD] = [a, dd]
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined
}
