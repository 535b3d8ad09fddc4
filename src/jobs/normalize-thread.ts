/**
 * `cutover normalize` on two threads: this (main) thread reads and parses the source with the
 * same csv reader as the single-threaded path, and hands each batch, packed into one string
 * and a few typed arrays (PackingSink: no object per record), to one worker (./normalize-worker.ts) that normalizes, serializes and
 * de-duplicates it with the same code (`createRecordProcessor`). Replies come back in input
 * order (one worker, FIFO messages) and are written here, so the output is byte for byte the
 * single-threaded output. At most MAX_IN_FLIGHT batches are in the worker's queue: memory
 * stays bounded when the worker is the slower side.
 *
 * Used for csv: sources (their records are text values with a line and record number) when
 * the machine has a second core and the compiled worker is there (not when running from the
 * TypeScript sources); CUTOVER_NORMALIZE_THREADS=0 forces the single-threaded path.
 */
import {existsSync} from 'node:fs'
import {availableParallelism} from 'node:os'
import {fileURLToPath} from 'node:url'
import {Worker} from 'node:worker_threads'
import {readCsvRows, type CsvRowSink} from '../../legacy-adapters/csv.js'
import type {RawRecordError, ReaderContext} from '../../legacy-adapters/types.js'
import {parseSourceUri} from '../../legacy-adapters/uri.js'
import type {NormalizeCounts, RecordProcessorSpec} from './record-processor.js'
import type {NormalizeWorkerData, PackedBatch, WorkerReply} from './normalize-worker.js'

const WORKER = new URL('./normalize-worker.js', import.meta.url)
/** Batches (~256 KB of text each) handed over and not yet answered: enough for this thread to read on while the worker starts. */
const MAX_IN_FLIGHT = 16

function workerAvailable(): boolean {
  return WORKER.protocol === 'file:' && existsSync(fileURLToPath(WORKER))
}

/** Whether `normalize` of this source runs on a worker thread (see the header). */
export function useNormalizeThread(uri: string): boolean {
  const env = process.env.CUTOVER_NORMALIZE_THREADS
  if (env === '0') return false
  if (env === undefined && availableParallelism() < 2) return false
  let scheme: string
  try {
    scheme = parseSourceUri(uri).scheme
  } catch {
    return false // openSource reports it
  }
  return scheme === 'csv' && workerAvailable()
}

/**
 * Packs the csv reader's records batch by batch (`readCsvRows`): the values of the ok records
 * concatenated, their lengths, lines and record numbers in typed arrays, the unreadable
 * records as they are. No object per record on this thread.
 */
export class PackingSink implements CsvRowSink<PackedBatch> {
  private names: string[] = []
  private cols = 0
  private text = ''
  private lengths = new Int32Array(1 << 15)
  private lines = new Float64Array(1 << 12)
  private records = new Float64Array(1 << 12)
  private k = 0 // values so far
  private ok = 0
  private n = 0
  private errors: {i: number; record: RawRecordError}[] = []

  constructor(private readonly source: string) {}

  columns(names: string[]): void {
    this.names = names
    this.cols = names.length
  }

  get size(): number {
    return this.n
  }

  row(values: string[], line: number, record: number): void {
    const cols = this.cols
    if (values.length !== cols) throw new Error(`csv row with ${values.length} values for ${cols} columns`) // the reader rejects these
    if (this.k + cols > this.lengths.length) {
      const next = new Int32Array(Math.max(this.lengths.length * 2, this.k + cols))
      next.set(this.lengths)
      this.lengths = next
    }
    if (this.ok === this.lines.length) {
      const lines = new Float64Array(this.lines.length * 2)
      lines.set(this.lines)
      this.lines = lines
      const records = new Float64Array(this.records.length * 2)
      records.set(this.records)
      this.records = records
    }
    const L = this.lengths
    let k = this.k
    for (let j = 0; j < cols; j++) L[k++] = values[j]!.length
    this.k = k
    this.text += values.join('')
    this.lines[this.ok] = line
    this.records[this.ok] = record
    this.ok++
    this.n++
  }

  error(record: RawRecordError): void {
    this.errors.push({i: this.n, record})
    this.n++
  }

