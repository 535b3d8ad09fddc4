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
 * For files of 8 MB or more, file sides are read in worker threads (./side-thread.ts,
 * ./side-worker.ts): parsing and sorting run beside the main thread, which merges, compares
 * and hashes. pg: sides are read on the main thread (COPY text straight into canonical lines:
 * cheaper than copying them between threads; PostgreSQL does the rest).
 *
 * Digests: SHA-256 over the canonical rows of each side in key order (canonicalRow: each key
 * part and value as `<length>:<text>`, null as `-`, one line per row).
 */
import {createHash, type Hash} from 'node:crypto'
import {stat} from 'node:fs/promises'
import {isAbsolute, resolve} from 'node:path'
import type {ReaderContext} from '../../legacy-adapters/index.js'
import {canonicalRow, indexCanonical, type FlatBatch} from './canonical.js'
import {compareTextRange, equalTextRange, ParityCore, type ComparePlan} from './compare.js'
import {equalInPlace, type ColumnPlan} from './tolerances.js'
import {ThreadedSide, workerAvailable} from './side-thread.js'
import {canonicalSide, checkOrder, NotSortedError, pgKeyIndexOrder, type SideCounters, type SideSpec, type SortMode} from './sources.js'
import type {KeyedRow, RowValues} from './types.js'

export {canonicalRow, indexCanonical, type FlatBatch}

const NO_ROWS: FlatBatch = {text: '', rows: 0, offs: new Int32Array(0)}

/** Rows read in this thread as flat batches; each batch's canonical lines go into `hash` as it is read. */
async function* flatten(source: AsyncIterable<KeyedRow[]>, hash: Hash, nk: number, nv: number): AsyncGenerator<FlatBatch> {
  for await (const batch of source) {
    let text = ''
    for (const r of batch) text += canonicalRow(r)
    hash.update(text)
    yield indexCanonical(text, nk, nv)
  }
}

class Cursor {
  private b: FlatBatch = NO_ROWS
  /** the current row of the batch */
  private pos = 0
  private done = false
  private readonly it: AsyncIterator<FlatBatch>
  private readonly nf: number
  /** rows taken */
  rows = 0

  constructor(
    source: AsyncIterable<FlatBatch>,
    readonly nk: number,
    nv: number,
    private readonly digestOf: () => string,
  ) {
    this.it = source[Symbol.asyncIterator]()
    this.nf = nk + nv
  }

  /** Whether there is a current row: synchronously while the batch lasts, else a promise (next batch); false at the end. */
  ready(): boolean | Promise<boolean> {
    if (this.pos < this.b.rows) return true
    return this.load()
  }

  private async load(): Promise<boolean> {
    while (this.pos >= this.b.rows) {
      if (this.done) return false
      const n = await this.it.next()
      if (n.done) {
        this.done = true
        return false
      }
      this.b = n.value
      this.pos = 0
    }
    return true
  }

  get text(): string {
    return this.b.text
  }

  /** start of field f of the current row (-1: null) */
  start(f: number): number {
    return this.b.offs[(this.pos * this.nf + f) * 2]!
  }

  end(f: number): number {
    return this.b.offs[(this.pos * this.nf + f) * 2 + 1]!
  }

  key(): string[] {
    const key = new Array<string>(this.nk)
    for (let i = 0; i < this.nk; i++) key[i] = this.b.text.slice(this.start(i), this.end(i))
    return key
  }

  values(): RowValues {
    const nv = this.nf - this.nk
    const values = new Array<string | null>(nv)
    for (let i = 0; i < nv; i++) {
      const s = this.start(this.nk + i)
      values[i] = s < 0 ? null : this.b.text.slice(s, this.end(this.nk + i))
    }
    return values
  }

  next(): void {
    this.pos++
    this.rows++
  }

  /** Whether the next row of this batch has the current row's key; undefined when the current row is the batch's last. */
  nextSameKey(): boolean | undefined {
    if (this.pos + 1 >= this.b.rows) return undefined
    const t = this.b.text
    const o = this.b.offs
    const a = this.pos * this.nf * 2
    const b = a + this.nf * 2
    for (let i = 0; i < this.nk; i++) if (!equalTextRange(t, o[a + 2 * i]!, o[a + 2 * i + 1]!, t, o[b + 2 * i]!, o[b + 2 * i + 1]!)) return false
    return true
  }

  private keyIs(key: readonly string[]): boolean {
    for (let i = 0; i < this.nk; i++) {
      const k = key[i]!
      if (!equalTextRange(this.b.text, this.start(i), this.end(i), k, 0, k.length)) return false
    }
    return true
  }

  /** All rows of the current key (usually one), taken. */
  async group(): Promise<KeyedRow[]> {
    const first = {key: this.key(), values: this.values()}
    this.next()
    const rows = [first]
    for (;;) {
      let more = this.ready()
      if (more instanceof Promise) more = await more
      if (!more || !this.keyIs(first.key)) return rows
      rows.push({key: this.key(), values: this.values()})
      this.next()
    }
  }

  digest(): string {
    return this.digestOf()
  }

  async close(): Promise<void> {
    await this.it.return?.()
  }
}

/** Key order of the current rows of two cursors. */
function compareCurrent(L: Cursor, R: Cursor): number {
  for (let i = 0; i < L.nk; i++) {
    const c = compareTextRange(L.text, L.start(i), L.end(i), R.text, R.start(i), R.end(i))
    if (c !== 0) return c
  }
  return 0
}

