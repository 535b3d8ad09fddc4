/**
 * `cutover normalize` on two threads: this (main) thread reads and parses the source, as the
 * single-threaded path does, and hands each reader batch, packed into one string and a few
 * typed arrays, to one worker (./normalize-worker.ts) that normalizes, serializes and
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
import type {RawRecord, RawRecordError} from '../../legacy-adapters/types.js'
import {parseSourceUri} from '../../legacy-adapters/uri.js'
import {recordBatches} from '../../legacy-adapters/source.js'
import type {NormalizeCounts, RecordProcessorSpec} from './normalize.js'
import type {NormalizeWorkerData, PackedBatch, WorkerReply} from './normalize-worker.js'

const WORKER = new URL('./normalize-worker.js', import.meta.url)
const MAX_IN_FLIGHT = 4

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

type Pack = (fields: Record<string, unknown>, lengths: Int32Array, k: number) => string | null

/** Concatenates a record's values, column by column, noting each length; null if one is not a string. */
function packer(columns: string[]): Pack {
  const vs = columns.map((_, i) => `v${i}`)
  const body =
    columns.map((c, i) => `const v${i} = f[${JSON.stringify(c)}];`).join('\n') +
    `\nif (${vs.map((v) => `typeof ${v} !== 'string'`).join(' || ')}) return null;\n` +
    vs.map((v, i) => `L[k + ${i}] = ${v}.length;`).join('\n') +
    `\nreturn ${vs.join(' + ')};`
  return new Function('f', 'L', 'k', body) as Pack
}

export function packBatch(batch: RawRecord[], packers: Map<string, Pack>): {message: PackedBatch; transfer: ArrayBuffer[]} {
  const raw = {message: {kind: 'raw', batch} as PackedBatch, transfer: []}
  const first = batch.find((r) => r.ok)
  if (first === undefined) return raw
  const columns = Object.keys(first.fields)
  const cols = columns.length
  const key = columns.join('\u0000')
  let pack = packers.get(key)
  if (pack === undefined) packers.set(key, (pack = packer(columns)))
  const {scheme, source} = first.position
  const nOk = batch.reduce((n, r) => (r.ok ? n + 1 : n), 0)
  const lengths = new Int32Array(nOk * cols)
  const lines = new Float64Array(nOk)
  const records = new Float64Array(nOk)
  const errors: {i: number; record: RawRecordError}[] = []
  let text = ''
  let k = 0
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i]!
    if (!r.ok) {
      errors.push({i, record: r})
      continue
    }
    const p = r.position
    if (p.scheme !== scheme || p.source !== source || typeof p.line !== 'number' || typeof p.record !== 'number' || r.raw !== undefined) return raw
    const values = pack(r.fields, lengths, k * cols)
    if (values === null) return raw
    text += values
    lines[k] = p.line
    records[k] = p.record
    k++
  }
  let total = 0
  for (let i = 0; i < lengths.length; i++) total += lengths[i]!
  if (total !== text.length) return raw // a record without one of the columns
  return {
    message: {kind: 'packed', n: batch.length, scheme, source, columns, text, lengths, lines, records, errors},
    transfer: [lengths.buffer, lines.buffer, records.buffer],
  }
}

/**
 * Reads `source` here, processes it on the worker, and calls `output` with each batch's
 * clean and reject NDJSON, in input order; `counts` follows the worker's.
 */
export async function normalizeOnThread(
  source: AsyncIterable<RawRecord>,
  spec: RecordProcessorSpec,
  withRejects: boolean,
  counts: NormalizeCounts,
  output: (clean: Uint8Array, bad: Uint8Array) => Promise<void>,
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

  const packers = new Map<string, Pack>()
  const it = recordBatches(source)[Symbol.asyncIterator]()
  let inFlight = 0
  let readDone = false
  let readError: unknown
  let hasReadError = false
  try {
    for (;;) {
      let step: IteratorResult<RawRecord[]>
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
      const {message, transfer} = packBatch(step.value, packers)
      worker.postMessage(message, transfer)
      inFlight++
      while (inFlight >= MAX_IN_FLIGHT || (inFlight > 0 && replies.length > 0)) {
        await handle(await next())
        inFlight--
      }
    }
    while (inFlight > 0) {
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
