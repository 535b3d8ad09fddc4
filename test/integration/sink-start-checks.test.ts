/**
 * The start checks of the sink tables (src/runtime/sinks/table.ts, upsert.ts, aggregate.ts)
 * against tables as a bank's DBA hands them over, on the real PostgreSQL: what the check says
 * fits must be written as it came (char(n), a negative numeric scale, timestamptz(0)) and must not
 * fail every batch (a deferrable or an expression unique index, a generated or identity column, a
 * composite type, keys that are one row to the table but two texts: 21000); what works must not
 * be refused (a view, a unique index with INCLUDE columns, a domain's default, a uuid column); and
 * the fix each refusal gives must run on a table that has rows, after which the sink starts.
 */
import {describe, expect, it} from 'vitest'
import {commitBatch} from '../../src/runtime/batch.js'
import type {CutoverError} from '../../src/errors.js'
import {createTestSchema, kafka, runCli} from '../helpers.js'
import {batchFixture, produce, streamFixture} from './stream-support.js'

type Rec = {id: string} & Record<string, unknown>

const upsertSpec = (fields: string, key = 'id') => `fields:\n  id: {type: string, required: true}\n${fields}key: ${key}\nsinks: [{table: t}]\n`

/** A schema with `tables`, and the pipeline of `spec` with its sinks built (the start checks run). */
function sinks(prefix: string, tables: (s: string) => string[], spec: string) {
  return batchFixture({prefix, tables, spec})
}

/** The start check's refusal (exit 2): its message and fix; fails when the sinks start. */
async function refused(prefix: string, tables: (s: string) => string[], spec: string): Promise<CutoverError> {
  const e = await sinks(prefix, tables, spec).then(
    () => undefined,
    (err: unknown) => err as CutoverError,
  )
  if (!e) throw new Error('the sinks started')
  expect(e).toMatchObject({code: 'SPEC_INVALID', exitCode: 2})
  return e
}

/** `recs` at offsets 0.. of partition 0, in one batch transaction: it must commit. */
async function commit(f: Awaited<ReturnType<typeof sinks>>, recs: Rec[], partition = 0) {
  const out = await commitBatch(f.deps, await f.batch(partition, 0, recs.length - 1, (o) => recs[o]!), 1)
  if (out.kind !== 'committed') throw new Error(`not committed: ${out.kind}`)
  return out
}

/** The hint's SQL, with the schema of the refused table (the error names it). */
function hintSql(e: CutoverError): string {
  expect(e.hint).toMatch(/;/)
  return e.hint!.slice(0, e.hint!.lastIndexOf(';') + 1)
}

