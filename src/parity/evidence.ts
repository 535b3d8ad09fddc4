/**
 * `parity report`: the ledger (cutover.parity_runs) over the last N business days, one line
 * per day, the trend, the columns with the most unexplained mismatches, and the verdict.
 *
 * Business days are calendar days unless days without a legacy batch are declared
 * (`--days-off sat,sun`, `--holidays <file>`, ./calendar.ts): the window then reaches back over
 * N business days, and each declared day in it is listed as "day off". A day off needs no
 * check, and a run on it that compared no rows is what one expects; a run on it that found
 * differences still blocks. The evidence names the days off and the holidays file's SHA-256.
 *
 * A comparison is what makes two runs the same check: left, right, key columns, compared
 * columns and date column (not rules, tolerances or type options, which a fix legitimately
 * changes). A day counts by the latest run of each comparison filed under it: a re-run of the
 * same comparison supersedes the earlier one (`superseded_by` says by which; both stay
 * listed), while a run that compares fewer columns is another comparison and does not hide
 * a failing one.
 *
 * The verdict is "ready" when each of the last N days, up to the latest day in the ledger (or
 * --until), has runs, every counted run compared rows (a run with both sides empty proves
 * nothing: the day is "no data"), and every counted run is at or above the threshold with no
 * unexplained difference; otherwise the blockers are listed day by day. Differences explained
 * by known-difference rules count as parity; records that could not be read count as
 * unexplained. Each day shows the runs that decided it: their explained counts, rules,
 * compared columns, tolerances and comparison options (--map, --type, --normalize,
 * --null-equals-empty, --spec). A deciding re-run given looser options than an earlier failing
 * run of the same comparison that day (an added or changed --map, --type, --normalize,
 * --null-equals-empty, --spec, --tolerance or --rules, or a --rules or --spec file of the same
 * path whose SHA-256 differs: edited in between) is named as such on the day, with the
 * earlier run: the verdict is the same, but an auditor sees how the day came to pass. The HTML pack is one self-contained file (inline CSS and
 * SVG, no scripts, no network) listing the report SHA-256 of every run it summarizes. The ledger's
 * hash chain (ledger.ts chainProblems) is verified over the whole ledger: a row changed or added
 * afterwards blocks its day, a deleted one the verdict, and the chain's head is printed to be kept.
 */
import {UsageError} from '../errors.js'
import type {Pool} from '../pg/pool.js'
import {declaresDaysOff, isDayOff, NO_DAYS_OFF, weekdayOf, type DaysOff} from './calendar.js'
import {isCalendarDate} from './date.js'
import {CHANGED_AFTER_RUN, chainProblems, filedDays, readRuns, type ComparisonOptions, type LedgerChain, type LedgerRun} from './ledger.js'
import {escapeHtml, HTML_STYLE, mdText, notComparedText} from './report.js'

export interface ReportDay {
  date: string
  /** runs filed under the day (all of them) */
  runs: number
  /** the lowest parity_pct among the counted (latest per comparison) runs; null when no run */
  parity_pct: number | null
  unexplained: number
  left_rows: number
  right_rows: number
  /** the day does not block the cutover */
  ok: boolean
  /**
   * ok; blocked (a threshold or an unexplained difference); no data (its runs compared no rows);
   * no check; day off (declared without a legacy batch, and no run on it compared rows)
   */
  status: 'ok' | 'blocked' | 'no data' | 'no check' | 'day off'
  /** declared a day off (--days-off, --holidays): not one of the N business days */
  day_off: boolean
  /** why the day blocks the cutover */
  blockers: string[]
  /** what an auditor must know of how the day was decided: a re-run with looser options than an earlier failing run */
  notes: string[]
  /** the counted runs (the latest of each comparison), which decide the day */
  decided_by: DecidingRun[]
}

/** An earlier failing run of the same comparison, on the same day, than which the deciding run was given looser options. */
export interface LooserRerun {
  /** the earlier run, which failed */
  run: number
  parity_pct: string
  unexplained: number
  /** the options the deciding run added (or changed), as flags: `--normalize note=lower` */
  added: string[]
}

/** A run that decides its day, with what it was held to. */
export interface DecidingRun {
  run: number
  right: string
  parity_pct: string
  /** differences explained by rules (count as parity) */
  explained: number
  unexplained: number
  /** keys explained per rule name */
  rules: Record<string, number>
  rules_file: string | null
  /** the SHA-256 of the rules file as the run read it (its text is in the ledger row's options.rulesText); absent without --rules, or for a run recorded before it was kept */
  rules_sha256?: string
  /** compared columns (left names) */
  columns: string[]
  /** columns of a side with no column of that name on the other, which the run did not compare; absent when none */
  not_compared?: {left: string[]; right: string[]}
  key_columns: string[]
  /** column -> tolerance as given */
  tolerances: Record<string, string>
  /** how values were read before they were compared: --map, --type, --normalize, --null-equals-empty, --spec */
  options: ComparisonOptions
  /** earlier failing runs of the same comparison that day without the options this run added (empty when none) */
  looser_than: LooserRerun[]
  unreadable: {left: number; right: number}
  /** both sides empty: compared no rows */
  empty: boolean
}

