/**
 * Stage `enrich` (transactional): the spec's `enrich:` lookups, each a PostgreSQL table or view
 * matched on the same-named columns of its `on` fields, whose `select` columns go onto the record
 * under their plain names (`record.segment`), as text: the PostgreSQL text form of the value
 * (`::text`: numeric 150000.00 is "150000.00", exact), null for SQL NULL.
 *
 * - It runs inside the batch's transaction, on its client, before dedupe (stages/index.ts): a
 *   lookup that fails (PostgreSQL down, the table locked, renamed or dropped) fails the batch,
 *   which is retried with backoff like any outage (run.ts commitSlice); an outage never
 *   dead-letters a record. The stage may be run again on the same items when the transaction is
 *   retried: it sets the record's columns again (never appends), so it is idempotent.
 * - Per batch and per lookup: the distinct `on` values of the records still `ok`; those in the
 *   cache are answered from it, the others in ONE query, the values as array parameters of the
 *   `on` column's own type (the column side is never cast: its index is used), numbered by
 *   ordinality so that a row is matched back to the value sent, not to the column's text (char(n),
 *   citext compare otherwise than the text):
 *
 *     SELECT u.i::int4 AS i, t."customer_id"::text AS c0, t."segment"::text AS c1, ...
 *       FROM unnest($1::text[]) WITH ORDINALITY AS u(v0, i)
 *       JOIN "public"."accounts" AS t ON t."account_id" = u.v0
 *
 * - One row: found, the select columns set. None: `missing: dlq` dead-letters the record as
 *   ENRICHMENT_MISSING (stage enrich, field the first `on` field, the value masked when the field
 *   is sensitive); `missing: null` sets the select columns to null and the record is written. A
 *   record whose `on` value is null has nothing to look up: missing, without a query. More than
 *   one row (a view, a table whose `on` columns are not unique): ENRICHMENT_UNAVAILABLE, whatever
 *   `missing` says (a lookup needs one row; taking any of them would be a guess).
 * - Cache (LookupCache): per lookup, at most `cache.max_entries` values (least recently used
 *   evicted first), each trusted for `cache.ttl` from when it was fetched. Only rows found are
 *   cached: a miss (and an ambiguous value) is asked again by the next batch, so that a record
 *   dead-lettered as ENRICHMENT_MISSING and replayed after the lookup table is fixed is enriched
 *   at once, and a new account is found as soon as its row is committed.
 * - Start checks (startEnrich, from run.ts beside the sinks' checks, exit 2 at the spec's
 *   `enrich[i].table` / `.on` / `.select[j]`): the table or view exists (a materialized view is
 *   not listed by information_schema: looked up through a view over it), the role may SELECT the
 *   columns used, every `on` and select column exists, and each `on` column's type is one the
 *   field's values compare with (string: text, varchar, char, citext; integer: smallint, integer,
 *   bigint, numeric; decimal: numeric; date: date; timestamp: timestamptz, or timestamp read as
 *   the wall-clock time of the field's timezone; boolean: boolean). Without a unique index (or
 *   primary key) on exactly the `on` columns, one warning line (`enrich.not_unique`): a view has
 *   none, and two rows for one value are dead-lettered, not guessed.
 */
import {namesOf, specLocation, type EnrichSpec, type FieldSpec} from '../../config/spec.js'
import {SpecError} from '../../errors.js'
import {maskedKeyOf} from '../../normalize/index.js'
import {intlZoneName} from '../../normalize/timestamp.js'
import type {Pool, PoolClient} from '../../pg/pool.js'
import type {RuntimeMetrics} from '../metrics.js'
import {pgArray} from '../sinks/pgarray.js'
import {comparedAs, describeTable, inWords, otherCases, quoteIdent, readAccessOf, relationsInAnyCase, suggestedType, tableRef, type ColumnInfo, type TableInfo, type TableRef} from '../sinks/table.js'
import type {NormalizedRecord, PipelineContext, Stage, WorkItem} from '../types.js'
import {markDead} from '../types.js'

