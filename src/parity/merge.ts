/**
 * Strategy `merge`: both sides streamed in key order (./sources.ts: ORDER BY in PostgreSQL,
 * files as they are when already sorted, else an external merge sort) and merge-joined into
 * the core. Nothing but the current key group of each side is held in memory.
 *
 * Files are first read as they come; when a key turns up out of order the pass stops
 * (NotSortedError) and the check starts again with that side externally sorted: a sorted
 * file costs one read, an unsorted one a partial read more. A pg: table whose key index
 * gives code-point order is read the same way, in index order (no sort in PostgreSQL), and
 * read again with ORDER BY ... COLLATE "C" should a key come out of order.
 *
 * For files of 8 MB or more, both sides are read in worker threads (./side-thread.ts,
 * ./side-worker.ts): parsing, sorting and hashing run beside the main thread, which merges.
 *
 * Digests: SHA-256 over the canonical rows of each side in key order (canonicalRow: each key
 * part and value as `<length>:<text>`, null as `-`, one line per row).
 */
import {createHash, type Hash} from 'node:crypto'
import {stat} from 'node:fs/promises'
import {isAbsolute, resolve} from 'node:path'
import type {ReaderContext} from '../../legacy-adapters/index.js'
import {compareKeys, ParityCore, type ComparePlan} from './compare.js'
import {ThreadedSide, workerAvailable} from './side-thread.js'
import {checkOrder, NotSortedError, pgKeyIndexOrder, sortedSide, type SideCounters, type SideSpec, type SortMode} from './sources.js'
import type {KeyedRow, RowValues} from './types.js'

/** The canonical line of a row for the digest: every key part and value as `<length>:<text>` (null `-`), then a newline. */
export function canonicalRow(r: KeyedRow): string {
  let line = ''
  for (const k of r.key) line += k.length + ':' + k
  line += '|'
  for (const v of r.values) line += v === null ? '-' : v.length + ':' + v
  return line + '\n'
}

class Cursor {
  private batch: KeyedRow[] = []
  private pos = 0
  private done = false
  private readonly it: AsyncIterator<KeyedRow[]>
  private hashBuf = ''
  rows = 0

  /** `hash` null: the rows were hashed where they were read (a worker side), `digestOf` tells the result */
  constructor(
    source: AsyncIterable<KeyedRow[]>,
    private readonly hash: Hash | null,
    private readonly digestOf?: () => string,
  ) {
    this.it = source[Symbol.asyncIterator]()
  }

  /** The current row: synchronously while the batch lasts, else a promise of the next batch's first row; undefined at the end. */
  head(): KeyedRow | undefined | Promise<KeyedRow | undefined> {
    if (this.pos < this.batch.length) return this.batch[this.pos]
    return this.load()
  }

  private async load(): Promise<KeyedRow | undefined> {
    while (this.pos >= this.batch.length) {
      if (this.done) return undefined
      const n = await this.it.next()
      if (n.done) {
        this.done = true
        return undefined
      }
      this.batch = n.value
      this.pos = 0
    }
    return this.batch[this.pos]
  }

  private take(): KeyedRow {
    const r = this.batch[this.pos++]!
    this.rows++
    if (this.hash) {
      this.hashBuf += canonicalRow(r)
      if (this.hashBuf.length > 1 << 16) {
        this.hash.update(this.hashBuf)
        this.hashBuf = ''
      }
    }
    return r
  }

  /** All rows of the current key (usually one): synchronously unless the key runs past the batch. */
  group(): KeyedRow[] | Promise<KeyedRow[]> {
    const first = this.take()
    const next = this.batch[this.pos]
    if (next !== undefined) {
      if (compareKeys(next.key, first.key) !== 0) return [first]
      return this.more([first])
    }
    return this.done ? [first] : this.more([first])
  }

  private async more(rows: KeyedRow[]): Promise<KeyedRow[]> {
    for (;;) {
      const next = await this.head()
      if (next === undefined || compareKeys(next.key, rows[0]!.key) !== 0) return rows
      rows.push(this.take())
    }
  }

  digest(): string {
    if (!this.hash) return this.digestOf!()
    this.hash.update(this.hashBuf)
    this.hashBuf = ''
    return this.hash.digest('hex')
  }

  async close(): Promise<void> {
    await this.it.return?.()
  }
}

const valuesOf = (rows: KeyedRow[]): RowValues[] => rows.map((r) => r.values)

export interface MergeOutcome {
  core: ParityCore
  digests: {left: string; right: string}
  counters: {left: SideCounters; right: SideCounters}
  sort: {left: SortMode; right: SortMode}
}

export interface MergeOptions {
  plan: ComparePlan
  left: SideSpec
  right: SideSpec
  leftCtx: ReaderContext
  rightCtx: ReaderContext
  sortRunRows?: number
  tmpDir?: string
  /** rows compared so far (both sides) */
  onProgress?: (rows: number) => void
  /** read the sides in worker threads (when the compiled worker exists); default: when a file side is large */
  threads?: boolean
  /** a side is sorted (externally, or by PostgreSQL for a pg: table) after it turned out unsorted */
  onResort?: (side: 'left' | 'right', how: 'external' | 'database') => void
}

