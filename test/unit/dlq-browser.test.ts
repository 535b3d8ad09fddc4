/**
 * The `dlq inspect` browser (src/ui/dlq-browser.tsx) with ink-testing-library: the table of
 * codes, Enter for samples, Esc back, `/` to filter, `q` to quit.
 */
import {createElement} from 'react'
import {render} from 'ink-testing-library'
import {describe, expect, it} from 'vitest'
import type {DlqInspectResult, DlqSample} from '../../src/dlq/inspect.js'
import {nextSteps} from '../../src/dlq/next-steps.js'
import {DlqBrowser} from '../../src/ui/dlq-browser.js'

function sample(code: string, offset: string, value: unknown): DlqSample {
  return {
    dlq: {partition: 0, offset, timestamp: '0'},
    source: {topic: 'txn.raw', partition: 1, offset: `10${offset}`, timestamp: null},
    key: `T${offset}`,
    code,
    message: `${code} in field x`,
    stage: 'normalize',
    origin: 'cutover',
    exception_class: null,
    failed_at: '2026-11-20T09:00:00.000Z',
    replay_count: 0,
    value,
    value_masking: 'sensitive-fields',
  }
}

const result: DlqInspectResult = {
  topic: 'txn.dlq',
  since: null,
  until: null,
  filter: {codes: [], key: null},
  partitions: [],
  scanned: 1900,
  total: 1900,
  repeats: 0,
  by_code: {REQUIRED_FIELD_EMPTY: 1812, PATTERN_MISMATCH: 88},
  by_origin: {cutover: 1900},
  by_source: [],
  by_hour: [],
  by_pipeline_version: [],
  first: {at: '2026-11-20T09:00:00.000Z', code: 'PATTERN_MISMATCH', dlq: {partition: 0, offset: '0'}},
  last: {at: '2026-11-20T10:00:00.000Z', code: 'REQUIRED_FIELD_EMPTY', dlq: {partition: 0, offset: '1899'}},
  samples: {
    PATTERN_MISMATCH: [sample('PATTERN_MISMATCH', '7', {currency: 'rub', acct: '***'})],
    REQUIRED_FIELD_EMPTY: [sample('REQUIRED_FIELD_EMPTY', '3', {id: '', acct: '***'})],
  },
  value_masking: 'sensitive-fields',
  next_steps: nextSteps(['REQUIRED_FIELD_EMPTY', 'PATTERN_MISMATCH']),
}

/** Waits until the last frame satisfies `ok` (ink renders asynchronously; a busy machine is slow). */
async function until(ui: {lastFrame: () => string | undefined}, ok: (frame: string) => boolean): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const frame = ui.lastFrame() ?? ''
    if (ok(frame)) return frame
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`the frame never matched:\n${ui.lastFrame()}`)
}

describe('DlqBrowser', () => {
  it('shows the codes, opens samples with Enter, goes back with Esc, filters with /, quits with q', async () => {
    const ui = render(createElement(DlqBrowser, {result}))
    let frame = await until(ui, (f) => f.includes('dead letters'))
    await new Promise((r) => setTimeout(r, 50)) // the input handler subscribes after the first render
    expect(frame).toContain('txn.dlq: 1,900 dead letters')
    expect(frame).toMatch(/REQUIRED_FIELD_EMPTY\s+1,812/)
    expect(frame).toMatch(/PATTERN_MISMATCH\s+88/)
    // what to do about the selected code
    expect(frame).toContain('what to do: a required field was missing or empty')

    ui.stdin.write('\r')
    frame = await until(ui, (f) => f.includes('· 1 samples'))
    expect(frame).toContain('REQUIRED_FIELD_EMPTY: 1,812 · 1 samples')
    expect(frame).toContain('txn.raw/1@103')
    expect(frame).toContain('"acct":"***"')

    ui.stdin.write('\u001B') // Esc
    await until(ui, (f) => f.includes('Enter samples'))
    ui.stdin.write('\u001B[B') // down
    ui.stdin.write('\r')
    frame = await until(ui, (f) => f.includes('· 1 samples'))
    expect(frame).toContain('PATTERN_MISMATCH: 88 · 1 samples')
    expect(frame).toContain('what to do: the value does not match the field')
    ui.stdin.write('\u001B')
    await until(ui, (f) => f.includes('Enter samples'))

    ui.stdin.write('/')
    await until(ui, (f) => f.includes('filter: '))
    for (const c of 'patt') ui.stdin.write(c)
    frame = await until(ui, (f) => f.includes('filter: patt'))
    expect(frame).toContain('PATTERN_MISMATCH')
    expect(frame).not.toContain('REQUIRED_FIELD_EMPTY')
    ui.stdin.write('\r')
    await until(ui, (f) => f.includes('/ filter (patt)'))

    ui.stdin.write('q')
    await new Promise((r) => setTimeout(r, 50))
    // quit: the browser no longer takes keys (a '/' would open the filter again)
    ui.stdin.write('/')
    await new Promise((r) => setTimeout(r, 100))
    expect(ui.lastFrame()).not.toContain('filter: ')
    ui.unmount()
  })
})