/**
 * An LRU of at most `maxEntries` entries, each trusted for `ttlMs` from when it was set (a get
 * refreshes its recency, not its age). A Map keeps insertion order: a hit is moved to the end by
 * deleting and setting it again, and the first key is the least recently used.
 */
export class LookupCache<V> {
  private readonly entries = new Map<string, {value: V; fetchedAt: number}>()

  constructor(
    readonly maxEntries: number,
    readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size
  }

  get(key: string): V | undefined {
    const e = this.entries.get(key)
    if (e === undefined) return undefined
    this.entries.delete(key)
    if (this.now() - e.fetchedAt >= this.ttlMs) return undefined
    this.entries.set(key, e)
    return e.value
  }

  set(key: string, value: V): void {
    this.entries.delete(key)
    this.entries.set(key, {value, fetchedAt: this.now()})
    if (this.entries.size > this.maxEntries) {
      for (const k of this.entries.keys()) {
        this.entries.delete(k)
        if (this.entries.size <= this.maxEntries) break
      }
    }
  }

  /** the keys, least recently used first (tests) */
  keys(): string[] {
    return [...this.entries.keys()]
  }
}

/** The column types a field's values can be compared with, without a cast of the column. */
const COMPARABLE: Record<FieldSpec['type'], readonly string[]> = {
  string: ['text', 'character varying', 'character'],
  integer: ['smallint', 'integer', 'bigint', 'numeric'],
  decimal: ['numeric'],
  date: ['date'],
  timestamp: ['timestamp with time zone', 'timestamp without time zone'],
  boolean: ['boolean'],
}

const INTEGER_RANGE: Record<string, readonly [bigint, bigint]> = {smallint: [-32768n, 32767n], integer: [-2147483648n, 2147483647n]}

/** Why a field's values cannot be compared with column `c`, or null when they can. */
export function lookupTypeMismatch(f: Pick<FieldSpec, 'type'>, c: ColumnInfo): string | null {
  if (f.type === 'string' && c.dataType === 'USER-DEFINED' && c.userKind === 'string') return null // citext
  if (COMPARABLE[f.type].includes(c.dataType)) return null
  const type = c.dataType === 'USER-DEFINED' ? c.castType : c.dataType
  return `is ${type}, which the values of a ${f.type} field cannot be compared with`
}

/** One `on` column as the lookup query compares it. */
interface OnColumn {
  field: string
  col: ColumnInfo
  /** the array parameter's element type */
  paramType: string
  /** the value side of the join's condition, from `u.v<j>` */
  valueExpr: (u: string) => string
  /** an integer field's values that the column's type cannot hold: no row can match them */
  range?: readonly [bigint, bigint]
}

/** What the start checks found of one lookup: its query, and how a value is looked up. */
interface LookupPlan {
  ref: TableRef
  on: OnColumn[]
  sql: string
}

/** The lookup's SELECT: the select columns as text of the rows matching each value sent, numbered by ordinality. */
function lookupSql(ref: TableRef, on: OnColumn[], select: readonly string[]): string {
  const vs = on.map((_, j) => `v${j}`)
  const params = on.map((o, j) => `$${j + 1}::${o.paramType}[]`)
  const cond = on.map((o, j) => `t.${quoteIdent(o.col.name)} = ${o.valueExpr(`u.${vs[j]!}`)}`).join(' AND ')
  return (
    `SELECT u.i::int4 AS i, ${select.map((c, j) => `t.${quoteIdent(c)}::text AS c${j}`).join(', ')} ` +
    `FROM unnest(${params.join(', ')}) WITH ORDINALITY AS u(${vs.join(', ')}, i) JOIN ${ref.sql} AS t ON ${cond}`
  )
}

