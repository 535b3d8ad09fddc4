/**
 * The backfill progress bar, on a TTY only (never under --json): done/total where known (file
 * sources, by bytes), rate now and target, ETA, consumer lag and the pace. State lives in the
 * pure ProgressTracker the backfill updates; this only draws `backfillView(...)` every 500 ms.
 * Every other line for stderr while it draws (the command's header, the log's warnings) goes
 * through `print`, above the frame (./stderr-frame.tsx).
 */
import {Box, Text} from 'ink'
import type {ProgressSnapshot, ProgressTracker} from '../jobs/progress.js'
import {renderOnStderr} from './stderr-frame.js'

export interface BackfillView {
  done: number
  sent: number
  rejected: number
  /** 0..1 when the total is known */
  fraction: number | null
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
  const fraction = e.bytes_total ? Math.min(1, (e.bytes_done ?? 0) / e.bytes_total) : null
  const etaS = fraction !== null && fraction > 0 && fraction < 1 ? ((cur.elapsedMs / 1000) * (1 - fraction)) / fraction : null
  return {
    done: cur.done,
    sent: e.sent ?? 0,
    rejected: e.rejected ?? 0,
    fraction,
    rateNow,
    targetRate,
    etaS,
    lag: e.lag ?? null,
    pausedS: (e.paused_ms ?? 0) / 1000,
    elapsedS: cur.elapsedMs / 1000,
  }
}

export function BackfillProgress({view}: {view: BackfillView}) {
  const width = 30
  const filled = view.fraction === null ? 0 : Math.round(view.fraction * width)
  return (
    <Box flexDirection="column">
      <Text>
        <Text color="green">{view.fraction === null ? '' : '█'.repeat(filled) + '░'.repeat(width - filled) + ' '}</Text>
        {view.fraction === null ? '' : `${(view.fraction * 100).toFixed(1)}%  `}
        read {n(view.done)} · sent {n(view.sent)} · rejected {n(view.rejected)}
      </Text>
      <Text dimColor>
        rate {n(view.rateNow)}/s{view.targetRate === null ? ' (unthrottled)' : ` of ${n(view.targetRate)}/s`}
        {view.etaS === null ? '' : ` · ETA ${Math.ceil(view.etaS)} s`}
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
