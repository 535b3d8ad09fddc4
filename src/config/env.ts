/**
 * Connection settings, read once from the environment at the edge (commands) and passed down.
 * Libraries never read `process.env` themselves.
 *
 * KAFKA_BROKERS            comma-separated host:port list (default 127.0.0.1:9092)
 * KAFKA_CLIENT_ID          client id (default cutover)
 * KAFKA_SASL_MECHANISM     plain | scram-sha-256 | scram-sha-512
 * KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD
 * KAFKA_SSL                true to use TLS (implied by any KAFKA_SSL_* file below)
 * KAFKA_SSL_CA / KAFKA_SSL_CERT / KAFKA_SSL_KEY   PEM file paths
 * KAFKA_SSL_REJECT_UNAUTHORIZED  false to accept self-signed certificates (default true)
 * DATABASE_URL             postgres://postgres@127.0.0.1:5432/cutover by default
 */
import {UsageError} from '../errors.js'
import {redactString} from '../log.js'

export const DEFAULT_KAFKA_BROKERS = '127.0.0.1:9092'
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/cutover'

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512'

export interface KafkaSettings {
  brokers: string[]
  clientId: string
  sasl?: {mechanism: SaslMechanism; username: string; password: string}
  ssl?: {ca?: string; cert?: string; key?: string; rejectUnauthorized: boolean}
}

export interface ConnectionSettings {
  kafka: KafkaSettings
  databaseUrl: string
}

type Env = Record<string, string | undefined>

export function kafkaSettingsFromEnv(env: Env = process.env): KafkaSettings {
  const brokers = (env.KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS)
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean)
  if (brokers.length === 0) throw new UsageError('KAFKA_BROKERS is empty', {hint: 'set KAFKA_BROKERS=host:port[,host:port]'})
  for (const b of brokers) {
    if (!/^[^:\s]+:\d{1,5}$/.test(b)) {
      // user:password@host:port: the entry is not shown (it would show the password)
      if (b.includes('@')) {
        throw new UsageError('a KAFKA_BROKERS entry holds "@": credentials do not go in KAFKA_BROKERS (the entry is not shown: it may hold a password)', {
          hint: 'KAFKA_BROKERS=host:port[,host:port], and the user and password in KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD',
        })
      }
      const scheme = /^([a-z][a-z0-9+._-]*):\/\/(.*)$/i.exec(b)
      throw new UsageError(`KAFKA_BROKERS entry "${b}" is not host:port`, {
        hint: scheme
          ? `drop the "${scheme[1]}://": KAFKA_BROKERS=${scheme[2]} (TLS is KAFKA_SSL=true, SASL is KAFKA_SASL_MECHANISM and its user and password)`
          : 'for example KAFKA_BROKERS=127.0.0.1:9092',
      })
    }
  }
  const settings: KafkaSettings = {brokers, clientId: env.KAFKA_CLIENT_ID ?? 'cutover'}
  const mechanism = env.KAFKA_SASL_MECHANISM?.toLowerCase()
  if (mechanism) {
    if (mechanism !== 'plain' && mechanism !== 'scram-sha-256' && mechanism !== 'scram-sha-512') {
      throw new UsageError(`KAFKA_SASL_MECHANISM "${mechanism}" is not supported`, {
        hint: 'use plain, scram-sha-256 or scram-sha-512',
      })
    }
    if (!env.KAFKA_SASL_USERNAME || env.KAFKA_SASL_PASSWORD === undefined) {
      throw new UsageError('KAFKA_SASL_MECHANISM is set but KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is missing', {
        hint: 'set both KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD',
      })
    }
    settings.sasl = {mechanism, username: env.KAFKA_SASL_USERNAME, password: env.KAFKA_SASL_PASSWORD}
  }
  const sslFiles = {ca: env.KAFKA_SSL_CA, cert: env.KAFKA_SSL_CERT, key: env.KAFKA_SSL_KEY}
  if (env.KAFKA_SSL === 'true' || sslFiles.ca || sslFiles.cert || sslFiles.key) {
    settings.ssl = {
      ...(sslFiles.ca ? {ca: sslFiles.ca} : {}),
      ...(sslFiles.cert ? {cert: sslFiles.cert} : {}),
      ...(sslFiles.key ? {key: sslFiles.key} : {}),
      rejectUnauthorized: env.KAFKA_SSL_REJECT_UNAUTHORIZED !== 'false',
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
  return url
}

export function connectionSettingsFromEnv(env: Env = process.env): ConnectionSettings {
  return {kafka: kafkaSettingsFromEnv(env), databaseUrl: databaseUrlFromEnv(env)}
}

/** host:port/db of a database URL, without credentials: safe to print. */
export function describeDatabaseUrl(url: string): string {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || '5432'}${u.pathname}`
  } catch {
    return redactString(url)
  }
}
