/**
 * Sink `upsert`: one row per record in an existing table, keyed by the spec's `key`.
 *
 *   INSERT INTO "s"."t" AS t ("k", "a", ...)
 *   SELECT * FROM unnest($1::text[], $2::numeric[], ...)
 *   ON CONFLICT ("k") DO UPDATE SET "a" = excluded."a", ...
 *
 * Columns are matched by name: every field of the spec must be a column of a fitting type
 * (checked at start, exit 2 otherwise). Within one batch the last record of a key wins, and
 * rows are sent sorted by key so that concurrent partitions lock rows in the same order (records
 * that already come in strictly increasing key order, as the runtime passes them after a dedupe
 * by the same key, are taken as they are).
 *
 * With `insertFirst` (batch.ts InsertFirst: while the keys a stream writes are new) the same
 * rows go by a plain INSERT, without ON CONFLICT: no speculative insertion, about a third less
 * PostgreSQL time per row (measured: 6,000 new rows of the bench's table, 35 ms against 54 ms,
 * medians of 10). A key that exists fails it (23505) and the transaction runs again with the
 * upsert, so the result is the upsert's either way.
 *
 * With `progress` (the rerun that isolates rows the database refused, batch.ts writeSinks) the
 * upsert reports each row's index as it goes, when its rows are the items in their order.
 */
import {namesOf, type SinkSpec} from '../../config/spec.js'
import type {Pool} from '../../pg/pool.js'
import {SpecError} from '../../errors.js'
import {COPY_MIN_ROWS, progressMark, type NormalizedRecord, type PipelineContext, type Sink, type WorkItem} from '../types.js'
import {copyField} from '../../pg/copy.js'
import {pgArray} from './pgarray.js'
import {describeTable, mismatchError, overflowOf, quoteIdent, requireUniqueKey, requireWritable, suggestedType, tableRef, typeMismatch} from './table.js'

