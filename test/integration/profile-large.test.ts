/**
 * `profile` past its in-memory distinct cap, against PostgreSQL as the oracle: a key column's
 * duplicates and distinct count stay exact (spilled to disk and sorted), another column gets a
 * distinct estimate, the cap shrinks for wide tables, exact counts beside the rounded rates.
 * The cap and the sort's run size are set small so that a few thousand rows exercise what a
 * table of millions does (checked by hand on 3,000,000 rows: see the session's report).
 */
import {mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {profileSource} from '../../src/profile/profile.js'
import {createTestSchema, settings, testPool} from '../helpers.js'

const ROWS = 3000

/** A temp folder of this test, removed when it finishes. */
function tempFolder(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
  return dir
}

describe('profile past the distinct cap (real PostgreSQL)', () => {
  it('a key column past the cap: duplicates and distinct exact, as count(DISTINCT) says; other columns estimated; temp files removed', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    const table = `My"Txn`
    // id: repeats far apart (g = 2500 repeats id 10, g = 2900 and 2901 repeat id 20), past a cap of 100
    await pool.query(
      `CREATE TABLE "${schema}"."My""Txn" AS
       SELECT (CASE WHEN g = 2500 THEN 10 WHEN g IN (2900, 2901) THEN 20 ELSE g END)::bigint AS id,
              (CASE WHEN g = 1500 THEN NULL WHEN g = 1501 THEN 12345678901234.56 WHEN g = 2000 THEN -98765432109876.54 ELSE (g * 7)::numeric / 100 END)::numeric(18,2) AS amount,
              (CASE WHEN g % 3 = 0 THEN 'Иванов' ELSE 'Пётр ' || (g % 50) END) AS holder
         FROM generate_series(1, ${ROWS}) g`,
    )
    const oracle = (
      await pool.query(
        `SELECT count(*)::int AS n, count(DISTINCT id)::int AS d_id, (count(*) - count(DISTINCT id))::int AS dups,
                (count(*) - count(amount))::int AS null_amount, count(DISTINCT amount)::int AS d_amount, count(DISTINCT holder)::int AS d_holder,
                min(amount)::text AS min_amount, max(amount)::text AS max_amount, min(id)::text AS min_id, max(id)::text AS max_id
           FROM "${schema}"."My""Txn"`,
      )
    ).rows[0]
    const tmp = tempFolder('cutover-profile-test-')
    const r = await profileSource({
      uri: `pg:${schema}."${table.replace(/"/g, '""')}"`,
      ctx: {databaseUrl: settings().databaseUrl},
      distinctCap: 100,
      sortRunRows: 500,
      tmpDir: tmp,
    })
    const col = (n: string) => r.columns.find((c) => c.name === n)!
    expect(r.rows).toBe(oracle.n)

    expect(col('id')).toMatchObject({inferred_type: 'integer', count: oracle.n, distinct: oracle.d_id, distinct_capped: false})
    expect(col('id').duplicate_keys).toEqual({count: oracle.dups, examples: ['10', '20']})
    expect(col('id').distinct_estimate).toBeUndefined()

    const amount = col('amount')
    expect(amount).toMatchObject({inferred_type: 'decimal', null_count: oracle.null_amount, null_rate: +(oracle.null_amount / oracle.n).toFixed(4), distinct_capped: true, scale: 2})
    expect([amount.min, amount.max]).toEqual([oracle.min_amount, oracle.max_amount])
    expect([amount.min, amount.max]).toEqual(['-98765432109876.54', '12345678901234.56'])
    expect([col('id').min, col('id').max]).toEqual([oracle.min_id, oracle.max_id])
    expect(amount.distinct).toBeLessThan(oracle.d_amount) // the lower bound it had reached
    expect(Math.abs(amount.distinct_estimate! - oracle.d_amount) / oracle.d_amount).toBeLessThan(0.05)
    expect(amount.duplicate_keys).toBeUndefined()

    // under the cap: exact, as before
    expect(col('holder')).toMatchObject({distinct: oracle.d_holder, distinct_capped: false})
    expect(readdirSync(tmp)).toEqual([])
  })

  it('a wide table shares one budget of distinct values: each column is capped sooner, and key columns stay exact', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(
      `CREATE TABLE "${schema}".wide AS
       SELECT g AS id, 'a' || g AS c1, 'b' || (g * 3) AS c2, (g::numeric / 8) AS amount
         FROM generate_series(1, ${ROWS}) g`,
    )
    await pool.query(`INSERT INTO "${schema}".wide VALUES (7, 'a7', 'b-x', 1.5)`) // one duplicate id and c1 at the end
    // the default per-column cap (200,000) is not reached; the budget (2,000 for 4 columns) is: 1,000 each
    const r = await profileSource({uri: `pg:${schema}.wide`, ctx: {databaseUrl: settings().databaseUrl}, distinctBudget: 2000})
    const col = (n: string) => r.columns.find((c) => c.name === n)!
    expect(col('amount').distinct_capped).toBe(true)
    expect(col('amount').distinct).toBe(1001)
    for (const [name, dups] of [['id', 1], ['c1', 1], ['c2', 0]] as const) {
      expect(col(name), name).toMatchObject({distinct: ROWS + (name === 'c2' ? 1 : 0), distinct_capped: false})
      expect(col(name).duplicate_keys?.count, name).toBe(dups)
    }
  })

  it('a column of card numbers past the cap: duplicates found, shown masked, and never written to disk in clear', async () => {
    // 16-digit numbers with a valid Luhn check digit
    const card = (n: number) => {
      const body = `41111${String(n).padStart(10, '0')}`
      let sum = 0
      for (let i = 0; i < body.length; i++) {
        let d = Number(body[body.length - 1 - i])
        if (i % 2 === 0) d *= 2
        if (d > 9) d -= 9
        sum += d
      }
      return body + String((10 - (sum % 10)) % 10)
    }
    const dir = tempFolder('cutover-profile-cards-')
    const cards = Array.from({length: 10_000}, (_, i) => card(i))
    cards.push(cards[2999]!, cards[5]!) // two repeats, both past a cap of 100 (and 10,000 values: more than a write buffer, in clear or not)
    writeFileSync(join(dir, 'pan.csv'), `pan;n\n${cards.map((c, i) => `${c};${i}`).join('\n')}\n`)
    const tmp = tempFolder('cutover-profile-test-')
    const onDisk: string[] = []
    const r = await profileSource({
      uri: `csv:${join(dir, 'pan.csv')}?delimiter=;`,
      distinctCap: 100,
      tmpDir: tmp,
      onProgress: (_rows, phase) => {
        if (phase === undefined) return
        // the spill as it stands before its sort
        for (const sub of readdirSync(tmp)) for (const f of readdirSync(join(tmp, sub))) onDisk.push(readFileSync(join(tmp, sub, f), 'utf8'))
      },
    })
    const pan = r.columns.find((c) => c.name === 'pan')!
    expect(pan).toMatchObject({card_numbers: 10_002, distinct: 10_000, distinct_capped: false})
    const masked = (c: string) => `${c.slice(0, 4)}********${c.slice(-4)}`
    expect(pan.duplicate_keys!.count).toBe(2)
    expect([...pan.duplicate_keys!.examples].sort()).toEqual([masked(cards[5]!), masked(cards[2999]!)].sort())
    expect(pan.min).toBeUndefined()
    expect(pan.max).toBeUndefined()
    const disk = onDisk.join('')
    expect(disk.length).toBeGreaterThan(100_000)
    for (const c of cards) expect(disk.includes(c), c).toBe(false)
    expect(JSON.stringify(r)).not.toContain(cards[2999])
  })
})

