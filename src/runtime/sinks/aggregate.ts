/**
 * Sink `aggregate`: per-group counters incremented exactly once (the batch's offsets commit in
 * the same transaction).
 *
 *   INSERT INTO "s"."t" AS t ("account_id", "business_date", "txn_count", "amount_sum")
 *   SELECT u."account_id", u."business_date", count(*), sum(u."amount")
 *     FROM unnest($1::text[], $2::date[], $3::numeric[]) AS u("account_id", "business_date", "amount")
 *    GROUP BY 1, 2 ORDER BY 1, 2
 *   ON CONFLICT ("account_id", "business_date") DO UPDATE
 *     SET "txn_count" = t."txn_count" + excluded."txn_count",
 *         "amount_sum" = COALESCE(t."amount_sum", 0) + COALESCE(excluded."amount_sum", 0)
 *
 * Deviation from "pre-aggregate in JS": the batch is grouped by PostgreSQL in the same
 * statement, so sums are exact `numeric` and min/max follow the column's collation, with one
 * code path; the statement is still set-based (one per batch). `business_date` is the date of
 * event_time in the event_time field's timezone, computed here (Intl, DST-correct), unless the
 * spec has a field named business_date: that field is then grouped as any other. A group
 * column that PostgreSQL compares otherwise than the text (char(n), citext, a nondeterministic
 * collation: table.ts exactEquality) is grouped as its type and collation compare, `u."acct"` cast
 * as bpchar or with `COLLATE`, so that two records of one row are one group (else 21000). A
 * column of an `enrich` lookup (its value is text, stages/enrich.ts) is grouped as the type of the
 * sink table's column of its name.
 */
import {derivesBusinessDate, parseAggregate, type FieldSpec, type SinkSpec} from '../../config/spec.js'
import {intlZoneName} from '../../normalize/timestamp.js'
import type {Pool} from '../../pg/pool.js'
import {SpecError} from '../../errors.js'
import type {PipelineContext, Sink, WorkItem} from '../types.js'
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
  typeMismatch,
  type ColumnUse,
} from './table.js'

type FieldLike = ColumnUse

const CAST: Record<FieldSpec['type'], string> = {
  string: 'text',
  integer: 'numeric',
  decimal: 'numeric',
  timestamp: 'timestamp with time zone',
  date: 'date',
  boolean: 'boolean',
}

const QUARTER_HOUR = 15 * 60_000

/**
 * UTC ISO instant -> yyyy-MM-dd in `timeZone`. The zone's UTC offset is asked of Intl once per
 * quarter hour of UTC time and cached where it holds for the whole quarter hour (today's zones
 * change offset on quarter-hour boundaries; the end of local mean time did not: Asia/Kathmandu
 * went from +5:41:16 to +5:30 at 1919-12-31T18:18:44Z, so 18:19:22Z is 23:49:22 local, not the
 * 00:00:38 the quarter hour's start offset gives; such a quarter hour is asked per record), so
 * the per-record cost is a Date.parse and two map lookups.
 */