describe('sink start checks: what is accepted is written as it came', () => {
  it('char(n) columns keep the whole value (they were cast as char(1): ACC123 stored as A)', async () => {
    const f = await sinks('ssc-char', (s) => [`CREATE TABLE "${s}".t (id char(10) PRIMARY KEY, v char(8), n varchar(12))`], upsertSpec('  v: {type: string}\n  n: {type: string}\n'))
    await commit(f, [
      {id: 'ACC123', v: 'hello', n: 'world'},
      {id: 'ACC124', v: null, n: 'x'},
    ])
    const rows = await f.pool.query(`SELECT id, v, n FROM "${f.schema}".t ORDER BY id`)
    expect(rows.rows).toEqual([
      {id: 'ACC123    ', v: 'hello   ', n: 'world'},
      {id: 'ACC124    ', v: null, n: 'x'},
    ])
  })

  it('a numeric column with a negative scale is refused: it would round 1234 to 1200 (information_schema reads its scale as 2046)', async () => {
    const tables = (s: string) => [`CREATE TABLE "${s}".t (id text PRIMARY KEY, d numeric(7, -2), n numeric(7, 2))`, `INSERT INTO "${s}".t VALUES ('old', 1200, 5)`]
    const spec = upsertSpec('  d: {type: decimal, scale: 0}\n  n: {type: integer}\n')
    const e = await refused('ssc-negscale', tables, spec)
    expect(e.message).toMatch(/column d is numeric\(7, -2\), which would round a decimal of scale 0/)
    const integer = await refused('ssc-negscale-int', (s) => [`CREATE TABLE "${s}".t (id text PRIMARY KEY, n numeric(7, -1))`], upsertSpec('  n: {type: integer}\n'))
    expect(integer.message).toMatch(/column n is numeric\(7, -1\), which would round an integer/)
    // the fix runs on the table with its row, and the sink then writes 1234 as 1234
    const f = await sinks('ssc-negscale-fixed', (s) => [...tables(s), hintSql(e).replaceAll(/"t_[0-9a-f]{12}"/g, `"${s}"`)], spec)
    await commit(f, [{id: 'a', d: '1234', n: '5678'}])
    expect((await f.pool.query(`SELECT id, d::text, n::text FROM "${f.schema}".t ORDER BY id`)).rows).toEqual([
      {id: 'a', d: '1234', n: '5678.00'},
      {id: 'old', d: '1200', n: '5.00'},
    ])
  })

  it('timestamptz(0) is refused: it would round the milliseconds (07:00:00.678 stored as 07:00:01)', async () => {
    const e = await refused('ssc-tsp', (s) => [`CREATE TABLE "${s}".t (id text PRIMARY KEY, at timestamptz(0))`], upsertSpec('  at: {type: timestamp, formats: [iso]}\n'))
    expect(e.message).toMatch(/column at is timestamptz\(0\), which would round the milliseconds/)
    expect(e.hint).toMatch(/ALTER COLUMN "at" TYPE timestamptz USING "at"::timestamptz;/)
    const f = await sinks('ssc-tsp3', (s) => [`CREATE TABLE "${s}".t (id text PRIMARY KEY, at timestamptz(3))`], upsertSpec('  at: {type: timestamp, formats: [iso]}\n'))
    await commit(f, [{id: 'a', at: '2026-11-20T07:00:00.678Z'}])
    expect((await f.pool.query(`SELECT to_char(at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') AS at FROM "${f.schema}".t`)).rows).toEqual([{at: '07:00:00.678'}])
  })
})

