/**
 * KAFKA_* settings as read from the environment: a setting that would be dropped or misread is
 * refused (UsageError, exit 2) naming the variable to fix, never silently ignored; and the
 * fail-fast client tries every seed broker once (kafkaConfig's retry).
 */
import {describe, expect, it} from 'vitest'
import {kafkaSettingsFromEnv} from '../../src/config/env.js'
import {UsageError} from '../../src/errors.js'
import {kafkaConfig} from '../../src/kafka/client.js'

const sasl = {KAFKA_SASL_MECHANISM: 'scram-sha-256', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'Secr3t-pw'}

function refusal(env: Record<string, string>): {message: string; hint: string | undefined} {
  try {
    kafkaSettingsFromEnv(env)
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError)
    const u = e as UsageError
    expect(u.exitCode).toBe(2)
    expect(`${u.message} ${u.hint ?? ''}`).not.toContain('Secr3t-pw')
    return {message: u.message, hint: u.hint}
  }
  throw new Error(`not refused: ${JSON.stringify(env)}`)
}

describe('KAFKA_* settings (review)', () => {
  it('KAFKA_SSL and KAFKA_SSL_REJECT_UNAUTHORIZED take TRUE/1/yes and FALSE/0/no in any case; another value is refused', () => {
    expect(kafkaSettingsFromEnv({KAFKA_SSL: 'TRUE'}).ssl).toEqual({rejectUnauthorized: true})
    expect(kafkaSettingsFromEnv({KAFKA_SSL: '1'}).ssl).toEqual({rejectUnauthorized: true})
    expect(kafkaSettingsFromEnv({KAFKA_SSL: 'Yes', KAFKA_SSL_REJECT_UNAUTHORIZED: 'FALSE'}).ssl).toEqual({rejectUnauthorized: false})
    expect(kafkaSettingsFromEnv({KAFKA_SSL: 'true', KAFKA_SSL_REJECT_UNAUTHORIZED: '0'}).ssl).toEqual({rejectUnauthorized: false})
    expect(kafkaSettingsFromEnv({KAFKA_SSL: 'false'}).ssl).toBeUndefined()
    expect(refusal({KAFKA_SSL: 'ture'}).message).toBe('KAFKA_SSL "ture" is neither true nor false')
    expect(refusal({KAFKA_SSL: 'true', KAFKA_SSL_REJECT_UNAUTHORIZED: 'nope'}).message).toBe('KAFKA_SSL_REJECT_UNAUTHORIZED "nope" is neither true nor false')
    expect(refusal({KAFKA_SSL: 'false', KAFKA_SSL_CA: '/ca.pem'}).message).toBe('KAFKA_SSL is false but KAFKA_SSL_CA is set (a KAFKA_SSL_* file turns TLS on)')
  })

  it('a SASL user and password without KAFKA_SASL_MECHANISM is refused (no login would be made)', () => {
    const r = refusal({KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'Secr3t-pw'})
    expect(r.message).toBe('KAFKA_SASL_USERNAME is set but KAFKA_SASL_MECHANISM is not: no SASL login would be made')
    expect(r.hint).toMatch(/^set KAFKA_SASL_MECHANISM/)
  })

  it('an unknown KAFKA_SASL_*/KAFKA_SSL_* variable or a KAFKA_* typo is refused, with the name to use; Kafka scripts\' own variables are left alone', () => {
    expect(refusal({...sasl, KAFKA_SASL_PASWORD: 'Secr3t-pw'}).message).toBe('KAFKA_SASL_PASWORD is not a setting cutover reads: did you mean KAFKA_SASL_PASSWORD? (its value is not shown)')
    expect(refusal({KAFKA_BROKER: 'prod:9092'}).message).toBe('KAFKA_BROKER is not a setting cutover reads: did you mean KAFKA_BROKERS? (its value is not shown)')
    const store = refusal({KAFKA_SSL_TRUSTSTORE_LOCATION: '/t.jks'})
    expect(store.message).toBe('KAFKA_SSL_TRUSTSTORE_LOCATION is not a setting cutover reads (its value is not shown)')
    expect(store.hint).toContain('KAFKA_SSL_CA')
    const scripts = {KAFKA_HOME: '/opt/kafka', KAFKA_OPTS: '-Xmx1g', KAFKA_HEAP_OPTS: '-Xmx1g', KAFKA_BROKER_ID: '1', KAFKA_CLUSTER_ID: 'x', KAFKA_JMX_PORT: '9999', KAFKA_LOG4J_OPTS: 'x', KAFKA_DEBUG: '1'}
    expect(kafkaSettingsFromEnv(scripts).brokers).toEqual(['127.0.0.1:9092'])
  })

  it('KAFKA_SASL_MECHANISM: any case and blanks taken; SCRAM_SHA_512 refused with the spelling to use', () => {
    expect(kafkaSettingsFromEnv({...sasl, KAFKA_SASL_MECHANISM: ' SCRAM-SHA-512 '}).sasl?.mechanism).toBe('scram-sha-512')
    expect(refusal({...sasl, KAFKA_SASL_MECHANISM: 'SCRAM_SHA_512'}).message).toBe('KAFKA_SASL_MECHANISM "SCRAM_SHA_512" is not supported: did you mean scram-sha-512?')
  })

  it('KAFKA_BROKERS: spaces trimmed; no port, a port out of range, ; or blanks between brokers, an IPv6 literal: refused with the fix', () => {
    expect(kafkaSettingsFromEnv({KAFKA_BROKERS: ' a:9092 , b:9093 ,'}).brokers).toEqual(['a:9092', 'b:9093'])
    expect(refusal({KAFKA_BROKERS: 'broker1.bank'}).hint).toBe("add the port: KAFKA_BROKERS=broker1.bank:9092 (9092 is Kafka's usual one)")
    expect(refusal({KAFKA_BROKERS: 'h:99999'}).message).toBe('KAFKA_BROKERS entry "h:99999" has port 99999, which is not a TCP port (1 to 65535)')
    expect(refusal({KAFKA_BROKERS: 'h:0'}).message).toContain('has port 0')
    expect(refusal({KAFKA_BROKERS: 'a:1;b:2'}).hint).toBe('separate brokers with commas: KAFKA_BROKERS=a:1,b:2')
    expect(refusal({KAFKA_BROKERS: 'a:1 b:2'}).hint).toBe('separate brokers with commas: KAFKA_BROKERS=a:1,b:2')
    expect(refusal({KAFKA_BROKERS: '[::1]:9092'}).hint).toMatch(/cannot connect to an IPv6 address written out/)
  })

  it('a client certificate takes KAFKA_SSL_CERT and KAFKA_SSL_KEY both; KAFKA_SSL_KEY_PASSWORD is its passphrase', () => {
    expect(refusal({KAFKA_SSL_CERT: '/c.pem'}).message).toBe('KAFKA_SSL_CERT is set but KAFKA_SSL_KEY is not: a client certificate needs both')
    expect(refusal({KAFKA_SSL_KEY: '/k.pem'}).message).toBe('KAFKA_SSL_KEY is set but KAFKA_SSL_CERT is not: a client certificate needs both')
    expect(refusal({KAFKA_SSL: 'true', KAFKA_SSL_KEY_PASSWORD: 'Secr3t-pw'}).message).toBe('KAFKA_SSL_KEY_PASSWORD is set but KAFKA_SSL_KEY is not (the password is not shown)')
    expect(kafkaSettingsFromEnv({KAFKA_SSL_CERT: '/c.pem', KAFKA_SSL_KEY: '/k.pem', KAFKA_SSL_KEY_PASSWORD: 'pp'}).ssl).toEqual({cert: '/c.pem', key: '/k.pem', keyPassword: 'pp', rejectUnauthorized: true})
  })

  it('the fail-fast client makes one attempt per seed broker (kafkajs tries them in turn, one per attempt)', () => {
    expect(kafkaConfig(kafkaSettingsFromEnv({KAFKA_BROKERS: 'a:1'}), {mode: 'fail-fast'}).retry).toMatchObject({retries: 0})
    expect(kafkaConfig(kafkaSettingsFromEnv({KAFKA_BROKERS: 'a:1,b:2,c:3'}), {mode: 'fail-fast'}).retry).toMatchObject({retries: 2})
  })
})
