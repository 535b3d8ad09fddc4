/**
 * Strategy `sql-pushdown`: both sides are pg: on the same database, so PostgreSQL does the
 * join and sends back only the rows that may differ; the core (./compare.ts) then judges
 * those rows exactly as the merge strategy would. All statements run in one REPEATABLE READ,
 * READ ONLY transaction (one snapshot).
 *
 *   1. column types (`LIMIT 0`) decide the SQL prefilter of each column; a compared money
 *      column is selected as numeric (`::numeric`, MONEY_CASTS), as the pg: reader reads it
 *      (its text follows lc_monetary), and is a numeric column from then on (prefilter, values
 *      sent back, checksums); a money key stays as it is (joined on its text):
 *        decimal/integer columns numeric on both sides  abs(l - r) > tol   (exact numeric)
 *        relative tolerance                             abs(l - r) * 100 > pct * abs(l)
 *        timestamp columns timestamp(tz) on both sides  |l - r| in µs > tol - 1 (exact
 *                                                       to the µs, as the core compares)
 *        anything else                                  l::text IS DISTINCT FROM r::text
 *      The prefilter never drops a pair the core would call different (equal text is equal
 *      after any normalization; numeric and time tests are exact or looser), so the results
 *      are those of the merge strategy; tolerances are bound parameters, identifiers quoted;
 *   2. duplicate keys: none when a unique index covers the key columns of a table, else
 *      `GROUP BY key HAVING count(*) > 1`; the rows of those keys are fetched and handed to
 *      the core, and the join ignores them;
 *   3. `FULL OUTER JOIN ... WHERE <a side is missing or a prefilter holds>`, streamed; when
 *      it is a merge join over both key indexes, split in two key ranges run on two
 *      connections that share the snapshot (pg_export_snapshot);
 *   4. `count(*)` of each side with an order-independent checksum of its rows (the digest:
 *      SHA-256 of the count and the sum of `hash_record_extended(row)`; md5 before PostgreSQL
 *      14), per key range after the join, or on a helper connection while the join runs; the
 *      right side's is derived from the left's and the rows the join returns when the two
 *      sides' unreturned pairs are equal values of the same types (see deriveRight).
 *   matched = left rows - rows of duplicate keys - missing - pairs sent back as different.
 *
 * Keys join on the raw columns when both sides have the same text, integer, date, uuid or
 * timestamp type (then the values are equal exactly when their text is), else on their text
 * (`coalesce(k::text, '')`, as sources.ts). Rows with a NULL key never pair here (as in SQL).
 */
import {createHash} from 'node:crypto'
import pg from 'pg'
import QueryStream from 'pg-query-stream'
import {MONEY_CASTS, pgSql, quoteQualifiedName} from '../../legacy-adapters/pg.js'
import {UsageError} from '../errors.js'
import type {Logger} from '../log.js'
import {mapPgError, pgConnectionString} from '../pg/pool.js'
import {ParityCore, type ComparePlan} from './compare.js'
import {bpcharForm} from './pg-copy.js'
import {keyIndexOrderQuery, quoteIdent, sqlDateCondition, sqlKeyExpr, type SideSpec} from './sources.js'
import type {RowValues} from './types.js'

export type PushdownOutcome = {ok: true; core: ParityCore; digests: {left: string; right: string}} | {ok: false; reason: string}

export interface PushdownOptions {
  plan: ComparePlan
  left: SideSpec
  right: SideSpec
  databaseUrl: string
  /** the variable databaseUrl came from, for errors (default DATABASE_URL) */
  databaseUrlName?: string
  logger?: Logger
  onProgress?: (rows: number) => void
}

// Same text forms as the pg: reader (legacy-adapters/pg.ts), so that both strategies hand
// the core identical values: timestamps with "T", timestamptz in UTC as "Z", booleans as words.
const identity = (v: string): string => v
const TEXT_PARSERS: Record<number, (v: string) => unknown> = {
  16: (v) => (v === 't' ? 'true' : v === 'f' ? 'false' : v),
  // char(n) without its padding, as the merge reads it (pg-copy.ts) and the prefilter's ::text
  // compares it: padded, a char(5) `X    ` was a mismatch against the stream's `X` whenever its
  // row came back for another column, and matched when it did not
  1042: bpcharForm,
  1114: (v) => v.replace(' ', 'T'),
  1184: (v) => v.replace(' ', 'T').replace(/\+00(?::00)?$/, 'Z'),
}
const TEXT_TYPES = {getTypeParser: (oid: number) => TEXT_PARSERS[oid] ?? identity}

