/**
 * `stream run` under a least-privilege role, as banks run services, against the real broker and
 * PostgreSQL: a role with only what README's "A least-privilege role" grants (USAGE on schema
 * cutover, the rows of its tables, its sequences; the sink tables), no CREATE on the database or
 * on the schema, runs once an administrator (postgres here) has migrated: rows written, a dead
 * letter through the outbox, offsets stored. Where the schema is missing or behind, it exits 2
 * naming what is missing, who may migrate and the grants, with nothing consumed; and a database
 * that does not exist, which it may not create, is exit 2 too. parity check, parity report and
 * backfill run under it as well (the ledger, the checkpoint, their advisory locks). Each test has a database of its own
 * (dropped when it finishes) and a role of its own (sessions ended, DROP OWNED, DROP ROLE).
 */
import {randomUUID} from 'node:crypto'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import pg from 'pg'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createSinkTables} from '../../fixtures/generator/pipeline.js'
import {silentLogger} from '../../src/log.js'
import {MIGRATIONS, migrate} from '../../src/pg/migrations.js'
import {openDatabase} from '../../src/pg/pool.js'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {createTestTopic, databaseUrl, endPool, kcatConsume, runCli, settings, uniqueName} from '../helpers.js'
import {produce, startStream, streamFixture, type ProducedMessage, type StreamFixture} from './stream-support.js'

/**
 * A database of this test's own (not migrated), a pool on it as the administrator, and a login
 * role that may not create anything (NOCREATEDB; PUBLIC has no CREATE on a new database, nor on
 * its public schema in PostgreSQL 15). Dropped, with the role, when the test finishes.
 */
async function isolated(prefix: string) {
  const database = `${prefix}_${randomUUID().slice(0, 8)}`
  const role = uniqueName(`${prefix}_role`).replace(/-/g, '_')
  const server = new pg.Client({connectionString: databaseUrl('postgres')})
  await server.connect()
  await server.query(`CREATE DATABASE "${database}"`)
  await server.query(`CREATE ROLE "${role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS`)
  const admin = new pg.Pool({connectionString: databaseUrl(database), max: 2})
  onTestFinished(async () => {
    await endPool(admin).catch(() => {})
    await server.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role])
    await server.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`)
    // the role may still hold privileges in the server's other databases: none are granted there, but DROP OWNED makes sure
    const shared = new pg.Client({connectionString: settings().databaseUrl})
    await shared.connect()
    await shared.query(`DROP OWNED BY "${role}"`)
    await shared.end()
    await server.query(`DROP ROLE "${role}"`)
    await server.end()
  })
  return {database, role, admin, url: databaseUrl(database, role)}
}

/** README's grants for `role`: cutover's schema (migrated), and the two sink tables of `schema`. */
async function grantRuntime(admin: pg.Pool, role: string, schema: string): Promise<void> {
  for (const sql of [
    `GRANT USAGE ON SCHEMA cutover TO "${role}"`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA cutover TO "${role}"`,
    `GRANT USAGE ON ALL SEQUENCES IN SCHEMA cutover TO "${role}"`,
    `GRANT USAGE ON SCHEMA "${schema}" TO "${role}"`,
    `GRANT SELECT, INSERT, UPDATE ON "${schema}".txn_clean, "${schema}".account_daily_totals TO "${role}"`,
  ]) {
    await admin.query(sql)
  }
}

/** The stream fixture's sink schema and tables, created again in the test's own database. */
async function sinkTables(admin: pg.Pool, f: StreamFixture): Promise<void> {
  await admin.query(`CREATE SCHEMA "${f.schema}"`)
  await createSinkTables(admin, f.schema)
}

const record = (id: string, amount: string): ProducedMessage => ({
  key: id,
  value: Buffer.from(JSON.stringify({id, acct: `A${id.slice(-1)}`, amt: amount, ts: '2026-11-20T10:00:00+03:00', merchant: 'M'})),
})

/** 20 records LP-01..LP-20 and one with an amount that is not one (UNPARSEABLE_AMOUNT: a dead letter through the outbox). */
async function produceRecords(f: StreamFixture): Promise<string[]> {
  const ids = Array.from({length: 20}, (_, k) => `LP-${String(k + 1).padStart(2, '0')}`)
  await produce(f.topic, [...ids.map((id, k) => record(id, `${k + 1}.50`)), record('LP-BAD', 'twelve')])
  return ids
}