export interface ParityReportResult {
  from: string
  to: string
  /** business days in the window (calendar days, but for the declared days off) */
  days: number
  /** what was declared without a legacy batch, and which days of the window that made days off */
  days_off: DaysOff & {in_window: string[]}
  threshold: number
  /** the left/right pairs each business day must have checked (--expect-pairs; 1 unless given) */
  expect_pairs: number
  per_day: ReportDay[]
  trend: 'improving' | 'worsening' | 'steady' | 'not enough data'
  top_unexplained_columns: {column: string; unexplained: number}[]
  /** criteria: what a day must show to pass, in words */
  verdict: {ready: boolean; summary: string; blockers: string[]; criteria: string}
  /**
   * Without --until, the window ends on the latest day in the ledger: when that day is more than
   * one business day before today (UTC, the day runs without a business date are filed under),
   * the checks stopped and the report is of a past window. The verdict is then not ready
   * (readiness is for a dual run still being checked); null when the checks are current, or
   * --until chose the window.
   */
  stale: StaleLedger | null
  /**
   * The ledger's hash chain (ledger.ts chainProblems), verified over the whole ledger: `head` is
   * what an auditor keeps to tell later that no row up to it changed; `gaps` are rows deleted
   * (they block the cutover: which day they were filed under cannot be known).
   */
  ledger: {
    unchained_before: number
    verified: number
    head: {run: number; row_hash: string} | null
    gaps: string[]
    /**
     * rows changed after their run that no day of the window holds now, with the day each is
     * filed under: the day may be what was changed (a failing run moved out of the window), so
     * each blocks the verdict. Present only when there is one.
     */
    changed_elsewhere?: {run: number; filed_under: string}[]
  }
  runs: {
    id: number
    date: string
    left: string
    right: string
    strategy: string
    parity_pct: string
    unexplained: number
    report_sha256: string
    left_digest: string
    right_digest: string
    run_by: string
    finished_at: string
    /** the later run of the same comparison on the same day that replaces this one, or null */
    superseded_by: number | null
    /**
     * why the row is no evidence: counts, parity or digests that differ from the result document
     * it recorded, its content no longer matching its hash, or its not being in the hash chain
     * (edited or written afterwards); empty when none
     */
    edited: string[]
  }[]
}

/** The ledger's latest checked day, too old for a report without --until (ParityReportResult.stale). */
export interface StaleLedger {
  /** the latest day in the ledger, where the window ends */
  last_day: string
  /** today (UTC), when the report was made */
  today: string
  /** business days after last_day up to and including today (days off not counted) */
  business_days_since: number
  /** what it means and what to do, in words */
  message: string
}

/** Business days (not declared off) after `last` up to and including `today`; 0 when `last` is not before `today`. */
export function businessDaysSince(last: string, today: string, daysOff: DaysOff = NO_DAYS_OFF): number {
  let n = 0
  for (let d = addDays(last, 1); d <= today; d = addDays(d, 1)) if (!isDayOff(daysOff, d)) n++
  return n
}

export interface ReportOptions {
  days?: number
  threshold?: number
  /** last business day of the window (default: the latest day in the ledger, else today UTC) */
  until?: string
  /** today (yyyy-MM-dd, UTC); default the clock's */
  today?: string
  /** days without a legacy batch (./calendar.ts readDaysOff); default none */
  daysOff?: DaysOff
  /** left/right pairs each business day must have checked (default 1) */
  expectPairs?: number
}

function addDays(date: string, n: number): string {
  const d = new Date(`${date}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() + n)
  return d.toISOString().slice(0, 10)
}

/** The first day of the window that ends on `to` and holds `days` business days (days off skipped). */
export function windowStart(to: string, days: number, daysOff: DaysOff = NO_DAYS_OFF): string {
  if (!declaresDaysOff(daysOff)) return addDays(to, -(days - 1))
  let d = to
  let counted = isDayOff(daysOff, d) ? 0 : 1
  while (counted < days) {
    d = addDays(d, -1)
    if (!isDayOff(daysOff, d)) counted++
  }
  return d
}

const MAX_DAYS = 36_600

export async function buildParityReport(pool: Pool, o: ReportOptions = {}): Promise<ParityReportResult> {
  const days = o.days ?? 30
  const threshold = o.threshold ?? 99.99
  if (!Number.isInteger(days) || days < 1) throw new UsageError(`--days ${days} must be a positive whole number`, {hint: 'e.g. --days 30'})
  // a window of more than a century is a typo, and one reaching back before year 1 is no date PostgreSQL can compare with
  if (days > MAX_DAYS) throw new UsageError(`--days ${days} is more than ${MAX_DAYS} days (a century)`, {hint: 'e.g. --days 30'})
  if (o.until !== undefined && !isCalendarDate(o.until)) throw new UsageError(`--until ${o.until} is not a day (yyyy-MM-dd)`, {hint: 'e.g. --until 2026-11-30'})
  if (o.today !== undefined && !isCalendarDate(o.today)) throw new UsageError(`today ${o.today} is not a day (yyyy-MM-dd)`)
  const today = o.today ?? new Date().toISOString().slice(0, 10)
  const daysOff = o.daysOff ?? NO_DAYS_OFF
  let to = o.until
  let stale: StaleLedger | null = null
  if (to === undefined) {
    const q = await pool.query<{d: string | null}>(
      `SELECT to_char(max(coalesce(business_date, (started_at AT TIME ZONE 'UTC')::date)), 'YYYY-MM-DD') AS d FROM cutover.parity_runs`,
    )
    const last = q.rows[0]?.d ?? null
    to = last ?? today
    // the checks stopped: the window that ends on the latest checked day is not the dual run's present
    const since = last === null ? 0 : businessDaysSince(last, today, daysOff)
    if (last !== null && since > 1) {
      stale = {
        last_day: last,
        today,
        business_days_since: since,
        message:
          `STALE: the latest checked day in the ledger is ${last}, ${since} business day(s) before today (${today}, UTC): the parity checks stopped, and this report is of a past window. ` +
          `Run today's parity check, or pass --until ${last} to report on that window on purpose.`,
      }
    }
  }
  const from = windowStart(to, days, daysOff)
  const runs = await readRuns(pool, from, to)
  const edited = await editedRuns(pool, from, to)
  const chain = await chainProblems(pool)
  for (const [id, why] of chain.rows) edited.set(id, [...(edited.get(id) ?? []), why])
  // a changed row that no day of the window holds: its business date may be what was changed
  const inWindow = new Set(runs.map((r) => r.id))
  const elsewhere = await filedDays(
    pool,
    [...chain.rows].filter(([id, why]) => why === CHANGED_AFTER_RUN && !inWindow.has(id)).map(([id]) => id),
  )
  const changedElsewhere = [...elsewhere].map(([run, day]) => ({run, filed_under: day}))
  const expectPairs = o.expectPairs ?? 1
  if (!Number.isInteger(expectPairs) || expectPairs < 1) throw new UsageError(`--expect-pairs ${expectPairs} must be a positive whole number`, {hint: 'e.g. --expect-pairs 3 for three table pairs checked every day'})
  return summarize(runs, {from, to, days, threshold, daysOff, edited, chain: {...chain, changed_elsewhere: changedElsewhere}, expectPairs, stale})
}

