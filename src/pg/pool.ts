/**
 * The one module that owns PostgreSQL connections.
 *
 * `openDatabase(url)` creates the database if it is missing (connecting to the `postgres`
 * maintenance database of the same server), runs `cutover`'s migrations (only reading the schema
 * when it is at this version: migrations.ts; exit 2 when a newer cutover migrated it past the
 * migrations this one knows, with or without migrating), and returns a pool. A role that may do neither
 * where it is needed gets exit 2 with what to run as an administrator.
 * Connection failures become `ServiceUnavailableError` (exit 3) naming the address, never
 * the password; other server errors keep node-postgres' facts (code, detail, constraint).
 * Every connection string handed to node-postgres passes through `pgConnectionString`.
 */
import pg from 'pg'
import {CutoverError, ServiceUnavailableError, TLS_UNTRUSTED_CODES, UsageError} from '../errors.js'
import {describeDatabaseUrl, sslModeAsVerifyFull, type VerifyFullAlias} from '../config/env.js'
import {silentLogger, type Logger} from '../log.js'
import {migrate, refuseNewerSchema} from './migrations.js'
import {quoteIdent} from './ident.js'

// numeric (1700) stays a string: money is exact, never a float. int8 (20) too.
pg.types.setTypeParser(1700, (v) => v)
pg.types.setTypeParser(20, (v) => v)

export type Pool = pg.Pool
export type PoolClient = pg.PoolClient

export interface OpenOptions {
  logger?: Logger
  max?: number
  connectionTimeoutMillis?: number
  /** Create the database when it does not exist (default true). */
  create?: boolean
  /** Run migrations (default true). */
  migrate?: boolean
  applicationName?: string
  /** the variable `url` came from, for errors (default DATABASE_URL; parity check's sides: CUTOVER_LEFT_DATABASE_URL, ...) */
  urlName?: string
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '08000',
  '08003',
  '08006',
  '08001',
  '08004',
  '53300', // too_many_connections (max_connections, or the role's CONNECTION LIMIT): no session to be had
])

/** SQLSTATEs worth retrying: serialization failure, deadlock, and connection loss. */
const RETRIABLE_SQLSTATE = new Set(['40001', '40P01', '55P03'])

export function isConnectionError(e: unknown): boolean {
  const code = (e as {code?: unknown})?.code
  if (typeof code === 'string' && CONNECTION_CODES.has(code)) return true
  const msg = e instanceof Error ? e.message : ''
  return /timeout expired|Connection terminated|connection timeout|Client has encountered a connection error/i.test(msg)
}

/** What cutover does for each sslmode node-postgres 8 reads as verify-full (sslModeAsVerifyFull). */
const SSLMODE_NOTES: Record<VerifyFullAlias, string> = {
  prefer: "sslmode=prefer: TLS is required (no fallback to plaintext) and the server's certificate and host name are verified (as verify-full); uselibpqcompat=true&sslmode=prefer encrypts without verifying",
  require: "sslmode=require: the server's certificate and host name are verified (as verify-full); uselibpqcompat=true&sslmode=require encrypts without verifying, as libpq does",
  'verify-ca': "sslmode=verify-ca: the server's certificate and host name are verified (as verify-full); uselibpqcompat=true&sslmode=verify-ca verifies the certificate without the host name, as libpq does",
}

/**
 * The sslmodes already noted in this process. A process-wide record, not configuration: the note
 * is about the client, the same for every connection, and is said once (as node-postgres said its
 * warning once), however many pools and clients a command opens.
 */
const sslModesNoted = new Set<VerifyFullAlias>()

/**
 * The connection string to hand node-postgres for `url`: `url` itself, or, for sslmode prefer,
 * require or verify-ca without uselibpqcompat=true, the same URL asking for sslmode=verify-full.
 * That is what node-postgres 8 does for them anyway (it verifies the server's certificate and host
 * name), said explicitly, so that it prints no "SECURITY WARNING" of its own on stderr (in the middle
 * of a --json run's output), and so that a node-postgres 9, which reads those modes as libpq does,
 * would verify no less. Instead, the first time in the process a `logger` is given, one
 * `pg.sslmode` warning says what cutover does (the address, never the URL: it may hold a password).
 */
export function pgConnectionString(url: string, logger?: Logger): string {
  const alias = sslModeAsVerifyFull(url)
  if (!alias) return url
  if (logger && logger.level !== 'silent' && !sslModesNoted.has(alias.mode)) {
    sslModesNoted.add(alias.mode)
    logger.warn('pg.sslmode', {sslmode: alias.mode, address: describeDatabaseUrl(url), note: SSLMODE_NOTES[alias.mode]})
  }
  return alias.url
}

function safeUrl(url: string): URL | undefined {
  try {
    return new URL(url)
  } catch {
    return undefined
  }
}