/** `stream run --until-idle --json` as the role: exit code, --json result or error, stderr. */
async function runAs(f: StreamFixture, url: string) {
  const r = await startStream(f, ['--until-idle', '--idle-ms', '1500', '--json'], {DATABASE_URL: url}).exited
  return {...r, json: JSON.parse(r.stdout || 'null') as (StreamRunResult & {error?: undefined}) | {error: {code: string; message: string; hint: string; role?: string}}}
}

async function expectAllWritten(f: StreamFixture, admin: pg.Pool, r: Awaited<ReturnType<typeof runAs>>, ids: string[]): Promise<void> {
  expect(r.code, r.stderr).toBe(0)
  expect(r.json).toMatchObject({read: 21, written: 20, duplicates: 0, dead_lettered: {UNPARSEABLE_AMOUNT: 1}})
  const rows = await admin.query<{txn_id: string}>(`SELECT txn_id FROM "${f.schema}".txn_clean ORDER BY txn_id`)
  expect(rows.rows.map((x) => x.txn_id)).toEqual(ids)
  const offsets = await admin.query<{n: string}>('SELECT sum(next_offset)::text AS n FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])
  expect(offsets.rows[0]).toEqual({n: '21'})
  // the dead letter went through the outbox (its bigserial: USAGE on the sequence) to the DLQ topic
  expect(kcatConsume(f.dlqTopic).map((l) => [l.key, l.headers['cutover.error.code']])).toEqual([['LP-BAD', 'UNPARSEABLE_AMOUNT']])
}

describe('a least-privilege role (no CREATE on the database or on schema cutover)', () => {
  it('runs stream run once an administrator has migrated: rows, dead letters and offsets written', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'lp-run'})
    const db = await isolated('lp_run')
    // the administrator: migrations (on first use, as any cutover command does), then the sinks and the grants
    await (await openDatabase(databaseUrl(db.database))).end()
    await sinkTables(db.admin, f)
    await grantRuntime(db.admin, db.role, f.schema)
    const privileges = await db.admin.query<{db: boolean; schema: boolean}>(
      `SELECT has_database_privilege($1, current_database(), 'CREATE') AS db, has_schema_privilege($1, 'cutover', 'CREATE') AS schema`,
      [db.role],
    )
    expect(privileges.rows[0]).toEqual({db: false, schema: false})
    const ids = await produceRecords(f)

    const r = await runAs(f, db.url)
    await expectAllWritten(f, db.admin, r, ids)
    // the schema was only read: the history is the administrator's
    const history = await db.admin.query<{n: number}>('SELECT count(*)::int AS n FROM cutover.schema_migrations')
    expect(history.rows[0]).toEqual({n: MIGRATIONS.length})
  })

  it('exits 2 naming what is missing and the fix when the schema is missing or behind; nothing consumed; runs once migrated', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'lp-behind'})
    const db = await isolated('lp_behind')
    await sinkTables(db.admin, f)
    await db.admin.query(`GRANT USAGE ON SCHEMA "${f.schema}" TO "${db.role}"`)
    await db.admin.query(`GRANT SELECT, INSERT, UPDATE ON "${f.schema}".txn_clean, "${f.schema}".account_daily_totals TO "${db.role}"`)
    const ids = await produceRecords(f)
    const grants = `GRANT USAGE ON SCHEMA cutover TO "${db.role}"; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA cutover TO "${db.role}"; GRANT USAGE ON ALL SEQUENCES IN SCHEMA cutover TO "${db.role}";`
    const where = `the database 127.0.0.1:5432/${db.database}`
    const latest = MIGRATIONS.at(-1)!.version

    // missing: the role may not create it
    const missing = await runAs(f, db.url)
    expect(missing.code, missing.stderr).toBe(2)
    expect(missing.json.error).toMatchObject({
      code: 'PREREQUISITE_MISSING',
      message: `cutover's schema does not exist in ${where}, and the role ${db.role} may not create it: permission denied for database ${db.database}`,
      hint: `migrate as a role with CREATE on the database (its owner postgres, or a superuser): run cutover db migrate with DATABASE_URL naming that role (cutover db migrate --dry-run shows the SQL it would run, for review); then grant ${db.role} what it needs, as that role: ${grants}`,
    })
    expect((await db.admin.query(`SELECT to_regnamespace('cutover') AS s`)).rows[0]).toEqual({s: null})

    // behind: migrated by an earlier cutover (up to 7); not yet granted, the role cannot even tell
    await migrate(db.admin, silentLogger, MIGRATIONS.filter((m) => m.version <= 7))
    const ungranted = await runAs(f, db.url)
    expect(ungranted.code, ungranted.stderr).toBe(2)
    expect(ungranted.json.error).toMatchObject({
      code: 'PREREQUISITE_MISSING',
      message: `the role ${db.role} may not read cutover's schema in ${where} (no USAGE on schema cutover), so it cannot tell whether the schema is migrated`,
      hint: `as the schema's owner (postgres): run cutover db migrate with DATABASE_URL naming that role (it applies this cutover's migrations, if any are missing; --dry-run shows their SQL first), then ${grants}`,
    })
    // granted as README says
    await grantRuntime(db.admin, db.role, f.schema)
    const behind = await runAs(f, db.url)
    expect(behind.code, behind.stderr).toBe(2)
    const lacking = MIGRATIONS.filter((m) => m.version > 7)
    expect(behind.json.error).toMatchObject({
      code: 'PREREQUISITE_MISSING',
      message: `cutover's schema in ${where} lacks migrations ${lacking.map((m) => `${m.version} ${m.name}`).join(', ')} of this cutover (version ${latest}), and the role ${db.role} may not apply the missing migrations: must be owner of table replays`,
      hint: `migrate as the owner of schema cutover and its tables (postgres, or a superuser): run cutover db migrate with DATABASE_URL naming that role (cutover db migrate --dry-run shows the SQL it would run, for review); then grant ${db.role} what it needs, as that role: ${grants}`,
      role: db.role,
      schema_version: 7,
      required_version: latest,
    })
    // nothing applied, nothing consumed
    const history = await db.admin.query<{v: number}>('SELECT max(version) AS v FROM cutover.schema_migrations')
    expect(history.rows[0]).toEqual({v: 7})
    const offsets = await db.admin.query<{n: number}>('SELECT count(*)::int AS n FROM cutover.stream_offsets')
    expect(offsets.rows[0]).toEqual({n: 0})
    expect((await db.admin.query(`SELECT count(*)::int AS n FROM "${f.schema}".txn_clean`)).rows[0]).toEqual({n: 0})

    // the fix: the owner migrates (any command's start, here openDatabase); the role then runs
    await (await openDatabase(databaseUrl(db.database))).end()
    await expectAllWritten(f, db.admin, await runAs(f, db.url), ids)
  })

  it('runs parity check (ledger), parity report and backfill (checkpoint) once an administrator has migrated', async () => {
    const db = await isolated('lp_cmds')
    await (await openDatabase(databaseUrl(db.database))).end()
    for (const sql of [
      `GRANT USAGE ON SCHEMA cutover TO "${db.role}"`,
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA cutover TO "${db.role}"`,
      `GRANT USAGE ON ALL SEQUENCES IN SCHEMA cutover TO "${db.role}"`,
    ]) {
      await db.admin.query(sql)
    }
    const dir = mkdtempSync(join(tmpdir(), 'cutover-lp-'))
    writeFileSync(join(dir, 'legacy.csv'), 'id,amount,business_date\nT1,1.00,2026-11-20\nT2,2.00,2026-11-20\n')
    writeFileSync(join(dir, 'stream.csv'), 'id,amount,business_date\nT1,1.00,2026-11-20\nT2,2.00,2026-11-20\n')
    const env = {DATABASE_URL: db.url}

    const check = await runCli(['parity', 'check', '--left', 'csv:legacy.csv', '--right', 'csv:stream.csv', '--key', 'id', '--type', 'amount=decimal', '--date', '2026-11-20', '--date-column', 'business_date', '--json'], {cwd: dir, env})
    expect(check.code, check.stderr).toBe(0)
    expect(check.json).toMatchObject({matched: 2, unexplained: 0})
    const runs = await db.admin.query<{run_by: string; matched: string}>('SELECT run_by, matched::text FROM cutover.parity_runs')
    expect(runs.rows).toEqual([{run_by: expect.any(String), matched: '2'}])

    const report = await runCli(['parity', 'report', '--days', '1', '--until', '2026-11-20', '--json'], {cwd: dir, env})
    expect(report.code, report.stderr).toBe(0)
    expect(report.json.per_day).toEqual([expect.objectContaining({date: '2026-11-20', runs: 1})])

    const topic = await createTestTopic({prefix: 'lp-backfill'})
    const backfill = await runCli(['backfill', '--from', 'csv:legacy.csv', '--to', topic, '--key', 'id', '--id', `lp-${db.role}`, '--json'], {cwd: dir, env})
    expect(backfill.code, backfill.stderr).toBe(0)
    expect(kcatConsume(topic).map((r) => r.key)).toEqual(['T1', 'T2'])
    const checkpoint = await db.admin.query<{status: string}>('SELECT status FROM cutover.backfills WHERE id = $1', [`lp-${db.role}`])
    expect(checkpoint.rows).toEqual([{status: 'completed'}])
  })

  it('exits 2 when the database does not exist and the role may not create it', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'lp-nodb'})
    const db = await isolated('lp_nodb')
    const absent = `${db.database}_absent`
    const r = await runAs(f, databaseUrl(absent, db.role))
    expect(r.code, r.stderr).toBe(2)
    expect(r.json.error).toMatchObject({
      code: 'USAGE',
      message: `the database ${absent} does not exist at 127.0.0.1:5432/${absent}, and the role ${db.role} could not create it: permission denied to create database`,
    })
    expect(r.json.error!.hint).toMatch(/^create it as an administrator \(CREATE DATABASE "lp_nodb_\w+_absent"; then run cutover db migrate/)
    const server = new pg.Client({connectionString: databaseUrl('postgres')})
    await server.connect()
    expect((await server.query('SELECT count(*)::int AS n FROM pg_database WHERE datname = $1', [absent])).rows[0]).toEqual({n: 0})
    await server.end()
  })

  it('exits 2 naming the grants when the role may not read a sink table (not "a relation without columns"); runs once granted', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'lp-sinkgrant'})
    const db = await isolated('lp_sinkgrant')
    await (await openDatabase(databaseUrl(db.database))).end()
    await sinkTables(db.admin, f)
    for (const sql of [
      `GRANT USAGE ON SCHEMA cutover TO "${db.role}"`,
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA cutover TO "${db.role}"`,
      `GRANT USAGE ON ALL SEQUENCES IN SCHEMA cutover TO "${db.role}"`,
    ]) {
      await db.admin.query(sql)
    }
    const ids = await produceRecords(f)
    const table = `${f.schema}.txn_clean`

    // neither USAGE on the sink's schema nor a privilege on its table
    const none = await runAs(f, db.url)
    expect(none.code, none.stderr).toBe(2)
    expect(none.json.error).toMatchObject({
      message: expect.stringContaining(`the role ${db.role} may not read sink table ${table} (it has no USAGE on schema ${f.schema} nor SELECT on table ${table})`) as unknown,
      hint: `GRANT USAGE ON SCHEMA "${f.schema}" TO "${db.role}"; GRANT SELECT, INSERT, UPDATE ON "${f.schema}"."txn_clean" TO "${db.role}"; (run by the table's owner)`,
    })
    // USAGE on the schema only
    await db.admin.query(`GRANT USAGE ON SCHEMA "${f.schema}" TO "${db.role}"`)
    const usage = await runAs(f, db.url)
    expect(usage.code, usage.stderr).toBe(2)
    expect(usage.json.error).toMatchObject({
      message: expect.stringContaining(`may not read sink table ${table} (it has no SELECT on table ${table})`) as unknown,
      hint: `GRANT SELECT, INSERT, UPDATE ON "${f.schema}"."txn_clean" TO "${db.role}"; (run by the table's owner)`,
    })
    const consumed = await db.admin.query<{n: number}>('SELECT count(*)::int AS n FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])
    expect(consumed.rows[0]).toEqual({n: 0})

    // the grants the hints gave (for both sinks): the run writes everything
    await db.admin.query(`GRANT SELECT, INSERT, UPDATE ON "${f.schema}".txn_clean, "${f.schema}".account_daily_totals TO "${db.role}"`)
    await expectAllWritten(f, db.admin, await runAs(f, db.url), ids)
  })
})

