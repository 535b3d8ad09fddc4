/**
 * One side of a check as keyed rows in key order, from any source URI (legacy-adapters).
 *
 *   pg:     the reader's SQL wrapped as `SELECT ... FROM (<sql>) s [WHERE date] ORDER BY
 *           key::text COLLATE "C"`: PostgreSQL sorts, in the order the core uses (code points);
 *           identifiers are quoted, the date is a validated literal; read through COPY
 *           (./pg-copy.ts). A table whose key index gives code-point order and is stored
 *           about in key order (pgKeyIndexOrder) is first read `ORDER BY <key columns>` (an
 *           index scan, no sort), `presorted` like a file: the order is checked on the fly
 *           and the merge starts again with the COLLATE "C" sort at a key out of order;
 *   others: read as they come; `presorted` checks the order on the fly and throws
 *           NotSortedError at the first key out of order, `sorted: 'external'` sorts first
 *           (./sort.ts).
 *
 * Raw values become text (JSON numbers/booleans as String(v), objects as JSON) or null. Keys
 * are compared exactly as text, trimmed on both sides with `--normalize <key>=trim`
 * (SideSpec.trimKeys); a null key is "" here and in the ORDER BY (the push-down, like SQL,
 * never pairs null keys).
 */
import type {QueryConfig} from 'pg'
import {openSource, parseSourceUri, recordBatches, type RawRecord, type ReaderContext, type SourceUri} from '../../legacy-adapters/index.js'
import {foldedNameHint, pgSql} from '../../legacy-adapters/pg.js'
import {estimateCsvRecords} from '../../legacy-adapters/csv.js'
import {UsageError} from '../errors.js'
import {isFail} from '../normalize/index.js'
import {JsonNumberText} from '../normalize/json.js'
import {canonicalRow} from './canonical.js'
import {compareKeys} from './compare.js'
import {copyCanonical, copyKeyedRows} from './pg-copy.js'
import {externalSort} from './sort.js'
import {declaredDateReader} from './tolerances.js'
import type {KeyedRow} from './types.js'
import {quoteIdent} from '../pg/ident.js'

/** A side's reader context, with the variable its database URL came from, for errors (DATABASE_URL when not given; CUTOVER_LEFT_DATABASE_URL, ...). */
export type SideContext = ReaderContext & {databaseUrlName?: string}

export class NotSortedError extends Error {
  constructor(readonly side: 'left' | 'right') {
    super(`the ${side} side is not in key order`)
  }
}

export {quoteIdent} from '../pg/ident.js'

/**
 * `coalesce(x::text, '')` in the text form the readers give the core (pg-copy.ts FORMS, in a
 * session at TimeZone UTC): the SQL twin of keyText(), so that PostgreSQL sorts a key as the
 * core compares it. A timestamptz's `+00` is `Z` there, and `Z` sorts after the `.` of a
 * fraction where `+` sorts before it: ordered by its ::text, `10:00:00+00` came before
 * `10:00:00.25+00` and the merge stopped at "not in key order". The type is asked per row
 * (pg_typeof; a sort of 1M text keys ~8% slower), as the SQL is built without knowing it.
 */
export function sqlKeyExpr(alias: string, column: string): string {
  const c = `${alias}.${quoteIdent(column)}`
  return (
    `coalesce(CASE pg_typeof(${c}) WHEN 'timestamp with time zone'::regtype THEN regexp_replace(regexp_replace(${c}::text, ' ', 'T'), '\\+00(:00)?$', 'Z') ` +
    `WHEN 'timestamp without time zone'::regtype THEN regexp_replace(${c}::text, ' ', 'T') ELSE ${c}::text END, '')`
  )
}

/**
 * The characters String.prototype.trim removes (ECMAScript WhiteSpace and LineTerminator), as an
 * SQL expression of chr() calls: `btrim(x, KEY_TRIM_SQL)` trims a pg: side's key exactly as
 * keyOf trims a file's, so that PostgreSQL sorts the trimmed keys as the merge compares them.
 */
const TRIM_CODES = [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff]
export const KEY_TRIM_SQL = TRIM_CODES.map((c) => `chr(${c})`).join(' || ')

/** The key text of a side's key column `i` (`--normalize <key>=trim`: trimmed). */
function keyOf(s: SideSpec, v: unknown, i: number): string {
  const k = keyText(v)
  return s.trimKeys?.[i] === true ? k.trim() : k
}