/** The ledger's count columns and the result document of the same row, which `parity check` wrote together. */
const STORED_FIELDS = ['left_rows', 'right_rows', 'matched', 'mismatched', 'missing_in_right', 'extra_in_right', 'duplicate_keys_left', 'duplicate_keys_right', 'explained', 'unexplained']

/**
 * Runs of the window whose row no longer agrees with itself: `parity check` writes the counts,
 * the parity and the digests twice in one INSERT (as columns, and in the result document), so a
 * row whose columns differ from its document was edited afterwards (an `UPDATE ... SET
 * unexplained = 0`). run id -> the fields that differ, as `unexplained 0 (result 1)`. An edit
 * that keeps both in step is seen by the ledger's hash chain (chainProblems), which also names
 * the rows recorded before it had one.
 */
async function editedRuns(pool: Pool, from: string, to: string): Promise<Map<number, string[]>> {
  const cols = [...STORED_FIELDS.map((f) => [f, `${f}::text`, `result->>'${f}'`]), ['parity_pct', 'parity_pct::text', `result->>'parity_pct'`], ['left_digest', 'left_digest', `result->'digests'->>'left'`], ['right_digest', 'right_digest', `result->'digests'->>'right'`]]
  const q = await pool.query<{id: string; diffs: string[]}>(
    `SELECT id, array_remove(ARRAY[${cols
      // a field the result document does not hold (a row of an earlier version) is not compared
      .map(([f, c, j]) => (f === 'parity_pct' ? `CASE WHEN (${j}) IS NOT NULL AND ${c}::numeric IS DISTINCT FROM (${j})::numeric THEN '${f} ' || ${c} || ' (result ' || (${j}) || ')' END` : `CASE WHEN (${j}) IS NOT NULL AND ${c} IS DISTINCT FROM (${j}) THEN '${f} ' || coalesce(${c}, 'null') || ' (result ' || (${j}) || ')' END`))
      .join(', ')}], NULL) AS diffs
       FROM cutover.parity_runs
      WHERE coalesce(business_date, (started_at AT TIME ZONE 'UTC')::date) BETWEEN $1::date AND $2::date`,
    [from, to],
  )
  return new Map(q.rows.filter((r) => r.diffs.length > 0).map((r) => [Number(r.id), r.diffs]))
}

/** What makes two runs the same comparison: left, right, key columns, compared columns, date column. */
export function comparisonOf(r: LedgerRun): string {
  return JSON.stringify([r.left, r.right, r.key_columns, Object.keys(r.columns).sort(), r.date_column])
}

/** A run that compared no rows: both sides empty and nothing unreadable. */
const isEmptyRun = (r: LedgerRun) => r.left_rows === 0 && r.right_rows === 0 && r.unreadable.left + r.unreadable.right === 0

export function readinessCriteria(threshold: number, daysOff: DaysOff = NO_DAYS_OFF, expectPairs = 1): string {
  return (
    `A day passes when it has ${expectPairs > 1 ? `parity checks of ${expectPairs} left/right pairs` : 'a parity check'} that compared rows, and the latest run of each comparison (left, right, key columns, compared columns, date column) ` +
    `is at or above ${threshold}% with no unexplained difference. Differences explained by a known-difference rule count as parity (each is listed with its rule); ` +
    `records that could not be read count as unexplained differences; a run whose sides were both empty counts as no data.` +
    (declaresDaysOff(daysOff)
      ? ` Days declared without a legacy batch (${daysOffText(daysOff)}) are not business days: they need no check and a run on them that compared no rows does not count, but a run on them that found a difference still blocks.`
      : '')
  )
}

/** The declared days off in words: "weekdays sat, sun; holidays from h.txt (SHA-256 ...)". */
function daysOffText(o: DaysOff): string {
  return [
    ...(o.weekdays.length > 0 ? [`weekdays ${o.weekdays.join(', ')}`] : []),
    ...(o.holidays_file !== null ? [`${o.holidays.length} holiday(s) from ${o.holidays_file} (SHA-256 ${o.holidays_sha256})`] : []),
  ].join('; ')
}

const EMPTY_OPTIONS: ComparisonOptions = Object.freeze({map: {}, types: {}, normalize: {}, null_equals_empty: [], spec_file: null})