const NUMERIC = new Set([20, 21, 23, 1700])
const INTEGER = new Set([20, 21, 23])
const TIMESTAMP = new Set([1114, 1184])
/** types whose equality is equality of their text */
const TEXT = new Set([25, 1043])
const EXACT_KEY = new Set([20, 21, 23, 25, 1043, 1082, 2950, 1114, 1184])
const TYPE_NAME: Record<number, string> = {20: 'int8', 21: 'int2', 23: 'int4', 25: 'text', 1043: 'text', 1082: 'date', 2950: 'uuid', 1114: 'timestamp', 1184: 'timestamptz'}

function relation(s: SideSpec, param: (v: unknown) => string): string {
  const where = s.date ? ` WHERE ${sqlDateCondition('s', s.date, `${param(s.date.value)}::date`)}` : ''
  return `(SELECT s.* FROM (${pgSql(s.uri)}) AS s${where})`
}

async function columnTypes(client: pg.Client, rel: string, cols: string[], params: unknown[]): Promise<number[]> {
  const r = await client.query({text: `SELECT ${cols.map((c) => `s.${quoteIdent(c)}`).join(', ') || '1'} FROM ${rel} AS s LIMIT 0`, values: params})
  return cols.map((_, i) => r.fields[i]!.dataTypeID)
}

/** Whether a unique index (no predicate, no expressions) covers the key columns of a pg: table side, all NOT NULL: then it has no duplicate keys. Also used by bisect. */
export async function hasUniqueKey(client: pg.Client, s: SideSpec): Promise<boolean> {
  if (s.uri.params.query !== undefined) return false
  const r = await client.query(
    `SELECT 1 FROM pg_index i
      WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
        -- a unique index takes any number of NULLs: only with NOT NULL key columns are there no duplicates
        AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attname = ANY($2::text[]) AND NOT a.attnotnull)
        AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) AS k(n) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
                         WHERE a.attname <> ALL($2::text[]))
      LIMIT 1`,
    [quoteQualifiedName(s.uri.target), s.keyColumns],
  )
  return (r.rowCount ?? 0) > 0
}

function stream(client: pg.Client, text: string, values: unknown[]): AsyncIterable<Record<string, unknown>> {
  return client.query(new QueryStream(text, values, {batchSize: 5000, types: TEXT_TYPES})) as unknown as AsyncIterable<Record<string, unknown>>
}

const txt = (v: unknown): string | null => (v === null || v === undefined ? null : String(v))

const SORT_NODE = /"Node Type": "(?:Incremental )?Sort"/
const MERGE_JOIN = /"Node Type": "Merge Join"/

/**
 * The join's plan. PostgreSQL's default for two large tables is a hash full join, which with
 * the default work_mem spills both sides to temporary files in batches. When both sides are
 * tables with a btree index on the key, stored about in key order (keyIndexOrderQuery), a
 * merge full join over the two index scans reads each table once, in order, with no hash
 * table and no sort: then the join runs with `enable_hashjoin` off for this transaction, if
 * the plan PostgreSQL then makes (EXPLAIN) is indeed a merge join without a sort; else the
 * planner's own choice stands (and JIT is off for the merge join). Same rows either way.
 */
async function chooseJoin(client: pg.Client, sql: string, params: unknown[], left: SideSpec, right: SideSpec, rawKeys: boolean): Promise<'merge-index' | 'planner'> {
  if (!rawKeys) return 'planner'
  for (const s of [left, right]) {
    const q = keyIndexOrderQuery(s, false, quoteQualifiedName)
    if (!q) return 'planner'
    const r = await client.query<{ok: boolean | null}>(q)
    if (r.rows[0]?.ok !== true) return 'planner'
  }
  await client.query('SET LOCAL enable_hashjoin = off')
  const ex = await client.query<{'QUERY PLAN': unknown}>({text: `EXPLAIN (FORMAT JSON) ${sql}`, values: params})
  const plan = JSON.stringify(ex.rows[0]?.['QUERY PLAN'] ?? null, null, 1)
  if (MERGE_JOIN.test(plan) && !SORT_NODE.test(plan)) {
    // the merge plan's cost estimate is over jit_above_cost: compiling its expressions took
    // longer (100-300 ms) than it saved on 1M-row tables
    await client.query('SET LOCAL jit = off')
    return 'merge-index'
  }
  await client.query('SET LOCAL enable_hashjoin = on')
  return 'planner'
}