/** The SQL of a pg: side's key column `i` as the core reads it (sqlKeyExpr; trimmed with `--normalize <key>=trim`). */
export function sideKeyExpr(alias: string, s: SideSpec, i: number): string {
  const e = sqlKeyExpr(alias, s.keyColumns[i]!)
  return s.trimKeys?.[i] === true ? `btrim(${e}, ${KEY_TRIM_SQL})` : e
}

export function keyText(v: unknown): string {
  if (v === null || v === undefined) return ''
  // a JSON number of 16+ digits as written; one a double holds (`1.0`) as the number it is (normalize/json.ts)
  if (v instanceof JsonNumberText) return v.number === undefined ? v.text : String(v.number)
  return typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v)
}

export function valueText(v: unknown): string | null {
  if (v === null || v === undefined) return null
  if (typeof v === 'string') return v
  if (v instanceof JsonNumberText) return v.number === undefined ? v.text : String(v.number)
  if (typeof v === 'object') return Buffer.isBuffer(v) ? v.toString('utf8') : JSON.stringify(v)
  return String(v)
}

export interface SideSpec {
  side: 'left' | 'right'
  uri: SourceUri
  keyColumns: string[]
  /** compared columns on this side, in plan order */
  columns: string[]
  date?: DateFilter
  /**
   * per key column: its values are trimmed (`--normalize <key>=trim`; merge only): a file's in
   * the reader, a pg: side's in the SELECT and its ORDER BY (sideKeyExpr), so that both sort
   * the trimmed key; such a pg: side is never read in its key index's order
   */
  trimKeys?: boolean[]
}

/**
 * The --date filter of a side: the rows whose `column` falls on the business day `value`.
 * `timezone` (an IANA zone, from the --spec field of that column): the day is the value's date
 * in that zone; set for a file or topic side (values without an offset are read in the zone),
 * and for a pg: side only when the column is a timestamptz (a timestamp without zone, a date
 * or text is taken as it is). Without it the day is the UTC date (the sessions run at UTC).
 */
export interface DateFilter {
  column: string
  value: string
  timezone?: string
  /**
   * The date formats of that spec field (a file or topic side): its values are read as the
   * normalizer reads them, a value in none of their shapes in DEFAULT_DAY_FORMATS (the
   * streaming side's ISO output; tolerances.ts declaredDateReader). Without it,
   * DEFAULT_DAY_FORMATS only.
   */
  formats?: string[]
}

/** The formats a file side's --date column is read in without a spec field's `formats`. */
export const DEFAULT_DAY_FORMATS: readonly string[] = ['iso', 'dd.MM.yyyy', 'yyyyMMdd', 'dd.MM.yyyy HH:mm:ss', 'MM/dd/yyyy HH:mm', 'yyyy-MM-dd HH:mm:ss', 'yyyyMMddHHmmss', 'epoch_ms']

/** An IANA zone name as an SQL string literal (validated: letters, digits, `_ + - /` only). */
export function sqlZoneLiteral(zone: string): string {
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(zone)) throw new UsageError(`time zone ${JSON.stringify(zone)} is not an IANA zone name`, {hint: 'give the spec field a zone such as Europe/Moscow'})
  return `'${zone}'`
}

/**
 * The SQL condition of a --date filter on `alias`, `day` the SQL expression of the day (a
 * literal or a parameter, typed date): `(s.col)::date = day` (in the session zone, UTC), or
 * with a zone (a timestamptz column) `(s.col AT TIME ZONE 'zone')::date = day`. The same in
 * every strategy (sorted read, sql-pushdown, bisect).
 */
export function sqlDateCondition(alias: string, d: DateFilter, day: string): string {
  const c = `${alias}.${quoteIdent(d.column)}`
  return d.timezone !== undefined ? `(${c} AT TIME ZONE ${sqlZoneLiteral(d.timezone)})::date = ${day}` : `(${c})::date = ${day}`
}

export interface SideCounters {
  unreadable: number
  filtered: number
}

/** The first record's field names (for the column plan); undefined for an empty source. */
export async function peekColumns(uri: SourceUri, ctx: ReaderContext): Promise<string[] | undefined> {
  return (await peekSide(uri, ctx))?.columns
}

