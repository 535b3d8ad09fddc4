/**
 * Connection settings, read once from the environment at the edge (commands) and passed down.
 * Libraries never read `process.env` themselves.
 *
 * KAFKA_BROKERS            comma-separated host:port list (default 127.0.0.1:9092)
 * KAFKA_CLIENT_ID          client id (default cutover)
 * KAFKA_SASL_MECHANISM     plain | scram-sha-256 | scram-sha-512
 * KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD
 * KAFKA_SSL                true to use TLS (implied by any KAFKA_SSL_* file below); true/false, 1/0, yes/no, on/off
 * KAFKA_SSL_CA / KAFKA_SSL_CERT / KAFKA_SSL_KEY   PEM file paths (a client certificate takes both CERT and KEY)
 * KAFKA_SSL_KEY_PASSWORD   the passphrase of an encrypted KAFKA_SSL_KEY (Java's ssl.key.password)
 * KAFKA_SSL_REJECT_UNAUTHORIZED  false to accept self-signed certificates (default true)
 * DATABASE_URL             postgres://postgres@127.0.0.1:5432/cutover by default
 *                          (sslmode prefer, require and verify-ca verify the server's certificate and
 *                          host name, as verify-full; with uselibpqcompat=true, as libpq does: sslModeAsVerifyFull)
 *
 * A setting that would be ignored is refused (exit 2), never silently dropped: an unknown
 * KAFKA_SASL_* or KAFKA_SSL_* variable, a KAFKA_* one a typo away from a setting (KAFKA_BROKER
 * would otherwise leave the default broker in use), a user and password without a mechanism.
 */
import {readFileSync} from 'node:fs'
import {UsageError} from '../errors.js'
import {redactString} from '../log.js'
import {editDistance, nearestWord} from './nearest-word.js'

export const DEFAULT_KAFKA_BROKERS = '127.0.0.1:9092'
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/cutover'

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512'

export interface KafkaSettings {
  brokers: string[]
  clientId: string
  sasl?: {mechanism: SaslMechanism; username: string; password: string}
  ssl?: {ca?: string; cert?: string; key?: string; keyPassword?: string; rejectUnauthorized: boolean}
}

export interface ConnectionSettings {
  kafka: KafkaSettings
  databaseUrl: string
}

type Env = Record<string, string | undefined>

/** The KAFKA_* variables cutover reads. */
export const KAFKA_SETTINGS = [
  'KAFKA_BROKERS',
  'KAFKA_CLIENT_ID',
  'KAFKA_SASL_MECHANISM',
  'KAFKA_SASL_USERNAME',
  'KAFKA_SASL_PASSWORD',
  'KAFKA_SSL',
  'KAFKA_SSL_CA',
  'KAFKA_SSL_CERT',
  'KAFKA_SSL_KEY',
  'KAFKA_SSL_KEY_PASSWORD',
  'KAFKA_SSL_REJECT_UNAUTHORIZED',
] as const

const SASL_MECHANISMS: readonly SaslMechanism[] = ['plain', 'scram-sha-256', 'scram-sha-512']

/**
 * An unknown KAFKA_* variable that was meant for cutover: any KAFKA_SASL_* or KAFKA_SSL_* (the
 * families cutover owns), or one within two edits of a setting after `KAFKA_` (KAFKA_BROKER,
 * KAFKA_SSL_CAS). Kafka's own scripts' variables (KAFKA_HOME, KAFKA_OPTS, KAFKA_HEAP_OPTS,
 * KAFKA_CLUSTER_ID, ...) are further away and left alone.
 */
