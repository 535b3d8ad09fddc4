/**
 * The records of a batch that a foreign key of a sink table refuses, found in one statement.
 *
 * PostgreSQL checks a foreign key at the end of the statement (an AFTER trigger), so a failed
 * write does not tell which row stopped it (batch.ts findRefused). When the error names the
 * constraint (23503, with its schema, table and constraint fields), its definition is read from
 * the catalog and the batch's values of its columns (the records' fields of the same names, as
 * the upsert sink matches columns) are looked up in the referenced table: the records whose key
 * is missing there are the suspects. They are only suspects: each is then written alone, as a
 * bisection would, and the database's own answer decides.
 *
 *   SELECT u.i FROM unnest($1::text[], $2::int4[]) AS u(c0, i)
 *    WHERE u.c0 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "s"."accounts" r WHERE r."id" = u.c0)
 *
 * MATCH SIMPLE (the default): a row with a null in a key column is not checked.
 */
import type {PoolClient} from '../../pg/pool.js'
import type {WorkItem} from '../types.js'
import {pgArray} from './pgarray.js'
import {quoteIdent} from './table.js'

interface ForeignKey {
  /** the referencing columns (the sink table's), in key order */
  columns: string[]
  /** their types, without modifiers (a cast of the array must not refuse a value itself) */
  types: string[]
  /** the referenced table, qualified and quoted, and its columns */
  refTable: string
  refColumns: string[]
}

const known = new Map<string, ForeignKey | null>()

async function foreignKey(tx: PoolClient, schema: string, table: string, constraint: string): Promise<ForeignKey | null> {
  const id = JSON.stringify([schema, table, constraint])
  if (known.has(id)) return known.get(id)!
  const r = await tx.query<{col: string; type: string; ref_col: string; ref_schema: string; ref_table: string}>(
    `SELECT a.attname AS col, format_type(a.atttypid, NULL) AS type, fa.attname AS ref_col, fn.nspname AS ref_schema, fc.relname AS ref_table
       FROM pg_constraint c
       JOIN pg_class t ON t.oid = c.conrelid
       JOIN pg_namespace n ON n.oid = t.relnamespace
       JOIN pg_class fc ON fc.oid = c.confrelid
       JOIN pg_namespace fn ON fn.oid = fc.relnamespace
       CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(attnum, fattnum, ord)
       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
       JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = k.fattnum
      WHERE c.contype = 'f' AND c.conname = $1 AND n.nspname = $2 AND t.relname = $3
      ORDER BY k.ord`,
    [constraint, schema, table],
  )
  const fk =
    r.rows.length === 0
      ? null
      : {
          columns: r.rows.map((x) => x.col),
          types: r.rows.map((x) => x.type),
          refTable: `${quoteIdent(r.rows[0]!.ref_schema)}.${quoteIdent(r.rows[0]!.ref_table)}`,
          refColumns: r.rows.map((x) => x.ref_col),
        }
  if (known.size > 1000) known.clear()
  known.set(id, fk)
  return fk
}

/**
 * The indexes (ascending) of the `items` whose values a foreign key named by `error` (a 23503)
 * does not find in its referenced table; null when that cannot be told (the error names no
 * constraint, a key column is not a field of the records, the lookup fails). Runs under a
 * savepoint of its own, so a failed lookup leaves the transaction usable.
 */
export async function foreignKeySuspects(tx: PoolClient, error: unknown, items: readonly WorkItem[]): Promise<number[] | null> {
  const e = error as {code?: string; schema?: string; table?: string; constraint?: string}
  if (e?.code !== '23503' || !e.schema || !e.table || !e.constraint) return null
  await tx.query('SAVEPOINT cutover_fk')
  try {
    const fk = await foreignKey(tx, e.schema, e.table, e.constraint)
    if (!fk || !items.every((i) => i.record && fk.columns.every((c) => c in i.record!))) {
      await tx.query('RELEASE SAVEPOINT cutover_fk')
      return null
    }
    const aliases = fk.columns.map((_, k) => `c${k}`)
    const params = [...fk.columns.map((c) => pgArray(items.map((i) => (i.record![c] ?? null) as string | boolean | null))), pgArray(items.map((_, k) => String(k)))]
    const r = await tx.query<{i: number}>(
      `SELECT u.i FROM unnest(${fk.types.map((t, k) => `$${k + 1}::${t}[]`).join(', ')}, $${fk.types.length + 1}::int4[]) AS u(${aliases.join(', ')}, i)
        WHERE ${aliases.map((a) => `u.${a} IS NOT NULL`).join(' AND ')}
          AND NOT EXISTS (SELECT 1 FROM ${fk.refTable} r WHERE ${fk.refColumns.map((c, k) => `r.${quoteIdent(c)} = u.${aliases[k]}`).join(' AND ')})
        ORDER BY u.i`,
      params,
    )
    await tx.query('RELEASE SAVEPOINT cutover_fk')
    return r.rows.map((x) => x.i)
  } catch {
    await tx.query('ROLLBACK TO SAVEPOINT cutover_fk; RELEASE SAVEPOINT cutover_fk')
    return null
  }
}
