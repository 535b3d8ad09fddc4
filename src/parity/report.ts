/**
 * The report of one check (`parity check --out report.md|report.html`): the counts, the
 * columns that differ, the rules that explained what, and the samples. HTML is one
 * self-contained file (inline CSS, no scripts, no network), for an auditor to keep.
 */
import type {ParityCheckResult, ParitySample} from './types.js'

export interface ReportContext {
  left: string
  right: string
  key: string[]
  generatedAt: string
  runBy: string
}

const EMPTY_NOTE = 'No row was compared: both sides are empty. This run proves nothing and does not count as a pass.'

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'})[c]!)
}

const MD_ESCAPES: Record<string, string> = {'\\': '\\\\', '`': '\\`', '|': '\\|', '[': '\\[', ']': '\\]', '&': '&amp;', '<': '&lt;', '>': '&gt;', '\r': ' ', '\n': ' '}

/**
 * Text from the data (values, keys, URIs, rule names) as Markdown shows it, in a table cell or a
 * list item: raw HTML cannot pass (`<`, `>`, `&` as entities), and `|`, backticks, brackets and
 * backslashes cannot end a cell, open a code span or make a link.
 */
export function mdText(s: string): string {
  return s.replace(/[\\`|[\]&<>\r\n]/g, (c) => MD_ESCAPES[c]!)
}

function mdCell(v: unknown): string {
  return mdText(typeof v === 'string' ? v : v === null || v === undefined ? '' : JSON.stringify(v))
}

/**
 * A sample's value (or key part) as the report shows it: text as it is, unless it would read as
 * another value once in a cell: the empty string, text with leading or trailing white space, line
 * breaks or other control characters (a cell trims, collapses or replaces them), and text that
 * looks like the quoted or null forms themselves are shown JSON-quoted; a NULL of a mismatch is
 * `(null)`. Before, a NULL against "" and "B " against "B" showed as two identical cells.
 * `comma`: a part of a composite key, joined with ", " (a part holding a comma is quoted too).
 */
export function sampleText(v: unknown, comma = false): string {
  if (v === null || v === undefined) return '(null)'
  if (typeof v !== 'string') return JSON.stringify(v)
  // eslint-disable-next-line no-control-regex
  const quoted = v === '' || v === '(null)' || v.startsWith('"') || /^\s|\s$|[\u0000-\u001f\u007f]/.test(v) || (comma && v.includes(','))
  return quoted ? JSON.stringify(v) : v
}

/** The key of a sample: its parts (sampleText), comma-separated. */
function sampleKey(key: Record<string, string | null>): string {
  const parts = Object.values(key)
  return parts.map((p) => sampleText(p, parts.length > 1)).join(', ')
}

/** A side of a sample: a mismatch's value (sampleText), a missing or extra row as JSON, nothing for the absent side. */
function sampleSide(s: ParitySample, v: unknown): string {
  if (s.kind === 'mismatch') return sampleText(v)
  return v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v)
}

/** A sample's explanation cell: its rule or root cause, and why a value was not read as a number of its column's type; null for none. */
function sampleExplanation(s: ParitySample): string | null {
  const parts = [s.explanation, s.unreadable_reason].filter((p): p is string => typeof p === 'string' && p !== '')
  return parts.length > 0 ? parts.join('; ') : null
}

/** Columns a check left out (not_compared) in words: "not compared (no column of that name on the other side): left amt; right amount"; '' for none. */
export function notComparedText(nc: ParityCheckResult['not_compared'] | null): string {
  const sides = nc ? [...(nc.left.length > 0 ? [`left ${nc.left.join(', ')}`] : []), ...(nc.right.length > 0 ? [`right ${nc.right.join(', ')}`] : [])] : []
  return sides.length > 0 ? `not compared (no column of that name on the other side): ${sides.join('; ')}` : ''
}

/** The columns a check compared, and those it left out, in words: "compared amount, currency; not compared (...): left amt". */
export function columnsText(r: Pick<ParityCheckResult, 'columns' | 'not_compared'>): string {
  const compared = Object.keys(r.columns)
  const omitted = notComparedText(r.not_compared)
  return `compared ${compared.length > 0 ? compared.join(', ') : 'the key only'}${omitted ? `; ${omitted}` : ''}`
}

function counts(r: ParityCheckResult): [string, string][] {
  return [
    ['left rows', String(r.left_rows)],
    ['right rows', String(r.right_rows)],
    ['matched', String(r.matched)],
    ['mismatched', String(r.mismatched)],
    ['missing in right', String(r.missing_in_right)],
    ['extra in right', String(r.extra_in_right)],
    ['duplicate keys left', String(r.duplicate_keys_left)],
    ['duplicate keys right', String(r.duplicate_keys_right)],
    ['explained', String(r.explained)],
    ['unreadable left', String(r.unreadable?.left ?? 0)],
    ['unreadable right', String(r.unreadable?.right ?? 0)],
    ['unexplained', String(r.unexplained)],
    ['parity', `${r.parity_pct}%`],
  ]
}

export function renderCheckMarkdown(r: ParityCheckResult, c: ReportContext): string {
  const out: string[] = []
  out.push(`# Parity check${r.date ? ` for ${r.date}` : ''}`, '')
  out.push(`- left: ${mdText(c.left)}`, `- right: ${mdText(c.right)}`, `- key: ${mdText(c.key.join(', '))}`, `- strategy: ${r.strategy}, ${r.elapsed_ms} ms`)
  out.push(`- columns: ${mdText(columnsText(r))}`)
  out.push(`- digests: left \`${r.digests.left}\`, right \`${r.digests.right}\``, `- run by ${mdText(c.runBy)} at ${mdText(c.generatedAt)}`, '')
  if (r.empty) out.push(`**${EMPTY_NOTE}**`, '')
  out.push('| count | value |', '| --- | ---: |', ...counts(r).map(([k, v]) => `| ${k} | ${v} |`), '')
  const cols = Object.entries(r.columns).filter(([, s]) => s.mismatches > 0)
  out.push('## Columns', '')
  if (cols.length === 0) out.push('No column differs.', '')
  else out.push('| column | mismatches | explained | max abs diff |', '| --- | ---: | ---: | ---: |', ...cols.map(([n, s]) => `| ${mdCell(n)} | ${s.mismatches} | ${s.explained} | ${s.max_abs_diff ?? ''} |`), '')
  const rules = Object.entries(r.rules)
  if (rules.length > 0) out.push('## Known differences', '', '| rule | keys explained |', '| --- | ---: |', ...rules.map(([n, k]) => `| ${mdCell(n)} | ${k} |`), '')
  if (r.root_causes && Object.keys(r.root_causes).length > 0) {
    out.push('## Root causes of missing rows', '', '| cause | keys |', '| --- | ---: |', ...Object.entries(r.root_causes).map(([n, k]) => `| ${mdCell(n)} | ${k} |`), '')
  }
  out.push('## Samples', '')
  if (r.samples.length === 0) out.push('None.', '')
  else {
    out.push('| key | kind | column | left | right | explanation |', '| --- | --- | --- | --- | --- | --- |')
    for (const s of r.samples) out.push(`| ${mdText(sampleKey(s.key))} | ${s.kind} | ${mdCell(s.column)} | ${mdText(sampleSide(s, s.left))} | ${mdText(sampleSide(s, s.right))} | ${mdCell(sampleExplanation(s))} |`)
    out.push('')
  }
  return out.join('\n')
}

export const HTML_STYLE = `body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:72em;color:#1d1d1f;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f3f7}td.n{text-align:right;font-variant-numeric:tabular-nums}code{font:12px ui-monospace,Menlo,monospace;word-break:break-all}
.ok{color:#116611;font-weight:600}.bad{color:#aa1111;font-weight:600}.muted{color:#667}`

function htmlTable(head: string[], rows: string[][], numeric: boolean[] = []): string {
  return `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((v, i) => `<td${numeric[i] ? ' class="n"' : ''}>${v}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`
}

const cell = (v: unknown) => escapeHtml(typeof v === 'string' ? v : v === null || v === undefined ? '' : JSON.stringify(v))

export function renderCheckHtml(r: ParityCheckResult, c: ReportContext): string {
  const title = `Parity check${r.date ? ` for ${r.date}` : ''}`
  const parts: string[] = []
  parts.push(`<h1>${escapeHtml(title)}</h1>`)
  parts.push(
    `<p>left <code>${escapeHtml(c.left)}</code><br>right <code>${escapeHtml(c.right)}</code><br>key ${escapeHtml(c.key.join(', '))}; strategy ${r.strategy}, ${r.elapsed_ms} ms<br>columns: ${r.not_compared ? `<span class="bad">${escapeHtml(columnsText(r))}</span>` : escapeHtml(columnsText(r))}<br>digests: left <code>${r.digests.left}</code>, right <code>${r.digests.right}</code><br><span class="muted">run by ${escapeHtml(c.runBy)} at ${escapeHtml(c.generatedAt)}</span></p>`,
  )
  parts.push(`<p class="${r.unexplained === 0 ? 'ok' : 'bad'}">parity ${r.parity_pct}% — ${r.unexplained} unexplained difference(s)</p>`)
  if (r.empty) parts.push(`<p class="bad">${escapeHtml(EMPTY_NOTE)}</p>`)
  parts.push(htmlTable(['count', 'value'], counts(r).map(([k, v]) => [escapeHtml(k), escapeHtml(v)]), [false, true]))
  const cols = Object.entries(r.columns).filter(([, s]) => s.mismatches > 0)
  parts.push('<h2>Columns</h2>', cols.length === 0 ? '<p>No column differs.</p>' : htmlTable(['column', 'mismatches', 'explained', 'max abs diff'], cols.map(([n, s]) => [cell(n), String(s.mismatches), String(s.explained), cell(s.max_abs_diff)]), [false, true, true, true]))
  const rules = Object.entries(r.rules)
  if (rules.length > 0) parts.push('<h2>Known differences</h2>', htmlTable(['rule', 'keys explained'], rules.map(([n, k]) => [cell(n), String(k)]), [false, true]))
  if (r.root_causes && Object.keys(r.root_causes).length > 0) parts.push('<h2>Root causes of missing rows</h2>', htmlTable(['cause', 'keys'], Object.entries(r.root_causes).map(([n, k]) => [cell(n), String(k)]), [false, true]))
  parts.push('<h2>Samples</h2>', r.samples.length === 0 ? '<p>None.</p>' : htmlTable(['key', 'kind', 'column', 'left', 'right', 'explanation'], r.samples.map((s) => [escapeHtml(sampleKey(s.key)), s.kind, cell(s.column), escapeHtml(sampleSide(s, s.left)), escapeHtml(sampleSide(s, s.right)), cell(sampleExplanation(s))])))
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><style>${HTML_STYLE}</style></head><body>${parts.join('\n')}</body></html>\n`
}

export function renderCheckReport(format: 'md' | 'html', r: ParityCheckResult, c: ReportContext): string {
  return format === 'html' ? renderCheckHtml(r, c) : renderCheckMarkdown(r, c)
}
