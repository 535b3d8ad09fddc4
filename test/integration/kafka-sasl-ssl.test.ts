/**
 * cutover over SASL_SSL (SCRAM over TLS, as banks run Kafka), end to end against the SASL_SSL
 * listener that `cutover dev up` opens beside PLAINTEXT on the broker the suite uses (found as
 * the suite finds that broker: the state directory of `defaultStateDir()`, its broker.json naming
 * the SASL_SSL port, tls/ca.pem and sasl-password). Records are produced and topics made over
 * PLAINTEXT by the suite's helpers; cutover reads and writes them over SASL_SSL, and kcat
 * (librdkafka, an independent client) reads them back over SASL_SSL.
 *
 * Refusals: a wrong password is exit 2 (the settings, not an outage) naming
 * KAFKA_SASL_USERNAME/PASSWORD and the mechanism, after one login attempt, the password nowhere
 * in the output; TLS without KAFKA_SSL_CA is exit 2 naming KAFKA_SSL_CA, not "unreachable".
 *
 * Without that listener (a broker started before dev up opened it) the file fails under CI=true
 * and is skipped elsewhere, saying why.
 */
import {spawnSync} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {defaultStateDir, readBrokerState, saslSslListener, type SaslSslListener} from '../../src/dev/broker.js'
import {createTestTopic, kafka, kafkaSettings, runCli, tempDir} from '../helpers.js'
import {produce, startStream, streamFixture} from './stream-support.js'

function findListener(): {listener: SaslSslListener | null; why: string} {
  const stateDir = defaultStateDir()
  const state = readBrokerState(stateDir)
  if (!state) return {listener: null, why: `no broker.json in ${stateDir}: the suite's broker was not started by \`cutover dev up\` with this CUTOVER_HOME`}
  if (!kafkaSettings().brokers.includes(`${state.host}:${state.port}`)) {
    return {listener: null, why: `the broker of ${stateDir} (${state.host}:${state.port}) is not the suite's (KAFKA_BROKERS=${kafkaSettings().brokers.join(',')})`}
  }
  const listener = saslSslListener(stateDir, state)
  return listener ? {listener, why: ''} : {listener: null, why: `the broker of ${stateDir} has no SASL_SSL listener (started before dev up opened one): restart it with \`cutover dev down && cutover dev up\``}
}

const found = findListener()
if (!found.listener && process.env.CI === 'true') throw new Error(`kafka-sasl-ssl: ${found.why}`)
const listener = found.listener!
const password = found.listener ? readFileSync(listener.passwordFile, 'utf8').trim() : ''

/** The KAFKA_* settings of the SASL_SSL listener (`over` changes or, as undefined, removes some). */
function saslEnv(over: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = {...listener.env, KAFKA_SASL_PASSWORD: password, ...over}
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined))
}

/** A topic read from the beginning with kcat over SASL_SSL (SCRAM-SHA-256, the listener's CA): key, value, headers. */
function kcatSasl(topic: string): {key: string | null; payload: string | null; headers: Record<string, string>}[] {
  const args = ['-b', listener.address, '-X', 'security.protocol=SASL_SSL', '-X', 'sasl.mechanisms=SCRAM-SHA-256', '-X', `sasl.username=${listener.username}`, '-X', `sasl.password=${password}`, '-X', `ssl.ca.location=${listener.caFile}`]
  const r = spawnSync('kcat', [...args, '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-J'], {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`kcat over SASL_SSL failed (${r.status}): ${r.stderr}`)
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      const j = JSON.parse(l) as {key: string | null; payload: string | null; headers?: string[]}
      const headers: Record<string, string> = {}
      for (let i = 0; i + 1 < (j.headers ?? []).length; i += 2) headers[j.headers![i]!] = j.headers![i + 1]!
      return {key: j.key, payload: j.payload, headers}
    })
}

const txn = (id: string, amt: string) => ({key: id, value: Buffer.from(JSON.stringify({id, acct: 'A1', amt, ts: '2026-11-20T09:15:00+03:00'}))})