/** A flag a run was given and, for a file (--rules, --spec), the SHA-256 of its bytes as the run read them (absent for runs recorded before it was kept). */
interface GivenFlag {
  flag: string
  sha256?: string
}

/**
 * The options of a run that change what counts as equal, as flags, by what they set:
 * `--normalize note` -> `--normalize note=lower`. Tolerances and rules too: they are a run's own
 * to change, but a re-run that adds one is looser than the run it replaces. A file's flag keeps
 * its content's SHA-256: the same path may hold another file at the re-run.
 */
function looseningFlags(r: LedgerRun): Map<string, GivenFlag> {
  const o = r.comparison_options ?? EMPTY_OPTIONS
  const out = new Map<string, GivenFlag>()
  const pairs = (flag: string, m: Record<string, string>) => {
    for (const [k, v] of Object.entries(m)) out.set(`${flag} ${k}`, {flag: `${flag} ${k}=${v}`})
  }
  pairs('--map', o.map)
  pairs('--type', o.types)
  pairs('--normalize', o.normalize)
  for (const c of o.null_equals_empty) out.set(`--null-equals-empty ${c}`, {flag: `--null-equals-empty ${c}`})
  if (o.spec_file !== null) out.set('--spec', {flag: `--spec ${o.spec_file}`, ...(o.spec_sha256 ? {sha256: o.spec_sha256} : {})})
  pairs('--tolerance', r.tolerances)
  if (r.rules_file !== null) out.set('--rules', {flag: `--rules ${r.rules_file}`, ...(r.rules_sha256 ? {sha256: r.rules_sha256} : {})})
  return out
}

/** How addedOptions names a file given by the same path with other content. */
const EDITED = 'edited: '

/** A SHA-256 shortened for a note: its first 12 hex digits (the deciding run lists it in full). */
const shortSha = (sha: string) => `${sha.slice(0, 12)}…`

/**
 * What `later` was given that `earlier` was not (or was given otherwise), as flags. A file given
 * by the same path whose content changed between the two (both runs kept its SHA-256) is named
 * `--rules rules.yaml (edited: SHA-256 ab12… instead of cd34…)`; a run recorded without the
 * SHA-256 is not taken for an edit.
 */
function addedOptions(later: LedgerRun, earlier: LedgerRun): string[] {
  const before = looseningFlags(earlier)
  const nullAll = before.has('--null-equals-empty *')
  const added: string[] = []
  for (const [what, now] of looseningFlags(later)) {
    const was = before.get(what)
    if (nullAll && what.startsWith('--null-equals-empty ')) continue
    if (was?.flag === now.flag) {
      if (was.sha256 !== undefined && now.sha256 !== undefined && was.sha256 !== now.sha256) added.push(`${now.flag} (${EDITED}SHA-256 ${shortSha(now.sha256)} instead of ${shortSha(was.sha256)})`)
      continue
    }
    added.push(was === undefined ? now.flag : `${now.flag} (instead of ${was.flag})`)
  }
  return added
}

/** The day's words for a deciding run given looser options than earlier failing runs of its comparison. */
function looserNotes(x: DecidingRun): string[] {
  const groups = new Map<string, LooserRerun[]>()
  for (const l of x.looser_than) groups.set(l.added.join(', '), [...(groups.get(l.added.join(', ')) ?? []), l])
  return [...groups].map(([added, ls]) => {
    const changed = ls.some((l) => l.added.some((a) => a.includes(' (instead of ') || a.includes(` (${EDITED}`)))
    const one = ls[0]!.added.length === 1
    const earlier = ls.length === 1 ? 'an earlier run' : 'earlier runs'
    const how = changed ? 'with the stricter options' : `without ${one ? 'it' : 'them'}`
    return `decided by a re-run with ${added} (run ${x.run}); ${earlier} ${how} failed: ${ls.map((l) => `run ${l.run} (${l.parity_pct}%, ${l.unexplained} unexplained)`).join(', ')}`
  })
}

