/**
 * One side of a merge, read in a worker thread: decoding and parsing a file (csv-parse, the
 * copybook decoder) or a PostgreSQL COPY stream, projecting the rows, sorting them when needed
 * and (hashHere) hashing them for the digest all run beside the main thread, which merges and
 * compares.
 *
 * Wire format (worker -> main), one message per batch of rows:
 *   {type: 'batch', text}   the rows as canonical lines (canonical.ts canonicalRow:
 *                           `<len>:<key>...|<len>:<value>|-...\n`), exactly the bytes hashed
 *   {type: 'end', digest, counters}   digest: SHA-256 of all lines (hashHere), else undefined
 *   {type: 'error', notSorted?: side, error: {name, code, message, hint, exitCode, details}}
 * main -> worker: {type: 'ack'} per batch consumed; the worker keeps at most 4 batches unacknowledged.
 * A message holds the reader's batches up to about MESSAGE_CHARS of text.
 */
// first: pg (through legacy-adapters) without its Cloudflare probe, which loads undici on Node 20
import '../pg/no-cloudflare-probe.js'
import {createHash} from 'node:crypto'
import {parentPort, workerData} from 'node:worker_threads'
import {parseSourceUri} from '../../legacy-adapters/index.js'
import {isCutoverError} from '../errors.js'
import {canonicalSide, NotSortedError, type DateFilter, type SideSpec, type SortMode} from './sources.js'

export interface SideWorkerData {
  side: 'left' | 'right'
  uri: string
  keyColumns: string[]
  columns: string[]
  date?: DateFilter
  /** per key column: trimmed (SideSpec.trimKeys) */
  trimKeys?: boolean[]
  mode: SortMode
  cwd?: string
  /** pg: sides: the database (in-process only: never logged) */
  databaseUrl?: string
  sortRunRows?: number
  tmpDir?: string
  /**
   * hash the lines here for the digest (else the main thread hashes them as they arrive:
   * for a file side, whose thread parsing the file is the slowest of the check)
   */
  hashHere: boolean
}

const MAX_UNACKED = 4
/** canonical text per message, about (a reader's batch is never split) */
const MESSAGE_CHARS = 256 * 1024

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
  const spec: SideSpec = {side: d.side, uri: parseSourceUri(d.uri), keyColumns: d.keyColumns, columns: d.columns, ...(d.date ? {date: d.date} : {}), ...(d.trimKeys ? {trimKeys: d.trimKeys} : {})}
  const counters = {unreadable: 0, filtered: 0}
  const hash = createHash('sha256')
  try {
    const batches = canonicalSide(spec, d.mode, {...(d.cwd ? {cwd: d.cwd} : {}), ...(d.databaseUrl ? {databaseUrl: d.databaseUrl} : {})}, counters, {...(d.sortRunRows ? {runRows: d.sortRunRows} : {}), ...(d.tmpDir ? {tmpDir: d.tmpDir} : {})})
    const send = async (text: string) => {
      if (d.hashHere) hash.update(text)
      while (unacked >= MAX_UNACKED) await new Promise<void>((resolve) => (wake = resolve))
      unacked++
      port.postMessage({type: 'batch', text})
    }
    // the readers' batches (~1,000 rows) go out in messages of about MESSAGE_CHARS: fewer messages and acknowledgements
    let pending = ''
    for await (const text of batches) {
      pending += text
      if (pending.length >= MESSAGE_CHARS) {
        await send(pending)
        pending = ''
      }
    }
    if (pending.length > 0) await send(pending)
    port.postMessage({type: 'end', digest: d.hashHere ? hash.digest('hex') : undefined, counters})
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