describe('sink start checks: keys the table compares otherwise than their text', () => {
  it('upsert: char(n) (trailing spaces), a case-insensitive collation, uuid: two records of one row are one row, the later one (was 21000 on every try)', async () => {
    const f = await sinks('ssc-loose', (s) => [`CREATE TABLE "${s}".t (id char(6) PRIMARY KEY, v text)`], upsertSpec('  v: {type: string}\n'))
    await commit(f, [
      {id: 'A1', v: 'first'},
      {id: 'A1 ', v: 'second'},
      {id: 'B2', v: 'b'},
    ])
    expect((await f.pool.query(`SELECT id, v FROM "${f.schema}".t ORDER BY id`)).rows).toEqual([
      {id: 'A1    ', v: 'second'},
      {id: 'B2    ', v: 'b'},
    ])
    // the same for a case-insensitive key and a uuid key, each its own pipeline
    const email = await sinks(
      'ssc-loose-ci',
      (s) => [`CREATE COLLATION "${s}".ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`, `CREATE TABLE "${s}".t (id text COLLATE "${s}".ci PRIMARY KEY, v text)`],
      upsertSpec('  v: {type: string}\n'),
    )
    await commit(email, [
      {id: 'Ann@Bank.example', v: '1'},
      {id: 'ann@bank.example', v: '2'},
    ])
    await commit(email, [{id: 'ANN@BANK.EXAMPLE', v: '3'}], 1)
    expect((await email.pool.query(`SELECT id, v FROM "${email.schema}".t`)).rows).toEqual([{id: 'ann@bank.example', v: '3'}])
    const uuid = await sinks('ssc-loose-uuid', (s) => [`CREATE TABLE "${s}".t (id uuid PRIMARY KEY, v text)`], upsertSpec('  v: {type: string}\n'))
    const out = await commit(uuid, [
      {id: 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', v: '1'},
      {id: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', v: '2'},
      {id: 'not-a-uuid', v: '3'},
    ])
    // a string a uuid column cannot read is one refused row, not a refused table
    expect(out.counts).toMatchObject({written: 2, dead: {SINK_REJECTED: 1}})
    expect((await uuid.pool.query(`SELECT id::text, v FROM "${uuid.schema}".t`)).rows).toEqual([{id: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', v: '2'}])
  })

  it('aggregate: a group_by column of char(n) or a case-insensitive collation groups as the table compares (was 21000 on every try)', async () => {
    const f = await sinks(
      'ssc-loose-agg',
      (s) => [
        `CREATE COLLATION "${s}".ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`,
        `CREATE TABLE "${s}".agg (acct char(6) PRIMARY KEY, n bigint NOT NULL DEFAULT 0)`,
        `CREATE TABLE "${s}".agg2 (branch text COLLATE "${s}".ci NOT NULL, acct char(6) NOT NULL, n bigint NOT NULL DEFAULT 0, PRIMARY KEY (branch, acct))`,
      ],
      `fields:\n  id: {type: string, required: true}\n  acct: {type: string, required: true}\n  branch: {type: string, required: true}\nkey: id\nsinks:\n  - table: agg\n    group_by: [acct]\n    aggregates: {n: count}\n  - table: agg2\n    group_by: [branch, acct]\n    aggregates: {n: count}\n`,
    )
    await commit(f, [
      {id: 'a', acct: 'A1', branch: 'Moscow'},
      {id: 'b', acct: 'A1 ', branch: 'MOSCOW'},
      {id: 'c', acct: 'A2', branch: 'moscow'},
    ])
    expect((await f.pool.query(`SELECT acct, n::int FROM "${f.schema}".agg ORDER BY acct`)).rows).toEqual([
      {acct: 'A1    ', n: 2},
      {acct: 'A2    ', n: 1},
    ])
    const two = await f.pool.query<{branch: string; acct: string; n: number}>(`SELECT lower(branch) AS branch, acct, n::int FROM "${f.schema}".agg2 ORDER BY acct`)
    expect(two.rows).toEqual([
      {branch: 'moscow', acct: 'A1    ', n: 2},
      {branch: 'moscow', acct: 'A2    ', n: 1},
    ])
  })
})

describe('sink start checks: refused at start, not by every batch', () => {
  it('a DEFERRABLE unique constraint on the key (alone, or beside a plain primary key): its fix re-creates it', async () => {
    const spec = upsertSpec('  v: {type: string}\n')
    const alone = (s: string) => [`CREATE TABLE "${s}".t (id text PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, v text)`, `INSERT INTO "${s}".t VALUES ('old', 'x')`]
    const e = await refused('ssc-defer', alone, spec)
    expect(e.message).toMatch(/the unique constraint t_pkey on \(id\) is DEFERRABLE, which ON CONFLICT cannot use/)
    const f = await sinks('ssc-defer-fixed', (s) => [...alone(s), hintSql(e).replaceAll(/"t_[0-9a-f]{12}"/g, `"${s}"`)], spec)
    await commit(f, [{id: 'old', v: 'y'}])
    expect((await f.pool.query(`SELECT id, v FROM "${f.schema}".t`)).rows).toEqual([{id: 'old', v: 'y'}])
    const beside = await refused('ssc-defer2', (s) => [`CREATE TABLE "${s}".t (id text PRIMARY KEY, v text, CONSTRAINT t_id_d UNIQUE (id) DEFERRABLE)`], spec)
    expect(beside.message).toMatch(/the unique constraint t_id_d on \(id\) is DEFERRABLE/)
    expect(beside.hint).toMatch(/DROP CONSTRAINT "t_id_d", ADD CONSTRAINT "t_id_d" UNIQUE \("id"\);/)
  })

  it('a unique index with an expression or not valid is no key; one with INCLUDE columns is', async () => {
    const spec = upsertSpec('  v: {type: string}\n')
    const expr = await refused('ssc-expr', (s) => [`CREATE TABLE "${s}".t (id text NOT NULL, v text)`, `CREATE UNIQUE INDEX ON "${s}".t (id, lower(v))`], spec)
    expect(expr.message).toMatch(/has no unique index on \(id\)/)
    expect(expr.hint).toMatch(/ALTER TABLE "t_[0-9a-f]{12}"."t" ADD PRIMARY KEY \("id"\);/)
    const f = await sinks('ssc-include', (s) => [`CREATE TABLE "${s}".t (id text NOT NULL, v text)`, `CREATE UNIQUE INDEX ON "${s}".t (id) INCLUDE (v)`], spec)
    await commit(f, [{id: 'a', v: '1'}])
    await commit(f, [{id: 'a', v: '2'}], 1)
    expect((await f.pool.query(`SELECT id, v FROM "${f.schema}".t`)).rows).toEqual([{id: 'a', v: '2'}])
    // an index that CREATE INDEX CONCURRENTLY left invalid (the rows it met were not unique), on a
    // table of another schema than --schema
    const pool = f.pool
    const other = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${other}".t (id text NOT NULL, v text)`)
    await pool.query(`INSERT INTO "${other}".t VALUES ('a', '1'), ('a', '2')`)
    await expect(pool.query(`CREATE UNIQUE INDEX CONCURRENTLY t_id ON "${other}".t (id)`)).rejects.toMatchObject({code: '23505'})
    const invalid = await refused('ssc-invalid', () => [], `fields:\n  id: {type: string, required: true}\n  v: {type: string}\nkey: id\nsinks: [{table: ${other}.t}]\n`)
    expect(invalid.message).toMatch(new RegExp(`sink table ${other}\\.t has no unique index on \\(id\\)`))
  })

  it('a column PostgreSQL fills itself (GENERATED ALWAYS AS ... STORED, GENERATED ALWAYS AS IDENTITY) that the pipeline writes; BY DEFAULT is written', async () => {
    const spec = upsertSpec('  v: {type: decimal, scale: 2}\n  w: {type: decimal, scale: 2}\n')
    const generated = (s: string) => [`CREATE TABLE "${s}".t (id text PRIMARY KEY, v numeric(10,2), w numeric GENERATED ALWAYS AS (v * 2) STORED)`]
    const e = await refused('ssc-gen', generated, spec)
    expect(e.message).toMatch(/column w is GENERATED ALWAYS AS \(\.\.\.\) STORED/)
    const f = await sinks('ssc-gen-fixed', (s) => [...generated(s), hintSql(e).replaceAll(/"t_[0-9a-f]{12}"/g, `"${s}"`)], spec)
    await commit(f, [{id: 'a', v: '1.00', w: '5.00'}])
    expect((await f.pool.query(`SELECT w::text FROM "${f.schema}".t`)).rows).toEqual([{w: '5.00'}])

    const ispec = upsertSpec('  n: {type: integer}\n')
    const identity = (s: string) => [`CREATE TABLE "${s}".t (id text PRIMARY KEY, n bigint GENERATED ALWAYS AS IDENTITY)`]
    const i = await refused('ssc-ident', identity, ispec)
    expect(i.message).toMatch(/column n is GENERATED ALWAYS AS IDENTITY/)
    const g = await sinks('ssc-ident-fixed', (s) => [...identity(s), hintSql(i).replaceAll(/"t_[0-9a-f]{12}"/g, `"${s}"`)], ispec)
    await commit(g, [{id: 'a', n: '42'}])
    expect((await g.pool.query(`SELECT n::int FROM "${g.schema}".t`)).rows).toEqual([{n: 42}])
  })

  it('a string field into a composite-type column is refused; an enum and a NOT NULL column with a domain default are written', async () => {
    const e = await refused(
      'ssc-composite',
      (s) => [`CREATE TYPE "${s}".pair AS (a int, b int)`, `CREATE TABLE "${s}".t (id text PRIMARY KEY, v "${s}".pair)`],
      upsertSpec('  v: {type: string}\n'),
    )
    expect(e.message).toMatch(/column v is of type "t_[0-9a-f]{12}"."pair", which cannot hold a string field/)
    const f = await sinks(
      'ssc-enum',
      (s) => [
        `CREATE TYPE "${s}".side AS ENUM ('debit', 'credit')`,
        `CREATE DOMAIN "${s}".ccy AS char(3) DEFAULT 'RUB'`,
        `CREATE TABLE "${s}".t (id text PRIMARY KEY, v "${s}".side, currency "${s}".ccy NOT NULL)`,
      ],
      upsertSpec('  v: {type: string}\n'),
    )
    await commit(f, [{id: 'a', v: 'credit'}])
    expect((await f.pool.query(`SELECT id, v::text, currency FROM "${f.schema}".t`)).rows).toEqual([{id: 'a', v: 'credit', currency: 'RUB'}])
  })

  it('a table with an INSERT rule, which refuses ON CONFLICT (0A000): its fix drops the rule', async () => {
    const spec = upsertSpec('  v: {type: string}\n')
    const tables = (s: string) => [
      `CREATE TABLE "${s}".t (id text PRIMARY KEY, v text)`,
      `CREATE TABLE "${s}".audit (id text)`,
      `CREATE RULE audit AS ON INSERT TO "${s}".t DO ALSO INSERT INTO "${s}".audit VALUES (NEW.id)`,
    ]
    const e = await refused('ssc-rule', tables, spec)
    expect(e.message).toMatch(/INSERT with ON CONFLICT clause cannot be used with table that has INSERT or UPDATE rules \(SQLSTATE 0A000\)/)
    expect(e.hint).toMatch(/^DROP RULE "audit" ON "t_[0-9a-f]{12}"."t";/)
    const f = await sinks('ssc-rule-fixed', (s) => [...tables(s), hintSql(e).replaceAll(/"t_[0-9a-f]{12}"/g, `"${s}"`)], spec)
    await commit(f, [{id: 'a', v: '1'}])
    await commit(f, [{id: 'a', v: '2'}], 1)
    expect((await f.pool.query(`SELECT id, v FROM "${f.schema}".t`)).rows).toEqual([{id: 'a', v: '2'}])
  })

  it('a view over a table with the key is written through; over one without, refused at start', async () => {
    const spec = upsertSpec('  v: {type: string}\n')
    const f = await sinks('ssc-view', (s) => [`CREATE TABLE "${s}".base (id text PRIMARY KEY, v text)`, `CREATE VIEW "${s}".t AS SELECT id, v FROM "${s}".base`], spec)
    await commit(f, [{id: 'a', v: '1'}])
    await commit(f, [{id: 'a', v: '2'}], 1)
    expect((await f.pool.query(`SELECT id, v FROM "${f.schema}".base`)).rows).toEqual([{id: 'a', v: '2'}])
    const e = await refused('ssc-view-nokey', (s) => [`CREATE TABLE "${s}".base (id text, v text)`, `CREATE VIEW "${s}".t AS SELECT id, v FROM "${s}".base`], spec)
    expect(e.message).toMatch(/refuses what the sink keyed by id writes: there is no unique or exclusion constraint matching the ON CONFLICT specification \(SQLSTATE 42P10\)/)
    const d = await refused(
      'ssc-view-defer',
      (s) => [`CREATE TABLE "${s}".base (id text PRIMARY KEY DEFERRABLE, v text)`, `CREATE VIEW "${s}".t AS SELECT id, v FROM "${s}".base`],
      spec,
    )
    expect(d.message).toMatch(/the unique index base_pkey that the sink keyed by id would use is DEFERRABLE/)
  })
})

describe('sink start checks: the fixes they give run', () => {
  it('a column of another type: the ALTER converts the rows it has (USING), a timestamp without time zone read in the field zone', async () => {
    const spec = upsertSpec(
      '  d: {type: date}\n  ok: {type: boolean}\n  amount: {type: decimal, scale: 2}\n  at: {type: timestamp, formats: [iso], timezone: Europe/Moscow}\n',
    )
    const tables = (s: string) => [
      `CREATE TABLE "${s}".t (id text PRIMARY KEY, d text, ok text, amount varchar(20), at timestamp)`,
      `INSERT INTO "${s}".t VALUES ('old', '2026-11-20', 'true', '12.50', '2026-11-20 10:00:00')`,
    ]
    let extra: string[] = []
    const fixes: string[] = []
    for (const column of ['d', 'ok', 'amount', 'at']) {
      const e = await refused(`ssc-alter-${column}`, (s) => [...tables(s), ...extra.map((x) => x.replaceAll(/"t_[0-9a-f]{12}"/g, `"${s}"`))], spec)
      expect(e.message).toMatch(new RegExp(`column ${column} is`))
      fixes.push(hintSql(e))
      extra = [...fixes]
    }
    expect(fixes[3]).toMatch(/ALTER COLUMN "at" TYPE timestamptz USING "at" AT TIME ZONE 'Europe\/Moscow';$/)
    // the fixes run under any session TimeZone: 10:00 in Moscow is 07:00Z
    const f = await sinks('ssc-alter-done', (s) => [...tables(s), `SET TimeZone = 'America/New_York'; ${fixes.join(' ').replaceAll(/"t_[0-9a-f]{12}"/g, `"${s}"`)} RESET TimeZone`], spec)
    await commit(f, [{id: 'new', d: '2026-11-21', ok: 'false', amount: '1.00', at: '2026-11-21T10:00:00+03:00'}])
    const rows = await f.pool.query(`SELECT id, d::text, ok, amount::text, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS at FROM "${f.schema}".t ORDER BY id`)
    expect(rows.rows).toEqual([
      {id: 'new', d: '2026-11-21', ok: false, amount: '1.00', at: '2026-11-21 07:00'},
      {id: 'old', d: '2026-11-20', ok: true, amount: '12.50', at: '2026-11-20 07:00'},
    ])
  })

  it('no unique index on the key of a table with another primary key: a unique index, not a second primary key', async () => {
    const tables = (s: string) => [`CREATE TABLE "${s}".t (n bigserial PRIMARY KEY, id text NOT NULL, v text)`]
    const spec = upsertSpec('  v: {type: string}\n')
    const e = await refused('ssc-nokey', tables, spec)
    expect(e.hint).toMatch(/^CREATE UNIQUE INDEX ON "t_[0-9a-f]{12}"."t" \("id"\);$/)
    const f = await sinks('ssc-nokey-fixed', (s) => [...tables(s), hintSql(e).replaceAll(/"t_[0-9a-f]{12}"/g, `"${s}"`)], spec)
    await commit(f, [{id: 'a', v: '1'}])
  })

  it('a partitioned table whose unique index holds its partition key: the key must hold it too', async () => {
    const tables = (s: string) => [`CREATE TABLE "${s}".t (id text, d date, v text, PRIMARY KEY (id, d)) PARTITION BY RANGE (d)`, `CREATE TABLE "${s}".t1 PARTITION OF "${s}".t DEFAULT`]
    const e = await refused('ssc-part', tables, upsertSpec('  d: {type: date}\n  v: {type: string}\n'))
    expect(e.message).toMatch(/is partitioned by \(d\): a unique index on it must hold d/)
    expect(e.hint).toMatch(/add d to the spec's key/)
    const f = await sinks('ssc-part-ok', tables, upsertSpec('  d: {type: date, required: true}\n  v: {type: string}\n', '[id, d]'))
    await commit(f, [{id: 'a', d: '2026-11-20', v: '1'}])
  })

  it('names that differ only in case: the field and the column, the spec table and the table', async () => {
    const spec = upsertSpec('  Amount: {type: decimal, scale: 2}\n')
    const e = await refused('ssc-case', (s) => [`CREATE TABLE "${s}".t (id text PRIMARY KEY, amount numeric(18,2))`], spec)
    expect(e.message).toMatch(/has no column Amount for field Amount \(decimal\), but has amount \(columns are matched by their exact name\)/)
    expect(e.hint).not.toMatch(/ADD COLUMN/)
    const f = await sinks('ssc-case-fixed', (s) => [`CREATE TABLE "${s}".t (id text PRIMARY KEY, amount numeric(18,2))`, hintSql(e).replace(/^.*?(ALTER TABLE)/, '$1').replaceAll(/"t_[0-9a-f]{12}"/g, `"${s}"`)], spec)
    await commit(f, [{id: 'a', Amount: '1.50'}])
    const t = await refused('ssc-case-table', (s) => [`CREATE TABLE "${s}".Txn_Clean (id text PRIMARY KEY)`], `fields:\n  id: {type: string, required: true}\nkey: id\nsinks: [{table: Txn_Clean}]\n`)
    expect(t.message).toMatch(/sink table t_[0-9a-f]{12}\.Txn_Clean does not exist, but txn_clean does/)
    expect(t.hint).toBe("write table: txn_clean in the spec's sinks")
  })
})

describe('sink start checks: the aggregate sink', () => {
  it('count into smallint is refused (a running total), business_date as timestamp gets a fix that runs', async () => {
    const spec = `fields:\n  id: {type: string, required: true}\n  acct: {type: string, required: true}\n  at: {type: timestamp, required: true, formats: [iso], timezone: Europe/Moscow}\nkey: id\nevent_time: at\nsinks:\n  - table: agg\n    group_by: [acct, business_date]\n    aggregates: {n: count}\n`
    const small = await refused('ssc-agg-small', (s) => [`CREATE TABLE "${s}".agg (acct text, business_date date, n smallint NOT NULL DEFAULT 0, PRIMARY KEY (acct, business_date))`], spec)
    expect(small.message).toMatch(/column n is smallint: a running total passes 32767/)
    expect(small.hint).toMatch(/TYPE bigint USING "n"::bigint;$/)
    const tables = (s: string) => [
      `CREATE TABLE "${s}".agg (acct text, business_date timestamptz, n bigint NOT NULL DEFAULT 0, PRIMARY KEY (acct, business_date))`,
      `INSERT INTO "${s}".agg VALUES ('A1', '2026-11-19 21:00:00+00', 5)`, // Moscow's 2026-11-20 00:00
    ]
    const e = await refused('ssc-agg-bd', tables, spec)
    expect(e.message).toMatch(/column business_date is timestamp with time zone, which cannot hold a date field/)
    expect(e.hint).toMatch(/TYPE date USING \("business_date" AT TIME ZONE 'Europe\/Moscow'\)::date;$/)
    const f = await sinks('ssc-agg-bd-fixed', (s) => [...tables(s), `SET TimeZone = 'UTC'; ${hintSql(e).replaceAll(/"t_[0-9a-f]{12}"/g, `"${s}"`)} RESET TimeZone`], spec)
    await commit(f, [{id: 'x', acct: 'A1', at: '2026-11-20T12:00:00+03:00'}])
    expect((await f.pool.query(`SELECT acct, business_date::text, n::int FROM "${f.schema}".agg`)).rows).toEqual([{acct: 'A1', business_date: '2026-11-20', n: 6}])
  })
})

describe('sink start checks through stream run', () => {
  it('char(n) account ids are written whole, and a deferrable key exits 2 with a fix after which the run writes', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'ssc-cli'})
    await f.pool.query(`ALTER TABLE "${f.schema}".txn_clean ALTER COLUMN account_id TYPE char(12)`)
    await f.pool.query(`ALTER TABLE "${f.schema}".txn_clean DROP CONSTRAINT txn_clean_pkey, ADD CONSTRAINT txn_clean_pkey PRIMARY KEY (txn_id) DEFERRABLE`)
    const value = (id: string) => Buffer.from(JSON.stringify({id, acct: 'ACC-0042', amt: '10.50', ts: '2026-11-20T10:00:00+03:00'}))
    await produce(f.topic, [
      {key: 'T1', value: value('T1')},
      {key: 'T2', value: value('T2')},
    ])
    const r = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '500', '--json'])
    expect(r.code, r.stderr).toBe(2)
    const err = (r.json as {error: {code: string; message: string; hint: string}}).error
    expect(err).toMatchObject({code: 'SPEC_INVALID', message: expect.stringMatching(/txn_clean: the unique constraint txn_clean_pkey on \(txn_id\) is DEFERRABLE/)})
    // refused before anything was created on the broker: no DLQ topic
    const admin = kafka().admin()
    await admin.connect()
    try {
      expect(await admin.listTopics()).not.toContain(f.dlqTopic)
    } finally {
      await admin.disconnect()
    }
    await f.pool.query(err.hint)
    const ok = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '500', '--json'])
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.json).toMatchObject({read: 2, written: 2})
    const rows = await f.pool.query(`SELECT txn_id, account_id FROM "${f.schema}".txn_clean ORDER BY 1`)
    expect(rows.rows).toEqual([
      {txn_id: 'T1', account_id: 'ACC-0042    '},
      {txn_id: 'T2', account_id: 'ACC-0042    '},
    ])
  })
})
