import {describe, expect, it} from 'vitest'
import {CheckFailedError, CutoverError, ExitCode, exitCodeOf, ServiceUnavailableError, SpecError, UsageError} from '../../src/errors.js'
import {createLogger, redact, redactString, type LogEntry} from '../../src/log.js'
import {databaseUrlFromEnv, DEFAULT_DATABASE_URL, kafkaSettingsFromEnv} from '../../src/config/env.js'
import {mapKafkaError} from '../../src/kafka/client.js'
import {mapPgError} from '../../src/pg/pool.js'
import {kafkaClusterId} from '../../src/dev/broker.js'

describe('errors map to the exit codes of DESIGN.md', () => {
  it('maps each kind', () => {
    expect(exitCodeOf(new UsageError('x'))).toBe(2)
    expect(exitCodeOf(new SpecError({file: 'p.yaml', line: 3, column: 5}, 'bad'))).toBe(2)
    expect(exitCodeOf(new ServiceUnavailableError('kafka', 'h:1', 'down'))).toBe(3)
    expect(exitCodeOf(new CheckFailedError('parity 97%'))).toBe(1)
    expect(exitCodeOf(new Error('boom'))).toBe(ExitCode.INTERNAL)
  })
  it('spec errors say file:line:column', () => {
    expect(new SpecError({file: 'p.yaml', line: 3, column: 5}, 'bad').message).toBe('p.yaml:3:5: bad')
  })
  it('a spec error raised with its file only takes line and column from its caller (at), keeping hint and details', () => {
    const e = new SpecError({file: 'p.yaml'}, 'sink table s.t does not exist', {hint: 'CREATE TABLE ...', details: {missing_tables: ['s.t']}})
    const at = e.at({file: 'p.yaml', line: 12, column: 12})
    expect(at).toBeInstanceOf(SpecError)
    expect(at.toJSON()).toEqual({code: 'SPEC_INVALID', message: 'p.yaml:12:12: sink table s.t does not exist', hint: 'CREATE TABLE ...', retriable: false, missing_tables: ['s.t'], file: 'p.yaml', line: 12, column: 12})
    expect(at.exitCode).toBe(2)
    // one that has its place keeps it; another file's place is not taken
    const placed = new SpecError({file: 'p.yaml', line: 3, column: 5}, 'bad')
    expect(placed.at({file: 'p.yaml', line: 12, column: 12})).toBe(placed)
    expect(e.at({file: 'other.yaml', line: 1, column: 1})).toBe(e)
  })
  it('keeps the cause', () => {
    const cause = new Error('root')
    expect(new CutoverError('INTERNAL', 'wrapped', {cause}).cause).toBe(cause)
  })
})

describe('secrets never leave the process', () => {
  it('redacts URL credentials and secret-looking keys', () => {
    const cases: [string, string][] = [
      ['postgres://bob:hunter2@db:5432/x', 'postgres://bob:***@db:5432/x'],
      // a password holding '/' (base64) or '@', an empty user, no scheme (a pg: target quoted back), sslpassword=
      ['DATABASE_URL "postgres://app:Zm9v/YmFy@db/x" is not a URL', 'DATABASE_URL "postgres://app:***@db/x" is not a URL'],
      ['postgresql://user:pa@ss@host/db', 'postgresql://user:***@host/db'],
      ['postgres://:pw@h/db', 'postgres://:***@h/db'],
      ['relation "//app:s3cret@legacy-db/core" does not exist', 'relation "//app:***@legacy-db/core" does not exist'],
      ['host=db sslpassword=k3y password=p4ss', 'host=db sslpassword=*** password=***'],
      // no credentials: left as it is
      ['reach us at ops@bank.example, see https://docs.example/x', 'reach us at ops@bank.example, see https://docs.example/x'],
    ]
    for (const [text, shown] of cases) expect(redactString(text), text).toBe(shown)
    expect(redact({password: 'p', nested: {saslPassword: 'q', url: 'kafka://u:v@h'}})).toEqual({
      password: '***',
      nested: {saslPassword: '***', url: 'kafka://u:***@h'},
    })
  })
  it('the logger redacts, namespaces and filters by level', () => {
    const seen: LogEntry[] = []
    const log = createLogger({level: 'info', sink: (e) => seen.push(e)}).namespace('kafka')
    log.debug('hidden')
    log.info('connect', {url: 'postgres://a:b@c/d', token: 't'})
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatchObject({namespace: 'cutover.kafka', event: 'connect', url: 'postgres://a:***@c/d', token: '***'})
  })
  it('pg errors name the address without the password', () => {
    const e = mapPgError(Object.assign(new Error('connect ECONNREFUSED'), {code: 'ECONNREFUSED'}), 'postgres://u:pw@10.0.0.1:6543/db')
    expect(e).toBeInstanceOf(ServiceUnavailableError)
    expect(e.message).toContain('10.0.0.1:6543/db')
    expect(e.message).not.toContain('pw')
  })
})