function checkUnknownKafkaVariables(env: Env): void {
  const known: readonly string[] = KAFKA_SETTINGS
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('KAFKA_') || known.includes(name) || env[name] === undefined) continue
    const suffix = name.slice('KAFKA_'.length)
    const near = nearestWord(suffix, known.map((k) => k.slice('KAFKA_'.length)))
    // a typo only within two edits (nearestWord allows a third of the word): KAFKA_BROKER_ID, a broker image's, is not KAFKA_BROKERS
    const typo = near !== undefined && editDistance(suffix, near) <= 2
    if (!typo && !/^(SASL|SSL)_/.test(suffix)) continue
    const family = /^(SASL|SSL)_/.exec(suffix)?.[1]
    const reads = family ? known.filter((k) => k.startsWith(`KAFKA_${family}`)) : known
    // a Java client's key store or trust store (JKS, PKCS#12): cutover takes PEM files
    const store = /STORE/.test(suffix) ? ' (a key store or trust store converts to PEM: keytool -exportcert -rfc, or openssl pkcs12 -nodes)' : ''
    throw new UsageError(`${name} is not a setting cutover reads${typo ? `: did you mean KAFKA_${near}?` : ''} (its value is not shown)`, {
      hint: `${typo ? `rename it KAFKA_${near}, or unset it` : 'unset it'}; cutover reads ${reads.join(', ')}${store}`,
      details: {setting: name},
    })
  }
}

/** A yes/no setting: true/false, 1/0, yes/no, on/off in any case; unset or empty is undefined; anything else refused. */
function booleanSetting(env: Env, name: string): boolean | undefined {
  const raw = env[name]?.trim().toLowerCase()
  if (!raw) return undefined
  if (['true', '1', 'yes', 'on'].includes(raw)) return true
  if (['false', '0', 'no', 'off'].includes(raw)) return false
  throw new UsageError(`${name} "${env[name]}" is neither true nor false`, {hint: `set ${name}=true or ${name}=false`, details: {setting: name}})
}

