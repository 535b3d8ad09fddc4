/**
 * `parity report`: the ledger (cutover.parity_runs) over the last N business days, one line
 * per day, the trend, the columns with the most unexplained mismatches, and the verdict.
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
 * compared columns and tolerances. The HTML pack is one self-contained file (inline CSS and
 * SVG, no scripts, no network) listing the report SHA-256 of every run it summarizes.
 */
import {UsageError} from '../errors.js'
import type {Pool} from '../pg/pool.js'
import {isCalendarDate} from './date.js'
import {readRuns, type LedgerRun} from './ledger.js'
import {escapeHtml, HTML_STYLE, mdText} from './report.js'

export interface ReportDay {
  date: string
  /** runs filed under the day (all of them) */
  runs: number
  /** the lowest parity_pct among the counted (latest per comparison) runs; null when no run */
  parity_pct: number | null
  unexplained: number
  left_rows: number
  right_rows: number
  ok: boolean
  /** ok; blocked (a threshold or an unexplained difference); no data (its runs compared no rows); no check */
  status: 'ok' | 'blocked' | 'no data' | 'no check'
  /** why the day blocks the cutover */
  blockers: string[]
  /** the counted runs (the latest of each comparison), which decide the day */
  decided_by: DecidingRun[]
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
  /** compared columns (left names) */
  columns: string[]
  key_columns: string[]
  /** column -> tolerance as given */
  tolerances: Record<string, string>
  unreadable: {left: number; right: number}
  /** both sides empty: compared no rows */
  empty: boolean
}

export interface ParityReportResult {
  from: string
  to: string
  days: number
  threshold: number
  per_day: ReportDay[]
  trend: 'improving' | 'worsening' | 'steady' | 'not enough data'
  top_unexplained_columns: {column: string; unexplained: number}[]
  /** criteria: what a day must show to pass, in words */
  verdict: {ready: boolean; summary: string; blockers: string[]; criteria: string}
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
  }[]
}

export interface ReportOptions {
  days?: number
  threshold?: number
  /** last business day of the window (default: the latest day in the ledger, else today UTC) */
  until?: string
  today?: string
}

