/**
 * Where a command's NDJSON goes: a file (`--out x.ndjson`), or stdout. Under `--json` stdout
 * carries only the result document, so data then needs a file (or is discarded with
 * `--out /dev/null`).
 */
import {createWriteStream} from 'node:fs'
import {once} from 'node:events'
import type {Writable} from 'node:stream'
import {UsageError} from '../errors.js'
import {formatProgress, type ProgressTracker} from '../jobs/progress.js'

export interface OpenedOutput {
  stream: Writable
  close(): Promise<void>
}

export function openOutput(path: string | undefined, json: boolean, what: string): OpenedOutput {
  if (path === undefined || path === '-') {
    if (json) throw new UsageError(`--json prints the summary on stdout, so ${what} need a file`, {hint: `add --out <file> (or --out /dev/null to discard ${what})`})
    return {stream: process.stdout, close: async () => {}}
  }
  const stream = createWriteStream(path)
  return {
    stream,
    close: async () => {
      stream.end()
      await once(stream, 'finish')
    },
  }
}

/** Plain periodic progress lines on stderr (every `everyMs`); returns a stop function. */
export function startProgressLines(tracker: ProgressTracker, write: (line: string) => void, everyMs = process.stderr.isTTY ? 1000 : 5000): () => void {
  const timer = setInterval(() => write(formatProgress(tracker.snapshot())), everyMs)
  timer.unref()
  return () => clearInterval(timer)
}
