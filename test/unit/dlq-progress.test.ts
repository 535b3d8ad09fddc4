/** The `dlq replay` progress view (src/ui/dlq-progress.tsx) with ink-testing-library. */
import {createElement} from 'react'
import {render} from 'ink-testing-library'
import {describe, expect, it} from 'vitest'
import {ReplayProgressView} from '../../src/ui/dlq-progress.js'

describe('ReplayProgressView', () => {
  it('shows how far the replay is, what was sent and parked, and the rate', () => {
    const ui = render(createElement(ReplayProgressView, {p: {scanned: 950, total: 1900, selected: 900, sent: 880, parked: 20}, dryRun: false, elapsedMs: 2000}))
    const frame = ui.lastFrame()!
    expect(frame).toContain('replaying [███████████████░░░░░░░░░░░░░░░] 950/1,900')
    expect(frame).toContain('selected 900 · sent 880 · parked 20 · 450/s')
    ui.unmount()
  })
})
