/**
 * pg: a PostgreSQL table, view or query on DATABASE_URL, streamed through a cursor
 * (pg-query-stream), `batch_size` rows per round trip (default 2000).
 *
 *   pg:legacy.daily_totals                        SELECT * FROM "legacy"."daily_totals"
 *   pg:legacy.daily_totals?where=business_date='2026-11-20'&order_by=account_id
 *                                                 ... WHERE <where> ORDER BY <order_by>
 *   pg:query=SELECT id, amount FROM legacy.txn    the query as written
 *   pg:?key=id&query=SELECT ...                   other parameters go before query=
 *
 * Identifiers in the target are split on `.` and quoted part by part; an unquoted part is
 * folded to lower case first, as PostgreSQL does (`Legacy.Daily` reads legacy.daily;
 * write `"Legacy"."Daily"` for mixed case). `where=`, `order_by=` and `query=` are SQL text
 * passed as written: they are trusted operator input, like a psql command line, and are
 * not escaped. The read runs in one READ ONLY, REPEATABLE READ transaction: one consistent
 * snapshot, and a query cannot change anything.
 *
 * Row layout: every column becomes a field, as the text PostgreSQL prints (so that the
 * normalizer takes the same path as for files): numeric and bigint stay exact strings;
 * timestamptz is ISO-8601 in UTC ("2026-11-20T06:15:00Z", fractions kept); timestamp
 * without zone is "2026-11-20T09:15:00"; date is "2026-11-20"; boolean is "true"/"false";
 * NULL is null; anything else (json, arrays, intervals) is its text form.
 *
 * Position: the table (or "query"), the 1-based row number, and `key` = the value of the
 * `key=` column, or the row number. A `key=` column that the context names sensitive
 * (`sensitiveColumns`, from a spec's `sensitive` fields) gives the row number too, with a
 * warning: positions go into Kafka headers, rejects, logs and the backfill checkpoint.
 *
 * Errors: an unreachable server is ServiceUnavailableError (exit 3); an unknown table or
 * column or an SQL syntax error is a UsageError (exit 2) naming the source.
 */
import pg from 'pg'
import QueryStream from 'pg-query-stream'
import {type CutoverError, UsageError} from '../src/errors.js'
import {DEFAULT_DATABASE_URL} from '../src/config/env.js'
import {mapPgError} from '../src/pg/pool.js'
import {batchedSource} from './source.js'
import type {BatchedRecords, RawRecord, ReaderContext, SourceUri} from './types.js'

export const DEFAULT_PG_BATCH_SIZE = 2000

