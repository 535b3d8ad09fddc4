/**
 * One side of a merge, read in a worker thread: decoding and parsing a file (csv-parse, the
 * copybook decoder) or a PostgreSQL COPY stream, projecting the rows, sorting them when needed
 * and hashing them for the digest all run beside the main thread, which merges and compares.
 *
 * Wire format (worker -> main), one message per batch of rows:
 *   {type: 'batch', text}   the rows as canonical lines (merge.ts canonicalRow:
 *                           `<len>:<key>...|<len>:<value>|-...\n`), exactly the bytes hashed
 *   {type: 'end', digest, counters}
 *   {type: 'error', notSorted?: side, error: {name, code, message, hint, exitCode, details}}
 * main -> worker: {type: 'ack'} per batch consumed; the worker keeps at most 4 batches unacknowledged.
 */
import {createHash} from 'node:crypto'
import {parentPort, workerData} from 'node:worker_threads'
import {parseSourceUri} from '../../legacy-adapters/index.js'
import {isCutoverError} from '../errors.js'
import {canonicalRow} from './merge.js'
import {NotSortedError, sortedSide, type SideSpec, type SortMode} from './sources.js'

export interface SideWorkerData {
  side: 'left' | 'right'
  uri: string
  keyColumns: string[]
  columns: string[]
  date?: {column: string; value: string}
  mode: SortMode
  cwd?: string
  /** pg: sides: the database (in-process only: never logged) */
  databaseUrl?: string
  sortRunRows?: number
  tmpDir?: string
}

const MAX_UNACKED = 4

async function main(): Promise<void> {
  const port = parentPort!
  const d = workerData as SideWorkerData
  let unacked = 0
  let wake: (() => void) | undefined
  port.on('message', (m: {type: string}) => {
    if (m.type === 'ack') {
      unacked--
      const w = wake
      wake = undefined
      w?.()
    }
  })
  const spec: SideSpec = {side: d.side, uri: parseSourceUri(d.uri), keyColumns: d.keyColumns, columns: d.columns, ...(d.date ? {date: d.date} : {})}
  const counters = {unreadable: 0, filtered: 0}
  const hash = createHash('sha256')
  try {
    const rows = sortedSide(spec, d.mode, {...(d.cwd ? {cwd: d.cwd} : {}), ...(d.databaseUrl ? {databaseUrl: d.databaseUrl} : {})}, counters, {...(d.sortRunRows ? {runRows: d.sortRunRows} : {}), ...(d.tmpDir ? {tmpDir: d.tmpDir} : {})})
    for await (const batch of rows) {
      let text = ''
      for (const r of batch) text += canonicalRow(r)
      hash.update(text)
      while (unacked >= MAX_UNACKED) await new Promise<void>((resolve) => (wake = resolve))
      unacked++
      port.postMessage({type: 'batch', text})
    }
    port.postMessage({type: 'end', digest: hash.digest('hex'), counters})
  } catch (e) {
    const err = e as Error
    port.postMessage({
      type: 'error',
      ...(e instanceof NotSortedError ? {notSorted: e.side} : {}),
      error: {
        name: err.name,
        message: err.message,
        ...(isCutoverError(e) ? {code: e.code, hint: e.hint, exitCode: e.exitCode, details: e.details, retriable: e.retriable} : {}),
      },
    })
  }
}

if (parentPort) await main()
