/**
 * `parity check` as one library call: reads the options, picks the strategy, runs it into the
 * core, attributes missing rows (with a spec), writes the report and the ledger row.
 *
 * Strategy (reported in `strategy`):
 *   sql-pushdown  both sides pg: on the same DATABASE_URL and every column comparable in SQL
 *                 (./sql-pushdown.ts): PostgreSQL joins, only differences come back;
 *   bisect        both sides pg: in different databases (./bisect.ts): checksums of key ranges,
 *                 rows only for the ranges that differ;
 *   merge         anything else (./merge.ts): both sides streamed in key order, merge-joined.
 */
import {createHash} from 'node:crypto'
import {writeFile} from 'node:fs/promises'
import {extname} from 'node:path'
import type {ReaderContext} from '../../legacy-adapters/index.js'
import type {FieldSpec, LoadedSpec, PipelineSpec} from '../config/spec.js'
import {CutoverError, UsageError} from '../errors.js'
import type {ProgressTracker} from '../jobs/progress.js'
import {redactString, silentLogger, type Logger} from '../log.js'
import {openDatabase} from '../pg/pool.js'
import {bisectStrategy} from './bisect.js'
import {isCalendarDate} from './date.js'
import type {ParityCore} from './compare.js'
import {recordRun} from './ledger.js'
import {mergeStrategy} from './merge.js'
import {buildPlan, rightName, type ParityOptions} from './plan.js'
import {parseTypeSpec} from './tolerances.js'
import {renderCheckReport} from './report.js'
import {estimateRows, parseUri, peekSide, type DateFilter, type SideContext, type SideSpec} from './sources.js'
import {pushdownStrategy} from './sql-pushdown.js'
import type {ParityCheckResult, Strategy} from './types.js'

export interface CheckDeps {
  ctx: ReaderContext
  databaseUrl: string
  /** per-side database of pg: sources (default databaseUrl): two databases disable the push-down */
  leftDatabaseUrl?: string
  rightDatabaseUrl?: string
  logger?: Logger
  progress?: ProgressTracker
  /** write the run to cutover.parity_runs (default true) */
  record?: boolean
  /** report file (.md or .html) */
  out?: string
  runBy: string
  now?: () => Date
}


/** Keys missing on the right looked up for root causes, at most. */
export const MAX_ATTRIBUTED_KEYS = 100_000

export function reportFormat(path: string): 'md' | 'html' {
  const ext = extname(path).toLowerCase()
  if (ext === '.html' || ext === '.htm') return 'html'
  if (ext === '.md' || ext === '.markdown') return 'md'
  throw new UsageError(`--out ${path}: unknown report format`, {hint: 'name the report file .md or .html'})
}

/**
 * A percentage flag as a number: a plain decimal only. Number() would take '' and ' ' for 0
 * (a threshold that passes everything), and '0x10' or '1e2' for something nobody wrote.
 */
export function percentage(text: string, flag: string): number {
  const t = text.trim()
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(t)) throw new UsageError(`${flag} ${JSON.stringify(text)} is not a percentage`, {hint: `give a number from 0 to 100, e.g. ${flag} 99.99`})
  return Number(t)
}

/** Why the check fails (exit 1), or undefined when it passes. */
export function failureOf(r: ParityCheckResult, opts: Pick<ParityOptions, 'failUnder' | 'strict'>): string | undefined {
  // 100% of nothing is no evidence: a threshold or --strict asks for evidence
  if (r.empty && (opts.failUnder !== undefined || opts.strict)) return `no row was compared${r.date ? ` on ${r.date}` : ''} (both sides empty): nothing supports parity`
  if (opts.failUnder !== undefined && underThreshold(r, opts.failUnder)) return `parity ${r.parity_pct}% is under --fail-under ${opts.failUnder}%`
  if (opts.strict && r.unexplained > 0) return `${r.unexplained} unexplained difference(s) with --strict`
  return undefined
}

