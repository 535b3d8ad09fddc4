import {describe, expect, it} from 'vitest'
import {openSource} from '../../legacy-adapters/index.js'
import {recordBatches} from '../../legacy-adapters/source.js'
import {quoteQualifiedName} from '../../legacy-adapters/pg.js'
import type {RawRecord} from '../../legacy-adapters/types.js'
import {createTestSchema, settings, testPool} from '../helpers.js'

async function collect(it: AsyncIterable<RawRecord>): Promise<RawRecord[]> {
  const out: RawRecord[] = []
  for await (const r of it) out.push(r)
  return out
}

const ctx = () => ({databaseUrl: settings().databaseUrl})

async function legacyTable(rows = 5000): Promise<string> {
  const pool = testPool()
  const schema = await createTestSchema(pool)
  await pool.query(`CREATE TABLE "${schema}".daily_totals (
    account_id text NOT NULL, business_date date NOT NULL, amount_sum numeric(20,2) NOT NULL,
    txn_count bigint NOT NULL, closed_at timestamptz, local_ts timestamp, flagged boolean, note text)`)
  await pool.query(
    `INSERT INTO "${schema}".daily_totals
     SELECT 'A' || lpad(g::text, 5, '0'), DATE '2026-11-20' + (g % 3), (g * 1000000000.01)::numeric(20,2) * (CASE WHEN g % 7 = 0 THEN -1 ELSE 1 END),
            9007199254740993 + g, TIMESTAMPTZ '2026-11-20 23:59:59.123456+03' + g * interval '1 second',
            TIMESTAMP '2026-11-20 09:15:00', g % 2 = 0, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END
     FROM generate_series(1, $1) g`,
    [rows],
  )
  return schema
}