/** A lookup's table that information_schema does not show: why (exit 2), with the fix. */
async function missingLookupTable(pool: Pool, ctx: PipelineContext, e: EnrichSpec, i: number, ref: TableRef): Promise<SpecError> {
  const at = specLocation(ctx.loaded, ['enrich', i, 'table'])
  const what = `lookup ${e.name}: table ${ref.label}`
  const found = await relationsInAnyCase(pool, ref)
  const exact = found[0]?.schema === ref.schema && found[0]?.table === ref.table ? found[0] : undefined
  if (exact) {
    const p = await readAccessOf(pool, ref)
    if (p && (!p.usage || !p.read)) {
      const lacks = [p.usage ? '' : `USAGE on schema ${ref.schema}`, p.read ? '' : `SELECT on ${ref.label}`].filter(Boolean).join(' nor ')
      return new SpecError(at, `${what}: the role ${p.role} may not read it (it has no ${lacks})`, {
        hint: `${p.usage ? '' : `GRANT USAGE ON SCHEMA ${quoteIdent(ref.schema)} TO ${quoteIdent(p.role)}; `}GRANT SELECT ON ${ref.sql} TO ${quoteIdent(p.role)}; (run by the table's owner)`,
        details: {role: p.role},
      })
    }
    if (exact.relkind === 'm') {
      return new SpecError(at, `${what} is a materialized view, whose columns stream run cannot check (information_schema does not list them)`, {
        hint: `look it up through a view over it: CREATE VIEW ${tableRef(`${ref.schema}.${ref.table}_lookup`, ref.schema).sql} AS SELECT * FROM ${ref.sql}; and name that view in enrich[${i}].table`,
      })
    }
    return new SpecError(at, `${what} has no columns`, {hint: `name a table or view with the columns ${[...namesOf(e.on), ...e.select].join(', ')} in enrich[${i}].table`})
  }
  if (found.length > 0) {
    const names = found.map((r) => (ref.qualified || r.schema !== ref.schema ? `${r.schema}.${r.table}` : r.table))
    return new SpecError(at, `${what} does not exist, but ${inWords(found.map((r) => `${r.schema}.${r.table}`))} ${found.length === 1 ? 'does' : 'do'} (names are matched exactly, as quoted identifiers)`, {
      hint: `write ${names.map((n) => `table: ${n}`).join(' or ')} in enrich[${i}]`,
      details: {other_case: found.map((r) => `${r.schema}.${r.table}`)},
    })
  }
  const on = namesOf(e.on)
  const cols = [...on.map((f) => `${quoteIdent(f)} ${suggestedType(ctx.loaded.spec.fields[f]!)}`), ...e.select.map((c) => `${quoteIdent(c)} text`)]
  return new SpecError(at, `${what} does not exist${ref.qualified ? '' : ` (a table named without its schema is looked for in --schema's, ${ref.schema})`}`, {
    hint: `fix enrich[${i}].table, or create it: CREATE TABLE ${ref.sql} (${cols.join(', ')}, PRIMARY KEY (${on.map(quoteIdent).join(', ')})); (the select columns of the types they hold)`,
    details: {missing_tables: [ref.label]},
  })
}

/** A column of the lookup table that the spec names and the table does not have (exit 2 at `path`). */
function missingLookupColumn(ctx: PipelineContext, info: TableInfo, e: EnrichSpec, path: (string | number)[], column: string, role: string, fix: string): SpecError {
  const others = otherCases(column, info.columns.keys())
  const what = `lookup ${e.name}: table ${info.ref.label} has no column ${column} (${role})`
  if (others.length > 0) {
    return new SpecError(specLocation(ctx.loaded, path), `${what}, but has ${inWords(others)} (columns are matched by their exact name)`, {
      hint: others.length === 1 ? `ALTER TABLE ${info.ref.sql} RENAME COLUMN ${quoteIdent(others[0]!)} TO ${quoteIdent(column)}; or ${fix}` : fix,
      details: {column, other_case: others},
    })
  }
  return new SpecError(specLocation(ctx.loaded, path), what, {hint: fix, details: {column}})
}

/**
 * The start checks of lookup `e` (enrich[`i`]), and its query: throws SpecError (exit 2) when the
 * table does not fit; warns (enrich.not_unique) when no unique index holds its `on` columns.
 */
