/**
 * The sql-pushdown strategy's two short cuts give exactly what the plain path gives:
 *  - the join split in two key ranges on two connections (merge join over the key indexes),
 *  - the right side's checksum derived from the left one and the rows the join sends back.
 * Each run is checked against the plain path (CUTOVER_PARITY_PARALLEL=1,
 * CUTOVER_PARITY_DERIVED_DIGEST=0) and each digest against one computed here in SQL.
 */
import {createHash} from 'node:crypto'
import {describe, expect, it} from 'vitest'
import {createTestSchema, runCli, testPool} from '../helpers.js'

const ROWS = 20_000

/** `parity check` of the schema's legacy and stream tables (--json, debug log): the result without its time, and how the join ran. */
async function pushdownCheck(schema: string, flags: string[], env: Record<string, string>) {
  const out = await runCli(['parity', 'check', '--left', `pg:${schema}.legacy`, '--right', `pg:${schema}.stream`, ...flags, '--json', '--no-ledger', '--log-level', 'debug'], {env})
  expect(out.code, out.stderr).toBe(0)
  const sql = out.stderr.split('\n').filter((l) => l.includes('parity.pushdown.sql')).map((l) => JSON.parse(l) as {join: string; split: boolean})[0]!
  const {elapsed_ms: _e, ...result} = out.json as Record<string, unknown>
  return {result, join: sql.join, split: sql.split}
}

const sha = (rows: string, sum: string) => createHash('sha256').update(`cutover-parity-sql-checksum-v1 hash_record_extended rows=${rows} sum=${sum}`).digest('hex')

describe('parity check, sql-pushdown: split join and derived digest', () => {
  it('gives the plain path result and the digests of the tables', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    const cols = 'id text PRIMARY KEY, account_id text NOT NULL, amount numeric(14,2) NOT NULL, event_time timestamptz NOT NULL, merchant text'
    await pool.query(`CREATE TABLE "${schema}".legacy (${cols}); CREATE TABLE "${schema}".stream (${cols})`)
    await pool.query(
      `INSERT INTO "${schema}".legacy
       SELECT 'T' || lpad(g::text, 6, '0'), 'A' || (g % 97), ((g * 7919) % 100000) / 100.0,
              timestamptz '2026-11-20 00:00:00+00' + g * interval '1 second', CASE WHEN g % 10 = 0 THEN NULL ELSE 'SHOP ' || (g % 13) END
         FROM generate_series(1, $1::int) AS g`,
      [ROWS],
    )
    await pool.query(`INSERT INTO "${schema}".stream SELECT * FROM "${schema}".legacy`)
    // differences on both sides of the middle key (T010000) and right beside it
    const near = ['T000005', 'T009999', 'T010000', 'T010001', 'T019990']
    await pool.query(`DELETE FROM "${schema}".stream WHERE id = ANY($1)`, [[near[0], near[2], near[4]]])
    await pool.query(`UPDATE "${schema}".stream SET amount = amount + 0.01 WHERE id = ANY($1)`, [['T000100', near[1], 'T015000']])
    await pool.query(`UPDATE "${schema}".stream SET event_time = event_time + interval '5 seconds' WHERE id = ANY($1)`, [['T000200', near[3]]])
    await pool.query(`UPDATE "${schema}".stream SET merchant = 'CHANGED' WHERE id = ANY($1)`, [['T000301', 'T012000']]) // T012000 was NULL
    await pool.query(`INSERT INTO "${schema}".stream VALUES ('T010000a', 'A1', 1.00, now(), 'EXTRA'), ('T000000', 'A1', 2.00, now(), NULL)`)
    await pool.query(`ANALYZE "${schema}".legacy; ANALYZE "${schema}".stream`)

    const digestOf = async (table: string) => {
      const r = await pool.query<{n: string; s: string}>(
        `SELECT count(*)::text AS n, coalesce(sum(hash_record_extended(ROW(id, account_id, amount, event_time, merchant), 0)), 0)::text AS s FROM "${schema}".${table}`,
      )
      return sha(r.rows[0]!.n, r.rows[0]!.s)
    }
    const digests = {left: await digestOf('legacy'), right: await digestOf('stream')}

    const check = (extra: string[], env: Record<string, string>) =>
      pushdownCheck(schema, ['--key', 'id', '--type', 'amount=decimal', '--type', 'event_time=timestamp', '--samples', '50', ...extra], env)
    const plain = await check([], {CUTOVER_PARITY_PARALLEL: '1', CUTOVER_PARITY_DERIVED_DIGEST: '0'})
    const fast = await check([], {})
    expect(plain).toMatchObject({join: 'merge-index', split: false})
    expect(fast).toMatchObject({join: 'merge-index', split: true})
    expect(plain.result).toMatchObject({
      strategy: 'sql-pushdown',
      left_rows: ROWS,
      right_rows: ROWS - 3 + 2,
      missing_in_right: 3,
      extra_in_right: 2,
      mismatched: 3 + 2 + 2,
      matched: ROWS - 3 - 7,
      digests,
    })
    expect(fast.result).toEqual(plain.result)

    // a tolerance: pairs within it differ in value, so the right checksum is read, not derived
    const tolerant = await check(['--tolerance', 'amount=0.01'], {})
    expect(tolerant.split).toBe(true)
    expect(tolerant.result).toMatchObject({mismatched: 2 + 2, digests})
  })
})

