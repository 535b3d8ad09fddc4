/**
 * What every sink needs of its PostgreSQL table, checked once at start (exit 2 when it does
 * not fit, naming the column and giving the SQL that fixes it): the columns and their types
 * (information_schema, with what it does not say from pg_catalog: a negative numeric scale, a
 * domain's default, a nondeterministic collation, the kind of a USER-DEFINED type), the unique
 * indexes an `ON CONFLICT (...)` can use (pg_index: valid, immediate, without predicate or
 * expression, by their key columns), columns PostgreSQL fills itself, and the sink's statement
 * planned once (checkStatement: EXPLAIN) for what only PostgreSQL can tell (a view's table, a
 * rule, a privilege, row-level security without a policy for the role). The fixes are SQL that
 * runs on a table with rows (ALTER ... USING). Planning waits for a lock another session holds on
 * the table (an ALTER TABLE, a VACUUM FULL, a migration), saying who holds it (planWaiting).
 *
 * Identifiers from the spec are always quoted (`quoteIdent`); values are always parameters.
 */
import {SpecError} from '../../errors.js'
import type {FieldSpec} from '../../config/spec.js'
import type {Logger} from '../../log.js'
import type {Pool} from '../../pg/pool.js'
import {quoteIdent} from '../../pg/ident.js'
import {sleep} from '../ratelimit.js'

export {quoteIdent} from '../../pg/ident.js'

export interface TableRef {
  schema: string
  table: string
  /** "schema"."table", quoted */
  sql: string
  /** schema.table, for messages */
  label: string
  /** the spec named the schema (`s.t`); false when it is the default schema (stream run's --schema) */
  qualified?: boolean
}

/** `t` -> defaultSchema.t; `s.t` -> s.t. */
export function tableRef(name: string, defaultSchema: string): TableRef {
  const dot = name.indexOf('.')
  const schema = dot < 0 ? defaultSchema : name.slice(0, dot)
  const table = dot < 0 ? name : name.slice(dot + 1)
  return {schema, table, sql: `${quoteIdent(schema)}.${quoteIdent(table)}`, label: `${schema}.${table}`, qualified: dot >= 0}
}

export interface ColumnInfo {
  name: string
  /** information_schema data_type: text, numeric, timestamp with time zone, USER-DEFINED, ... (of a domain: its base type's) */
  dataType: string
  /**
   * a type name usable in a cast that keeps every value as the column would take it: `$1::<castType>[]`
   * (never one that carries a length of its own: `character` is char(1), so char(n) is cast as bpchar)
   */
  castType: string
  maxLength: number | null
  /** numeric(p, s) read from the column's type modifier (information_schema reads a negative scale as 2046) */
  numericPrecision: number | null
  numericScale: number | null
  nullable: boolean
  hasDefault: boolean
  /** fractional digits of the seconds a time type keeps (timestamptz(0) rounds to the second); null when not a time type */
  datetimePrecision?: number | null
  /** GENERATED ALWAYS AS IDENTITY ('ALWAYS': an INSERT may not give it a value) or BY DEFAULT */
  identity?: 'ALWAYS' | 'BY DEFAULT' | null
  /** GENERATED ALWAYS AS (...) STORED: PostgreSQL computes it, an INSERT may not give it a value */
  generated?: boolean
  /** a USER-DEFINED type: an enum, a string type (citext), or another (composite, range, hstore, ...) */
  userKind?: 'enum' | 'string' | 'other'
  /** the column's collation, quoted, when it is nondeterministic (equal values that differ in bytes: case-insensitive ICU) */
  collation?: string | null
}

export interface UniqueIndex {
  name: string
  /** its key columns (not INCLUDE columns), in order */
  columns: string[]
  primary: boolean
  /** the constraint it backs, if any */
  constraint: string | null
  /** DEFERRABLE: ON CONFLICT cannot use it as an arbiter (55000), and refuses every statement it would match */
  deferrable: boolean
}

export interface TableInfo {
  ref: TableRef
  columns: Map<string, ColumnInfo>
  /** column sets of the unique indexes an `ON CONFLICT (cols)` infers: valid, without predicate or expression, immediate */
  uniqueKeys: string[][]
  /** every valid unique index without predicate or expression, deferrable ones included */
  uniqueIndexes?: UniqueIndex[]
  /**
   * rows may go in by `COPY ... FROM STDIN` (pg/copy.ts) as they would by INSERT: a plain or
   * partitioned table without INSERT rules (COPY does not apply rules, and a view is not copied
   * into) whose row-level security does not apply to the role (PostgreSQL refuses COPY FROM
   * then, 0A000, on every try)
   */
  copyable: boolean
  /** pg_class.relkind: r table, p partitioned table, v view, f foreign table, m materialized view */
  relkind?: string
  /** a partitioned table's partition key columns; null when the key has an expression */
  partitionKey?: string[] | null
}

type ColumnRow = {
  column_name: string
  data_type: string
  udt_schema: string
  udt_name: string
  character_maximum_length: number | null
  numeric_precision: number | null
  numeric_scale: number | null
  datetime_precision: number | null
  is_nullable: string
  column_default: string | null
  is_identity: string
  identity_generation: string | null
  is_generated: string
}

type ColumnExtra = {
  name: string
  base_kind: string
  base_category: string
  typmod: number
  domain_default: boolean
  collation: string | null
}