export function kafkaSettingsFromEnv(env: Env = process.env): KafkaSettings {
  checkUnknownKafkaVariables(env)
  const brokers = (env.KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS)
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean)
  if (brokers.length === 0) throw new UsageError('KAFKA_BROKERS is empty', {hint: 'set KAFKA_BROKERS=host:port[,host:port]'})
  for (const b of brokers) {
    const port = /^[^:\s;]+:(\d+)$/.exec(b)?.[1]
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
      throw new UsageError(`KAFKA_BROKERS entry "${b}" has port ${port}, which is not a TCP port (1 to 65535)`, {hint: `give the broker's listener port, for example KAFKA_BROKERS=${b.slice(0, b.lastIndexOf(':'))}:9092`})
    }
    if (!/^[^:\s;]+:\d{1,5}$/.test(b)) {
      // user:password@host:port: the entry is not shown (it would show the password)
      if (b.includes('@')) {
        throw new UsageError('a KAFKA_BROKERS entry holds "@": credentials do not go in KAFKA_BROKERS (the entry is not shown: it may hold a password)', {
          hint: 'KAFKA_BROKERS=host:port[,host:port], and the user and password in KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD',
        })
      }
      const scheme = /^([a-z][a-z0-9+._-]*):\/\/(.*)$/i.exec(b)
      // kafkajs splits an address at its first ":": an IPv6 literal cannot be given ([::1]:9092 connects nowhere)
      const ipv6 = /^\[?[0-9a-f]*:[0-9a-f:.]*(\]|%)/i.test(b) || /^[0-9a-f]*:[0-9a-f]*:/i.test(b)
      const hint = scheme
        ? `drop the "${scheme[1]}://": KAFKA_BROKERS=${scheme[2]} (TLS is KAFKA_SSL=true, SASL is KAFKA_SASL_MECHANISM and its user and password)`
        : /[;\s]/.test(b) && b.split(/[;\s]+/).filter(Boolean).every((p) => /^[^:\s;]+:\d{1,5}$/.test(p))
          ? `separate brokers with commas: KAFKA_BROKERS=${b.split(/[;\s]+/).filter(Boolean).join(',')}`
          : ipv6
            ? 'the Kafka client (kafkajs) cannot connect to an IPv6 address written out: give a host name that resolves to it (localhost for ::1), or the broker\'s IPv4 address'
            : /^[A-Za-z0-9._-]+$/.test(b)
              ? `add the port: KAFKA_BROKERS=${b}:9092 (9092 is Kafka's usual one)`
              : 'for example KAFKA_BROKERS=127.0.0.1:9092'
      throw new UsageError(`KAFKA_BROKERS entry "${b}" is not host:port`, {hint})
    }
  }
  const settings: KafkaSettings = {brokers, clientId: env.KAFKA_CLIENT_ID ?? 'cutover'}
  const mechanism = env.KAFKA_SASL_MECHANISM?.trim().toLowerCase()
  if (mechanism) {
    if (!(SASL_MECHANISMS as readonly string[]).includes(mechanism)) {
      const near = nearestWord(mechanism.replace(/_/g, '-'), SASL_MECHANISMS)
      throw new UsageError(`KAFKA_SASL_MECHANISM "${env.KAFKA_SASL_MECHANISM}" is not supported${near ? `: did you mean ${near}?` : ''}`, {
        hint: 'use plain, scram-sha-256 or scram-sha-512 (in any case)',
        details: {setting: 'KAFKA_SASL_MECHANISM'},
      })
    }
    if (!env.KAFKA_SASL_USERNAME || env.KAFKA_SASL_PASSWORD === undefined) {
      throw new UsageError('KAFKA_SASL_MECHANISM is set but KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is missing', {
        hint: 'set both KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD',
      })
    }
    settings.sasl = {mechanism: mechanism as SaslMechanism, username: env.KAFKA_SASL_USERNAME, password: env.KAFKA_SASL_PASSWORD}
  } else if (env.KAFKA_SASL_USERNAME || env.KAFKA_SASL_PASSWORD) {
    // without a mechanism no login is made, and a SASL listener closes the connection: say so here
    throw new UsageError(`${env.KAFKA_SASL_USERNAME ? 'KAFKA_SASL_USERNAME' : 'KAFKA_SASL_PASSWORD'} is set but KAFKA_SASL_MECHANISM is not: no SASL login would be made`, {
      hint: 'set KAFKA_SASL_MECHANISM (plain, scram-sha-256 or scram-sha-512: the one the listener enables), or unset KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD',
      details: {setting: 'KAFKA_SASL_MECHANISM'},
    })
  }
  const sslFiles = {ca: env.KAFKA_SSL_CA, cert: env.KAFKA_SSL_CERT, key: env.KAFKA_SSL_KEY}
  const ssl = booleanSetting(env, 'KAFKA_SSL')
  const rejectUnauthorized = booleanSetting(env, 'KAFKA_SSL_REJECT_UNAUTHORIZED') ?? true
  const files = Object.entries(sslFiles).filter(([, v]) => v).map(([k]) => `KAFKA_SSL_${k.toUpperCase()}`)
  if (ssl === false && files.length > 0) {
    throw new UsageError(`KAFKA_SSL is false but ${files.join(' and ')} ${files.length > 1 ? 'are' : 'is'} set (a KAFKA_SSL_* file turns TLS on)`, {
      hint: `for TLS, unset KAFKA_SSL (or set it to true); without TLS, unset ${files.join(' and ')}`,
      details: {setting: 'KAFKA_SSL'},
    })
  }
  if (Boolean(sslFiles.cert) !== Boolean(sslFiles.key)) {
    const [given, missing] = sslFiles.cert ? ['KAFKA_SSL_CERT', 'KAFKA_SSL_KEY'] : ['KAFKA_SSL_KEY', 'KAFKA_SSL_CERT']
    throw new UsageError(`${given} is set but ${missing} is not: a client certificate needs both`, {
      hint: `set ${missing} to the PEM file of the ${missing === 'KAFKA_SSL_KEY' ? "certificate's private key" : 'certificate of that key'}, or unset ${given}`,
      details: {setting: missing},
    })
  }
  if (env.KAFKA_SSL_KEY_PASSWORD !== undefined && !sslFiles.key) {
    throw new UsageError('KAFKA_SSL_KEY_PASSWORD is set but KAFKA_SSL_KEY is not (the password is not shown)', {
      hint: 'set KAFKA_SSL_KEY (and KAFKA_SSL_CERT) to the client certificate\'s files, or unset KAFKA_SSL_KEY_PASSWORD',
      details: {setting: 'KAFKA_SSL_KEY'},
    })
  }
  if (ssl === true || files.length > 0) {
    settings.ssl = {
      ...(sslFiles.ca ? {ca: sslFiles.ca} : {}),
      ...(sslFiles.cert ? {cert: sslFiles.cert} : {}),
      ...(sslFiles.key ? {key: sslFiles.key} : {}),
      ...(env.KAFKA_SSL_KEY_PASSWORD !== undefined ? {keyPassword: env.KAFKA_SSL_KEY_PASSWORD} : {}),
      rejectUnauthorized,
    }
  }
  return settings
}

