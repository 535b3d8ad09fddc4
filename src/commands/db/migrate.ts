import {Flags} from '@oclif/core'
import {CutoverCommand} from '../../cli/base.js'
import {connectionSettingsFromEnv, describeDatabaseUrl} from '../../config/env.js'
import {isCutoverError} from '../../errors.js'
import {MIGRATIONS, migrate, pendingMigrations, type MigrationStatus} from '../../pg/migrations.js'
import {mapPgError, openDatabase, type Pool} from '../../pg/pool.js'

/** `cutover db migrate --json`: what it applied, and where the schema stands now. */
export interface DbMigrateResult {
  /** host:port/database of DATABASE_URL (never its password) */
  database: string
  /** the role that migrated (current_user) */
  role: string
  /** the migrations applied by this run, in order ([] when none was pending) */
  applied: {version: number; name: string}[]
  /** the highest migration applied to the database now */
  schema_version: number
  /** the highest migration of this cutover */
  required_version: number
}

/** `cutover db migrate --dry-run --json`: what `db migrate` would apply, with its SQL; nothing is changed. */
export interface DbMigrateDryRunResult {
  database: string
  /** false: the database does not exist yet (db migrate creates it, as a role that may); everything is pending */
  database_exists: boolean
  /** current_user, or the user of DATABASE_URL when there is no database to connect to (null when it names none) */
  role: string | null
  /** the migrations db migrate would apply, in order, each with the SQL it runs */
  pending: {version: number; name: string; sql: string}[]
  /** the statements run before them when cutover's schema or its history table does not exist yet */
  setup_sql: string[]
  schema_version: number
  required_version: number
}

/** A statement as written for review: its common indentation and surrounding blank lines removed, ended by ";". */
function forReview(sql: string): string {
  const lines = sql.replace(/^\s*\n/, '').trimEnd().split('\n')
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => l.length - l.trimStart().length))
  const text = lines.map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length))).join('\n')
  return text.endsWith(';') ? text : `${text};`
}

function versionLine(status: MigrationStatus): string {
  return status.pending.length === 0
    ? `nothing pending: cutover's schema is at version ${status.schemaVersion}${status.schemaVersion === status.requiredVersion ? ', as this cutover requires' : ` (this cutover requires ${status.requiredVersion})`}`
    : `cutover's schema is at version ${status.schemaVersion}; this cutover requires ${status.requiredVersion}: ${status.pending.length} ${status.pending.length === 1 ? 'migration' : 'migrations'} pending`
}

export default class DbMigrate extends CutoverCommand {
  static override summary = "Apply the pending migrations of cutover's own schema (cutover), or with --dry-run print their SQL for review."
  static override description =
    "Run it as the role that owns schema cutover (or, on a database without it, a role with CREATE on the database), with DATABASE_URL naming that role; it creates the database when it is missing, as any command does. A service role with only the grants of README's \"A least-privilege role\" then runs every other command: they only read the schema's version at start, and exit 2 naming this command when it is behind. The migrations run in one transaction, under an advisory lock, each recorded in cutover.schema_migrations; nothing pending is exit 0 with nothing applied. A schema migrated by a newer cutover (above this one's version) is exit 2, as with every command: upgrade cutover, never downgrade the schema.\n\n--dry-run changes nothing, and creates neither the database nor the schema: it needs only to read cutover.schema_migrations (USAGE on the schema, SELECT on that table). It prints the pending migrations' SQL, in order, each under a comment naming its version and name (saved to a file, it is SQL: all else is in SQL comments), and the statements that create the schema and its history table where they are missing. A database that does not exist yet is reported, with every migration pending. Exit 0 whether or not migrations are pending: the list is the result (--json: pending, schema_version, required_version)."
  static override examples = [
    'DATABASE_URL=postgres://cutover_owner@db:5432/cutover <%= config.bin %> db migrate --dry-run > review.sql',
    'DATABASE_URL=postgres://cutover_owner@db:5432/cutover <%= config.bin %> db migrate',
    '<%= config.bin %> db migrate --json',
  ]
  static override flags = {
    'dry-run': Flags.boolean({description: 'apply nothing: print the pending migrations and their SQL (read access suffices; the database is not created)'}),
  }

  async run(): Promise<DbMigrateResult | DbMigrateDryRunResult> {
    const {flags} = await this.parse(DbMigrate)
    const url = connectionSettingsFromEnv().databaseUrl
    const database = describeDatabaseUrl(url)
    return flags['dry-run'] ? this.dryRun(url, database) : this.apply(url, database)
  }

  private async apply(url: string, database: string): Promise<DbMigrateResult> {
    // creates the database when it is missing (exit 2 when the role may not), migrates below
    const pool = await openDatabase(url, {logger: this.logger, max: 1, applicationName: 'cutover-db-migrate', migrate: false})
    let versions: number[]
    let status: MigrationStatus
    try {
      versions = await migrate(pool, this.logger)
      status = await pendingMigrations(pool)
    } catch (e) {
      throw mapPgError(e, url)
    } finally {
      await pool.end()
    }
    const names = new Map(MIGRATIONS.map((m) => [m.version, m.name]))
    const applied = versions.map((version) => ({version, name: names.get(version)!}))
    if (applied.length === 0) {
      this.log(`${database} as ${status.role}: ${versionLine(status)}`)
    } else {
      this.log(`${database} as ${status.role}: applied ${applied.length} ${applied.length === 1 ? 'migration' : 'migrations'}`)
      for (const m of applied) this.log(`  ${String(m.version).padStart(3)}  ${m.name}`)
      this.log(`cutover's schema is at version ${status.schemaVersion} (this cutover requires ${status.requiredVersion})`)
    }
    return {database, role: status.role!, applied, schema_version: status.schemaVersion, required_version: status.requiredVersion}
  }

  private async dryRun(url: string, database: string): Promise<DbMigrateDryRunResult> {
    // reads only: the database is not created; one that does not exist has everything pending
    let pool: Pool | null
    try {
      pool = await openDatabase(url, {logger: this.logger, max: 1, applicationName: 'cutover-db-migrate', create: false, migrate: false})
    } catch (e) {
      if (!(isCutoverError(e) && e.details.sqlstate === '3D000')) throw e
      pool = null
    }
    let status: MigrationStatus
    try {
      status = await pendingMigrations(pool)
    } catch (e) {
      throw mapPgError(e, url)
    } finally {
      await pool?.end()
    }
    const user = new URL(url).username
    const role = status.role ?? (user ? decodeURIComponent(user) : null)
    if (!this.jsonEnabled()) {
      const out: string[] = [`-- cutover db migrate --dry-run: ${database} as ${role ?? 'the user of DATABASE_URL'}`]
      if (pool === null) out.push(`-- the database does not exist: cutover db migrate creates it (as a role that may create databases), then runs what follows`)
      out.push(`-- ${versionLine(status)}`)
      if (status.pending.length > 0) {
        out.push("-- cutover db migrate runs what follows in one transaction, under an advisory lock, and records each migration in cutover.schema_migrations")
        if (status.setup.length > 0) out.push('', "-- cutover's schema and its migration history", ...status.setup.map(forReview))
        for (const m of status.pending) out.push('', `-- migration ${m.version} ${m.name}`, forReview(m.sql))
      }
      this.log(out.join('\n'))
    }
    return {
      database,
      database_exists: pool !== null,
      role,
      pending: status.pending.map((m) => ({version: m.version, name: m.name, sql: m.sql})),
      setup_sql: status.setup,
      schema_version: status.schemaVersion,
      required_version: status.requiredVersion,
    }
  }
}