/**
 * The current rows of both cursors, one on each side of a key: counted as matched when every
 * column is equal as ParityCore.pair would judge it, read in place (equal text and no
 * tolerance, or tolerances.equalInPlace); else handed to core.pair with their values.
 */
function pairCurrent(core: ParityCore, cols: readonly ColumnPlan[], L: Cursor, R: Cursor): void {
  const lt = L.text
  const rt = R.text
  const nk = L.nk
  for (let i = 0; i < cols.length; i++) {
    const c = cols[i]!
    const ls = L.start(nk + i)
    const rs = R.start(nk + i)
    if (ls < 0 || rs < 0) {
      if (ls < 0 && rs < 0 && c.tolerance === undefined) continue // null === null
    } else {
      const le = L.end(nk + i)
      const re = R.end(nk + i)
      if (c.tolerance === undefined && equalTextRange(lt, ls, le, rt, rs, re)) continue
      if (equalInPlace(c, lt, ls, le, rt, rs, re)) continue
    }
    core.pair(L.key(), L.values(), R.values())
    return
  }
  core.addMatched(1)
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
    // a file side is read, parsed and sorted (when needed) in a worker thread, while the main
    // thread merges and compares; kafka: sides stay here (their client settings), and so do
    // pg: sides (PostgreSQL does their work; their COPY text costs less to turn into lines
    // here than to copy between threads)
    if (spec.uri.scheme !== 'kafka' && spec.uri.scheme !== 'pg' && threaded && workerAvailable()) {
      const t = new ThreadedSide({
        side: spec.side,
        uri: spec.uri.text,
        keyColumns: spec.keyColumns,
        columns: spec.columns,
        ...(spec.date ? {date: spec.date} : {}),
        ...(spec.trimKeys ? {trimKeys: spec.trimKeys} : {}),
        mode,
        // the file's thread (csv-parse) is the slowest of the check: its lines are hashed here
        hashHere: false,
        ...(ctx.cwd ? {cwd: ctx.cwd} : {}),
        ...(ctx.databaseUrl ? {databaseUrl: ctx.databaseUrl} : {}),
        ...sortOpts,
      })
      threads[spec.side] = t
      return new Cursor(t.batches(), spec.keyColumns.length, spec.columns.length, () => t.digest!)
    }
    return textCursor(canonicalSide(spec, mode, ctx, c, sortOpts), spec.keyColumns.length, spec.columns.length)
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
  const cols = core.plan.columns
  let tick = 0
  for (;;) {
    let a = L.ready()
    if (a instanceof Promise) a = await a
    let b = R.ready()
    if (b instanceof Promise) b = await b
    if (!a && !b) break
    const c = !a ? 1 : !b ? -1 : compareCurrent(L, R)
    if (c < 0) {
      if (L.nextSameKey() === false) {
        core.leftOnly(L.key(), L.values())
        L.next()
      } else {
        const g = await L.group()
        if (g.length > 1) core.duplicate(g[0]!.key, valuesOf(g), [])
        else core.leftOnly(g[0]!.key, g[0]!.values)
      }
    } else if (c > 0) {
      if (R.nextSameKey() === false) {
        core.rightOnly(R.key(), R.values())
        R.next()
      } else {
        const g = await R.group()
        if (g.length > 1) core.duplicate(g[0]!.key, [], valuesOf(g))
        else core.rightOnly(g[0]!.key, g[0]!.values)
      }
    } else if (L.nextSameKey() === false && R.nextSameKey() === false) {
      pairCurrent(core, cols, L, R)
      L.next()
      R.next()
    } else {
      const gl = await L.group()
      const gr = await R.group()
      if (gl.length > 1 || gr.length > 1) core.duplicate(gl[0]!.key, valuesOf(gl), valuesOf(gr))
      else core.pair(gl[0]!.key, gl[0]!.values, gr[0]!.values)
    }
    if (onProgress && ++tick % 10_000 === 0) onProgress(L.rows + R.rows)
  }
  onProgress?.(L.rows + R.rows)
  return {left: L.digest(), right: R.digest()}
}

/** A cursor over canonical lines made in this thread (sources.canonicalSide), hashed here for the digest. */
function textCursor(source: AsyncIterable<string>, nk: number, nv: number): Cursor {
  const hash = createHash('sha256')
  let digest: string | undefined
  async function* flat(): AsyncGenerator<FlatBatch> {
    for await (const text of source) {
      hash.update(text)
      yield indexCanonical(text, nk, nv)
    }
  }
  return new Cursor(flat(), nk, nv, () => (digest ??= hash.digest('hex')))
}

/** A cursor over rows read in this thread (hashed here for the digest). */
function localCursor(source: AsyncIterable<KeyedRow[]>, nk: number, nv: number): Cursor {
  const hash = createHash('sha256')
  let digest: string | undefined
  return new Cursor(flatten(source, hash, nk, nv), nk, nv, () => (digest ??= hash.digest('hex')))
}

/** Merge-joins two key-ordered streams of rows into the core (used by bisect for the ranges that differ). */
export async function joinSorted(core: ParityCore, left: AsyncIterable<KeyedRow[]>, right: AsyncIterable<KeyedRow[]>, onProgress?: (rows: number) => void): Promise<void> {
  const nk = core.plan.keyColumns.length
  const nv = core.plan.columns.length
  const L = localCursor(checkOrder(left, 'left'), nk, nv)
  const R = localCursor(checkOrder(right, 'right'), nk, nv)
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
