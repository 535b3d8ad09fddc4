/**
 * Sink `upsert`: one row per record in an existing table, keyed by the spec's `key`.
 *
 *   INSERT INTO "s"."t" AS t ("k", "a", ...)
 *   SELECT * FROM unnest($1::text[], $2::numeric[], ...)
 *   ON CONFLICT ("k") DO UPDATE SET "a" = excluded."a", ...
 *
 * Columns are matched by name: every field of the spec must be a column of a fitting type
 * (checked at start, exit 2 otherwise). The `enrich` lookups' columns (stages/enrich.ts: text)
 * are written too where the table has a column of their name, cast to its type (one whose type
 * cannot take the lookup column's values is refused at start: lookup-columns.ts); a lookup column
 * the table lacks is not written (one info line at start, sink.lookup_columns_not_written). Within one batch the last record of a key wins, and
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
 *
 * A key column that PostgreSQL compares otherwise than the text (char(n), citext, uuid, a
 * nondeterministic collation: table.ts exactEquality) makes 'A1' and 'A1 ' one row: such a
 * table's upsert keeps the last record of each of its keys itself, in the column's equality
 *
 *   INSERT INTO "s"."t" AS t ("k", "a") SELECT DISTINCT ON (u.c0) u.c0, u.c1
 *     FROM unnest($1::bpchar[], $2::text[]) WITH ORDINALITY AS u(c0, c1, i) ORDER BY u.c0, u.i DESC
 *   ON CONFLICT ("k") DO UPDATE SET "a" = excluded."a"
 *
 * (without it the statement fails with 21000 on every try); other tables' statements are as above.
 * The statement is planned once at start (table.ts checkStatement: EXPLAIN, nothing written).
 */
import {namesOf, type SinkSpec} from '../../config/spec.js'
import type {Pool} from '../../pg/pool.js'
import {COPY_MIN_ROWS, progressMark, type NormalizedRecord, type PipelineContext, type Sink, type WorkItem} from '../types.js'
import {copyField} from '../../pg/copy.js'
import {requireLookupColumnsFit} from './lookup-columns.js'
import {pgArray} from './pgarray.js'
import {
  alterTypeSql,
  checkStatement,
  comparedAs,
  describeTable,
  exactEquality,
  mismatchError,
  missingColumn,
  missingTable,
  overflowOf,
  quoteIdent,
  requireUniqueKey,
  requireWritable,
  suggestedType,
  tableRef,
  timestampRounding,
  typeMismatch,
} from './table.js'