describe('pg: against the real PostgreSQL', () => {
  it('streams a table in batches, every value as exact text', async () => {
    const schema = await legacyTable(5000)
    const source = openSource(`pg:${schema}.daily_totals?order_by=account_id&batch_size=1000`, ctx())
    let batches = 0
    const rs: RawRecord[] = []
    for await (const b of recordBatches(source)) {
      batches++
      rs.push(...b)
    }
    expect(rs).toHaveLength(5000)
    expect(batches).toBeGreaterThan(1) // streamed, not fetched whole
    expect(rs.every((r) => r.ok)).toBe(true)
    const first = rs[0]!
    expect(first).toEqual({
      ok: true,
      fields: {
        account_id: 'A00001',
        business_date: '2026-11-21',
        amount_sum: '1000000000.01',
        txn_count: '9007199254740994', // above 2^53: exact
        closed_at: '2026-11-20T21:00:00.123456Z', // 23:59:59.123456+03 plus 1 s, in UTC
        local_ts: '2026-11-20T09:15:00',
        flagged: 'false',
        note: 'n1',
      },
      position: {scheme: 'pg', source: `${schema}.daily_totals`, record: 1, key: '1'},
    })
    const seventh = rs[6]!
    expect(seventh.ok && seventh.fields).toMatchObject({amount_sum: '-7000000000.07', flagged: 'false'})
    const fifth = rs[4]!
    expect(fifth.ok && fifth.fields.note).toBeNull()
    expect(rs[4999]!.position).toMatchObject({record: 5000, key: '5000'})
  })

  it('applies where=, key= and pg:query=', async () => {
    const schema = await legacyTable(50)
    const where = await collect(openSource(`pg:${schema}.daily_totals?where=business_date='2026-11-20' AND flagged&key=account_id&order_by=account_id`, ctx()))
    expect(where.map((r) => r.position.key)).toEqual(['A00006', 'A00012', 'A00018', 'A00024', 'A00030', 'A00036', 'A00042', 'A00048'])
    const q = await collect(openSource(`pg:?key=id&query=SELECT account_id AS id, amount_sum * 2 AS doubled FROM "${schema}".daily_totals WHERE txn_count = 9007199254740993 + 3`, ctx()))
    expect(q).toEqual([{ok: true, fields: {id: 'A00003', doubled: '6000000000.06'}, position: {scheme: 'pg', source: 'query', record: 1, key: 'A00003'}}])
  })

  it('stops early without leaving the connection busy', async () => {
    const schema = await legacyTable(3000)
    let n = 0
    for await (const _r of openSource(`pg:${schema}.daily_totals?batch_size=100`, ctx())) if (++n === 150) break
    expect(n).toBe(150)
    // the table can be dropped at once: no transaction of ours still holds it
    const pool = testPool()
    await pool.query(`DROP TABLE "${schema}".daily_totals`)
  })

  it('turns a missing table into a UsageError, a write into a UsageError, and an unreachable server into exit 3', async () => {
    const schema = await legacyTable(1)
    await expect(collect(openSource(`pg:${schema}.nope`, ctx()))).rejects.toMatchObject({code: 'USAGE', exitCode: 2, message: expect.stringContaining('does not exist')})
    await expect(collect(openSource(`pg:query=DELETE FROM "${schema}".daily_totals`, ctx()))).rejects.toMatchObject({code: 'USAGE', hint: expect.stringContaining('SELECT')})
    const pool = testPool()
    expect((await pool.query(`SELECT count(*)::int AS n FROM "${schema}".daily_totals`)).rows[0].n).toBe(1)
    await expect(collect(openSource(`pg:${schema}.daily_totals`, {databaseUrl: 'postgres://postgres@127.0.0.1:1/cutover'}))).rejects.toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      exitCode: 3,
    })
  })

  it('a table or column not found whose name differs only in case: the hint says names fold to lower case and gives the quoted form (exit 2)', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}"."Upper" (id int, "Amount" numeric(12,2))`)
    await pool.query(`INSERT INTO "${schema}"."Upper" VALUES (1, 2.50)`)
    const folded = 'unquoted names fold to lower case in PostgreSQL'
    await expect(collect(openSource(`pg:${schema}.Upper?order_by=id`, ctx()))).rejects.toMatchObject({
      code: 'USAGE',
      exitCode: 2,
      message: `source "pg:${schema}.Upper?order_by=id": relation "${schema}.upper" does not exist`,
      hint: `${folded}: pg:${schema}.Upper?order_by=id looks up ${schema}.upper, but the table is ${schema}."Upper"; write pg:${schema}."Upper"?order_by=id (in a shell: 'pg:${schema}."Upper"?order_by=id')`,
    })
    // the quoted form it gives reads the table
    const rows = await collect(openSource(`pg:${schema}."Upper"?order_by=id`, ctx()))
    expect(rows.map((r) => r.ok && r.fields)).toEqual([{id: '1', Amount: '2.50'}])
    await expect(collect(openSource(`pg:query=SELECT id FROM ${schema}.Upper`, ctx()))).rejects.toMatchObject({
      exitCode: 2,
      hint: `${folded}: the query looks up ${schema}.upper, but the table is ${schema}."Upper"; write ${schema}."Upper" in the query`,
    })
    // a column: where=, order_by= or query=
    await expect(collect(openSource(`pg:${schema}."Upper"?where=Amount > 1`, ctx()))).rejects.toMatchObject({
      code: 'USAGE',
      exitCode: 2,
      message: expect.stringContaining('column "amount" does not exist'),
      hint: `${folded}: there is no column amount in ${schema}."Upper", but there is "Amount"; write "Amount", double-quoted, in where=, order_by= or query=`,
    })
    await expect(collect(openSource(`pg:query=SELECT Amount FROM ${schema}."Upper"`, ctx()))).rejects.toMatchObject({hint: expect.stringContaining('but there is "Amount"; write "Amount"')})
    // a name that differs in more than case keeps the general hint
    await expect(collect(openSource(`pg:${schema}.Uppers`, ctx()))).rejects.toMatchObject({exitCode: 2, hint: 'check the table name and the where=, order_by= or query= SQL'})
  })

  it('quotes identifiers part by part', () => {
    expect(quoteQualifiedName('legacy.daily_totals')).toBe('"legacy"."daily_totals"')
    expect(quoteQualifiedName('Legacy.Daily')).toBe('"legacy"."daily"')
    expect(quoteQualifiedName('"Legacy"."Da.ily"')).toBe('"Legacy"."Da.ily"')
    expect(quoteQualifiedName('t; DROP TABLE x')).toBe('"t; drop table x"')
    expect(() => quoteQualifiedName('a..b')).toThrow(/not a table name/)
  })
})