export async function describeTable(pool: Pool, ref: TableRef): Promise<TableInfo | null> {
  const cols = await pool.query<ColumnRow>(
    `SELECT column_name, data_type, udt_schema, udt_name, character_maximum_length, numeric_precision, numeric_scale, datetime_precision,
            is_nullable, column_default, is_identity, identity_generation, is_generated
       FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
    [ref.schema, ref.table],
  )
  if (cols.rows.length === 0) return null
  // what information_schema does not say: a domain's default, the kind of a USER-DEFINED type, the
  // type modifier (a negative numeric scale), a nondeterministic collation
  const extra = await pool.query<ColumnExtra>(
    `SELECT a.attname::text AS name, bt.typtype::text AS base_kind, bt.typcategory::text AS base_category,
            CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod,
            t.typtype = 'd' AND t.typdefault IS NOT NULL AS domain_default,
            CASE WHEN NOT co.collisdeterministic THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END AS collation
       FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_type t ON t.oid = a.atttypid
       JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
       LEFT JOIN pg_collation co ON co.oid = a.attcollation
       LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped`,
    [ref.schema, ref.table],
  )
  const extras = new Map(extra.rows.map((r) => [r.name, r]))
  const columns = new Map<string, ColumnInfo>()
  for (const c of cols.rows) {
    const x = extras.get(c.column_name)
    // numeric(p, s): from the type modifier, ((p << 16) | (s & 0x7ff)) + 4, s signed in 11 bits
    const typmod = x && c.data_type === 'numeric' && x.typmod >= 4 ? x.typmod - 4 : undefined
    columns.set(c.column_name, {
      name: c.column_name,
      dataType: c.data_type,
      castType: c.data_type === 'USER-DEFINED' ? `${quoteIdent(c.udt_schema)}.${quoteIdent(c.udt_name)}` : c.data_type === 'character' ? 'bpchar' : c.data_type,
      maxLength: c.character_maximum_length,
      numericPrecision: typmod !== undefined ? (typmod >> 16) & 0xffff : c.data_type === 'numeric' ? null : c.numeric_precision,
      numericScale: typmod !== undefined ? ((typmod & 0x7ff) ^ 0x400) - 0x400 : c.data_type === 'numeric' ? null : c.numeric_scale,
      nullable: c.is_nullable === 'YES',
      hasDefault: c.column_default !== null || c.is_identity === 'YES' || c.is_generated === 'ALWAYS' || x?.domain_default === true,
      datetimePrecision: c.datetime_precision,
      identity: c.is_identity === 'YES' ? (c.identity_generation === 'ALWAYS' ? 'ALWAYS' : 'BY DEFAULT') : null,
      generated: c.is_generated === 'ALWAYS',
      userKind: c.data_type !== 'USER-DEFINED' ? undefined : x?.base_kind === 'e' ? 'enum' : x?.base_category === 'S' ? 'string' : 'other',
      collation: x?.collation ?? null,
    })
  }
  // only the key columns of an index (not its INCLUDE columns); one with an expression or a
  // predicate, or not valid (a failed CREATE INDEX CONCURRENTLY), is never inferred by ON CONFLICT (cols)
  const idx = await pool.query<{name: string; primary: boolean; immediate: boolean; constraint: string | null; cols: string[]}>(
    `SELECT ic.relname::text AS name, i.indisprimary AS primary, i.indimmediate AS immediate, con.conname::text AS constraint,
            array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE k.ord <= i.indnkeyatts ORDER BY k.ord) AS cols
       FROM pg_index i
       JOIN pg_class c ON c.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_class ic ON ic.oid = i.indexrelid
       LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u')
      WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL`,
    [ref.schema, ref.table],
  )
  const uniqueIndexes: UniqueIndex[] = idx.rows.map((r) => ({name: r.name, columns: r.cols, primary: r.primary, constraint: r.constraint, deferrable: !r.immediate}))
  const kind = await pool.query<{copyable: boolean; relkind: string; partition_key: string[] | null}>(
    `SELECT c.relkind IN ('r', 'p') AND NOT EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.ev_type = '3')
            AND NOT row_security_active(c.oid) AS copyable,
            c.relkind::text AS relkind,
            (SELECT CASE WHEN 0 = ANY(p.partattrs::int2[]) THEN NULL ELSE
                    array(SELECT a.attname::text FROM unnest(p.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
                            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.ord) END
               FROM pg_partitioned_table p WHERE p.partrelid = c.oid) AS partition_key
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
    [ref.schema, ref.table],
  )
  const rel = kind.rows[0]
  return {
    ref,
    columns,
    uniqueKeys: uniqueIndexes.filter((u) => !u.deferrable).map((u) => u.columns),
    uniqueIndexes,
    copyable: rel?.copyable === true,
    relkind: rel?.relkind,
    partitionKey: rel?.relkind === 'p' ? rel.partition_key : undefined,
  }
}

/**
 * An unquoted identifier as PostgreSQL stores it: `CREATE TABLE Payments` makes `payments`. Only
 * ASCII letters are folded (downcase_identifier; in a UTF-8 database other letters keep their case).
 */
export function foldedIdent(name: string): string {
  return name.replace(/[A-Z]+/g, (s) => s.toLowerCase())
}

/**
 * The names among `names` that differ from `name` only in case, when `name` is not one of them
 * (the spec's `Amount`, the table's `amount`: an unquoted identifier folds to lower case); the one
 * PostgreSQL folds `name` to first, then in their order. Empty when `name` is one of them.
 */
export function otherCases(name: string, names: Iterable<string>): string[] {
  const all = [...names]
  if (all.includes(name)) return []
  const lower = name.toLowerCase()
  const folded = foldedIdent(name)
  return all.filter((n) => n.toLowerCase() === lower).sort((a, b) => Number(b === folded) - Number(a === folded))
}

/** Why the database's `existing` is not the spec's `name` (they differ only in case). */
function caseReason(name: string, existing: string): string {
  if (existing === foldedIdent(name)) return 'created unquoted, so folded to lower case'
  // a capital ASCII letter is kept only inside quotes
  return existing !== foldedIdent(existing) ? 'created quoted, so it keeps its case' : 'in another case'
}