async function planLookup(pool: Pool, ctx: PipelineContext, e: EnrichSpec, i: number): Promise<LookupPlan> {
  const {fields} = ctx.loaded.spec
  const ref = tableRef(e.table, ctx.schema)
  const info = await describeTable(pool, ref)
  if (!info) throw await missingLookupTable(pool, ctx, e, i, ref)
  const onFields = namesOf(e.on)
  // information_schema lists the columns the role has ANY privilege on (and only those): SELECT is
  // asked of each column used that the table has, before a column it cannot see is called missing
  const priv = await pool.query<{role: string; denied: string[]}>(
    `SELECT current_user::text AS role,
            array(SELECT a.attname::text FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY($3::text[])
                     AND NOT has_column_privilege(c.oid, a.attnum, 'SELECT') ORDER BY a.attnum) AS denied
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
    [ref.schema, ref.table, [...onFields, ...e.select]],
  )
  const p = priv.rows[0]
  if (p && p.denied.length > 0) {
    throw new SpecError(specLocation(ctx.loaded, ['enrich', i, 'table']), `lookup ${e.name}: the role ${p.role} may not SELECT ${p.denied.join(', ')} of ${ref.label}`, {
      hint: `GRANT SELECT ON ${ref.sql} TO ${quoteIdent(p.role)}; (run by the table's owner)`,
      details: {role: p.role, columns: p.denied},
    })
  }
  const onPath = (j: number): (string | number)[] => (typeof e.on === 'string' ? ['enrich', i, 'on'] : ['enrich', i, 'on', j])
  const on: OnColumn[] = onFields.map((field, j) => {
    const col = info.columns.get(field)
    const f = fields[field]!
    if (!col) {
      const view = `CREATE VIEW ${tableRef(`${ref.schema}.${ref.table}_by_${field}`, ref.schema).sql} AS SELECT <its column> AS ${quoteIdent(field)}, ... FROM ${ref.sql}`
      throw missingLookupColumn(ctx, info, e, onPath(j), field, `the on field ${field} is matched against the column of its name`, `look up through a view that names the column ${field} (${view}), or fix enrich[${i}].on`)
    }
    const why = lookupTypeMismatch(f, col)
    if (why) {
      const fits = f.type === 'string' ? 'text' : suggestedType(f)
      throw new SpecError(specLocation(ctx.loaded, onPath(j)), `lookup ${e.name}: column ${ref.label}.${field} ${why} (field ${field} is ${f.type})`, {
        hint: `give field ${field} the type of the column in the spec, or look up through a view whose column ${field} is ${fits} (CREATE VIEW ... AS SELECT ${quoteIdent(field)}::${fits} AS ${quoteIdent(field)}, ... FROM ${ref.sql}; its index is then not used), or ALTER TABLE ${ref.sql} ALTER COLUMN ${quoteIdent(field)} TYPE ${fits}`,
        details: {column: field, column_type: col.dataType === 'USER-DEFINED' ? col.castType : col.dataType, field_type: f.type},
      })
    }
    if (col.dataType === 'timestamp without time zone') {
      // the instant as the wall-clock time of the field's zone (as the sinks' fixes read such a column)
      const zone = `'${intlZoneName(f.timezone).replace(/'/g, "''")}'`
      return {field, col, paramType: 'timestamp with time zone', valueExpr: (u) => `(${u} AT TIME ZONE ${zone})`}
    }
    return {field, col, paramType: col.castType, valueExpr: (u) => comparedAs(u, col), range: INTEGER_RANGE[col.dataType]}
  })
  e.select.forEach((c, j) => {
    if (!info.columns.has(c)) throw missingLookupColumn(ctx, info, e, ['enrich', i, 'select', j], c, `select[${j}]`, `remove ${c} from enrich[${i}].select, or name a column the table has`)
  })
  const want = [...onFields].sort().join('\u0000')
  const unique = (info.uniqueIndexes ?? []).some((u) => [...u.columns].sort().join('\u0000') === want)
  if (!unique) {
    ctx.logger.warn('enrich.not_unique', {
      lookup: e.name,
      table: ref.label,
      on: onFields,
      note: `${ref.label} ${info.relkind === 'v' ? 'is a view, which has' : 'has'} no unique index on (${onFields.join(', ')}): a value that matches two rows is dead-lettered as ENRICHMENT_UNAVAILABLE${info.relkind === 'v' ? '' : `; CREATE UNIQUE INDEX ON ${ref.sql} (${onFields.map(quoteIdent).join(', ')}) if it is unique`}`,
    })
  }
  return {ref, on, sql: lookupSql(ref, on, e.select)}
}