/** Pure: the report of the runs of a window. */
export function summarize(
  runs: LedgerRun[],
  w: {from: string; to: string; days: number; threshold: number; daysOff?: DaysOff; edited?: Map<number, string[]>; chain?: Omit<LedgerChain, 'rows'> & Pick<ParityReportResult['ledger'], 'changed_elsewhere'>; expectPairs?: number; stale?: StaleLedger | null},
): ParityReportResult {
  const edited = w.edited ?? new Map<number, string[]>()
  const chain = w.chain ?? {unchained_before: runs.length, verified: 0, head: null, gaps: []}
  const changedElsewhere = chain.changed_elsewhere ?? []
  const expectPairs = w.expectPairs ?? 1
  const daysOff = w.daysOff ?? NO_DAYS_OFF
  const byDay = new Map<string, LedgerRun[]>()
  for (const r of runs) {
    const d = r.date ?? r.started_at.slice(0, 10)
    byDay.set(d, [...(byDay.get(d) ?? []), r])
  }
  const supersededBy = new Map<number, number>()
  const perDay: ReportDay[] = []
  const columnTotals = new Map<string, number>()
  for (let d = w.from; d <= w.to; d = addDays(d, 1)) {
    const all = byDay.get(d) ?? []
    const latest = new Map<string, LedgerRun>()
    for (const r of all) {
      // runs are in id order: the last one of a comparison wins
      const c = comparisonOf(r)
      const before = latest.get(c)
      if (before) supersededBy.set(before.id, r.id)
      latest.set(c, r)
    }
    const counted = [...latest.values()].sort((a, b) => a.id - b.id)
    const dayOff = isDayOff(daysOff, d)
    const blockers: string[] = []
    // a day off needs no check, and a run on it that compared no rows is what one expects
    if (counted.length === 0 && !dayOff) blockers.push('no parity check')
    // a second table pair checked on some days only must not pass the days it was left out
    const pairs = new Set(counted.map((r) => JSON.stringify([r.left, r.right]))).size
    if (pairs > 0 && pairs < expectPairs && !dayOff) blockers.push(`${pairs} of ${expectPairs} expected left/right pairs checked (--expect-pairs ${expectPairs})`)
    // a row edited after its run is no evidence, whether it decides the day or not
    for (const r of all) if (edited.has(r.id)) blockers.push(`ledger row of run ${r.id} (${r.right}) was edited after the run: ${edited.get(r.id)!.join(', ')}`)
    let pct: number | null = null
    let unexplained = 0
    let leftRows = 0
    let rightRows = 0
    for (const r of counted) {
      unexplained += r.unexplained
      leftRows += r.left_rows
      rightRows += r.right_rows
      if (isEmptyRun(r)) {
        if (!dayOff) blockers.push(`no data: run ${r.id} compared no rows (${r.right})`)
        continue
      }
      const p = Number(r.parity_pct)
      pct = pct === null ? p : Math.min(pct, p)
      if (p < w.threshold) blockers.push(`parity ${r.parity_pct}% < ${w.threshold}% (run ${r.id}: ${r.right})`)
      if (r.unexplained > 0) blockers.push(`${r.unexplained} unexplained difference(s) (run ${r.id}: ${r.right})`)
      for (const [c, s] of Object.entries(r.columns)) {
        const u = s.mismatches - s.explained
        if (u > 0) columnTotals.set(c, (columnTotals.get(c) ?? 0) + u)
      }
    }
    const status: ReportDay['status'] = all.some((r) => edited.has(r.id)) ? 'blocked' : dayOff && counted.every(isEmptyRun) ? 'day off' : counted.length === 0 ? 'no check' : counted.every(isEmptyRun) ? 'no data' : blockers.length > 0 ? 'blocked' : 'ok'
    const failed = (r: LedgerRun) => !isEmptyRun(r) && (Number(r.parity_pct) < w.threshold || r.unexplained > 0)
    const decidedBy: DecidingRun[] = counted.map((r) => ({
      run: r.id,
      right: r.right,
      parity_pct: r.parity_pct,
      explained: r.explained,
      unexplained: r.unexplained,
      rules: r.rules,
      rules_file: r.rules_file,
      ...(r.rules_sha256 ? {rules_sha256: r.rules_sha256} : {}),
      columns: Object.keys(r.columns).sort(),
      ...(r.not_compared ? {not_compared: r.not_compared} : {}),
      key_columns: r.key_columns,
      tolerances: r.tolerances,
      options: r.comparison_options ?? EMPTY_OPTIONS,
      looser_than: all
        .filter((e) => e.id < r.id && comparisonOf(e) === comparisonOf(r) && failed(e))
        .map((e) => ({run: e.id, parity_pct: e.parity_pct, unexplained: e.unexplained, added: addedOptions(r, e)}))
        .filter((l) => l.added.length > 0),
      unreadable: r.unreadable,
      empty: isEmptyRun(r),
    }))
    const notes = decidedBy.flatMap(looserNotes)
    perDay.push({date: d, runs: all.length, parity_pct: pct, unexplained, left_rows: leftRows, right_rows: rightRows, ok: blockers.length === 0, status, day_off: dayOff, blockers, notes, decided_by: decidedBy})
  }
  const measured = perDay.filter((d) => d.parity_pct !== null).map((d) => d.parity_pct!)
  let trend: ParityReportResult['trend'] = 'not enough data'
  if (measured.length >= 2) {
    const half = Math.floor(measured.length / 2)
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
    const a = avg(measured.slice(0, half))
    const b = avg(measured.slice(measured.length - half))
    trend = b - a > 0.0001 ? 'improving' : a - b > 0.0001 ? 'worsening' : 'steady'
  }
  // rows deleted from the ledger: any day may have lost its evidence
  // ...and a row changed after its run that no day of the window holds (its day may be what changed)
  const stale = w.stale ?? null
  const blockers = [...(stale ? [`ledger: the latest checked day is ${stale.last_day}, ${stale.business_days_since} business day(s) before today (${stale.today}): the checks stopped`] : []), ...chain.gaps.map((g) => `ledger: ${g}`), ...changedElsewhere.map(changedElsewhereText).map((c) => `ledger: ${c}`), ...perDay.flatMap((d) => d.blockers.map((b) => `${d.date}: ${b}`))]
  // the N business days that pass; a day off that blocks (a run on it found a difference) blocks too
  const okDays = perDay.filter((d) => d.ok && !d.day_off).length
  const blocking = perDay.filter((d) => !d.ok).length
  const offDays = perDay.filter((d) => d.day_off).map((d) => d.date)
  const declared = declaresDaysOff(daysOff)
  const unit = declared ? 'business day(s)' : 'day(s)'
  const off = declared ? `; ${offDays.length} day(s) off not counted${offDays.length > 0 ? ` (${offDays.join(', ')})` : ''}` : ''
  const looser = perDay.filter((d) => d.notes.length > 0).map((d) => d.date)
  const loosened = looser.length > 0 ? `; ${looser.length} day(s) decided by a re-run with looser options than an earlier failing run (${looser.join(', ')})` : ''
  const ready = blockers.length === 0
  const named = (status: ReportDay['status']) => perDay.filter((d) => d.status === status).map((d) => d.date)
  const why = [
    ...(stale ? [`stale: no check since ${stale.last_day}, ${stale.business_days_since} business day(s) before today`] : []),
    ...(named('no data').length > 0 ? [`no data on ${named('no data').join(', ')}`] : []),
    ...(named('no check').length > 0 ? [`no check on ${named('no check').join(', ')}`] : []),
    ...(named('blocked').length > 0 ? [`failing on ${named('blocked').join(', ')}`] : []),
    ...(chain.gaps.length > 0 ? [`rows deleted from the ledger: ${chain.gaps.length} gap(s) in its hash chain`] : []),
    ...(changedElsewhere.length > 0 ? [`${changedElsewhere.length} ledger row(s) changed after their run and filed outside the window now`] : []),
  ]
  const summary = ready
    ? `READY to cut over: all ${w.days} ${unit} from ${w.from} to ${w.to} are at or above ${w.threshold}% with no unexplained difference${off}${loosened}`
    : `NOT READY: ${okDays} of ${w.days} ${unit} from ${w.from} to ${w.to} pass; ${blocking} block the cutover (${why.join('; ')})${off}${loosened}`
  return Object.freeze({
    from: w.from,
    to: w.to,
    days: w.days,
    days_off: {...daysOff, in_window: offDays},
    threshold: w.threshold,
    expect_pairs: expectPairs,
    per_day: perDay,
    trend,
    top_unexplained_columns: [...columnTotals.entries()]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, 10)
      .map(([column, unexplained]) => ({column, unexplained})),
    verdict: {ready, summary, blockers, criteria: readinessCriteria(w.threshold, daysOff, expectPairs)},
    stale,
    ledger: {unchained_before: chain.unchained_before, verified: chain.verified, head: chain.head, gaps: chain.gaps, ...(changedElsewhere.length > 0 ? {changed_elsewhere: changedElsewhere} : {})},
    runs: runs.map((r) => ({
      id: r.id,
      date: r.date ?? r.started_at.slice(0, 10),
      left: r.left,
      right: r.right,
      strategy: r.strategy,
      parity_pct: r.parity_pct,
      unexplained: r.unexplained,
      report_sha256: r.report_sha256,
      left_digest: r.digests.left,
      right_digest: r.digests.right,
      run_by: r.run_by,
      finished_at: r.finished_at,
      superseded_by: supersededBy.get(r.id) ?? null,
      edited: edited.get(r.id) ?? [],
    })),
  })
}

