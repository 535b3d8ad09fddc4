/**
 * A legacy table whose business day is text in the legacy form (`20.11.2026`), checked with
 * `--date`: PostgreSQL refuses the `::date` of the filter (SQLSTATE 22008, a data exception),
 * and `parity check` exited 70 (PG_ERROR, "internal") without a fix, against DESIGN.md's exit
 * codes. It is the source's or the flags' problem: exit 2, saying how to read the column. The
 * same for a query= that fails on a value (division by zero).
 */
import {describe, expect, it} from 'vitest'
import {createTestSchema, runCli, testPool} from '../helpers.js'

describe('parity check: a pg: side whose SQL fails on a value', () => {
  it('is exit 2 with the fix, in every strategy, not exit 70', async () => {
    const pool = testPool()
    const s = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${s}".legacy (id text, bd text, amt numeric); INSERT INTO "${s}".legacy VALUES ('1', '20.11.2026', 1), ('2', '2026-11-20', 2);
                      CREATE TABLE "${s}".stream (id text, bd date, amt numeric); INSERT INTO "${s}".stream VALUES ('1', '2026-11-20', 1), ('2', '2026-11-20', 2)`)
    for (const strategy of ['sql-pushdown', 'merge']) {
      const r = await runCli(['parity', 'check', '--left', `pg:${s}.legacy`, '--right', `pg:${s}.stream`, '--key', 'id', '--date', '2026-11-20', '--date-column', 'bd', '--strategy', strategy, '--no-ledger', '--json'])
      expect(r.code, `${strategy}: ${r.stdout}${r.stderr}`).toBe(2)
      expect(r.json.error).toMatchObject({code: 'USAGE', sqlstate: '22008', message: expect.stringContaining('"20.11.2026"') as unknown, hint: expect.stringContaining("to_date(bd, 'DD.MM.YYYY') AS bd") as unknown})
    }
    // the fix the hint gives works
    const fixed = await runCli(['parity', 'check', '--left', `pg:query=SELECT id, amt, CASE WHEN bd LIKE '__.__.____' THEN to_date(bd, 'DD.MM.YYYY') ELSE bd::date END AS bd FROM "${s}".legacy`, '--right', `pg:${s}.stream`, '--key', 'id', '--date', '2026-11-20', '--date-column', 'bd', '--no-ledger', '--json'])
    expect(fixed.code, fixed.stderr).toBe(0)
    expect(fixed.json).toMatchObject({matched: 2, parity_pct: 100})
    const division = await runCli(['parity', 'check', '--left', `pg:query=SELECT id, amt / 0 AS amt FROM "${s}".legacy`, '--right', `pg:${s}.stream`, '--key', 'id', '--no-ledger', '--json'])
    expect(division.code, division.stdout).toBe(2)
    expect(division.json.error).toMatchObject({code: 'USAGE', sqlstate: '22012', hint: expect.stringContaining('check the where= and query=') as unknown})
  })
})
