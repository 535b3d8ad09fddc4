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
 * "2026-11-20T09:15:00"; timestamptz "... 06:15:00+00" -> "...T06:15:00Z".
 */
import {StringDecoder} from 'node:string_decoder'
import pg from 'pg'
import {to as copyTo} from 'pg-copy-streams'
import {DEFAULT_DATABASE_URL} from '../config/env.js'
import {UsageError} from '../errors.js'
import {mapPgError} from '../pg/pool.js'
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

const FORMS: Record<number, (v: string) => string> = {
  16: (v) => (v === 't' ? 'true' : v === 'f' ? 'false' : v),
  1114: firstSpaceT,
  1184: timestamptzForm,
}

export interface CopyReadOptions {
  databaseUrl?: string
  /** the SELECT: key columns first, then the compared columns */
  sql: string
  keyCount: number
  /** the source as given, for messages */
  source: string
}

/** Keyed rows of a SELECT, in its order, in batches of about 1000. */
export async function* copyKeyedRows(o: CopyReadOptions): AsyncGenerator<KeyedRow[]> {
  const url = o.databaseUrl ?? DEFAULT_DATABASE_URL
  const client = new pg.Client({connectionString: url, application_name: 'cutover-parity'})
  const fail = (e: unknown) => {
    const mapped = mapPgError(e, url)
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
    const nk = o.keyCount
    stream = client.query(copyTo(`COPY (${o.sql}) TO STDOUT`))
    const decoder = new StringDecoder('utf8')
    let rest = ''
    let batch: KeyedRow[] = []
    const line = (text: string) => {
      const parts = text.split('\t')
      if (parts.length !== ncols) throw new Error(`COPY row has ${parts.length} fields, expected ${ncols}`)
      const key = new Array<string>(nk)
      const values = new Array<string | null>(ncols - nk)
      for (let i = 0; i < ncols; i++) {
        let v: string | null = parts[i]!
        if (v === '\\N') v = null
        else {
          if (v.includes('\\')) v = unescape(v)
          const form = forms[i]
          if (form) v = form(v)
        }
        if (i < nk) key[i] = v ?? ''
        else values[i - nk] = v
      }
      batch.push({key, values})
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
      if (batch.length >= 1000) {
        yield batch
        batch = []
      }
    }
    rest += decoder.end()
    if (rest.length > 0) line(rest)
    if (batch.length > 0) yield batch
    await client.query('COMMIT')
  } catch (e) {
    throw fail(e)
  } finally {
    stream?.destroy()
    await client.end().catch(() => {})
  }
}
