/**
 * Progress of `dlq replay` on a TTY (stderr, so stdout keeps the result): a bar over the DLQ
 * records the replay covers, with selected / sent / parked and the rate. The command feeds it
 * the library's `onProgress` snapshots; under --json or without a TTY it prints plain lines.
 */
import {Box, render, Text} from 'ink'
import type {DlqReplayProgress} from '../dlq/replay.js'

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

/** Renders the progress on stderr; `update` with each snapshot, `done` at the end. */
export function startReplayProgress(dryRun: boolean): {update: (p: DlqReplayProgress) => void; done: () => void} {
  const started = Date.now()
  let last: DlqReplayProgress = {scanned: 0, total: 0, selected: 0, sent: 0, parked: 0}
  const app = render(<ReplayProgressView p={last} dryRun={dryRun} elapsedMs={0} />, {stdout: process.stderr, patchConsole: false})
  return {
    update(p) {
      last = p
      app.rerender(<ReplayProgressView p={last} dryRun={dryRun} elapsedMs={Date.now() - started} />)
    },
    done() {
      app.rerender(<ReplayProgressView p={last} dryRun={dryRun} elapsedMs={Date.now() - started} />)
      app.unmount()
    },
  }
}
