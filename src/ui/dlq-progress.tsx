/**
 * Progress of `dlq replay` on a TTY (stderr, so stdout keeps the result): a bar over the DLQ
 * records the replay covers, with selected / sent / parked and the rate. The command feeds it
 * the library's `onProgress` snapshots; under --json or without a TTY it prints plain lines.
 * Every other line for stderr while it draws (the log's entries, SIGINT's note) goes through
 * `print`, above the frame (./stderr-frame.tsx).
 */
import {Box, Text} from 'ink'
import type {DlqReplayProgress} from '../dlq/replay.js'
import {renderOnStderr} from './stderr-frame.js'

const n = (x: number) => x.toLocaleString('en-US')

export function ReplayProgressView({p, dryRun, elapsedMs}: {p: DlqReplayProgress; dryRun: boolean; elapsedMs: number}) {
  const width = 30
  const done = p.total > 0 ? Math.min(1, p.scanned / p.total) : 1
  const filled = Math.round(done * width)
  const rate = elapsedMs > 0 ? Math.round(((dryRun ? p.selected : p.sent + p.parked) * 1000) / elapsedMs) : 0
  return (
    <Box flexDirection="column">
      <Text>
        {dryRun ? 'checking' : 'replaying'} [{'█'.repeat(filled)}
        {'░'.repeat(width - filled)}] {n(p.scanned)}/{n(p.total)}
      </Text>
      <Text dimColor>
        selected {n(p.selected)} · sent {n(p.sent)} · parked {n(p.parked)} · {n(rate)}/s
      </Text>
    </Box>
  )
}

export interface ReplayProgressUi {
  update(p: DlqReplayProgress): void
  /** a line for stderr, kept above the progress (written as is once it is done) */
  print(line: string): void
  done(): void
}

/** Renders the progress on stderr; `update` with each snapshot, `done` at the end. */
export function startReplayProgress(dryRun: boolean): ReplayProgressUi {
  const started = Date.now()
  let last: DlqReplayProgress = {scanned: 0, total: 0, selected: 0, sent: 0, parked: 0}
  const screen = (elapsedMs: number) => <ReplayProgressView p={last} dryRun={dryRun} elapsedMs={elapsedMs} />
  const frame = renderOnStderr(screen(0))
  return {
    update(p) {
      last = p
      frame.rerender(screen(Date.now() - started))
    },
    print: (line) => frame.print(line),
    done: () => frame.done(screen(Date.now() - started)),
  }
}
