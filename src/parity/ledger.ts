/**
 * The parity ledger, `cutover.parity_runs` (migration 3): one row per check, read back by
 * `parity report`. Sources are stored as given (URIs carry no secrets: DATABASE_URL is not a
 * part of them).
 */
import {describeDatabaseUrl} from '../config/env.js'
import {UsageError} from '../errors.js'
import type {Pool} from '../pg/pool.js'
import type {ParityCheckResult} from './types.js'

export interface LedgerEntry {
  date: string | null
  left: string
  right: string
  options: Record<string, unknown>
  result: ParityCheckResult
  reportSha256: string
  reportPath: string | null
  runBy: string
  startedAt: Date
}

export async function recordRun(pool: Pool, e: LedgerEntry): Promise<number> {
  const r = e.result
  const q = await pool.query<{id: string}>(
    `INSERT INTO cutover.parity_runs (business_date, left_source, right_source, options, strategy, left_rows, right_rows,
       matched, mismatched, missing_in_right, extra_in_right, duplicate_keys_left, duplicate_keys_right, explained, unexplained,
       parity_pct, left_digest, right_digest, report_sha256, report_path, result, run_by, started_at)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23) RETURNING id`,
    [
      e.date,
      e.left,
      e.right,
      JSON.stringify(e.options),
      r.strategy,
      r.left_rows,
      r.right_rows,
      r.matched,
      r.mismatched,
      r.missing_in_right,
      r.extra_in_right,
      r.duplicate_keys_left,
      r.duplicate_keys_right,
      r.explained,
      r.unexplained,
      r.parity_pct.toFixed(4),
      r.digests.left,
      r.digests.right,
      e.reportSha256,
      e.reportPath,
      JSON.stringify(r),
      e.runBy,
      e.startedAt,
    ],
  )
  return Number(q.rows[0]!.id)
}

/**
 * For readers of the ledger (`parity report`): throws a UsageError (exit 2) when the database
 * holds no ledger, instead of creating one. A report pointed at the wrong database (the legacy
 * one, or a mistyped name) must say so, not create cutover's tables there and report every
 * day as "no check".
 */
export async function assertLedger(pool: Pool, databaseUrl: string): Promise<void> {
  const q = await pool.query<{t: string | null}>(`SELECT to_regclass('cutover.parity_runs')::text AS t`)
  if (q.rows[0]?.t) return
  throw new UsageError(`no parity ledger in the database ${describeDatabaseUrl(databaseUrl)}: the table cutover.parity_runs does not exist`, {
    hint: 'point DATABASE_URL at the database that cutover parity check records its runs in (a run creates the ledger)',
  })
}

/** The counts a run stores, as the check returned them. */
type StoredCounts = Pick<
  ParityCheckResult,
  'left_rows' | 'right_rows' | 'matched' | 'mismatched' | 'missing_in_right' | 'extra_in_right' | 'duplicate_keys_left' | 'duplicate_keys_right' | 'explained' | 'unexplained' | 'digests' | 'columns'
>

export interface LedgerRun extends StoredCounts {
  id: number
  /** key columns (left names), as the check was given them */
  key_columns: string[]
  /** --date-column (left name), or null */
  date_column: string | null
  /** --tolerance as given: column -> tolerance */
  tolerances: Record<string, string>
  /** --rules file, or null */
  rules_file: string | null
  /**
   * How the check was told to read the values it compared (--map, --type, --normalize,
   * --null-equals-empty, --spec): not part of what makes two runs the same comparison, but what
   * an auditor must see of the run that decided a day. Optional for runs built by hand; read
   * back from the ledger it is always there (empty when the check was given none).
   */
  comparison_options?: ComparisonOptions
  /** keys explained per rule name */
  rules: Record<string, number>
  /** records that could not be read, per side (0 for runs recorded before this was counted) */
  unreadable: {left: number; right: number}
  date: string | null
  left: string
  right: string
  /** as stored (text) */
  strategy: string
  /** exact, as stored (numeric(9,4)) */
  parity_pct: string
  report_sha256: string
  report_path: string | null
  run_by: string
  started_at: string
  finished_at: string
}

