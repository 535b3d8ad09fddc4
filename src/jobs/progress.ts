/**
 * Progress of long work, as a pure tracker (after oclif's multi-stage-output): the job
 * updates counts, and a renderer chosen by the command reads `snapshot()` on its own clock.
 */
export interface ProgressSnapshot {
  label: string
  done: number
  elapsedMs: number
  ratePerSec: number
  extra: Record<string, number>
}

export class ProgressTracker {
  private readonly started = Date.now()
  done = 0
  extra: Record<string, number> = {}
  constructor(readonly label: string) {}

  snapshot(): ProgressSnapshot {
    const elapsedMs = Date.now() - this.started
    return {label: this.label, done: this.done, elapsedMs, ratePerSec: elapsedMs > 0 ? (this.done * 1000) / elapsedMs : 0, extra: {...this.extra}}
  }
}

export function formatProgress(s: ProgressSnapshot): string {
  const extra = Object.entries(s.extra)
    .map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`)
    .join(', ')
  return `${s.label}: ${s.done.toLocaleString('en-US')} (${Math.round(s.ratePerSec).toLocaleString('en-US')}/s, ${(s.elapsedMs / 1000).toFixed(1)} s)${extra ? `, ${extra}` : ''}`
}
