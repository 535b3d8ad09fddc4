/**
 * Kafka's ACLs: a service account the broker refuses an operation (TOPIC_AUTHORIZATION_FAILED, ...)
 * is exit 2, naming the principal (KAFKA_SASL_USERNAME, never the password), the operation and the
 * resource, with the kafka-acls.sh command that grants it; once an administrator grants that ACL,
 * the command gets past it.
 *
 * Against a private broker (startBroker with a --state-dir in tmp, never the shared one) run with
 * KRaft's StandardAuthorizer, allow.everyone.if.no.acl.found=false and User:ANONYMOUS (its
 * PLAINTEXT listener: inter-broker, controller, and this test's administrator) as super user.
 * cutover runs as the dev broker's SCRAM user `cutover` over its SASL_SSL listener, which has no
 * ACL at first. ACLs are granted with kafkajs' admin.createAcls over PLAINTEXT.
 *
 * The port with CUTOVER_TEST_ACL_BROKER_PORT (19392; the controller takes the next one, SASL_SSL
 * the one after).
 */
import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import kafkajs from 'kafkajs'
import type {Admin} from 'kafkajs'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {defaultStateDir, KAFKA_VERSION, startBroker, stopBroker, type SaslSslListener} from '../../src/dev/broker.js'
import {createKafka, createTopicsReady} from '../../src/kafka/client.js'
import {cardTransactionSpec, createSinkTables} from '../../fixtures/generator/pipeline.js'
import {createTestSchema, runCli, testPool, uniqueName} from '../helpers.js'

const {AclResourceTypes, ResourcePatternTypes, AclOperationTypes, AclPermissionTypes} = kafkajs

const port = Number(process.env.CUTOVER_TEST_ACL_BROKER_PORT ?? 19392)
const plaintext = `127.0.0.1:${port}`

