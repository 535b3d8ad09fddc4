/**
 * What every sink needs of its PostgreSQL table, checked once at start (exit 2 when it does
 * not fit, naming the column and giving the SQL that fixes it): the columns and their types
 * (information_schema), and the unique indexes an `ON CONFLICT (...)` can use (pg_index).
 *
 * Identifiers from the spec are always quoted (`quoteIdent`); values are always parameters.
 */
import {SpecError} from '../../errors.js'
import type {FieldSpec} from '../../config/spec.js'
import type {Pool} from '../../pg/pool.js'
import {quoteIdent} from '../../pg/ident.js'

export {quoteIdent} from '../../pg/ident.js'

export interface TableRef {
  schema: string
  table: string
  /** "schema"."table", quoted */
  sql: string
  /** schema.table, for messages */
  label: string
}

/** `t` -> defaultSchema.t; `s.t` -> s.t. */
export function tableRef(name: string, defaultSchema: string): TableRef {
  const dot = name.indexOf('.')
  const schema = dot < 0 ? defaultSchema : name.slice(0, dot)
  const table = dot < 0 ? name : name.slice(dot + 1)
  return {schema, table, sql: `${quoteIdent(schema)}.${quoteIdent(table)}`, label: `${schema}.${table}`}
}

export interface ColumnInfo {
  name: string
  /** information_schema data_type: text, numeric, timestamp with time zone, USER-DEFINED, ... */
  dataType: string
  /** a type name usable in a cast: `$1::<castType>[]` */
  castType: string
  maxLength: number | null
  numericPrecision: number | null
  numericScale: number | null
  nullable: boolean
  hasDefault: boolean
}

export interface TableInfo {
  ref: TableRef
  columns: Map<string, ColumnInfo>
  /** column sets of the unique indexes (without predicate) */
  uniqueKeys: string[][]
  /**
   * rows may go in by `COPY ... FROM STDIN` (pg/copy.ts) as they would by INSERT: a plain or
   * partitioned table without INSERT rules (COPY does not apply rules, and a view is not copied into)
   */
  copyable: boolean
}

export async function describeTable(pool: Pool, ref: TableRef): Promise<TableInfo | null> {
  const cols = await pool.query<{
    column_name: string
    data_type: string
    udt_schema: string
    udt_name: string
    character_maximum_length: number | null
    numeric_precision: number | null
    numeric_scale: number | null
    is_nullable: string
    column_default: string | null
    is_identity: string
    is_generated: string
  }>(
    `SELECT column_name, data_type, udt_schema, udt_name, character_maximum_length, numeric_precision, numeric_scale,
            is_nullable, column_default, is_identity, is_generated
       FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
    [ref.schema, ref.table],
  )
  if (cols.rows.length === 0) return null
  const columns = new Map<string, ColumnInfo>()
  for (const c of cols.rows) {
    columns.set(c.column_name, {
      name: c.column_name,
      dataType: c.data_type,
      castType: c.data_type === 'USER-DEFINED' ? `${quoteIdent(c.udt_schema)}.${quoteIdent(c.udt_name)}` : c.data_type,
      maxLength: c.character_maximum_length,
      numericPrecision: c.numeric_precision,
      numericScale: c.numeric_scale,
      nullable: c.is_nullable === 'YES',
      hasDefault: c.column_default !== null || c.is_identity === 'YES' || c.is_generated === 'ALWAYS',
    })
  }
  const idx = await pool.query<{cols: string[]}>(
    `SELECT array_agg(a.attname::text ORDER BY k.ord) AS cols
       FROM pg_index i
       JOIN pg_class c ON c.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
      WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indpred IS NULL
      GROUP BY i.indexrelid`,
    [ref.schema, ref.table],
  )
  const kind = await pool.query<{copyable: boolean}>(
    `SELECT c.relkind IN ('r', 'p') AND NOT EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.ev_type = '3') AS copyable
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
    [ref.schema, ref.table],
  )
  return {ref, columns, uniqueKeys: idx.rows.map((r) => r.cols), copyable: kind.rows[0]?.copyable === true}
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

const FITS: Record<FieldSpec['type'], readonly string[]> = {
  string: ['text', 'character varying', 'character', 'USER-DEFINED'],
  integer: ['smallint', 'integer', 'bigint', 'numeric'],
  decimal: ['numeric'],
  timestamp: ['timestamp with time zone'],
  date: ['date'],
  boolean: ['boolean'],
}

/** Why a column cannot hold a field's values, or null when it can. */
export function typeMismatch(f: Pick<FieldSpec, 'type'> & Partial<Pick<FieldSpec, 'scale' | 'max_length'>>, c: ColumnInfo): string | null {
  if (!FITS[f.type].includes(c.dataType)) return `is ${c.dataType}, which cannot hold a ${f.type} field`
  if (f.type === 'decimal' && c.numericScale !== null && f.scale !== undefined && c.numericScale < f.scale) {
    return `is numeric(${c.numericPrecision}, ${c.numericScale}), which would round a decimal of scale ${f.scale}`
  }
  if (f.type === 'string' && c.maxLength !== null && f.max_length !== undefined && c.maxLength < f.max_length) {
    return `holds ${c.maxLength} characters, less than the field's max_length ${f.max_length}`
  }
  return null
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

/** The unique index whose columns are exactly `cols` (any order), or an exit-2 error. */
export function requireUniqueKey(file: string, info: TableInfo, cols: string[], what: string): void {
  const want = [...cols].sort().join(',')
  if (info.uniqueKeys.some((k) => [...k].sort().join(',') === want)) return
  throw mismatchError(
    file,
    `sink table ${info.ref.label} has no unique index on (${cols.join(', ')}), which ${what} needs for its upsert`,
    `ALTER TABLE ${info.ref.sql} ADD PRIMARY KEY (${cols.map(quoteIdent).join(', ')});`,
  )
}

/** Every NOT NULL column without a default must be written, or every insert would fail. */
export function requireWritable(file: string, info: TableInfo, written: string[]): void {
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