/** `a`, `a and b`, `a, b and c` */
export function inWords(items: readonly string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)!}`
}

/** A relation named as the sink table, in some case of its schema's and its own name. */
export interface RelationInAnyCase {
  schema: string
  table: string
  /** pg_class.relkind */
  relkind: string
}

/**
 * The relations that go by the sink table's name in any letter case of its schema's and its own
 * (the spec's `Payments`, the database's `payments` made by `CREATE TABLE Payments`: names are
 * matched exactly, as quoted identifiers): the exact one first, then the one PostgreSQL folds the
 * name to, then the others. Materialized views only when exact (a sink cannot write one).
 */
export async function relationsInAnyCase(pool: Pool, ref: TableRef): Promise<RelationInAnyCase[]> {
  const r = await pool.query<RelationInAnyCase>(
    `SELECT n.nspname::text AS schema, c.relname::text AS table, c.relkind::text AS relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE lower(n.nspname) = lower($1) AND lower(c.relname) = lower($2)
        AND (c.relkind IN ('r', 'p', 'v', 'f') OR (c.relkind = 'm' AND n.nspname = $1 AND c.relname = $2))
      ORDER BY n.nspname = $1 AND c.relname = $2 DESC, (n.nspname = $3 OR n.nspname = $1) AND (c.relname = $4 OR c.relname = $2) DESC,
               n.nspname = $1 DESC, n.nspname, c.relname`,
    [ref.schema, ref.table, foldedIdent(ref.schema), foldedIdent(ref.table)],
  )
  return r.rows
}

/** How the spec names `schema.table` for a sink whose table the spec named `ref` (its schema only when it named one, or the default differs). */
function specName(ref: TableRef, schema: string, table: string): string {
  return ref.qualified !== false || schema !== ref.schema ? `${schema}.${table}` : table
}

/**
 * The refusal (exit 2) of a sink table that does not exist when `found` (relationsInAnyCase, not
 * empty, none exact) differ from it only in case: never one taken for it silently. One: named, with
 * why its case differs, and the spec's fix; several: all named, and the one meant is the spec's to say.
 */
function tableInOtherCaseError(file: string, ref: TableRef, found: RelationInAnyCase[]): SpecError {
  const labels = found.map((r) => `${r.schema}.${r.table}`)
  const names = found.map((r) => specName(ref, r.schema, r.table))
  const why = (r: RelationInAnyCase) =>
    [r.schema !== ref.schema ? `schema ${r.schema} ${caseReason(ref.schema, r.schema)}` : '', r.table !== ref.table ? `table ${r.table} ${caseReason(ref.table, r.table)}` : '']
      .filter(Boolean)
      .join('; ')
  const details = {other_case: labels}
  if (found.length === 1) {
    const r = found[0]!
    const flag = !ref.qualified && r.schema !== ref.schema ? ` (or run with --schema ${r.schema}${r.table === ref.table ? '' : ` and table: ${r.table}`})` : ''
    return new SpecError(
      {file},
      `sink table ${ref.label} does not exist, but ${names[0]} does: PostgreSQL has ${labels[0]} (${why(r)}), and names are matched exactly, as quoted identifiers`,
      {hint: `write table: ${names[0]} in the spec's sinks${flag}`, details},
    )
  }
  const folded = `${foldedIdent(ref.schema)}.${foldedIdent(ref.table)}`
  const unquoted = labels.includes(folded) ? `; ${folded} is the one an unquoted ${ref.qualified ? ref.label : ref.table} names` : ''
  return new SpecError(
    {file},
    `sink table ${ref.label} does not exist, but ${found.length} whose names differ from it only in case do: ${inWords(labels)} (names are matched exactly, as quoted identifiers${unquoted})`,
    {hint: `write the one meant in the spec's sinks: ${names.map((n) => `table: ${n}`).join(' or ')}`, details},
  )
}

/** The column type `cutover` would create for a field (used in the fixes it suggests). */
export function suggestedType(f: Pick<FieldSpec, 'type'> & Partial<Pick<FieldSpec, 'precision' | 'scale' | 'max_length'>>): string {
  switch (f.type) {
    case 'string':
      return f.max_length ? `varchar(${f.max_length})` : 'text'
    case 'integer':
      return 'bigint'
    case 'decimal':
      return `numeric(${f.precision ?? 18}, ${f.scale ?? 0})`
    case 'timestamp':
      return 'timestamptz'
    case 'date':
      return 'date'
    case 'boolean':
      return 'boolean'
  }
}

/** What a sink writes into a column: a field, or an aggregate's running total (which only grows). */
export type ColumnUse = Pick<FieldSpec, 'type'> & Partial<Pick<FieldSpec, 'scale' | 'precision' | 'max_length' | 'timezone'>> & {total?: boolean}

const FITS: Record<FieldSpec['type'], readonly string[]> = {
  // a uuid or an enum column takes the strings it can read, and refuses another one (22P02) as one row
  string: ['text', 'character varying', 'character', 'uuid', 'USER-DEFINED'],
  integer: ['smallint', 'integer', 'bigint', 'numeric'],
  decimal: ['numeric'],
  timestamp: ['timestamp with time zone'],
  date: ['date'],
  boolean: ['boolean'],
}

/** the digits after the point that normalized timestamps always carry (src/normalize/timestamp.ts: .SSSZ) */
const TIMESTAMP_DIGITS = 3
/** the digits they carry at most (.SSSSSSZ, when the source has microseconds: timestamptz's own precision) */
const TIMESTAMP_MAX_DIGITS = 6

/**
 * A timestamptz(3..5) column of a timestamp field: it holds the milliseconds every value has, but
 * PostgreSQL rounds the microseconds a source may have (DB2's .123456) to its digits. Not refused
 * (a column for millisecond sources is a fair choice), said at start: the words of the warning, or
 * null.
 */
export function timestampRounding(f: ColumnUse, c: ColumnInfo): string | null {
  const p = c.datetimePrecision
  if (f.type !== 'timestamp' || p === null || p === undefined || p < TIMESTAMP_DIGITS || p >= TIMESTAMP_MAX_DIGITS) return null
  return `is timestamptz(${p}): a value with more than ${p} digits after the second (microseconds, as DB2's .123456) is rounded to ${p} by PostgreSQL; ALTER its type to timestamptz to keep them`
}