/** keys of the first key column `op` the split value; `ph` its placeholder in the statement */
interface Range {
  op: '<' | '>='
  value: string
  cast: string
  ph?: string
}

/** connections the join is split over (key ranges); CUTOVER_PARITY_PARALLEL=1 keeps one */
const PARALLEL = Math.max(1, Math.min(2, Number(process.env.CUTOVER_PARITY_PARALLEL ?? 2) || 1))

/**
 * The middle bound of the left table's histogram of its first key column (its statistics,
 * no scan), when both sides' first key columns have the same collation, so that `<` splits
 * both alike. undefined: no statistics, or no split.
 */
async function splitPoint(client: pg.Client, left: SideSpec, right: SideSpec, keyType: number): Promise<{value: string; cast: string} | undefined> {
  const cast = TYPE_NAME[keyType]
  if (!cast) return undefined
  const r = await client.query<{mid: string | null; same: boolean | null}>(
    `SELECT (SELECT (b.v)[(array_length(b.v, 1) + 1) / 2]
               FROM (SELECT st.histogram_bounds::text::text[] AS v
                       FROM pg_stats st JOIN pg_class c ON st.tablename = c.relname JOIN pg_namespace n ON n.oid = c.relnamespace AND st.schemaname = n.nspname
                      WHERE c.oid = $1::regclass AND st.attname = $2 AND NOT st.inherited) AS b) AS mid,
            (SELECT a.attcollation FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attname = $2)
              = (SELECT a.attcollation FROM pg_attribute a WHERE a.attrelid = $3::regclass AND a.attname = $4) AS same`,
    [quoteQualifiedName(left.uri.target), left.keyColumns[0], quoteQualifiedName(right.uri.target), right.keyColumns[0]],
  )
  const row = r.rows[0]
  return row?.mid != null && row.same === true ? {value: row.mid, cast} : undefined
}