/** Quotes `schema.table` part by part; already-quoted parts are kept; unquoted ones are folded to lower case. */
export function quoteQualifiedName(name: string): string {
  const parts: string[] = []
  let i = 0
  while (i < name.length) {
    if (name[i] === '"') {
      let j = i + 1
      let part = ''
      for (;;) {
        if (j >= name.length) throw new UsageError(`"${name}": unbalanced double quote`, {hint: 'write schema.table or "Schema"."Table"'})
        if (name[j] === '"') {
          if (name[j + 1] === '"') {
            part += '"'
            j += 2
            continue
          }
          break
        }
        part += name[j]
        j++
      }
      parts.push(part)
      i = j + 1
      if (i < name.length && name[i] !== '.') throw new UsageError(`"${name}": expected "." after a quoted name`, {hint: 'write schema.table or "Schema"."Table"'})
      i++
    } else {
      const dot = name.indexOf('.', i)
      const part = (dot === -1 ? name.slice(i) : name.slice(i, dot)).trim()
      parts.push(part.toLowerCase())
      i = dot === -1 ? name.length : dot + 1
    }
  }
  if (parts.length === 0 || parts.length > 3 || parts.some((p) => p === '')) {
    throw new UsageError(`"${name}" is not a table name`, {hint: 'write table, schema.table or database.schema.table'})
  }
  return parts.map((p) => '"' + p.replace(/"/g, '""') + '"').join('.')
}

/** The SQL a pg: URI reads. */
export function pgSql(uri: SourceUri): string {
  const p = uri.params
  if (p.query !== undefined) return p.query
  let sql = `SELECT * FROM ${quoteQualifiedName(uri.target)}`
  if (p.where) sql += ` WHERE ${p.where}`
  if (p.order_by) sql += ` ORDER BY ${p.order_by}`
  return sql
}

const identity = (v: string): string => v
const TEXT_PARSERS: Record<number, (v: string) => unknown> = {
  16: (v) => (v === 't' ? 'true' : v === 'f' ? 'false' : v), // bool
  1114: (v) => v.replace(' ', 'T'), // timestamp
  1184: (v) => v.replace(' ', 'T').replace(/\+00(?::00)?$/, 'Z'), // timestamptz, session in UTC
}
/** Every value as text (see the header comment). */
const TEXT_TYPES = {getTypeParser: (oid: number) => TEXT_PARSERS[oid] ?? identity}

/** The reader registered for `pg:`. */
export function readPg(uri: SourceUri, ctx: ReaderContext = {}): BatchedRecords {
  const url = ctx.databaseUrl ?? DEFAULT_DATABASE_URL
  const sql = pgSql(uri)
  const batchSize = uri.params.batch_size ? Number(uri.params.batch_size) : DEFAULT_PG_BATCH_SIZE
  const keyIsSensitive = uri.params.key !== undefined && (ctx.sensitiveColumns ?? []).includes(uri.params.key)
  const keyColumn = uri.params.key
  const source = uri.params.query !== undefined ? 'query' : uri.target
  const log = ctx.logger?.namespace('pg-reader')
  if (keyIsSensitive) {
    log?.warn('pg.reader.key_sensitive', {key: uri.params.key, note: 'the key= column is a sensitive field of the spec: positions give the row number instead of its values'})
  }

  return batchedSource(async function* () {
    const client = new pg.Client({connectionString: url, application_name: 'cutover-reader', connectionTimeoutMillis: 10_000})
    client.on('error', (e) => log?.warn('pg.reader.connection_error', {error: e}))
    const fail = (e: unknown): CutoverError => {
      const mapped = mapPgError(e, url)
      const sqlstate = mapped.details.sqlstate
      if (typeof sqlstate === 'string' && (sqlstate.startsWith('42') || sqlstate === '25006')) {
        return new UsageError(`source "${uri.text}": ${(e as Error).message}`, {
          cause: mapped,
          hint: sqlstate === '25006' ? 'pg: reads only: give a SELECT' : 'check the table name and the where=, order_by= or query= SQL',
          details: {sqlstate, sql},
        })
      }
      return mapped
    }
    try {
      await client.connect()
    } catch (e) {
      throw fail(e)
    }
    let stream: QueryStream | undefined
    const onAbort = () => stream?.destroy(new Error('aborted'))
    ctx.signal?.addEventListener('abort', onAbort, {once: true})
    try {
      await client.query("SET TIME ZONE 'UTC'; SET datestyle = 'ISO, YMD'; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
      log?.debug('pg.reader.query', {sql, batchSize})
      stream = client.query(new QueryStream(sql, [], {batchSize, types: TEXT_TYPES}))
      let rowNo = 0
      for await (const rows of readableBatches(stream)) {
        const batch: RawRecord[] = new Array<RawRecord>(rows.length)
        for (let i = 0; i < rows.length; i++) {
          const row = rows[i] as Record<string, unknown>
          rowNo++
          let key: string
          if (keyColumn !== undefined) {
            if (!(keyColumn in row)) {
              throw new UsageError(`source "${uri.text}": key=${keyColumn} is not a column of the result`, {hint: `use one of: ${Object.keys(row).join(', ')}`})
            }
            key = keyIsSensitive ? String(rowNo) : String(row[keyColumn])
          } else {
            key = String(rowNo)
          }
          batch[i] = {ok: true, fields: row, position: {scheme: 'pg', source, record: rowNo, key}}
        }
        yield batch
      }
      await client.query('COMMIT')
    } catch (e) {
      if (e instanceof UsageError) throw e
      throw fail(e)
    } finally {
      ctx.signal?.removeEventListener('abort', onAbort)
      stream?.destroy()
      await client.end().catch(() => {})
    }
  })
}

/** Drains a Readable in batches of whatever it has buffered: one await per batch, not per row. */
async function* readableBatches(stream: NodeJS.ReadableStream & {destroyed?: boolean; readableEnded?: boolean}): AsyncGenerator<unknown[]> {
  let error: unknown
  let ended = false
  let wake: (() => void) | undefined
  const notify = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  const onError = (e: unknown) => {
    error = e
    notify()
  }
  const onEnd = () => {
    ended = true
    notify()
  }
  stream.on('readable', notify)
  stream.on('error', onError)
  stream.on('end', onEnd)
  stream.on('close', onEnd)
  try {
    for (;;) {
      const rows: unknown[] = []
      let row: unknown
      while ((row = stream.read()) !== null) rows.push(row)
      if (rows.length > 0) {
        yield rows
        continue
      }
      if (error) throw error
      if (ended) return
      await new Promise<void>((resolve) => (wake = resolve))
    }
  } finally {
    stream.off('readable', notify)
    stream.off('error', onError)
    stream.off('end', onEnd)
    stream.off('close', onEnd)
  }
}
