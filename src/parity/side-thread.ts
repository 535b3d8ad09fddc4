/**
 * The main-thread end of ./side-worker.ts: starts the worker for one side and turns its
 * canonical-line batches back into keyed rows (with acknowledgements, so the worker stays at
 * most a few batches ahead). Falls back to reading in this thread when the compiled worker is
 * not there (running from TypeScript sources).
 */
import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {Worker} from 'node:worker_threads'
import {CutoverError, type CutoverErrorOptions, type ErrorCode} from '../errors.js'
import {indexCanonical, type FlatBatch} from './canonical.js'
import type {SideWorkerData} from './side-worker.js'
import {NotSortedError, type SideCounters} from './sources.js'
import type {KeyedRow} from './types.js'

const WORKER = new URL('./side-worker.js', import.meta.url)

export function workerAvailable(): boolean {
  return WORKER.protocol === 'file:' && existsSync(fileURLToPath(WORKER))
}

/** Position after the last length read (module scratch: no tuple allocated per field). */
let after = 0

function readLength(text: string, p: number): number {
  let len = 0
  for (;;) {
    const c = text.charCodeAt(p++)
    if (c === 58) break // ':'
    len = len * 10 + (c - 48)
  }
  after = p
  return len
}

/** Canonical lines (merge.ts canonicalRow) back to rows. */
export function parseCanonical(text: string, nk: number, nv: number): KeyedRow[] {
  const rows: KeyedRow[] = []
  let p = 0
  const n = text.length
  while (p < n) {
    const key = new Array<string>(nk)
    for (let i = 0; i < nk; i++) {
      const len = readLength(text, p)
      key[i] = text.slice(after, after + len)
      p = after + len
    }
    p++ // '|'
    const values = new Array<string | null>(nv)
    for (let i = 0; i < nv; i++) {
      if (text.charCodeAt(p) === 45) {
        values[i] = null
        p++
        continue
      }
      const len = readLength(text, p)
      values[i] = text.slice(after, after + len)
      p = after + len
    }
    p++ // '\n'
    rows.push({key, values})
  }
  return rows
}

type Message =
  | {type: 'batch'; text: string}
  | {type: 'end'; digest: string | undefined; counters: SideCounters}
  | {type: 'error'; notSorted?: 'left' | 'right'; error: {name: string; message: string; code?: ErrorCode; hint?: string; exitCode?: CutoverErrorOptions['exitCode']; details?: Record<string, unknown>; retriable?: boolean}}

export class ThreadedSide {
  digest: string | undefined
  counters: SideCounters = {unreadable: 0, filtered: 0}

  constructor(private readonly data: SideWorkerData) {}

  /** The side's rows as flat batches (merge.ts indexCanonical of the worker's canonical lines). */
  async *batches(): AsyncGenerator<FlatBatch> {
    // a worker takes no process flags; a heap cap given to the process applies to it too
    const cap = process.execArgv.map((a) => /^--max-old-space-size=(\d+)$/.exec(a)?.[1]).find((v) => v !== undefined)
    const worker = new Worker(WORKER, {workerData: this.data, execArgv: [], ...(cap ? {resourceLimits: {maxOldGenerationSizeMb: Number(cap)}} : {})})
    const queue: (Message | {type: 'crash'; error: Error})[] = []
    let wake: (() => void) | undefined
    const push = (m: Message | {type: 'crash'; error: Error}) => {
      queue.push(m)
      const w = wake
      wake = undefined
      w?.()
    }
    worker.on('message', (m: Message) => push(m))
    worker.on('error', (e) => push({type: 'crash', error: e}))
    worker.on('exit', (code) => {
      if (code !== 0) push({type: 'crash', error: new Error(`the ${this.data.side} side's reader thread exited with code ${code}`)})
    })
    // the lines a worker does not hash are hashed here, as they arrive (in order)
    const hash = this.data.hashHere ? undefined : createHash('sha256')
    const nk = this.data.keyColumns.length
    const nv = this.data.columns.length
    try {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve))
        const m = queue.shift()!
        if (m.type === 'batch') {
          worker.postMessage({type: 'ack'})
          hash?.update(m.text)
          yield indexCanonical(m.text, nk, nv)
        } else if (m.type === 'end') {
          this.digest = m.digest ?? hash!.digest('hex')
          this.counters = m.counters
          return
        } else if (m.type === 'error') {
          if (m.notSorted) throw new NotSortedError(m.notSorted)
          const e = m.error
          if (e.code !== undefined) {
            throw new CutoverError(e.code, e.message, {
              ...(e.hint ? {hint: e.hint} : {}),
              ...(e.exitCode !== undefined ? {exitCode: e.exitCode} : {}),
              ...(e.details ? {details: e.details} : {}),
              ...(e.retriable !== undefined ? {retriable: e.retriable} : {}),
            })
          }
          throw new Error(e.message)
        } else {
          throw m.error
        }
      }
    } finally {
      await worker.terminate()
    }
  }
}