/** What the stage needs at start: the pool its checks use, and the metrics it reports to. */
export interface StageStartDeps {
  pool: Pool
  metrics?: RuntimeMetrics
  /** the source topic's partition count (the window stage's prune waits for a watermark of each) */
  sourcePartitions?: number
}

/** A stage with start checks of its own, run once before the first batch (stages/index.ts startStages). */
export interface StartableStage extends Stage {
  start(deps: StageStartDeps): Promise<void>
}

export function isStartable(s: Stage): s is StartableStage {
  return typeof (s as Partial<StartableStage>).start === 'function'
}

/** One lookup as the stage runs it. */
class Lookup {
  readonly cache: LookupCache<(string | null)[]>
  readonly onFields: string[]
  private plan: LookupPlan | undefined
  private metrics: RuntimeMetrics | undefined
  private readonly shown: (r: NormalizedRecord, key: string) => string
  private readonly label: string
  private readonly nulls: null[]

  constructor(
    private readonly ctx: PipelineContext,
    readonly spec: EnrichSpec,
    private readonly index: number,
  ) {
    this.onFields = namesOf(spec.on)
    this.cache = new LookupCache(spec.cache.max_entries, spec.cache.ttl)
    const masked = maskedKeyOf(this.onFields, ctx.loaded.spec.fields)
    this.shown = (r, key) => (masked ? masked(r) : key)
    this.label = this.onFields.join(', ')
    this.nulls = spec.select.map(() => null)
  }

  async start(deps: StageStartDeps): Promise<void> {
    this.plan = await planLookup(deps.pool, this.ctx, this.spec, this.index)
    this.metrics = deps.metrics
    deps.metrics?.declareLookup(this.spec.name)
  }

  /** the cache key of a record's `on` values; undefined when one is null (nothing to look up) */
  private keyOf(r: NormalizedRecord): string | undefined {
    if (this.onFields.length === 1) {
      const v = r[this.onFields[0]!]
      return v === null || v === undefined ? undefined : String(v)
    }
    const vs = this.onFields.map((f) => r[f] ?? null)
    return vs.includes(null) ? undefined : JSON.stringify(vs)
  }

  private set(item: WorkItem, values: readonly (string | null)[]): void {
    const r = item.record!
    const select = this.spec.select
    for (let j = 0; j < select.length; j++) r[select[j]!] = values[j]!
  }

  private missing(item: WorkItem, key: string | undefined): void {
    if (this.spec.missing === 'null') {
      this.set(item, this.nulls)
      return
    }
    const table = this.plan!.ref.label
    markDead(item, {
      code: 'ENRICHMENT_MISSING',
      message:
        key === undefined
          ? `lookup ${this.spec.name}: ${this.label} is empty, so no row of ${table} can match it`
          : `lookup ${this.spec.name}: no row of ${table} has ${this.label} "${this.shown(item.record!, key)}"`,
      stage: 'enrich',
      field: this.onFields[0]!,
    })
  }

