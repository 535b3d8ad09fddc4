/**
 * The parity ledger, `cutover.parity_runs` (migration 3): one row per check, read back by
 * `parity report`. Sources are stored as given (URIs carry no secrets: DATABASE_URL is not a
 * part of them). Each row is hash-chained to the one before it (migration 10, recordRun,
 * chainProblems), so that `parity report` sees rows edited, added or deleted afterwards.
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

/**
 * The SHA-256 (hex) of a ledger row's content chained to `prev` (the row_hash of the row before
 * it in the chain, or NULL for the first), over the relation alias `p` holding the ledger's
 * columns: every column but the two hashes, each as fixed text (timestamps in UTC to the
 * microsecond, the date as yyyy-MM-dd, jsonb as PostgreSQL's canonical text), whatever the
 * session's TimeZone or DateStyle. recordRun writes it; `parity report` recomputes it from the
 * stored row (chainProblems).
 */
export function rowHashSql(p: string, prev: string): string {
  const ts = (c: string) => `to_char(${p}.${c} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
  const content = `jsonb_build_array(${p}.id, to_char(${p}.business_date, 'YYYY-MM-DD'), ${p}.left_source, ${p}.right_source, ${p}.options, ${p}.strategy,
    ${p}.left_rows, ${p}.right_rows, ${p}.matched, ${p}.mismatched, ${p}.missing_in_right, ${p}.extra_in_right, ${p}.duplicate_keys_left,
    ${p}.duplicate_keys_right, ${p}.explained, ${p}.unexplained, ${p}.parity_pct::text, ${p}.left_digest, ${p}.right_digest, ${p}.report_sha256,
    ${p}.report_path, ${p}.result, ${p}.run_by, ${ts('started_at')}, ${ts('finished_at')})::text`
  return `encode(sha256(convert_to(coalesce(${prev}, '') || ${content}, 'UTF8')), 'hex')`
}

/** The lock under which runs join the chain one at a time (two checks at once would both chain to the same row). */
const CHAIN_LOCK = "SELECT pg_advisory_xact_lock(hashtext('cutover.parity_runs'), hashtext('chain'))"

/**
 * `v` as JSON that PostgreSQL's jsonb takes: it refuses the escape \u0000 ("unsupported Unicode
 * escape sequence"), which a value holding a NUL character (a CSV or copybook field) is written
 * with, in a sample of the result: the run would fail after its whole comparison, unrecorded. Each
 * NUL is kept visible as U+2400 (SYMBOL FOR NULL); the report file keeps the value as it was.
 */
export function jsonbText(v: unknown): string {
  const text = JSON.stringify(v)
  // an escape \u0000 is preceded by an even number of backslashes (`\\u0000` is a backslash, then "u0000")
  return text.includes('\\u0000') ? text.replace(/(?<!\\)((?:\\\\)*)\\u0000/g, '$1\u2400') : text
}

/**
 * Records a run, chained to the newest chained row (rowHashSql), in one transaction under
 * CHAIN_LOCK. The values are cast to the columns' own types, so that the hash computed here
 * from them is the one `parity report` computes from the stored row.
 */
export async function recordRun(pool: Pool, e: LedgerEntry): Promise<number> {
  const r = e.result
  const client = await pool.connect()
  let open = false
  try {
    await client.query('BEGIN')
    open = true
    await client.query(CHAIN_LOCK)
    const q = await client.query<{id: string}>(
      `WITH v AS (
         SELECT nextval(pg_get_serial_sequence('cutover.parity_runs', 'id')) AS id, $1::date AS business_date, $2::text AS left_source,
                $3::text AS right_source, $4::jsonb AS options, $5::text AS strategy, $6::bigint AS left_rows, $7::bigint AS right_rows,
                $8::bigint AS matched, $9::bigint AS mismatched, $10::bigint AS missing_in_right, $11::bigint AS extra_in_right,
                $12::bigint AS duplicate_keys_left, $13::bigint AS duplicate_keys_right, $14::bigint AS explained, $15::bigint AS unexplained,
                $16::numeric(9, 4) AS parity_pct, $17::text AS left_digest, $18::text AS right_digest, $19::text AS report_sha256,
                $20::text AS report_path, $21::jsonb AS result, $22::text AS run_by, $23::timestamptz AS started_at, now() AS finished_at,
                (SELECT row_hash FROM cutover.parity_runs WHERE row_hash IS NOT NULL ORDER BY id DESC LIMIT 1) AS prev_hash
       )
       INSERT INTO cutover.parity_runs (id, business_date, left_source, right_source, options, strategy, left_rows, right_rows,
         matched, mismatched, missing_in_right, extra_in_right, duplicate_keys_left, duplicate_keys_right, explained, unexplained,
         parity_pct, left_digest, right_digest, report_sha256, report_path, result, run_by, started_at, finished_at, prev_hash, row_hash)
       SELECT v.id, v.business_date, v.left_source, v.right_source, v.options, v.strategy, v.left_rows, v.right_rows,
         v.matched, v.mismatched, v.missing_in_right, v.extra_in_right, v.duplicate_keys_left, v.duplicate_keys_right, v.explained, v.unexplained,
         v.parity_pct, v.left_digest, v.right_digest, v.report_sha256, v.report_path, v.result, v.run_by, v.started_at, v.finished_at, v.prev_hash,
         ${rowHashSql('v', 'v.prev_hash')}
       FROM v RETURNING id`,
      [
        e.date,
        e.left,
        e.right,
        jsonbText(e.options),
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
        jsonbText(r),
        e.runBy,
        e.startedAt,
      ],
    )
    await client.query('COMMIT')
    open = false
    return Number(q.rows[0]!.id)
  } finally {
    if (open) await client.query('ROLLBACK').catch(() => {})
    client.release()
  }
}

/** chainProblems' word for a chained row whose content no longer matches its hash. */
export const CHANGED_AFTER_RUN = 'changed after the run: its content no longer matches its hash'

/**
 * The day each of the runs `ids` is filed under now (its business date, else its start day in
 * UTC), as readRuns files it: run id -> yyyy-MM-dd.
 */
export async function filedDays(pool: Pool, ids: readonly number[]): Promise<Map<number, string>> {
  if (ids.length === 0) return new Map()
  const q = await pool.query<{id: string; day: string}>(
    `SELECT id, to_char(coalesce(business_date, (started_at AT TIME ZONE 'UTC')::date), 'YYYY-MM-DD') AS day FROM cutover.parity_runs WHERE id = ANY($1::bigint[]) ORDER BY id`,
    [ids.map(String)],
  )
  return new Map(q.rows.map((r) => [Number(r.id), r.day]))
}

/** What `parity report` found of the ledger's hash chain (chainProblems). */
export interface LedgerChain {
  /** rows recorded before the chain began (before migration 10): not verifiable */
  unchained_before: number
  /** chained rows whose hash and link were verified */
  verified: number
  /** the newest chained row: an auditor who keeps it can tell later that nothing up to it changed */
  head: {run: number; row_hash: string} | null
  /** run id -> what is wrong with its row (its content changed, or it is not in the chain) */
  rows: Map<number, string>
  /** rows missing from the chain (deleted): which day they were filed under cannot be known */
  gaps: string[]
}

/**
 * Verifies the ledger's hash chain, all of it (a deleted row may have been filed under any day):
 * each chained row's hash is computed again from its stored content (rowHashSql), and its link
 * must be the stored hash of the chained row before it. A row whose content changed is named
 * (its day blocks); a link to another hash than the row before means rows were deleted between
 * the two (or at the start); a row without a hash after the chain began was written outside
 * `parity check`. Each problem is reported once: the next row is checked against the hash
 * stored, not the one computed.
 */
export async function chainProblems(pool: Pool): Promise<LedgerChain> {
  const q = await pool.query<{id: string; prev_hash: string | null; row_hash: string | null; computed: string}>(
    `SELECT id, prev_hash, row_hash, ${rowHashSql('p', 'p.prev_hash')} AS computed FROM cutover.parity_runs p ORDER BY id`,
  )
  const chain: LedgerChain = {unchained_before: 0, verified: 0, head: null, rows: new Map(), gaps: []}
  let last: {id: number; hash: string} | null = null
  for (const r of q.rows) {
    const id = Number(r.id)
    if (r.row_hash === null) {
      if (last === null) chain.unchained_before++
      else chain.rows.set(id, 'not in the ledger\'s hash chain: written outside parity check')
      continue
    }
    if (r.computed !== r.row_hash) chain.rows.set(id, CHANGED_AFTER_RUN)
    if (r.prev_hash !== (last?.hash ?? null)) {
      chain.gaps.push(last === null ? `the ledger's hash chain does not begin at run ${id}: rows before it were deleted` : `rows between run ${last.id} and run ${id} were deleted from the ledger (run ${id} follows another row than run ${last.id})`)
    }
    if (!chain.rows.has(id)) chain.verified++
    last = {id, hash: r.row_hash}
    chain.head = {run: id, row_hash: r.row_hash}
  }
  return chain
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
  /** the SHA-256 of the rules file's bytes as the run read them; null without --rules, and for runs recorded before it was kept (optional for runs built by hand) */
  rules_sha256?: string | null
  /**
   * How the check was told to read the values it compared (--map, --type, --normalize,
   * --null-equals-empty, --spec): not part of what makes two runs the same comparison, but what
   * an auditor must see of the run that decided a day. Optional for runs built by hand; read
   * back from the ledger it is always there (empty when the check was given none).
   */
  comparison_options?: ComparisonOptions
  /** keys explained per rule name */
  rules: Record<string, number>
  /** columns of a side with no column of that name on the other, not compared (the result's not_compared); absent when none */
  not_compared?: {left: string[]; right: string[]}
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
  /**
   * the SHA-256 of the --spec file's bytes as the run read them (ledger options.specSha256):
   * absent without --spec, and for runs recorded before it was kept
   */
  spec_sha256?: string
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
            result->'columns' AS columns, result->'rules' AS rules, result->'unreadable' AS unreadable, result->'not_compared' AS not_compared, options
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
    ...notCompared(r.not_compared),
  }))
}

