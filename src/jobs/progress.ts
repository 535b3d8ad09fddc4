/**
 * Progress of long work, as a pure tracker (after oclif's multi-stage-output): the job
 * updates counts, and a renderer chosen by the command reads `snapshot()` on its own clock.
 */
export interface ProgressSnapshot {
  label: string
  done: number
  elapsedMs: number
  /** this run's rate: the units done since it started (a resumed job's earlier units are not this run's) */
  ratePerSec: number
  extra: Record<string, number>
  /** how many units the work holds, when known (see ProgressTotal) */
  total?: ProgressTotal
}

/**
 * The units the whole work holds. `estimate`: an estimate (PostgreSQL's planner statistics),
 * shown as "about N", its percentage and ETA marked as estimated, never above 100% (a low
 * estimate that the work goes past gives no ETA, never a negative one).
 */
export interface ProgressTotal {
  value: number
  estimate: boolean
  /** what is counted ("rows"), shown after the total */
  unit?: string
}

export class ProgressTracker {
  private readonly started = Date.now()
  done = 0
  /** units done before this run (a resumed job's): counted in `done`, not in this run's rate */
  doneBefore = 0
  total: ProgressTotal | undefined
  extra: Record<string, number> = {}
  constructor(readonly label: string) {}

  snapshot(): ProgressSnapshot {
    const elapsedMs = Date.now() - this.started
    const thisRun = Math.max(0, this.done - this.doneBefore)
    return {
      label: this.label,
      done: this.done,
      elapsedMs,
      ratePerSec: elapsedMs > 0 ? (thisRun * 1000) / elapsedMs : 0,
      extra: {...this.extra},
      ...(this.total ? {total: {...this.total}} : {}),
    }
  }
}

/**
 * How far along a snapshot with a total is: `fraction` 0..1 (never above 1), `etaS` the
 * seconds left at this run's rate (null when the rate is not known yet, or when the work went
 * past the total, an estimate: how much is left is then unknown), `past` when it did (reaching
 * the total exactly is 100%, not past it).
 */
export function progressFraction(s: ProgressSnapshot): {fraction: number; etaS: number | null; past: boolean} | undefined {
  const t = s.total
  if (!t || !(t.value > 0)) return undefined
  const past = s.done > t.value
  const fraction = Math.min(1, s.done / t.value)
  const etaS = s.done >= t.value || !(s.ratePerSec > 0) ? null : (t.value - s.done) / s.ratePerSec
  return {fraction, etaS, past}
}

/** 42 s, 17 min, 2 h 46 min, 3 d 4 h. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds))
  if (s < 90) return `${s} s`
  const m = Math.round(s / 60)
  if (m < 90) return `${m} min`
  const h = Math.floor(m / 60)
  if (h < 48) return `${h} h ${m % 60} min`
  return `${Math.floor(h / 24)} d ${h % 24} h`
}

/** `42,000 of about 100,000 rows (~42.0%, ETA ~3 s, estimated)`, or the count alone without a total. */
function formatDone(s: ProgressSnapshot): string {
  const done = s.done.toLocaleString('en-US')
  const p = progressFraction(s)
  if (!p) return done
  const t = s.total!
  const approx = t.estimate ? '~' : ''
  const of = `${done} of ${t.estimate ? 'about ' : ''}${Math.round(t.value).toLocaleString('en-US')}${t.unit ? ` ${t.unit}` : ''}`
  if (p.past) return `${of} (${approx}100%, past the ${t.estimate ? 'estimate' : 'total'}: ETA unknown)`
  const pct = `${approx}${(Math.floor(p.fraction * 1000) / 10).toFixed(1)}%`
  const eta = p.etaS === null ? '' : `, ETA ${approx}${formatDuration(p.etaS)}`
  return `${of} (${pct}${eta}${t.estimate ? ', estimated' : ''})`
}

export function formatProgress(s: ProgressSnapshot): string {
  const extra = Object.entries(s.extra)
    .map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`)
    .join(', ')
  return `${s.label}: ${formatDone(s)} (${Math.round(s.ratePerSec).toLocaleString('en-US')}/s, ${(s.elapsedMs / 1000).toFixed(1)} s)${extra ? `, ${extra}` : ''}`
}