/**
 * The server answers, but not with the TLS the URL asks for: it does not accept TLS at all
 * (sslmode=require or prefer against ssl=off), or its certificate is not trusted. Settings, not an
 * outage: exit 2 with the fix (these were exit 70, "PG_ERROR", without one). sslmode prefer,
 * require and verify-ca are verified as verify-full (pgConnectionString), and node-postgres never
 * falls back to plaintext as libpq's prefer does: the hint says so.
 */
function tlsRefused(e: unknown, url: string, urlName: string | undefined): CutoverError | undefined {
  const err = e as {code?: string; message?: string}
  const name = urlName ?? 'DATABASE_URL'
  const from = urlName !== undefined && urlName !== 'DATABASE_URL' ? ` (${urlName})` : ''
  const address = describeDatabaseUrl(url)
  const mode = safeUrl(url)?.searchParams.get('sslmode') ?? undefined
  const asked = mode ? `sslmode=${mode}` : 'TLS'
  if (/server does not support SSL connections/i.test(err.message ?? '')) {
    return new UsageError(`PostgreSQL at ${address} does not accept TLS connections, and ${name} asks for TLS (${asked})${from}`, {
      cause: e,
      hint: `for this server, set sslmode=disable in ${name} (cutover's PostgreSQL client does not fall back to plaintext as libpq's sslmode=prefer does); or turn ssl on in the server's postgresql.conf`,
      details: {service: 'postgresql', address, ...(mode ? {sslmode: mode} : {})},
    })
  }
  if (TLS_UNTRUSTED_CODES.has(err.code ?? '')) {
    const code = err.code!
    const hint =
      code === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? `the server's certificate does not name the host in ${name} (${address}): use a host name the certificate lists (its subjectAltName)`
        : code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID'
          ? "the server's certificate is outside its validity dates: renew it on the server, or check this machine's clock"
          : `add sslrootcert=<the PEM file of the CA that signed the server's certificate> to ${name} (cutover's PostgreSQL client verifies the certificate for sslmode prefer, require and verify-ca too; uselibpqcompat=true&sslmode=require encrypts without verifying, as libpq's require does)`
    return new UsageError(`PostgreSQL at ${address}: the server's TLS certificate is not trusted (${asked}): ${err.message ?? code} (${code})${from}`, {
      cause: e,
      hint,
      details: {service: 'postgresql', address, tls_error: code, ...(mode ? {sslmode: mode} : {})},
    })
  }
  return undefined
}

/**
 * Wraps a node-postgres error in the project's error type, keeping its facts. `urlName` is the
 * variable `url` came from (DATABASE_URL when not given): the fix names it, and so does the message
 * when it is another (CUTOVER_LEFT_DATABASE_URL, ...).
 */