/** A deciding run's comparison options as the flags that gave them: `--type amount=decimal, --normalize note=lower`; "none". */
export function optionsText(o: ComparisonOptions): string {
  const flags = [
    ...Object.entries(o.map).map(([k, v]) => `--map ${k}=${v}`),
    ...Object.entries(o.types).map(([k, v]) => `--type ${k}=${v}`),
    ...Object.entries(o.normalize).map(([k, v]) => `--normalize ${k}=${v}`),
    ...(o.null_equals_empty.length > 0 ? [`--null-equals-empty ${o.null_equals_empty.join(',')}`] : []),
    ...(o.spec_file !== null ? [`--spec ${o.spec_file}${o.spec_sha256 ? ` (SHA-256 ${o.spec_sha256})` : ''}`] : []),
  ]
  return flags.length > 0 ? flags.join(', ') : 'none'
}

/** One deciding run in words: explained counts, rules, compared columns, tolerances, comparison options. */
function decidedText(x: DecidingRun): string {
  const rules = Object.entries(x.rules).map(([n, k]) => `${n} ${k}`)
  const tol = Object.entries(x.tolerances).map(([c, t]) => `${c}=${t}`)
  const omitted = notComparedText(x.not_compared ?? null)
  return (
    `run ${x.run} (${x.right}): ${x.empty ? 'no rows compared' : `${x.parity_pct}%`}, explained ${x.explained}${rules.length > 0 ? ` by ${rules.join(', ')}` : ''}` +
    `${x.rules_file ? ` (rules ${x.rules_file}${x.rules_sha256 ? `, SHA-256 ${x.rules_sha256}` : ''})` : ''}, unexplained ${x.unexplained}` +
    `${x.unreadable.left + x.unreadable.right > 0 ? ` (unreadable records: left ${x.unreadable.left}, right ${x.unreadable.right})` : ''}` +
    `; key ${x.key_columns.join(', ') || '?'}; columns ${x.columns.join(', ') || '(none)'}${omitted ? ` (${omitted})` : ''}; tolerances ${tol.length > 0 ? tol.join(', ') : 'none (exact)'}` +
    `; options ${optionsText(x.options)}`
  )
}

/** A day's status in words: ok, day off, or why it blocks; with the notes on how it was decided. */
export function dayStatus(d: ReportDay): string {
  // a blocker that names the status itself ("no data: run 7 compared no rows") is not prefixed with it again
  const why = d.blockers.map((b) => (b.startsWith(`${d.status}: `) ? b.slice(d.status.length + 2) : b)).join('; ')
  const status = d.status === 'day off' ? 'day off' : d.ok ? (d.day_off ? 'ok (day off)' : 'ok') : `${d.status}${d.day_off ? ' (day off)' : ''}: ${why}`
  return [status, ...d.notes].join('; ')
}