  async run(items: readonly WorkItem[], tx: PoolClient): Promise<void> {
    const plan = this.plan
    if (!plan) throw new Error(`lookup ${this.spec.name} was not started (stages/index.ts startStages)`)
    // value -> the records that have it, for the values not in the cache
    const asked = new Map<string, WorkItem[]>()
    const hits = new Set<string>()
    let empty = 0
    for (const item of items) {
      if (item.status !== 'ok' || !item.record) continue
      const key = this.keyOf(item.record)
      if (key === undefined) {
        empty++
        this.missing(item, undefined)
        continue
      }
      const had = asked.get(key)
      if (had) {
        had.push(item)
        continue
      }
      const cached = this.cache.get(key)
      if (cached !== undefined) {
        hits.add(key)
        this.set(item, cached)
      } else asked.set(key, [item])
    }
    this.metrics?.enrichLookups(this.spec.name, 'cache_hit', hits.size)
    this.metrics?.enrichLookups(this.spec.name, 'missing', empty)
    if (asked.size === 0) return
    // the values as the query's arrays; a value that no row can hold matches none, and is not sent:
    // one an integer column's type cannot hold, a text with U+0000 (which PostgreSQL would refuse
    // with 22021, failing the batch on every try)
    const keys: string[] = []
    const arrays: (string | boolean | null)[][] = plan.on.map(() => [])
    const unmatchable: string[] = []
    for (const [key, group] of asked) {
      const r = group[0]!.record!
      const values = this.onFields.map((f) => r[f]!)
      if (plan.on.some((o, j) => (o.range !== undefined && !inRange(String(values[j]), o.range)) || (typeof values[j] === 'string' && values[j].includes('\u0000')))) {
        unmatchable.push(key)
        continue
      }
      keys.push(key)
      values.forEach((v, j) => arrays[j]!.push(v))
    }
    const rows = new Map<number, (string | null)[][]>()
    if (keys.length > 0) {
      const t0 = process.hrtime.bigint()
      const result = await tx.query<Record<string, string | null> & {i: number}>(plan.sql, arrays.map((a) => pgArray(a)))
      this.metrics?.enrichQuery(this.spec.name, Number(process.hrtime.bigint() - t0) / 1e9)
      for (const row of result.rows) {
        const values = this.spec.select.map((_, j) => row[`c${j}`] ?? null)
        const some = rows.get(row.i)
        if (some) some.push(values)
        else rows.set(row.i, [values])
      }
    }
    let found = 0
    let missing = unmatchable.length
    let ambiguous = 0
    keys.forEach((key, k) => {
      const group = asked.get(key)!
      const matched = rows.get(k + 1)
      if (matched === undefined) {
        missing++
        for (const item of group) this.missing(item, key)
      } else if (matched.length === 1) {
        found++
        this.cache.set(key, matched[0]!)
        for (const item of group) this.set(item, matched[0]!)
      } else {
        ambiguous++
        for (const item of group) {
          markDead(item, {
            code: 'ENRICHMENT_UNAVAILABLE',
            message: `lookup ${this.spec.name}: ${matched.length} rows of ${plan.ref.label} match ${this.label} "${this.shown(item.record!, key)}": a lookup needs one`,
            stage: 'enrich',
            field: this.onFields[0]!,
          })
        }
      }
    })
    for (const key of unmatchable) for (const item of asked.get(key)!) this.missing(item, key)
    this.metrics?.enrichLookups(this.spec.name, 'found', found)
    this.metrics?.enrichLookups(this.spec.name, 'missing', missing)
    this.metrics?.enrichLookups(this.spec.name, 'ambiguous', ambiguous)
  }
}

function inRange(text: string, [min, max]: readonly [bigint, bigint]): boolean {
  const n = BigInt(text)
  return n >= min && n <= max
}

export function enrichStage(ctx: PipelineContext): StartableStage | null {
  const specs = ctx.loaded.spec.enrich
  if (specs.length === 0) return null
  const lookups = specs.map((e, i) => new Lookup(ctx, e, i))
  return {
    name: 'enrich',
    phase: 'transact',
    async start(deps) {
      for (const l of lookups) await l.start(deps)
    },
    async run(items, tx) {
      if (!tx) throw new Error('enrich runs inside the batch transaction')
      for (const l of lookups) await l.run(items, tx)
    },
  }
}