/** One merge-join pass. */
async function pass(o: MergeOptions, sort: {left: SortMode; right: SortMode}): Promise<MergeOutcome> {
  const core = new ParityCore(o.plan)
  const counters = {left: {unreadable: 0, filtered: 0}, right: {unreadable: 0, filtered: 0}}
  const sortOpts = {...(o.sortRunRows ? {runRows: o.sortRunRows} : {}), ...(o.tmpDir ? {tmpDir: o.tmpDir} : {})}
  const threads: Partial<Record<'left' | 'right', ThreadedSide>> = {}
  const threaded = o.threads ?? (await worthThreads([o.left, o.right], o.leftCtx))
  const cursor = (spec: SideSpec, mode: SortMode, ctx: ReaderContext, c: SideCounters): Cursor => {
    // each side is read, parsed, sorted (files) and hashed in a worker thread, while the
    // main thread merges and compares; kafka: sides stay here (their client settings)
    if (spec.uri.scheme !== 'kafka' && threaded && workerAvailable()) {
      const t = new ThreadedSide({
        side: spec.side,
        uri: spec.uri.text,
        keyColumns: spec.keyColumns,
        columns: spec.columns,
        ...(spec.date ? {date: spec.date} : {}),
        mode,
        ...(ctx.cwd ? {cwd: ctx.cwd} : {}),
        ...(ctx.databaseUrl ? {databaseUrl: ctx.databaseUrl} : {}),
        ...sortOpts,
      })
      threads[spec.side] = t
      return new Cursor(t.rows(), null, () => t.digest!)
    }
    return new Cursor(sortedSide(spec, mode, ctx, c, sortOpts), createHash('sha256'))
  }
  const L = cursor(o.left, sort.left, o.leftCtx, counters.left)
  const R = cursor(o.right, sort.right, o.rightCtx, counters.right)
  try {
    const digests = await joinCursors(core, L, R, o.onProgress)
    for (const s of ['left', 'right'] as const) if (threads[s]) counters[s] = threads[s].counters
    return {core, digests, counters, sort}
  } finally {
    await Promise.allSettled([L.close(), R.close()])
  }
}

/** Merge-joins two key-ordered cursors into the core; returns the digests of both. */
async function joinCursors(core: ParityCore, L: Cursor, R: Cursor, onProgress?: (rows: number) => void): Promise<{left: string; right: string}> {
  let tick = 0
  for (;;) {
    let a = L.head()
    if (a instanceof Promise) a = await a
    let b = R.head()
    if (b instanceof Promise) b = await b
    if (a === undefined && b === undefined) break
    const c = a === undefined ? 1 : b === undefined ? -1 : compareKeys(a.key, b.key)
    if (c < 0) {
      let g = L.group()
      if (g instanceof Promise) g = await g
      if (g.length > 1) core.duplicate(g[0]!.key, valuesOf(g), [])
      else core.leftOnly(g[0]!.key, g[0]!.values)
    } else if (c > 0) {
      let g = R.group()
      if (g instanceof Promise) g = await g
      if (g.length > 1) core.duplicate(g[0]!.key, [], valuesOf(g))
      else core.rightOnly(g[0]!.key, g[0]!.values)
    } else {
      let gl = L.group()
      if (gl instanceof Promise) gl = await gl
      let gr = R.group()
      if (gr instanceof Promise) gr = await gr
      if (gl.length > 1 || gr.length > 1) core.duplicate(gl[0]!.key, valuesOf(gl), valuesOf(gr))
      else core.pair(gl[0]!.key, gl[0]!.values, gr[0]!.values)
    }
    if (onProgress && ++tick % 10_000 === 0) onProgress(L.rows + R.rows)
  }
  onProgress?.(L.rows + R.rows)
  return {left: L.digest(), right: R.digest()}
}

/** Merge-joins two key-ordered streams of rows into the core (used by bisect for the ranges that differ). */
export async function joinSorted(core: ParityCore, left: AsyncIterable<KeyedRow[]>, right: AsyncIterable<KeyedRow[]>, onProgress?: (rows: number) => void): Promise<void> {
  const L = new Cursor(checkOrder(left, 'left'), createHash('sha256'))
  const R = new Cursor(checkOrder(right, 'right'), createHash('sha256'))
  try {
    await joinCursors(core, L, R, onProgress)
  } finally {
    await Promise.allSettled([L.close(), R.close()])
  }
}

/** Files from this size make threads worth their start (loading the readers in each worker). */
export const THREADS_FROM_BYTES = 8 * 1024 * 1024

async function worthThreads(sides: SideSpec[], ctx: ReaderContext): Promise<boolean> {
  for (const s of sides) {
    if (s.uri.scheme !== 'csv' && s.uri.scheme !== 'fixed') continue
    try {
      const size = (await stat(isAbsolute(s.uri.target) ? s.uri.target : resolve(ctx.cwd ?? process.cwd(), s.uri.target))).size
      if (size >= THREADS_FROM_BYTES) return true
    } catch {
      // the reader reports a missing file with its own message
    }
  }
  return false
}

/** How a side is first read: files as they come, pg: tables in their key index's order when that is code-point order, other pg: sides sorted by PostgreSQL. */
async function firstMode(s: SideSpec, ctx: ReaderContext): Promise<SortMode> {
  if (s.uri.scheme !== 'pg') return 'presorted'
  return (await pgKeyIndexOrder(s, ctx)) ? 'presorted' : 'database'
}

/**
 * Runs the merge strategy: presorted first for files and for pg: tables readable in key order through an index;
 * a side that is not is then sorted (files externally, pg: by PostgreSQL) and the pass starts again.
 */
export async function mergeStrategy(o: MergeOptions): Promise<MergeOutcome> {
  const [left, right] = await Promise.all([firstMode(o.left, o.leftCtx), firstMode(o.right, o.rightCtx)])
  const sort = {left, right}
  for (;;) {
    try {
      return await pass(o, sort)
    } catch (e) {
      if (!(e instanceof NotSortedError) || sort[e.side] !== 'presorted') throw e
      const how = o[e.side].uri.scheme === 'pg' ? 'database' : 'external'
      sort[e.side] = how
      o.onResort?.(e.side, how)
    }
  }
}
