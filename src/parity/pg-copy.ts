/**
 * The sorted pg: side of a merge, read with `COPY (SELECT ... ORDER BY ...) TO STDOUT`
 * instead of a cursor: PostgreSQL sends plain text lines and no per-row protocol messages,
 * and no row objects are built before the keyed rows. (legacy-adapters/pg.ts stays the
 * reader of record for everything else; this file only serves parity's ordered read.)
 *
 * Record layout (COPY text format, session TimeZone UTC, DateStyle ISO):
 *
 *   line   = field *(TAB field) LF
 *   field  = "\N"                       ; NULL
 *          / *(char / "\\" / "\t" / "\n" / "\r" / "\b" / "\f" / "\v")   ; backslash escapes
 *
 * Values are then given the pg: reader's text forms, so that both read paths hand the core
 * identical strings: boolean t/f -> true/false; timestamp "2026-11-20 09:15:00" ->
 * "2026-11-20T09:15:00"; timestamptz "... 06:15:00+00" -> "...T06:15:00Z". A compared column
 * of type money (or money[]) is read as numeric, as the pg: reader reads it (MONEY_CASTS: its
 * text follows lc_monetary, `::numeric` is exact): the SELECT is then wrapped,
 * `SELECT q."1", q."2"::numeric FROM (<sql>) AS q("1", "2")`, which keeps its order. Key columns
 * stay as they are: the ORDER BY sorts them by their own text (sources.ts sqlKeyExpr), which
 * the merge checks the order against, so a money key keeps its lc_monetary text here.
 */
import {StringDecoder} from 'node:string_decoder'
import pg from 'pg'
import {to as copyTo} from 'pg-copy-streams'
import {MONEY_CASTS} from '../../legacy-adapters/pg.js'
import {DEFAULT_DATABASE_URL} from '../config/env.js'
import {UsageError} from '../errors.js'
import {mapPgError, pgConnectionString} from '../pg/pool.js'
import type {KeyedRow} from './types.js'

const ESCAPES: Record<string, string> = {'\\': '\\', t: '\t', n: '\n', r: '\r', b: '\b', f: '\f', v: '\v'}

function unescape(s: string): string {
  return s.replace(/\\(.)/g, (_m, c: string) => ESCAPES[c] ?? c)
}

/** `v.replace(' ', 'T')` (the first space), by index */
function firstSpaceT(v: string): string {
  const i = v.charCodeAt(10) === 32 ? 10 : v.indexOf(' ')
  return i < 0 ? v : v.slice(0, i) + 'T' + v.slice(i + 1)
}

/** `v.replace(' ', 'T').replace(/\+00(?::00)?$/, 'Z')`, without the regex (1M values a side) */
export function timestamptzForm(v: string): string {
  const n = v.length
  let end = n
  if (n >= 3 && v.charCodeAt(n - 3) === 43 && v.charCodeAt(n - 2) === 48 && v.charCodeAt(n - 1) === 48) end = n - 3 // +00
  else if (n >= 6 && v.charCodeAt(n - 6) === 43 && v.charCodeAt(n - 5) === 48 && v.charCodeAt(n - 4) === 48 && v.charCodeAt(n - 3) === 58 && v.charCodeAt(n - 2) === 48 && v.charCodeAt(n - 1) === 48) end = n - 6 // +00:00
  const t = firstSpaceT(v)
  if (end === n) return t
  // the space (if any) lies before the offset, so the lengths from the end are unchanged
  return t.slice(0, t.length - (n - end)) + 'Z'
}

/** Trailing blanks of a char(n) value, which PostgreSQL pads and ignores in comparisons (as its ::text cast drops them). */
export function bpcharForm(v: string): string {
  let end = v.length
  while (end > 0 && v.charCodeAt(end - 1) === 32) end--
  return end === v.length ? v : v.slice(0, end)
}

const FORMS: Record<number, (v: string) => string> = {
  16: (v) => (v === 't' ? 'true' : v === 'f' ? 'false' : v),
  1042: bpcharForm, // char(n): `A1    ` is `A1`, as the key order (::text) and push-down see it
  1114: firstSpaceT,
  1184: timestamptzForm,
}

export interface CopyReadOptions {
  databaseUrl?: string
  /** the variable databaseUrl came from, for errors (default DATABASE_URL) */
  databaseUrlName?: string
  /** the SELECT: key columns first, then the compared columns */
  sql: string
  keyCount: number
  /** the source as given, for messages */
  source: string
}

/** What the COPY loop hands each line's fields to: a batch builder. */
interface LineSink<B> {
  /** one row: the fields in their final text forms (null for NULL) */
  row(fields: (string | null)[]): void
  rows: number
  take(): B
}

/** Keyed rows of a SELECT, in its order, in batches of about 1000. */
export function copyKeyedRows(o: CopyReadOptions): AsyncGenerator<KeyedRow[]> {
  const nk = o.keyCount
  return copyRows(o, () => {
    let batch: KeyedRow[] = []
    return {
      row(fields) {
        const key = new Array<string>(nk)
        for (let i = 0; i < nk; i++) key[i] = fields[i] ?? ''
        batch.push({key, values: fields.slice(nk)})
      },
      get rows() {
        return batch.length
      },
      take() {
        const b = batch
        batch = []
        return b
      },
    }
  })
}

