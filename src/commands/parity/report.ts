import {createHash} from 'node:crypto'
import {writeFile} from 'node:fs/promises'
import {Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {assertWritableFolder} from '../../cli/output.js'
import {connectionSettingsFromEnv} from '../../config/env.js'
import {UsageError} from '../../errors.js'
import {readDaysOff} from '../../parity/calendar.js'
import {percentage, reportFormat} from '../../parity/check.js'
import {buildParityReport, dayStatus, ledgerLines, renderEvidenceHtml, renderEvidenceMarkdown, type ParityReportResult} from '../../parity/evidence.js'
import {assertLedger} from '../../parity/ledger.js'
import {migrate} from '../../pg/migrations.js'
import {openDatabase} from '../../pg/pool.js'

export type {ParityReportResult}

export default class ParityReport extends CutoverCommand {
  static override summary = 'Show the parity ledger of the last N days, the trend, the top unexplained columns and the cutover-readiness verdict; write the evidence pack.'
  static override description =
    'Exit 0 whatever the verdict (the verdict is data); add --fail-not-ready to exit 1 when the cutover is not ready. Every calendar day is a business day unless days without a legacy batch are declared with --days-off and --holidays: those are listed as "day off", need no check, and the window reaches back over --days business days.'
  static override examples = [
    '<%= config.bin %> parity report --days 30',
    '<%= config.bin %> parity report --days 20 --days-off sat,sun --holidays holidays-2026.txt --out evidence.html',
    '<%= config.bin %> parity report --days 30 --threshold 99.99 --out evidence.html --json',
    '<%= config.bin %> parity report --days 30 --expect-pairs 3   # three table pairs checked every day',
  ]
  static override flags = {
    days: Flags.integer({default: 30, min: 1, description: 'business days in the window: calendar days, but for those declared off by --days-off and --holidays'}),
    'days-off': Flags.string({description: 'weekdays without a legacy batch, comma-separated: e.g. sat,sun (mon, tue, wed, thu, fri, sat, sun)'}),
    holidays: Flags.string({description: 'file of days without a legacy batch, one yyyy-MM-dd per line (# starts a comment)'}),
    threshold: Flags.string({default: '99.99', description: 'parity percentage each day must reach'}),
    until: Flags.string({description: 'last business day of the window, yyyy-MM-dd (default: the latest day in the ledger; when that is more than one business day before today (UTC), the report says it is stale and is not READY)'}),
    out: Flags.string({description: 'evidence pack: evidence.html (self-contained) or evidence.md'}),
    'fail-not-ready': Flags.boolean({description: 'exit 1 when the verdict is not ready'}),
    'expect-pairs': Flags.integer({default: 1, min: 1, description: 'left/right pairs (e.g. tables) each business day must have checked: a day with fewer blocks'}),
  }

  async run(): Promise<ParityReportResult & {evidence?: {path: string; sha256: string}}> {
    const {flags} = await this.parse(ParityReport)
    const threshold = percentage(flags.threshold, '--threshold')
    if (threshold > 100) throw new UsageError(`--threshold ${flags.threshold} is not a percentage`, {hint: 'e.g. --threshold 99.99'})
    const format = flags.out ? reportFormat(flags.out) : undefined
    if (flags.out) assertWritableFolder(flags.out, '--out')
    const daysOff = await readDaysOff({daysOff: flags['days-off'], holidaysFile: flags.holidays})
    // a report reads: it creates neither the database nor the ledger (a missing one is exit 2)
    const url = connectionSettingsFromEnv().databaseUrl
    const pool = await openDatabase(url, {logger: this.logger, max: 1, applicationName: 'cutover-parity-report', create: false, migrate: false})
    let result: ParityReportResult
    try {
      await assertLedger(pool, url)
      // a ledger written by an earlier version: brought to this version's columns, as any command would
      await migrate(pool, this.logger)
      result = await buildParityReport(pool, {days: flags.days, threshold, daysOff, expectPairs: flags['expect-pairs'], ...(flags.until ? {until: flags.until} : {})})
    } finally {
      await pool.end()
    }
    let evidence: {path: string; sha256: string} | undefined
    if (flags.out && format) {
      const at = new Date().toISOString()
      const text = format === 'html' ? renderEvidenceHtml(result, at) : renderEvidenceMarkdown(result, at)
      await writeFile(flags.out, text)
      evidence = {path: flags.out, sha256: createHash('sha256').update(text).digest('hex')}
    }
    if (!this.jsonEnabled()) {
      if (result.stale) this.log(result.stale.message)
      this.log(`${result.from} .. ${result.to}, threshold ${result.threshold}%, trend ${result.trend}`)
      for (const d of result.per_day) this.log(`  ${d.date}  ${d.parity_pct === null ? '      —' : `${d.parity_pct.toFixed(4).padStart(8)}%`}  runs ${d.runs}  unexplained ${d.unexplained}  ${dayStatus(d)}`)
      if (result.top_unexplained_columns.length > 0) this.log(`top unexplained columns: ${result.top_unexplained_columns.map((c) => `${c.column} ${c.unexplained}`).join(', ')}`)
      this.log(result.verdict.criteria)
      for (const l of ledgerLines(result)) this.log(`ledger: ${l}`)
      this.log(result.verdict.summary)
      if (evidence) this.log(`evidence ${evidence.path} sha256 ${evidence.sha256}`)
    }
    if (flags['fail-not-ready'] && !result.verdict.ready) process.exitCode = 1
    return {...result, ...(evidence ? {evidence} : {})}
  }
}
