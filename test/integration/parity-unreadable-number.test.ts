/**
 * A value of a decimal/integer column that is not a number of the column's type on one side
 * (a legacy `12,5O`, `n/a`) is compared as text, as before: the same counts and exit codes. Its
 * mismatch sample now says so (`unreadable: "left"`, and why), in every strategy (merge,
 * sql-pushdown, bisect; a csv: side under merge too) and in the Markdown report. Was: the sample
 * looked like an ordinary numeric difference.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestSchema, runCli, tempDir, testPool} from '../helpers.js'

const NOT_A_NUMBER = 'not read as decimal, compared as text: left value is not a number (expected e.g. 1234.56, 1 234,56, (12.50) or 12.50-)'

describe('parity check: a decimal/integer value that is not a number', () => {
  it('is a mismatch whose sample names the side and why; counts and exit codes as before; every strategy agrees', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".l (k text PRIMARY KEY, amount text, qty text)`)
    await pool.query(`INSERT INTO "${schema}".l VALUES ('1', '12.50', '3'), ('2', '12,5O', '4'), ('3', 'n/a', 'n/a'), ('4', '7.00', '5'), ('5', 'x', '6')`)
    await pool.query(`CREATE TABLE "${schema}".r (k text PRIMARY KEY, amount numeric(12,2), qty text)`)
    await pool.query(`INSERT INTO "${schema}".r VALUES ('1', 12.50, '3'), ('2', 12.50, '4'), ('3', 1.00, '1'), ('4', 7.10, '5x'), ('5', 1, '6')`)
    const dir = tempDir('parity-unreadable-number-')
    writeFileSync(join(dir, 'l.csv'), 'k,amount,qty\n1,12.50,3\n2,"12,5O",4\n3,n/a,n/a\n4,7.00,5\n5,x,6\n')
    const types = ['--type', 'amount=decimal', '--type', 'qty=integer']
    const run = (left: string, extra: string[]) =>
      runCli(['parity', 'check', '--left', left, '--right', `pg:${schema}.r`, '--key', 'k', ...types, '--json', '--no-ledger', ...extra], {cwd: dir})

    const expected = [
      {key: {k: '2'}, kind: 'mismatch', column: 'amount', left: '12,5O', right: '12.50', explanation: null, unreadable: 'left', unreadable_reason: NOT_A_NUMBER},
      {key: {k: '3'}, kind: 'mismatch', column: 'amount', left: 'n/a', right: '1.00', explanation: null, unreadable: 'left', unreadable_reason: NOT_A_NUMBER},
      {key: {k: '3'}, kind: 'mismatch', column: 'qty', left: 'n/a', right: '1', explanation: null, unreadable: 'left', unreadable_reason: 'not read as integer, compared as text: left value is not an integer'},
      // a real numeric difference stays as it was
      {key: {k: '4'}, kind: 'mismatch', column: 'amount', left: '7.00', right: '7.10', explanation: null},
      {key: {k: '4'}, kind: 'mismatch', column: 'qty', left: '5', right: '5x', explanation: null, unreadable: 'right', unreadable_reason: 'not read as integer, compared as text: right value is not an integer'},
      {key: {k: '5'}, kind: 'mismatch', column: 'amount', left: 'x', right: '1.00', explanation: null, unreadable: 'left', unreadable_reason: NOT_A_NUMBER},
    ]
    for (const [left, strategy] of [
      ['csv:l.csv', 'merge'],
      [`pg:${schema}.l`, 'merge'],
      [`pg:${schema}.l`, 'sql-pushdown'],
      [`pg:${schema}.l`, 'bisect'],
    ] as const) {
      const r = await run(left, ['--strategy', strategy])
      expect(r.code, `${left} ${strategy}: ${r.stderr}`).toBe(0)
      expect(r.json, `${left} ${strategy}`).toMatchObject({strategy, matched: 1, mismatched: 4, unexplained: 4, parity_pct: 20})
      expect(r.json.columns, `${left} ${strategy}`).toEqual({amount: {mismatches: 4, explained: 0, max_abs_diff: '0.1'}, qty: {mismatches: 2, explained: 0, max_abs_diff: null}})
      expect(r.json.samples, `${left} ${strategy}`).toEqual(expected)
      // the exit codes are those of any mismatch
      const failing = await run(left, ['--strategy', strategy, '--fail-under', '99.99'])
      expect(failing.code, `${left} ${strategy}`).toBe(1)
    }

    // the report says it in the sample's explanation cell
    const md = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', `pg:${schema}.r`, '--key', 'k', ...types, '--no-ledger', '--out', 'report.md'], {cwd: dir})
    expect(md.code, md.stderr).toBe(0)
    // and the human output's sample line
    expect(md.stdout).toContain(`mismatch {"k":"2"} amount: "12,5O" vs "12.50" [${NOT_A_NUMBER}]`)
    const text = readFileSync(join(dir, 'report.md'), 'utf8')
    expect(text).toContain(`| 2 | mismatch | amount | 12,5O | 12.50 | ${NOT_A_NUMBER} |`)
    expect(text).toContain('| 4 | mismatch | amount | 7.00 | 7.10 |  |')
  })
})
