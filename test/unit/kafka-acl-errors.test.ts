/**
 * mapKafkaError for Kafka's authorization errors that the integration test (../integration/kafka-acl.test.ts)
 * does not reach on its broker: CLUSTER_AUTHORIZATION_FAILED (IDEMPOTENT_WRITE on brokers before 2.8)
 * and TRANSACTIONAL_ID_AUTHORIZATION_FAILED, and the principal without SASL. kafkajs' own error classes.
 */
import kafkajs from 'kafkajs'
import {describe, expect, it} from 'vitest'
import {ExitCode} from '../../src/errors.js'
import {mapKafkaError} from '../../src/kafka/client.js'
import type {KafkaSettings} from '../../src/config/env.js'

const {KafkaJSProtocolError, KafkaJSNonRetriableError} = kafkajs // as kafkajs' retrier wraps a bailed error: new KafkaJSNonRetriableError(e, {cause: e})

const protocolError = (type: string, code: number, message: string) => new KafkaJSProtocolError({type, code, message, retriable: false} as unknown as Error)

const sasl: KafkaSettings = {brokers: ['kafka1:9093', 'kafka2:9093'], clientId: 'c', sasl: {mechanism: 'scram-sha-512', username: 'svc-etl', password: 'S3cret-pw'}, ssl: {rejectUnauthorized: true}}

describe('mapKafkaError: authorization errors are exit 2 with the kafka-acls.sh command that grants them', () => {
  it('CLUSTER_AUTHORIZATION_FAILED from an idempotent producer: IDEMPOTENT_WRITE on the cluster, as the SASL user, never the password', () => {
    const denied = protocolError('CLUSTER_AUTHORIZATION_FAILED', 31, 'Cluster authorization failed')
    const e = mapKafkaError(Object.assign(new KafkaJSNonRetriableError(denied), {cause: denied}), sasl, 'connect producer')
    expect(e).toMatchObject({code: 'USAGE', exitCode: ExitCode.USAGE, retriable: false})
    expect(e.toJSON()).toMatchObject({kafka_error: 'CLUSTER_AUTHORIZATION_FAILED', principal: 'User:svc-etl', operation: 'IDEMPOTENTWRITE', resource_type: 'cluster', address: 'kafka1:9093,kafka2:9093'})
    expect(e.message).toBe('Kafka at kafka1:9093,kafka2:9093 refused connect producer: User:svc-etl may not IDEMPOTENTWRITE the cluster (CLUSTER_AUTHORIZATION_FAILED; ACLs)')
    expect(e.hint).toContain(
      'kafka-acls.sh --bootstrap-server kafka1:9093,kafka2:9093 --command-config <a file with the SASL/TLS client settings of an administrator> --add --allow-principal User:svc-etl --operation IdempotentWrite --cluster',
    )
    expect(JSON.stringify(e.toJSON()) + e.hint).not.toContain('S3cret-pw')
  })

  it('TRANSACTIONAL_ID_AUTHORIZATION_FAILED names the transactional id given', () => {
    const denied = protocolError('TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 53, 'Transactional Id authorization failed')
    const e = mapKafkaError(denied, sasl, 'replay', {transactionalId: 'cutover-replay-txn.dlq'})
    expect(e.exitCode).toBe(ExitCode.USAGE)
    expect(e.toJSON()).toMatchObject({kafka_error: 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', operation: 'WRITE', resource_type: 'transactional-id', resources: ['cutover-replay-txn.dlq']})
    expect(e.hint).toContain('--operation Write --transactional-id cutover-replay-txn.dlq')
  })

  it('without SASL the principal is User:ANONYMOUS, and the command needs no --command-config; an unknown topic is a placeholder', () => {
    const denied = protocolError('TOPIC_AUTHORIZATION_FAILED', 29, 'Not authorized to access topics: [Topic authorization failed]')
    const e = mapKafkaError(denied, {brokers: ['127.0.0.1:9092'], clientId: 'c'}, 'topic metadata')
    expect(e.exitCode).toBe(ExitCode.USAGE)
    expect(e.message).toContain('User:ANONYMOUS may not READ a topic')
    expect(e.hint).toContain('kafka-acls.sh --bootstrap-server 127.0.0.1:9092 --add --allow-principal User:ANONYMOUS --operation Read --topic <topic>')
  })

  it('GROUP_AUTHORIZATION_FAILED on joining a group: READ on the group', () => {
    const denied = protocolError('GROUP_AUTHORIZATION_FAILED', 30, 'Not authorized to access group: Group authorization failed')
    const e = mapKafkaError(denied, sasl, 'start the consumer', {groups: ['cutover-txn']})
    expect(e.toJSON()).toMatchObject({kafka_error: 'GROUP_AUTHORIZATION_FAILED', operation: 'READ', resources: ['cutover-txn']})
    expect(e.hint).toContain('--operation Read --group cutover-txn')
  })
})