/** Why a column cannot hold a field's values, or null when it can. */
export function typeMismatch(f: ColumnUse, c: ColumnInfo): string | null {
  if (!FITS[f.type].includes(c.dataType)) {
    const what = f.type === 'timestamp' && c.dataType === 'timestamp without time zone' ? ' (an instant; this type keeps a wall-clock time without its zone)' : ''
    return `is ${c.dataType}, which cannot hold a ${f.type} field${what}`
  }
  if (c.dataType === 'USER-DEFINED' && c.userKind === 'other') return `is of type ${c.castType}, which cannot hold a ${f.type} field`
  if (c.dataType === 'numeric' && c.numericScale !== null) {
    const scale = f.type === 'decimal' ? f.scale : f.type === 'integer' ? 0 : undefined
    if (scale !== undefined && c.numericScale < scale) {
      return `is numeric(${c.numericPrecision}, ${c.numericScale}), which would round ${f.type === 'integer' ? 'an integer' : `a decimal of scale ${scale}`}`
    }
  }
  if (f.total && c.dataType === 'smallint') return `is smallint: a running total passes 32767 and every record after it would be refused`
  if (f.type === 'timestamp' && c.datetimePrecision !== null && c.datetimePrecision !== undefined && c.datetimePrecision < TIMESTAMP_DIGITS) {
    return `is timestamptz(${c.datetimePrecision}), which would round the milliseconds of a timestamp field`
  }
  if (f.type === 'string' && c.maxLength !== null && f.max_length !== undefined && c.maxLength < f.max_length) {
    return `holds ${c.maxLength} characters, less than the field's max_length ${f.max_length}`
  }
  return null
}

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`
}

/**
 * The ALTER that gives `column` the type the field needs, with a USING that converts the rows it
 * has (a text, a jsonb, a boolean column cannot be changed without one), and reads a timestamp
 * without time zone as the wall-clock time of the field's zone (without USING, PostgreSQL would
 * read it in the session's TimeZone, whatever the one running the fix has set).
 */
export function alterTypeSql(ref: TableRef, column: string, f: ColumnUse, c: ColumnInfo): string {
  const type = f.total && f.type === 'integer' ? 'bigint' : suggestedType(f)
  const col = quoteIdent(column)
  const zone = literal(f.timezone ?? 'UTC')
  let using = `${col}::${type}`
  if (f.type === 'timestamp' && c.dataType === 'timestamp without time zone') using = `${col} AT TIME ZONE ${zone}`
  else if (f.type === 'date' && c.dataType === 'timestamp with time zone') using = `(${col} AT TIME ZONE ${zone})::date`
  return `ALTER TABLE ${ref.sql} ALTER COLUMN ${col} TYPE ${type} USING ${using};`
}

/**
 * Whether PostgreSQL's `=` on this column is the same as on the text `cutover` holds: false for
 * char(n) (trailing spaces do not count), citext and other string types, uuid (case, braces and
 * hyphens do not count), and a nondeterministic collation. Two records whose keys differ only so
 * are one row to the table: a statement that inserts both fails with 21000 ("ON CONFLICT DO
 * UPDATE command cannot affect row a second time"), every time it is retried.
 */
export function exactEquality(c: ColumnInfo): boolean {
  if (c.collation) return false
  if (c.dataType === 'character' || c.dataType === 'uuid') return false
  return !(c.dataType === 'USER-DEFINED' && c.userKind === 'string')
}

/** `expr` compared as the column compares (its collation when nondeterministic). */
export function comparedAs(expr: string, c: ColumnInfo): string {
  return c.collation ? `${expr} COLLATE ${c.collation}` : expr
}

/** Integer digits of a decimal or integer text ("-00123.450" -> 3; "0.5" -> 0). */
function integerDigits(text: string): number {
  const digits = text.replace(/^[-+]/, '').split('.')[0]!.replace(/^0+/, '')
  return digits.length
}

const INTEGER_RANGE: Record<string, bigint> = {smallint: 32767n, integer: 2147483647n, bigint: 9223372036854775807n}

/**
 * Why `value` does not fit `col`, for the two refusals whose PostgreSQL text names no column:
 * 22001 "value too long for type character varying(10)" and 22003 "numeric field overflow" (or
 * "... out of range for type integer"). Says only the size, never the value (it may be sensitive).
 */
export function overflowOf(col: ColumnInfo, value: unknown, sqlstate: string | undefined): string | undefined {
  if (value === null || value === undefined) return undefined
  const text = String(value)
  if (sqlstate === '22001' && col.maxLength !== null) {
    const chars = [...text].length
    return chars > col.maxLength ? `column ${col.name}: ${chars} characters, at most ${col.maxLength}` : undefined
  }
  if (sqlstate !== '22003' || !/^[-+]?\d+(\.\d*)?$/.test(text)) return undefined
  if (col.dataType === 'numeric' && col.numericPrecision !== null) {
    const room = col.numericPrecision - (col.numericScale ?? 0)
    const have = integerDigits(text)
    return have > room ? `column ${col.name}: ${have} digits before the decimal point, at most ${room}` : undefined
  }
  const max = INTEGER_RANGE[col.dataType]
  if (max !== undefined && /^[-+]?\d+$/.test(text)) {
    const n = BigInt(text)
    return n > max || n < -max - 1n ? `column ${col.name}: out of the range of ${col.dataType}` : undefined
  }
  return undefined
}

export function mismatchError(file: string, message: string, fix: string): SpecError {
  return new SpecError({file}, message, {hint: fix})
}

/** A column the sink writes that the table does not have, with the fix (the field's name in another case: rename one of them). */
export function missingColumn(file: string, info: TableInfo, column: string, what: string, f: ColumnUse): SpecError {
  const others = otherCases(column, info.columns.keys())
  if (others.length === 1) {
    const other = others[0]!
    return new SpecError(
      {file},
      `sink table ${info.ref.label} has no column ${column} for ${what}, but has ${other} (columns are matched by their exact name): ${other} was ${caseReason(column, other)}`,
      {
        hint: `name it ${other} in the spec, or ALTER TABLE ${info.ref.sql} RENAME COLUMN ${quoteIdent(other)} TO ${quoteIdent(column)};`,
        details: {column, other_case: others},
      },
    )
  }
  if (others.length > 1) {
    // never one of them taken for it: the column meant is the spec's to say
    const folded = foldedIdent(column)
    const unquoted = others.includes(folded) ? `; ${folded} is the one an unquoted ${column} names` : ''
    return new SpecError(
      {file},
      `sink table ${info.ref.label} has no column ${column} for ${what}, but has ${others.length} whose names differ from it only in case: ${inWords(others)} (columns are matched by their exact name${unquoted})`,
      {hint: `name it in the spec as the column it is meant to fill: ${others.join(' or ')}`, details: {column, other_case: others}},
    )
  }
  const type = f.total && f.type === 'integer' ? 'bigint' : suggestedType(f)
  return mismatchError(file, `sink table ${info.ref.label} has no column ${column} for ${what}`, `ALTER TABLE ${info.ref.sql} ADD COLUMN ${quoteIdent(column)} ${type};`)
}

/**
 * A sink table that does not exist, with the SQL that creates it (`CREATE SCHEMA IF NOT EXISTS`
 * first when its schema does not exist either). buildSinks checks every sink before it throws:
 * the tables missing are reported together (missingTables).
 */
export class MissingTableError extends SpecError {
  constructor(
    readonly file: string,
    readonly ref: TableRef,
    /** the CREATE TABLE statement */
    readonly createTable: string,
    readonly schemaMissing: boolean,
  ) {
    super({file}, `sink table ${ref.label} does not exist`, {hint: createSql([{ref, createTable, schemaMissing}]), details: {missing_tables: [ref.label]}})
  }
}

/** The statements that create `tables`: each missing schema once, before its first table. */
function createSql(tables: {ref: TableRef; createTable: string; schemaMissing: boolean}[]): string {
  const schemas = new Set<string>()
  const out: string[] = []
  for (const t of tables) {
    if (t.schemaMissing && !schemas.has(t.ref.schema)) {
      schemas.add(t.ref.schema)
      out.push(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(t.ref.schema)};`)
    }
    out.push(t.createTable)
  }
  return out.join(' ')
}