describe('parity check, sql-pushdown split on a composite key with --date', () => {
  it('splits by the first key column and gives the plain path result', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    const cols = 'acct text NOT NULL, seq int4 NOT NULL, business_date date NOT NULL, amount numeric(14,2) NOT NULL, PRIMARY KEY (acct, seq)'
    await pool.query(`CREATE TABLE "${schema}".legacy (${cols}); CREATE TABLE "${schema}".stream (${cols})`)
    // 200 accounts x 100 rows, two business days
    await pool.query(
      `INSERT INTO "${schema}".legacy
       SELECT 'A' || lpad((g / 100)::text, 4, '0'), g % 100, date '2026-11-19' + (g % 2), (g % 997) / 10.0
         FROM generate_series(0, 19999) AS g`,
    )
    await pool.query(`INSERT INTO "${schema}".stream SELECT * FROM "${schema}".legacy`)
    // on 2026-11-20 (odd g): a missing row and an amount off in the first and the last account, one extra row in the middle
    await pool.query(`DELETE FROM "${schema}".stream WHERE (acct, seq) IN (('A0000', 1), ('A0199', 99))`)
    await pool.query(`UPDATE "${schema}".stream SET amount = amount + 1 WHERE (acct, seq) IN (('A0000', 3), ('A0199', 97), ('A0100', 2))`) // A0100/2 is on the 19th
    await pool.query(`INSERT INTO "${schema}".stream VALUES ('A0100', 1001, date '2026-11-20', 5.00)`)
    await pool.query(`ANALYZE "${schema}".legacy; ANALYZE "${schema}".stream`)
    const check = (env: Record<string, string>) =>
      pushdownCheck(schema, ['--key', 'acct,seq', '--type', 'amount=decimal', '--date', '2026-11-20', '--date-column', 'business_date', '--samples', '20'], env)
    const plain = await check({CUTOVER_PARITY_PARALLEL: '1', CUTOVER_PARITY_DERIVED_DIGEST: '0'})
    const fast = await check({})
    expect(plain.split).toBe(false)
    expect(fast.split).toBe(true)
    expect(plain.result).toMatchObject({left_rows: 10_000, right_rows: 10_000 - 2 + 1, missing_in_right: 2, extra_in_right: 1, mismatched: 2, matched: 10_000 - 4})
    expect(fast.result).toEqual(plain.result)
  })
})