describe.skipIf(!found.listener)(`cutover over the SASL_SSL listener${found.listener ? '' : ` (skipped: ${found.why})`}`, () => {
  it('stream run --until-idle over SASL_SSL (SCRAM-SHA-256, KAFKA_SSL_CA) consumes records produced over PLAINTEXT, writes them to PostgreSQL and dead-letters a bad one; kcat reads the DLQ over SASL_SSL', async () => {
    const f = await streamFixture({partitions: 2, prefix: 'sasl-stream'})
    await produce(f.topic, [txn('S1', '10.50'), txn('S2', '20.00'), txn('BAD', 'abc'), txn('S3', '0.01')])
    const run = await startStream(f, ['--until-idle', '--idle-ms', '1000', '--json'], saslEnv()).exited
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout + run.stderr).not.toContain(password)
    expect(JSON.parse(run.stdout)).toMatchObject({read: 4, written: 3, dead_lettered: {UNPARSEABLE_AMOUNT: 1}})
    const rows = await f.pool.query<{txn_id: string; amount: string}>(`SELECT txn_id, amount::text FROM "${f.schema}".txn_clean ORDER BY txn_id`)
    expect(rows.rows).toEqual([
      {txn_id: 'S1', amount: '10.50'},
      {txn_id: 'S2', amount: '20.00'},
      {txn_id: 'S3', amount: '0.01'},
    ])
    const dead = kcatSasl(f.dlqTopic)
    expect(dead).toHaveLength(1)
    expect(dead[0]).toMatchObject({key: 'BAD', payload: txn('BAD', 'abc').value.toString()})
    expect(dead[0]!.headers).toMatchObject({'cutover.error.code': 'UNPARSEABLE_AMOUNT', 'cutover.source.topic': f.topic, 'cutover.pipeline': f.name})
  })

  it('backfill of a csv into a topic over SASL_SSL: kcat reads the records back over SASL_SSL', async () => {
    const topic = await createTestTopic({prefix: 'sasl-backfill'})
    const csv = join(tempDir('cutover-sasl-'), 'txn.csv')
    writeFileSync(csv, 'id,acct,amt\nB1,A1,10.50\nB2,A2,1234.56\n')
    const r = await runCli(['backfill', '--from', `csv:${csv}`, '--to', topic, '--key', 'id', '--json'], {env: saslEnv()})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({status: 'completed', read: 2, sent: 2, rejected: 0})
    expect(r.stdout + r.stderr).not.toContain(password)
    expect(kcatSasl(topic).map((m) => [m.key, JSON.parse(m.payload!) as unknown])).toEqual([
      ['B1', {id: 'B1', acct: 'A1', amt: '10.50'}],
      ['B2', {id: 'B2', acct: 'A2', amt: '1234.56'}],
    ])
  })

  it('SCRAM-SHA-512 works too: dlq inspect over SASL_SSL reads a dead letter', async () => {
    const topic = await createTestTopic({prefix: 'sasl-512'})
    const producer = kafka().producer()
    await producer.connect()
    await producer.send({topic, acks: -1, messages: [{key: 'K1', value: 'x', headers: {'cutover.error.code': 'UNPARSEABLE_AMOUNT', 'cutover.error.stage': 'normalize'}}]})
    await producer.disconnect()
    const r = await runCli(['dlq', 'inspect', '--topic', topic, '--json'], {env: saslEnv({KAFKA_SASL_MECHANISM: 'scram-sha-512'})})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({topic, total: 1, by_code: {UNPARSEABLE_AMOUNT: 1}})
  })

  it('a wrong password: exit 2 (USAGE, not unreachable), naming KAFKA_SASL_USERNAME/PASSWORD and the mechanism, after one login attempt, the password nowhere in the output', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'sasl-refused'})
    const wrong = `Wr0ng-${password.slice(0, 4)}-pw`
    const env = saslEnv({KAFKA_SASL_PASSWORD: wrong})
    const [stream, backfill] = await Promise.all([
      // at debug level every failed login is logged (kafkajs' SaslAuthenticator): they are counted below
      startStream(f, ['--until-idle', '--json'], {...env, CUTOVER_LOG_LEVEL: 'debug'}).exited,
      runCli(['backfill', '--from', 'csv:fixtures/legacy/txn-2026-11-20.csv?delimiter=;&encoding=windows-1251', '--to', f.topic, '--json'], {env}),
    ])
    for (const r of [stream, backfill]) {
      expect(r.code, r.stdout + r.stderr).toBe(2)
      const error = (JSON.parse(r.stdout) as {error: Record<string, string>}).error
      expect(error).toMatchObject({code: 'USAGE', retriable: false, service: 'kafka', address: listener.address, kafka_error: 'SASL_AUTHENTICATION_FAILED', mechanism: 'scram-sha-256'})
      expect(error.message).toContain(`refused the SASL login as user "${listener.username}" (KAFKA_SASL_MECHANISM=scram-sha-256)`)
      expect(error.hint).toMatch(/KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD/)
      expect(r.stdout + r.stderr).not.toContain(wrong)
      expect(r.stdout + r.stderr).not.toContain(password)
    }
    // one login, refused, and no retry (kafkajs' retries would log one refusal per attempt)
    const refusals = stream.stderr.split('\n').filter((l) => l.includes('"kafkajs":"SaslAuthenticator-SCRAM-SHA-256"') && l.includes('authentication failed'))
    expect(refusals, stream.stderr).toHaveLength(1)
  })

  it('security settings that do not fit the listener: a SASL login at the PLAINTEXT listener is exit 2 saying it takes none; TLS without a login at SASL_SSL names the settings given', async () => {
    const plaintext = kafkaSettings().brokers.join(',')
    const [atPlaintext, noLogin] = await Promise.all([
      runCli(['dlq', 'inspect', '--topic', 'any', '--json'], {env: saslEnv({KAFKA_BROKERS: plaintext, KAFKA_SSL_CA: undefined})}),
      runCli(['dlq', 'inspect', '--topic', 'any', '--json'], {env: saslEnv({KAFKA_SASL_MECHANISM: undefined, KAFKA_SASL_USERNAME: undefined, KAFKA_SASL_PASSWORD: undefined})}),
    ])
    expect(atPlaintext.code, atPlaintext.stdout + atPlaintext.stderr).toBe(2)
    expect(atPlaintext.json.error).toMatchObject({code: 'USAGE', kafka_error: 'ILLEGAL_SASL_STATE', address: plaintext})
    expect(atPlaintext.json.error.hint).toBe(`${plaintext} does not take a SASL login (a PLAINTEXT or SSL listener): point KAFKA_BROKERS at the broker's SASL listener (SASL_SSL or SASL_PLAINTEXT), or unset KAFKA_SASL_MECHANISM for this one`)
    // the broker closes the connection of a client that does not log in: it may also be down, so exit 3, with both fixes
    expect(noLogin.code, noLogin.stdout + noLogin.stderr).toBe(3)
    expect(noLogin.json.error).toMatchObject({code: 'SERVICE_UNAVAILABLE', address: listener.address})
    expect(noLogin.json.error.hint).toContain(`the listener at ${listener.address} may want other security settings than these (no SASL, TLS): SASL_SSL takes KAFKA_SASL_* with KAFKA_SSL_CA`)
    for (const r of [atPlaintext, noLogin]) expect(r.stdout + r.stderr).not.toContain(password)
  })

  it('TLS without KAFKA_SSL_CA (the self-signed CA not trusted): exit 2 naming KAFKA_SSL_CA, not "unreachable"; a CA file that is missing or not PEM: exit 2 naming it', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'sasl-noca'})
    const env = saslEnv({KAFKA_SSL_CA: undefined, KAFKA_SSL: 'true'})
    const notPem = join(tempDir('cutover-sasl-'), 'ca.der')
    writeFileSync(notPem, Buffer.from([0x30, 0x82, 0x01, 0x00]))
    const missing = join(tempDir('cutover-sasl-'), 'no-such-ca.pem')
    const [stream, inspect, ...badFiles] = await Promise.all([
      startStream(f, ['--until-idle', '--json'], env).exited,
      runCli(['dlq', 'inspect', '--topic', f.topic, '--json'], {env}),
      runCli(['dlq', 'inspect', '--topic', f.topic, '--json'], {env: saslEnv({KAFKA_SSL_CA: missing})}),
      runCli(['dlq', 'inspect', '--topic', f.topic, '--json'], {env: saslEnv({KAFKA_SSL_CA: notPem})}),
    ])
    expect(badFiles.map((r) => [r.code, r.json?.error?.code, r.json?.error?.message])).toEqual([
      [2, 'USAGE', expect.stringMatching(`^KAFKA_SSL_CA names ${missing}, which cannot be read: ENOENT`)],
      [2, 'USAGE', `KAFKA_SSL_CA names ${notPem}, which holds no PEM certificate (-----BEGIN CERTIFICATE-----)`],
    ])
    for (const r of [stream, inspect]) {
      expect(r.code, r.stdout + r.stderr).toBe(2)
      const error = (JSON.parse(r.stdout) as {error: Record<string, string>}).error
      expect(error).toMatchObject({code: 'USAGE', service: 'kafka', address: listener.address, tls_error: 'SELF_SIGNED_CERT_IN_CHAIN'})
      expect(error.message).toContain("the broker's TLS certificate is not trusted with KAFKA_SSL_CA (not set")
      expect(error.hint).toMatch(/set KAFKA_SSL_CA to the PEM file of the CA/)
      expect(r.stdout + r.stderr).not.toContain(password)
    }
  })
})