/** peekColumns, with the PostgreSQL type OIDs of a pg: side's columns (pgTypes). */
export async function peekSide(uri: SourceUri, ctx: SideContext): Promise<{columns: string[]; pgTypes?: Record<string, number>} | undefined> {
  if (uri.scheme === 'pg') {
    const u: SourceUri = {...uri, params: {...uri.params, query: `SELECT * FROM (${pgSql(uri)}) AS s LIMIT 0`}, target: ''}
    const fields = await pgColumns(u, ctx, uri)
    return {columns: fields.map((f) => f.name), pgTypes: Object.fromEntries(fields.map((f) => [f.name, f.dataTypeID]))}
  }
  // a file's records all have its header's (or copybook's) fields; a topic's JSON records need
  // not: a producer may leave out a member that is null, so the columns are those of its first
  // PEEK_RECORDS records (in order of appearance), not of the first one alone
  const limit = uri.scheme === 'kafka' ? PEEK_RECORDS : 1
  const columns = new Set<string>()
  let seen = 0
  const it = openSource(uri, ctx)[Symbol.asyncIterator]()
  try {
    while (seen < limit) {
      const r = await it.next()
      if (r.done) break
      if (!r.value.ok) continue
      for (const c of Object.keys(r.value.fields)) columns.add(c)
      seen++
    }
  } finally {
    await it.return?.()
  }
  return seen === 0 ? undefined : {columns: [...columns]}
}

/** Records of a kafka: side whose field names make its columns. */
export const PEEK_RECORDS = 1000

/** `uri` is the probe (a query= of the source); `given` the source as written, for the hint on a name that exists in another case. */
async function pgColumns(uri: SourceUri, ctx: SideContext, given: SourceUri = uri): Promise<{name: string; dataTypeID: number}[]> {
  const pg = (await import('pg')).default
  const {DEFAULT_DATABASE_URL} = await import('../config/env.js')
  const {mapPgError, pgConnectionString} = await import('../pg/pool.js')
  const url = ctx.databaseUrl ?? DEFAULT_DATABASE_URL
  const client = new pg.Client({connectionString: pgConnectionString(url, ctx.logger), application_name: 'cutover-parity'})
  try {
    await client.connect()
    // as the reader does (legacy-adapters/pg.ts): a query= source cannot change anything, so its
    // column probe runs in a READ ONLY transaction, by the extended protocol (one statement: text
    // that closes the subquery and adds `; DELETE ...` is refused, not run)
    await client.query('BEGIN READ ONLY')
    const r = await client.query({text: uri.params.query!, queryMode: 'extended'} as QueryConfig)
    return r.fields.map((f) => ({name: f.name, dataTypeID: f.dataTypeID}))
  } catch (e) {
    const mapped = mapPgError(e, url, ctx.databaseUrlName)
    const sqlstate = mapped.details.sqlstate
    if (typeof sqlstate === 'string' && sqlstate.startsWith('42')) {
      // a name that exists in another case ("Upper" written as Upper): say how to quote it
      const folded = await client
        .query('ROLLBACK')
        .then(() => foldedNameHint(client, given, e))
        .catch(() => undefined)
      throw new UsageError(`source "${uri.text}": ${(e as Error).message}`, {cause: mapped, hint: folded ?? 'check the table name and the where= or query= SQL'})
    }
    throw mapped
  } finally {
    await client.end().catch(() => {})
  }
}

/**
 * About how many rows a side holds, for the ETA of progress lines: a table's planner estimate
 * (pg_class.reltuples; EXPLAIN's with where=: estimatePgRows), a CSV's size over the mean line length of its first 64 KiB (estimateCsvRecords); undefined
 * when unknown (queries, fixed-width, topics). Never fails the check.
 */
export async function estimateRows(uri: SourceUri, ctx: ReaderContext): Promise<number | undefined> {
  try {
    if (uri.scheme === 'pg') {
      // PostgreSQL's statistics, never a count (legacy-adapters/pg.ts estimatePgRows, as backfill's progress)
      const {estimatePgRows} = await import('../../legacy-adapters/pg.js')
      return (await estimatePgRows(uri, ctx))?.rows
    }
    // the estimate backfill and normalize show too (legacy-adapters/csv.ts)
    if (uri.scheme === 'csv') return await estimateCsvRecords(uri, ctx)
  } catch {
    // only an estimate: the check itself reports what is wrong with the source
  }
  return undefined
}

/** The ORDER BY'd SELECT of a pg: side: key columns first, then the compared columns. */
export function sortedPgSql(s: SideSpec): string {
  return sortedPgUri(s).params.query!
}

/**
 * The same SELECT ordered by the raw key columns in their own collation (no COLLATE "C",
 * no coalesce): what a btree index on the key gives without a sort. Used only when that
 * order is code-point order (pgKeyIndexOrder), and checked row by row anyway.
 */
