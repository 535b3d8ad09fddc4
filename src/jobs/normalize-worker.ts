/**
 * The worker thread of `cutover normalize` (./normalize-thread.ts starts it): receives the
 * records the main thread read, packed (see PackedBatch), and runs the very same per-record
 * work as the single-threaded path (`createRecordProcessor`: normalize, serialize, dedupe,
 * clean and reject NDJSON), one batch at a time, in order. Replies with the batch's NDJSON
 * and the running counts.
 */
import {parentPort, workerData} from 'node:worker_threads'
import type {RawRecord, RawRecordError} from '../../legacy-adapters/types.js'
import {createRecordProcessor, type NormalizeCounts, type RecordProcessorSpec} from './record-processor.js'

export interface NormalizeWorkerData {
  spec: RecordProcessorSpec
  withRejects: boolean
}

/**
 * One reader batch of csv records. The values of the ok records are concatenated into `text`
 * (record by record, column by column) with their lengths in `lengths`, so that the batch
 * crosses threads as one string and a few typed arrays instead of thousands of objects.
 * Records the reader could not read travel as they are, with their index in the batch.
 */
export interface PackedBatch {
  kind: 'packed'
  n: number
  scheme: string
  source: string
  columns: string[]
  text: string
  lengths: Int32Array
  /** line and record number of each ok record */
  lines: Float64Array
  records: Float64Array
  errors: {i: number; record: RawRecordError}[]
}

export type WorkerReply =
  | {type: 'batch'; clean: Uint8Array; bad: Uint8Array; counts: NormalizeCounts}
  | {type: 'error'; error: {name: string; message: string; stack?: string}}

type Build = (text: string, starts: Int32Array, k: number) => Record<string, string>

/** `{"a": text.slice(starts[k], starts[k + 1]), ...}`: one object literal of constant keys per record. */
function recordBuilder(columns: string[]): Build {
  const body = 'return {' + columns.map((c, i) => `${JSON.stringify(c)}: t.slice(s[k + ${i}], s[k + ${i + 1}])`).join(', ') + '}'
  return new Function('t', 's', 'k', body) as Build
}

export function unpackBatch(m: PackedBatch, builders: Map<string, Build>): RawRecord[] {
  const cols = m.columns.length
  const key = m.columns.join('\u0000')
  let build = builders.get(key)
  if (build === undefined) builders.set(key, (build = recordBuilder(m.columns)))
  const nv = m.lengths.length
  const starts = new Int32Array(nv + 1)
  let o = 0
  for (let i = 0; i < nv; i++) {
    starts[i] = o
    o += m.lengths[i]!
  }
  starts[nv] = o
  const out: RawRecord[] = new Array(m.n)
  const {scheme, source, text, lines, records, errors} = m
  let e = 0
  let k = 0 // ok records so far
  for (let i = 0; i < m.n; i++) {
    if (e < errors.length && errors[e]!.i === i) {
      const r = errors[e++]!.record
      // a Buffer comes through postMessage as a Uint8Array
      out[i] = r.raw && !Buffer.isBuffer(r.raw) ? {...r, raw: Buffer.from((r.raw as Uint8Array).buffer, (r.raw as Uint8Array).byteOffset, (r.raw as Uint8Array).byteLength)} : r
      continue
    }
    out[i] = {ok: true, fields: build(text, starts, k * cols), position: {scheme, source, line: lines[k]!, record: records[k]!}}
    k++
  }
  return out
}

if (parentPort) {
  const port = parentPort
  const data = workerData as NormalizeWorkerData
  const counts: NormalizeCounts = {read: 0, ok: 0, rejected: {}, duplicates: 0}
  const processBatch = createRecordProcessor(data.spec, data.withRejects, counts)
  const builders = new Map<string, Build>()
  const utf8 = new TextEncoder()
  port.on('message', (m: PackedBatch) => {
    let reply: WorkerReply
    let transfer: ArrayBuffer[] = []
    try {
      const {clean, bad} = processBatch(unpackBatch(m, builders))
      // UTF-8 here, handed over without a copy: the main thread only writes the bytes
      const c = utf8.encode(clean)
      const b = utf8.encode(bad)
      reply = {type: 'batch', clean: c, bad: b, counts}
      transfer = [c.buffer as ArrayBuffer, b.buffer as ArrayBuffer]
    } catch (e) {
      const err = e as Error
      reply = {type: 'error', error: {name: err?.name ?? 'Error', message: err?.message ?? String(e), ...(err?.stack ? {stack: err.stack} : {})}}
    }
    port.postMessage(reply, transfer)
  })
}