describe('Kafka ACLs: a refused operation is exit 2 with the kafka-acls.sh command that grants it', () => {
  let stateDir = ''
  let listener: SaslSslListener
  let password = ''
  let admin: Admin
  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'cutover-broker-acl-'))
    const jars = join(defaultStateDir(), `lib-${KAFKA_VERSION}`)
    if (existsSync(join(jars, '.complete'))) symlinkSync(jars, join(stateDir, `lib-${KAFKA_VERSION}`))
    const up = await startBroker({
      stateDir,
      port,
      controllerPort: port + 1,
      heap: '512m',
      extraProperties: {
        'authorizer.class.name': 'org.apache.kafka.metadata.authorizer.StandardAuthorizer',
        'super.users': 'User:ANONYMOUS',
        'allow.everyone.if.no.acl.found': 'false',
      },
    })
    expect(up.reused, `something already answers on ${plaintext}`).toBe(false)
    listener = up.saslSsl!
    password = readFileSync(listener.passwordFile, 'utf8').trim()
    admin = createKafka({brokers: [plaintext], clientId: 'cutover-test'}, {mode: 'resilient'}).admin()
    await admin.connect()
  }, 180_000)
  afterAll(async () => {
    await admin?.disconnect()
    if (stateDir) {
      await stopBroker({stateDir, wipe: true})
      rmSync(stateDir, {recursive: true, force: true})
    }
  })

  /** cutover as user `cutover` over SASL_SSL */
  const asUser = () => ({...listener.env, KAFKA_SASL_PASSWORD: password, CUTOVER_LOG_LEVEL: 'warn'})

  /** Grants `operation` on a topic (or a group) to User:cutover, and waits until the broker's authorizer has it. */
  async function grant(name: string, operation: 'READ' | 'WRITE' | 'DESCRIBE', resource: 'TOPIC' | 'GROUP' = 'TOPIC'): Promise<void> {
    const acl = {
      resourceType: AclResourceTypes[resource],
      resourceName: name,
      resourcePatternType: ResourcePatternTypes.LITERAL,
      principal: 'User:cutover',
      host: '*',
      operation: AclOperationTypes[operation],
      permissionType: AclPermissionTypes.ALLOW,
    }
    await admin.createAcls({acl: [acl]})
    for (;;) {
      const {resources} = await admin.describeAcls({...acl, resourcePatternType: ResourcePatternTypes.LITERAL})
      if (resources.some((r) => r.acls.some((a) => a.principal === 'User:cutover' && a.operation === acl.operation))) return
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  function refusal(r: {code: number | null; stdout: string; stderr: string}): Record<string, unknown> {
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.stdout + r.stderr).not.toContain(password)
    return (JSON.parse(r.stdout) as {error: Record<string, unknown>}).error
  }

  const grantCommand = (operation: string, topic: string, resource = 'topic') =>
    `kafka-acls.sh --bootstrap-server ${listener.address} --command-config <a file with the SASL/TLS client settings of an administrator> --add --allow-principal User:cutover --operation ${operation} --${resource} ${topic}`

  it('stream run on a source topic the user may not read: exit 2 naming User:cutover, DESCRIBE and the topic, hint granting READ; once granted, it gets past the source and is refused creating the DLQ', async () => {
    const name = uniqueName('acl-stream')
    const topic = `${name}.raw`
    const dlqTopic = `${name}.dlq`
    await createTopicsReady(admin, [{topic, numPartitions: 1}])
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await createSinkTables(pool, schema)
    const spec = join(mkdtempSync(join(tmpdir(), 'cutover-acl-')), 'pipeline.yaml')
    writeFileSync(spec, cardTransactionSpec({name, topic, group: `${name}-group`, dlqTopic}))
    const run = () => runCli(['stream', 'run', '--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', '500', '--json'], {env: asUser()})

    const denied = refusal(await run())
    expect(denied).toMatchObject({
      code: 'USAGE',
      kafka_error: 'TOPIC_AUTHORIZATION_FAILED',
      principal: 'User:cutover',
      operation: 'DESCRIBE',
      resource_type: 'topic',
      resources: [topic],
      retriable: false,
    })
    expect(denied.message).toContain(`User:cutover may not DESCRIBE topic ${topic}`)
    expect(denied.hint).toContain(grantCommand('Read', topic))

    // the ACL the hint names: the source is read; the next refusal is the DLQ it would create
    await grant(topic, 'READ')
    const dlqDenied = refusal(await run())
    expect(dlqDenied).toMatchObject({kafka_error: 'TOPIC_AUTHORIZATION_FAILED', principal: 'User:cutover', operation: 'CREATE', resources: [dlqTopic]})
    expect(dlqDenied.hint).toContain(grantCommand('Create', dlqTopic))

    // the DLQ made by an administrator, written by the user: the next refusal is the consumer group
    // (kafkajs' consumer crashed and was restarted for ever: the run never ended, lag growing)
    await createTopicsReady(admin, [{topic: dlqTopic, numPartitions: 1}])
    await grant(dlqTopic, 'WRITE')
    const groupDenied = refusal(await run())
    expect(groupDenied).toMatchObject({kafka_error: 'GROUP_AUTHORIZATION_FAILED', principal: 'User:cutover', operation: 'READ', resource_type: 'group', resources: [`${name}-group`]})
    expect(groupDenied.hint).toContain(grantCommand('Read', `${name}-group`, 'group'))
    await grant(`${name}-group`, 'READ', 'GROUP')
    const ok = await run()
    expect(ok.code, ok.stdout + ok.stderr).toBe(0)
    expect(ok.json).toMatchObject({read: 0, written: 0})
  })

  it('backfill into a topic the user may not write: exit 2 naming WRITE and the topic (not "does not exist"); once granted, the rows land on it', async () => {
    const topic = uniqueName('acl-backfill')
    await createTopicsReady(admin, [{topic, numPartitions: 1}])
    const csv = join(mkdtempSync(join(tmpdir(), 'cutover-acl-')), 'txn.csv')
    writeFileSync(csv, 'id,acct,amt\nB1,A1,10.50\nB2,A2,1234.56\n')
    const backfill = () => runCli(['backfill', '--from', `csv:${csv}`, '--to', topic, '--key', 'id', '--json'], {env: asUser()})

    const denied = refusal(await backfill())
    expect(denied).toMatchObject({code: 'USAGE', kafka_error: 'TOPIC_AUTHORIZATION_FAILED', principal: 'User:cutover', operation: 'WRITE', resources: [topic]})
    expect(denied.message).toContain(`User:cutover may not WRITE topic ${topic}`)
    expect(denied.hint).toContain(grantCommand('Write', topic))

    await grant(topic, 'WRITE')
    const r = await backfill()
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json).toMatchObject({status: 'completed', read: 2, sent: 2})
    // read back as the administrator, with kcat (librdkafka, an independent client)
    const k = spawnSync('kcat', ['-b', plaintext, '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%k %s\\n'], {encoding: 'utf8'})
    expect(k.status, k.stderr).toBe(0)
    expect(k.stdout.trim().split('\n')).toEqual(['B1 {"id":"B1","acct":"A1","amt":"10.50"}', 'B2 {"id":"B2","acct":"A2","amt":"1234.56"}'])
  })

  it('status --group of a group the user may not describe: exit 2 naming DESCRIBE and the group (kafkajs reports only "Failed to find group coordinator"); once granted, the status', async () => {
    const topic = uniqueName('acl-status')
    const group = `${topic}-group`
    await createTopicsReady(admin, [{topic, numPartitions: 1}])
    const producer = createKafka({brokers: [plaintext], clientId: 'cutover-test'}).producer()
    await producer.connect()
    await producer.send({topic, acks: -1, messages: [{key: 'K1', value: 'v'}]})
    await producer.disconnect()
    await grant(topic, 'READ')
    // the group coordinator up (__consumer_offsets made and loaded) before the user asks for it
    for (;;) {
      const ok = await admin.describeGroups([group]).then(() => true, () => false)
      if (ok) break
      await new Promise((r) => setTimeout(r, 100))
    }
    const status = () => runCli(['status', '--group', group, '--topic', topic, '--window', '0', '--json'], {env: asUser()})

    const denied = refusal(await status())
    expect(denied).toMatchObject({code: 'USAGE', kafka_error: 'GROUP_AUTHORIZATION_FAILED', principal: 'User:cutover', operation: 'DESCRIBE', resource_type: 'group', resources: [group]})
    expect(denied.message).toContain(`User:cutover may not DESCRIBE group ${group}`)
    expect(denied.hint).toContain(grantCommand('Describe', group, 'group'))

    await grant(group, 'DESCRIBE', 'GROUP')
    const r = await status()
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json).toMatchObject({group, members: 0, partitions: [{topic, partition: 0, end: 1, committed: null, lag: 1}]})
  })

  it('dlq inspect of a DLQ topic the user may not read: exit 2 naming READ and the topic (it said "does not exist": ACLs hide it from the list)', async () => {
    const topic = uniqueName('acl-dlq')
    await createTopicsReady(admin, [{topic, numPartitions: 1}])
    const denied = refusal(await runCli(['dlq', 'inspect', '--topic', topic, '--json'], {env: asUser()}))
    expect(denied).toMatchObject({code: 'USAGE', kafka_error: 'TOPIC_AUTHORIZATION_FAILED', principal: 'User:cutover', resources: [topic]})
    expect(denied.message).toContain(`User:cutover may not READ topic ${topic} (TOPIC_AUTHORIZATION_FAILED; ACLs); or it does not exist (Kafka does not say which`)
    expect(denied.hint).toContain(grantCommand('Read', topic))
    // the broker answers the same for a topic that does not exist (to a principal without DESCRIBE)
    const missing = refusal(await runCli(['dlq', 'inspect', '--topic', `${topic}-absent`, '--json'], {env: asUser()}))
    expect(missing).toMatchObject({kafka_error: 'TOPIC_AUTHORIZATION_FAILED', resources: [`${topic}-absent`]})
    // as the administrator (may DESCRIBE anything), a topic that does not exist is said so
    const admins = await runCli(['dlq', 'inspect', '--topic', `${topic}-absent`, '--json'], {env: {KAFKA_BROKERS: plaintext}})
    expect(admins.code, admins.stdout + admins.stderr).toBe(2)
    expect((JSON.parse(admins.stdout) as {error: {message: string}}).error.message).toContain('does not exist')
  })
})