/** One error for the sink tables that do not exist (one MissingTableError or more): the message names each, the hint creates each. */
export function missingTables(errors: MissingTableError[]): SpecError {
  if (errors.length === 1) return errors[0]!
  const labels = errors.map((e) => e.ref.label)
  return new SpecError({file: errors[0]!.file}, `sink tables ${labels.join(', ')} do not exist`, {hint: createSql(errors), details: {missing_tables: labels}})
}

/**
 * Whether the role may read relation `ref` at all: USAGE on its schema and SELECT on some column
 * (information_schema lists only the columns the role has a privilege on, so a relation it may not
 * read shows none and looks missing). Undefined when there is no such relation.
 */
export async function readAccessOf(pool: Pool, ref: TableRef): Promise<{role: string; usage: boolean; read: boolean} | undefined> {
  const may = await pool.query<{role: string; usage: boolean; read: boolean}>(
    `SELECT current_user::text AS role, has_schema_privilege(c.relnamespace, 'USAGE') AS usage, has_any_column_privilege(c.oid, 'SELECT') AS read
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
    [ref.schema, ref.table],
  )
  return may.rows[0]
}

/** The error for a sink table that does not exist: a materialized view, or in another case, named so; else the CREATE TABLE (MissingTableError). */
export async function missingTable(pool: Pool, file: string, ref: TableRef, create: string): Promise<SpecError> {
  const found = await relationsInAnyCase(pool, ref)
  const exact = found[0]?.schema === ref.schema && found[0]?.table === ref.table ? found[0] : undefined
  if (exact) {
    if (exact.relkind !== 'm') {
      // information_schema lists only the columns the role has a privilege on: a table the role
      // may not read (no USAGE on its schema, no privilege on the table) shows none
      const p = await readAccessOf(pool, ref)
      if (p && (!p.usage || !p.read)) {
        const lacks = [p.usage ? '' : `USAGE on schema ${ref.schema}`, p.read ? '' : `SELECT on table ${ref.label}`].filter(Boolean).join(' nor ')
        const role = quoteIdent(p.role)
        return new SpecError({file}, `the role ${p.role} may not read sink table ${ref.label} (it has no ${lacks}), so its columns cannot be checked nor its rows written`, {
          hint: `${p.usage ? '' : `GRANT USAGE ON SCHEMA ${quoteIdent(ref.schema)} TO ${role}; `}GRANT SELECT, INSERT, UPDATE ON ${ref.sql} TO ${role}; (run by the table's owner)`,
          details: {role: p.role},
        })
      }
    }
    return new SpecError({file}, `sink table ${ref.label} is ${exact.relkind === 'm' ? 'a materialized view' : 'a relation without columns'}, which a sink cannot write`, {
      hint: 'name a table (or a view that writes one) in the spec\'s sinks',
    })
  }
  if (found.length > 0) return tableInOtherCaseError(file, ref, found)
  const schemas = await pool.query<{name: string}>('SELECT nspname::text AS name FROM pg_namespace WHERE lower(nspname) = lower($1) ORDER BY nspname', [ref.schema])
  const names = schemas.rows.map((r) => r.name)
  const others = otherCases(ref.schema, names)
  if (names.includes(ref.schema) || others.length === 0) return new MissingTableError(file, ref, create, !names.includes(ref.schema))
  // its schema does not exist, one in another case does: created there, the table would be beside
  // it in a schema of its own ("Sales" beside sales), never seen by whoever looks in the other
  const refs = others.map((schema) => tableRef(`${schema}.${ref.table}`, ref.schema))
  const flag = ref.qualified ? '' : ` (or run with --schema ${others.length === 1 ? others[0]! : `${others.join(' or --schema ')}`})`
  const head = `CREATE TABLE ${ref.sql}`
  const createThere = create.startsWith(head) ? `: CREATE TABLE ${refs[0]!.sql}${create.slice(head.length)}` : ''
  return new SpecError(
    {file},
    `sink table ${ref.label} does not exist, nor does its schema ${ref.schema}, but ${others.length === 1 ? `schema ${others[0]!} does (${caseReason(ref.schema, others[0]!)})` : `schemas ${inWords(others)} do`}, and schema names are matched exactly, as quoted identifiers`,
    {
      hint:
        others.length === 1
          ? `write table: ${refs[0]!.label} in the spec's sinks${flag}, and create the table there${createThere}`
          : `write the schema meant in the spec's sinks: ${refs.map((r) => `table: ${r.label}`).join(' or ')}${flag}, and create the table there`,
      details: {missing_tables: [ref.label], other_case_schemas: others},
    },
  )
}

/**
 * A unique index on exactly `cols` (any order) that `ON CONFLICT (cols)` can use, or an exit-2
 * error: none (the fix: a primary key, or a unique index when the table has a primary key
 * already; a partitioned table's must hold its partition key), or one that is DEFERRABLE (ON
 * CONFLICT refuses every statement it would match: it must be re-created). A view is checked by
 * its statement instead (checkStatement: PostgreSQL infers the index of the table under it).
 */
