/**
 * The backfill's file reader, in a worker thread (./file-reader.ts starts it): reads a csv: or
 * fixed: source through the legacy adapter, and turns its records into the messages backfill
 * sends (key, value = JSON of the raw fields, the position header), packed per batch into one
 * byte buffer that is transferred, not copied, to the main thread. The main thread is left with
 * kafkajs alone, as a bare kafkajs producer would be; parsing, JSON.stringify and their garbage
 * live on the second core.
 *
 * Batches are cut exactly as the in-thread loop of ./run.ts cuts them (`batchSize` records plus
 * rejects), the skip of a resumed backfill is by record number as there, and a rejected record
 * travels as a small object (the main thread makes its dead letter, with the same code as for
 * any other source). The worker runs at most `ahead` batches ahead of what the main thread has
 * taken (`more` messages return credit), so memory stays bounded whatever the pace.
 */
// first: pg (through legacy-adapters) without its Cloudflare probe, which loads undici on Node 20
import '../pg/no-cloudflare-probe.js'
import {parentPort, workerData} from 'node:worker_threads'
import {formatPosition, openSource, parseSourceUri, recordBatches} from '../../legacy-adapters/index.js'
import type {Position, RawRecord} from '../../legacy-adapters/types.js'
import {emptyCounts} from './checkpoint.js'
import {resumePointMismatch} from './file-identity.js'
import {keyFunction, partitionOfKey, recordSha256} from './records.js'
import type {PackedBatch, ReaderWorkerData, WorkerDead, WorkerMessage} from './file-reader.js'

const data = workerData as ReaderWorkerData
const port = parentPort!
let credit = data.ahead
let wake: (() => void) | undefined
port.on('message', (m: unknown) => {
  if (m === 'more') {
    credit++
    const w = wake
    wake = undefined
    w?.()
  }
})

class Packer {
  buf: Buffer
  off = 0
  ends: number[] = []
  nullKeys: number[] = []
  parts: number[] = []
  n = 0
  constructor(
    size: number,
    private readonly partitions: number,
  ) {
    this.buf = Buffer.allocUnsafeSlow(size)
  }

  private put(s: string): void {
    const need = this.off + s.length * 3
    if (need > this.buf.length) {
      const next = Buffer.allocUnsafeSlow(Math.max(need, this.buf.length * 2))
      this.buf.copy(next, 0, 0, this.off)
      this.buf = next
    }
    this.off += this.buf.write(s, this.off)
    this.ends.push(this.off)
  }

  add(key: string | null, value: string, position: string): void {
    const start = this.off
    if (key === null) this.nullKeys.push(this.n)
    this.put(key ?? '')
    // the partition kafkajs' default partitioner would pick, so that the main thread's kafkajs
    // skips its murmur2 (Long arithmetic, an allocation per step); null keys: kafkajs round-robins
    if (this.partitions > 0) this.parts.push(key === null ? -1 : partitionOfKey(this.buf, start, this.off - start, this.partitions))
    this.put(value)
    this.put(position)
    this.n++
  }
}

async function main(): Promise<void> {
  const uri = parseSourceUri(data.uri)
  const keyFrom = keyFunction(data.keyFields)
  const hasKey = data.keyFields.length > 0
  const batchSize = data.batchSize
  const check = data.resumeCheck
  let ordinal = 0
  let estimate = batchSize * 160
  let packer = new Packer(estimate, data.partitions)
  let dead: WorkerDead[] = []
  let counts = emptyCounts()
  let last: Position | undefined
  let lastRecord: RawRecord | undefined
  let records = 0
  let processed = 0

  const post = async (): Promise<void> => {
    while (credit <= 0) await new Promise<void>((resolve) => (wake = resolve))
    credit--
    const buf = packer.buf
    const batch: PackedBatch = {
      type: 'batch',
      n: packer.n,
      buf: new Uint8Array(buf.buffer, buf.byteOffset, packer.off),
      ends: Int32Array.from(packer.ends),
      nullKeys: packer.nullKeys,
      ...(data.partitions > 0 ? {parts: Int32Array.from(packer.parts)} : {}),
      dead,
      meta: {records, last, lastSha256: lastRecord ? recordSha256(lastRecord) : undefined, counts},
      processed,
    }
    port.postMessage(batch satisfies WorkerMessage, [buf.buffer as ArrayBuffer, batch.ends.buffer as ArrayBuffer, ...(batch.parts ? [batch.parts.buffer as ArrayBuffer] : [])])
    estimate = Math.max(estimate, Math.ceil(packer.off * 1.1))
    packer = new Packer(estimate, data.partitions)
    dead = []
    counts = emptyCounts()
    last = undefined
    lastRecord = undefined
    records = 0
    processed = 0
  }

  for await (const batch of recordBatches(openSource(uri, {...(data.cwd ? {cwd: data.cwd} : {})}))) {
    for (const r of batch) {
      ordinal++
      if (ordinal <= data.skipRecords) {
        if (check && ordinal === data.skipRecords && recordSha256(r) !== check.sha256) throw resumePointMismatch(check.id, data.uri, check.path, ordinal, check.last)
        continue
      }
      const pos = r.position
      records = ordinal
      last = pos
      lastRecord = r
      processed++
      counts.read++
      if (!r.ok) {
        counts.rejected++
        counts.rejected_by_code[r.code] = (counts.rejected_by_code[r.code] ?? 0) + 1
        dead.push({code: r.code, message: r.message, position: pos, ordinal, ...(r.raw ? {raw: new Uint8Array(r.raw)} : {}), ...(r.rawEncoding ? {rawEncoding: r.rawEncoding} : {})})
      } else {
        counts.sent++
        packer.add(hasKey ? keyFrom(r.fields) : null, JSON.stringify(r.fields), formatPosition(pos))
      }
      if (packer.n + dead.length >= batchSize) await post()
    }
  }
  if (check && ordinal < data.skipRecords) throw resumePointMismatch(check.id, data.uri, check.path, data.skipRecords, check.last, ordinal)
  if (records > 0) await post()
  port.postMessage({type: 'end'} satisfies WorkerMessage)
}

main().catch((e: unknown) => {
  const err = e as Error & {code?: string; hint?: string; retriable?: boolean; exitCode?: number; details?: Record<string, unknown>}
  port.postMessage({
    type: 'error',
    error: {name: err?.name ?? 'Error', message: err?.message ?? String(e), code: err?.code, hint: err?.hint, retriable: err?.retriable, exitCode: err?.exitCode, details: err?.details, stack: err?.stack},
  } satisfies WorkerMessage)
})