export function databaseUrlFromEnv(env: Env = process.env): string {
  return checkDatabaseUrl(env.DATABASE_URL?.trim() || DEFAULT_DATABASE_URL)
}

/**
 * A database URL as given in the variable `name` (DATABASE_URL, CUTOVER_LEFT_DATABASE_URL, ...),
 * refused (exit 2) when it would connect elsewhere than written or show a password in messages.
 */
export function checkDatabaseUrl(url: string, name = 'DATABASE_URL'): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (error) {
    throw new UsageError(`${name} "${redactString(url)}" is not a URL`, {
      cause: error,
      hint: `for example ${name}=postgres://postgres@127.0.0.1:5432/cutover; a password holding @ / ? # or : is percent-encoded (%40 %2F %3F %23 %3A)`,
    })
  }
  // `localhost:5432/db` or `u:pw@host/db` parse as a URL of scheme `localhost:` or `u:`: without
  // postgres:// the host, port and user are lost (and a message would show the rest), so refused
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:' && parsed.protocol !== 'socket:') {
    throw new UsageError(`${name} does not start with postgres:// (or postgresql://) (the URL is not shown: it may hold a password)`, {
      hint: `write it as postgres://user@host:port/database (with a password: user:password@host, percent-encoded), e.g. ${name}=postgres://postgres@127.0.0.1:5432/cutover`,
    })
  }
  // `postgres://u:Pa@ss/w0rd@host/db`: a password holding "@" then "/" parses as user u, password
  // Pa, host ss and database "w0rd@host/db", and every message naming the host and database
  // would show pieces of the password. Such a URL is refused, and not shown.
  if (`${parsed.pathname}${parsed.search}${parsed.hash}`.includes('@')) {
    throw new UsageError(`${name} has an "@" after its host: a password holding "@" or "/" that is not percent-encoded (the URL is not shown: it would show part of the password)`, {
      hint: 'percent-encode the password: @ as %40, / as %2F, ? as %3F, # as %23, : as %3A (node -p "encodeURIComponent(process.argv[1])" \'<password>\')',
    })
  }
  checkTlsParameters(parsed, name)
  return url
}

/** The sslmode values node-postgres reads (libpq's six, and its own no-verify). */
const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'] as const

/**
 * The TLS parameters of a database URL, checked before a client is made: node-postgres reads the
 * sslrootcert, sslcert and sslkey files inside `new Client()`, so one that cannot be read threw
 * there (exit 70, with a stack trace); an sslmode it does not know turned TLS on with full
 * verification, whatever was meant. Both are settings: exit 2 naming the parameter.
 */