export function requireUniqueKey(file: string, info: TableInfo, cols: string[], what: string): void {
  if (info.relkind !== undefined && info.relkind !== 'r' && info.relkind !== 'p') return
  const want = [...cols].sort().join(',')
  const same = (k: string[]) => [...k].sort().join(',') === want
  const deferrable = (info.uniqueIndexes ?? []).find((u) => u.deferrable && same(u.columns))
  const list = cols.map(quoteIdent).join(', ')
  if (deferrable) {
    const name = quoteIdent(deferrable.constraint ?? deferrable.name)
    throw mismatchError(
      file,
      `sink table ${info.ref.label}: the unique constraint ${deferrable.constraint ?? deferrable.name} on (${cols.join(', ')}) is DEFERRABLE, which ON CONFLICT cannot use (every write of ${what} would fail)`,
      `ALTER TABLE ${info.ref.sql} DROP CONSTRAINT ${name}, ADD CONSTRAINT ${name} ${deferrable.primary ? 'PRIMARY KEY' : 'UNIQUE'} (${deferrable.columns.map(quoteIdent).join(', ')});`,
    )
  }
  if (info.uniqueKeys.some(same)) return
  const partitionKey = info.partitionKey
  if (partitionKey !== undefined) {
    const missing = partitionKey === null ? null : partitionKey.filter((p) => !cols.includes(p))
    if (missing === null || partitionKey === null) {
      throw mismatchError(
        file,
        `sink table ${info.ref.label} is partitioned by an expression, so it can have no unique index on (${cols.join(', ')}), which ${what} needs for its upsert`,
        `write a table that is not partitioned by an expression (or partitioned by columns of the key)`,
      )
    }
    if (missing.length > 0) {
      throw mismatchError(
        file,
        `sink table ${info.ref.label} is partitioned by (${partitionKey.join(', ')}): a unique index on it must hold ${missing.join(', ')}, and ${what} needs one on (${cols.join(', ')}) for its upsert`,
        `add ${missing.join(', ')} to the spec's ${what.includes('grouped') ? 'group_by' : 'key'} (e.g. [${[...cols, ...missing].join(', ')}]), and a unique index on those columns if the table has none`,
      )
    }
  }
  const hasPrimary = (info.uniqueIndexes ?? []).some((u) => u.primary)
  throw mismatchError(
    file,
    `sink table ${info.ref.label} has no unique index on (${cols.join(', ')}), which ${what} needs for its upsert`,
    hasPrimary ? `CREATE UNIQUE INDEX ON ${info.ref.sql} (${list});` : `ALTER TABLE ${info.ref.sql} ADD PRIMARY KEY (${list});`,
  )
}

/**
 * Every NOT NULL column without a default must be written, or every insert would fail; and no
 * column the sink writes may be one PostgreSQL fills itself (GENERATED ALWAYS AS (...) STORED, or
 * GENERATED ALWAYS AS IDENTITY): an INSERT that gives it a value fails (428C9), every time.
 */
export function requireWritable(file: string, info: TableInfo, written: string[]): void {
  for (const name of written) {
    const c = info.columns.get(name)
    if (c?.generated) {
      throw mismatchError(
        file,
        `sink table ${info.ref.label}: column ${name} is GENERATED ALWAYS AS (...) STORED, which PostgreSQL computes, and the pipeline writes it`,
        `ALTER TABLE ${info.ref.sql} ALTER COLUMN ${quoteIdent(name)} DROP EXPRESSION; (or drop the field ${name} from the spec)`,
      )
    }
    if (c?.identity === 'ALWAYS') {
      throw mismatchError(
        file,
        `sink table ${info.ref.label}: column ${name} is GENERATED ALWAYS AS IDENTITY, which takes no value from an INSERT, and the pipeline writes it`,
        `ALTER TABLE ${info.ref.sql} ALTER COLUMN ${quoteIdent(name)} SET GENERATED BY DEFAULT;`,
      )
    }
  }
  for (const c of info.columns.values()) {
    if (!c.nullable && !c.hasDefault && !written.includes(c.name)) {
      throw mismatchError(
        file,
        `sink table ${info.ref.label} has column ${c.name} NOT NULL without a default, and the pipeline does not write it`,
        `add a field named ${c.name} to the spec, or ALTER TABLE ${info.ref.sql} ALTER COLUMN ${quoteIdent(c.name)} DROP NOT NULL;`,
      )
    }
  }
}

/** SQLSTATEs by which PostgreSQL refuses a statement for what the table is, not for an outage. */
const REFUSED_STATEMENT = /^(42|0A|428C9$|55000$|21)/

/** How the start checks wait for a lock on a sink table (planWaiting): who is told, and what ends the wait. */
export interface StartWait {
  /** `start.lock.waiting` (warn) while it waits, `start.lock.acquired` once it got the lock */
  logger?: Logger
  /** the same, a line for the person at the terminal (stream run's human mode) */
  notice?: (message: string) => void
  /** a stop (SIGTERM/SIGINT): the wait ends, nothing is planned (the caller, stopping, writes nothing) */
  signal?: AbortSignal
}

/**
 * The sink's own statement planned once at start (`EXPLAIN`, nothing written; its arrays empty):
 * what the checks above cannot see is then refused at start (exit 2), not by every batch: no
 * unique index the upsert can infer (a view's table, 42P10), a column it may not write, a
 * privilege it lacks (42501), an arbiter index that is DEFERRABLE (ON CONFLICT refuses it
 * when it runs, 55000), and row-level security with no policy that lets the role write
 * (requirePolicies). Errors of the connection are thrown as they are. Planning takes a lock on
 * the table and waits for one another session holds (planWaiting: `wait` says who is told and
 * what stops the wait; stopped, it returns without a check).
 */
