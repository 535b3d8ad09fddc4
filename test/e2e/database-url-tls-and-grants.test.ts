/**
 * DATABASE_URL's TLS parameters and a role refused CONNECT: settings, not outages, so exit 2 with
 * the fix (they were exit 70, "PG_ERROR" or a stack trace, without one), and the password in the
 * URL never shown. The test server runs without TLS (ssl=off); the untrusted certificate is a
 * local stand-in that answers PostgreSQL's SSLRequest with "S" and a self-signed certificate.
 */
import {randomUUID} from 'node:crypto'
import {createServer, type Socket} from 'node:net'
import {TLSSocket} from 'node:tls'
import pg from 'pg'
import {describe, expect, it, onTestFinished} from 'vitest'
import {makeDevTls} from '../../src/dev/tls.js'
import {databaseUrl, runCli, settings} from '../helpers.js'

const SECRET = 'Tls@:/%#?ñ-s3cret'

function withPassword(url: string, params: Record<string, string> = {}): string {
  const u = new URL(url)
  u.password = encodeURIComponent(SECRET)
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v)
  return u.toString()
}

function expectNoSecret(r: {stdout: string; stderr: string}): void {
  const all = `${r.stdout}\n${r.stderr}`
  expect(all).not.toContain('s3cret')
  expect(all).not.toContain(encodeURIComponent(SECRET))
}

/** A "PostgreSQL" on 127.0.0.1 that takes TLS with a certificate of a CA nobody trusts. */
async function untrustedTlsServer(): Promise<number> {
  const tls = makeDevTls(['127.0.0.1', 'localhost'])
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/.exec(tls.brokerKeystorePem)![0]
  const cert = tls.brokerKeystorePem.slice(key.length)
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.once('data', () => {
      // the SSLRequest (8 bytes): yes, then the TLS handshake
      socket.write('S')
      const secure = new TLSSocket(socket, {isServer: true, key, cert})
      secure.on('error', () => socket.destroy())
    })
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  onTestFinished(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((done) => server.close(done))
  })
  return (server.address() as {port: number}).port
}

describe('DATABASE_URL TLS settings and grants', () => {
  it('sslmode=require against a server without TLS: exit 2, the fix names sslmode=disable', async () => {
    const url = withPassword(settings().databaseUrl, {sslmode: 'require'})
    const r = await runCli(['db', 'migrate', '--json'], {env: {DATABASE_URL: url}})
    expect(r.code).toBe(2)
    expect(r.json.error).toMatchObject({code: 'USAGE', service: 'postgresql', sslmode: 'require'})
    expect(r.json.error.message).toContain('does not accept TLS connections')
    expect(r.json.error.hint).toContain('sslmode=disable')
    expectNoSecret(r)
    const status = await runCli(['dev', 'status', '--json'], {env: {DATABASE_URL: url}})
    expect(status.code).toBe(2)
    expect(status.json.postgresql.status).toBe('refused')
    expectNoSecret(status)
  })

  it('a server certificate that is not trusted: exit 2, the fix names sslrootcert', async () => {
    const port = await untrustedTlsServer()
    const url = withPassword(`postgres://postgres@127.0.0.1:${port}/cutover`, {sslmode: 'verify-full'})
    const r = await runCli(['db', 'migrate', '--json'], {env: {DATABASE_URL: url}})
    expect(r.code).toBe(2)
    expect(r.json.error).toMatchObject({code: 'USAGE', service: 'postgresql', tls_error: expect.stringMatching(/CERT|SIGNED|VERIFY/)})
    expect(r.json.error.hint).toContain('sslrootcert=')
    expectNoSecret(r)
  })

  it('an sslrootcert that cannot be read, or an sslmode that is not one: exit 2 naming it, no stack trace', async () => {
    const missing = await runCli(['db', 'migrate'], {env: {DATABASE_URL: withPassword(settings().databaseUrl, {sslmode: 'verify-full', sslrootcert: '/nonexistent/ca.pem'})}})
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('sslrootcert=/nonexistent/ca.pem, which cannot be read')
    expect(missing.stderr).not.toMatch(/\n\s+at /)
    expectNoSecret(missing)
    const typo = await runCli(['db', 'migrate', '--json'], {env: {DATABASE_URL: withPassword(settings().databaseUrl, {sslmode: 'requier'})}})
    expect(typo.code).toBe(2)
    expect(typo.json.error.message).toContain('did you mean sslmode=require?')
    expectNoSecret(typo)
  })

  it('a role refused CONNECT on the database: exit 2, the fix is the GRANT', async () => {
    const suffix = randomUUID().replace(/-/g, '').slice(0, 10)
    const database = `noconnect_${suffix}`
    const role = `noconnect_${suffix}`
    const admin = new pg.Client({connectionString: settings().databaseUrl})
    await admin.connect()
    await admin.query(`CREATE DATABASE "${database}"`)
    await admin.query(`REVOKE CONNECT ON DATABASE "${database}" FROM PUBLIC`)
    await admin.query(`CREATE ROLE "${role}" LOGIN`)
    onTestFinished(async () => {
      await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`)
      await admin.query(`DROP ROLE IF EXISTS "${role}"`)
      await admin.end()
    })
    const url = withPassword(databaseUrl(database, role))
    const r = await runCli(['db', 'migrate', '--json'], {env: {DATABASE_URL: url}})
    expect(r.code).toBe(2)
    expect(r.json.error).toMatchObject({code: 'USAGE', sqlstate: '42501'})
    expect(r.json.error.hint).toContain(`GRANT CONNECT ON DATABASE "${database}" TO "${role}"`)
    expectNoSecret(r)
  })
})
