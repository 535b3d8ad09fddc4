/**
 * The backfill progress bar, on a TTY only (never under --json): done/total where known (file
 * sources, by bytes; a pg: source, by PostgreSQL's row estimate: "about N rows", its percentage
 * and ETA marked estimated, never above 100%, as the plain lines say it), rate now and target,
 * ETA, consumer lag and the pace. State lives in the pure ProgressTracker the backfill updates;
 * this only draws `backfillView(...)` every 500 ms. Every other line for stderr while it draws
 * (the command's header, the log's warnings) goes through `print`, above the frame
 * (./stderr-frame.tsx).
 */
import {Box, Text} from 'ink'
import {formatDuration, progressFraction, type ProgressSnapshot, type ProgressTotal, type ProgressTracker} from '../jobs/progress.js'
import {renderOnStderr} from './stderr-frame.js'

export interface BackfillView {
  done: number
  sent: number
  rejected: number
  /** 0..1 when the total is known (never above 1) */
  fraction: number | null
  /** the units the work holds, when known from the tracker's total (a pg: source's row estimate) */
  total: ProgressTotal | null
  /** the read went past the tracker's total (a low estimate): 100%, ETA unknown */
  past: boolean
  rateNow: number
  targetRate: number | null
  etaS: number | null
  lag: number | null
  pausedS: number
  elapsedS: number
}

const n = (x: number) => Math.round(x).toLocaleString('en-US')

/** The view of two snapshots `dtMs` apart. Pure. */
export function backfillView(prev: ProgressSnapshot | undefined, cur: ProgressSnapshot, targetRate: number | null): BackfillView {
  const e = cur.extra
  const dt = prev ? (cur.elapsedMs - prev.elapsedMs) / 1000 : cur.elapsedMs / 1000
  const sentPrev = prev?.extra.sent ?? 0
  const rateNow = dt > 0 ? ((e.sent ?? 0) - sentPrev) / dt : 0
  // a file's own bytes (or lines) are exact; without them, the tracker's total (PostgreSQL's estimate)
  const byTotal = e.bytes_total ? undefined : progressFraction(cur)
  const fraction = e.bytes_total ? Math.min(1, (e.bytes_done ?? 0) / e.bytes_total) : (byTotal?.fraction ?? null)
  const etaS = byTotal ? byTotal.etaS : fraction !== null && fraction > 0 && fraction < 1 ? ((cur.elapsedMs / 1000) * (1 - fraction)) / fraction : null
  return {
    done: cur.done,
    sent: e.sent ?? 0,
    rejected: e.rejected ?? 0,
    fraction,
    total: byTotal && cur.total ? cur.total : null,
    // reaching the total exactly (the estimate was right: the last frame) is not going past it (progressFraction)
    past: byTotal?.past === true,
    rateNow,
    targetRate,
    etaS,
    lag: e.lag ?? null,
    pausedS: (e.paused_ms ?? 0) / 1000,
    elapsedS: cur.elapsedMs / 1000,
  }
}

/**
 * `~48.5%` and ` of about 100,000 rows` (an estimate), ` · ETA ~6 s (estimated)` or
 * `~100%` and ` · past the estimate: ETA unknown` once the read went past it; a file's exact bytes:
 * `48.5%`, ` · ETA 6 s`. Rounded down, as the plain lines (formatProgress): 100% only once done.
 */
function shown(view: BackfillView): {pct: string; of: string; eta: string} {
  if (view.fraction === null) return {pct: '', of: '', eta: ''}
  const t = view.total
  const approx = t?.estimate ? '~' : ''
  const pct = view.past ? `${approx}100%  ` : `${approx}${(Math.floor(view.fraction * 1000) / 10).toFixed(1)}%  `
  const of = t ? ` of ${t.estimate ? 'about ' : ''}${n(t.value)}${t.unit ? ` ${t.unit}` : ''}` : ''
  const eta = view.past
    ? ` · past the ${t?.estimate ? 'estimate' : 'total'}: ETA unknown`
    : view.etaS === null
      ? ''
      : ` · ETA ${approx}${formatDuration(view.etaS)}${t?.estimate ? ' (estimated)' : ''}`
  return {pct, of, eta}
}

export function BackfillProgress({view}: {view: BackfillView}) {
  const width = 30
  const filled = view.fraction === null ? 0 : Math.round(view.fraction * width)
  const {pct, of, eta} = shown(view)
  return (
    <Box flexDirection="column">
      <Text>
        <Text color="green">{view.fraction === null ? '' : '█'.repeat(filled) + '░'.repeat(width - filled) + ' '}</Text>
        {pct}
        read {n(view.done)}
        {of} · sent {n(view.sent)} · rejected {n(view.rejected)}
      </Text>
      <Text dimColor>
        rate {n(view.rateNow)}/s{view.targetRate === null ? ' (unthrottled)' : ` of ${n(view.targetRate)}/s`}
        {eta}
        {view.lag === null ? '' : ` · consumer lag ${n(view.lag)}`}
        {view.pausedS > 0 ? ` · paused ${view.pausedS.toFixed(1)} s` : ''} · {view.elapsedS.toFixed(0)} s
      </Text>
    </Box>
  )
}

export interface BackfillProgressUi {
  update(): void
  /** a line for stderr, kept above the progress (written as is once it is done) */
  print(line: string): void
  /** the target rate in force once the run knows it (a resume without --rate paces at its saved one) */
  setTargetRate(rate: number | null): void
  done(): void
}

/** Draws on stderr until `done()`. */
export function startBackfillProgress(tracker: ProgressTracker, targetRate: number | null): BackfillProgressUi {
  let prev: ProgressSnapshot | undefined
  const view = () => {
    const cur = tracker.snapshot()
    const v = backfillView(prev, cur, targetRate)
    prev = cur
    return v
  }
  const frame = renderOnStderr(<BackfillProgress view={view()} />)
  const update = () => frame.rerender(<BackfillProgress view={view()} />)
  const timer = setInterval(update, 500)
  timer.unref()
  return {
    update,
    print: (line) => frame.print(line),
    setTargetRate: (rate) => {
      targetRate = rate
    },
    done: () => {
      clearInterval(timer)
      frame.done(<BackfillProgress view={view()} />)
    },
  }
}