export async function checkStatement(pool: Pool, file: string, info: TableInfo, text: string, arrays: number, what: string, wait: StartWait = {}): Promise<void> {
  let plan: unknown
  try {
    const r = await planWaiting<{'QUERY PLAN': unknown}>(pool, info.ref, `EXPLAIN (FORMAT JSON, VERBOSE) ${text}`, Array.from({length: arrays}, () => '{}'), wait)
    if (r === STOPPED) return
    plan = r.rows[0]?.['QUERY PLAN']
  } catch (e) {
    const err = e as {code?: string; message?: string}
    if (typeof err.code !== 'string' || !REFUSED_STATEMENT.test(err.code)) throw e
    let hint = 'fix the table, or write another one'
    if (err.code === '42501') {
      const role = await pool.query<{role: string}>('SELECT current_user::text AS role')
      hint = `GRANT SELECT, INSERT, UPDATE ON ${info.ref.sql} TO ${quoteIdent(role.rows[0]!.role)}; (run by the table's owner)`
    } else if (err.code === '42P10') {
      hint = `give the table ${info.relkind === 'v' ? 'under the view ' : ''}a unique index on the columns of ${what}`
    } else if (err.code === '0A000') {
      // INSERT ... ON CONFLICT is refused on a table with INSERT or UPDATE rules (an audit rule, an old-style updatable view)
      const rules = await pool.query<{name: string}>(
        `SELECT r.rulename::text AS name FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = $2 AND r.ev_type IN ('2', '3') ORDER BY 1`,
        [info.ref.schema, info.ref.table],
      )
      if (rules.rows.length > 0) {
        hint = `${rules.rows.map((r) => `DROP RULE ${quoteIdent(r.name)} ON ${info.ref.sql};`).join(' ')} (an AFTER INSERT OR UPDATE trigger can do what the rule did: ON CONFLICT works with triggers)`
      }
    }
    throw new SpecError({file}, `sink table ${info.ref.label} refuses what ${what} writes: ${err.message} (SQLSTATE ${err.code})`, {hint})
  }
  const node = (Array.isArray(plan) ? (plan[0] as {Plan?: Record<string, unknown>})?.Plan : undefined) ?? {}
  await requirePolicies(pool, file, info, node['Conflict Resolution'] as string | undefined, what)
  const arbiters = (node['Conflict Arbiter Indexes'] as string[] | undefined) ?? []
  const schema = (node['Schema'] as string | undefined) ?? info.ref.schema
  if (arbiters.length === 0) return
  const deferrable = await pool.query<{name: string}>(
    `SELECT ic.relname::text AS name FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
      WHERE n.nspname = $1 AND ic.relname = ANY($2) AND NOT i.indimmediate`,
    [schema, arbiters],
  )
  if (deferrable.rows.length > 0) {
    const names = deferrable.rows.map((r) => r.name).join(', ')
    throw new SpecError(
      {file},
      `sink table ${info.ref.label}: the unique index ${names} that ${what} would use is DEFERRABLE, which ON CONFLICT cannot use (every write would fail)`,
      {hint: `re-create the constraint ${names} NOT DEFERRABLE (ALTER TABLE ... DROP CONSTRAINT ..., ADD CONSTRAINT ... UNIQUE (...))`},
    )
  }
}

/** What each command's missing policy means for the sink's records. */
const POLICY_NEEDED: Record<string, {verb: string; refused: string; clause: string}> = {
  INSERT: {verb: 'insert rows', refused: 'every record', clause: 'WITH CHECK (true)'},
  SELECT: {verb: 'read the rows it writes (INSERT ... ON CONFLICT checks them against the SELECT policies)', refused: 'every record', clause: 'USING (true)'},
  UPDATE: {verb: 'update rows', refused: 'every record whose key is in the table', clause: 'USING (true) WITH CHECK (true)'},
}

/**
 * Row-level security on the sink table for the role (not its owner, not a superuser or BYPASSRLS:
 * row_security_active) refuses, one by one, the rows no permissive policy admits; a row a policy
 * refuses is dead-lettered (SINK_REJECTED, batch.ts isPolicyRefusal). With no permissive policy
 * at all for a command the statement needs, that is every row: refused here (exit 2) instead of a
 * DLQ holding every record. The upsert needs INSERT; with ON CONFLICT (`conflict`, from the plan)
 * SELECT too, and with DO UPDATE UPDATE (PostgreSQL's default deny, seen on 15: an INSERT ... ON
 * CONFLICT DO NOTHING is refused without a SELECT policy).
 */
async function requirePolicies(pool: Pool, file: string, info: TableInfo, conflict: string | undefined, what: string): Promise<void> {
  const commands = ['INSERT', ...(conflict ? ['SELECT'] : []), ...(conflict === 'UPDATE' ? ['UPDATE'] : [])]
  const r = await pool.query<{cmd: string; role: string}>(
    `SELECT cmd, current_user::text AS role
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, unnest($3::text[]) AS cmd
      WHERE n.nspname = $1 AND c.relname = $2 AND row_security_active(c.oid)
        AND NOT EXISTS (SELECT 1 FROM pg_policy p
                         WHERE p.polrelid = c.oid AND p.polpermissive
                           AND p.polcmd::text IN ('*', CASE cmd WHEN 'SELECT' THEN 'r' WHEN 'INSERT' THEN 'a' WHEN 'UPDATE' THEN 'w' END)
                           AND EXISTS (SELECT 1 FROM unnest(p.polroles) AS r(oid) WHERE CASE WHEN r.oid = 0 THEN true ELSE pg_has_role(current_user, r.oid, 'MEMBER') END))
      ORDER BY array_position($3::text[], cmd)`,
    [info.ref.schema, info.ref.table, commands],
  )
  if (r.rows.length === 0) return
  const role = r.rows[0]!.role
  const missing = r.rows.map((x) => x.cmd)
  const needs = missing.map((cmd) => `${cmd} (to ${POLICY_NEEDED[cmd]!.verb}: ${POLICY_NEEDED[cmd]!.refused} would be refused)`)
  throw new SpecError({file}, `sink table ${info.ref.label} has row-level security on for role ${role}, and no permissive policy for ${needs.join(', ')}, which ${what} needs`, {
    hint: `${missing.map((cmd) => `CREATE POLICY ${quoteIdent(`cutover_${cmd.toLowerCase()}`)} ON ${info.ref.sql} FOR ${cmd} TO ${quoteIdent(role)} ${POLICY_NEEDED[cmd]!.clause};`).join(' ')} (run by the table's owner, with the conditions its rows must meet instead of true: a row a policy refuses goes to the DLQ)`,
  })
}