/** The declared days off, for the evidence: what was declared and which days of the window it made days off. */
function daysOffLines(r: ParityReportResult): string[] {
  if (!declaresDaysOff(r.days_off)) return ['No day was declared without a legacy batch: every calendar day of the window is a business day.']
  return [
    `Declared without a legacy batch: ${daysOffText(r.days_off)}.`,
    `Days off in this window (not counted among the ${r.days} business days): ${r.days_off.in_window.length > 0 ? r.days_off.in_window.map((d) => `${d} (${dayOffReason(r.days_off, d)})`).join(', ') : 'none'}.`,
  ]
}

const dayOffReason = (o: DaysOff, d: string) => (o.holidays.includes(d) ? 'holiday' : weekdayOf(d))

/** A row changed after its run, filed outside the window now, in words. */
function changedElsewhereText(c: {run: number; filed_under: string}): string {
  return `run ${c.run} was changed after the run and is filed under ${c.filed_under} now, outside the window: the day it was recorded for may be what was changed`
}

/** The ledger's hash chain in words: what was verified, its head (to keep), what is missing. */
export function ledgerLines(r: ParityReportResult): string[] {
  const l = r.ledger
  return [
    l.head === null
      ? 'The ledger has no hash chain yet (no run recorded by this version of cutover).'
      : `Hash chain verified over the whole ledger: ${l.verified} run(s) unchanged since they were recorded; head run ${l.head.run}, row hash ${l.head.row_hash} (keep it: a later report shows the same hash for run ${l.head.run} only if no row up to it changed).`,
    ...(l.unchained_before > 0 ? [`${l.unchained_before} run(s) recorded before the ledger had a hash chain: their rows are checked only against the result document each recorded.`] : []),
    ...l.gaps.map((g) => `Broken: ${g}.`),
    ...(l.changed_elsewhere ?? []).map((c) => `Broken: ${changedElsewhereText(c)}.`),
  ]
}

export function renderEvidenceMarkdown(r: ParityReportResult, generatedAt: string): string {
  const m = mdText
  const unit = declaresDaysOff(r.days_off) ? 'business day(s)' : 'day(s)'
  const out: string[] = [`# Parity evidence ${r.from} .. ${r.to}`, '', ...(r.stale ? [`**${m(r.stale.message)}**`, ''] : []), `**${m(r.verdict.summary)}**`, '', `Threshold ${r.threshold}%, window ${r.days} ${unit}, trend: ${r.trend}. Generated ${m(generatedAt)}.`, '', m(r.verdict.criteria), '']
  out.push('## Days off', '', ...daysOffLines(r).map((l) => `- ${m(l)}`), '')
  out.push('## Days', '', '| day | runs | parity | unexplained | left rows | right rows | status |', '| --- | ---: | ---: | ---: | ---: | ---: | --- |')
  for (const d of r.per_day) out.push(`| ${d.date} | ${d.runs} | ${d.parity_pct === null ? '—' : `${d.parity_pct}%`} | ${d.unexplained} | ${d.left_rows} | ${d.right_rows} | ${m(dayStatus(d))} |`)
  out.push('')
  out.push('## How each day was decided', '', '| day | deciding run: explained (rules), unexplained, compared columns, tolerances, options |', '| --- | --- |')
  for (const d of r.per_day) out.push(`| ${d.date} | ${d.decided_by.length === 0 ? (d.day_off ? 'no run (day off)' : 'no run') : m(d.decided_by.map(decidedText).join(' / '))} |`)
  out.push('')
  const notes = r.per_day.flatMap((d) => d.notes.map((n) => `${d.date}: ${n}`))
  if (notes.length > 0) out.push('## Days decided by a re-run with looser options', '', ...notes.map((n) => `- ${m(n)}`), '')
  if (r.top_unexplained_columns.length > 0) out.push('## Top unexplained columns', '', '| column | unexplained mismatches |', '| --- | ---: |', ...r.top_unexplained_columns.map((c) => `| ${m(c.column)} | ${c.unexplained} |`), '')
  if (r.verdict.blockers.length > 0) out.push('## What blocks the cutover', '', ...r.verdict.blockers.map((b) => `- ${m(b)}`), '')
  out.push('## Ledger', '', ...ledgerLines(r).map((l) => `- ${m(l)}`), '')
  out.push('## Runs', '', '| run | day | right | strategy | parity | unexplained | report SHA-256 | by | at | superseded by |', '| ---: | --- | --- | --- | ---: | ---: | --- | --- | --- | --- |')
  for (const x of r.runs) out.push(`| ${x.id} | ${x.date} | ${m(x.right)} | ${m(x.strategy)} | ${x.parity_pct}% | ${x.unexplained} | ${m(x.report_sha256)} | ${m(x.run_by)} | ${m(x.finished_at)} | ${x.superseded_by === null ? '' : `run ${x.superseded_by}`}${x.edited.length > 0 ? ` edited after the run: ${m(x.edited.join(', '))}` : ''} |`)
  out.push('')
  return out.join('\n')
}