/**
 * Whether the exact parity (matched + explained) / (matched + explained + unexplained), the
 * formula of parity_pct before its truncation to 4 decimals, is under `threshold` percent:
 * compared in integers. The truncated parity_pct failed thresholds with more decimals that the
 * run meets: 1 difference in 7 keys is 85.714285...%, shown 85.7142, and --fail-under 85.71428
 * exited 1; so did 1 difference in 10,000,000 keys (99.99999% exactly) at --fail-under 99.99999.
 */
export function underThreshold(r: Pick<ParityCheckResult, 'matched' | 'explained' | 'unexplained'>, threshold: number): boolean {
  const good = BigInt(r.matched + r.explained)
  const total = good + BigInt(r.unexplained)
  // the threshold as digits x 10^-scale (its shortest decimal text, "99.99999", "1e-7")
  const m = /^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(threshold))
  if (!m || total === 0n) return (total === 0n ? 100 : Number((good * 1_000_000n) / total) / 10_000) < threshold
  let digits = BigInt(m[1]! + (m[2] ?? ''))
  let scale = (m[2]?.length ?? 0) - Number(m[3] ?? 0)
  if (scale < 0) {
    digits *= 10n ** BigInt(-scale)
    scale = 0
  }
  // good / total * 100 < digits / 10^scale
  return good * 100n * 10n ** BigInt(scale) < digits * total
}

const TIMESTAMPTZ_OID = 1184

/**
 * The zone of the business day of the --date column: the `timezone` of the spec's timestamp
 * field for it (named so, or `from` it, on either side); undefined without --spec, without
 * such a field, or when that zone is UTC (the day is then the UTC date, as without a spec).
 */
export function businessDayZone(spec: PipelineSpec | undefined, left: string, right: string): string | undefined {
  const field = specFieldOf(spec, left, right)
  if (!field || field.type !== 'timestamp' || !field.timezone || field.timezone === 'UTC') return undefined
  return field.timezone
}

/** The zone of a `--type x=timestamp:<zone>` (undefined for another type, no zone, or UTC: the day is then the UTC date). */
export function declaredTypeZone(type: string | undefined, column: string): string | undefined {
  if (type === undefined) return undefined
  const t = parseTypeSpec(column, type)
  return t.type === 'timestamp' && t.timezone !== undefined && t.timezone !== 'UTC' ? t.timezone : undefined
}

/** The spec field of a column (named so, or `from` it, on either side; left and right names), whatever its type or zone. */
export function specFieldOf(spec: PipelineSpec | undefined, left: string, right: string): FieldSpec | undefined {
  if (!spec) return undefined
  const fields = spec.fields
  return fields[right] ?? fields[left] ?? Object.values(fields).find((f) => f.from === right) ?? Object.values(fields).find((f) => f.from === left)
}

/**
 * The formats a column's dates are read in (a file or topic side's --date column, a time rule's
 * column): the spec field's `formats` (timestamp or date), so that a legacy file's
 * `MM/dd/yyyy HH:mm` is read as the pipeline reads it; undefined (the default formats) without
 * such a field.
 */
export function specDateFormats(spec: PipelineSpec | undefined, left: string, right: string): string[] | undefined {
  const field = specFieldOf(spec, left, right)
  if (!field || (field.type !== 'timestamp' && field.type !== 'date') || !field.formats || field.formats.length === 0) return undefined
  return [...field.formats]
}

/** PostgreSQL's class 22, data exception: a value its SQL could not convert or compute. */
const DATA_EXCEPTION = /^22/

/**
 * A data exception raised by the SQL that reads a pg: side (class 22: "date/time field value out
 * of range: "20.11.2026"" from the --date filter's `::date` on a text column in another form, a
 * where= or query= that casts a value): the source or the flags, not an internal error. It was
 * exit 70 (PG_ERROR) without a fix; it is exit 2 saying what to change. Anything else as it is.
 */
