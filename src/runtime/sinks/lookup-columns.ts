/**
 * The start check of the `enrich` lookup columns a sink writes (stages/enrich.ts): a lookup gives
 * each select column as the PostgreSQL text of its value, and the sink casts that text to its own
 * column's type. A sink column whose type cannot take every value of the lookup's column (a text
 * into an integer, a numeric(14, 2) into an integer or a numeric(12, 0), a timestamp without time
 * zone into a timestamptz, a varchar(40) into a varchar(10), a date into a timestamptz) would
 * refuse or change the value of record after record (SINK_REJECTED, or a rounded amount): refused
 * at start instead, exit 2, at the select entry, with the fix. A string column of the sink (text, unbounded varchar, citext)
 * takes any lookup column's text. A lookup table that does not exist, or lacks a select column, is
 * not checked here: the enrich stage's own start check says so.
 */
import {specLocation, type EnrichSpec} from '../../config/spec.js'
import {SpecError} from '../../errors.js'
import {quoteIdent} from '../../pg/ident.js'
import type {Pool} from '../../pg/pool.js'
import type {PipelineContext} from '../types.js'
import {describeTable, tableRef, typeMismatch, type ColumnInfo, type ColumnUse, type TableInfo} from './table.js'

/** The lookup column a select name comes from: the last lookup that selects it (stages run in spec order, so its value is the one on the record). */
interface LookupColumn {
  lookup: EnrichSpec
  index: number
  select: number
  table: TableInfo
  col: ColumnInfo
}

const described = new WeakMap<PipelineContext, Promise<Map<string, LookupColumn>>>()

/** The lookup columns of the spec's `enrich`, by select name (the lookup tables described once per pipeline). */
function lookupColumns(ctx: PipelineContext, pool: Pool): Promise<Map<string, LookupColumn>> {
  let found = described.get(ctx)
  if (!found) {
    found = (async () => {
      const out = new Map<string, LookupColumn>()
      for (const [index, lookup] of ctx.loaded.spec.enrich.entries()) {
        // a table that does not exist, or a column it lacks: the enrich stage's own start check says so
        const table = await describeTable(pool, tableRef(lookup.table, ctx.schema))
        if (!table) continue
        lookup.select.forEach((name, select) => {
          const col = table.columns.get(name)
          if (col) out.set(name, {lookup, index, select, table, col})
          else out.delete(name)
        })
      }
      return out
    })()
    described.set(ctx, found)
  }
  return found
}

const STRING_TYPES = new Set(['text', 'character varying', 'character'])

function isString(c: ColumnInfo): boolean {
  return STRING_TYPES.has(c.dataType) || (c.dataType === 'USER-DEFINED' && c.userKind === 'string')
}

/** A column's type as written in SQL: numeric(14, 2), varchar(40), timestamptz(3), the type's own name. */
export function typeText(c: ColumnInfo): string {
  switch (c.dataType) {
    case 'numeric':
      return c.numericPrecision !== null ? `numeric(${c.numericPrecision}, ${c.numericScale ?? 0})` : 'numeric'
    case 'character varying':
      return c.maxLength !== null ? `varchar(${c.maxLength})` : 'varchar'
    case 'character':
      return `char(${c.maxLength ?? 1})`
    case 'timestamp with time zone':
      return c.datetimePrecision !== null && c.datetimePrecision !== undefined && c.datetimePrecision < 6 ? `timestamptz(${c.datetimePrecision})` : 'timestamptz'
    case 'USER-DEFINED':
      return c.castType
    default:
      return c.dataType
  }
}

/** The field type whose values are those of a lookup column (their text read back), or null for a type no field has. */
function lookupUse(c: ColumnInfo): ColumnUse | null {
  if (isString(c) || c.dataType === 'uuid' || (c.dataType === 'USER-DEFINED' && c.userKind === 'enum')) {
    return {type: 'string', ...(c.maxLength !== null && c.dataType !== 'uuid' ? {max_length: c.maxLength} : {})}
  }
  switch (c.dataType) {
    case 'smallint':
    case 'integer':
    case 'bigint':
      return {type: 'integer'}
    case 'numeric':
      if (c.numericScale === 0) return {type: 'integer'}
      return {type: 'decimal', ...(c.numericScale !== null ? {scale: c.numericScale} : {}), ...(c.numericPrecision !== null ? {precision: c.numericPrecision} : {})}
    case 'timestamp with time zone':
      return {type: 'timestamp'}
    case 'date':
      return {type: 'date'}
    case 'boolean':
      return {type: 'boolean'}
    default:
      return null
  }
}

/** Whether `sink` takes every value of lookup column `lookup` given as its text (as strict as the sinks are with fields: typeMismatch). */
export function lookupColumnFits(lookup: ColumnInfo, sink: ColumnInfo): boolean {
  if (isString(sink)) {
    // any text fits an unbounded one; a bounded one, a string whose declared length is no longer
    // (as for a string field: one without max_length is not refused)
    return sink.maxLength === null || !isString(lookup) || lookup.maxLength === null || lookup.maxLength <= sink.maxLength
  }
  const use = lookupUse(lookup)
  // a type no field has (jsonb, interval, a timestamp without time zone, double precision): only into its own type
  if (use === null) return lookup.castType === sink.castType
  // a numeric without scale may hold more decimals than a numeric(p, s) keeps: they would be rounded
  if (lookup.dataType === 'numeric' && lookup.numericScale === null && sink.dataType === 'numeric' && sink.numericScale !== null) return false
  return typeMismatch(use, sink) === null
}

/**
 * Refuses (SpecError, exit 2, at the lookup's select entry) a sink column among `columns`, written
 * from a lookup column, whose type cannot take every value of it.
 */
export async function requireLookupColumnsFit(ctx: PipelineContext, pool: Pool, sink: TableInfo, columns: readonly string[]): Promise<void> {
  if (columns.length === 0) return
  const lookups = await lookupColumns(ctx, pool)
  for (const name of columns) {
    const from = lookups.get(name)
    const col = sink.columns.get(name)
    if (!from || !col || lookupColumnFits(from.col, col)) continue
    const {lookup, index, select} = from
    const type = typeText(from.col)
    throw new SpecError(
      specLocation(ctx.loaded, ['enrich', index, 'select', select]),
      `sink table ${sink.ref.label}: column ${name} is ${typeText(col)}, which cannot take every value of lookup ${lookup.name}'s column ${from.table.ref.label}.${name} (${type}): each value's text is cast to the sink column's type, and one it does not fit would be refused (SINK_REJECTED) or rounded, record after record`,
      {
        hint: `ALTER TABLE ${sink.ref.sql} ALTER COLUMN ${quoteIdent(name)} TYPE ${type} USING ${quoteIdent(name)}::${type}; or select it through a view that casts it to ${typeText(col)}, or remove ${name} from enrich[${index}].select`,
        details: {column: name, sink_type: typeText(col), lookup: lookup.name, lookup_type: type},
      },
    )
  }
}