export function businessDateOf(zoneName: string): (iso: string) => string {
  // the names the normalizer reads as UTC (timezone: Z) are UTC to Intl too: Intl refuses "Z"
  const timeZone = intlZoneName(zoneName)
  // to the second: a zone's local mean time before ~1920 has seconds in its offset (Moscow +2:30:17)
  const fmt = new Intl.DateTimeFormat('en-US', {timeZone, hourCycle: 'h23', era: 'short', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit'})
  /** the offset (ms) at `at`, a whole second */
  const offsetOf = (at: number): number => {
    const p = Object.fromEntries(fmt.formatToParts(new Date(at)).map((x) => [x.type, x.value]))
    const local = new Date(0)
    // setUTCFullYear, not Date.UTC: Date.UTC reads the years 0-99 as 1900-1999 (0099-06-15 as 1999-06-15)
    const year = p.era === 'BC' || p.era === 'B' ? 1 - Number(p.year) : Number(p.year)
    local.setUTCFullYear(year, Number(p.month) - 1, Number(p.day))
    local.setUTCHours(Number(p.hour), Number(p.minute), Number(p.second))
    return local.getTime() - at
  }
  /** quarter hour -> its offset, or NaN where the offset changes within it */
  const offsets = new Map<number, number>()
  const offsetAt = (ms: number): number => {
    const bucket = Math.floor(ms / QUARTER_HOUR)
    let off = offsets.get(bucket)
    if (off === undefined) {
      const at = bucket * QUARTER_HOUR
      off = offsetOf(at)
      if (offsetOf(at + QUARTER_HOUR - 1000) !== off) off = NaN
      if (offsets.size > 100_000) offsets.clear()
      offsets.set(bucket, off)
    }
    return Number.isNaN(off) ? offsetOf(Math.floor(ms / 1000) * 1000) : off
  }
  const days = new Map<number, string>()
  return (iso) => {
    const ms = Date.parse(iso)
    if (Number.isNaN(ms)) throw new Error(`event_time "${iso}" is not an instant`) // the normalizer never gives one
    const day = Math.floor((ms + offsetAt(ms)) / 86_400_000)
    let text = days.get(day)
    if (text === undefined) {
      text = new Date(day * 86_400_000).toISOString().slice(0, 10)
      if (days.size > 100_000) days.clear()
      days.set(day, text)
    }
    return text
  }
}

export async function aggregateSink(ctx: PipelineContext, sink: SinkSpec, pool: Pool): Promise<Sink> {
  const {spec, file} = ctx.loaded
  const ref = tableRef(sink.table, ctx.schema)
  const groupBy = sink.group_by ?? []
  const aggs = Object.entries(sink.aggregates ?? {}).map(([column, expr]) => ({column, ...parseAggregate(expr)}))
  const etField = spec.event_time ? spec.fields[spec.event_time] : undefined
  // a field named business_date is grouped as the field it is (it was replaced by the date of
  // event_time: a silent shift of the day)
  const derived = (name: string) => derivesBusinessDate(spec.fields, name)
  // a column of an `enrich` lookup (stages/enrich.ts: its text), grouped as the sink table's column's type
  const lookupColumns = new Set(spec.enrich.flatMap((e) => e.select))
  const looked = (name: string) => !derived(name) && !Object.hasOwn(spec.fields, name) && lookupColumns.has(name)
  const fieldOf = (name: string): FieldLike => {
    if (derived(name)) return {type: 'date', ...(etField ? {timezone: etField.timezone} : {})}
    if (looked(name)) return {type: 'string'}
    const f = spec.fields[name]
    if (!f) throw new SpecError({file}, `sink ${sink.table}: group_by ${name} is not a field`, {hint: 'group by fields of the spec or business_date'})
    return f
  }
  // the inputs of the statement: group-by values, then the fields the aggregates read
  const inputs = [...groupBy, ...new Set(aggs.filter((a) => a.field !== undefined).map((a) => a.field!))].filter((v, i, a) => a.indexOf(v) === i)
  const aggColumnSpec = (a: (typeof aggs)[number]): FieldLike =>
    a.fn === 'count' ? {type: 'integer', total: true} : a.fn === 'sum' ? {...fieldOf(a.field!), max_length: undefined, total: true} : fieldOf(a.field!)

  const info = await describeTable(pool, ref)
  if (!info) {
    const cols = [...groupBy.map((g) => `${quoteIdent(g)} ${suggestedType(fieldOf(g))}`), ...aggs.map((a) => `${quoteIdent(a.column)} ${a.fn === 'sum' ? 'numeric' : suggestedType(aggColumnSpec(a))} NOT NULL DEFAULT 0`)]
    throw await missingTable(pool, file, ref, `CREATE TABLE ${ref.sql} (${cols.join(', ')}, PRIMARY KEY (${groupBy.map(quoteIdent).join(', ')}));`)
  }
  const check = (column: string, f: FieldLike, what: string) => {
    const col = info.columns.get(column)
    if (!col) throw missingColumn(file, info, column, what, f)
    // a lookup column's text is cast to the column's type (one that cannot take its values is
    // refused below, lookup-columns.ts)
    if (looked(column)) return
    const why = typeMismatch(f, col)
    if (why) throw mismatchError(file, `sink table ${ref.label}: column ${column} ${why}`, alterTypeSql(ref, column, f, col))
  }
  for (const g of groupBy) check(g, fieldOf(g), looked(g) ? `group_by ${g} (a column of lookup ${spec.enrich.find((e) => e.select.includes(g))!.name})` : `group_by ${g}`)
  for (const a of aggs) check(a.column, aggColumnSpec(a), `aggregate ${a.column}: ${a.fn}${a.field ? `(${a.field})` : ''}`)
  requireUniqueKey(file, info, groupBy, `the aggregate sink grouped by ${groupBy.join(', ')}`)
  requireWritable(file, info, [...groupBy, ...aggs.map((a) => a.column)])
  await requireLookupColumnsFit(ctx, pool, info, groupBy.filter(looked))

  // a group column the table compares otherwise than its text (char(n), citext, uuid, a
  // nondeterministic collation: table.ts exactEquality) is grouped as the table compares it: grouped
  // as text, two records of one row ('A1' and 'A1 ' into char(6)) would be two rows of the
  // statement, which fails with 21000 on every try
  const loose = new Map(groupBy.map((g) => [g, info.columns.get(g)!] as const).filter(([, c]) => !exactEquality(c)))
  const castOf = (name: string) => loose.get(name)?.castType ?? (derived(name) ? 'date' : looked(name) ? info.columns.get(name)!.castType : CAST[spec.fields[name]!.type])
  const u = (name: string) => `u.${quoteIdent(name)}`
  const group = (name: string) => {
    const c = loose.get(name)
    return c ? comparedAs(u(name), c) : u(name)
  }
  const selectAgg = (a: (typeof aggs)[number]) => (a.fn === 'count' ? 'count(*)' : `${a.fn}(${u(a.field!)})`)
  const t = (c: string) => `t.${quoteIdent(c)}`
  const x = (c: string) => `excluded.${quoteIdent(c)}`
  const merge = (a: (typeof aggs)[number]) => {
    const c = a.column
    if (a.fn === 'count') return `${quoteIdent(c)} = ${t(c)} + ${x(c)}`
    if (a.fn === 'sum') return `${quoteIdent(c)} = COALESCE(${t(c)}, 0) + COALESCE(${x(c)}, 0)`
    return `${quoteIdent(c)} = ${a.fn === 'min' ? 'LEAST' : 'GREATEST'}(${t(c)}, ${x(c)})`
  }
  const positions = groupBy.map((_, i) => String(i + 1)).join(', ')
  const sql = (base: number) =>
    `INSERT INTO ${ref.sql} AS t (${[...groupBy, ...aggs.map((a) => a.column)].map(quoteIdent).join(', ')}) ` +
    `SELECT ${[...groupBy.map(group), ...aggs.map(selectAgg)].join(', ')} ` +
    `FROM unnest(${inputs.map((n, i) => `$${base + i + 1}::${castOf(n)}[]`).join(', ')}) AS u(${inputs.map(quoteIdent).join(', ')}) ` +
    `GROUP BY ${positions} ORDER BY ${positions} ` +
    `ON CONFLICT (${groupBy.map(quoteIdent).join(', ')}) DO UPDATE SET ${aggs.map(merge).join(', ')}`

  const needsDate = inputs.some(derived)
  if (needsDate && (!spec.event_time || !etField)) throw new SpecError({file}, `sink ${sink.table}: business_date needs event_time`, {hint: 'set `event_time: <timestamp field>`'})
  const toDate = needsDate ? businessDateOf(etField!.timezone) : undefined
  const valueOf = (item: WorkItem, name: string) => {
    if (derived(name)) {
      const et = item.record![spec.event_time!]
      return typeof et === 'string' ? toDate!(et) : null
    }
    return item.record![name] ?? null
  }

  await checkStatement(pool, file, info, sql(0), inputs.length, `the aggregate sink grouped by ${groupBy.join(', ')}`, ctx)

  // the columns a refused row may overflow: a group's own value, else (22003) the one numeric
  // aggregate column whose running total it would push over, when there is only one
  const groupColumns = groupBy.map((g) => info.columns.get(g)!)
  const totals = aggs.filter((a) => a.fn !== 'count' && info.columns.get(a.column)?.dataType === 'numeric').map((a) => ({col: info.columns.get(a.column)!, field: a.field!}))
  return {
    name: 'aggregate',
    table: ref.label,
    sharedRows: true,
    explainRow(record, sqlstate) {
      if (!record) return undefined
      for (const c of groupColumns) {
        const value = derived(c.name) ? undefined : record[c.name]
        const why = overflowOf(c, value, sqlstate)
        if (why) return {field: c.name, why}
      }
      const total = totals.length === 1 ? totals[0]!.col : undefined
      if (sqlstate === '22003' && total?.numericPrecision != null) {
        return {field: totals[0]!.field, why: `column ${total.name}: the total would pass numeric(${total.numericPrecision}, ${total.numericScale ?? 0})`}
      }
      return undefined
    },
    statement(items) {
      const rows = items.filter((i) => i.record)
      if (rows.length === 0) return null
      return {target: ref.sql, text: sql, params: inputs.map((n) => pgArray(rows.map((r) => valueOf(r, n))))}
    },
  }
}