export async function upsertSink(ctx: PipelineContext, sink: SinkSpec, pool: Pool): Promise<Sink> {
  const {spec, file} = ctx.loaded
  const ref = tableRef(sink.table, ctx.schema)
  const key = namesOf(spec.key)
  const fieldNames = Object.keys(spec.fields)
  const info = await describeTable(pool, ref)
  if (!info) {
    const ddl = `CREATE TABLE ${ref.sql} (${fieldNames.map((n) => `${quoteIdent(n)} ${suggestedType(spec.fields[n]!)}`).join(', ')}, PRIMARY KEY (${key.map(quoteIdent).join(', ')}));`
    throw new SpecError({file}, `sink table ${ref.label} does not exist`, {hint: ddl})
  }
  for (const name of fieldNames) {
    const f = spec.fields[name]!
    const col = info.columns.get(name)
    if (!col) {
      throw mismatchError(file, `sink table ${ref.label} has no column ${name} for field ${name} (${f.type})`, `ALTER TABLE ${ref.sql} ADD COLUMN ${quoteIdent(name)} ${suggestedType(f)};`)
    }
    const why = typeMismatch(f, col)
    if (why) {
      throw mismatchError(file, `sink table ${ref.label}: column ${name} ${why}`, `ALTER TABLE ${ref.sql} ALTER COLUMN ${quoteIdent(name)} TYPE ${suggestedType(f)};`)
    }
  }
  requireUniqueKey(file, info, key, `the sink keyed by ${key.join(', ')}`)
  requireWritable(file, info, fieldNames)

  const cols = fieldNames.map((n) => info.columns.get(n)!)
  const nonKey = fieldNames.filter((n) => !key.includes(n))
  const arrays = (base: number) => cols.map((c, i) => `$${base + i + 1}::${c.castType}[]`).join(', ')
  const insert = (base: number) => `INSERT INTO ${ref.sql} AS t (${fieldNames.map(quoteIdent).join(', ')}) SELECT * FROM unnest(${arrays(base)})`
  const onConflict =
    ` ON CONFLICT (${key.map(quoteIdent).join(', ')}) ` +
    (nonKey.length === 0 ? 'DO NOTHING' : `DO UPDATE SET ${nonKey.map((n) => `${quoteIdent(n)} = excluded.${quoteIdent(n)}`).join(', ')}`)
  const upsert = (base: number) => insert(base) + onConflict
  // with `progress` (isolating refused rows): one more array, the rows' 1-based indexes, reported
  // row by row before each is coerced to the columns' types and inserted (types.ts progressMark)
  const aliases = fieldNames.map((_, i) => `c${i}`)
  const tracked = (base: number) =>
    `INSERT INTO ${ref.sql} AS t (${fieldNames.map(quoteIdent).join(', ')}) ` +
    `SELECT ${aliases.map((a) => `u.${a}`).join(', ')} FROM unnest(${arrays(base)}, $${base + cols.length + 1}::int4[]) AS u(${aliases.join(', ')}, i) ` +
    `WHERE ${progressMark('u.i')}${onConflict}`
  const columnArrays = (rows: readonly NormalizedRecord[]) => fieldNames.map((n) => pgArray(rows.map((r) => r[n])))
  // the plain insert as COPY (pg/copy.ts), for many rows into a table that may be copied into
  const copySql = `COPY ${ref.sql} (${fieldNames.map(quoteIdent).join(', ')}) FROM STDIN`
  // only string fields can hold a character COPY text escapes (normalized decimals, timestamps, dates cannot)
  const escaped = fieldNames.map((n) => spec.fields[n]!.type === 'string')
  const copyLines = (rows: readonly NormalizedRecord[]): string => {
    const lines = new Array<string>(rows.length)
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!
      let line = ''
      for (let j = 0; j < fieldNames.length; j++) {
        const v = r[fieldNames[j]!]
        if (j > 0) line += '\t'
        line += v === null || v === undefined || typeof v === 'boolean' || escaped[j] ? copyField(v) : v
      }
      lines[i] = line
    }
    return lines.join('\n') + '\n'
  }
  const keyOf = (item: WorkItem) => (key.length === 1 ? String(item.record![key[0]!]) : JSON.stringify(key.map((k) => item.record![k] ?? null)))

  /**
   * The records when their keys already come strictly increasing (the runtime passes a batch in
   * the dedupe stage's key order: distinct and sorted when the dedupe key is this sink's key),
   * else null: one pass of comparisons instead of a Map and a sort.
   */
  const strictlyIncreasing = (items: readonly WorkItem[]): NormalizedRecord[] | null => {
    const rows: NormalizedRecord[] = []
    let prev: string | undefined
    for (const item of items) {
      if (!item.record) continue
      const k = keyOf(item)
      if (prev !== undefined && !(prev < k)) return null
      prev = k
      rows.push(item.record)
    }
    return rows
  }

  /** The newest record of each key (the highest offset of a partition; across partitions the later one given), sorted by key. */
  const lastOfEachKey = (items: readonly WorkItem[]): NormalizedRecord[] => {
    const last = new Map<string, WorkItem>()
    for (const item of items) {
      if (!item.record) continue
      const k = keyOf(item)
      const had = last.get(k)
      if (had === undefined || had.partition !== item.partition || had.offset < item.offset) last.set(k, item)
    }
    const keys = [...last.keys()].sort()
    const rows = new Array<NormalizedRecord>(keys.length)
    for (let i = 0; i < keys.length; i++) rows[i] = last.get(keys[i]!)!.record!
    return rows
  }

  return {
    name: 'upsert',
    table: ref.label,
    explainRow(record, sqlstate) {
      if (!record) return undefined
      for (const c of cols) {
        const why = overflowOf(c, record[c.name], sqlstate)
        if (why) return {field: c.name, why}
      }
      return undefined
    },
    statement(items, options) {
      const inOrder = strictlyIncreasing(items)
      const rows = inOrder ?? lastOfEachKey(items)
      if (rows.length === 0) return null
      // progress only when the rows are the items one for one, in their order (items without a
      // record are not written: their indexes are skipped)
      if (options?.progress && inOrder) {
        const indexes: string[] = []
        items.forEach((item, i) => {
          if (item.record) indexes.push(String(i + 1))
        })
        return {target: ref.sql, text: tracked, params: [...columnArrays(rows), pgArray(indexes)], progress: true}
      }
      if (options?.insertFirst && info.copyable && rows.length >= COPY_MIN_ROWS) return {target: ref.sql, text: () => copySql, params: [], copy: copyLines(rows)}
      return {target: ref.sql, text: options?.insertFirst ? insert : upsert, params: columnArrays(rows)}
    },
  }
}
