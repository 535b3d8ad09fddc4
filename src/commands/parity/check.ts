import {userInfo} from 'node:os'
import {Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {assertWritableFolder, startProgressLines} from '../../cli/output.js'
import {checkDatabaseUrl, connectionSettingsFromEnv} from '../../config/env.js'
import {UsageError} from '../../errors.js'
import {formatProgress, ProgressTracker} from '../../jobs/progress.js'
import {failureOf, percentage, runParityCheck} from '../../parity/check.js'
import {PARITY_CHECK_NEEDS, requirePrivileges} from '../../pg/privileges.js'
import {columnsText} from '../../parity/report.js'
import type {ParityOptions} from '../../parity/plan.js'
import type {ParityCheckResult} from '../../parity/types.js'

export type {ParityCheckResult}

/** `a=b` flags (repeatable, or comma-separated) -> {a: b} */
function pairs(values: string[] | undefined, flag: string, example: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const v of values ?? []) {
    for (const part of v.split(/,(?=[^,=]+=)/)) {
      const eq = part.indexOf('=')
      if (eq <= 0) throw new UsageError(`--${flag} ${part}: expected column=value`, {hint: `e.g. --${flag} ${example}`})
      out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim()
    }
  }
  return out
}

const list = (v: string | undefined) => (v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean))

export default class ParityCheck extends CutoverCommand {
  static override summary = 'Compare the legacy output (left) with the streaming output (right), keyed, with tolerances and known-difference rules; record the run in the ledger.'
  static override description =
    'Both sides are source URIs (csv:, fixed:, pg:, kafka:). Two pg: sources on DATABASE_URL are compared inside PostgreSQL (sql-pushdown); anything else is streamed sorted by key and merge-joined. Exit 1 when parity is under --fail-under, or with --strict when any difference is unexplained. CUTOVER_LEFT_DATABASE_URL / CUTOVER_RIGHT_DATABASE_URL point a pg: side at another database.'
  static override examples = [
    '<%= config.bin %> parity check --left "csv:legacy/txn-2026-11-20.csv?delimiter=;&encoding=windows-1251" --right pg:public.txn_clean --key id --map id=txn_id --map amt=amount --tolerance amt=0.01 --type amt=decimal:,',
    '<%= config.bin %> parity check --left pg:legacy.daily_totals --right pg:account_daily_totals --key account_id,business_date --date 2026-11-20 --date-column business_date --rules known-differences.yaml --fail-under 99.99 --out report.html',
  ]
  static override flags = {
    left: Flags.string({required: true, description: 'legacy side: source URI'}),
    right: Flags.string({required: true, description: 'streaming side: source URI'}),
    key: Flags.string({required: true, description: 'key column(s), left names, comma-separated'}),
    columns: Flags.string({description: 'columns to compare, left names (default: every column both sides have)'}),
    map: Flags.string({multiple: true, description: 'left_col=right_col when names differ (repeatable)'}),
    tolerance: Flags.string({multiple: true, description: 'col=0.01 (absolute) | col=0.5% (relative to left) | col=2s | col=0.000001s (timestamps, to the microsecond) (repeatable)'}),
    type: Flags.string({multiple: true, description: 'col=decimal|decimal:,|integer|timestamp[:zone]|date|boolean|string: compare through the normalizers (repeatable; default: the --spec field type, decimal for two pg: numeric columns, else string)'}),
    normalize: Flags.string({multiple: true, description: 'col=trim,lower,nfc string normalization; *=trim for all (repeatable)'}),
    'null-equals-empty': Flags.string({description: 'columns where null equals the empty string (comma-separated, or *)'}),
    rules: Flags.string({description: 'known-difference rules (YAML)'}),
    date: Flags.string({
      description:
        "business day yyyy-MM-dd: limit both sides to it and file the run under it. A timestamp's day is its date in the zone of --type <date-column>=timestamp:<zone>, else of the --spec field for --date-column (named so, or from it); a pg: column only when timestamptz; else in UTC",
    }),
    'date-column': Flags.string({description: 'the column holding the business day (left name)'}),
    spec: Flags.string({description: 'pipeline spec: types of the columns, its sensitive fields masked in samples, and root causes of missing rows (DLQ, dedupe)'}),
    'fail-under': Flags.string({description: 'exit 1 when parity_pct is under this percentage, e.g. 99.99'}),
    strict: Flags.boolean({description: 'exit 1 when any difference is unexplained'}),
    samples: Flags.integer({description: 'differences to show (default 20)', min: 0}),
    out: Flags.string({description: 'write a report: report.md or report.html'}),
    strategy: Flags.option({options: ['auto', 'merge', 'sql-pushdown', 'bisect'] as const, description: 'how to compare (default auto: sql-pushdown for two pg: sources on one database, bisect across two databases, else merge)'})(),
    ledger: Flags.boolean({default: true, allowNo: true, description: 'record the run in cutover.parity_runs (--no-ledger to skip)'}),
    'sort-run-rows': Flags.integer({hidden: true, min: 2, description: 'rows per sorted run of the external sort'}),
    'bisect-leaf-rows': Flags.integer({hidden: true, min: 1, description: 'bisect: rows per leaf range'}),
  }