export function indexOrderPgSql(s: SideSpec): string {
  // built from its parts: cutting the text at its last ' ORDER BY ' would cut inside a quoted key column named so
  return sortedPgUri(s, s.keyColumns.map((k) => `s.${quoteIdent(k)}`).join(', ')).params.query!
}

/** Correlation of the first key column with the table's physical order from which the index order is tried (an index scan then reads the heap about in order). */
export const INDEX_ORDER_MIN_CORRELATION = 0.9

/** libc collations that sort by code point (as COLLATE "C", and as compareText) */
const CODE_POINT_COLLATIONS = ['C', 'POSIX', 'C.UTF-8', 'C.utf8', 'ucs_basic']

/**
 * The query behind pgKeyIndexOrder (one boolean column `ok`), for a client of the side's
 * database: the side is a table (not query=) with a btree index leading with its key columns
 * (ascending, NOT NULL columns, the columns' collations) and a first key column stored about
 * in key order (pg_stats.correlation, from ANALYZE, at least INDEX_ORDER_MIN_CORRELATION), so
 * that an index scan in key order reads the heap about in order. With `codePoint`, the key
 * columns must also be text/varchar in a code-point collation (C, POSIX, C.UTF-8; the
 * database default when it is one of those), so that the index order is the core's order.
 * undefined when the side is not a table.
 */
export function keyIndexOrderQuery(s: SideSpec, codePoint: boolean, target: (name: string) => string): {text: string; values: unknown[]} | undefined {
  if (s.uri.scheme !== 'pg' || s.uri.params.query !== undefined || s.uri.params.order_by !== undefined || s.keyColumns.length === 0) return undefined
  // trimmed keys are sorted by their trimmed text, which no index on the raw columns gives
  if (s.trimKeys?.some(Boolean)) return undefined
  const textual = codePoint
    ? `AND k.atttypid IN (25, 1043)
                   AND CASE WHEN k.attcollation = 100 THEN (SELECT db.provider = 'c' AND db.datcollate = ANY($3::text[]) FROM db)
                            ELSE (SELECT co.collprovider = 'c' AND (co.collname = ANY($3::text[]) OR co.collcollate = ANY($3::text[])) FROM pg_collation co WHERE co.oid = k.attcollation) END`
    : 'AND $3::text[] IS NOT NULL'
  return {
    text: `WITH k AS (
           SELECT a.attnum, a.attname, a.attnotnull, a.atttypid, a.attcollation, o.n
             FROM unnest($2::text[]) WITH ORDINALITY AS o(name, n)
             LEFT JOIN pg_attribute a ON a.attrelid = $1::regclass AND a.attname = o.name AND NOT a.attisdropped
         ), db AS (
           SELECT d.datcollate, coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') AS provider FROM pg_database d WHERE d.datname = current_database()
         )
         SELECT (SELECT c.relkind IN ('r', 'p', 'm') FROM pg_class c WHERE c.oid = $1::regclass)
            AND (SELECT bool_and(k.attnum IS NOT NULL AND k.attnotnull ${textual}) FROM k)
            AND EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
                         WHERE i.indrelid = $1::regclass AND am.amname = 'btree' AND i.indpred IS NULL AND i.indnkeyatts >= $4
                           AND (SELECT bool_and((i.indkey::int2[])[k.n - 1] = k.attnum AND (i.indcollation::oid[])[k.n - 1] = k.attcollation AND (i.indoption::int2[])[k.n - 1] = 0) FROM k))
            AND coalesce((SELECT st.correlation >= $5 FROM pg_stats st JOIN pg_class c ON st.tablename = c.relname JOIN pg_namespace n ON n.oid = c.relnamespace AND st.schemaname = n.nspname
                           WHERE c.oid = $1::regclass AND st.attname = $6), false) AS ok`,
    values: [target(s.uri.target), s.keyColumns, CODE_POINT_COLLATIONS, s.keyColumns.length, INDEX_ORDER_MIN_CORRELATION, s.keyColumns[0]],
  }
}

/**
 * Whether a pg: side can be read in key order without a sort in PostgreSQL
 * (keyIndexOrderQuery with code-point order): then `ORDER BY` the raw key columns is an
 * index scan that reads the heap about in order. Only a guess: the order is checked row by
 * row anyway. Never fails (false on any error).
 */
