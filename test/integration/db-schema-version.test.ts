/**
 * cutover's own database and schema on first use, against the real PostgreSQL, each test on a
 * database of its own (dropped when it finishes): three `db migrate` started at once on a database
 * that does not exist all succeed (one creates it, the others find it created meanwhile, whichever
 * SQLSTATE the race gives them), and a schema a newer cutover migrated past this one's migrations
 * is refused (exit 2, both versions, the fix) by db migrate, its dry run and the commands that
 * open it, migrating (parity check) or not (parity report, dlq republish), which write nothing.
 */
import {randomUUID} from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import pg from 'pg'
import {describe, expect, it, onTestFinished} from 'vitest'
import type {DbMigrateResult} from '../../src/commands/db/migrate.js'
import {MIGRATIONS} from '../../src/pg/migrations.js'
import {ensureDatabase} from '../../src/pg/pool.js'
import {databaseUrl, runCli} from '../helpers.js'

const LATEST = MIGRATIONS.at(-1)!.version

async function onUrl<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({connectionString: url})
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
    await onUrl(databaseUrl('postgres'), `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`)
  })
  return database
}

const dbMigrate = (database: string, args: string[]) => runCli(['db', 'migrate', ...args], {env: {DATABASE_URL: databaseUrl(database)}})

describe('cutover db migrate on first use', () => {
  it('three started at once on a database that does not exist: all exit 0, the migrations applied once', async () => {
    const database = databaseName('dbrace')
    const runs = await Promise.all([1, 2, 3].map(() => dbMigrate(database, ['--json'])))
    for (const r of runs) expect(r.code, r.stdout + r.stderr).toBe(0)
    const results = runs.map((r) => r.json as DbMigrateResult)
    expect(results.every((r) => r.schema_version === LATEST)).toBe(true)
    // each migration applied by exactly one of them
    expect(results.flatMap((r) => r.applied.map((m) => m.version)).sort((a, b) => a - b)).toEqual(MIGRATIONS.map((m) => m.version))
    expect(await onUrl(databaseUrl(database), 'SELECT version FROM cutover.schema_migrations ORDER BY version')).toEqual(MIGRATIONS.map((m) => ({version: m.version})))
  })

  it('ensureDatabase eight times at once in one process (the race made likely: all reach CREATE DATABASE together): none fails, the database exists', async () => {
    const database = databaseName('dbrace_in')
    const outcomes = await Promise.allSettled(Array.from({length: 8}, () => ensureDatabase(databaseUrl(database))))
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([])
    expect(await onUrl(databaseUrl('postgres'), 'SELECT count(*)::int AS n FROM pg_database WHERE datname = $1', [database])).toEqual([{n: 1}])
  })
})

describe('a schema migrated by a newer cutover', () => {
  it('is refused with exit 2 naming both versions and the fix, by db migrate (and --dry-run) and by a command that writes to it, which writes nothing', async () => {
    const database = databaseName('dbnewer')
    const first = await dbMigrate(database, ['--json'])
    expect(first.code, first.stderr).toBe(0)
    // what a newer cutover's db migrate leaves behind
    const newer = LATEST + 1
    await onUrl(databaseUrl(database), `INSERT INTO cutover.schema_migrations (version, name) VALUES ($1, 'from_a_newer_cutover')`, [newer])

    const refused = {
      code: 'PREREQUISITE_MISSING',
      message: `cutover's schema in the database 127.0.0.1:5432/${database} is at version ${newer}, newer than this cutover knows (version ${LATEST}): a newer cutover applied migration ${newer} from_a_newer_cutover, and this one could misread or miswrite the tables it changed`,
      hint: `run a cutover that knows schema version ${newer}: upgrade this one to the release that migrated it (or a later one); never downgrade the schema (do not delete rows of cutover.schema_migrations or undo its migrations)`,
      schema_version: newer,
      required_version: LATEST,
    }
    const again = await dbMigrate(database, ['--json'])
    expect(again.code, again.stdout).toBe(2)
    expect(again.json.error).toMatchObject(refused)
    const human = await dbMigrate(database, [])
    expect(human.code).toBe(2)
    expect(human.stdout).toBe('')
    expect(human.stderr).toContain(`is at version ${newer}, newer than this cutover knows (version ${LATEST})`)
    expect(human.stderr).toContain('never downgrade the schema')
    const dry = await dbMigrate(database, ['--dry-run', '--json'])
    expect(dry.code, dry.stdout).toBe(2)
    expect(dry.json.error).toMatchObject(refused)

    // parity check records its run in the ledger (cutover.parity_runs): refused before it writes
    const dir = mkdtempSync(join(tmpdir(), 'cutover-newer-'))
    onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
    writeFileSync(join(dir, 'l.csv'), 'id,amount\n1,10.00\n')
    writeFileSync(join(dir, 'r.csv'), 'id,amount\n1,10.00\n')
    const check = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--json'], {cwd: dir, env: {DATABASE_URL: databaseUrl(database)}})
    expect(check.code, check.stdout).toBe(2)
    expect(check.json.error).toMatchObject(refused)
    // parity report opens without migrating first: refused as well
    const report = await runCli(['parity', 'report', '--json'], {env: {DATABASE_URL: databaseUrl(database)}})
    expect(report.code, report.stdout).toBe(2)
    expect(report.json.error).toMatchObject(refused)
    // dlq republish opens without migrating (nor creating): refused as well
    const republish = await runCli(['dlq', 'republish', '--spec', 'fixtures/specs/card-transactions.yaml', '--dry-run', '--json'], {env: {DATABASE_URL: databaseUrl(database)}})
    expect(republish.code, republish.stdout).toBe(2)
    expect(republish.json.error).toMatchObject(refused)

    expect(await onUrl(databaseUrl(database), 'SELECT count(*)::int AS n FROM cutover.parity_runs')).toEqual([{n: 0}])
    expect(await onUrl(databaseUrl(database), 'SELECT max(version) AS v FROM cutover.schema_migrations')).toEqual([{v: newer}])
  })
})
