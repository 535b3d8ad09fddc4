/**
 * Where a command's NDJSON goes: a file (`--out x.ndjson`), or stdout. Under `--json` stdout
 * carries only the result document, so data then needs a file (or is discarded with
 * `--out /dev/null`).
 */
import {accessSync, constants, createWriteStream, statSync} from 'node:fs'
import {dirname, resolve} from 'node:path'
import {once} from 'node:events'
import type {Writable} from 'node:stream'
import {UsageError} from '../errors.js'
import {formatProgress, type ProgressTracker} from '../jobs/progress.js'

export interface OpenedOutput {
  stream: Writable
  close(): Promise<void>
}

/**
 * A file a command will write (`--out`): its folder must exist and be writable, checked before
 * the work starts, so that a long run does not end in an error with its result thrown away.
 */
export function assertWritableFolder(path: string, flag: string): void {
  try {
    accessSync(path, constants.W_OK) // a file that exists and may be written (/dev/null too)
    return
  } catch {
    // a new file: its folder decides
  }
  const folder = dirname(resolve(path))
  let isDir = false
  try {
    isDir = statSync(folder).isDirectory()
  } catch {
    // missing
  }
  if (!isDir) throw new UsageError(`${flag} ${path}: the folder ${folder} does not exist`, {hint: `create it first (mkdir -p ${folder}), or write elsewhere`})
  try {
    accessSync(folder, constants.W_OK)
  } catch {
    throw new UsageError(`${flag} ${path}: the folder ${folder} is not writable`, {hint: 'write to a folder this user may write to'})
  }
}

export function openOutput(path: string | undefined, json: boolean, what: string, flag = '--out'): OpenedOutput {
  if (path === undefined || path === '-') {
    if (json) throw new UsageError(`--json prints the summary on stdout, so ${what} need a file`, {hint: `add --out <file> (or --out /dev/null to discard ${what})`})
    return {stream: process.stdout, close: async () => {}}
  }
  assertWritableFolder(path, flag)
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
