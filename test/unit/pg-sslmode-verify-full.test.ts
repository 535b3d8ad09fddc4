/**
 * sslmode prefer, require and verify-ca (without uselibpqcompat=true) are handed to node-postgres
 * as sslmode=verify-full: what node-postgres 8 does for them anyway, without its multi-line
 * "SECURITY WARNING" on stderr; cutover notes it once, as its own pg.sslmode log line.
 */
import pg from 'pg'
import {describe, expect, it, vi} from 'vitest'
import {sslModeAsVerifyFull} from '../../src/config/env.js'
import {createLogger, type LogEntry} from '../../src/log.js'
import {pgConnectionString} from '../../src/pg/pool.js'

/** What node-postgres makes of a connection string (nothing is connected). */
function params(url: string): Record<string, unknown> {
  const c = new pg.Client({connectionString: url}) as unknown as {connectionParameters: Record<string, unknown> & {password?: unknown}}
  const p = c.connectionParameters
  return {host: p.host, port: p.port, user: p.user, database: p.database, password: p.password, ssl: p.ssl, application_name: p.application_name}
}

describe('sslModeAsVerifyFull', () => {
  it('rewrites only the sslmode parameter, leaving the rest of the URL as written', () => {
    const url = 'postgres://u%40x:p%2Fa%3Fss%25@db.example:6543/my%20db?application_name=a+b&sslmode=require&connect_timeout=3#frag'
    expect(sslModeAsVerifyFull(url)).toEqual({mode: 'require', url: 'postgres://u%40x:p%2Fa%3Fss%25@db.example:6543/my%20db?application_name=a+b&sslmode=verify-full&connect_timeout=3#frag'})
    expect(sslModeAsVerifyFull('postgres://h/db?sslmode=prefer')?.mode).toBe('prefer')
    expect(sslModeAsVerifyFull('postgres://h/db?sslmode=verify-ca')?.url).toBe('postgres://h/db?sslmode=verify-full')
    // the last value counts, as node-postgres reads it
    expect(sslModeAsVerifyFull('postgres://h/db?sslmode=disable&sslmode=require')?.url).toBe('postgres://h/db?sslmode=verify-full&sslmode=verify-full')
    expect(sslModeAsVerifyFull('postgres://h/db?sslmode=require&sslmode=disable')).toBeUndefined()
  })

  it('leaves alone what node-postgres reads without a warning', () => {
    for (const url of [
      'postgres://h/db',
      'postgres://h/db?sslmode=verify-full',
      'postgres://h/db?sslmode=disable',
      'postgres://h/db?sslmode=no-verify',
      'postgres://h/db?sslmode=require&uselibpqcompat=true',
      'postgres://h/db?uselibpqcompat=true&sslmode=verify-ca&sslrootcert=/x.pem',
      'postgres://h/db#sslmode=require',
      'socket:/var/run/postgresql?db=x&sslmode=require',
    ]) {
      expect(sslModeAsVerifyFull(url), url).toBeUndefined()
    }
  })

  it('node-postgres reads the rewritten URL as it read the original (host, user, password, ssl), without its warning', () => {
    const emitted = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    try {
      const url = 'postgres://app:s%3Acret%40x@db.example:6543/ledger?sslmode=require&application_name=etl'
      const rewritten = pgConnectionString(url)
      const before = params(rewritten)
      expect(emitted).not.toHaveBeenCalled()
      // the original, for comparison: node-postgres 8 warns on it (once per process)
      expect(params(url)).toEqual(before)
      expect(emitted).toHaveBeenCalledWith(expect.stringContaining('SECURITY WARNING'))
      expect(before).toMatchObject({host: 'db.example', port: 6543, user: 'app', password: 's:cret@x', database: 'ledger', ssl: {}, application_name: 'etl'})
    } finally {
      emitted.mockRestore()
    }
  })
})

describe('pgConnectionString', () => {
  it('notes each mode once per process, on the first logger that would show it; never the URL or password', () => {
    const entries: LogEntry[] = []
    const logger = createLogger({level: 'warn', sink: (e) => entries.push(e)})
    const url = 'postgres://app:hunter2@db.example:5432/ledger?sslmode=require'
    expect(pgConnectionString(url)).toBe('postgres://app:hunter2@db.example:5432/ledger?sslmode=verify-full')
    pgConnectionString(url, createLogger({level: 'silent', sink: (e) => entries.push(e)}))
    expect(entries).toHaveLength(0)
    pgConnectionString(url, logger)
    pgConnectionString(url, logger)
    pgConnectionString(url.replace('/ledger', '/postgres'), logger)
    pgConnectionString('postgres://h/db?sslmode=verify-full', logger)
    pgConnectionString('postgres://h/db?sslmode=require&uselibpqcompat=true', logger)
    expect(entries).toHaveLength(1)
    expect(entries[0]).toMatchObject({level: 'warn', event: 'pg.sslmode', sslmode: 'require', address: 'db.example:5432/ledger'})
    expect(entries[0]!.note).toContain("the server's certificate and host name are verified (as verify-full)")
    expect(entries[0]!.note).toContain('uselibpqcompat=true&sslmode=require encrypts without verifying')
    expect(JSON.stringify(entries)).not.toContain('hunter2')
    pgConnectionString('postgres://h/db?sslmode=verify-ca', logger)
    expect(entries.map((e) => e.sslmode)).toEqual(['require', 'verify-ca'])
  })
})
