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
 * normalizer takes the same path as for files): numeric and bigint stay exact strings, and the
 * numeric and float columns are marked as exact decimals (EXACT_DECIMALS in
 * src/normalize/decimal.ts: "1.234" is 1.234 whatever the field's decimal_separator);
 * timestamptz is ISO-8601 in UTC ("2026-11-20T06:15:00Z", fractions kept); timestamp
 * without zone is "2026-11-20T09:15:00"; date is "2026-11-20"; boolean is "true"/"false";
 * NULL is null; anything else (json, arrays, intervals) is its text form. money is read as
 * numeric: its text form follows the session's lc_monetary ("$1,234.56", "1.234,56 €"), while
 * `money::numeric` is exact ("1234.56", at the scale of lc_monetary's fraction digits, the
 * scale the stored minor units mean). So the columns of the result are looked up first, in the
 * read's transaction (`SELECT * FROM <table> LIMIT 0`, `SELECT * FROM (<query>) AS q LIMIT 0`),
 * and when one is money (or money[]) the read selects it cast (moneyAsNumericSql); otherwise the
 * SQL runs as written. When that lookup fails (a statement that is no subquery: SHOW), the SQL
 * runs as written too, and reports its own error if it has one.
 *
 * Position: the table (or "query"), the 1-based row number, and `key` = the value of the
 * `key=` column, or the row number. A `key=` column that the context names sensitive
 * (`sensitiveColumns`, from a spec's `sensitive` fields) gives the row number too, with a
 * warning: positions go into Kafka headers, rejects, logs and the backfill checkpoint.
 *
 * Errors: an unreachable server is ServiceUnavailableError (exit 3); an unknown table or
 * column or an SQL syntax error is a UsageError (exit 2) naming the source; so is a result with
 * two columns of one name (a join's `a.id, b.id`), whose values would overwrite each other. When the table or
 * column was not found but one whose name differs only in case exists (`pg:s.Upper` reads
 * s.upper, the table is s."Upper"), the hint says that unquoted names fold to lower case and
 * gives the quoted form to write (foldedNameHint). An unquoted target with a dot in a name
 * (`pg:legacy.Daily Totals.2026`) reads as database.schema.table, which PostgreSQL refuses
 * (0A000, cross-database references): a UsageError too, giving the quoted form of the table
 * that exists (dottedNameHint). A where= or query= holding a bind parameter (`$1`) is a
 * UsageError (08P01 at the read): nothing binds it, the value goes into the SQL. A query= whose
 * SQL failed and holds `&key=` (or another pg parameter) after it: the hint says that query=
 * takes the rest of the URI, and to write the others before it.
 */
import pg, {type QueryConfig} from 'pg'
import QueryStream from 'pg-query-stream'
import {CutoverError, UsageError} from '../src/errors.js'
import {DEFAULT_DATABASE_URL} from '../src/config/env.js'
import {quoteIdent} from '../src/pg/ident.js'
import type {Logger} from '../src/log.js'
import {mapPgError, pgConnectionString} from '../src/pg/pool.js'
import {exactDecimalsPrototype} from '../src/normalize/decimal.js'
import {batchedSource} from './source.js'
import {SCHEMES} from './uri.js'
import type {BatchedRecords, RawRecord, ReaderContext, SourceUri} from './types.js'

export const DEFAULT_PG_BATCH_SIZE = 2000

/** Quotes `schema.table` part by part; already-quoted parts are kept; unquoted ones are folded to lower case. */
export function quoteQualifiedName(name: string): string {
  return nameParts(name)
    .map((p) => '"' + p.replace(/"/g, '""') + '"')
    .join('.')
}

/** The parts of `schema.table` as PostgreSQL reads them: quoted ones as written, unquoted ones folded to lower case. */
function nameParts(name: string): string[] {
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
  return parts
}

/** An identifier as one writes it in SQL or a pg: target: bare when it reads back as itself, else double-quoted. */
export function sqlIdentifier(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : '"' + name.replace(/"/g, '""') + '"'
}

const FOLD_NOTE = 'unquoted names fold to lower case in PostgreSQL'

/** How to give the URIs to a shell (single-quoted), when none holds a single quote. */
const shell = (uris: string[]) => (uris.some((u) => u.includes("'")) ? ' (quote it for the shell)' : ` (in a shell: ${uris.map((u) => `'${u}'`).join(' or ')})`)

/**
 * The hint for "relation ... does not exist" (42P01) or "column ... does not exist" (42703)
 * when a table or column whose name differs only in case exists (pg_catalog): that unquoted
 * names fold to lower case, and the quoted form to write (`pg:s."Upper"`). Undefined when the
 * error is another, or no such name exists. `client` must be usable (not in a failed
 * transaction); catalog lookups only, with the names as parameters.
 */
export async function foldedNameHint(client: pg.ClientBase, uri: SourceUri, error: unknown): Promise<string | undefined> {
  const e = error as {code?: unknown; message?: unknown}
  const message = typeof e.message === 'string' ? e.message : ''
  if (e.code === '42P01') {
    const fromTarget = uri.params.query === undefined && uri.target !== ''
    // the name as PostgreSQL looked it up: the target's parts, or the one its message names
    let parts: string[]
    if (fromTarget) parts = nameParts(uri.target)
    else {
      const m = /relation "([^"]+)" does not exist/.exec(message)
      if (!m) return undefined
      parts = m[1]!.split('.')
    }
    const table = parts[parts.length - 1]!
    const schema = parts.length >= 2 ? parts[parts.length - 2]! : null
    const found = await client.query<{nspname: string; relname: string}>(
      `SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND lower(c.relname) = lower($1)
          AND (CASE WHEN $2::text IS NULL THEN pg_catalog.pg_table_is_visible(c.oid) ELSE lower(n.nspname) = lower($2::text) END)
          AND NOT (c.relname = $1 AND n.nspname = coalesce($2::text, n.nspname))
        ORDER BY 1, 2 LIMIT 5`,
      [table, schema],
    )
    if (found.rows.length === 0) return undefined
    // a database part (db.schema.table) is kept, as PostgreSQL read it
    const written = (r: {nspname: string; relname: string}) => [...(parts.length === 3 ? [parts[0]!] : []), ...(schema === null ? [] : [r.nspname]), r.relname].map(sqlIdentifier).join('.')
    const looked = parts.map(sqlIdentifier).join('.')
    const tables = found.rows.map((r) => [r.nspname, r.relname].map(sqlIdentifier).join('.')).join(', ')
    if (fromTarget) {
      const rest = uri.text.indexOf('?') === -1 ? '' : uri.text.slice(uri.text.indexOf('?'))
      const write = found.rows.map((r) => `pg:${written(r)}${rest}`)
      return `${FOLD_NOTE}: ${uri.text} looks up ${looked}, but the table is ${tables}; write ${write.join(' or ')}${shell(write)}`
    }
    return `${FOLD_NOTE}: the query looks up ${looked}, but the table is ${tables}; write ${found.rows.map(written).join(' or ')} in the query`
  }
  if (e.code === '42703') {
    const m = /column (?:"([^"]+)"|(\S+)) does not exist/.exec(message)
    const column = m?.[1] ?? m?.[2]?.split('.').pop()
    if (!column) return undefined
    // a table target: its columns; a query: the columns of the user's tables and views
    const table = uri.params.query === undefined && uri.target !== '' ? nameParts(uri.target) : null
    const found = await client.query<{attname: string}>(
      `SELECT DISTINCT a.attname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE a.attnum > 0 AND NOT a.attisdropped AND lower(a.attname) = lower($1) AND a.attname <> $1
          AND (CASE WHEN $2::text IS NULL
                    THEN c.relkind IN ('r', 'v', 'm', 'p', 'f') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
                    ELSE c.oid = to_regclass($2::text) END)
        ORDER BY 1 LIMIT 5`,
      [column, table === null ? null : table.map((p) => '"' + p.replace(/"/g, '""') + '"').join('.')],
    )
    if (found.rows.length === 0) return undefined
    const write = found.rows.map((r) => sqlIdentifier(r.attname)).join(' or ')
    return `${FOLD_NOTE}: there is no column ${sqlIdentifier(column)}${table ? ` in ${table.map(sqlIdentifier).join('.')}` : ''}, but there is ${write}; write ${write}, double-quoted, in where=, order_by= or query=`
  }
  return undefined
}

const DOTTED_NAME_NOTE =
  "pg: reads tables of DATABASE_URL's database: a name of three parts is database.schema.table of that database; a schema or table name holding a dot, a space or capitals is written double-quoted (pg:legacy.\"Daily Totals.2026\")"

/**
 * The hint for "cross-database references are not implemented" (0A000) of a target that holds
 * more dots than schema.table (`pg:legacy.Daily Totals.2026`, a table whose name has a dot): the
 * table whose name is the target split at one of its dots (or the whole target), if one exists
 * (case aside), with the quoted form to write (`pg:legacy."Daily Totals.2026"`). Undefined when
 * the target has quotes, or no such table exists. Catalog lookups only, the names as parameters.
 */
export async function dottedNameHint(client: pg.ClientBase, uri: SourceUri): Promise<string | undefined> {
  const target = uri.target.trim()
  if (uri.params.query !== undefined || target === '' || target.includes('"')) return undefined
  const schemas: (string | null)[] = [null]
  const tables: string[] = [target]
  for (let i = target.indexOf('.'); i !== -1; i = target.indexOf('.', i + 1)) {
    schemas.push(target.slice(0, i).trim())
    tables.push(target.slice(i + 1).trim())
  }
  const found = await client.query<{nspname: string; relname: string; visible: boolean}>(
    `SELECT DISTINCT n.nspname, c.relname, u.s IS NULL AS visible FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       JOIN unnest($1::text[], $2::text[]) AS u(s, t) ON lower(c.relname) = lower(u.t)
        AND (CASE WHEN u.s IS NULL THEN pg_catalog.pg_table_is_visible(c.oid) ELSE lower(n.nspname) = lower(u.s) END)
      WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
      ORDER BY 1, 2 LIMIT 5`,
    [schemas, tables],
  )
  if (found.rows.length === 0) return undefined
  const rest = uri.text.indexOf('?') === -1 ? '' : uri.text.slice(uri.text.indexOf('?'))
  const write = found.rows.map((r) => `pg:${(r.visible ? [r.relname] : [r.nspname, r.relname]).map(sqlIdentifier).join('.')}${rest}`)
  return `a schema or table name holding a dot, a space or capitals is written double-quoted (unquoted, ${uri.text} reads as database.schema.table): write ${write.join(' or ')}${shell(write)}`
}

const UNBOUND_PARAMETER_HINT = "pg: runs where= and query= as written, with no parameters to bind: write the value into the SQL as a literal ($1 -> '2026-11-20', quoted as in psql)"
const isCrossDatabase = (sqlstate: unknown, message: string) => sqlstate === '0A000' && /cross-database references/.test(message)
const isUnboundParameter = (sqlstate: unknown, message: string) => sqlstate === '08P01' && /bind message supplies 0 parameters/.test(message)

/**
 * An error of SQL that reads a pg: source other than the reader's (backfill's column check runs
 * `SELECT * FROM (<the source's SQL>) AS s LIMIT 0`), as the reader gives it: a target with a dot in
 * a name read as database.schema.table (0A000), a bind parameter (08P01), and a query= that took
 * `&key=` into its SQL are UsageErrors (exit 2) with the hint the reader gives. Anything else as
 * it is. The dotted-name lookup opens a connection of its own on `databaseUrl`.
 */
export async function pgSourceError(e: unknown, uri: SourceUri, databaseUrl: string = DEFAULT_DATABASE_URL): Promise<unknown> {
  if (uri.scheme !== 'pg' || !(e instanceof CutoverError)) return e
  const pgError = (e.cause instanceof CutoverError ? e.cause.cause : e.cause) as {message?: unknown} | undefined
  const sqlstate = e.details.sqlstate ?? (e.cause instanceof CutoverError ? e.cause.details.sqlstate : undefined)
  const message = typeof pgError?.message === 'string' ? pgError.message : e.message
  if (e.code === 'PG_ERROR' && isCrossDatabase(sqlstate, message)) {
    const client = new pg.Client({connectionString: pgConnectionString(databaseUrl), application_name: 'cutover-reader', connectionTimeoutMillis: 10_000})
    const looked = await client
      .connect()
      .then(() => dottedNameHint(client, uri))
      .catch(() => undefined)
      .finally(() => client.end().catch(() => {}))
    return new UsageError(`source "${uri.text}": ${message}`, {cause: e, hint: looked ?? DOTTED_NAME_NOTE, details: {sqlstate}})
  }
  if (e.code === 'PG_ERROR' && isUnboundParameter(sqlstate, message)) return new UsageError(`source "${uri.text}": ${message}`, {cause: e, hint: UNBOUND_PARAMETER_HINT, details: {sqlstate}})
  const verbatim = e.code === 'USAGE' && typeof sqlstate === 'string' && sqlstate.startsWith('42') ? verbatimQueryHint(uri) : undefined
  if (verbatim) return new UsageError(e.message, {cause: e.cause ?? e, hint: verbatim, details: {...e.details, sqlstate}})
  return e
}

/**
 * A pg: source whose SQL fails on a value it reads (PostgreSQL's class 22, data
 * exception: a where= literal that is no date, `amt / 0` in query=, a cast of a text column, or
 * text whose bytes are not in the database's encoding) is the source's or the URI's problem, not
 * an internal one: exit 2 naming the source and what to change (it was PG_ERROR, exit 70, without
 * the source named), for backfill, normalize and profile. Other errors as they are.
 */
export function pgSourceDataError(e: unknown, uri: SourceUri): unknown {
  if (uri.scheme !== 'pg' || !(e instanceof CutoverError) || e.code !== 'PG_ERROR') return e
  const sqlstate = String(e.details.sqlstate ?? '')
  if (!sqlstate.startsWith('22')) return e
  const cause = (e.cause as Error | undefined)?.message ?? e.message
  const hint =
    sqlstate === '22021' || sqlstate === '22P05'
      ? "a text column holds bytes that PostgreSQL cannot give as UTF-8 (a SQL_ASCII database holding windows-1251 text, say: SHOW server_encoding): read that column converted in query=, e.g. pg:query=SELECT id, convert_from(convert(name::bytea, 'WIN1251', 'UTF8'), 'UTF8') AS name FROM <table> ORDER BY id"
      : "the source's SQL failed on a value it read: check the literals and casts of where= and query= (a date is written '2026-11-20'), and the rows' values"
  return new UsageError(`source "${uri.text}": ${cause}`, {cause: e, hint, details: {sqlstate}})
}

/** query= takes the rest of the URI as SQL: a pg parameter written after it (`&key=id`) went into the SQL. */
function verbatimQueryHint(uri: SourceUri): string | undefined {
  const q = uri.params.query
  if (q === undefined) return undefined
  const after = Object.keys(SCHEMES.pg!.params).filter((p) => p !== 'query' && new RegExp(`&${p}=`, 'i').test(q))
  if (after.length === 0) return undefined
  return `query= takes the rest of the URI as its SQL, so ${after.map((p) => `&${p}=`).join(', ')} went into the query: write the other parameters before it, pg:?${after.map((p) => `${p}=...`).join('&')}&query=SELECT ...`
}

/** The SQL a pg: URI reads. */
export function pgSql(uri: SourceUri): string {
  const p = uri.params
  if (p.query !== undefined) return asSubquery(p.query)
  let sql = `SELECT * FROM ${quoteQualifiedName(uri.target)}`
  if (p.where) sql += ` WHERE ${p.where}`
  if (p.order_by) sql += ` ORDER BY ${p.order_by}`
  return sql
}

/**
 * money (790) and money[] (791) -> the type they are read as. money's text follows lc_monetary;
 * `::numeric` is exact at lc_monetary's scale. A domain over money is described as money (the
 * row description gives a domain's base type). Also used by parity's pg: reads.
 */
export const MONEY_CASTS: Readonly<Record<number, {type: string; oid: number}>> = {790: {type: 'numeric', oid: 1700}, 791: {type: 'numeric[]', oid: 1231}}

/**
 * A query= text that parity's probes and strategies and the money read can put inside `( ... )`:
 * trailing `;` and blanks dropped, and a line end after it, so that a last `-- comment` does not
 * swallow the `)` that follows (`SELECT ...;` or `... -- nightly extract` were a syntax error there).
 */
function asSubquery(query: string): string {
  let end = query.length
  while (end > 0 && (query[end - 1] === ';' || /\s/.test(query[end - 1]!))) end--
  return `${query.slice(0, end)}\n`
}

/** A query= text as a subquery. */
function subquery(query: string): string {
  return `(${asSubquery(query)})`
}

/** The SQL whose result describes the columns `uri` reads (LIMIT 0: nothing is run). */
export function describeSql(uri: SourceUri): string {
  return uri.params.query !== undefined ? `SELECT * FROM ${subquery(uri.params.query)} AS q LIMIT 0` : `SELECT * FROM ${quoteQualifiedName(uri.target)} LIMIT 0`
}

/**
 * The SQL that reads `uri` with its money columns as numeric (MONEY_CASTS), the other columns
 * and the order as they are, given the columns of its result (describeSql); undefined when it
 * has no money column. A table: `SELECT "id", "amt"::numeric AS "amt" FROM t WHERE ... ORDER BY
 * ...` (an ORDER BY amt then orders by the numeric, in the same order). A query: `SELECT q."1"
 * AS "id", q."2"::numeric AS "amt" FROM (<query>) AS q("1", "2")`: its columns renamed by
 * position, so that any names (`?column?`) work, and no ORDER BY added: PostgreSQL keeps the
 * order of a subquery under a plain projection.
 */
export function moneyAsNumericSql(uri: SourceUri, fields: readonly {name: string; dataTypeID: number}[]): string | undefined {
  if (!fields.some((f) => MONEY_CASTS[f.dataTypeID] !== undefined)) return undefined
  const p = uri.params
  if (p.query === undefined) {
    const cols = fields.map((f) => {
      const cast = MONEY_CASTS[f.dataTypeID]
      return cast ? `${quoteIdent(f.name)}::${cast.type} AS ${quoteIdent(f.name)}` : quoteIdent(f.name)
    })
    let sql = `SELECT ${cols.join(', ')} FROM ${quoteQualifiedName(uri.target)}`
    if (p.where) sql += ` WHERE ${p.where}`
    if (p.order_by) sql += ` ORDER BY ${p.order_by}`
    return sql
  }
  const cols = fields.map((f, i) => {
    const cast = MONEY_CASTS[f.dataTypeID]
    return `q."${i + 1}"${cast ? `::${cast.type}` : ''} AS ${quoteIdent(f.name)}`
  })
  return `SELECT ${cols.join(', ')} FROM ${subquery(p.query)} AS q(${fields.map((_, i) => `"${i + 1}"`).join(', ')})`
}

const identity = (v: string): string => v
const TEXT_PARSERS: Record<number, (v: string) => unknown> = {
  16: (v) => (v === 't' ? 'true' : v === 'f' ? 'false' : v), // bool
  1114: (v) => v.replace(' ', 'T'), // timestamp
  1184: (v) => v.replace(' ', 'T').replace(/\+00(?::00)?$/, 'Z'), // timestamptz, session in UTC
}
/** Every value as text (see the header comment). */
/** numeric, float4, float8: PostgreSQL prints them with "." as the decimal point and no grouping, whatever the locale. */
const EXACT_DECIMAL_TYPES = new Set([1700, 700, 701])

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
    const client = new pg.Client({connectionString: pgConnectionString(url, ctx.logger), application_name: 'cutover-reader', connectionTimeoutMillis: 10_000})
    client.on('error', (e) => log?.warn('pg.reader.connection_error', {error: e}))
    const fail = async (e: unknown, connected: boolean): Promise<CutoverError> => {
      const mapped = mapPgError(e, url)
      const sqlstate = mapped.details.sqlstate
      const message = (e as Error).message ?? ''
      const crossDatabase = isCrossDatabase(sqlstate, message)
      const withParameter = isUnboundParameter(sqlstate, message)
      if (typeof sqlstate === 'string' && (sqlstate.startsWith('42') || sqlstate === '25006' || crossDatabase || withParameter)) {
        let looked: string | undefined
        if (connected && (sqlstate === '42P01' || sqlstate === '42703' || crossDatabase)) {
          // out of the failed transaction, then the catalog: a name that differs only in case, or holds a dot?
          looked = await client
            .query('ROLLBACK')
            .then(() => (crossDatabase ? dottedNameHint(client, uri) : foldedNameHint(client, uri, e)))
            .catch((x: unknown) => {
              log?.debug('pg.reader.fold_lookup_failed', {error: x})
              return undefined
            })
        }
        return new UsageError(`source "${uri.text}": ${message}`, {
          cause: mapped,
          hint:
            sqlstate === '25006'
              ? 'pg: reads only: give a SELECT'
              : withParameter
                ? UNBOUND_PARAMETER_HINT
                : crossDatabase
                  ? (looked ?? DOTTED_NAME_NOTE)
                  : (looked ?? verbatimQueryHint(uri) ?? 'check the table name and the where=, order_by= or query= SQL'),
          details: {sqlstate, sql},
        })
      }
      return mapped
    }
    try {
      await client.connect()
    } catch (e) {
      throw await fail(e, false)
    }
    let stream: QueryStream | undefined
    // A destroyed QueryStream emits its error only once its cursor has closed (a round trip later),
    // when the reader may have let go of it and taken its 'error' listener off: an 'error' event
    // without a listener is an uncaught exception (a SIGTERM of backfill ended with exit 1, no
    // result, no final checkpoint). The stop's own error is no failure: always listened to.
    const quiet = () => {}
    const onAbort = () => {
      stream?.on('error', quiet)
      stream?.destroy(new Error('aborted'))
    }
    ctx.signal?.addEventListener('abort', onAbort, {once: true})
    try {
      await client.query("SET TIME ZONE 'UTC'; SET datestyle = 'ISO, YMD'; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SAVEPOINT cutover_describe")
      const read = await readSql(client, uri, sql, log)
      log?.debug('pg.reader.query', {sql: read, batchSize})
      stream = client.query(new QueryStream(read, [], {batchSize, types: TEXT_TYPES}))
      let rowNo = 0
      // numeric (money read as numeric) and float columns: exact decimals PostgreSQL printed with
      // "." as the point, never ambiguous printed text (EXACT_DECIMALS): "1.234" of a numeric(6,3) is 1.234
      let exact: object | undefined
      for await (const rows of readableBatches(stream)) {
        if (rowNo === 0) {
          const fields = (stream._result as {fields?: {name: string; dataTypeID: number}[]} | undefined)?.fields
          assertDistinctColumns(uri, fields)
          exact = exactDecimalsPrototype((fields ?? []).filter((f) => EXACT_DECIMAL_TYPES.has(f.dataTypeID)).map((f) => f.name))
        }
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
          if (exact !== undefined) Object.setPrototypeOf(row, exact)
          batch[i] = {ok: true, fields: row, position: {scheme: 'pg', source, record: rowNo, key}}
        }
        yield batch
      }
      await client.query('COMMIT')
    } catch (e) {
      if (e instanceof UsageError) throw e
      throw await fail(e, true)
    } finally {
      ctx.signal?.removeEventListener('abort', onAbort)
      stream?.on('error', quiet)
      stream?.destroy()
      await client.end().catch(() => {})
    }
  })
}

/**
 * The SQL to read: `sql`, or moneyAsNumericSql when the result has a money column. The lookup
 * (describeSql) runs by the extended protocol (one statement) under the savepoint the caller
 * set; when it fails, the savepoint is rolled back and `sql` is read as written.
 */
async function readSql(client: pg.Client, uri: SourceUri, sql: string, log: Logger | undefined): Promise<string> {
  let fields: {name: string; dataTypeID: number}[]
  try {
    fields = (await client.query({text: describeSql(uri), queryMode: 'extended'} as QueryConfig)).fields
  } catch (e) {
    log?.debug('pg.reader.describe_failed', {error: e})
    await client.query('ROLLBACK TO SAVEPOINT cutover_describe')
    return sql
  }
  assertDistinctColumns(uri, fields)
  return moneyAsNumericSql(uri, fields) ?? sql
}

/**
 * A result with two columns of one name (`SELECT a.id, b.id ...`, `SELECT *` over a join) would
 * keep only the last one's value under that name, and a field reading it would read the other
 * column without a word: a UsageError naming the column instead.
 */
function assertDistinctColumns(uri: SourceUri, fields: readonly {name: string}[] | undefined): void {
  if (!fields) return
  const seen = new Set<string>()
  for (const f of fields) {
    if (seen.has(f.name)) {
      throw new UsageError(`source "${uri.text}": the result has more than one column named ${f.name}; each would overwrite the other in the record`, {
        hint: `give the columns distinct names in query= (SELECT a.${f.name} AS a_${f.name}, b.${f.name} AS b_${f.name} ...)`,
      })
    }
    seen.add(f.name)
  }
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

/** About how many rows a pg: source gives, and where the number comes from (see estimatePgRows). */
export interface PgRowEstimate {
  rows: number
  /** `pg_class.reltuples`: the table's row count as of its last ANALYZE (or VACUUM); `explain`: the planner's estimate of the where= read */
  source: 'pg_class.reltuples' | 'explain'
}

/**
 * About how many rows `uri` reads, for progress: never a count(*) (on a history table of 200
 * million rows that takes about as long as the read itself), only what PostgreSQL already knows.
 *
 *   a table, no where=    pg_class.reltuples, as of its last ANALYZE; a partitioned table's is
 *                         the sum of its leaf partitions' (a partition never analyzed counts 0:
 *                         most often one created ahead of its dates, empty)
 *   a table with where=   EXPLAIN's row estimate of the read's SQL (planning only, nothing is
 *                         read), when the table was analyzed: the same statistics, and one
 *                         table's filter is what the planner estimates well
 *   query=                none: the planner's estimates of joins, GROUP BY, DISTINCT or
 *                         functions may be off by orders of magnitude, worse than no ETA
 *
 * undefined when the table was never analyzed (reltuples -1, or 0: a count PostgreSQL does not
 * have), for views (no statistics of their own), and on any error: it is only an estimate, and
 * the read reports what is wrong with the source. The table name is a parameter (to_regclass);
 * where= is trusted operator input, run as the read runs it, in a READ ONLY transaction.
 */
export async function estimatePgRows(uri: SourceUri, ctx: ReaderContext = {}): Promise<PgRowEstimate | undefined> {
  if (uri.scheme !== 'pg' || uri.params.query !== undefined || uri.target.trim() === '') return undefined
  const log = ctx.logger?.namespace('pg-reader')
  const client = new pg.Client({connectionString: pgConnectionString(ctx.databaseUrl ?? DEFAULT_DATABASE_URL, ctx.logger), application_name: 'cutover-reader', connectionTimeoutMillis: 10_000})
  client.on('error', (e) => log?.debug('pg.estimate.connection_error', {error: e}))
  try {
    await client.connect()
    // the session the read has (where= literals read as the read reads them)
    await client.query("SET TIME ZONE 'UTC'; SET datestyle = 'ISO, YMD'; BEGIN READ ONLY")
    const r = await client.query<{rows: number | null}>(
      `SELECT CASE WHEN c.relkind = 'p'
                   THEN (SELECT sum(greatest(l.reltuples, 0))::float8 FROM pg_catalog.pg_partition_tree(c.oid) t
                           JOIN pg_catalog.pg_class l ON l.oid = t.relid WHERE t.isleaf)
                   ELSE c.reltuples::float8 END AS rows
         FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1::text)`,
      [quoteQualifiedName(uri.target)],
    )
    const analyzed = r.rows[0]?.rows ?? 0
    if (!(analyzed > 0)) {
      log?.debug('pg.estimate.none', {source: uri.target, note: 'no row count in pg_class (never analyzed, or a view): progress shows no total; ANALYZE the table to get one'})
      return undefined
    }
    if (!uri.params.where) return {rows: Math.round(analyzed), source: 'pg_class.reltuples'}
    const plan = await client.query<{'QUERY PLAN': [{Plan: {'Plan Rows': number}}]}>({text: `EXPLAIN (FORMAT JSON) ${pgSql(uri)}`, queryMode: 'extended'} as QueryConfig)
    const rows = plan.rows[0]?.['QUERY PLAN']?.[0]?.Plan?.['Plan Rows']
    return typeof rows === 'number' && rows > 0 ? {rows: Math.round(rows), source: 'explain'} : undefined
  } catch (e) {
    log?.debug('pg.estimate.failed', {source: uri.target, error: e})
    return undefined
  } finally {
    await client.query('ROLLBACK').catch(() => {})
    await client.end().catch(() => {})
  }
}
