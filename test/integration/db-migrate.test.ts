/**
 * `cutover db migrate [--dry-run]` against the real PostgreSQL, each test on a database of its own
 * (dropped when it finishes): --dry-run lists every pending migration with its SQL and changes
 * nothing (neither the database nor schema cutover is created); db migrate applies them (rows in
 * cutover.schema_migrations), then has nothing to apply; a schema behind gets only what it lacks;
 * and a least-privilege role may dry-run, may not migrate, and is told to run `cutover db migrate`
 * as the role that may, after which it runs.
 */
import {randomUUID} from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import pg from 'pg'
import {describe, expect, it, onTestFinished} from 'vitest'
import type {DbMigrateDryRunResult, DbMigrateResult} from '../../src/commands/db/migrate.js'
import {silentLogger} from '../../src/log.js'
import {MIGRATIONS, migrate} from '../../src/pg/migrations.js'
import {databaseUrl, runCli, uniqueName} from '../helpers.js'

const LATEST = MIGRATIONS.at(-1)!.version
const ALL = MIGRATIONS.map((m) => ({version: m.version, name: m.name}))

/** A query on the server's maintenance database. */
async function onServer<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({connectionString: databaseUrl('postgres')})
  await c.connect()
  try {
    return (await c.query<T>(sql, params)).rows
  } finally {
    await c.end()
  }
}