/** The options of a run that change how values compare, as given to `parity check`. */
export interface ComparisonOptions {
  /** --map: left column -> right column */
  map: Record<string, string>
  /** --type: column -> type */
  types: Record<string, string>
  /** --normalize: column (or *) -> trim,lower,nfc */
  normalize: Record<string, string>
  /** --null-equals-empty: columns (or *) */
  null_equals_empty: string[]
  /** --spec: the pipeline spec whose fields typed the columns, or null */
  spec_file: string | null
}

/** Runs filed under business days from `since` (inclusive), oldest first; runs without a date use their start day. */
export async function readRuns(pool: Pool, since: string, until?: string): Promise<LedgerRun[]> {
  const q = await pool.query(
    `SELECT id, to_char(coalesce(business_date, (started_at AT TIME ZONE 'UTC')::date), 'YYYY-MM-DD') AS day,
            left_source, right_source, strategy, left_rows, right_rows, matched, mismatched, missing_in_right, extra_in_right,
            duplicate_keys_left, duplicate_keys_right, explained, unexplained, parity_pct::text AS parity_pct,
            left_digest, right_digest, report_sha256, report_path, run_by,
            to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS started_at,
            to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS finished_at,
            result->'columns' AS columns, result->'rules' AS rules, result->'unreadable' AS unreadable, options
       FROM cutover.parity_runs
      WHERE coalesce(business_date, (started_at AT TIME ZONE 'UTC')::date) >= $1::date
        AND ($2::date IS NULL OR coalesce(business_date, (started_at AT TIME ZONE 'UTC')::date) <= $2::date)
      ORDER BY day, id`,
    [since, until ?? null],
  )
  return q.rows.map((r: Record<string, unknown>) => ({
    id: Number(r.id),
    date: r.day as string,
    left: r.left_source as string,
    right: r.right_source as string,
    strategy: r.strategy as string,
    left_rows: Number(r.left_rows),
    right_rows: Number(r.right_rows),
    matched: Number(r.matched),
    mismatched: Number(r.mismatched),
    missing_in_right: Number(r.missing_in_right),
    extra_in_right: Number(r.extra_in_right),
    duplicate_keys_left: Number(r.duplicate_keys_left),
    duplicate_keys_right: Number(r.duplicate_keys_right),
    explained: Number(r.explained),
    unexplained: Number(r.unexplained),
    parity_pct: r.parity_pct as string,
    digests: {left: r.left_digest as string, right: r.right_digest as string},
    report_sha256: r.report_sha256 as string,
    report_path: (r.report_path as string | null) ?? null,
    run_by: r.run_by as string,
    started_at: r.started_at as string,
    finished_at: r.finished_at as string,
    columns: (r.columns ?? {}) as ParityCheckResult['columns'],
    ...runOptions((r.options ?? {}) as Record<string, unknown>),
    rules: (r.rules ?? {}) as Record<string, number>,
    unreadable: {left: Number((r.unreadable as {left?: unknown} | null)?.left ?? 0), right: Number((r.unreadable as {right?: unknown} | null)?.right ?? 0)},
  }))
}

/** What a run's stored options (the check's flags but left and right) say about the comparison. */
function runOptions(o: Record<string, unknown>): Pick<LedgerRun, 'key_columns' | 'date_column' | 'tolerances' | 'rules_file' | 'comparison_options'> {
  const texts = (v: unknown): Record<string, string> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)])) : {})
  return {
    key_columns: Array.isArray(o.key) ? o.key.map(String) : [],
    date_column: typeof o.dateColumn === 'string' ? o.dateColumn : null,
    tolerances: texts(o.tolerance),
    rules_file: typeof o.rulesFile === 'string' ? o.rulesFile : null,
    comparison_options: {
      map: texts(o.map),
      types: texts(o.types),
      normalize: texts(o.normalize),
      null_equals_empty: Array.isArray(o.nullEqualsEmpty) ? o.nullEqualsEmpty.map(String) : [],
      spec_file: typeof o.specFile === 'string' ? o.specFile : null,
    },
  }
}
