/**
 * `backfill --from pg:` whose source is written wrong, or whose SQL fails on a value, against the
 * real broker and PostgreSQL: each was exit 70 (PG_ERROR, "internal") without a fix, against
 * DESIGN.md's exit codes; each is exit 2 naming the source and what to write, and the fix given
 * works (the rows read back with kcat):
 *   - a table whose name holds a dot and a space, written unquoted (`pg:s.Mixed Case.T`): read as
 *     database.schema.table, 0A000 "cross-database references are not implemented"
 *   - a bind parameter in query= (`$1`): 08P01, nothing binds it
 *   - a where= literal that is no date (22008), and text whose bytes are not UTF-8 in a SQL_ASCII
 *     database (22021): class 22, data exception
 *   - `&key=` written after query=: it went into the SQL (the hint says so)
 */
import {describe, expect, it} from 'vitest'
import {createTestSchema, createTestTopic, freshDatabase, kcatConsume, runCli, settings, sqlOnce, testPool} from '../helpers.js'

describe('backfill pg: source errors are exit 2 with the fix', () => {
  it('a dotted table name unquoted, and $1 in query=', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-pgerr'})
    const pool = testPool()
    const s = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${s}"."Mixed Case.T" (id int PRIMARY KEY, amt numeric(30,4)); INSERT INTO "${s}"."Mixed Case.T" VALUES (1, -12345678901234567890.1234), (2, 0.0001)`)

    const write = `pg:${s}."Mixed Case.T"?order_by=id`
    // with --key the column check reads the source first; without, the reader itself
    for (const key of [['--key', 'id'], []]) {
      const dotted = await runCli(['backfill', '--from', `pg:${s}.Mixed Case.T?order_by=id`, '--to', topic, ...key, '--json'])
      expect(dotted.code, dotted.stdout + dotted.stderr).toBe(2)
      expect(dotted.json.error).toMatchObject({code: 'USAGE', sqlstate: '0A000', hint: expect.stringContaining(`write ${write}`) as unknown})
    }
    // the form the hint gives reads the table
    const fixed = await runCli(['backfill', '--from', write, '--to', topic, '--key', 'id', '--json'])
    expect(fixed.code, fixed.stderr).toBe(0)
    expect(kcatConsume(topic).map((r) => [r.key, JSON.parse(r.payload!)])).toEqual([
      ['1', {id: '1', amt: '-12345678901234567890.1234'}],
      ['2', {id: '2', amt: '0.0001'}],
    ])

    for (const key of [['--key', 'id'], []]) {
      const bound = await runCli(['backfill', '--from', `pg:query=SELECT * FROM "${s}"."Mixed Case.T" WHERE id = $1 ORDER BY id`, '--to', topic, ...key, '--json'])
      expect(bound.code, bound.stdout + bound.stderr).toBe(2)
      expect(bound.json.error).toMatchObject({code: 'USAGE', sqlstate: '08P01', hint: expect.stringContaining('no parameters to bind') as unknown})

      const after = await runCli(['backfill', '--from', `pg:query=SELECT * FROM "${s}"."Mixed Case.T" ORDER BY id&key=id`, '--to', topic, ...key, '--json'])
      expect(after.code, after.stdout + after.stderr).toBe(2)
      expect(after.json.error).toMatchObject({code: 'USAGE', hint: expect.stringContaining('pg:?key=...&query=SELECT') as unknown})
    }
    expect(kcatConsume(topic)).toHaveLength(2) // nothing more was sent
  })

  it('a value the SQL cannot read: a bad date literal, and non-UTF-8 text in a SQL_ASCII database', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-pgdata'})
    const pool = testPool()
    const s = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${s}".days (id int PRIMARY KEY, d date); INSERT INTO "${s}".days VALUES (1, '2026-11-20')`)
    const date = await runCli(['backfill', '--from', `pg:${s}.days?where=d = '2026-13-45'&order_by=id`, '--to', topic, '--json'])
    expect(date.code, date.stdout + date.stderr).toBe(2)
    expect(date.json.error).toMatchObject({code: 'USAGE', sqlstate: '22008', message: expect.stringContaining(`source "pg:${s}.days`) as unknown})

    // a legacy SQL_ASCII database holding windows-1251 bytes ("Иванов")
    const url = freshDatabase()
    const admin = new URL(settings().databaseUrl)
    admin.pathname = '/postgres'
    await sqlOnce(admin.toString(), `CREATE DATABASE "${new URL(url).pathname.slice(1)}" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`)
    await sqlOnce(url, "CREATE SCHEMA legacy; CREATE TABLE legacy.cust (id int PRIMARY KEY, name text); INSERT INTO legacy.cust VALUES (1, convert_from('\\xc8e2e0edeee2'::bytea, 'SQL_ASCII')), (2, 'plain')")
    const bytes = await runCli(['backfill', '--from', 'pg:legacy.cust?order_by=id', '--to', topic, '--key', 'id', '--json'], {env: {DATABASE_URL: url}})
    expect(bytes.code, bytes.stdout + bytes.stderr).toBe(2)
    expect(bytes.json.error).toMatchObject({code: 'USAGE', sqlstate: '22021', hint: expect.stringContaining("convert_from(convert(name::bytea, 'WIN1251', 'UTF8'), 'UTF8') AS name") as unknown})
    // the read the hint gives
    const converted = await runCli(['backfill', '--from', "pg:query=SELECT id, convert_from(convert(name::bytea, 'WIN1251', 'UTF8'), 'UTF8') AS name FROM legacy.cust ORDER BY id", '--to', topic, '--key', 'id', '--json'], {env: {DATABASE_URL: url}})
    expect(converted.code, converted.stderr).toBe(0)
    expect(kcatConsume(topic).map((r) => r.payload)).toEqual(['{"id":"1","name":"Иванов"}', '{"id":"2","name":"plain"}'])
  })
})
