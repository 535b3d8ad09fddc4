/**
 * External merge sort of keyed rows with bounded memory, for sources that cannot sort
 * themselves (files, topics).
 *
 *   1. read up to `runRows` rows, sort them by key (stable: rows of one key keep their input
 *      order), and, unless the whole input fit in that one run, write the run to a temp file
 *      as NDJSON lines `[key, values]`;
 *   2. k-way merge the runs through a binary heap (ties go to the earlier run: stable).
 *
 * Memory: one run in memory while reading, then one 16 KiB chunk per run (at most FAN_IN runs at once)
 * while merging. The
 * temp directory is removed when the iteration ends (also on error or early return).
 */
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {once} from 'node:events'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {StringDecoder} from 'node:string_decoder'
import {compareKeys} from './compare.js'
import type {KeyedRow} from './types.js'

export interface SortOptions {
  runRows?: number
  tmpDir?: string
  /** called once per spilled run */
  onRun?: (rows: number) => void
}

export const DEFAULT_RUN_ROWS = 100_000
/** Runs merged at once; more runs are first merged into longer runs, FAN_IN at a time. */
export const FAN_IN = 16

const byKey = (a: KeyedRow, b: KeyedRow) => compareKeys(a.key, b.key)

async function writeRun(path: string, rows: KeyedRow[]): Promise<void> {
  const out = createWriteStream(path)
  let buf = ''
  for (const r of rows) {
    buf += JSON.stringify([r.key, r.values]) + '\n'
    if (buf.length > 1 << 20) {
      if (!out.write(buf)) await once(out, 'drain')
      buf = ''
    }
  }
  out.end(buf)
  await once(out, 'finish')
}

/**
 * Reads a run back, a chunk at a time (pulling the stream: one 16 KiB chunk per run in memory;
 * readline's async iterator would queue lines ahead of a slow consumer).
 */
async function writeRunStream(path: string, rows: AsyncIterable<KeyedRow[]>): Promise<void> {
  const out = createWriteStream(path)
  for await (const batch of rows) {
    let buf = ''
    for (const r of batch) buf += JSON.stringify([r.key, r.values]) + '\n'
    if (!out.write(buf)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
}

async function* readRun(path: string): AsyncGenerator<KeyedRow[]> {
  const decoder = new StringDecoder('utf8')
  let rest = ''
  for await (const chunk of createReadStream(path, {highWaterMark: 16 * 1024}) as AsyncIterable<Buffer>) {
    const text = rest + decoder.write(chunk)
    const batch: KeyedRow[] = []
    let start = 0
    let nl: number
    while ((nl = text.indexOf('\n', start)) !== -1) {
      const [key, values] = JSON.parse(text.slice(start, nl)) as [string[], (string | null)[]]
      batch.push({key, values})
      start = nl + 1
    }
    rest = text.slice(start)
    if (batch.length > 0) yield batch
  }
  rest += decoder.end()
  if (rest.trim() !== '') throw new Error(`sorted run ${path} ends without a newline`)
}

/** Sorts batches of keyed rows; yields sorted batches. */
export async function* externalSort(input: AsyncIterable<KeyedRow[]>, options: SortOptions = {}): AsyncGenerator<KeyedRow[]> {
  const runRows = options.runRows ?? DEFAULT_RUN_ROWS
  let dir: string | undefined
  const runs: string[] = []
  try {
    let current: KeyedRow[] = []
    for await (const batch of input) {
      for (const r of batch) current.push(r)
      if (current.length >= runRows) {
        dir ??= await mkdtemp(join(options.tmpDir ?? tmpdir(), 'cutover-parity-'))
        current.sort(byKey)
        const path = join(dir, `run-${runs.length}.ndjson`)
        await writeRun(path, current)
        runs.push(path)
        options.onRun?.(current.length)
        current = []
      }
    }
    current.sort(byKey)
    if (runs.length === 0) {
      for (let i = 0; i < current.length; i += 1000) yield current.slice(i, i + 1000)
      return
    }
    if (current.length > 0) {
      const path = join(dir!, `run-${runs.length}.ndjson`)
      await writeRun(path, current)
      runs.push(path)
      options.onRun?.(current.length)
      current = []
    }
    // bounded fan-in: merge FAN_IN runs at a time into a longer run until FAN_IN are left
    let next = runs.length
    while (runs.length > FAN_IN) {
      const group = runs.splice(0, FAN_IN)
      const path = join(dir!, `run-${next++}.ndjson`)
      await writeRunStream(path, mergeRuns(group.map((p) => readRun(p))))
      await Promise.all(group.map((p) => rm(p, {force: true})))
      runs.push(path)
    }
    yield* mergeRuns(runs.map((p) => readRun(p)))
  } finally {
    if (dir) await rm(dir, {recursive: true, force: true})
  }
}

interface RunCursor {
  ix: number
  it: AsyncIterator<KeyedRow[]>
  batch: KeyedRow[]
  pos: number
}

async function advance(c: RunCursor): Promise<boolean> {
  c.pos++
  if (c.pos < c.batch.length) return true
  const n = await c.it.next()
  if (n.done) return false
  c.batch = n.value
  c.pos = 0
  return c.batch.length > 0
}

/** k-way merge of sorted runs (heap; ties to the lower run index). */
async function* mergeRuns(runs: AsyncIterator<KeyedRow[]>[]): AsyncGenerator<KeyedRow[]> {
  const heap: RunCursor[] = []
  const less = (a: RunCursor, b: RunCursor) => {
    const c = compareKeys(a.batch[a.pos]!.key, b.batch[b.pos]!.key)
    return c < 0 || (c === 0 && a.ix < b.ix)
  }
  const up = (i: number) => {
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!less(heap[i]!, heap[p]!)) break
      ;[heap[i], heap[p]] = [heap[p]!, heap[i]!]
      i = p
    }
  }
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < heap.length && less(heap[l]!, heap[m]!)) m = l
      if (r < heap.length && less(heap[r]!, heap[m]!)) m = r
      if (m === i) break
      ;[heap[i], heap[m]] = [heap[m]!, heap[i]!]
      i = m
    }
  }
  try {
    for (let ix = 0; ix < runs.length; ix++) {
      const c: RunCursor = {ix, it: runs[ix]!, batch: [], pos: -1}
      if (await advance(c)) {
        heap.push(c)
        up(heap.length - 1)
      }
    }
    let out: KeyedRow[] = []
    while (heap.length > 0) {
      const top = heap[0]!
      out.push(top.batch[top.pos]!)
      if (out.length >= 1000) {
        yield out
        out = []
      }
      if (await advance(top)) down(0)
      else {
        const last = heap.pop()!
        if (heap.length > 0) {
          heap[0] = last
          down(0)
        }
      }
    }
    if (out.length > 0) yield out
  } finally {
    await Promise.all(runs.map((r) => r.return?.()))
  }
}
