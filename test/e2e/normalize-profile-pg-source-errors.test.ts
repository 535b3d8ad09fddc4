/**
 * `normalize` and `profile` of a pg: source whose SQL fails on a value it reads (PostgreSQL class
 * 22, data exception) were exit 70 (PG_ERROR, "internal") without the source named or a fix, where
 * backfill gives exit 2 with the fix (pgSourceDataError): a where= literal that is no date (22008),
 * a division by zero in query= (22012), windows-1251 bytes in a SQL_ASCII database (22021). Now
 * the same exit 2, message and hint as backfill's; the read the 22021 hint gives is normalized.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestSchema, freshDatabase, runCli, settings, sqlOnce, tempDir, testPool} from '../helpers.js'

const SPEC = `version: 1
name: pg-data
source: {topic: t}
fields:
  id:   { type: string, required: true }
  name: { type: string }
key: id
`

describe('normalize and profile: a pg: source whose SQL fails on a value is exit 2 with the fix, as backfill', () => {
  it('a where= date that is no date (22008) and a division by zero in query= (22012)', async () => {
    const pool = testPool()
    const s = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${s}".days (id text PRIMARY KEY, d date, amt numeric, name text); INSERT INTO "${s}".days VALUES ('1', '2026-11-20', 5, 'a')`)
    const dir = tempDir('cutover-pg-data-')
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, SPEC)

    const date = `pg:${s}.days?where=d = '2026-13-45'&order_by=id`
    const backfill = await runCli(['backfill', '--from', date, '--to', `${s}.never`, '--dry-run', '--json'])
    expect(backfill.code, backfill.stdout + backfill.stderr).toBe(2)
    const expected = {code: 'USAGE', sqlstate: '22008', message: `source "${date}": date/time field value out of range: "2026-13-45"`, hint: backfill.json.error.hint as string}
    expect(expected.hint).toContain("a date is written '2026-11-20'")
    for (const args of [['normalize', date, '--spec', spec, '--out', join(dir, 'out.ndjson')], ['profile', date]]) {
      const r = await runCli([...args, '--json'])
      expect(r.code, r.stdout + r.stderr).toBe(2)
      expect(r.json.error).toMatchObject(expected)
    }

    const zero = `pg:query=SELECT id, amt / 0 AS name FROM "${s}".days ORDER BY id`
    for (const args of [['normalize', zero, '--spec', spec, '--out', join(dir, 'out.ndjson')], ['profile', zero]]) {
      const r = await runCli([...args, '--json'])
      expect(r.code, r.stdout + r.stderr).toBe(2)
      expect(r.json.error).toMatchObject({code: 'USAGE', sqlstate: '22012', message: `source "${zero}": division by zero`, hint: expected.hint})
    }
  })

  it('windows-1251 bytes in a SQL_ASCII database (22021): the hint names the convert_from read, which normalizes', async () => {
    const url = freshDatabase()
    const admin = new URL(settings().databaseUrl)
    admin.pathname = '/postgres'
    await sqlOnce(admin.toString(), `CREATE DATABASE "${new URL(url).pathname.slice(1)}" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`)
    // "Иванов" in windows-1251
    await sqlOnce(url, "CREATE SCHEMA legacy; CREATE TABLE legacy.cust (id text PRIMARY KEY, name text); INSERT INTO legacy.cust VALUES ('1', convert_from('\\xc8e2e0edeee2'::bytea, 'SQL_ASCII')), ('2', 'plain')")
    const dir = tempDir('cutover-pg-sqlascii-')
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, SPEC)
    const out = join(dir, 'out.ndjson')
    const env = {DATABASE_URL: url}

    const source = 'pg:legacy.cust?order_by=id'
    const backfill = await runCli(['backfill', '--from', source, '--to', 'never-sent', '--dry-run', '--json'], {env})
    expect(backfill.code, backfill.stdout + backfill.stderr).toBe(2)
    const expected = {code: 'USAGE', sqlstate: '22021', message: backfill.json.error.message as string, hint: backfill.json.error.hint as string}
    expect(expected.message).toContain(`source "${source}": invalid byte sequence for encoding "UTF8"`)
    expect(expected.hint).toContain("convert_from(convert(name::bytea, 'WIN1251', 'UTF8'), 'UTF8') AS name")
    for (const args of [['normalize', source, '--spec', spec, '--out', out], ['profile', source]]) {
      const r = await runCli([...args, '--json'], {env})
      expect(r.code, r.stdout + r.stderr).toBe(2)
      expect(r.json.error).toMatchObject(expected)
    }

    // the read the hint gives
    const converted = await runCli(['normalize', "pg:query=SELECT id, convert_from(convert(name::bytea, 'WIN1251', 'UTF8'), 'UTF8') AS name FROM legacy.cust ORDER BY id", '--spec', spec, '--out', out, '--json'], {env})
    expect(converted.code, converted.stderr).toBe(0)
    expect(converted.json).toMatchObject({read: 2, ok: 2})
    expect(readFileSync(out, 'utf8')).toBe('{"id":"1","name":"Иванов"}\n{"id":"2","name":"plain"}\n')
  })
})
