/**
 * `dev up | down | status` on a second, private broker (other ports, its own state dir), so
 * that stopping it never disturbs the shared broker other tests use.
 */
import {mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {runCli} from '../helpers.js'

const stateDir = mkdtempSync(join(tmpdir(), 'cutover-dev-'))
const PORT = 19292 // not 19192: backfill-retry's private broker, which the suite may run at the same time
const CONTROLLER = 19293
const ports = ['--port', String(PORT), '--controller-port', String(CONTROLLER), '--state-dir', stateDir]

afterAll(async () => {
  await runCli(['dev', 'down', '--wipe', '--state-dir', stateDir])
  rmSync(stateDir, {recursive: true, force: true})
})

describe('dev up, up again, down, status', () => {
  it('starts a broker, reuses it, stops only it, and status then reports it down', async () => {
    const up = await runCli(['dev', 'up', ...ports, '--heap', '512m', '--json'])
    expect(up.code, up.stderr).toBe(0)
    expect(up.json).toMatchObject({bootstrap: `127.0.0.1:${PORT}`, reused: false, managed: true, version: '3.9.1'})
    expect(up.json.pid).toEqual(expect.any(Number))
    // the SASL_SSL listener: the first port after --port that --controller-port does not take
    const passwordFile = join(stateDir, 'sasl-password')
    const caFile = join(stateDir, 'tls', 'ca.pem')
    const sasl = {KAFKA_BROKERS: `127.0.0.1:${PORT + 2}`, KAFKA_SASL_MECHANISM: 'scram-sha-256', KAFKA_SASL_USERNAME: 'cutover', KAFKA_SSL_CA: caFile}
    expect(up.json.saslSsl).toEqual({address: `127.0.0.1:${PORT + 2}`, securityProtocol: 'SASL_SSL', mechanisms: ['scram-sha-256', 'scram-sha-512'], username: 'cutover', passwordFile, caFile, env: sasl})
    for (const secret of [passwordFile, join(stateDir, 'tls', 'broker.pem')]) expect(statSync(secret).mode & 0o777).toBe(0o600)
    const password = readFileSync(passwordFile, 'utf8')
    expect(up.stdout + up.stderr).not.toContain(password)

    // the credential is added when the login is refused (a state directory formatted before the
    // listener existed): here a new password, which dev up (reusing the broker) adds over PLAINTEXT
    writeFileSync(passwordFile, `${password}-new`)
    const again = await runCli(['dev', 'up', ...ports, '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json).toMatchObject({reused: true, managed: true, pid: up.json.pid, saslSsl: {address: `127.0.0.1:${PORT + 2}`}})

    // dev status over the listener (SCRAM-SHA-512 too) names the password's file, never the password
    for (const mechanism of ['scram-sha-256', 'scram-sha-512']) {
      const viaSasl = await runCli(['dev', 'status', '--state-dir', stateDir], {env: {...sasl, KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_PASSWORD: `${password}-new`}})
      expect(viaSasl.code, viaSasl.stdout + viaSasl.stderr).toBe(0)
      expect(viaSasl.stdout).toContain(`kafka       up       127.0.0.1:${PORT + 2}  Apache Kafka 3.9.1 (started by cutover, pid ${up.json.pid})`)
      expect(viaSasl.stdout).toContain(`KAFKA_BROKERS=127.0.0.1:${PORT + 2} KAFKA_SASL_MECHANISM=scram-sha-256 KAFKA_SASL_USERNAME=cutover KAFKA_SSL_CA=${caFile} KAFKA_SASL_PASSWORD="$(cat ${passwordFile})"`)
      expect(viaSasl.stdout + viaSasl.stderr).not.toContain(password)
    }

    const status = await runCli(['dev', 'status', '--state-dir', stateDir, '--json'], {env: {KAFKA_BROKERS: `127.0.0.1:${PORT}`}})
    expect(status.code).toBe(0)
    expect(status.json.kafka).toMatchObject({status: 'up', managed: true, version: '3.9.1', pid: up.json.pid, saslSsl: {address: `127.0.0.1:${PORT + 2}`, passwordFile, caFile}})

    const down = await runCli(['dev', 'down', '--state-dir', stateDir, '--json'])
    expect(down.code).toBe(0)
    expect(down.json).toMatchObject({stopped: true, pid: up.json.pid, wiped: false})
    expect(() => process.kill(up.json.pid, 0)).toThrow()

    const after = await runCli(['dev', 'status', '--state-dir', stateDir, '--json'], {env: {KAFKA_BROKERS: `127.0.0.1:${PORT}`}})
    expect(after.code).toBe(3)
    expect(after.json.unreachable).toEqual(['kafka'])
    expect(after.json.kafka.status).toBe('down')

    // The shared broker was not touched.
    const shared = await runCli(['dev', 'status', '--json'])
    expect(shared.json.kafka.status).toBe('up')
  })

  it('dev down with nothing started stops nothing', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'cutover-dev-empty-'))
    const down = await runCli(['dev', 'down', '--state-dir', empty, '--json'])
    expect(down.code).toBe(0)
    expect(down.json).toMatchObject({stopped: false, pid: null})
    rmSync(empty, {recursive: true, force: true})
  })

  it('a port taken by something that is not Kafka is a clear error, exit 3', async () => {
    const server = createServer((s) => s.end())
    await new Promise<void>((r) => server.listen(PORT + 10, '127.0.0.1', () => r()))
    try {
      const r = await runCli(['dev', 'up', '--port', String(PORT + 10), '--controller-port', String(CONTROLLER + 10), '--state-dir', stateDir, '--json'])
      expect(r.code).toBe(3)
      expect(r.json.error.code).toBe('PORT_IN_USE')
      expect(r.json.error.message).toContain(`127.0.0.1:${PORT + 10}`)
    } finally {
      server.close()
    }
  })

  it('missing Java is a clear error, exit 2', async () => {
    const r = await runCli(['dev', 'up', '--port', String(PORT + 20), '--controller-port', String(CONTROLLER + 20), '--state-dir', stateDir, '--json'], {
      env: {PATH: '/nonexistent'},
    })
    expect(r.code).toBe(2)
    expect(r.json.error.code).toBe('PREREQUISITE_MISSING')
    expect(r.json.error.message).toMatch(/java/)
    expect(r.json.error.hint).toMatch(/Java 17/)
  })

  it('a start that does not answer in time is killed and reported with the log tail, exit 3', async () => {
    const r = await runCli(['dev', 'up', '--port', String(PORT + 30), '--controller-port', String(CONTROLLER + 30), '--state-dir', stateDir, '--timeout', '1', '--json'])
    expect(r.code).toBe(3)
    expect(r.json.error.code).toBe('START_TIMEOUT')
    expect(r.json.error.message).toMatch(/Last lines of its log/)
  })
})