export function sourceDataError(e: unknown, opts: Pick<ParityOptions, 'date' | 'dateColumn'>): unknown {
  if (!(e instanceof CutoverError) || e.code !== 'PG_ERROR' || !DATA_EXCEPTION.test(String(e.details.sqlstate ?? ''))) return e
  const dateColumn = opts.date !== undefined && opts.dateColumn !== undefined ? opts.dateColumn : undefined
  const hint =
    dateColumn !== undefined
      ? `--date ${opts.date} reads --date-column ${dateColumn} of a pg: side as a date in PostgreSQL (text must be yyyy-MM-dd): read a column in another form through a query= source, e.g. "pg:query=SELECT <the other columns>, to_date(${dateColumn}, 'DD.MM.YYYY') AS ${dateColumn} FROM <table>"; or check the where= and query= of the pg: sides`
      : 'a pg: side\'s SQL failed on a value it read: check the where= and query= of the pg: sides (casts of text columns, divisions)'
  return new UsageError(e.message, {cause: e, hint, details: {sqlstate: e.details.sqlstate}})
}

function sameDatabase(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && a === b
}

export async function runParityCheck(opts: ParityOptions, deps: CheckDeps): Promise<ParityCheckResult> {
  const started = deps.now?.() ?? new Date()
  const t0 = performance.now()
  const log = (deps.logger ?? silentLogger).namespace('parity')
  if (opts.date !== undefined && !isCalendarDate(opts.date)) throw new UsageError(`--date ${opts.date} is not a day (yyyy-MM-dd)`, {hint: 'write --date 2026-11-20'})
  if (opts.date !== undefined && opts.dateColumn === undefined) throw new UsageError('--date needs --date-column', {hint: 'name the column that holds the business day: --date-column business_date'})
  if (opts.failUnder !== undefined && !(opts.failUnder >= 0 && opts.failUnder <= 100)) throw new UsageError(`--fail-under ${opts.failUnder} is not a percentage`, {hint: 'give a number from 0 to 100, e.g. --fail-under 99.99'})
  const format = deps.out !== undefined ? reportFormat(deps.out) : undefined
  const leftUri = parseUri(opts.left)
  const rightUri = parseUri(opts.right)
  // yaml and zod are loaded only when a rules file or a spec is given (start-up of a plain check)
  const spec: LoadedSpec | undefined = opts.specFile ? await (await import('../config/spec.js')).loadSpec(opts.specFile) : undefined
  // a time rule reads a column's values in the spec field's formats, as the --date filter does
  const formatsOf = (column: string) => specDateFormats(spec?.spec, column, rightName(opts, column))
  const rulesFile = opts.rulesFile ? await (await import('./rules.js')).loadRulesFile(opts.rulesFile, {formatsOf}) : undefined
  const rules = rulesFile?.rules ?? []
  const ctx: ReaderContext = {...deps.ctx, databaseUrl: deps.databaseUrl, ...(deps.logger ? {logger: deps.logger} : {})}
  // each side's database, and the variable it came from (the ones `parity check` reads), named in its errors
  const leftUrlName = deps.leftDatabaseUrl ? 'CUTOVER_LEFT_DATABASE_URL' : 'DATABASE_URL'
  const rightUrlName = deps.rightDatabaseUrl ? 'CUTOVER_RIGHT_DATABASE_URL' : 'DATABASE_URL'
  const leftCtx: SideContext = {...ctx, databaseUrl: deps.leftDatabaseUrl ?? deps.databaseUrl, databaseUrlName: leftUrlName}
  const rightCtx: SideContext = {...ctx, databaseUrl: deps.rightDatabaseUrl ?? deps.databaseUrl, databaseUrlName: rightUrlName}

  const [leftPeek, rightPeek] = await Promise.all([peekSide(leftUri, leftCtx), peekSide(rightUri, rightCtx)])
  const leftCols = leftPeek?.columns
  const rightCols = rightPeek?.columns
  const plan = buildPlan(opts, leftCols, rightCols, rules, spec?.spec, {left: leftUri.scheme, right: rightUri.scheme}, {
    ...(leftPeek?.pgTypes ? {left: leftPeek.pgTypes} : {}),
    ...(rightPeek?.pgTypes ? {right: rightPeek.pgTypes} : {}),
  })
  if (spec) plan.collectMissing = MAX_ATTRIBUTED_KEYS
  plan.date = opts.date ?? null
  if (opts.dateColumn !== undefined) {
    if (leftCols && !leftCols.includes(opts.dateColumn)) throw new UsageError(`--date-column ${opts.dateColumn} is not a column of the left side`, {hint: `the left side has: ${leftCols.join(', ')}`})
    const rightDate = rightName(opts, opts.dateColumn)
    if (rightCols && !rightCols.includes(rightDate)) throw new UsageError(`--date-column ${opts.dateColumn} is not a column of the right side${rightDate === opts.dateColumn ? '' : ` (as ${rightDate})`}`, {hint: `the right side has: ${rightCols.join(', ')}; map it with --map ${opts.dateColumn}=<right column>`})
  }
  const date = opts.date !== undefined ? opts.date : null
  // the zone the check reads the column in: its `--type x=timestamp:<zone>` (which the comparison
  // uses), else its --spec field's. The day ignored --type's zone: identical rows of 00:00-03:00
  // Moscow were missing on one side and extra on the other under --date
  const typedZone = opts.dateColumn !== undefined ? declaredTypeZone(opts.types?.[opts.dateColumn], opts.dateColumn) : undefined
  const zone = opts.dateColumn !== undefined ? (typedZone ?? businessDayZone(spec?.spec, opts.dateColumn, rightName(opts, opts.dateColumn))) : undefined
  const dayFormats = opts.dateColumn !== undefined ? specDateFormats(spec?.spec, opts.dateColumn, rightName(opts, opts.dateColumn)) : undefined
  const dateFilter = (s: 'left' | 'right'): DateFilter => {
    const column = s === 'left' ? opts.dateColumn! : rightName(opts, opts.dateColumn!)
    const uri = s === 'left' ? leftUri : rightUri
    const pgType = (s === 'left' ? leftPeek : rightPeek)?.pgTypes?.[column]
    // a pg: column takes the zone only as a timestamptz (an instant); a timestamp without zone, a date or text is its own day
    const useZone = zone !== undefined && (uri.scheme !== 'pg' || pgType === TIMESTAMPTZ_OID)
    // a file or topic side's values are text read in the spec field's formats; a pg: side's day is SQL's
    const useFormats = dayFormats !== undefined && uri.scheme !== 'pg'
    return {column, value: opts.date!, ...(useZone ? {timezone: zone} : {}), ...(useFormats ? {formats: dayFormats} : {})}
  }
  const side = (s: 'left' | 'right'): SideSpec => ({
    side: s,
    uri: s === 'left' ? leftUri : rightUri,
    keyColumns: s === 'left' ? plan.keyColumns : plan.rightKeyColumns,
    columns: plan.columns.map((c) => (s === 'left' ? c.name : c.right)),
    ...(opts.date !== undefined ? {date: dateFilter(s)} : {}),
    ...(plan.trimKeys ? {trimKeys: plan.trimKeys} : {}),
  })
  const left = side('left')
  const right = side('right')

  const wanted = opts.strategy ?? 'auto'
  let strategy: Strategy = 'merge'
  let core: ParityCore
  let digests: {left: string; right: string}
  const bothPg = leftUri.scheme === 'pg' && rightUri.scheme === 'pg'
  let expected: number | undefined
  if (deps.progress) {
    const [a, b] = await Promise.all([estimateRows(leftUri, leftCtx), estimateRows(rightUri, rightCtx)])
    if (a !== undefined && b !== undefined) expected = a + b
  }
  const onProgress = (rows: number) => {
    const p = deps.progress
    if (!p) return
    p.done = rows
    if (expected !== undefined && strategyChosen === 'merge') {
      const s = p.snapshot()
      p.extra['of about'] = expected
      if (s.ratePerSec > 0 && rows < expected) p.extra['ETA s'] = Math.round((expected - rows) / s.ratePerSec)
    }
  }
  let strategyChosen: Strategy = 'merge'
  // records a reader could not read are unexplained differences (in parity_pct and --strict), never dropped
  const countUnreadable = (m: {core: ParityCore; counters: Record<'left' | 'right', {unreadable: number}>}) => {
    for (const s of ['left', 'right'] as const) {
      const n = m.counters[s].unreadable
      if (n <= 0) continue
      m.core.addUnreadable(s, n)
      log.warn('parity.source.unreadable', {side: s, records: n, counted: 'as unexplained differences'})
    }
  }
  const twoDatabases = bothPg && !sameDatabase(leftCtx.databaseUrl, rightCtx.databaseUrl)
  if (wanted === 'bisect' && !bothPg) throw new UsageError('--strategy bisect needs both sides pg:', {hint: 'leave --strategy out to merge-join the two sources'})
  // trimmed keys (--normalize <key>=trim) are read and sorted trimmed by the merge only: the
  // push-down joins and bisect buckets the raw key columns
  const trimmedKeys = plan.trimKeys?.some(Boolean) === true
  if (trimmedKeys && (wanted === 'bisect' || wanted === 'sql-pushdown')) {
    const k = plan.keyColumns.filter((_, i) => plan.trimKeys![i])
    throw new UsageError(`--strategy ${wanted} cannot trim a key column (--normalize ${k[0]}=trim): it compares the raw keys in PostgreSQL`, {hint: 'leave --strategy out (or give --strategy merge) to merge-join the sides with trimmed keys'})
  }
  try {
    if (!trimmedKeys && (wanted === 'bisect' || (wanted === 'auto' && twoDatabases))) {
      const b = await bisectStrategy({plan, left, right, leftDatabaseUrl: leftCtx.databaseUrl!, rightDatabaseUrl: rightCtx.databaseUrl!, leftDatabaseUrlName: leftUrlName, rightDatabaseUrlName: rightUrlName, logger: log, onProgress, ...(opts.bisectLeafRows ? {leafRows: opts.bisectLeafRows} : {})})
      strategy = strategyChosen = 'bisect'
      core = b.core
      digests = b.digests
      log.info('parity.bisect.done', {rows_read: b.rowsRead, ranges: b.ranges})
    } else if (!trimmedKeys && (wanted === 'auto' || wanted === 'sql-pushdown') && bothPg && sameDatabase(leftCtx.databaseUrl, rightCtx.databaseUrl)) {
      strategyChosen = 'sql-pushdown'
      const pushed = await pushdownStrategy({plan, left, right, databaseUrl: leftCtx.databaseUrl!, databaseUrlName: leftUrlName, logger: log, onProgress})
      if (pushed.ok) {
        strategy = 'sql-pushdown'
        core = pushed.core
        digests = pushed.digests
      } else {
        if (wanted === 'sql-pushdown') throw new UsageError(`--strategy sql-pushdown: ${pushed.reason}`, {hint: 'leave --strategy out to fall back to merge'})
        log.info('parity.pushdown.skipped', {reason: pushed.reason})
        strategyChosen = 'merge'
        const m = await mergeStrategy({plan, left, right, leftCtx, rightCtx, ...(opts.threads !== undefined ? {threads: opts.threads} : {}), ...(opts.sortRunRows ? {sortRunRows: opts.sortRunRows} : {}), ...(opts.tmpDir ? {tmpDir: opts.tmpDir} : {}), onProgress})
        core = m.core
        digests = m.digests
        countUnreadable(m)
      }
    } else {
      if (wanted === 'sql-pushdown') throw new UsageError('--strategy sql-pushdown needs both sides pg: on DATABASE_URL', {hint: 'leave --strategy out to merge-join the two sources'})
      const m = await mergeStrategy({
        plan,
        left,
        right,
        leftCtx,
        rightCtx,
        ...(opts.sortRunRows ? {sortRunRows: opts.sortRunRows} : {}),
        ...(opts.tmpDir ? {tmpDir: opts.tmpDir} : {}),
        ...(opts.threads !== undefined ? {threads: opts.threads} : {}),
        onProgress,
        onResort: (s, how) => log.info(how === 'external' ? 'parity.merge.external_sort' : 'parity.merge.database_sort', {side: s, reason: 'the source is not in key order'}),
      })
      core = m.core
      digests = m.digests
      countUnreadable(m)
    }
  } catch (e) {
    throw sourceDataError(e, opts)
  }

  let rootCauses: Record<string, number> | undefined
  if (spec) {
    // the stream runtime keeps its outbox and dedupe keys beside its sink: the right side's database
    const {attributeMissing} = await import('./attribution.js') // only with --spec
    const a = await attributeMissing({core, spec: spec.spec, databaseUrl: rightCtx.databaseUrl!, databaseUrlName: rightUrlName, keyColumns: plan.keyColumns, ctx})
    rootCauses = a
  }
  const base = core.finish({digests, strategy, elapsedMs: Math.round(performance.now() - t0), date, ...(rootCauses ? {rootCauses} : {})})
  // info: the result holds them (not_compared), and the command warns in words
  if (base.not_compared) log.info('parity.columns.not_compared', {...base.not_compared, message: 'columns with no column of that name on the other side were not compared: pair them with --map left=right, or name the compared columns with --columns'})
  if (base.empty) log.warn('parity.empty', {date, message: `no row was compared${date ? ` on ${date}` : ''}: both sides are empty${date ? ' for that day (check --date and --date-column)' : ''}; the run proves nothing and does not count as a pass`})

  // the sides as the evidence and the ledger show them: without a password a pg:query= may hold (a dblink conninfo)
  const [shownLeft, shownRight] = [redactString(opts.left), redactString(opts.right)]
  const reportCtx = {left: shownLeft, right: shownRight, key: opts.key, generatedAt: started.toISOString(), runBy: deps.runBy}
  let report: {path: string; sha256: string} | undefined
  let reportSha: string
  if (deps.out !== undefined && format) {
    const text = renderCheckReport(format, base, reportCtx)
    await writeFile(deps.out, text)
    reportSha = createHash('sha256').update(text).digest('hex')
    report = {path: deps.out, sha256: reportSha}
  } else {
    // no report file: the SHA-256 of the result document itself
    reportSha = createHash('sha256').update(JSON.stringify(base)).digest('hex')
  }
  let runId: number | undefined
  if (deps.record !== false) {
    const pool = await openDatabase(deps.databaseUrl, {...(deps.logger ? {logger: deps.logger} : {}), max: 1, applicationName: 'cutover-parity'})
    try {
      runId = await recordRun(pool, {
        date,
        left: shownLeft,
        right: shownRight,
        options: ledgerOptions(opts, rulesFile, plan.specNormalized, spec?.sha256),
        result: base,
        reportSha256: reportSha,
        reportPath: deps.out ?? null,
        runBy: deps.runBy,
        startedAt: started,
      })
    } finally {
      await pool.end()
    }
  }
  return Object.freeze({...base, ...(runId !== undefined ? {run_id: runId} : {}), ...(report ? {report} : {})})
}

/**
 * The options a run is recorded with (the flags but left and right). With --rules, the file's
 * SHA-256 and text as the run read them (rulesSha256, rulesText): the path alone let the file be
 * edited afterwards under evidence that says "explained N by <rule>". They are in `options`, which
 * the row's hash covers (ledger.ts rowHashSql); rows recorded before have neither. With --spec,
 * the file's SHA-256 (specSha256), for the same reason: `parity report` names a re-run whose
 * rules file or spec was edited since an earlier failing run of the same day (evidence.ts).
 */
function ledgerOptions(o: ParityOptions, rulesFile?: {sha256: string; text: string}, specNormalized?: Record<string, string[]>, specSha256?: string): Record<string, unknown> {
  const {left: _l, right: _r, ...rest} = o
  // with --spec: the string columns its `trim` / `empty_as_null` normalized (as the result's spec_normalized)
  return JSON.parse(
    JSON.stringify({...rest, ...(rulesFile ? {rulesSha256: rulesFile.sha256, rulesText: rulesFile.text} : {}), ...(specSha256 ? {specSha256} : {}), ...(specNormalized ? {specNormalized} : {})}),
  ) as Record<string, unknown>
}
