/**
 * The `dlq inspect` browser, on a TTY only (never under --json or when stdout is a pipe):
 * a table of codes (↑/↓ to move), Enter for the selected code's samples (Esc back), `/` to
 * filter the codes (type, Enter or Esc to end), `q` to quit. State is the result document
 * itself; the component only chooses what to show.
 */
import {Box, render, Text, useApp, useInput, type Key} from 'ink'
import {useCallback, useRef, useState} from 'react'
import type {DlqInspectResult, DlqSample} from '../dlq/inspect.js'

const n = (x: number) => x.toLocaleString('en-US')

function Sample({s}: {s: DlqSample}) {
  return (
    <Box flexDirection="column" marginBottom={1}>
      <Text>
        <Text color="cyan">
          {s.source.topic ?? '?'}/{s.source.partition ?? '?'}@{s.source.offset ?? '?'}
        </Text>{' '}
        key {s.key ?? '(null)'} · dlq {s.dlq.partition}@{s.dlq.offset} · {s.failed_at ?? '?'}
        {s.replay_count > 0 ? ` · replayed ${s.replay_count}x` : ''}
      </Text>
      <Text>  {s.message ?? '(no message)'}</Text>
      <Text dimColor>  value {s.value === null ? `(${s.value_note ?? 'none'})` : JSON.stringify(s.value)}</Text>
    </Box>
  )
}

/** What to do about a code (dlq/next-steps.ts), when the catalogue says. */
function NextStep({step}: {step: string | undefined}) {
  return step ? <Text color="cyan">what to do: {step}</Text> : null
}

export function DlqBrowser({result}: {result: DlqInspectResult}) {
  const {exit} = useApp()
  const [mode, setMode] = useState<'codes' | 'samples' | 'filter'>('codes')
  const [filter, setFilter] = useState('')
  const [selected, setSelected] = useState(0)
  const codes = Object.entries(result.by_code).filter(([c]) => c.toLowerCase().includes(filter.toLowerCase()))
  const current = codes[Math.min(selected, Math.max(0, codes.length - 1))]

  // One stable input handler reading the latest state: ink re-subscribes useInput whenever its
  // handler changes, and keys typed between a render and the new subscription would be lost.
  const latest = useRef({mode, current, count: codes.length})
  latest.current = {mode, current, count: codes.length}
  const onInput = useCallback(
    (input: string, key: Key) => {
      const {mode, current, count} = latest.current
      if (mode === 'filter') {
        if (key.return || key.escape) setMode('codes')
        else if (key.backspace || key.delete) setFilter((f) => f.slice(0, -1))
        else if (input && !key.ctrl && !key.meta) setFilter((f) => f + input)
        setSelected(0)
        return
      }
      if (input === 'q') {
        exit()
        return
      }
      if (mode === 'samples') {
        if (key.escape || key.leftArrow || key.backspace) setMode('codes')
        return
      }
      if (key.upArrow) setSelected((i) => Math.max(0, i - 1))
      else if (key.downArrow) setSelected((i) => Math.min(count - 1, i + 1))
      else if (key.return && current) setMode('samples')
      else if (input === '/') setMode('filter')
    },
    [exit],
  )
  useInput(onInput)

  const header = (
    <Text bold>
      {result.topic}: {n(result.total)} dead letters
      {result.first && result.last ? ` · ${result.first.at} … ${result.last.at}` : ''}
    </Text>
  )
  if (mode === 'samples' && current) {
    const samples = result.samples[current[0]] ?? []
    return (
      <Box flexDirection="column">
        {header}
        <Text>
          {current[0]}: {n(current[1])} · {samples.length} samples
        </Text>
        <NextStep step={result.next_steps[current[0]]} />
        {samples.map((s) => (
          <Sample key={`${s.dlq.partition}@${s.dlq.offset}`} s={s} />
        ))}
        <Text dimColor>Esc back · q quit</Text>
      </Box>
    )
  }
  return (
    <Box flexDirection="column">
      {header}
      {codes.length === 0 ? <Text dimColor>no code matches “{filter}”</Text> : null}
      {codes.map(([code, count], i) => (
        <Text key={code} inverse={i === selected}>
          {code.padEnd(24)} {n(count).padStart(10)}
        </Text>
      ))}
      {current ? <NextStep step={result.next_steps[current[0]]} /> : null}
      <Text dimColor>{mode === 'filter' ? `filter: ${filter}▌ (Enter to apply)` : `↑↓ move · Enter samples · / filter${filter ? ` (${filter})` : ''} · q quit`}</Text>
    </Box>
  )
}

/** Renders the browser until the person quits. */
export async function browseDlq(result: DlqInspectResult): Promise<void> {
  const app = render(<DlqBrowser result={result} />)
  await app.waitUntilExit()
}