/** A database name of this test's own, not created; dropped (if anything created it) when the test finishes. */
function databaseName(prefix: string): string {
  const database = `${prefix}_${randomUUID().replace(/-/g, '').slice(0, 10)}`
  onTestFinished(async () => {
    await onServer(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`)
  })
  return database
}

async function exists(database: string): Promise<boolean> {
  return (await onServer<{n: number}>('SELECT count(*)::int AS n FROM pg_database WHERE datname = $1', [database]))[0]!.n === 1
}

/** A query on `database` as the administrator. */
async function onDatabase<T extends pg.QueryResultRow>(database: string, sql: string): Promise<T[]> {
  const c = new pg.Client({connectionString: databaseUrl(database)})
  await c.connect()
  try {
    return (await c.query<T>(sql)).rows
  } finally {
    await c.end()
  }
}

const hasSchema = async (database: string) => (await onDatabase<{n: number}>(database, `SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'cutover'`))[0]!.n === 1
const history = (database: string) => onDatabase<{version: number; name: string}>(database, 'SELECT version, name FROM cutover.schema_migrations ORDER BY version')

const dbMigrate = (database: string, args: string[], user?: string) => runCli(['db', 'migrate', ...args], {env: {DATABASE_URL: databaseUrl(database, user)}})

describe('cutover db migrate', () => {
  it('--dry-run on a database that does not exist: every migration with its SQL, nothing created; then db migrate creates and migrates it, and again applies nothing', async () => {
    const database = databaseName('dbmig_new')

    const dry = await dbMigrate(database, ['--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    const plan = dry.json as DbMigrateDryRunResult
    expect(plan).toEqual({
      database: `127.0.0.1:5432/${database}`,
      database_exists: false,
      role: 'postgres',
      pending: MIGRATIONS.map((m) => ({version: m.version, name: m.name, sql: m.sql})),
      setup_sql: [expect.stringMatching(/^CREATE SCHEMA cutover$/), expect.stringMatching(/^CREATE TABLE cutover\.schema_migrations \(/)],
      schema_version: 0,
      required_version: LATEST,
    })
    const human = await dbMigrate(database, ['--dry-run'])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toContain('-- the database does not exist: cutover db migrate creates it')
    expect(await exists(database)).toBe(false)

    const r = await dbMigrate(database, ['--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json as DbMigrateResult).toEqual({database: `127.0.0.1:5432/${database}`, role: 'postgres', applied: ALL, schema_version: LATEST, required_version: LATEST})
    expect(await history(database)).toEqual(ALL)
    // the tables of the migrations are there (the last one's: replays.deleted of migration 8)
    expect(await onDatabase(database, `SELECT column_name FROM information_schema.columns WHERE table_schema = 'cutover' AND table_name = 'replays' AND column_name = 'deleted'`)).toEqual([{column_name: 'deleted'}])

    const again = await dbMigrate(database, ['--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json).toMatchObject({applied: [], schema_version: LATEST, required_version: LATEST})
    const said = await dbMigrate(database, [])
    expect(said.code, said.stderr).toBe(0)
    expect(said.stdout).toBe(`127.0.0.1:5432/${database} as postgres: nothing pending: cutover's schema is at version ${LATEST}, as this cutover requires\n`)
    const dryAgain = await dbMigrate(database, ['--dry-run', '--json'])
    expect(dryAgain.code, dryAgain.stderr).toBe(0)
    expect(dryAgain.json).toMatchObject({database_exists: true, pending: [], setup_sql: [], schema_version: LATEST, required_version: LATEST})
    expect(await history(database)).toEqual(ALL)
  })

  it('--dry-run on an empty database lists every migration and prints its SQL under its header, creating nothing; db migrate then applies all of them', async () => {
    const database = databaseName('dbmig_empty')
    await onServer(`CREATE DATABASE "${database}"`)

    const dry = await dbMigrate(database, ['--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.json).toMatchObject({database_exists: true, role: 'postgres', schema_version: 0, required_version: LATEST})
    expect((dry.json as DbMigrateDryRunResult).pending).toEqual(MIGRATIONS.map((m) => ({version: m.version, name: m.name, sql: m.sql})))
    expect(await hasSchema(database)).toBe(false)

    const human = await dbMigrate(database, ['--dry-run'])
    expect(human.code, human.stderr).toBe(0)
    const out = human.stdout
    expect(out.split('\n').slice(0, 3)).toEqual([
      `-- cutover db migrate --dry-run: 127.0.0.1:5432/${database} as postgres`,
      `-- cutover's schema is at version 0; this cutover requires ${LATEST}: ${MIGRATIONS.length} migrations pending`,
      '-- cutover db migrate runs what follows in one transaction, under an advisory lock, and records each migration in cutover.schema_migrations',
    ])
    // the schema and history first, then each migration in order under its header, with its statements
    const headers = ["-- cutover's schema and its migration history", ...MIGRATIONS.map((m) => `-- migration ${m.version} ${m.name}`)]
    const at = headers.map((h) => out.indexOf(`\n${h}\n`))
    expect(at.every((i) => i > 0)).toBe(true)
    expect([...at].sort((a, b) => a - b)).toEqual(at)
    expect(out.slice(at[0]!, at[1]!)).toContain('\nCREATE SCHEMA cutover;\nCREATE TABLE cutover.schema_migrations (\n')
    const section = (version: number) => out.slice(at[MIGRATIONS.findIndex((m) => m.version === version) + 1]!, at[MIGRATIONS.findIndex((m) => m.version === version) + 2] ?? out.length)
    expect(section(2)).toContain('\nCREATE TABLE cutover.stream_offsets (\n  pipeline    text    NOT NULL,\n')
    expect(section(2)).toContain('\nCREATE INDEX outbox_unsent ON cutover.outbox (pipeline, id) WHERE sent_at IS NULL;\n')
    expect(section(8)).toContain('\nALTER TABLE cutover.replays ADD COLUMN deleted bigint NOT NULL DEFAULT 0;\n')
    expect(await hasSchema(database)).toBe(false)

    const r = await dbMigrate(database, [])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.split('\n')[0]).toBe(`127.0.0.1:5432/${database} as postgres: applied ${MIGRATIONS.length} migrations`)
    expect(r.stdout).toContain(`\n    8  replays_deleted\n`)
    expect(r.stdout).toContain(`cutover's schema is at version ${LATEST} (this cutover requires ${LATEST})\n`)
    expect(await history(database)).toEqual(ALL)
  })

  it('a schema behind: --dry-run shows only the migrations it lacks; db migrate applies just those', async () => {
    const database = databaseName('dbmig_behind')
    await onServer(`CREATE DATABASE "${database}"`)
    const admin = new pg.Pool({connectionString: databaseUrl(database), max: 1})
    await migrate(admin, silentLogger, MIGRATIONS.filter((m) => m.version <= 7))
    await admin.end()
    const lacking = MIGRATIONS.filter((m) => m.version > 7)

    const dry = await dbMigrate(database, ['--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.json).toEqual(
      expect.objectContaining({pending: lacking.map((m) => ({version: m.version, name: m.name, sql: m.sql})), setup_sql: [], schema_version: 7, required_version: LATEST}),
    )
    const human = await dbMigrate(database, ['--dry-run'])
    expect(human.stdout).toContain(`-- cutover's schema is at version 7; this cutover requires ${LATEST}: ${lacking.length} migrations pending\n`)
    expect(human.stdout).not.toContain('-- migration 7 ')
    expect(human.stdout).not.toContain('CREATE SCHEMA')
    expect(human.stdout).toContain(`\n-- migration 8 replays_deleted\nALTER TABLE cutover.replays ADD COLUMN deleted bigint NOT NULL DEFAULT 0;\n`)
    expect((await history(database)).map((h) => h.version)).toEqual([1, 2, 3, 4, 5, 6, 7])

    const r = await dbMigrate(database, ['--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({applied: lacking.map((m) => ({version: m.version, name: m.name})), schema_version: LATEST})
    expect(await history(database)).toEqual(ALL)
  })

  it('a least-privilege role: may dry-run, may not migrate; the hint names cutover db migrate, and once the owner ran it, the role runs', async () => {
    const database = databaseName('dbmig_lp')
    await onServer(`CREATE DATABASE "${database}"`)
    const role = uniqueName('dbmig_role').replace(/-/g, '_')
    await onServer(`CREATE ROLE "${role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS`)
    onTestFinished(async () => {
      await onServer('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role])
      await onServer(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`)
      await onServer(`DROP OWNED BY "${role}"`)
      await onServer(`DROP ROLE "${role}"`)
    })
    const dir = mkdtempSync(join(tmpdir(), 'cutover-dbmig-'))
    onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
    writeFileSync(join(dir, 'legacy.csv'), 'id,amount\nT1,1.00\n')
    const check = () =>
      runCli(['parity', 'check', '--left', 'csv:legacy.csv', '--right', 'csv:legacy.csv', '--key', 'id', '--type', 'amount=decimal', '--json'], {
        cwd: dir,
        env: {DATABASE_URL: databaseUrl(database, role)},
      })

    // the role may read what is pending (nothing to read yet: no schema), and changes nothing
    const dry = await dbMigrate(database, ['--dry-run', '--json'], role)
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.json).toMatchObject({database_exists: true, role, schema_version: 0, required_version: LATEST})
    expect((dry.json as DbMigrateDryRunResult).pending.map((m) => m.version)).toEqual(MIGRATIONS.map((m) => m.version))

    // any command as the role, db migrate too: exit 2, naming cutover db migrate as the fix
    for (const r of [await check(), await dbMigrate(database, ['--json'], role)]) {
      expect(r.code, r.stderr).toBe(2)
      expect(r.json.error).toMatchObject({code: 'PREREQUISITE_MISSING', role, required_version: LATEST})
      expect(r.json.error.hint).toMatch(
        /^migrate as a role with CREATE on the database \(its owner postgres, or a superuser\): run cutover db migrate with DATABASE_URL naming that role \(cutover db migrate --dry-run shows the SQL it would run, for review\); then grant /,
      )
    }
    expect(await hasSchema(database)).toBe(false)

    // the owner migrates with db migrate and grants as the hint says; the role's dry-run then reads the schema: nothing pending
    const owner = await dbMigrate(database, ['--json'])
    expect(owner.code, owner.stderr).toBe(0)
    expect(owner.json).toMatchObject({role: 'postgres', applied: ALL})
    for (const sql of [
      `GRANT USAGE ON SCHEMA cutover TO "${role}"`,
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA cutover TO "${role}"`,
      `GRANT USAGE ON ALL SEQUENCES IN SCHEMA cutover TO "${role}"`,
    ]) {
      await onDatabase(database, sql)
    }
    const current = await dbMigrate(database, ['--dry-run', '--json'], role)
    expect(current.code, current.stderr).toBe(0)
    expect(current.json).toMatchObject({role, pending: [], schema_version: LATEST})
    const ran = await check()
    expect(ran.code, ran.stderr).toBe(0)
    expect(ran.json).toMatchObject({matched: 1})
    expect(await onDatabase(database, 'SELECT matched::int FROM cutover.parity_runs')).toEqual([{matched: 1}])
  })
})
