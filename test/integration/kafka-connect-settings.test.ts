/**
 * How commands connect (review): against the dev broker's PLAINTEXT and SASL_SSL listeners.
 * - a cluster whose first listed seed broker is down is still reached (fail-fast tried one);
 * - KAFKA_SSL=TRUE turns TLS on (only the lower-case "true" did);
 * - a client key that does not match its certificate, or an encrypted one without its passphrase,
 *   is exit 2 naming KAFKA_SSL_KEY / KAFKA_SSL_KEY_PASSWORD (was exit 3 "start a broker");
 *   with KAFKA_SSL_KEY_PASSWORD the encrypted key is used.
 */
import {execFileSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {defaultStateDir, readBrokerState, saslSslListener} from '../../src/dev/broker.js'
import {createTestTopic, kafka, kafkaSettings, runCli, tempDir} from '../helpers.js'

const stateDir = defaultStateDir()
const state = readBrokerState(stateDir)
const listener = state ? saslSslListener(stateDir, state) : null
if (!listener && process.env.CI === 'true') throw new Error(`review-kafka-connect: no SASL_SSL listener in ${stateDir}`)
const password = listener ? readFileSync(listener.passwordFile, 'utf8').trim() : ''

function saslEnv(over: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = {...listener!.env, KAFKA_SASL_PASSWORD: password, ...over}
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined))
}

async function deadLetterTopic(): Promise<string> {
  const topic = await createTestTopic({prefix: 'review-connect'})
  const producer = kafka().producer()
  await producer.connect()
  await producer.send({topic, acks: -1, messages: [{key: 'K1', value: 'x', headers: {'cutover.error.code': 'UNPARSEABLE_AMOUNT', 'cutover.error.stage': 'normalize'}}]})
  await producer.disconnect()
  return topic
}

/** A client certificate (signed by a throw-away CA), its key in clear, encrypted (passphrase `pass`), and another key. */
function clientFiles(): {cert: string; key: string; encrypted: string; otherKey: string} {
  const dir = tempDir('cutover-review-tls-')
  const f = (n: string) => join(dir, n)
  const ssl = (...args: string[]) => execFileSync('openssl', args, {stdio: 'pipe'})
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=review-ca')
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('client.key'), '-out', f('client.csr'), '-subj', '/CN=client')
  ssl('x509', '-req', '-in', f('client.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('client.pem'), '-days', '2')
  ssl('pkey', '-in', f('client.key'), '-aes256', '-passout', 'pass:pass-Phr4se', '-out', f('client-enc.key'))
  return {cert: f('client.pem'), key: f('client.key'), encrypted: f('client-enc.key'), otherKey: f('ca.key')}
}

describe('connecting to Kafka (review)', () => {
  it('a seed broker list whose first broker is down: status and dlq inspect reach the cluster through the next one (exit 0, not 3)', async () => {
    const topic = await deadLetterTopic()
    const brokers = `127.0.0.1:1,${kafkaSettings().brokers.join(',')}`
    const inspect = await runCli(['dlq', 'inspect', '--topic', topic, '--json'], {env: {KAFKA_BROKERS: brokers}})
    expect(inspect.code, inspect.stdout + inspect.stderr).toBe(0)
    expect(inspect.json).toMatchObject({topic, total: 1, by_code: {UNPARSEABLE_AMOUNT: 1}})
    const status = await runCli(['status', '--group', `review-none-${topic}`, '--topic', topic, '--window', '0', '--json'], {env: {KAFKA_BROKERS: brokers}})
    expect(status.code, status.stdout + status.stderr).not.toBe(3)
    expect(status.stdout).not.toContain('SERVICE_UNAVAILABLE')
  })

  describe.skipIf(!listener)('over SASL_SSL', () => {
    it('KAFKA_SSL=TRUE (upper case) with KAFKA_SSL_REJECT_UNAUTHORIZED=False: TLS is on, the self-signed broker accepted, dlq inspect reads the topic', async () => {
      const topic = await deadLetterTopic()
      const r = await runCli(['dlq', 'inspect', '--topic', topic, '--json'], {env: saslEnv({KAFKA_SSL_CA: undefined, KAFKA_SSL: 'TRUE', KAFKA_SSL_REJECT_UNAUTHORIZED: 'False'})})
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(r.json).toMatchObject({topic, total: 1})
      expect(r.stdout + r.stderr).not.toContain(password)
    })

    it('a client key that is not the certificate\'s, or encrypted without KAFKA_SSL_KEY_PASSWORD: exit 2 naming the setting; with the passphrase it connects, which is never shown', async () => {
      const topic = await deadLetterTopic()
      const files = clientFiles()
      const [mismatch, noPass, wrongPass, ok] = await Promise.all([
        runCli(['dlq', 'inspect', '--topic', topic, '--json'], {env: saslEnv({KAFKA_SSL_CERT: files.cert, KAFKA_SSL_KEY: files.otherKey})}),
        runCli(['dlq', 'inspect', '--topic', topic, '--json'], {env: saslEnv({KAFKA_SSL_CERT: files.cert, KAFKA_SSL_KEY: files.encrypted})}),
        runCli(['dlq', 'inspect', '--topic', topic, '--json'], {env: saslEnv({KAFKA_SSL_CERT: files.cert, KAFKA_SSL_KEY: files.encrypted, KAFKA_SSL_KEY_PASSWORD: 'Wr0ng-phrase'})}),
        runCli(['dlq', 'inspect', '--topic', topic, '--json', '--log-level', 'debug'], {env: saslEnv({KAFKA_SSL_CERT: files.cert, KAFKA_SSL_KEY: files.encrypted, KAFKA_SSL_KEY_PASSWORD: 'pass-Phr4se'})}),
      ])
      expect([mismatch, noPass, wrongPass].map((r) => [r.code, r.json?.error?.code, r.json?.error?.hint])).toEqual([
        [2, 'USAGE', `KAFKA_SSL_KEY (${files.otherKey}) is not the private key of KAFKA_SSL_CERT (${files.cert}): point them at a certificate and its own key`],
        [2, 'USAGE', `KAFKA_SSL_KEY (${files.encrypted}) is encrypted: set KAFKA_SSL_KEY_PASSWORD to its passphrase`],
        [2, 'USAGE', `KAFKA_SSL_KEY_PASSWORD does not decrypt KAFKA_SSL_KEY (${files.encrypted}): check the passphrase`],
      ])
      expect(ok.code, ok.stdout + ok.stderr).toBe(0)
      expect(ok.json).toMatchObject({topic, total: 1})
      for (const r of [mismatch, noPass, wrongPass, ok]) {
        expect(r.stdout + r.stderr).not.toContain(password)
        expect(r.stdout + r.stderr).not.toContain('Phr4se')
        expect(r.stdout + r.stderr).not.toContain('Wr0ng-phrase')
      }
    })
  })
})