  async run(): Promise<ParityCheckResult> {
    const {flags} = await this.parse(ParityCheck)
    const settings = connectionSettingsFromEnv()
    // checked as DATABASE_URL is: a URL that would show pieces of its password is refused (exit 2)
    const side = (name: string) => (process.env[name]?.trim() ? checkDatabaseUrl(process.env[name].trim(), name) : undefined)
    const leftDatabaseUrl = side('CUTOVER_LEFT_DATABASE_URL')
    const rightDatabaseUrl = side('CUTOVER_RIGHT_DATABASE_URL')
    const failUnder = flags['fail-under'] === undefined ? undefined : percentage(flags['fail-under'], '--fail-under')
    // before the comparison: a report that cannot be written would throw its result away at the end
    if (flags.out) assertWritableFolder(flags.out, '--out')
    // and a ledger that cannot be written, likewise (--no-ledger writes none)
    if (flags.ledger) await requirePrivileges(settings.databaseUrl, 'parity check', PARITY_CHECK_NEEDS)
    const opts: ParityOptions = {
      left: flags.left,
      right: flags.right,
      key: list(flags.key) ?? [],
      ...(flags.columns ? {columns: list(flags.columns)!} : {}),
      map: pairs(flags.map, 'map', 'id=txn_id'),
      tolerance: pairs(flags.tolerance, 'tolerance', 'amount=0.01'),
      types: pairs(flags.type, 'type', 'amount=decimal'),
      normalize: pairs(flags.normalize, 'normalize', 'name=trim,lower'),
      ...(flags['null-equals-empty'] ? {nullEqualsEmpty: list(flags['null-equals-empty'])!} : {}),
      ...(flags.rules ? {rulesFile: flags.rules} : {}),
      ...(flags.date ? {date: flags.date} : {}),
      ...(flags['date-column'] ? {dateColumn: flags['date-column']} : {}),
      ...(flags.spec ? {specFile: flags.spec} : {}),
      ...(flags.samples !== undefined ? {samples: flags.samples} : {}),
      ...(failUnder !== undefined ? {failUnder} : {}),
      ...(flags.strict ? {strict: true} : {}),
      ...(flags.strategy ? {strategy: flags.strategy} : {}),
      ...(flags['sort-run-rows'] ? {sortRunRows: flags['sort-run-rows']} : {}),
      ...(flags['bisect-leaf-rows'] ? {bisectLeafRows: flags['bisect-leaf-rows']} : {}),
    }
    const json = this.jsonEnabled()
    const tracker = new ProgressTracker('parity check: rows read')
    const stop = json ? () => {} : startProgressLines(tracker, (l) => this.logToStderr(l))
    let result: ParityCheckResult
    try {
      result = await runParityCheck(opts, {
        ctx: {kafka: settings.kafka, logger: this.logger},
        databaseUrl: settings.databaseUrl,
        ...(leftDatabaseUrl ? {leftDatabaseUrl} : {}),
        ...(rightDatabaseUrl ? {rightDatabaseUrl} : {}),
        logger: this.logger,
        progress: tracker,
        record: flags.ledger,
        ...(flags.out ? {out: flags.out} : {}),
        runBy: userInfo().username,
      })
    } finally {
      stop()
    }
    if (!json) {
      this.logToStderr(formatProgress(tracker.snapshot()))
      this.log(
        `${result.date ? `${result.date}: ` : ''}parity ${result.parity_pct}% (${result.strategy}, ${result.elapsed_ms} ms)\n` +
          `  left ${result.left_rows}, right ${result.right_rows}; matched ${result.matched}, mismatched ${result.mismatched}, missing in right ${result.missing_in_right}, extra in right ${result.extra_in_right}, duplicate keys ${result.duplicate_keys_left}/${result.duplicate_keys_right}\n` +
          `  explained ${result.explained}, unexplained ${result.unexplained}`,
      )
      if (result.unreadable) this.log(`  unreadable records: left ${result.unreadable.left}, right ${result.unreadable.right} (counted as unexplained)`)
      if (result.not_compared) this.logToStderr(`warning: ${columnsText(result)}. Pair a column with --map <left>=<right>, or name the columns to compare with --columns`)
      if (result.empty) this.logToStderr(`warning: no row was compared${result.date ? ` on ${result.date}` : ''}: both sides are empty; this run proves nothing and does not count as a pass`)
      for (const [c, s] of Object.entries(result.columns)) if (s.mismatches > 0) this.log(`  ${c}: ${s.mismatches} mismatches (${s.explained} explained)${s.max_abs_diff ? `, max |diff| ${s.max_abs_diff}` : ''}`)
      for (const [cause, n] of Object.entries(result.root_causes ?? {})) this.log(`  missing: ${cause}: ${n}`)
      for (const s of result.samples) this.log(`  ${s.kind} ${JSON.stringify(s.key)}${s.column ? ` ${s.column}` : ''}: ${JSON.stringify(s.left)} vs ${JSON.stringify(s.right)}${s.explanation ? ` (${s.explanation})` : ''}${s.unreadable_reason ? ` [${s.unreadable_reason}]` : ''}`)
      if (result.report) this.log(`  report ${result.report.path} sha256 ${result.report.sha256}`)
      if (result.run_id !== undefined) this.log(`  ledger run ${result.run_id}`)
    }
    const failure = failureOf(result, opts)
    if (failure) {
      if (!json) this.logToStderr(`check failed: ${failure}`)
      process.exitCode = 1
    }
    return result
  }
}