export async function pgKeyIndexOrder(s: SideSpec, ctx: ReaderContext): Promise<boolean> {
  try {
    const {quoteQualifiedName} = await import('../../legacy-adapters/pg.js')
    const q = keyIndexOrderQuery(s, true, quoteQualifiedName)
    if (!q) return false
    const pg = (await import('pg')).default
    const {DEFAULT_DATABASE_URL} = await import('../config/env.js')
    const {pgConnectionString} = await import('../pg/pool.js')
    const client = new pg.Client({connectionString: pgConnectionString(ctx.databaseUrl ?? DEFAULT_DATABASE_URL, ctx.logger), application_name: 'cutover-parity'})
    await client.connect()
    try {
      const r = await client.query<{ok: boolean | null}>(q)
      return r.rows[0]?.ok === true
    } finally {
      await client.end().catch(() => {})
    }
  } catch {
    return false
  }
}

/** The ORDER BY'd pg: URI of one side (`orderBy`: instead of the key columns' text in "C" order). */
export function sortedPgUri(s: SideSpec, orderBy?: string): SourceUri {
  const base = pgSql(s.uri)
  // a trimmed key is selected as its trimmed text form (sideKeyExpr), which the ORDER BY sorts
  const cols = [...s.keyColumns.map((k, i) => (s.trimKeys?.[i] === true ? `${sideKeyExpr('s', s, i)} AS ${quoteIdent(k)}` : `s.${quoteIdent(k)}`)), ...s.columns.map((c) => `s.${quoteIdent(c)}`)]
  const order = orderBy ?? s.keyColumns.map((_, i) => `${sideKeyExpr('s', s, i)} COLLATE "C"`).join(', ')
  const where = s.date ? ` WHERE ${sqlDateCondition('s', s.date, `DATE '${s.date.value.replace(/'/g, "''")}'`)}` : ''
  const query = `SELECT ${cols.join(', ')} FROM (${base}) AS s${where} ORDER BY ${order}`
  const params: Record<string, string> = {query}
  if (s.uri.params.batch_size) params.batch_size = s.uri.params.batch_size
  return {scheme: 'pg', target: '', params, text: s.uri.text}
}

/**
 * The --date filter of a file side: true for a record of the day, false for another day, and
 * undefined when its date is missing or cannot be read (counted as unreadable, so that the run
 * warns of it, not as another day's record: such a row's key would be reported missing).
 */
function dateFilter(s: SideSpec): ((v: unknown) => boolean | undefined) | undefined {
  if (!s.date) return undefined
  // the business day is the value's date in the zone of its spec field (UTC without one)
  // the spec field's own formats (a legacy file's MM/dd/yyyy HH:mm), as the normalizer reads
  // them; a value in none of their shapes (the streaming side's ISO) in the default ones
  const read = declaredDateReader(s.date.formats, DEFAULT_DAY_FORMATS, s.date.timezone ?? 'UTC')
  const want = s.date.value
  return (v) => {
    const t = valueText(v)
    if (t === null || t.trim() === '') return undefined
    const d = read(t.trim(), 'date')
    return isFail(d) ? undefined : d === want
  }
}

/** Whether a record's date value is of the --date day; counted as filtered (another day) or unreadable when not. */
function onTheDay(filter: (v: unknown) => boolean | undefined, v: unknown, counters: SideCounters): boolean {
  const day = filter(v)
  if (day === true) return true
  if (day === undefined) counters.unreadable++
  else counters.filtered++
  return false
}

/** Raw records -> keyed rows (batches). */
async function* project(source: AsyncIterable<RawRecord>, s: SideSpec, counters: SideCounters): AsyncGenerator<KeyedRow[]> {
  const keys = s.keyColumns
  const cols = s.columns
  const filter = dateFilter(s)
  const dateCol = s.date?.column
  for await (const batch of recordBatches(source)) {
    const out: KeyedRow[] = []
    for (const r of batch) {
      if (!r.ok) {
        counters.unreadable++
        continue
      }
      const f = r.fields
      if (filter && !onTheDay(filter, f[dateCol!], counters)) continue
      const key = new Array<string>(keys.length)
      for (let i = 0; i < keys.length; i++) key[i] = keyOf(s, f[keys[i]!], i)
      const values = new Array<string | null>(cols.length)
      for (let i = 0; i < cols.length; i++) values[i] = valueText(f[cols[i]!])
      out.push({key, values})
    }
    if (out.length > 0) yield out
  }
}

/**
 * Raw records of a file read as it comes -> batches of canonical lines (canonical.ts), the
 * key order checked on the fly (NotSortedError, as checkOrder): project + checkOrder +
 * canonicalRow in one step, without a KeyedRow per record (the reader thread of a large file).
 */