  take(): PackedBatch {
    const m: PackedBatch = {
      kind: 'packed',
      n: this.n,
      scheme: 'csv',
      source: this.source,
      columns: this.names,
      text: this.text,
      lengths: this.lengths.slice(0, this.k),
      lines: this.lines.slice(0, this.ok),
      records: this.records.slice(0, this.ok),
      errors: this.errors,
    }
    this.text = ''
    this.k = 0
    this.ok = 0
    this.n = 0
    this.errors = []
    return m
  }
}

/** The csv source of `uri`, read into packed batches (see useNormalizeThread: csv only). */
export function packedCsvSource(uri: string, ctx: ReaderContext): AsyncIterable<PackedBatch> {
  const parsed = parseSourceUri(uri)
  return readCsvRows(parsed, ctx, new PackingSink(parsed.target))
}

/**
 * Reads `source` here, processes it on the worker, and calls `output` with each batch's
 * clean and reject NDJSON, in input order; `counts` follows the worker's.
 */
export async function normalizeOnThread(
  source: AsyncIterable<PackedBatch>,
  spec: RecordProcessorSpec,
  withRejects: boolean,
  counts: NormalizeCounts,
  output: (clean: Uint8Array, bad: Uint8Array) => Promise<void>,
  stop?: AbortSignal,
): Promise<void> {
  // a worker takes no process flags; a heap cap given to the process applies to it too
  const cap = process.execArgv.map((a) => /^--max-old-space-size=(\d+)$/.exec(a)?.[1]).find((v) => v !== undefined)
  const data: NormalizeWorkerData = {spec, withRejects}
  const worker = new Worker(WORKER, {workerData: data, execArgv: [], ...(cap ? {resourceLimits: {maxOldGenerationSizeMb: Number(cap)}} : {})})
  const replies: WorkerReply[] = []
  let crashed: Error | undefined
  let finished = false
  let wake: (() => void) | undefined
  const signal = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  worker.on('message', (r: WorkerReply) => {
    replies.push(r)
    signal()
  })
  worker.on('error', (e: Error) => {
    crashed ??= e
    signal()
  })
  worker.on('exit', (code) => {
    if (!finished) crashed ??= new Error(`the normalize worker thread exited (code ${code})`)
    signal()
  })
  const next = async (): Promise<WorkerReply> => {
    for (;;) {
      const r = replies.shift()
      if (r !== undefined) return r
      if (crashed) throw crashed
      await new Promise<void>((resolve) => (wake = resolve))
    }
  }
  const handle = async (r: WorkerReply): Promise<void> => {
    if (r.type === 'error') {
      const e = new Error(r.error.message)
      e.name = r.error.name
      if (r.error.stack) e.stack = r.error.stack
      throw e
    }
    counts.read = r.counts.read
    counts.ok = r.counts.ok
    counts.rejected = r.counts.rejected
    counts.duplicates = r.counts.duplicates
    await output(r.clean, r.bad)
  }

  const it = source[Symbol.asyncIterator]()
  let inFlight = 0
  let readDone = false
  let readError: unknown
  let hasReadError = false
  try {
    for (;;) {
      let step: IteratorResult<PackedBatch>
      try {
        step = await it.next()
      } catch (e) {
        // As single-threaded: what was read before the error is written, then the error.
        readDone = true
        hasReadError = true
        readError = e
        break
      }
      if (step.done) {
        readDone = true
        break
      }
      const m = step.value
      worker.postMessage(m, [m.lengths.buffer as ArrayBuffer, m.lines.buffer as ArrayBuffer, m.records.buffer as ArrayBuffer])
      inFlight++
      while (!stop?.aborted && (inFlight >= MAX_IN_FLIGHT || (inFlight > 0 && replies.length > 0))) {
        await handle(await next())
        inFlight--
      }
      // stopped (SIGINT/SIGTERM): as single-threaded, the run ends after the batch in hand; the
      // batches still on the worker are neither waited for nor written, and nothing more is read
      if (stop?.aborted) return
    }
    while (inFlight > 0 && !stop?.aborted) {
      await handle(await next())
      inFlight--
    }
    if (hasReadError) throw readError
  } finally {
    finished = true
    if (!readDone) await it.return?.()
    await worker.terminate()
  }
}
