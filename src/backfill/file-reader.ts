/**
 * The main-thread side of the backfill's file reader (./reader-worker.ts): starts the worker,
 * hands out its packed batches in order, and returns it credit as they are taken. Errors thrown
 * in the worker (a missing file, a runaway quote) come back as the same kind of CutoverError,
 * with their code, hint, details and exit code.
 *
 * Used for csv: and fixed: sources without --spec when the compiled worker is next to this module
 * (dist/); otherwise (tests running the TypeScript sources, CUTOVER_BACKFILL_WORKER=0) ./run.ts
 * reads in its own thread, with the same batches.
 */
import {existsSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {Worker} from 'node:worker_threads'
import type {Position} from '../../legacy-adapters/types.js'
import {CutoverError, SpecError, UsageError, ServiceUnavailableError, type RecordErrorCode} from '../errors.js'
import type {SupportedEncoding} from '../normalize/encoding.js'
import type {BackfillCounts} from './checkpoint.js'

export interface ReaderWorkerData {
  /** the source URI text */
  uri: string
  cwd?: string
  keyFields: string[]
  /** records + rejects per batch, as the in-thread loop cuts them */
  batchSize: number
  /** records already acknowledged (a resumed backfill), skipped by record number */
  skipRecords: number
  /**
   * a resumed backfill whose checkpoint has the digest of record `skipRecords` (position.last_sha256):
   * the worker checks that record when it reads it again, and fails with ./file-identity.ts'
   * resumePointMismatch (exit 2) before it posts a record of the resumed run
   */
  resumeCheck?: ResumeCheck
  /** the target topic's partition count: the worker picks each keyed record's partition (0: kafkajs does) */
  partitions: number
  /** batches the worker may have posted that the main thread has not taken */
  ahead: number
}

export interface ResumeCheck {
  id: string
  /** the file, resolved */
  path: string
  sha256: string
  last?: Position
}

export interface WorkerDead {
  code: RecordErrorCode
  message: string
  position: Position
  ordinal: number
  raw?: Uint8Array
  /** the reader's rawEncoding: `raw` is the file's bytes in this encoding, not UTF-8 text */
  rawEncoding?: SupportedEncoding
}

/**
 * One batch: `n` messages packed in `buf` as key, value and position-header bytes, one after the
 * other; `ends[3i..3i+2]` are where record i's key, value and position end. Records whose key is
 * null are listed in `nullKeys`.
 */
export interface PackedBatch {
  type: 'batch'
  n: number
  buf: Uint8Array
  ends: Int32Array
  nullKeys: number[]
  /** with `partitions`: record i's partition, as kafkajs' default partitioner picks it (-1: a null key) */
  parts?: Int32Array
  dead: WorkerDead[]
  meta: {records: number; last: Position | undefined; lastSha256: string | undefined; counts: BackfillCounts}
  /** source records this batch covers (sent + rejected) */
  processed: number
}

interface WorkerError {
  name: string
  message: string
  code?: string
  hint?: string
  retriable?: boolean
  exitCode?: number
  details?: Record<string, unknown>
  stack?: string
}

export type WorkerMessage = PackedBatch | {type: 'end'} | {type: 'error'; error: WorkerError}

/** The compiled worker module, or undefined when it cannot run here. */
export function readerWorkerUrl(): URL | undefined {
  if (process.env.CUTOVER_BACKFILL_WORKER === '0') return undefined
  const url = new URL('./reader-worker.js', import.meta.url)
  return url.protocol === 'file:' && import.meta.url.endsWith('.js') && existsSync(fileURLToPath(url)) ? url : undefined
}

function rebuild(e: WorkerError): Error {
  if (e.code === undefined || e.exitCode === undefined) {
    const err = new Error(e.message)
    err.name = e.name
    return err
  }
  const err = new CutoverError(e.code as never, e.message, {
    ...(e.hint !== undefined ? {hint: e.hint} : {}),
    ...(e.retriable !== undefined ? {retriable: e.retriable} : {}),
    exitCode: e.exitCode as never,
    ...(e.details ? {details: e.details} : {}),
  })
  const cls = ({UsageError, SpecError, ServiceUnavailableError} as Record<string, {prototype: object}>)[e.name]
  if (cls) Object.setPrototypeOf(err, cls.prototype)
  if (e.name === 'SpecError' && e.details) (err as unknown as {location: unknown}).location = {file: e.details.file, line: e.details.line, column: e.details.column}
  err.name = e.name
  return err
}

export interface ReaderThread {
  /** the packed batches, in order (once); breaking out of the loop stops the thread */
  batches(): AsyncGenerator<PackedBatch>
  /** stops the thread (idempotent) */
  close(): Promise<void>
}

/**
 * Starts reading the source in a worker thread now (its start-up overlaps the caller's own, such
 * as connecting to Kafka); the batches are taken with `batches()`.
 */
export function startReaderThread(url: URL, data: ReaderWorkerData): ReaderThread {
  const worker = new Worker(url, {workerData: data})
  const queue: WorkerMessage[] = []
  let failure: Error | undefined
  let exited = false
  let wake: (() => void) | undefined
  const notify = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  worker.on('message', (m: WorkerMessage) => {
    queue.push(m)
    notify()
  })
  worker.on('error', (e: Error) => {
    failure ??= e
    notify()
  })
  worker.on('exit', () => {
    exited = true
    notify()
  })
  const close = async (): Promise<void> => {
    if (!exited) await worker.terminate()
  }
  async function* batches(): AsyncGenerator<PackedBatch> {
    try {
      for (;;) {
        while (queue.length === 0 && !failure && !exited) await new Promise<void>((resolve) => (wake = resolve))
        const m = queue.shift()
        if (!m) {
          if (failure) throw failure
          throw new CutoverError('INTERNAL', 'the backfill reader thread stopped before the end of the source')
        }
        if (m.type === 'end') return
        if (m.type === 'error') throw rebuild(m.error)
        worker.postMessage('more')
        yield m
      }
    } finally {
      await close()
    }
  }
  return {batches, close}
}

/** Packed batches of the source, read in a worker thread; stop early with `return()` (break). */
export function readInWorker(url: URL, data: ReaderWorkerData): AsyncGenerator<PackedBatch> {
  return startReaderThread(url, data).batches()
}
