/**
 * The result of `cutover parity check` (`--json` prints exactly this) and the row shape the
 * strategies feed into the pure core (./compare.ts).
 *
 * Counting (every key in the union of both sides falls in exactly one bucket):
 *   matched          present once on each side, every compared column equal (within tolerance)
 *   mismatched       present once on each side, at least one column different
 *   missing_in_right present on the left (legacy) only
 *   extra_in_right   present on the right (streaming) only
 *   duplicate key    present more than once on at least one side (never collapsed):
 *                    counted in duplicate_keys_left and/or duplicate_keys_right; one that
 *                    the other side lacks altogether is missing_in_right (extra_in_right)
 *                    as well, a difference a rule must explain too (the key counts once in
 *                    the union)
 * Differences (mismatched, missing, extra, duplicate keys) are then `explained` when every
 * difference of that key is covered by a known-difference rule, `unexplained` otherwise.
 *
 * Records a side's reader could not read (a broken CSV line, a business day that cannot be
 * read under --date) are counted per side in `unreadable` (present when there are any), and each one is an unexplained
 * difference: nobody can say whether the other side has it.
 *
 *   parity_pct = (matched + explained) / (|union of keys| + unreadable) x 100
 *
 * A check that compared nothing (both sides empty, e.g. a --date with no data) has
 * parity_pct 100 and `empty: true`: it proves nothing, fails --fail-under and --strict, and
 * `parity report` counts its day as "no data", never as a pass.
 */

export type DifferenceKind = 'mismatch' | 'missing_in_right' | 'extra_in_right' | 'duplicate_left' | 'duplicate_right'
export const DIFFERENCE_KINDS: readonly DifferenceKind[] = ['mismatch', 'missing_in_right', 'extra_in_right', 'duplicate_left', 'duplicate_right']

export type Strategy = 'merge' | 'sql-pushdown' | 'bisect'

export interface ParitySample {
  /** key column (left name) -> value */
  key: Record<string, string | null>
  kind: DifferenceKind
  /** the differing column (mismatch) or null */
  column: string | null
  /** the left value as read (mismatch: the column; missing: the row as {col: value}) */
  left: unknown
  right: unknown
  /** `rule <name>: <reason>` when a rule explains it; a root cause (`in DLQ: ...`) with --spec; else null */
  explanation: string | null
  /**
   * a mismatch of a decimal/integer column whose value on this side (or both) is not a number of
   * the column's type (`12,5O`, `n/a`): the values were compared as text. Absent otherwise.
   */
  unreadable?: 'left' | 'right' | 'both'
  /** with `unreadable`: why, in words (`not read as decimal, compared as text: left value is not a number (...)`) */
  unreadable_reason?: string
}

export interface ColumnStats {
  /** rows whose value of this column differs beyond tolerance (explained or not) */
  mismatches: number
  /** of those, explained by a rule */
  explained: number
  /** the largest |left - right| among the mismatches (decimal string; seconds for timestamps); null when none or not numeric */
  max_abs_diff: string | null
}

export interface ParityCheckResult {
  left_rows: number
  right_rows: number
  matched: number
  mismatched: number
  missing_in_right: number
  extra_in_right: number
  duplicate_keys_left: number
  duplicate_keys_right: number
  explained: number
  unexplained: number
  parity_pct: number
  /** true when no row was compared and none was unreadable (both sides empty): no evidence of parity */
  empty?: true
  /** records that could not be read, per side (counted in unexplained); present when there are any */
  unreadable?: {left: number; right: number}
  /** the compared columns (left names): --columns, else every column both sides have (after --map) */
  columns: Record<string, ColumnStats>
  /**
   * without --columns: the columns of each side (its own names) that have no column of that name
   * on the other side (after --map), so were not compared; present only when there are any
   */
  not_compared?: {left: string[]; right: string[]}
  /**
   * with --spec: the string columns (left names) whose values were normalized as the spec's
   * field says before comparing (`trim`, `empty_as_null`), as the pipeline normalizes them;
   * present only when there are any
   */
  spec_normalized?: Record<string, string[]>
  samples: ParitySample[]
  /** SHA-256 (hex) over the canonical rows of each input in key order */
  digests: {left: string; right: string}
  strategy: Strategy
  elapsed_ms: number
  /** keys explained per rule name: a key whose differences were all explained counts once for each rule that explained one of them */
  rules: Record<string, number>
  /** with --spec: keys missing on the right per root cause (`in DLQ: REQUIRED_FIELD_EMPTY`, `late`, `duplicate dropped`, `not seen by the stream`) */
  root_causes?: Record<string, number>
  /** the business day this run is filed under (--date), or null */
  date: string | null
  /** the ledger row id, when the run was recorded */
  run_id?: number
  /** report file written (--out) and its SHA-256 */
  report?: {path: string; sha256: string}
}

/** One side of one key as the strategies hand it to the core: the raw values of the compared columns, in column order. */
export type RowValues = (string | null)[]

export interface KeyedRow {
  /** key values (after key normalization: trimmed text; null as "") */
  key: string[]
  values: RowValues
}