export async function upsertSink(ctx: PipelineContext, sink: SinkSpec, pool: Pool): Promise<Sink> {
  const {spec, file} = ctx.loaded
  const ref = tableRef(sink.table, ctx.schema)
  const key = namesOf(spec.key)
  const fieldNames = Object.keys(spec.fields)
  const info = await describeTable(pool, ref)
  if (!info) {
    const ddl = `CREATE TABLE ${ref.sql} (${fieldNames.map((n) => `${quoteIdent(n)} ${suggestedType(spec.fields[n]!)}`).join(', ')}, PRIMARY KEY (${key.map(quoteIdent).join(', ')}));`
    throw await missingTable(pool, file, ref, ddl)
  }
  for (const name of fieldNames) {
    const f = spec.fields[name]!
    const col = info.columns.get(name)
    if (!col) throw missingColumn(file, info, name, `field ${name} (${f.type})`, f)
    const why = typeMismatch(f, col)
    if (why) throw mismatchError(file, `sink table ${ref.label}: column ${name} ${why}`, alterTypeSql(ref, name, f, col))
    const rounds = timestampRounding(f, col)
    if (rounds) ctx.logger.warn('sink.timestamp_rounded', {table: ref.label, column: name, note: `column ${name} ${rounds}`})
  }
  requireUniqueKey(file, info, key, `the sink keyed by ${key.join(', ')}`)
  // the enrich stage's columns (stages/enrich.ts) that the table has, by name, as text cast to the
  // column's type; the others are not written (said once). Without `enrich`: the fields alone.
  const lookupColumns = [...new Set(spec.enrich.flatMap((e) => e.select))]
  const enriched = lookupColumns.filter((c) => {
    const col = info.columns.get(c)
    return col !== undefined && !col.generated && col.identity !== 'ALWAYS'
  })
  const notWritten = lookupColumns.filter((c) => !enriched.includes(c))
  if (notWritten.length > 0) {
    ctx.logger.info('sink.lookup_columns_not_written', {table: ref.label, columns: notWritten, note: `sink table ${ref.label} has no (writable) column ${notWritten.join(', ')}: those lookup columns are not written to it`})
  }
  const written = enriched.length === 0 ? fieldNames : [...fieldNames, ...enriched]
  requireWritable(file, info, written)
  await requireLookupColumnsFit(ctx, pool, info, enriched)

  const cols = written.map((n) => info.columns.get(n)!)
  const nonKey = written.filter((n) => !key.includes(n))
  const arrays = (base: number) => cols.map((c, i) => `$${base + i + 1}::${c.castType}[]`).join(', ')
  const insert = (base: number) => `INSERT INTO ${ref.sql} AS t (${written.map(quoteIdent).join(', ')}) SELECT * FROM unnest(${arrays(base)})`
  const onConflict =
    ` ON CONFLICT (${key.map(quoteIdent).join(', ')}) ` +
    (nonKey.length === 0 ? 'DO NOTHING' : `DO UPDATE SET ${nonKey.map((n) => `${quoteIdent(n)} = excluded.${quoteIdent(n)}`).join(', ')}`)
  const upsert = (base: number) => insert(base) + onConflict
  // with `progress` (isolating refused rows): one more array, the rows' 1-based indexes, reported
  // row by row before each is coerced to the columns' types and inserted (types.ts progressMark)
  const aliases = written.map((_, i) => `c${i}`)
  const tracked = (base: number) =>
    `INSERT INTO ${ref.sql} AS t (${written.map(quoteIdent).join(', ')}) ` +
    `SELECT ${aliases.map((a) => `u.${a}`).join(', ')} FROM unnest(${arrays(base)}, $${base + cols.length + 1}::int4[]) AS u(${aliases.join(', ')}, i) ` +
    `WHERE ${progressMark('u.i')}${onConflict}`
  // a key the table compares otherwise than its text (char(n), citext, uuid, a nondeterministic
  // collation: table.ts exactEquality): two records of one such key are one row of the table, and an
  // upsert given both fails with 21000 on every try. Such a table's upsert keeps the last record of
  // each of its keys itself (DISTINCT ON, in the column's equality), from rows in the order given.
  const looseKey = key.some((k) => !exactEquality(info.columns.get(k)!))
  const distinctOn = key.map((k) => comparedAs(`u.${aliases[written.indexOf(k)]!}`, info.columns.get(k)!)).join(', ')
  const lastOfTableKey = (base: number) =>
    `INSERT INTO ${ref.sql} AS t (${written.map(quoteIdent).join(', ')}) ` +
    `SELECT DISTINCT ON (${distinctOn}) ${aliases.map((a) => `u.${a}`).join(', ')} FROM unnest(${arrays(base)}) WITH ORDINALITY AS u(${aliases.join(', ')}, i) ` +
    `ORDER BY ${distinctOn}, u.i DESC${onConflict}`
  const columnArrays = (rows: readonly NormalizedRecord[]) => written.map((n) => pgArray(rows.map((r) => r[n])))
  // the plain insert as COPY (pg/copy.ts), for many rows into a table that may be copied into
  const copySql = `COPY ${ref.sql} (${written.map(quoteIdent).join(', ')}) FROM STDIN`
  // only string fields and lookup columns (any text) can hold a character COPY text escapes (normalized decimals, timestamps, dates cannot)
  const escaped = written.map((n) => (spec.fields[n]?.type ?? 'string') === 'string')
  const copyLines = (rows: readonly NormalizedRecord[]): string => {
    const lines = new Array<string>(rows.length)
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!
      let line = ''
      for (let j = 0; j < written.length; j++) {
        const v = r[written[j]!]
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

  /**
   * lastOfEachKey's rows in the order given, a partition's in offset order (its rows take the
   * places its rows hold): of two records that are one row to the table, the later one comes last.
   */
  const inGivenOrder = (items: readonly WorkItem[]): NormalizedRecord[] => {
    const last = new Map<string, {item: WorkItem; at: number}>()
    items.forEach((item, at) => {
      if (!item.record) return
      const k = keyOf(item)
      const had = last.get(k)?.item
      if (had === undefined || had.partition !== item.partition || had.offset < item.offset) last.set(k, {item, at})
    })
    const chosen = [...last.values()].sort((a, b) => a.at - b.at)
    const places = new Map<number, number[]>()
    chosen.forEach((c, i) => {
      const p = places.get(c.item.partition)
      if (p) p.push(i)
      else places.set(c.item.partition, [i])
    })
    const rows = new Array<NormalizedRecord>(chosen.length)
    for (const at of places.values()) {
      const byOffset = at.map((i) => chosen[i]!.item).sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0))
      at.forEach((i, j) => (rows[i] = byOffset[j]!.record!))
    }
    return rows
  }

  await checkStatement(pool, file, info, (looseKey ? lastOfTableKey : upsert)(0), written.length, `the sink keyed by ${key.join(', ')}`, ctx)

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
      // (a plain insert, or COPY, of two records of one such key fails with 23505: the upsert runs then)
      if (looseKey && !options?.insertFirst) {
        const rows = inGivenOrder(items)
        return rows.length === 0 ? null : {target: ref.sql, text: lastOfTableKey, params: columnArrays(rows)}
      }
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