export async function pushdownStrategy(o: PushdownOptions): Promise<PushdownOutcome> {
  const {plan, left, right} = o
  const client = new pg.Client({connectionString: pgConnectionString(o.databaseUrl, o.logger), application_name: 'cutover-parity'})
  const fail = (e: unknown) => {
    const mapped = mapPgError(e, o.databaseUrl, o.databaseUrlName)
    const sqlstate = mapped.details.sqlstate
    if (typeof sqlstate === 'string' && sqlstate.startsWith('42')) return new UsageError(`parity push-down: ${(e as Error).message}`, {cause: mapped, hint: 'check the tables, columns and where= of both sources'})
    return mapped
  }
  try {
    await client.connect()
  } catch (e) {
    throw fail(e)
  }
  client.on('error', (e) => o.logger?.warn('parity.pushdown.connection_error', {error: e}))
  const helpers: pg.Client[] = []
  const t0 = performance.now()
  const stage = (name: string) => o.logger?.debug('parity.pushdown.stage', {stage: name, ms: Math.round(performance.now() - t0)})
  try {
    // cursor_tuple_fraction 1: the whole diff is read, so plan for total time (a hash join), not for the first rows
    await client.query("SET TIME ZONE 'UTC'; SET datestyle = 'ISO, YMD'; SET cursor_tuple_fraction = 1; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    const info = await client.query<{snapshot: string; version: string}>("SELECT pg_export_snapshot() AS snapshot, current_setting('server_version_num') AS version")
    const snapshot = info.rows[0]!.snapshot
    const version = Number(info.rows[0]!.version)
    const params: unknown[] = []
    const param = (v: unknown) => {
      params.push(v)
      return `$${params.length}`
    }
    // Both sides' --date filter is the same day, bound ONCE as $1: many statements below read
    // one side only, and each must bind exactly the parameters its text uses.
    if (left.date && right.date && left.date.value !== right.date.value) throw new Error('parity push-down: the two sides filter different days')
    let datePh: string | undefined
    const dateParam = (v: unknown) => (datePh ??= param(v))
    const lrel = relation(left, dateParam)
    const rrel = relation(right, dateParam)
    const baseParams = params.slice()
    const lKeyTypes = await columnTypes(client, lrel, left.keyColumns, baseParams)
    const rKeyTypes = await columnTypes(client, rrel, right.keyColumns, baseParams)
    // compared money columns: selected as numeric (inner), and typed so from here on
    const lColTypes = await columnTypes(client, lrel, left.columns, baseParams)
    const rColTypes = await columnTypes(client, rrel, right.columns, baseParams)
    const lMoney = lColTypes.map((t) => MONEY_CASTS[t])
    const rMoney = rColTypes.map((t) => MONEY_CASTS[t])
    const lTypes = lColTypes.map((t, i) => lMoney[i]?.oid ?? t)
    const rTypes = rColTypes.map((t, i) => rMoney[i]?.oid ?? t)

    // key expressions: raw typed columns when exact on both sides, else the text twin of sources.keyText
    const rawKey = plan.keyColumns.map((_, i) => {
      const a = lKeyTypes[i]!
      const b = rKeyTypes[i]!
      return EXACT_KEY.has(a) && (a === b || (INTEGER.has(a) && INTEGER.has(b)) || (TEXT.has(a) && TEXT.has(b)))
    })
    const keyExpr = (s: SideSpec, i: number) => (rawKey[i] ? `s.${quoteIdent(s.keyColumns[i]!)}` : sqlKeyExpr('s', s.keyColumns[i]!))
    // A NULL in a raw key column: merge and bisect read it as '' (sources.keyText) and pair it;
    // here NULL = NULL is not true, so NULL keys would go unpaired, or be counted as matched
    // duplicates. Such data is left to merge, so that every strategy gives the same answer.
    for (const [s, rel] of [
      [left, lrel],
      [right, rrel],
    ] as const) {
      const raw = s.keyColumns.filter((_, i) => rawKey[i])
      if (raw.length === 0) continue
      const q = await client.query<{x: boolean}>({text: `SELECT EXISTS (SELECT 1 FROM ${rel} AS s WHERE ${raw.map((k) => `s.${quoteIdent(k)} IS NULL`).join(' OR ')}) AS x`, values: baseParams})
      if (q.rows[0]?.x === true) return {ok: false, reason: `a key column of the ${s.side} side holds NULL, which only merge pairs (as '')`}
    }
    const cast = (s: SideSpec, i: number) => {
      const c = (s === left ? lMoney : rMoney)[i]
      return c ? `::${c.type}` : ''
    }
    const inner = (s: SideSpec, rel: string, range?: Range) =>
      `(SELECT true AS __p, ${s.keyColumns.map((_, i) => `${keyExpr(s, i)} AS __k${i}`).join(', ')}${s.columns.map((c, i) => `, s.${quoteIdent(c)}${cast(s, i)} AS __c${i}`).join('')} FROM ${rel} AS s${
        range ? ` WHERE ${keyExpr(s, 0)} ${range.op} ${range.ph!}::${range.cast}` : ''
      })`

    // 1. prefilter per column; `sameValues`: every pair the join leaves out has equal values of
    // the same types on both sides (each prefilter is `IS DISTINCT FROM`, no tolerance, no cast)
    const preds: string[] = []
    let sameValues = plan.keyColumns.every((_, i) => !rawKey[i] || lKeyTypes[i] === rKeyTypes[i])
    plan.columns.forEach((c, i) => {
      const l = `l.__c${i}`
      const r = `r.__c${i}`
      const lt = lTypes[i]!
      const rt = rTypes[i]!
      const nulls = `((${l} IS NULL) <> (${r} IS NULL))`
      const exact = () => {
        preds.push(`${l} IS DISTINCT FROM ${r}`)
        if (lt !== rt) sameValues = false
      }
      // integer: numeric equality only between integer columns (the core's integer converter refuses
      // `100.00`, so a numeric column against a bigint one is compared as text, below)
      if ((c.type === 'decimal' && NUMERIC.has(lt) && NUMERIC.has(rt)) || (c.type === 'integer' && INTEGER.has(lt) && INTEGER.has(rt))) {
        const t = c.tolerance
        if (t?.kind === 'abs') preds.push(`${nulls} OR abs(${l}::numeric - ${r}::numeric) > ${param(t.text)}::numeric`)
        else if (t?.kind === 'rel') preds.push(`${nulls} OR abs(${l}::numeric - ${r}::numeric) * 100 > ${param(t.pct)}::numeric * abs(${l}::numeric)`)
        else exact()
        if (t) sameValues = false
      } else if (c.type === 'timestamp' && TIMESTAMP.has(lt) && lt === rt) {
        // PostgreSQL keeps microseconds, and so does the core: without a tolerance the values are
        // equal exactly when IS NOT DISTINCT FROM holds; with one, the difference in µs (numeric,
        // exact from PostgreSQL 14) is sent back from one µs under the tolerance (looser, never
        // stricter than the core, should extract be a double on an older server)
        const us = c.tolerance?.kind === 'seconds' ? c.tolerance.us : 0
        if (us === 0) exact()
        else {
          preds.push(`${nulls} OR abs(extract(epoch FROM (${l} - ${r}))) * 1000000 > ${param(String(us))}::numeric - 1`)
          sameValues = false
        }
      } else if (TEXT.has(lt) && TEXT.has(rt)) {
        exact()
      } else {
        preds.push(`${l}::text IS DISTINCT FROM ${r}::text`)
        sameValues = false
      }
    })

    stage('planned')
    // 2. duplicate keys
    const keyList = (alias: string, n: number) => Array.from({length: n}, (_, i) => `${alias}.__k${i}`).join(', ')
    const nk = plan.keyColumns.length
    const dupKeys = new Map<string, string[]>()
    for (const [s, rel] of [
      [left, lrel],
      [right, rrel],
    ] as const) {
      if (await hasUniqueKey(client, s)) continue
      const q = await client.query({text: `SELECT ${keyList('d', nk)} FROM ${inner(s, rel)} AS d GROUP BY ${keyList('d', nk)} HAVING count(*) > 1`, values: baseParams, types: TEXT_TYPES})
      for (const row of q.rows as Record<string, unknown>[]) {
        const key = Array.from({length: nk}, (_, i) => txt(row[`__k${i}`]) ?? '')
        dupKeys.set(JSON.stringify(key), key)
      }
    }
    let dupLeftRows = 0
    let groups: Map<string, {l: RowValues[]; r: RowValues[]}> | undefined
    if (dupKeys.size > 0) {
      const keys = [...dupKeys.values()]
      const arrays = Array.from({length: nk}, (_, i) => keys.map((k) => k[i]!))
      groups = new Map()
      for (const [s, rel, side] of [
        [left, lrel, 'l'],
        [right, rrel, 'r'],
      ] as const) {
        const p0 = baseParams.length
        const types = s === left ? lKeyTypes : rKeyTypes
        const cast = (i: number) => (rawKey[i] ? `::${TYPE_NAME[types[i]!]}` : '')
        const cond = `(${Array.from({length: nk}, (_, i) => `d.__k${i}`).join(', ')}) IN (SELECT ${arrays.map((_, i) => `u.a${i}${cast(i)}`).join(', ')} FROM unnest(${arrays.map((_, i) => `$${p0 + i + 1}::text[]`).join(', ')}) AS u(${arrays.map((_, i) => `a${i}`).join(', ')}))`
        const q = await client.query({text: `SELECT * FROM ${inner(s, rel)} AS d WHERE ${cond}`, values: [...baseParams, ...arrays], types: TEXT_TYPES})
        for (const row of q.rows as Record<string, unknown>[]) {
          const key = Array.from({length: nk}, (_, i) => txt(row[`__k${i}`]) ?? '')
          const id = JSON.stringify(key)
          let g = groups.get(id)
          if (!g) groups.set(id, (g = {l: [], r: []}))
          g[side].push(s.columns.map((_, i) => txt(row[`__c${i}`])))
        }
      }
      for (const g of groups.values()) dupLeftRows += g.l.length
    }

    stage('duplicates')
    // 3. the join, differences only (and the plan of it, which sets this transaction's settings)
    const rowExpr = (s: SideSpec, a = 'd') => `ROW(${s.keyColumns.map((_, i) => `${a}.__k${i}`).join(', ')}${s.columns.map((_, i) => `, ${a}.__c${i}`).join('')})`
    const hashSum = version >= 140000 ? (s: SideSpec) => `sum(hash_record_extended(${rowExpr(s)}, 0))` : (s: SideSpec) => `sum(('x' || substr(md5(${rowExpr(s)}::text), 1, 16))::bit(64)::bigint)`
    // The right side's checksum without reading it again: when every pair the join leaves out has
    // equal values of the same types (sameValues), both of its rows hash alike (equal values hash
    // equal: the contract of every hash opclass), so the right sum is the left sum minus the left
    // rows the join sends back plus the right rows it sends back, and the right count the left
    // count minus the missing plus the extra. The join returns the hash of each row it sends.
    // (Not with md5, whose text differs for equal values such as 1.0 and 1.00, nor with
    // duplicate keys, whose rows the join pairs crosswise.) test: parity-strategies, "derived".
    const deriveRight = version >= 140000 && sameValues && dupKeys.size === 0 && process.env.CUTOVER_PARITY_DERIVED_DIGEST !== '0'
    const on = Array.from({length: nk}, (_, i) => `l.__k${i} = r.__k${i}`).join(' AND ')
    const where = ['l.__p IS NULL', 'r.__p IS NULL', ...preds.map((p) => `(${p})`)].join(' OR ')
    const select = [
      'l.__p AS lp',
      'r.__p AS rp',
      ...Array.from({length: nk}, (_, i) => `coalesce(l.__k${i}, r.__k${i}) AS __k${i}`),
      ...plan.columns.map((_, i) => `l.__c${i} AS l${i}`),
      ...plan.columns.map((_, i) => `r.__c${i} AS r${i}`),
      ...(deriveRight ? [`hash_record_extended(${rowExpr(left, 'l')}, 0)::text AS lh`, `hash_record_extended(${rowExpr(right, 'r')}, 0)::text AS rh`] : []),
    ].join(', ')
    /** the join over the keys `range` selects on both sides (all keys without one) */
    const joinSql = (range?: Range) =>
      `SELECT ${select} FROM ${inner(left, lrel, range)} AS l FULL OUTER JOIN ${inner(right, rrel, range)} AS r ON ${on} WHERE ${where}`
    const join = await chooseJoin(client, joinSql(), params, left, right, rawKey.every(Boolean))
    // Two key ranges on two connections (same snapshot) when the join is a merge over the key
    // indexes: each reads its half of both indexes, so PostgreSQL uses two cores (measured on 1M
    // rows: 250 ms for both halves against 420 ms for one join). The ranges split at the middle
    // bound of the left key's histogram, by the first key column, which both sides compare with
    // the same operator and collation (else no split); merge-index implies NOT NULL keys.
    const split = join === 'merge-index' && PARALLEL > 1 ? await splitPoint(client, left, right, lKeyTypes[0]!) : undefined
    o.logger?.debug('parity.pushdown.sql', {sql: joinSql(), join, split: split !== undefined})

    // 4. counts and checksums of each side (the digests), in the same snapshot
    const method = version >= 140000 ? 'hash_record_extended' : 'md5'
    const digest = (c: {n: string; sum: string}) => createHash('sha256').update(`cutover-parity-sql-checksum-v1 ${method} rows=${c.n} sum=${c.sum}`).digest('hex')
    type Sum = {n: bigint; sum: bigint}
    const checksum = async (c: pg.Client, s: SideSpec, rel: string, range?: Range): Promise<Sum> => {
      const values = range ? [...baseParams, range.value] : baseParams
      const r = await c.query({text: `SELECT count(*)::text AS n, coalesce(${hashSum(s)}, 0)::text AS sum FROM ${inner(s, rel, range && {...range, ph: `$${baseParams.length + 1}`})} AS d`, values})
      const row = r.rows[0] as {n: string; sum: string}
      return {n: BigInt(row.n), sum: BigInt(row.sum)}
    }
    const helper = async (): Promise<pg.Client> => {
      const c = new pg.Client({connectionString: pgConnectionString(o.databaseUrl, o.logger), application_name: 'cutover-parity'})
      helpers.push(c)
      await c.connect()
      await c.query(`SET TIME ZONE 'UTC'; SET datestyle = 'ISO, YMD'; SET cursor_tuple_fraction = 1; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '${snapshot}'`)
      if (join === 'merge-index') await c.query('SET LOCAL enable_hashjoin = off; SET LOCAL jit = off')
      return c
    }

    const core = new ParityCore(plan)
    if (groups) {
      for (const [id, g] of groups) core.duplicate(JSON.parse(id) as string[], g.l, g.r)
    }
    let missing = 0
    let pairs = 0
    let extra = 0
    let seen = 0
    let sumDelta = 0n // right sum - left sum, over the rows the join sends back
    const ncols = plan.columns.length
    const runJoin = async (c: pg.Client, range?: Range): Promise<void> => {
      const values = range ? [...params, range.value] : params
      for await (const row of stream(c, joinSql(range && {...range, ph: `$${params.length + 1}`}), values)) {
        if (deriveRight) {
          if (row.lp !== null) sumDelta -= BigInt(row.lh as string)
          if (row.rp !== null) sumDelta += BigInt(row.rh as string)
        }
        const key = new Array<string>(nk)
        for (let i = 0; i < nk; i++) key[i] = txt(row[`__k${i}`]) ?? ''
        if (dupKeys.size > 0 && dupKeys.has(JSON.stringify(key))) continue
        const lv: RowValues = new Array<string | null>(ncols)
        const rv: RowValues = new Array<string | null>(ncols)
        for (let i = 0; i < ncols; i++) {
          lv[i] = txt(row[`l${i}`])
          rv[i] = txt(row[`r${i}`])
        }
        if (row.rp === null) {
          core.leftOnly(key, lv)
          missing++
        } else if (row.lp === null) {
          core.rightOnly(key, rv)
          extra++
        } else {
          core.pair(key, lv, rv)
          pairs++
        }
        if (++seen % 10_000 === 0) o.onProgress?.(seen)
      }
    }
    /** the join over `range` on `c`, then the checksums of that range */
    const rangeWork = async (c: pg.Client, range?: Range): Promise<[Sum, Sum | undefined]> => {
      await runJoin(c, range)
      return [await checksum(c, left, lrel, range), deriveRight ? undefined : await checksum(c, right, rrel, range)]
    }
    let parts: [Sum, Sum | undefined][]
    if (split) {
      // the core takes rows from both streams in turn; it keeps samples by key, not by arrival
      const second = helper().then((c) => rangeWork(c, {op: '>=', value: split.value, cast: split.cast}))
      second.catch(() => {}) // awaited below
      parts = [await rangeWork(client, {op: '<', value: split.value, cast: split.cast}), await second]
    } else {
      // one helper connection sums both sides while the join runs here (measured: two helpers
      // in parallel slowed the join more than one did)
      const sums = helper().then(async (c) => [await checksum(c, left, lrel), deriveRight ? undefined : await checksum(c, right, rrel)] as [Sum, Sum | undefined])
      sums.catch(() => {}) // awaited below; an early failure of the join must not leave it unhandled
      await runJoin(client)
      parts = [await sums]
    }
    stage('joined')
    await client.query('COMMIT')
    const add = (xs: Sum[]): Sum => xs.reduce((a, b) => ({n: a.n + b.n, sum: a.sum + b.sum}), {n: 0n, sum: 0n})
    const lsum = add(parts.map((p) => p[0]))
    const rsum = deriveRight ? {n: lsum.n - BigInt(missing) + BigInt(extra), sum: lsum.sum + sumDelta} : add(parts.map((p) => p[1]!))
    const leftRows = Number(lsum.n)
    const rightRows = Number(rsum.n)
    const matchedRest = leftRows - dupLeftRows - missing - pairs
    core.addMatched(matchedRest)
    const rightCheck = matchedRest + pairs + extra + (groups ? [...groups.values()].reduce((n, g) => n + g.r.length, 0) : 0)
    if (rightCheck !== rightRows) o.logger?.warn('parity.pushdown.count_mismatch', {right_rows: rightRows, accounted: rightCheck})
    o.onProgress?.(leftRows + rightRows)
    const text = (c: Sum) => ({n: String(c.n), sum: String(c.sum)})
    return {ok: true, core, digests: {left: digest(text(lsum)), right: digest(text(rsum))}}
  } catch (e) {
    throw fail(e)
  } finally {
    await Promise.all([client, ...helpers].map((c) => c.end().catch(() => {})))
  }
}
