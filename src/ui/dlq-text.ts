/**
 * Plain-text renderings of the dlq results (a pipe, CI, or no TTY).
 */
import type {DlqInspectResult} from '../dlq/inspect.js'
import type {DlqReplayResult} from '../dlq/replay.js'

const n = (x: number) => x.toLocaleString('en-US')

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')
}

export function formatInspect(r: DlqInspectResult): string {
  const out: string[] = []
  const range = [r.since ? `since ${r.since}` : '', r.until ? `until ${r.until}` : ''].filter(Boolean).join(' ')
  out.push(`${r.topic}: ${n(r.total)} dead letter${r.total === 1 ? '' : 's'}${range ? ` (${range})` : ''}${r.repeats ? `, ${n(r.repeats)} relay repeat${r.repeats === 1 ? '' : 's'} not counted` : ''}`)
  if (r.first && r.last) out.push(`first ${r.first.at} (${r.first.code}), last ${r.last.at} (${r.last.code})`)
  if (r.total === 0) return out.join('\n')
  out.push('', table([['CODE', 'COUNT'], ...Object.entries(r.by_code).map(([c, k]) => [c, n(k)])]))
  const steps = Object.entries(r.next_steps)
  if (steps.length > 0) out.push('', 'WHAT TO DO', ...steps.map(([c, step]) => `  ${c}: ${step}`))
  out.push('', table([['SOURCE', 'PARTITION', 'COUNT'], ...r.by_source.map((s) => [s.topic ?? '?', String(s.partition ?? '?'), n(s.count)])]))
  out.push('', table([['PIPELINE', 'VERSION', 'COUNT'], ...r.by_pipeline_version.map((v) => [v.pipeline ?? '?', (v.version ?? '?').slice(0, 12), n(v.count)])]))
  out.push('', table([['HOUR (UTC)', 'COUNT'], ...r.by_hour.map((h) => [h.hour.slice(0, 13) + ':00', n(h.count)])]))
  for (const [code, samples] of Object.entries(r.samples)) {
    if (samples.length === 0) continue
    out.push('', `${code}:`)
    for (const s of samples) {
      out.push(`  ${s.source.topic ?? '?'}/${s.source.partition ?? '?'}@${s.source.offset ?? '?'} key ${s.key ?? '(null)'}: ${s.message ?? '(no message)'}`)
      // bytes decoded from their encoding (a file's, a json or csv source's): said, and as text a byte
      // with no character in it as \x98 (not JSON's \\x98); a JSON object holds no such byte
      const decoded = s.value_encoding !== undefined && s.value !== null
      const shown = s.value === null ? `(${s.value_note ?? 'none'})` : decoded && typeof s.value === 'string' ? JSON.stringify(s.value).replace(/\\\\x([0-9a-f]{2})/g, '\\x$1') : JSON.stringify(s.value)
      out.push(`    value ${shown}${decoded ? ` (${s.value_note ?? `decoded from ${s.value_encoding}`})` : ''}`)
    }
  }
  return out.join('\n')
}

export function formatReplay(r: DlqReplayResult): string {
  if (r.dry_run) {
    const lines = [`dry run of ${n(r.selected)} dead letters from ${r.topic} against ${r.spec} (nothing written):`]
    for (const [code, p] of Object.entries(r.prediction ?? {})) {
      const still = Object.entries(p.still_failing)
        .map(([c, k]) => `${c} ${n(k)}`)
        .join(', ')
      lines.push(
        `  ${n(p.would_pass)} of ${n(p.selected)} ${code} would now pass` +
          (p.duplicates ? `, ${n(p.duplicates)} are duplicates of records already written` : '') +
          (still ? `; still failing: ${still}` : '') +
          (p.would_park ? `; ${n(p.would_park)} would be parked (past --max-replays)` : ''),
      )
    }
    return lines.join('\n')
  }
  const head = r.already_completed ? `replay ${r.replay_id} had already completed: nothing sent` : `replay ${r.replay_id} ${r.status}`
  return `${head}; selected ${n(r.selected)}, sent ${n(r.sent)}, parked ${n(r.parked)} (to ${r.parked_topic})${r.deleted ? `; ${n(r.deleted)} deleted by retention before the replay reached them` : ''}${r.resumed ? ', resumed' : ''}, ${(r.elapsed_ms / 1000).toFixed(1)} s`
}
