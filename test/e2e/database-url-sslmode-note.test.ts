/**
 * DATABASE_URL with sslmode prefer, require or verify-ca: node-postgres 8 printed a multi-line
 * "(node:PID) Warning: SECURITY WARNING ..." on stderr (once per process), in the middle of --json
 * runs, promising weaker checks on its next major version. cutover now hands it sslmode=verify-full
 * for them (what it did anyway) and says so in one pg.sslmode log line of its own; the checks stay
 * as they were: an untrusted certificate and a host name the certificate does not list are refused
 * with require, and uselibpqcompat=true keeps libpq's require (encrypted, not verified).
 *
 * The shared test server runs without TLS (ssl=off); the TLS server here is a local stand-in that
 * answers PostgreSQL's SSLRequest with "S", does the TLS handshake with a certificate of its own
 * CA, and then refuses the session (FATAL 3D000 or 28000): reaching that refusal proves the handshake passed.
 */
import {writeFileSync} from 'node:fs'
import {createServer, type Socket} from 'node:net'
import {join} from 'node:path'
import {TLSSocket} from 'node:tls'
import {describe, expect, it, onTestFinished} from 'vitest'
import {makeDevTls} from '../../src/dev/tls.js'
import {runCli, settings, tempDir, type CliResult} from '../helpers.js'
import {sslmodeLines as sslmodeLinesOf} from './sslmode-support.js'

const SECRET = 'Ssl@:/%#?-s3cret'

function withPassword(url: string, params: Record<string, string> = {}): string {
  const u = new URL(url)
  u.password = encodeURIComponent(SECRET)
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v)
  return u.toString()
}

/** The pg.sslmode lines on stderr, parsed, after the checks every run here passes (sslmode-support.ts). */
const sslmodeLines = (r: CliResult) => sslmodeLinesOf(r, SECRET)

/** ErrorResponse: FATAL `sqlstate`, as a server refusing the session sends it. */
function refusal(sqlstate: string, message: string): Buffer {
  const fields = Buffer.from(['SFATAL', 'VFATAL', `C${sqlstate}`, `M${message}`].map((f) => `${f}\0`).join('') + '\0')
  const head = Buffer.alloc(5)
  head.write('E', 0)
  head.writeInt32BE(fields.length + 4, 1)
  return Buffer.concat([head, fields])
}

/**
 * A "PostgreSQL" on 127.0.0.1 with TLS, its certificate naming `hosts`; returns its port and its
 * CA's PEM file. Over TLS it answers the startup message for the database `cutover` with "does not
 * exist" (3D000: cutover then connects again, to `postgres`, to create it), and any other with 28000.
 */
async function tlsStandIn(hosts: string[]): Promise<{port: number; caFile: string}> {
  const tls = makeDevTls(hosts)
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/.exec(tls.brokerKeystorePem)![0]
  const cert = tls.brokerKeystorePem.slice(key.length)
  const caFile = join(tempDir('cutover-sslmode-'), 'ca.pem')
  writeFileSync(caFile, tls.caPem)
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.once('data', () => {
      socket.write('S') // yes to the SSLRequest, then the TLS handshake
      const secure = new TLSSocket(socket, {isServer: true, key, cert})
      secure.on('error', () => socket.destroy())
      // the startup message, over TLS
      secure.once('data', (startup: Buffer) =>
        secure.end(startup.includes('database\0cutover\0') ? refusal('3D000', 'database "cutover" does not exist') : refusal('28000', 'stand-in server: no login here')),
      )
    })
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  onTestFinished(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((done) => server.close(done))
  })
  return {port: (server.address() as {port: number}).port, caFile}
}