/**
 * The same rows as batches of canonical lines (canonical.ts canonicalRow of each keyed row),
 * built straight from the COPY fields; `onKey` sees each row's key first (the caller's order
 * check: it may throw).
 */
export function copyCanonical(o: CopyReadOptions, onKey: (key: string[]) => void): AsyncGenerator<string> {
  const nk = o.keyCount
  return copyRows(o, () => {
    let text = ''
    let rows = 0
    return {
      row(fields) {
        const key = new Array<string>(nk)
        let line = ''
        for (let i = 0; i < nk; i++) {
          const k = fields[i] ?? ''
          key[i] = k
          line += k.length + ':' + k
        }
        onKey(key)
        line += '|'
        for (let i = nk; i < fields.length; i++) {
          const v = fields[i]
          line += v === null || v === undefined ? '-' : v.length + ':' + v
        }
        text += line + '\n'
        rows++
      },
      get rows() {
        return rows
      },
      take() {
        const t = text
        text = ''
        rows = 0
        return t
      },
    }
  })
}

/** `sql` with its compared money columns (after the `keyCount` keys) cast as MONEY_CASTS says, in the same order; `sql` itself without one. */
function moneyAsNumeric(sql: string, keyCount: number, fields: readonly {dataTypeID: number}[]): string {
  const cast = (i: number) => (i >= keyCount ? MONEY_CASTS[fields[i]!.dataTypeID]?.type : undefined)
  if (!fields.some((_, i) => cast(i) !== undefined)) return sql
  const cols = fields.map((_, i) => `q."${i + 1}"${cast(i) ? `::${cast(i)}` : ''}`)
  return `SELECT ${cols.join(', ')} FROM (${sql}) AS q(${fields.map((_, i) => `"${i + 1}"`).join(', ')})`
}

/** The COPY read behind both: rows of a SELECT, in its order, in batches of about 1000. */
async function* copyRows<B>(o: CopyReadOptions, sink: () => LineSink<B>): AsyncGenerator<B> {
  const url = o.databaseUrl ?? DEFAULT_DATABASE_URL
  const client = new pg.Client({connectionString: pgConnectionString(url), application_name: 'cutover-parity'})
  const fail = (e: unknown) => {
    const mapped = mapPgError(e, url, o.databaseUrlName)
    const sqlstate = mapped.details.sqlstate
    if (typeof sqlstate === 'string' && sqlstate.startsWith('42')) return new UsageError(`source "${o.source}": ${(e as Error).message}`, {cause: mapped, hint: 'check the table, the columns and where='})
    return mapped
  }
  try {
    await client.connect()
  } catch (e) {
    throw fail(e)
  }
  client.on('error', () => {}) // reported by the query that fails
  let stream: ReturnType<typeof copyTo> | undefined
  try {
    await client.query("SET TIME ZONE 'UTC'; SET datestyle = 'ISO, YMD'; SET cursor_tuple_fraction = 1; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    const shape = await client.query(`SELECT * FROM (${o.sql}) AS q LIMIT 0`)
    const forms = shape.fields.map((f) => FORMS[f.dataTypeID])
    const ncols = shape.fields.length
    stream = client.query(copyTo(`COPY (${moneyAsNumeric(o.sql, o.keyCount, shape.fields)}) TO STDOUT`))
    const decoder = new StringDecoder('utf8')
    let rest = ''
    const batch = sink()
    const fields = new Array<string | null>(ncols)
    const line = (text: string) => {
      // the fields between tabs (a tab inside a value is escaped as \t)
      let start = 0
      let i = 0
      for (;;) {
        const tab = text.indexOf('\t', start)
        const end = tab === -1 ? text.length : tab
        if (i >= ncols) {
          i++
          break
        }
        let v: string | null = text.slice(start, end)
        if (v === '\\N') v = null
        else {
          if (v.includes('\\')) v = unescape(v)
          const form = forms[i]
          if (form) v = form(v)
        }
        fields[i++] = v
        if (tab === -1) break
        start = tab + 1
      }
      if (i !== ncols) throw new Error(`COPY row has ${i > ncols ? text.split('\t').length : i} fields, expected ${ncols}`)
      batch.row(fields)
    }
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const text = rest + decoder.write(chunk)
      let start = 0
      let nl: number
      while ((nl = text.indexOf('\n', start)) !== -1) {
        line(text.slice(start, nl))
        start = nl + 1
      }
      rest = text.slice(start)
      if (batch.rows >= 1000) yield batch.take()
    }
    rest += decoder.end()
    if (rest.length > 0) line(rest)
    if (batch.rows > 0) yield batch.take()
    await client.query('COMMIT')
  } catch (e) {
    throw fail(e)
  } finally {
    stream?.destroy()
    await client.end().catch(() => {})
  }
}