describe('connection settings', () => {
  it('defaults', () => {
    expect(kafkaSettingsFromEnv({}).brokers).toEqual(['127.0.0.1:9092'])
    expect(databaseUrlFromEnv({})).toBe(DEFAULT_DATABASE_URL)
  })
  it('reads SASL and TLS', () => {
    const s = kafkaSettingsFromEnv({KAFKA_BROKERS: 'a:1,b:2', KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p', KAFKA_SSL: 'true'})
    expect(s.brokers).toEqual(['a:1', 'b:2'])
    expect(s.sasl).toEqual({mechanism: 'scram-sha-512', username: 'u', password: 'p'})
    expect(s.ssl?.rejectUnauthorized).toBe(true)
  })
  it('rejects a bad mechanism and a missing password with a usage error', () => {
    expect(() => kafkaSettingsFromEnv({KAFKA_SASL_MECHANISM: 'gssapi', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p'})).toThrow(UsageError)
    expect(() => kafkaSettingsFromEnv({KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u'})).toThrow(/KAFKA_SASL_PASSWORD/)
  })
  it('maps a connection error wrapped in kafkajs 2 `cause` (a producer whose reconnect gave up) to ServiceUnavailableError', async () => {
    const {KafkaJSConnectionError, KafkaJSNonRetriableError} = (await import('kafkajs')).default
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092')
    const e = mapKafkaError(Object.assign(new KafkaJSNonRetriableError(refused), {cause: refused}), kafkaSettingsFromEnv({}), 'send')
    expect(e.exitCode).toBe(3)
    expect(e.message).toContain('ECONNREFUSED')
    // a non-connectivity error stays a Kafka error (exit 70)
    const other = mapKafkaError(new KafkaJSNonRetriableError(new Error('Topic authorization failed')), kafkaSettingsFromEnv({}), 'send')
    expect(other).toMatchObject({code: 'KAFKA_ERROR', exitCode: ExitCode.INTERNAL})
  })
  it('maps "too many connections" to ServiceUnavailableError (exit 3, retried), with its own fix', () => {
    const e = mapPgError(Object.assign(new Error('too many connections for role "x"'), {code: '53300'}), DEFAULT_DATABASE_URL)
    expect(e).toMatchObject({code: 'SERVICE_UNAVAILABLE', exitCode: 3, retriable: true})
    expect(e.hint).toMatch(/no connection to spare/)
  })
  it('maps kafkajs connection errors to ServiceUnavailableError', () => {
    const e = mapKafkaError(Object.assign(new Error('Connection error'), {name: 'KafkaJSConnectionError'}), kafkaSettingsFromEnv({}))
    expect(e.exitCode).toBe(3)
    expect(e.retriable).toBe(true)
  })
})

describe('cutover dev up: the KRaft cluster id', () => {
  it('never starts with "-", which kafka-storage would read as an option', () => {
    // fb ef be: four 6-bit groups of 62, "----" in base64url
    const draws = [Buffer.from('fbefbe' + '00'.repeat(13), 'hex'), Buffer.from('00112233445566778899aabbccddeeff', 'hex')]
    expect(draws[0]!.toString('base64url').startsWith('-')).toBe(true)
    let i = 0
    const id = kafkaClusterId(() => draws[i++]!)
    expect(id).toBe(draws[1]!.toString('base64url'))
    expect(i).toBe(2)
    for (let k = 0; k < 2000; k++) expect(kafkaClusterId()).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/)
  })
})