async function* projectCanonical(source: AsyncIterable<RawRecord>, s: SideSpec, counters: SideCounters): AsyncGenerator<string> {
  const keys = s.keyColumns
  const cols = s.columns
  const nk = keys.length
  const filter = dateFilter(s)
  const dateCol = s.date?.column
  let prev: string[] | undefined
  let key = new Array<string>(nk)
  for await (const batch of recordBatches(source)) {
    let text = ''
    for (const r of batch) {
      if (!r.ok) {
        counters.unreadable++
        continue
      }
      const f = r.fields
      if (filter && !onTheDay(filter, f[dateCol!], counters)) continue
      let line = ''
      for (let i = 0; i < nk; i++) {
        const k = keyOf(s, f[keys[i]!], i)
        key[i] = k
        line += k.length + ':' + k
      }
      if (prev !== undefined && compareKeys(key, prev) < 0) throw new NotSortedError(s.side)
      const was = prev
      prev = key
      key = was ?? new Array<string>(nk)
      line += '|'
      for (let i = 0; i < cols.length; i++) {
        const v = valueText(f[cols[i]!])
        line += v === null ? '-' : v.length + ':' + v
      }
      text += line + '\n'
    }
    if (text.length > 0) yield text
  }
}

/**
 * sortedSide as batches of canonical lines (what a reader thread sends): the same rows in the
 * same order, the same text as canonicalRow of each.
 */
export async function* canonicalSide(s: SideSpec, mode: SortMode, ctx: SideContext, counters: SideCounters, sortOptions: {runRows?: number; tmpDir?: string} = {}): AsyncGenerator<string> {
  if (s.uri.scheme !== 'pg' && mode === 'presorted') {
    yield* projectCanonical(openSource(s.uri, ctx), s, counters)
    return
  }
  if (s.uri.scheme === 'pg') {
    let prev: string[] | undefined
    const sql = mode === 'presorted' ? indexOrderPgSql(s) : sortedPgSql(s)
    yield* copyCanonical({sql, keyCount: s.keyColumns.length, source: s.uri.text, ...copyDatabase(ctx)}, (key) => {
      if (prev !== undefined && compareKeys(key, prev) < 0) throw new NotSortedError(s.side)
      prev = key
    })
    return
  }
  for await (const batch of sortedSide(s, mode, ctx, counters, sortOptions)) {
    let text = ''
    for (const r of batch) text += canonicalRow(r)
    yield text
  }
}

/** The database of a pg: side's COPY read, and the variable it came from. */
function copyDatabase(ctx: SideContext): {databaseUrl?: string; databaseUrlName?: string} {
  return {...(ctx.databaseUrl ? {databaseUrl: ctx.databaseUrl} : {}), ...(ctx.databaseUrlName ? {databaseUrlName: ctx.databaseUrlName} : {})}
}

/** Checks key order on the fly; throws NotSortedError at the first key smaller than the one before. */
export async function* checkOrder(input: AsyncIterable<KeyedRow[]>, side: 'left' | 'right'): AsyncGenerator<KeyedRow[]> {
  let prev: string[] | undefined
  for await (const batch of input) {
    for (const r of batch) {
      if (prev !== undefined && compareKeys(r.key, prev) < 0) throw new NotSortedError(side)
      prev = r.key
    }
    yield batch
  }
}

/**
 * How a side comes in key order: `database` ORDER BY ... COLLATE "C" in PostgreSQL;
 * `presorted` read as it comes (a file; a pg: table in its key index's order), checked on
 * the fly; `external` ./sort.ts.
 */
export type SortMode = 'database' | 'presorted' | 'external'

/** Keyed rows of one side in key order. */
export function sortedSide(s: SideSpec, mode: SortMode, ctx: SideContext, counters: SideCounters, sortOptions: {runRows?: number; tmpDir?: string} = {}): AsyncIterable<KeyedRow[]> {
  if (s.uri.scheme === 'pg') {
    const sql = mode === 'presorted' ? indexOrderPgSql(s) : sortedPgSql(s)
    return checkOrder(copyKeyedRows({sql, keyCount: s.keyColumns.length, source: s.uri.text, ...copyDatabase(ctx)}), s.side)
  }
  const rows = project(openSource(s.uri, ctx), s, counters)
  if (mode === 'external') return externalSort(rows, sortOptions)
  return checkOrder(rows, s.side)
}

export function parseUri(text: string): SourceUri {
  return parseSourceUri(text)
}
