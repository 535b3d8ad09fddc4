/**
 * Strategy `bisect`: two pg: tables in different databases (CUTOVER_LEFT_DATABASE_URL /
 * CUTOVER_RIGHT_DATABASE_URL), where neither side can join the other. Only checksums of key
 * ranges cross the network, and rows only for the ranges that differ (after data-diff's
 * hash-and-bisect):
 *
 *   1. count the left side; split its key order (text, COLLATE "C") into about
 *      rows / leafRows leaves (at most fanout^3) with one ordered pass that keeps every n-th
 *      key as a bound;
 *   2. level by level (fanout^1, fanout^2, fanout^3 ranges), each side computes, in one scan,
 *      per range: count(*), the sum of hashtextextended(row text) and, without a unique key
 *      index, the number of repeated keys; a range whose numbers are equal on both sides is
 *      matched as a whole (addMatched), one that differs is split at the next level;
 *   3. the rows of the leaves that still differ are read from both sides in key order (COPY,
 *      ./pg-copy.ts) and merge-joined into the core (./merge.ts), which applies tolerances,
 *      normalization and rules exactly as the other strategies do.
 *
 * Row text is `ROW(key::text, col::text, ...)::text`, a money column's as `col::numeric::text`
 * (MONEY_CASTS: its text follows lc_monetary; the rows read in step 3 give it as numeric too,
 * ./pg-copy.ts), and a money key's as it is: sides with the same column types, or money against
 * numeric of the same scale, hash alike; a range whose text differs but whose values are equal
 * within tolerance is read and found matched by the core (correct, only slower). Ranges are computed with
 * width_bucket(key COLLATE "C", bounds); composite keys are bucketed by their text joined with
 * U+0001 and ordered by the real tuple. Digests: SHA-256 of the row count and hash sum.
 */
import {createHash} from 'node:crypto'
import pg from 'pg'
import {MONEY_CASTS, pgSql} from '../../legacy-adapters/pg.js'
import {UsageError} from '../errors.js'
import type {Logger} from '../log.js'
import {mapPgError, pgConnectionString} from '../pg/pool.js'
import {ParityCore, type ComparePlan} from './compare.js'
import {joinSorted} from './merge.js'
import {copyKeyedRows} from './pg-copy.js'
import {quoteIdent, sqlDateCondition, sqlKeyExpr, type SideSpec} from './sources.js'
import {hasUniqueKey} from './sql-pushdown.js'

export interface BisectOptions {
  plan: ComparePlan
  left: SideSpec
  right: SideSpec
  leftDatabaseUrl: string
  rightDatabaseUrl: string
  /** the variables they came from, for errors (default DATABASE_URL) */
  leftDatabaseUrlName?: string
  rightDatabaseUrlName?: string
  /** rows per leaf range (default 1000) */
  leafRows?: number
  /** ranges per split (default 16) */
  fanout?: number
  logger?: Logger
  onProgress?: (rows: number) => void
}

export interface BisectOutcome {
  core: ParityCore
  digests: {left: string; right: string}
  /** rows read in full from each side (the rest was settled by checksums) */
  rowsRead: number
  ranges: {level: number; compared: number; differing: number}[]
}

/**
 * A string literal for SQL text sent without parameters (bounds are data: key values of the left
 * side, sent to both). pg.escapeLiteral doubles quotes, and backslashes in an E'' literal, so a
 * key holding a backslash reads the same whatever the server's standard_conforming_strings (a
 * legacy server may have it off; then a plain '...' literal takes a backslash as an escape).
 */
function literal(s: string): string {
  return pg.escapeLiteral(s)
}

function textArray(xs: string[]): string {
  return `ARRAY[${xs.map(literal).join(',')}]::text[]`
}

interface Side {
  spec: SideSpec
  url: string
  /** the variable url came from, for errors */
  urlName?: string
  client: pg.Client
  rel: string
  unique: boolean
  /** per compared column: the type a money column is read as (MONEY_CASTS) */
  casts: (string | undefined)[]
}

function relation(s: SideSpec): string {
  const where = s.date ? ` WHERE ${sqlDateCondition('s', s.date, `DATE ${literal(s.date.value)}`)}` : ''
  return `(SELECT s.* FROM (${pgSql(s.uri)}) AS s${where})`
}

