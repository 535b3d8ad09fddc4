/**
 * The address errors and logs name for a database URL (src/config/env.ts describeDatabaseUrl):
 * never the password, and the host and port node-postgres really connects to, host= and port=
 * parameters included (a Unix socket's folder was shown as ":5432/db").
 */
import {describe, expect, it} from 'vitest'
import {describeDatabaseUrl} from '../../src/config/env.js'

describe('describeDatabaseUrl', () => {
  it('names the host and port node-postgres connects to, without the password', () => {
    expect(describeDatabaseUrl('postgres://svc:s%40cret@db.bank.local:6432/cutover')).toBe('db.bank.local:6432/cutover')
    expect(describeDatabaseUrl('postgres://svc:s%40cret@127.0.0.1/cutover')).toBe('127.0.0.1:5432/cutover')
    expect(describeDatabaseUrl('postgres://svc:s%40cret@/cutover?host=/var/run/postgresql')).toBe('/var/run/postgresql:5432/cutover')
    expect(describeDatabaseUrl('postgres://svc:pw@ignored:1/cutover?host=pg.internal&port=5433')).toBe('pg.internal:5433/cutover')
    expect(describeDatabaseUrl('postgres://svc:s%40cret@/cutover')).toBe('localhost:5432/cutover')
  })
})