export function mapPgError(e: unknown, url: string, urlName?: string): CutoverError {
  if (e instanceof CutoverError) return e
  const address = describeDatabaseUrl(url)
  const err = e as {code?: string; detail?: string; constraint?: string; table?: string; message?: string}
  const from = urlName !== undefined && urlName !== 'DATABASE_URL' ? ` (${urlName})` : ''
  const inUrl = urlName ?? 'the database URL (DATABASE_URL, or the CUTOVER_*_DATABASE_URL given)'
  if (isConnectionError(e)) {
    return new ServiceUnavailableError('postgresql', address, `${err.message || String(e)}${from}`, {
      cause: e,
      hint:
        err.code === '53300'
          ? "it answers but has no connection to spare: close idle sessions (pg_stat_activity), or raise max_connections or the role's CONNECTION LIMIT"
          : `start PostgreSQL or point ${urlName ?? 'DATABASE_URL'} at a running server`,
    })
  }
  const tls = tlsRefused(e, url, urlName)
  if (tls) return tls
  if (err.code === '42501' && /permission denied for database/i.test(err.message ?? '')) {
    // the role lacks CONNECT on the database: settings (a grant), not an outage
    const u = safeUrl(url)
    const role = u?.username ? quoteIdent(decodeURIComponent(u.username)) : '<the role>'
    const db = u ? quoteIdent(decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres') : '<the database>'
    return new UsageError(`PostgreSQL at ${address} refused the login: ${err.message}${from}`, {
      cause: e,
      hint: `the role may not connect to this database: as its owner or an administrator, GRANT CONNECT ON DATABASE ${db} TO ${role}; or point ${urlName ?? 'DATABASE_URL'} at a role that may`,
      details: {sqlstate: err.code},
    })
  }
  if (err.code === '28000' || err.code === '28P01') {
    // settings, not an outage: exit 2 with the fix
    return new UsageError(`PostgreSQL at ${address} refused the login: ${err.message ?? String(e)}${from}`, {
      cause: e,
      hint: `check the user and password in ${inUrl} and the server's pg_hba.conf`,
      details: {sqlstate: err.code},
    })
  }
  if (err.code === '3D000') {
    return new UsageError(`PostgreSQL at ${address}: ${err.message ?? String(e)}${from}`, {
      cause: e,
      hint: `create the database (createdb), or fix its name in ${inUrl}`,
      details: {sqlstate: err.code},
    })
  }
  return new CutoverError('PG_ERROR', `PostgreSQL at ${address}: ${err.message ?? String(e)}`, {
    cause: e,
    retriable: err.code !== undefined && RETRIABLE_SQLSTATE.has(err.code),
    details: {
      ...(err.code ? {sqlstate: err.code} : {}),
      ...(err.detail ? {detail: err.detail} : {}),
      ...(err.constraint ? {constraint: err.constraint} : {}),
      ...(err.table ? {table: err.table} : {}),
    },
  })
}

/** Creates the database named in `url` when it does not exist. */
export async function ensureDatabase(url: string, options: OpenOptions = {}): Promise<void> {
  const u = new URL(url)
  const dbName = decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres'
  const probe = new pg.Client({connectionString: pgConnectionString(url, options.logger), connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5000})
  try {
    await probe.connect()
    return
  } catch (e) {
    if ((e as {code?: string}).code !== '3D000') throw mapPgError(e, url, options.urlName)
  } finally {
    await probe.end().catch(() => {})
  }
  u.pathname = '/postgres'
  const admin = new pg.Client({connectionString: pgConnectionString(u.toString(), options.logger), connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5000})
  try {
    await admin.connect()
    await admin.query(`CREATE DATABASE ${quoteIdent(dbName)}`)
    ;(options.logger ?? silentLogger).info('pg.database.created', {database: dbName, address: describeDatabaseUrl(url)})
  } catch (e) {
    const code = (e as {code?: string}).code
    // created meanwhile: 42P04 when the other session's database was already visible; 23505 on
    // pg_database's name index when both inserted it at once and the other committed first
    // (three `db migrate` started together on a new database: one exited 70 with it)
    if (code === '42P04' || code === '23505') return
    // a role that may not create databases (42501), or not connect to `postgres`: settings, exit 2
    if (isConnectionError(e) || (code !== '42501' && code !== '28000' && code !== '3D000')) throw mapPgError(e, url, options.urlName)
    throw new UsageError(`the database ${dbName} does not exist at ${describeDatabaseUrl(url)}, and the role ${u.username ? decodeURIComponent(u.username) : `of ${options.urlName ?? 'DATABASE_URL'}`} could not create it: ${(e as Error).message}`, {
      cause: e,
      hint: `create it as an administrator (CREATE DATABASE ${quoteIdent(dbName)}; then run cutover db migrate as its owner: README, a least-privilege role), or fix its name in ${options.urlName ?? 'the database URL (DATABASE_URL, or the CUTOVER_*_DATABASE_URL given)'}`,
      details: {sqlstate: code},
    })
  } finally {
    await admin.end().catch(() => {})
  }
}

/** Opens a pool on `url`: creates the database when missing and runs migrations. */
export async function openDatabase(url: string, options: OpenOptions = {}): Promise<Pool> {
  const logger = (options.logger ?? silentLogger).namespace('pg')
  if (options.create !== false) await ensureDatabase(url, options)
  const pool = new pg.Pool({
    // the pool's options.connectionString is this one (sslmode=verify-full for require: pgConnectionString)
    connectionString: pgConnectionString(url, options.logger),
    max: options.max ?? 4,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5000,
    application_name: options.applicationName ?? 'cutover',
  })
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', (e) => logger.warn('pg.pool.idle_error', {error: e}))
  try {
    // without migrating, still refuse a schema a newer cutover migrated (migrate() refuses it too)
    if (options.migrate !== false) await migrate(pool, logger)
    else await refuseNewerSchema(pool)
  } catch (e) {
    await pool.end().catch(() => {})
    throw mapPgError(e, url, options.urlName)
  }
  return pool
}

/** Runs `fn` inside one transaction on one client; rolls back on error. */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const result = await fn(client)
    await client.query('COMMIT')
    return result
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {})
    throw e
  } finally {
    client.release()
  }
}

/** Server version and address, for `dev status`; `logger` takes the pg.sslmode note (pgConnectionString). */
export async function probeDatabase(url: string, timeoutMs = 3000, logger?: Logger): Promise<{version: string; address: string}> {
  const client = new pg.Client({connectionString: pgConnectionString(url, logger), connectionTimeoutMillis: timeoutMs})
  try {
    await client.connect()
    const r = await client.query<{server_version: string}>('SHOW server_version')
    return {version: r.rows[0]?.server_version ?? 'unknown', address: describeDatabaseUrl(url)}
  } catch (e) {
    if ((e as {code?: string}).code === '3D000') {
      // The server answers; the database is created on first use.
      await client.end().catch(() => {})
      const u = new URL(url)
      u.pathname = '/postgres'
      const r = await probeDatabase(u.toString(), timeoutMs, logger)
      return {version: r.version, address: describeDatabaseUrl(url)}
    }
    throw mapPgError(e, url)
  } finally {
    await client.end().catch(() => {})
  }
}