/** The key text that ranges are cut on (one column: its text; several: joined with U+0001). */
function bucketKey(s: SideSpec): string {
  return s.keyColumns.length === 1 ? sqlKeyExpr('s', s.keyColumns[0]!) : s.keyColumns.map((k) => sqlKeyExpr('s', k)).join(` || chr(1) || `)
}

function rowText(side: Side): string {
  const s = side.spec
  const cols = [...s.keyColumns.map((c) => `s.${quoteIdent(c)}::text`), ...s.columns.map((c, i) => `s.${quoteIdent(c)}${side.casts[i] ? `::${side.casts[i]}` : ''}::text`)]
  return `ROW(${cols.join(', ')})::text`
}

/** The database whose query raised an error: bisect's errors are told with that side's address and variable, not always the left's. */
const failedOn = new WeakMap<object, {url: string; urlName?: string | undefined}>()

function tagSide(e: unknown, side: {url: string; urlName?: string | undefined}): unknown {
  if (e !== null && typeof e === 'object' && !failedOn.has(e)) failedOn.set(e, side)
  return e
}

function onSide<T>(side: {url: string; urlName?: string | undefined}, p: Promise<T>): Promise<T> {
  return p.catch((e: unknown) => {
    throw tagSide(e, side)
  })
}

async function open(spec: SideSpec, url: string, urlName: string | undefined): Promise<Side> {
  const client = new pg.Client({connectionString: pgConnectionString(url), application_name: 'cutover-parity'})
  try {
    await client.connect()
  } catch (e) {
    throw mapPgError(e, url, urlName)
  }
  client.on('error', () => {})
  try {
    await client.query("SET TIME ZONE 'UTC'; SET datestyle = 'ISO, YMD'; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    const unique = await hasUniqueKey(client, spec)
    const rel = relation(spec)
    const shape = await client.query(`SELECT ${spec.columns.map((c) => `s.${quoteIdent(c)}`).join(', ') || '1'} FROM ${rel} AS s LIMIT 0`)
    const casts = spec.columns.map((_, i) => MONEY_CASTS[shape.fields[i]!.dataTypeID]?.type)
    return {spec, url, ...(urlName ? {urlName} : {}), client, rel, unique, casts}
  } catch (e) {
    await client.end().catch(() => {})
    throw tagSide(e, {url, urlName})
  }
}

interface RangeStats {
  n: string
  h: string
  dups: string
}

/** Per range of `bounds`, among rows whose range at the parent level is in `parents` (all when undefined). */
async function rangeStats(side: Side, bounds: string[], parentBounds: string[] | undefined, parents: number[] | undefined): Promise<Map<number, RangeStats>> {
  const kb = bucketKey(side.spec)
  const filter = parentBounds && parents ? ` WHERE width_bucket(${kb} COLLATE "C", ${textArray(parentBounds)}) = ANY(ARRAY[${parents.join(',')}]::int[])` : ''
  const dups = side.unique ? '0' : `count(*) - count(DISTINCT ${kb})`
  const q = await onSide(
    side,
    side.client.query<{b: number; n: string; h: string; dups: string}>(
      `SELECT width_bucket(${kb} COLLATE "C", ${textArray(bounds)}) AS b, count(*)::text AS n,
            coalesce(sum(hashtextextended(${rowText(side)}, 0)), 0)::text AS h, (${dups})::text AS dups
       FROM ${side.rel} AS s${filter} GROUP BY 1`,
    ),
  )
  return new Map(q.rows.map((r) => [Number(r.b), {n: r.n, h: r.h, dups: r.dups}]))
}

export async function bisectStrategy(o: BisectOptions): Promise<BisectOutcome> {
  const fanout = o.fanout ?? 16
  const leafRows = o.leafRows ?? 1000
  const sides: Side[] = []
  try {
    const L = await open(o.left, o.leftDatabaseUrl, o.leftDatabaseUrlName)
    sides.push(L)
    const R = await open(o.right, o.rightDatabaseUrl, o.rightDatabaseUrlName)
    sides.push(R)
    // 1. bounds from the left side's key order
    const n = Number((await L.client.query<{n: string}>(`SELECT count(*)::text AS n FROM ${L.rel} AS s`)).rows[0]!.n)
    const leaves = Math.max(1, Math.min(fanout ** 3, Math.ceil(n / leafRows)))
    const step = Math.max(1, Math.floor(n / leaves))
    const kb = bucketKey(L.spec)
    const sample = await L.client.query<{k: string}>(
      `SELECT k FROM (SELECT ${kb} AS k, row_number() OVER (ORDER BY ${kb} COLLATE "C") AS rn FROM ${L.rel} AS s) AS x WHERE rn % ${step} = 0 ORDER BY k COLLATE "C"`,
    )
    const leafBounds = [...new Set(sample.rows.map((r) => r.k))]
    const levels: string[][] = []
    for (let per = fanout ** 2; per >= 1; per = Math.floor(per / fanout)) {
      const b = leafBounds.filter((_, i) => (i + 1) % per === 0)
      if (b.length > 0 && (levels.length === 0 || b.length > levels[levels.length - 1]!.length)) levels.push(b)
      if (per === 1) break
    }
    if (levels.length === 0) levels.push([])
    const core = new ParityCore(o.plan)
    const totals = {left: {n: 0n, h: 0n}, right: {n: 0n, h: 0n}}
    const ranges: BisectOutcome['ranges'] = []
    // 2. level by level
    let differing: number[] | undefined
    let parentBounds: string[] | undefined
    for (let level = 0; level < levels.length; level++) {
      const bounds = levels[level]!
      const [ls, rs] = await Promise.all([rangeStats(L, bounds, parentBounds, differing), rangeStats(R, bounds, parentBounds, differing)])
      if (level === 0) {
        for (const [t, m] of [
          [totals.left, ls],
          [totals.right, rs],
        ] as const) {
          for (const v of m.values()) {
            t.n += BigInt(v.n)
            t.h += BigInt(v.h)
          }
        }
      }
      const next: number[] = []
      const ids = new Set([...ls.keys(), ...rs.keys()])
      for (const b of ids) {
        const a = ls.get(b)
        const c = rs.get(b)
        if (a && c && a.n === c.n && a.h === c.h && a.dups === '0' && c.dups === '0') core.addMatched(Number(a.n))
        else next.push(b)
      }
      ranges.push({level: level + 1, compared: ids.size, differing: next.length})
      o.logger?.debug('parity.bisect.level', {level: level + 1, ranges: ids.size, differing: next.length})
      differing = next.sort((x, y) => x - y)
      parentBounds = bounds
      if (differing.length === 0) break
    }
    // 3. the rows of the differing leaves, merge-joined
    let rowsRead = 0
    if (differing && differing.length > 0) {
      const fetch = (side: Side) => {
        const s = side.spec
        const cols = [...s.keyColumns, ...s.columns].map((c) => `s.${quoteIdent(c)}`)
        const order = s.keyColumns.map((k) => `${sqlKeyExpr('s', k)} COLLATE "C"`).join(', ')
        const sql = `SELECT ${cols.join(', ')} FROM ${side.rel} AS s WHERE width_bucket(${bucketKey(s)} COLLATE "C", ${textArray(parentBounds!)}) = ANY(ARRAY[${differing!.join(',')}]::int[]) ORDER BY ${order}`
        return copyKeyedRows({sql, keyCount: s.keyColumns.length, source: s.uri.text, databaseUrl: side.url, ...(side.urlName ? {databaseUrlName: side.urlName} : {})})
      }
      await joinSorted(core, fetch(L), fetch(R), (rows) => {
        rowsRead = rows
        o.onProgress?.(rows)
      })
    }
    const digest = (t: {n: bigint; h: bigint}) => createHash('sha256').update(`cutover-parity-bisect-v1 hashtextextended rows=${t.n} sum=${t.h}`).digest('hex')
    return {core, digests: {left: digest(totals.left), right: digest(totals.right)}, rowsRead, ranges}
  } catch (e) {
    const at = (e !== null && typeof e === 'object' && failedOn.get(e)) || {url: o.leftDatabaseUrl, urlName: o.leftDatabaseUrlName}
    const mapped = mapPgError(e, at.url, at.urlName)
    const sqlstate = mapped.details.sqlstate
    if (typeof sqlstate === 'string' && sqlstate.startsWith('42')) throw new UsageError(`parity bisect: ${(e as Error).message}`, {cause: mapped, hint: 'check the tables, columns and where= of both sources'})
    throw mapped
  } finally {
    await Promise.all(sides.map((s) => s.client.end().catch(() => {})))
  }
}
