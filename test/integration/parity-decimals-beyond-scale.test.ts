/**
 * numeric values with more fractional digits than parity's usual scale (12): a numeric without
 * a declared scale computed by a division (1/3 is 0.33333333333333333333 in PostgreSQL), a
 * rate of 16 decimals. They were read as text by merge and bisect (the exact reading at scale 12
 * failed), so that a pair within the tolerance was a mismatch there while the push-down
 * (numeric in PostgreSQL) matched it; every strategy now reads them exactly, at their own scale.
 */
import {describe, expect, it} from 'vitest'
import {createTestSchema, runCli, testPool} from '../helpers.js'

const STRATEGIES = ['merge', 'sql-pushdown', 'bisect'] as const

async function tables(): Promise<string> {
  const pool = testPool()
  const schema = await createTestSchema(pool)
  await pool.query(`CREATE TABLE "${schema}".l (k int PRIMARY KEY, v numeric)`)
  await pool.query(`CREATE TABLE "${schema}".r (k int PRIMARY KEY, v numeric)`)
  await pool.query(`INSERT INTO "${schema}".l VALUES (1, 1 / 3::numeric), (2, 2.5), (3, 0.1234567890123456), (4, 7)`)
  await pool.query(`INSERT INTO "${schema}".r VALUES (1, 0.3333333333334), (2, 2.5000000000000001), (3, 0.1234567890123457), (4, 7)`)
  return schema
}

function check(schema: string, strategy: string, extra: string[]) {
  return runCli(['parity', 'check', '--left', `pg:${schema}.l`, '--right', `pg:${schema}.r`, '--key', 'k', '--strategy', strategy, '--no-ledger', '--json', ...extra])
}

describe('parity check: decimals with more than 12 fractional digits', () => {
  it('within a tolerance, every strategy matches them (merge and bisect called them mismatches)', async () => {
    const schema = await tables()
    for (const strategy of STRATEGIES) {
      const r = await check(schema, strategy, ['--tolerance', 'v=0.001'])
      expect(r.code, `${strategy}: ${r.stderr}`).toBe(0)
      expect(r.json, strategy).toMatchObject({matched: 4, mismatched: 0, parity_pct: 100, columns: {v: {mismatches: 0, max_abs_diff: null}}})
    }
  })

  it('without a tolerance, every strategy reports the exact difference, never a value cut off at 12 digits', async () => {
    const schema = await tables()
    for (const strategy of STRATEGIES) {
      const r = await check(schema, strategy, [])
      expect(r.code, `${strategy}: ${r.stderr}`).toBe(0)
      expect(r.json, strategy).toMatchObject({matched: 1, mismatched: 3, parity_pct: 25})
      // |1/3 - 0.3333333333334| = 0.00000000000006666667, the largest of the three
      expect(r.json.columns.v, strategy).toEqual({mismatches: 3, explained: 0, max_abs_diff: '0.00000000000006666667'})
    }
  })
})
