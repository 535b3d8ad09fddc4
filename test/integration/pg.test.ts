import {randomUUID} from 'node:crypto'
import pg from 'pg'
import {describe, expect, it} from 'vitest'
import {openDatabase} from '../../src/pg/pool.js'
import {settings} from '../helpers.js'

describe('PostgreSQL access', () => {
  it('creates a missing database, runs migrations once, and is idempotent', async () => {
    const base = new URL(settings().databaseUrl)
    const dbName = `cutover_test_${randomUUID().slice(0, 8)}`
    base.pathname = `/${dbName}`
    const url = base.toString()
    const pool1 = await openDatabase(url)
    const first = await pool1.query('SELECT version FROM cutover.schema_migrations ORDER BY version')
    await pool1.end()
    const pool2 = await openDatabase(url) // second start: nothing applied twice
    const second = await pool2.query('SELECT version FROM cutover.schema_migrations ORDER BY version')
    await pool2.end()
    expect(first.rows.length).toBeGreaterThan(0)
    expect(second.rows).toEqual(first.rows)
    base.pathname = '/postgres'
    const admin = new pg.Client({connectionString: base.toString()})
    await admin.connect()
    await admin.query(`DROP DATABASE "${dbName}" WITH (FORCE)`)
    await admin.end()
  })

  it('an unreachable server is ServiceUnavailableError naming the address', async () => {
    await expect(openDatabase('postgres://postgres:pw@127.0.0.1:1/cutover', {connectionTimeoutMillis: 1000})).rejects.toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      exitCode: 3,
      address: '127.0.0.1:1/cutover',
    })
  })
})