function addDays(date: string, n: number): string {
  const d = new Date(`${date}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() + n)
  return d.toISOString().slice(0, 10)
}


export async function buildParityReport(pool: Pool, o: ReportOptions = {}): Promise<ParityReportResult> {
  const days = o.days ?? 30
  const threshold = o.threshold ?? 99.99
  if (!Number.isInteger(days) || days < 1) throw new UsageError(`--days ${days} must be a positive whole number`, {hint: 'e.g. --days 30'})
  if (o.until !== undefined && !isCalendarDate(o.until)) throw new UsageError(`--until ${o.until} is not a day (yyyy-MM-dd)`, {hint: 'e.g. --until 2026-11-30'})
  let to = o.until
  if (to === undefined) {
    const q = await pool.query<{d: string | null}>(
      `SELECT to_char(max(coalesce(business_date, (started_at AT TIME ZONE 'UTC')::date)), 'YYYY-MM-DD') AS d FROM cutover.parity_runs`,
    )
    to = q.rows[0]?.d ?? o.today ?? new Date().toISOString().slice(0, 10)
  }
  const from = addDays(to, -(days - 1))
  const runs = await readRuns(pool, from, to)
  return summarize(runs, {from, to, days, threshold})
}

/** What makes two runs the same comparison: left, right, key columns, compared columns, date column. */
export function comparisonOf(r: LedgerRun): string {
  return JSON.stringify([r.left, r.right, r.key_columns, Object.keys(r.columns).sort(), r.date_column])
}

/** A run that compared no rows: both sides empty and nothing unreadable. */
const isEmptyRun = (r: LedgerRun) => r.left_rows === 0 && r.right_rows === 0 && r.unreadable.left + r.unreadable.right === 0

export function readinessCriteria(threshold: number): string {
  return (
    `A day passes when it has a parity check that compared rows, and the latest run of each comparison (left, right, key columns, compared columns, date column) ` +
    `is at or above ${threshold}% with no unexplained difference. Differences explained by a known-difference rule count as parity (each is listed with its rule); ` +
    `records that could not be read count as unexplained differences; a run whose sides were both empty counts as no data.`
  )
}

/** Pure: the report of the runs of a window. */
export function summarize(runs: LedgerRun[], w: {from: string; to: string; days: number; threshold: number}): ParityReportResult {
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
    const blockers: string[] = []
    if (counted.length === 0) blockers.push('no parity check')
    let pct: number | null = null
    let unexplained = 0
    let leftRows = 0
    let rightRows = 0
    for (const r of counted) {
      unexplained += r.unexplained
      leftRows += r.left_rows
      rightRows += r.right_rows
      if (isEmptyRun(r)) {
        blockers.push(`no data: run ${r.id} compared no rows (${r.right})`)
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
    const status: ReportDay['status'] = counted.length === 0 ? 'no check' : counted.every(isEmptyRun) ? 'no data' : blockers.length > 0 ? 'blocked' : 'ok'
    const decidedBy: DecidingRun[] = counted.map((r) => ({
      run: r.id,
      right: r.right,
      parity_pct: r.parity_pct,
      explained: r.explained,
      unexplained: r.unexplained,
      rules: r.rules,
      rules_file: r.rules_file,
      columns: Object.keys(r.columns).sort(),
      key_columns: r.key_columns,
      tolerances: r.tolerances,
      unreadable: r.unreadable,
      empty: isEmptyRun(r),
    }))
    perDay.push({date: d, runs: all.length, parity_pct: pct, unexplained, left_rows: leftRows, right_rows: rightRows, ok: blockers.length === 0, status, blockers, decided_by: decidedBy})
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
  const blockers = perDay.flatMap((d) => d.blockers.map((b) => `${d.date}: ${b}`))
  const okDays = perDay.filter((d) => d.ok).length
  const ready = blockers.length === 0
  const named = (status: ReportDay['status']) => perDay.filter((d) => d.status === status).map((d) => d.date)
  const why = [
    ...(named('no data').length > 0 ? [`no data on ${named('no data').join(', ')}`] : []),
    ...(named('no check').length > 0 ? [`no check on ${named('no check').join(', ')}`] : []),
    ...(named('blocked').length > 0 ? [`failing on ${named('blocked').join(', ')}`] : []),
  ]
  const summary = ready
    ? `READY to cut over: all ${w.days} day(s) from ${w.from} to ${w.to} are at or above ${w.threshold}% with no unexplained difference`
    : `NOT READY: ${okDays} of ${w.days} day(s) from ${w.from} to ${w.to} pass; ${perDay.length - okDays} block the cutover (${why.join('; ')})`
  return Object.freeze({
    from: w.from,
    to: w.to,
    days: w.days,
    threshold: w.threshold,
    per_day: perDay,
    trend,
    top_unexplained_columns: [...columnTotals.entries()]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, 10)
      .map(([column, unexplained]) => ({column, unexplained})),
    verdict: {ready, summary, blockers, criteria: readinessCriteria(w.threshold)},
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
    })),
  })
}

/** One deciding run in words: explained counts, rules, compared columns, tolerances. */
function decidedText(x: DecidingRun): string {
  const rules = Object.entries(x.rules).map(([n, k]) => `${n} ${k}`)
  const tol = Object.entries(x.tolerances).map(([c, t]) => `${c}=${t}`)
  return (
    `run ${x.run} (${x.right}): ${x.empty ? 'no rows compared' : `${x.parity_pct}%`}, explained ${x.explained}${rules.length > 0 ? ` by ${rules.join(', ')}` : ''}` +
    `${x.rules_file ? ` (rules ${x.rules_file})` : ''}, unexplained ${x.unexplained}` +
    `${x.unreadable.left + x.unreadable.right > 0 ? ` (unreadable records: left ${x.unreadable.left}, right ${x.unreadable.right})` : ''}` +
    `; key ${x.key_columns.join(', ') || '?'}; columns ${x.columns.join(', ') || '(none)'}; tolerances ${tol.length > 0 ? tol.join(', ') : 'none (exact)'}`
  )
}

const dayStatus = (d: ReportDay) => (d.ok ? 'ok' : `${d.status}: ${d.blockers.join('; ')}`)

export function renderEvidenceMarkdown(r: ParityReportResult, generatedAt: string): string {
  const m = mdText
  const out: string[] = [`# Parity evidence ${r.from} .. ${r.to}`, '', `**${m(r.verdict.summary)}**`, '', `Threshold ${r.threshold}%, window ${r.days} day(s), trend: ${r.trend}. Generated ${m(generatedAt)}.`, '', m(r.verdict.criteria), '']
  out.push('## Days', '', '| day | runs | parity | unexplained | left rows | right rows | status |', '| --- | ---: | ---: | ---: | ---: | ---: | --- |')
  for (const d of r.per_day) out.push(`| ${d.date} | ${d.runs} | ${d.parity_pct === null ? '—' : `${d.parity_pct}%`} | ${d.unexplained} | ${d.left_rows} | ${d.right_rows} | ${m(dayStatus(d))} |`)
  out.push('')
  out.push('## How each day was decided', '', '| day | deciding run: explained (rules), unexplained, compared columns, tolerances |', '| --- | --- |')
  for (const d of r.per_day) out.push(`| ${d.date} | ${d.decided_by.length === 0 ? 'no run' : m(d.decided_by.map(decidedText).join(' / '))} |`)
  out.push('')
  if (r.top_unexplained_columns.length > 0) out.push('## Top unexplained columns', '', '| column | unexplained mismatches |', '| --- | ---: |', ...r.top_unexplained_columns.map((c) => `| ${m(c.column)} | ${c.unexplained} |`), '')
  if (r.verdict.blockers.length > 0) out.push('## What blocks the cutover', '', ...r.verdict.blockers.map((b) => `- ${m(b)}`), '')
  out.push('## Runs', '', '| run | day | right | strategy | parity | unexplained | report SHA-256 | by | at | superseded by |', '| ---: | --- | --- | --- | ---: | ---: | --- | --- | --- | --- |')
  for (const x of r.runs) out.push(`| ${x.id} | ${x.date} | ${m(x.right)} | ${m(x.strategy)} | ${x.parity_pct}% | ${x.unexplained} | \`${x.report_sha256}\` | ${m(x.run_by)} | ${m(x.finished_at)} | ${x.superseded_by === null ? '' : `run ${x.superseded_by}`} |`)
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
    `<p class="${r.verdict.ready ? 'ok' : 'bad'}">${e(r.verdict.summary)}</p>`,
    `<p>Threshold ${r.threshold}%, window ${r.days} day(s), trend: ${e(r.trend)}. <span class="muted">Generated ${e(generatedAt)}.</span></p>`,
    `<p>${e(r.verdict.criteria)}</p>`,
    trendSvg(r.per_day, r.threshold),
    '<h2>Days</h2>',
    `<table><thead><tr><th>day</th><th>runs</th><th>parity</th><th>unexplained</th><th>left rows</th><th>right rows</th><th>status</th></tr></thead><tbody>${rows(
      r.per_day.map((d) => [td(d.date), td(String(d.runs), true), td(d.parity_pct === null ? '—' : `${d.parity_pct}%`, true), td(String(d.unexplained), true), td(String(d.left_rows), true), td(String(d.right_rows), true), td(d.ok ? '<span class="ok">ok</span>' : `<span class="bad">${e(dayStatus(d))}</span>`)]),
    )}</tbody></table>`,
    '<h2>How each day was decided</h2>',
    `<table><thead><tr><th>day</th><th>deciding run: explained (rules), unexplained, compared columns, tolerances</th></tr></thead><tbody>${rows(
      r.per_day.map((d) => [td(d.date), td(d.decided_by.length === 0 ? 'no run' : d.decided_by.map((x) => e(decidedText(x))).join('<br>'))]),
    )}</tbody></table>`,
  ]
  if (r.top_unexplained_columns.length > 0) {
    parts.push('<h2>Top unexplained columns</h2>', `<table><thead><tr><th>column</th><th>unexplained mismatches</th></tr></thead><tbody>${rows(r.top_unexplained_columns.map((c) => [td(e(c.column)), td(String(c.unexplained), true)]))}</tbody></table>`)
  }
  if (r.verdict.blockers.length > 0) parts.push('<h2>What blocks the cutover</h2>', `<ul>${r.verdict.blockers.map((b) => `<li>${e(b)}</li>`).join('')}</ul>`)
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
        td(`<code>${x.report_sha256}</code><br><span class="muted">left <code>${e(x.left_digest)}</code><br>right <code>${e(x.right_digest)}</code></span>`),
        td(e(x.run_by)),
        td(e(x.finished_at)),
        td(x.superseded_by === null ? '' : `run ${x.superseded_by}`),
      ]),
    )}</tbody></table>`,
  )
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${e(title)}</title><style>${HTML_STYLE}</style></head><body>${parts.join('\n')}</body></html>\n`
}
