/**
 * SQL that `parity check` builds from data and from operator input.
 *
 * Checksum-and-bisect sends the range bounds (key values of the left side) to
 * both databases inlined in its SQL. A legacy server may run with standard_conforming_strings
 * off, where a backslash in a plain '...' literal is an escape: a key ending in a backslash then
 * escaped the literal's closing quote, and the rest of the statement was read as SQL. Here the
 * right side's database has the setting off, and keys hold backslashes and quotes.
 */
import {randomUUID} from 'node:crypto'
import pg from 'pg'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestSchema, runCli, settings, testPool} from '../helpers.js'

const TRICKY = ['a\\', "b\\'", "c'd", 'e\\\\f', "x\\'; SELECT 1; --", '\\']

describe('parity check, bisect: range bounds with backslashes and quotes', () => {
  it('against a server with standard_conforming_strings off: every key compared, only the real differences found', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    const keys = [...Array.from({length: 54}, (_, i) => `k${String(i).padStart(3, '0')}`), ...TRICKY]
    const amounts = keys.map((_, i) => `${i + 1}.00`)
    const create = `CREATE TABLE "${schema}".t (id text PRIMARY KEY, amount numeric(12,2) NOT NULL)`
    const fill = `INSERT INTO "${schema}".t SELECT * FROM unnest($1::text[], $2::numeric[])`
    await pool.query(create)
    await pool.query(fill, [keys, amounts])

    const db = `parity_scs_${randomUUID().replace(/-/g, '').slice(0, 10)}`
    await pool.query(`CREATE DATABASE "${db}"`)
    onTestFinished(async () => {
      const a = new pg.Client({connectionString: settings().databaseUrl})
      await a.connect()
      await a.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`)
      await a.end()
    })
    await pool.query(`ALTER DATABASE "${db}" SET standard_conforming_strings = off`)
    const u = new URL(settings().databaseUrl)
    u.pathname = `/${db}`
    const right = new pg.Client({connectionString: u.toString()})
    await right.connect()
    try {
      expect((await right.query<{s: string}>("SELECT current_setting('standard_conforming_strings') AS s")).rows[0]!.s).toBe('off')
      await right.query(`CREATE SCHEMA "${schema}"`)
      await right.query(create)
      // two differences: one on a plain key, one on a key ending in a backslash
      const changed = amounts.map((a, i) => (keys[i] === 'k010' || keys[i] === 'a\\' ? `${i + 101}.00` : a))
      await right.query(fill, [keys, changed])
    } finally {
      await right.end()
    }

    const r = await runCli(['parity', 'check', '--left', `pg:${schema}.t`, '--right', `pg:${schema}.t`, '--key', 'id', '--type', 'amount=decimal', '--bisect-leaf-rows', '5', '--samples', '10', '--json', '--no-ledger'], {
      env: {CUTOVER_RIGHT_DATABASE_URL: u.toString()},
    })
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0)
    expect(r.json).toMatchObject({strategy: 'bisect', left_rows: keys.length, right_rows: keys.length, matched: keys.length - 2, mismatched: 2, missing_in_right: 0, extra_in_right: 0})
    expect((r.json.samples as {key: {id: string}}[]).map((s) => s.key.id).sort()).toEqual(['a\\', 'k010'])
  })
})

describe('parity check, a query= source', () => {
  it('cannot change anything: text that closes the column probe\'s subquery and adds a DELETE is refused, the table intact', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".t (id text PRIMARY KEY, amount numeric(12,2) NOT NULL); INSERT INTO "${schema}".t VALUES ('a', 1.00), ('b', 2.00)`)
    const sneaky = `pg:query=SELECT id, amount FROM "${schema}".t) AS s LIMIT 0; DELETE FROM "${schema}".t; SELECT * FROM (SELECT id, amount FROM "${schema}".t`
    const r = await runCli(['parity', 'check', '--left', sneaky, '--right', `pg:${schema}.t`, '--key', 'id', '--type', 'amount=decimal', '--json', '--no-ledger'])
    expect(r.code, `${r.stderr}\n${r.stdout}`).not.toBe(0)
    expect((await pool.query(`SELECT id FROM "${schema}".t ORDER BY id`)).rows).toEqual([{id: 'a'}, {id: 'b'}])
  })

  it('a query ending in ";" or in a -- comment is read as written (it was a syntax error inside the probes\' subqueries)', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".t (id text PRIMARY KEY, amount numeric(12,2) NOT NULL); INSERT INTO "${schema}".t VALUES ('a', 1.00), ('b', 2.00), ('c', 3.00)`)
    for (const [strategy, left] of [
      ['merge', `pg:query=SELECT id, amount FROM "${schema}".t WHERE id <> 'c';  `],
      ['sql-pushdown', `pg:query=SELECT id, amount FROM "${schema}".t WHERE id <> 'c' -- the nightly extract`],
    ] as const) {
      const r = await runCli(['parity', 'check', '--left', left, '--right', `pg:${schema}.t`, '--key', 'id', '--type', 'amount=decimal', '--strategy', strategy, '--json', '--no-ledger'])
      expect(r.code, `${strategy}: ${r.stderr}\n${r.stdout}`).toBe(0)
      expect(JSON.parse(r.stdout), strategy).toMatchObject({strategy, left_rows: 2, matched: 2, mismatched: 0, missing_in_right: 0, extra_in_right: 1})
    }
  })
})
