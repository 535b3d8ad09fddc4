/**
 * Data on which the strategies used to disagree (merge, SQL push-down, checksum-and-bisect, and
 * auto), PostgreSQL tables against PostgreSQL tables: char(n) keys and values (padded by
 * PostgreSQL, compared without the padding), NULL keys (paired with each other as '' by merge;
 * push-down leaves such data to merge), a UNIQUE index on a nullable key (several NULLs: not
 * "no duplicates"), `--type integer` on a numeric column against a bigint one, and timestamptz
 * keys with fractions of a second (sorted by PostgreSQL as the core compares them). Every
 * strategy must give the same answer.
 */
import {describe, expect, it} from 'vitest'
import {createTestSchema, runCli, testPool} from '../helpers.js'

const STRATEGIES = ['merge', 'sql-pushdown', 'bisect', 'auto'] as const
const FIELDS = ['left_rows', 'right_rows', 'matched', 'mismatched', 'missing_in_right', 'extra_in_right', 'duplicate_keys_left', 'duplicate_keys_right', 'parity_pct'] as const

async function check(schema: string, args: string[], strategy: (typeof STRATEGIES)[number]) {
  const r = await runCli(['parity', 'check', '--left', `pg:${schema}.l`, '--right', `pg:${schema}.r`, '--key', 'k', ...args, ...(strategy === 'auto' ? [] : ['--strategy', strategy]), '--json', '--no-ledger'])
  return r
}

describe('parity check: every strategy gives the same answer', () => {
  it.each([
    [
      'char(n) keys and values against varchar and text',
      [`CREATE TABLE l (k char(6) PRIMARY KEY, v char(5))`, `INSERT INTO l VALUES ('A1', 'X'), ('B2', 'Y'), ('C3', 'Z')`, `CREATE TABLE r (k varchar PRIMARY KEY, v text)`, `INSERT INTO r VALUES ('A1', 'X'), ('B2', 'Y'), ('C3', 'W')`],
      [],
      {left_rows: 3, right_rows: 3, matched: 2, mismatched: 1, missing_in_right: 0, extra_in_right: 0, duplicate_keys_left: 0, duplicate_keys_right: 0, parity_pct: 66.6666},
    ],
    [
      'NULL keys, no index',
      [`CREATE TABLE l (k text, v text)`, `INSERT INTO l VALUES (NULL, 'x'), (NULL, 'y'), ('a', '1')`, `CREATE TABLE r (k text, v text)`, `INSERT INTO r VALUES ('a', '1')`],
      ['no-pushdown'],
      // the NULL key is repeated on the left and absent from the right: missing as well
      {left_rows: 3, right_rows: 1, matched: 1, mismatched: 0, missing_in_right: 1, extra_in_right: 0, duplicate_keys_left: 1, duplicate_keys_right: 0, parity_pct: 50},
    ],
    [
      'a UNIQUE index on a nullable key',
      [`CREATE TABLE l (k text UNIQUE, v text)`, `INSERT INTO l VALUES (NULL, 'x'), (NULL, 'y'), ('a', '1')`, `CREATE TABLE r (k text UNIQUE, v text)`, `INSERT INTO r VALUES (NULL, 'x'), (NULL, 'y'), ('a', '1')`],
      ['no-pushdown'],
      {left_rows: 3, right_rows: 3, matched: 1, mismatched: 0, missing_in_right: 0, extra_in_right: 0, duplicate_keys_left: 1, duplicate_keys_right: 1, parity_pct: 50},
    ],
    [
      '--type integer on numeric(12,2) against bigint',
      [`CREATE TABLE l (k text PRIMARY KEY, v numeric(12,2))`, `INSERT INTO l VALUES ('a', 100.00), ('b', 7)`, `CREATE TABLE r (k text PRIMARY KEY, v bigint)`, `INSERT INTO r VALUES ('a', 100), ('b', 7)`],
      ['--type', 'v=integer'],
      {left_rows: 2, right_rows: 2, matched: 0, mismatched: 2, missing_in_right: 0, extra_in_right: 0, duplicate_keys_left: 0, duplicate_keys_right: 0, parity_pct: 0},
    ],
    [
      // ordered by ::text, `10:00:00+00` came before `10:00:00.25+00`, while the core compares `...00Z` after `...00.25Z`: merge stopped at "not in key order" (exit 70)
      'timestamptz keys with fractions of a second against ISO text keys',
      [
        `CREATE TABLE l (k timestamptz PRIMARY KEY, v text)`,
        `INSERT INTO l VALUES ('2026-01-01 10:00:00+00', 'a'), ('2026-01-01 10:00:00.25+00', 'b'), ('2026-01-01 10:00:00.5+00', 'c'), ('2026-01-01 10:00:01+00', 'd')`,
        `CREATE TABLE r (k text PRIMARY KEY, v text)`,
        `INSERT INTO r VALUES ('2026-01-01T10:00:00Z', 'a'), ('2026-01-01T10:00:00.25Z', 'b'), ('2026-01-01T10:00:00.5Z', 'X'), ('2026-01-01T10:00:01Z', 'd')`,
      ],
      [],
      {left_rows: 4, right_rows: 4, matched: 3, mismatched: 1, missing_in_right: 0, extra_in_right: 0, duplicate_keys_left: 0, duplicate_keys_right: 0, parity_pct: 75},
    ],
  ])('%s', async (_, ddl, flags, expected) => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    for (const sql of ddl) await pool.query(sql.replace(/\b(TABLE|INTO) (l|r)\b/g, (_m, w: string, t: string) => `${w} "${schema}".${t}`))
    // NULL keys: an explicit --strategy sql-pushdown refuses them (the test below); auto falls back to merge
    const strategies = flags.includes('no-pushdown') ? STRATEGIES.filter((x) => x !== 'sql-pushdown') : STRATEGIES
    const args = flags.filter((f) => f !== 'no-pushdown')
    const answers: Record<string, unknown> = {}
    for (const strategy of strategies) {
      const r = await check(schema, args, strategy)
      expect(r.code, `${strategy}: ${r.stdout}${r.stderr}`).toBe(0)
      answers[strategy] = Object.fromEntries(FIELDS.map((f) => [f, (r.json as Record<string, unknown>)[f]]))
    }
    for (const strategy of strategies) expect(answers[strategy], strategy).toEqual(expected)
  })

  it('--strategy sql-pushdown refuses NULL keys (exit 2, pointing at merge); auto falls back to merge', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".l (k text, v text); INSERT INTO "${schema}".l VALUES (NULL, 'x'); CREATE TABLE "${schema}".r (k text, v text); INSERT INTO "${schema}".r VALUES (NULL, 'x')`)
    const pushed = await check(schema, [], 'sql-pushdown')
    expect(pushed.code).toBe(2)
    expect(pushed.json.error.message).toMatch(/key column of the left side holds NULL/)
    const auto = await check(schema, [], 'auto')
    expect(auto.code, auto.stderr).toBe(0)
    expect(auto.json).toMatchObject({strategy: 'merge', matched: 1, parity_pct: 100})
  })
})