/** planWaiting's answer when a stop (StartWait `signal`) ended the wait: nothing was planned. */
const STOPPED = Symbol('stopped')
/** When a start check still planning first asks who holds the lock it waits for (pg_blocking_pids)... */
const LOCK_FIRST_LOOK_MS = 1000
/** ... and then how often, while it waits: each time it says who. */
const LOCK_REPORT_MS = 10_000

/** A session that holds (or waits ahead for) the lock a start check waits for: never its query text (it may hold values, secrets). */
type LockBlocker = {
  /** 0: a prepared transaction (pg_prepared_xacts) */
  pid: number
  application_name: string | null
  user: string | null
  /** pg_stat_activity.state: `idle in transaction`, `active`, ... (null when the role may not see it: pg_read_all_stats) */
  state: string | null
  /** the lock modes it holds on the relation waited for (AccessExclusiveLock); null when it waits for it too, ahead in the queue */
  holds: string | null
  /** how long its transaction has been open (the lock is held at most that long); null when the role may not see it */
  transaction_s: number | null
}

/** Who blocks backend `pid`, and on what relation it waits. */
async function lockBlockers(pool: Pool, pid: number): Promise<{relation: string | null; blockers: LockBlocker[]}> {
  const r = await pool.query<LockBlocker & {relation: string | null}>(
    `SELECT (SELECT n.nspname || '.' || c.relname FROM pg_locks w JOIN pg_class c ON c.oid = w.relation JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE w.pid = $1 AND NOT w.granted LIMIT 1) AS relation,
            b.pid, a.application_name, a.usename::text AS user, a.state,
            (SELECT string_agg(DISTINCT l.mode, ', ') FROM pg_locks l
               JOIN pg_locks w ON w.pid = $1 AND NOT w.granted AND w.locktype = l.locktype
                              AND w.database IS NOT DISTINCT FROM l.database AND w.relation IS NOT DISTINCT FROM l.relation
              WHERE l.pid = b.pid AND l.granted) AS holds,
            floor(extract(epoch FROM clock_timestamp() - a.xact_start))::int AS transaction_s
       FROM unnest(pg_blocking_pids($1)) AS b(pid) LEFT JOIN pg_stat_activity a ON a.pid = b.pid
      ORDER BY b.pid`,
    [pid],
  )
  return {relation: r.rows[0]?.relation ?? null, blockers: r.rows.map(({relation: _, ...b}) => b)}
}

/** One blocker, for the person at the terminal. */
function describeBlocker(b: LockBlocker): string {
  if (b.pid === 0) return 'a prepared transaction (see pg_prepared_xacts)'
  const facts = [
    `application ${JSON.stringify(b.application_name ?? '')}`,
    `user ${b.user ?? 'unknown'}`,
    b.holds ? `holding ${b.holds}` : 'waiting for it too, ahead in the queue',
    b.transaction_s === null ? 'its transaction age not visible to this role' : `in a transaction for ${b.transaction_s} s${b.state ? ` (${b.state})` : ''}`,
  ]
  return `pid ${b.pid} (${facts.join(', ')})`
}

/**
 * Runs `sql` (a start check's EXPLAIN, which takes a lock on the sink table) on a connection of
 * its own. While it waits for a lock another session holds (an ALTER TABLE, a VACUUM FULL, a
 * migration in an open transaction), it says so after LOCK_FIRST_LOOK_MS and every
 * LOCK_REPORT_MS: the relation, how long it has waited, and each blocking backend's pid,
 * application_name, user and lock, from pg_blocking_pids, pg_locks and pg_stat_activity (never
 * the query: it may hold values and secrets). It waits as long as the lock is held and keeps its
 * place in the lock queue (no lock_timeout to retry on). A stop (`signal`) cancels the statement
 * (pg_cancel_backend: a backend waiting for a lock would not notice its client gone, and would
 * stay in the queue) and returns STOPPED; the connection is then closed, so that the cancel can
 * reach nothing else.
 */
async function planWaiting<T extends Record<string, unknown>>(pool: Pool, ref: TableRef, sql: string, params: unknown[], wait: StartWait): Promise<{rows: T[]} | typeof STOPPED> {
  if (wait.signal?.aborted) return STOPPED
  const client = await pool.connect()
  let discard = false
  // ends the sleeps below: at a stop, and when done (their timers cleared)
  const tick = new AbortController()
  const stop = () => tick.abort()
  wait.signal?.addEventListener('abort', stop, {once: true})
  try {
    const pid = (await client.query<{pid: number}>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
    const started = Date.now()
    const planned = client.query<T>(sql, params).then(
      (result) => ({result}),
      (error: unknown) => ({error}),
    )
    let table: string | undefined
    for (let delay = LOCK_FIRST_LOOK_MS; ; delay = LOCK_REPORT_MS) {
      const done = await Promise.race([planned, sleep(delay, tick.signal).then(() => undefined)])
      const waited_s = Math.round((Date.now() - started) / 1000)
      if (done) {
        if (table !== undefined) {
          wait.logger?.info('start.lock.acquired', {table, sink_table: ref.label, waited_s})
          wait.notice?.(`the lock on ${table} was released after ${waited_s} s: the start checks go on`)
        }
        if ('error' in done) {
          discard = true
          throw done.error
        }
        return done.result
      }
      if (wait.signal?.aborted) {
        discard = true
        await pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => {})
        await planned
        wait.logger?.info('start.lock.stopped', {table: table ?? ref.label, sink_table: ref.label, waited_s})
        return STOPPED
      }
      const seen = await lockBlockers(pool, pid).catch((e: unknown) => {
        wait.logger?.debug('start.lock.look.failed', {error: e})
        return undefined
      })
      if (!seen || seen.blockers.length === 0) continue
      table = seen.relation ?? ref.label
      wait.logger?.warn('start.lock.waiting', {table, sink_table: ref.label, waited_s, blockers: seen.blockers})
      wait.notice?.(`waiting for a lock on ${table} (${waited_s} s so far), blocked by ${seen.blockers.map(describeBlocker).join('; ')}: the run starts once it is released (SIGTERM or Ctrl-C stops it)`)
    }
  } finally {
    wait.signal?.removeEventListener('abort', stop)
    tick.abort()
    client.release(discard)
  }
}