describe('DATABASE_URL sslmode prefer, require, verify-ca: no node-postgres SECURITY WARNING, one pg.sslmode line', () => {
  it('against a server without TLS: the same exit 2 and --json error, stderr without the warning and with one line', async () => {
    for (const mode of ['require', 'prefer', 'verify-ca'] as const) {
      const r = await runCli(['db', 'migrate', '--json'], {env: {DATABASE_URL: withPassword(settings().databaseUrl, {sslmode: mode})}})
      expect(r.code, r.stderr).toBe(2)
      expect(r.json.error).toMatchObject({code: 'USAGE', service: 'postgresql', sslmode: mode})
      expect(r.json.error.message).toContain('does not accept TLS connections')
      expect(r.json.error.hint).toContain('sslmode=disable')
      const lines = sslmodeLines(r)
      expect(lines, r.stderr).toHaveLength(1)
      expect(lines[0]).toMatchObject({level: 'warn', event: 'pg.sslmode', sslmode: mode, address: '127.0.0.1:5432/cutover'})
      expect(lines[0]!.note).toContain(`sslmode=${mode}: `)
      expect(lines[0]!.note).toContain('verified (as verify-full)')
      expect(lines[0]!.note).toContain(`uselibpqcompat=true&sslmode=${mode}`)
    }
    // verify-full and uselibpqcompat=true: nothing to say (and node-postgres says nothing)
    for (const params of [{sslmode: 'verify-full'}, {sslmode: 'require', uselibpqcompat: 'true'}] as Record<string, string>[]) {
      const r = await runCli(['db', 'migrate', '--json'], {env: {DATABASE_URL: withPassword(settings().databaseUrl, params)}})
      expect(r.code).toBe(2)
      expect(r.json.error).toMatchObject({code: 'USAGE', sslmode: params.sslmode})
      expect(sslmodeLines(r)).toHaveLength(0)
    }
  })

  it('a run that connects twice (the database is missing: then to postgres, to create it) still logs one line; require with the CA given connects', async () => {
    const server = await tlsStandIn(['127.0.0.1'])
    const url = withPassword(`postgres://postgres@127.0.0.1:${server.port}/cutover`, {sslmode: 'require', sslrootcert: server.caFile})
    const r = await runCli(['db', 'migrate', '--json'], {env: {DATABASE_URL: url}})
    // past TLS twice: 3D000 on cutover, then the login to postgres refused (28000): could not create it
    expect(r.code, r.stdout).toBe(2)
    expect(r.json.error).toMatchObject({code: 'USAGE', sqlstate: '28000'})
    expect(r.json.error.message).toContain('could not create it')
    expect(sslmodeLines(r)).toHaveLength(1)
  })

  it('sslmode=require still verifies: an untrusted certificate and a host name it does not list are refused; uselibpqcompat=true does not verify', async () => {
    const server = await tlsStandIn(['127.0.0.1'])
    const base = `postgres://postgres@127.0.0.1:${server.port}/cutover`
    const untrusted = await runCli(['db', 'migrate', '--json'], {env: {DATABASE_URL: withPassword(base, {sslmode: 'require'})}})
    expect(untrusted.code).toBe(2)
    expect(untrusted.json.error).toMatchObject({code: 'USAGE', service: 'postgresql', sslmode: 'require', tls_error: expect.stringMatching(/CERT|SIGNED|VERIFY/)})
    expect(untrusted.json.error.hint).toContain('sslrootcert=')
    expect(sslmodeLines(untrusted)).toHaveLength(1)

    // trusted (sslrootcert), but the certificate names other.example, not 127.0.0.1: refused as verify-full refuses it
    const other = await tlsStandIn(['other.example'])
    const otherBase = `postgres://postgres@127.0.0.1:${other.port}/cutover`
    for (const mode of ['require', 'verify-ca']) {
      const r = await runCli(['db', 'migrate', '--json'], {env: {DATABASE_URL: withPassword(otherBase, {sslmode: mode, sslrootcert: other.caFile})}})
      expect(r.code).toBe(2)
      expect(r.json.error).toMatchObject({code: 'USAGE', sslmode: mode, tls_error: 'ERR_TLS_CERT_ALTNAME_INVALID'})
      expect(sslmodeLines(r)).toHaveLength(1)
    }
    // libpq's semantics on request: the handshake passes (the stand-in then refuses the session)
    for (const [url, params] of [
      [base, {sslmode: 'require', uselibpqcompat: 'true'}],
      [otherBase, {sslmode: 'require', sslrootcert: other.caFile, uselibpqcompat: 'true'}],
    ] as const) {
      const r = await runCli(['db', 'migrate', '--json'], {env: {DATABASE_URL: withPassword(url, params)}})
      expect(r.code, r.stdout).toBe(2)
      expect(r.json.error).toMatchObject({code: 'USAGE', sqlstate: '28000'})
      expect(r.json.error).not.toHaveProperty('tls_error')
      expect(sslmodeLines(r)).toHaveLength(0)
    }
  })
})