function checkTlsParameters(parsed: URL, name: string): void {
  const mode = parsed.searchParams.get('sslmode')
  if (mode !== null && !(SSL_MODES as readonly string[]).includes(mode)) {
    const near = nearestWord(mode.toLowerCase().replace(/_/g, '-'), SSL_MODES)
    throw new UsageError(`${name} has sslmode=${mode}, which is not an sslmode${near ? `: did you mean sslmode=${near}?` : ''}`, {
      hint: `use one of ${SSL_MODES.join(', ')} (sslmode=disable for a server without TLS)`,
      details: {setting: name, parameter: 'sslmode'},
    })
  }
  for (const param of ['sslrootcert', 'sslcert', 'sslkey'] as const) {
    const file = parsed.searchParams.get(param)
    if (!file) continue
    try {
      readFileSync(file)
    } catch (e) {
      throw new UsageError(`${name} names ${param}=${file}, which cannot be read: ${redactString((e as Error).message)}`, {
        cause: e,
        hint: `point ${param} at a readable PEM file (${param === 'sslrootcert' ? "the CA certificate that signed the server's" : param === 'sslcert' ? 'the client certificate' : "the client certificate's private key"}), or remove it from ${name}`,
        details: {setting: name, parameter: param},
      })
    }
  }
  if (parsed.searchParams.get('uselibpqcompat') === 'true' && mode === 'verify-ca' && !parsed.searchParams.get('sslrootcert')) {
    throw new UsageError(`${name} has sslmode=verify-ca without sslrootcert: there is no CA to verify the server's certificate with`, {
      hint: "add sslrootcert=<the PEM file of the CA that signed the server's certificate>, or use sslmode=verify-full",
      details: {setting: name, parameter: 'sslrootcert'},
    })
  }
}

/** The sslmode values node-postgres 8 reads as verify-full where libpq verifies less (prefer and require: nothing; verify-ca: not the host name). */
export const VERIFY_FULL_ALIASES = ['prefer', 'require', 'verify-ca'] as const
export type VerifyFullAlias = (typeof VERIFY_FULL_ALIASES)[number]

/**
 * node-postgres 8 (pg-connection-string 2) reads sslmode prefer, require and verify-ca as
 * verify-full, and says so on stderr, once per process, in a multi-line "SECURITY WARNING" that its
 * next major version will read them as libpq does (weaker). cutover keeps verify-full for them, and
 * says so itself: the URL node-postgres is given asks for sslmode=verify-full, which every version
 * reads the same way, and prints no warning. Returns that URL and the sslmode asked for, or
 * undefined when the URL asks for none of the three, or sets uselibpqcompat=true (node-postgres
 * then reads the mode as libpq does, without a warning). Only the sslmode parameter is rewritten:
 * the rest of the URL (its percent-encoded password, other parameters) is handed over as written.
 * As node-postgres does, a parameter given twice counts with its last value.
 */
export function sslModeAsVerifyFull(url: string): {mode: VerifyFullAlias; url: string} | undefined {
  if (/^socket:/i.test(url)) return undefined // node-postgres reads no sslmode there
  const q = url.indexOf('?')
  const hash = url.indexOf('#')
  if (q < 0 || (hash >= 0 && hash < q)) return undefined
  const end = hash < 0 ? url.length : hash
  const query = url.slice(q + 1, end)
  const params = new URLSearchParams(query)
  const mode = params.getAll('sslmode').at(-1)
  if (mode === undefined || !(VERIFY_FULL_ALIASES as readonly string[]).includes(mode)) return undefined
  if (params.getAll('uselibpqcompat').at(-1) === 'true') return undefined
  const rewritten = query
    .split('&')
    .map((p) => (new URLSearchParams(p).has('sslmode') ? 'sslmode=verify-full' : p))
    .join('&')
  return {mode: mode as VerifyFullAlias, url: `${url.slice(0, q + 1)}${rewritten}${url.slice(end)}`}
}

export function connectionSettingsFromEnv(env: Env = process.env): ConnectionSettings {
  return {kafka: kafkaSettingsFromEnv(env), databaseUrl: databaseUrlFromEnv(env)}
}

/** host:port/db of a database URL, without credentials: safe to print. */
export function describeDatabaseUrl(url: string): string {
  try {
    // postgres://u:pw@/db?host=/var/run/postgresql (no host: a Unix socket's folder in host=) is
    // no WHATWG URL with its credentials: read with node-postgres' default host, localhost
    const u = new URL(/^[a-z]+:\/\/[^/@]*@\//i.test(url) ? url.replace('@/', '@localhost/') : url)
    // host= and port= parameters win over the URL's own, as node-postgres reads them
    const host = u.searchParams.get('host') || u.hostname
    const port = u.searchParams.get('port') || u.port || '5432'
    return `${host}:${port}${u.pathname}`
  } catch {
    return redactString(url)
  }
}