/** A run's `not_compared` as its result document holds it (absent: every column was paired, or a run of an earlier version). */
function notCompared(v: unknown): Pick<LedgerRun, 'not_compared'> {
  if (v === null || typeof v !== 'object') return {}
  const o = v as {left?: unknown; right?: unknown}
  const names = (x: unknown) => (Array.isArray(x) ? x.map(String) : [])
  return {not_compared: {left: names(o.left), right: names(o.right)}}
}

/** What a run's stored options (the check's flags but left and right) say about the comparison. */
function runOptions(o: Record<string, unknown>): Pick<LedgerRun, 'key_columns' | 'date_column' | 'tolerances' | 'rules_file' | 'rules_sha256' | 'comparison_options'> {
  const texts = (v: unknown): Record<string, string> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)])) : {})
  return {
    key_columns: Array.isArray(o.key) ? o.key.map(String) : [],
    date_column: typeof o.dateColumn === 'string' ? o.dateColumn : null,
    tolerances: texts(o.tolerance),
    rules_file: typeof o.rulesFile === 'string' ? o.rulesFile : null,
    rules_sha256: typeof o.rulesSha256 === 'string' ? o.rulesSha256 : null,
    comparison_options: {
      map: texts(o.map),
      types: texts(o.types),
      normalize: texts(o.normalize),
      null_equals_empty: Array.isArray(o.nullEqualsEmpty) ? o.nullEqualsEmpty.map(String) : [],
      spec_file: typeof o.specFile === 'string' ? o.specFile : null,
      ...(typeof o.specSha256 === 'string' ? {spec_sha256: o.specSha256} : {}),
    },
  }
}