function trendSvg(days: ReportDay[], threshold: number): string {
  const w = 12
  const h = 60
  const vals = days.map((d) => d.parity_pct)
  const measured = vals.filter((v): v is number => v !== null)
  const min = Math.min(threshold - 0.01, ...measured)
  const scale = (v: number) => (min >= 100 ? h : Math.max(2, ((v - min) / (100 - min)) * h))
  const bars = days
    .map((d, i) => {
      if (d.status === 'day off') return `<rect x="${i * w}" y="${h - 2}" width="${w - 2}" height="2" fill="#8fb3d9"><title>${d.date}: day off</title></rect>`
      if (d.parity_pct === null) return `<rect x="${i * w}" y="${h - 2}" width="${w - 2}" height="2" fill="#bbb"><title>${d.date}: ${d.status}</title></rect>`
      const bh = scale(d.parity_pct)
      return `<rect x="${i * w}" y="${h - bh}" width="${w - 2}" height="${bh}" fill="${d.ok ? '#2a8a2a' : '#c0392b'}"><title>${d.date}: ${d.parity_pct}%</title></rect>`
    })
    .join('')
  const ty = h - scale(threshold)
  return `<svg width="${days.length * w}" height="${h + 2}" role="img" aria-label="parity per day">${bars}<line x1="0" x2="${days.length * w}" y1="${ty}" y2="${ty}" stroke="#333" stroke-dasharray="3 2"/></svg>`
}

export function renderEvidenceHtml(r: ParityReportResult, generatedAt: string): string {
  const e = escapeHtml
  const rows = (cells: string[][]) => cells.map((c) => `<tr>${c.join('')}</tr>`).join('')
  const td = (v: string, n = false) => `<td${n ? ' class="n"' : ''}>${v}</td>`
  const title = `Parity evidence ${r.from} .. ${r.to}`
  const parts = [
    `<h1>${e(title)}</h1>`,
    ...(r.stale ? [`<p class="bad">${e(r.stale.message)}</p>`] : []),
    `<p class="${r.verdict.ready ? 'ok' : 'bad'}">${e(r.verdict.summary)}</p>`,
    `<p>Threshold ${r.threshold}%, window ${r.days} ${declaresDaysOff(r.days_off) ? 'business day(s)' : 'day(s)'}, trend: ${e(r.trend)}. <span class="muted">Generated ${e(generatedAt)}.</span></p>`,
    `<p>${e(r.verdict.criteria)}</p>`,
    trendSvg(r.per_day, r.threshold),
    '<h2>Days off</h2>',
    `<ul>${daysOffLines(r).map((l) => `<li>${e(l)}</li>`).join('')}</ul>`,
    '<h2>Days</h2>',
    `<table><thead><tr><th>day</th><th>runs</th><th>parity</th><th>unexplained</th><th>left rows</th><th>right rows</th><th>status</th></tr></thead><tbody>${rows(
      r.per_day.map((d) => [td(d.date), td(String(d.runs), true), td(d.parity_pct === null ? '—' : `${d.parity_pct}%`, true), td(String(d.unexplained), true), td(String(d.left_rows), true), td(String(d.right_rows), true), td(d.status === 'day off' ? `<span class="muted">${e(dayStatus(d))}</span>` : d.ok ? `<span class="ok">${e(dayStatus(d))}</span>` : `<span class="bad">${e(dayStatus(d))}</span>`)]),
    )}</tbody></table>`,
    '<h2>How each day was decided</h2>',
    `<table><thead><tr><th>day</th><th>deciding run: explained (rules), unexplained, compared columns, tolerances, options</th></tr></thead><tbody>${rows(
      r.per_day.map((d) => [td(d.date), td(d.decided_by.length === 0 ? (d.day_off ? 'no run (day off)' : 'no run') : d.decided_by.map((x) => e(decidedText(x))).join('<br>'))]),
    )}</tbody></table>`,
  ]
  const notes = r.per_day.flatMap((d) => d.notes.map((n) => `${d.date}: ${n}`))
  if (notes.length > 0) parts.push('<h2>Days decided by a re-run with looser options</h2>', `<ul>${notes.map((n) => `<li class="bad">${e(n)}</li>`).join('')}</ul>`)
  if (r.top_unexplained_columns.length > 0) {
    parts.push('<h2>Top unexplained columns</h2>', `<table><thead><tr><th>column</th><th>unexplained mismatches</th></tr></thead><tbody>${rows(r.top_unexplained_columns.map((c) => [td(e(c.column)), td(String(c.unexplained), true)]))}</tbody></table>`)
  }
  if (r.verdict.blockers.length > 0) parts.push('<h2>What blocks the cutover</h2>', `<ul>${r.verdict.blockers.map((b) => `<li>${e(b)}</li>`).join('')}</ul>`)
  parts.push('<h2>Ledger</h2>', `<ul>${ledgerLines(r)
    .map((l) => `<li>${e(l)}</li>`)
    .join('')}</ul>`)
  parts.push(
    '<h2>Runs</h2>',
    `<table><thead><tr><th>run</th><th>day</th><th>left / right</th><th>strategy</th><th>parity</th><th>unexplained</th><th>report SHA-256 / input digests</th><th>by</th><th>at</th><th>superseded by</th></tr></thead><tbody>${rows(
      r.runs.map((x) => [
        td(String(x.id), true),
        td(x.date),
        td(`<code>${e(x.left)}</code><br><code>${e(x.right)}</code>`),
        td(e(x.strategy)),
        td(`${x.parity_pct}%`, true),
        td(String(x.unexplained), true),
        td(`<code>${e(x.report_sha256)}</code><br><span class="muted">left <code>${e(x.left_digest)}</code><br>right <code>${e(x.right_digest)}</code></span>`),
        td(e(x.run_by)),
        td(e(x.finished_at)),
        td(`${x.superseded_by === null ? '' : `run ${x.superseded_by}`}${x.edited.length > 0 ? `<span class="bad">edited after the run: ${e(x.edited.join(', '))}</span>` : ''}`),
      ]),
    )}</tbody></table>`,
  )
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${e(title)}</title><style>${HTML_STYLE}</style></head><body>${parts.join('\n')}</body></html>\n`
}
