/**
 * The one module that builds kafkajs clients.
 *
 * Settings come from `KafkaSettings` (read from KAFKA_* at the edge): brokers, SASL
 * (plain, scram-sha-256/512), TLS. The snappy codec (kafkajs-snappy) is registered once so
 * that topics written by JVM producers with `compression.type=snappy` can be read.
 * kafkajs' own log lines go through our logger (namespaced `kafka`, secrets redacted), and
 * kafkajs errors are mapped to the project's error types by `mapKafkaError`: an unreachable
 * broker is exit 3; a refused SASL login or a broker certificate not trusted is exit 2 naming the
 * KAFKA_SASL_* / KAFKA_SSL_CA setting to fix (the broker answers: the settings are wrong); an
 * operation Kafka's ACLs refuse (TOPIC_/GROUP_/CLUSTER_/TRANSACTIONAL_ID_AUTHORIZATION_FAILED) is
 * exit 2 naming the principal, the operation and the resource, with the kafka-acls.sh command that grants it.
 */
import {readFileSync} from 'node:fs'
import {createSecureContext, type SecureContextOptions} from 'node:tls'
import kafkajs from 'kafkajs'
import ClusterModule from 'kafkajs/src/cluster/index.js'
import type {Kafka as KafkaClient, KafkaConfig, logCreator, Admin, GroupDescription, Producer, RetryOptions} from 'kafkajs'
import SnappyCodec from 'kafkajs-snappy'
import {Lz4Codec, ZstdCodec} from './codecs.js'
import {CutoverError, ServiceUnavailableError, TLS_UNTRUSTED_CODES, UsageError} from '../errors.js'
import type {KafkaSettings} from '../config/env.js'
import {silentLogger, type Logger} from '../log.js'

const {Kafka, CompressionTypes, CompressionCodecs, logLevel, AssignerProtocol} = kafkajs

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
// LZ4 and ZSTD batches (Java producers, topics with compression.type set) are read too: ./codecs.ts
CompressionCodecs[CompressionTypes.LZ4] = Lz4Codec
CompressionCodecs[CompressionTypes.ZSTD] = ZstdCodec

/**
 * kafkajs (2.2.4, pinned) asks each broker for a group's coordinator and drops their errors
 * (BrokerPool.withBroker), then throws "Failed to find group coordinator": a principal that may
 * not DESCRIBE the group (GROUP_AUTHORIZATION_FAILED, Kafka's ACLs) looked like a broker fault
 * (exit 70), and a consumer retried it for ever. On that failure one broker is asked again, and
 * its answer, when it is an error, becomes the `cause` (mapKafkaError reads it), with the group.
 */
interface KafkaJsCluster {
  findGroupCoordinatorMetadata(o: {groupId: string; coordinatorType?: number}): Promise<unknown>
  brokerPool: {findConnectedBroker(): Promise<{findGroupCoordinator(o: {groupId: string; coordinatorType?: number}): Promise<unknown>}>}
}
// the very module kafkajs' own index requires (one instance in node_modules, and one in a bundle:
// scripts/bundle.js), so the patch below is on the class kafkajs uses
const Cluster = ClusterModule as {prototype: KafkaJsCluster}
const findCoordinator = Cluster.prototype.findGroupCoordinatorMetadata
Cluster.prototype.findGroupCoordinatorMetadata = async function (this: KafkaJsCluster, o) {
  try {
    return await findCoordinator.call(this, o)
  } catch (e) {
    if ((e as Error | undefined)?.name !== 'KafkaJSGroupCoordinatorNotFound' || (e as {cause?: unknown}).cause !== undefined) throw e
    const why = await this.brokerPool.findConnectedBroker().then((b) => b.findGroupCoordinator(o)).then(() => undefined, (inner: unknown) => inner)
    if (why !== undefined && why !== null && typeof why === 'object') {
      Object.defineProperty(e, 'cause', {value: why, configurable: true, writable: true})
      if (!accessOf.has(why)) accessOf.set(why, {operation: 'Describe', groups: [o.groupId]})
    }
    throw e
  }
}

export type {KafkaClient}

export interface ClientOptions {
  logger?: Logger
  /**
   * `fail-fast` for commands that only probe (one attempt, short timeouts: an unreachable
   * broker is reported in seconds, not kafkajs' minutes of retries); `resilient` for the runtime.
   */
  mode?: 'fail-fast' | 'resilient'
  clientId?: string
  /** replaces the mode's retry (kafkajs' client-level retry: connects, metadata, and every reconnect its producers make) */
  retry?: RetryOptions
}

function kafkaLogCreator(logger: Logger): logCreator {
  return () => ({namespace, level, label, log}) => {
    const {message, ...rest} = log
    const fields = {kafkajs: namespace, message, ...rest}
    // kafkajs' errors reach the caller, mapped by mapKafkaError; its own lines (mostly retries) stay below warn.
    if (level === logLevel.ERROR || level === logLevel.WARN) logger.info(`kafkajs.${label.toLowerCase()}`, fields)
    else logger.debug(`kafkajs.${label.toLowerCase()}`, fields)
  }
}

export function kafkaConfig(settings: KafkaSettings, options: ClientOptions = {}): KafkaConfig {
  const logger = (options.logger ?? silentLogger).namespace('kafka')
  const failFast = options.mode === 'fail-fast'
  const config: KafkaConfig = {
    clientId: options.clientId ?? settings.clientId,
    brokers: settings.brokers,
    connectionTimeout: failFast ? 2000 : 5000,
    requestTimeout: failFast ? 5000 : 30000,
    // fail-fast: one attempt per seed broker. kafkajs tries the seed brokers in turn, one per
    // attempt, so a single attempt made a cluster whose first listed broker is down "unreachable".
    retry: options.retry ?? (failFast ? {retries: settings.brokers.length - 1, initialRetryTime: 50, maxRetryTime: 200} : {retries: 8, initialRetryTime: 200, maxRetryTime: 10000}),
    logLevel: logLevel.WARN,
    logCreator: kafkaLogCreator(logger),
  }
  if (settings.sasl) {
    const {mechanism, username, password} = settings.sasl
    config.sasl = {mechanism, username, password} as KafkaConfig['sasl']
  }
  if (settings.ssl) {
    const {ca, cert, key, keyPassword} = settings.ssl
    config.ssl = {
      rejectUnauthorized: settings.ssl.rejectUnauthorized,
      ...(ca ? {ca: [readPem('KAFKA_SSL_CA', ca, 'CERTIFICATE')]} : {}),
      ...(cert ? {cert: readPem('KAFKA_SSL_CERT', cert, 'CERTIFICATE')} : {}),
      ...(key ? {key: readPem('KAFKA_SSL_KEY', key, 'PRIVATE KEY')} : {}),
      ...(keyPassword !== undefined ? {passphrase: keyPassword} : {}),
    }
    checkTlsFiles(config.ssl, settings.ssl)
  }
  return config
}

/**
 * Builds the TLS context here, once, as kafkajs would at each connect: a key that does not match
 * the certificate, or an encrypted key without (or with a wrong) KAFKA_SSL_KEY_PASSWORD, fails
 * there with an OpenSSL error that kafkajs reports as a connection error ("unreachable", exit 3).
 * It is the settings, not the broker: exit 2 naming them.
 */
function checkTlsFiles(options: SecureContextOptions, ssl: NonNullable<KafkaSettings['ssl']>): void {
  try {
    createSecureContext(options)
  } catch (e) {
    const said = (e as Error).message
    const files = [ssl.ca ? `KAFKA_SSL_CA=${ssl.ca}` : '', ssl.cert ? `KAFKA_SSL_CERT=${ssl.cert}` : '', ssl.key ? `KAFKA_SSL_KEY=${ssl.key}` : ''].filter(Boolean).join(', ')
    const hint = /bad decrypt|bad password|interrupted or cancelled|PEM_read_bio/i.test(said) && ssl.key
      ? ssl.keyPassword === undefined
        ? `KAFKA_SSL_KEY (${ssl.key}) is encrypted: set KAFKA_SSL_KEY_PASSWORD to its passphrase`
        : `KAFKA_SSL_KEY_PASSWORD does not decrypt KAFKA_SSL_KEY (${ssl.key}): check the passphrase`
      : /key values mismatch|KEY_VALUES_MISMATCH/i.test(said)
        ? `KAFKA_SSL_KEY (${ssl.key}) is not the private key of KAFKA_SSL_CERT (${ssl.cert}): point them at a certificate and its own key`
        : `check the PEM files named by ${files}`
    throw new UsageError(`the TLS settings cannot be used (${files}): ${said}`, {cause: e, hint, details: {service: 'kafka'}})
  }
}

/**
 * A PEM file named by a KAFKA_SSL_* setting. One that cannot be read, or holds no PEM block of
 * the kind (node would take a CA file without one as no CA at all), is a usage error naming it.
 */
function readPem(setting: string, path: string, kind: 'CERTIFICATE' | 'PRIVATE KEY'): string {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new UsageError(`${setting} names ${path}, which cannot be read: ${(e as Error).message}`, {cause: e, hint: `point ${setting} at a readable PEM file`})
  }
  if (!new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(text)) {
    throw new UsageError(`${setting} names ${path}, which holds no PEM ${kind.toLowerCase()} (-----BEGIN ${kind}-----)`, {
      hint: `point ${setting} at a PEM file (a DER one converts with: openssl x509 -inform der -in <file> -out <file>.pem)`,
    })
  }
  return text
}

export function createKafka(settings: KafkaSettings, options: ClientOptions = {}): KafkaClient {
  const kafka = new Kafka(kafkaConfig(settings, options))
  // kafkajs' authorization errors do not say which topic or group was refused; the clients made
  // here note it from the request's arguments, for mapKafkaError (see accessOf)
  const admin = kafka.admin.bind(kafka)
  const producer = kafka.producer.bind(kafka)
  kafka.admin = (config) => watchAdmin(admin(config))
  kafka.producer = (config) => watchProducer(producer(config), config?.transactionalId)
  return kafka
}

/** An operation of Kafka's ACLs, as kafka-acls.sh --operation names it. */
export type AclOperation = 'Read' | 'Write' | 'Create' | 'Delete' | 'Describe' | 'DescribeConfigs' | 'Alter' | 'AlterConfigs' | 'IdempotentWrite'

/** What a request wanted when the broker refused it: the resources its arguments name, and the operation. */
export interface KafkaAccess {
  operation?: AclOperation
  topics?: string[]
  groups?: string[]
  transactionalId?: string
}

/** The access a failed request of a client made by createKafka wanted, by the error it threw (not changed: kafkajs' own). */
const accessOf = new WeakMap<object, KafkaAccess>()

function noteAccess<T>(work: Promise<T>, access: KafkaAccess): Promise<T> {
  return work.catch((e: unknown) => {
    if (e !== null && typeof e === 'object' && !accessOf.has(e)) accessOf.set(e, access)
    throw e
  })
}

type Method = (...args: never[]) => Promise<unknown>

/** Replaces `name` on `target` with one that notes, on failure, the access `access(...args)` says. */
function watch<T extends object>(target: T, name: keyof T & string, access: (...args: never[]) => KafkaAccess): void {
  const original = target[name] as unknown as Method | undefined
  if (typeof original !== 'function') return
  const watched = (...args: never[]) => noteAccess(original.apply(target, args), access(...args))
  ;(target as Record<string, unknown>)[name] = watched
}

const TOPIC_RESOURCE = 2

function watchAdmin(admin: Admin): Admin {
  watch(admin, 'fetchTopicMetadata', (o?: {topics?: string[]}) => ({operation: 'Describe', ...(o?.topics?.length ? {topics: o.topics} : {})}))
  watch(admin, 'fetchTopicOffsets', (topic: string) => ({operation: 'Describe', topics: [topic]}))
  watch(admin, 'fetchTopicOffsetsByTimestamp', (topic: string) => ({operation: 'Describe', topics: [topic]}))
  watch(admin, 'createTopics', (o: {topics: {topic: string}[]}) => ({operation: 'Create', topics: o.topics.map((t) => t.topic)}))
  watch(admin, 'deleteTopics', (o: {topics: string[]}) => ({operation: 'Delete', topics: o.topics}))
  watch(admin, 'createPartitions', (o: {topicPartitions: {topic: string}[]}) => ({operation: 'Alter', topics: o.topicPartitions.map((t) => t.topic)}))
  watch(admin, 'describeConfigs', (o: {resources: {type: number; name: string}[]}) => ({operation: 'DescribeConfigs', topics: o.resources.filter((r) => r.type === TOPIC_RESOURCE).map((r) => r.name)}))
  watch(admin, 'describeGroups', (groups: string[]) => ({operation: 'Describe', groups}))
  watch(admin, 'fetchOffsets', (o: {groupId: string; topics?: string[]}) => ({operation: 'Describe', groups: [o.groupId], ...(o.topics?.length ? {topics: o.topics} : {})}))
  watch(admin, 'setOffsets', (o: {groupId: string; topic: string}) => ({operation: 'Read', groups: [o.groupId], topics: [o.topic]}))
  watch(admin, 'resetOffsets', (o: {groupId: string; topic: string}) => ({operation: 'Read', groups: [o.groupId], topics: [o.topic]}))
  watch(admin, 'deleteGroups', (groups: string[]) => ({operation: 'Delete', groups}))
  return admin
}

function watchProducer(producer: Producer, transactionalId: string | undefined): Producer {
  const txn = transactionalId === undefined ? {} : {transactionalId}
  watch(producer, 'connect', () => txn)
  watch(producer, 'send', (r: {topic: string}) => ({operation: 'Write', topics: [r.topic], ...txn}))
  watch(producer, 'sendBatch', (b: {topicMessages?: {topic: string}[]}) => ({operation: 'Write', topics: [...new Set((b.topicMessages ?? []).map((t) => t.topic))], ...txn}))
  return producer
}

const UNREACHABLE = new Set([
  'KafkaJSConnectionError',
  'KafkaJSNumberOfRetriesExceeded',
  'KafkaJSBrokerNotFound',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSLockTimeout',
])

/** Maps a kafkajs error to the project's types; keeps it as `cause`. */
const REBALANCE_ERRORS = new Set(['REBALANCE_IN_PROGRESS', 'UNKNOWN_MEMBER_ID', 'ILLEGAL_GENERATION', 'NOT_COORDINATOR_FOR_GROUP'])

/** A kafkajs error that means the consumer group is rebalancing or this member left it (kafkajs rejoins). */
export function isRebalanceError(e: unknown): boolean {
  return REBALANCE_ERRORS.has((e as {type?: string} | undefined)?.type ?? '')
}

type KafkaJsError = {name?: string; message?: string; retriable?: boolean; type?: string; code?: string; cause?: unknown; originalError?: unknown; errors?: unknown[]; topic?: string}

/**
 * The error and the ones it wraps, outermost first: kafkajs wraps the real error in
 * `originalError` (retries of the client) or in `cause` (kafkajs 2: NumberOfRetriesExceeded, and
 * the NonRetriableError a producer throws when its reconnect gives up); the innermost says what happened.
 */
export function errorChain(e: unknown): KafkaJsError[] {
  const chain: KafkaJsError[] = []
  for (let next: unknown = e; next && typeof next === 'object' && chain.length < 10; ) {
    const err = next as KafkaJsError
    chain.push(err)
    next = err.originalError ?? err.cause
  }
  return chain
}

/** The broker refused the SASL login (wrong user or password, or a mechanism it does not enable). */
const SASL_REFUSED = new Set(['SASL_AUTHENTICATION_FAILED', 'UNSUPPORTED_SASL_MECHANISM', 'ILLEGAL_SASL_STATE'])

/** True for a SASL login refused for its credentials (not its mechanism), kafkajs' error or the one mapKafkaError made of it. */
export function isSaslAuthenticationError(e: unknown): boolean {
  if (e instanceof CutoverError) return e.details.kafka_error === 'SASL_AUTHENTICATION_FAILED'
  const chain = errorChain(e)
  return chain.some((x) => x.name === 'KafkaJSSASLAuthenticationError' || x.type === 'SASL_AUTHENTICATION_FAILED') && !chain.some((x) => x.type === 'UNSUPPORTED_SASL_MECHANISM')
}

/**
 * A refused SASL login or an untrusted broker certificate: the broker answers, the settings are
 * wrong. Exit 2 (as a refused PostgreSQL login), naming the settings to fix; never "unreachable",
 * and never retried (kafkajs does not retry either).
 */
function refusedSettings(chain: KafkaJsError[], settings: KafkaSettings, address: string, e: unknown): CutoverError | undefined {
  const sasl = chain.find((x) => x.name === 'KafkaJSSASLAuthenticationError' || SASL_REFUSED.has(x.type ?? ''))
  if (sasl) {
    const mechanism = settings.sasl?.mechanism ?? 'none'
    const kind = chain.some((x) => x.type === 'UNSUPPORTED_SASL_MECHANISM') ? 'UNSUPPORTED_SASL_MECHANISM' : chain.some((x) => x.type === 'ILLEGAL_SASL_STATE') ? 'ILLEGAL_SASL_STATE' : 'SASL_AUTHENTICATION_FAILED'
    const user = settings.sasl ? ` as user "${settings.sasl.username}"` : ''
    const hint = {
      UNSUPPORTED_SASL_MECHANISM: `the listener does not enable ${mechanism.toUpperCase()}: set KAFKA_SASL_MECHANISM to one it enables (plain, scram-sha-256 or scram-sha-512; its sasl.enabled.mechanisms)`,
      // a SaslHandshake sent to a listener without SASL (PLAINTEXT or SSL)
      ILLEGAL_SASL_STATE: `${address} does not take a SASL login (a PLAINTEXT or SSL listener): point KAFKA_BROKERS at the broker's SASL listener (SASL_SSL or SASL_PLAINTEXT), or unset KAFKA_SASL_MECHANISM for this one`,
      SASL_AUTHENTICATION_FAILED: `check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD, and that the user has a ${mechanism.toUpperCase()} credential on the broker (KAFKA_SASL_MECHANISM=${mechanism}: a SCRAM user is made per mechanism)`,
    }[kind]
    return new UsageError(`Kafka at ${address} refused the SASL login${user} (KAFKA_SASL_MECHANISM=${mechanism}): ${chain.at(-1)?.message ?? sasl.message}`, {
      cause: e,
      hint,
      details: {service: 'kafka', address, kafka_error: kind, mechanism},
    })
  }
  const tls = chain.find((x) => TLS_UNTRUSTED_CODES.has(x.code ?? ''))
  if (tls && settings.ssl) {
    const code = tls.code!
    const said = (tls.message ?? code).replace(/^Connection error: /, '')
    const ca = settings.ssl.ca ? `KAFKA_SSL_CA (${settings.ssl.ca})` : 'KAFKA_SSL_CA (not set: only the system CAs are trusted)'
    const hint =
      code === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? `the broker's certificate does not name the host in KAFKA_BROKERS (${address}): use a host name the certificate lists (its subjectAltName)`
        : code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID'
          ? "the broker's certificate is outside its validity dates: renew it on the broker, or check this machine's clock"
          : `set KAFKA_SSL_CA to the PEM file of the CA that signed the broker's certificate (for \`cutover dev up\`'s broker, the file \`cutover dev status\` names); KAFKA_SSL_REJECT_UNAUTHORIZED=false skips the check, for a test broker only`
    return new UsageError(`Kafka at ${address}: the broker's TLS certificate is not trusted with ${ca}: ${said} (${code})`, {
      cause: e,
      hint,
      details: {service: 'kafka', address, tls_error: code},
    })
  }
  return undefined
}

/** kafkajs' authorization errors, the ACL resource each is about, and the operation assumed when the request is not known. */
const AUTHORIZATION_FAILED: Record<string, {resource: 'topic' | 'group' | 'cluster' | 'transactional-id'; operation: AclOperation}> = {
  TOPIC_AUTHORIZATION_FAILED: {resource: 'topic', operation: 'Read'},
  GROUP_AUTHORIZATION_FAILED: {resource: 'group', operation: 'Read'},
  // an idempotent producer on a broker before 2.8 (later ones take WRITE on a topic instead)
  CLUSTER_AUTHORIZATION_FAILED: {resource: 'cluster', operation: 'IdempotentWrite'},
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: {resource: 'transactional-id', operation: 'Write'},
}

/** The principal the broker saw: the SASL user, else ANONYMOUS (without a client certificate). */
function principalOf(settings: KafkaSettings): string {
  if (settings.sasl) return `User:${settings.sasl.username}`
  if (settings.ssl?.cert) return `User:<the subject of KAFKA_SSL_CERT (${settings.ssl.cert}), as the broker's ssl.principal.mapping.rules map it>`
  return 'User:ANONYMOUS'
}

/**
 * The broker refused an operation to this principal (Kafka's ACLs). It answers and the login
 * worked: the principal lacks a permission, which an administrator grants. Exit 2 (as a refused
 * login), naming the principal, the operation and the resource when the request is known (the
 * clients of createKafka note it; `access` gives it), and the kafka-acls.sh command that grants it.
 */
function refusedAccess(chain: KafkaJsError[], settings: KafkaSettings, address: string, what: string, access: KafkaAccess | undefined, e: unknown): CutoverError | undefined {
  // a request about several resources (createTopics) fails with kafkajs' AggregateError: one error per resource, each naming its topic
  const all = chain.flatMap((x) => [x, ...(Array.isArray(x.errors) ? x.errors.flatMap((inner) => errorChain(inner)) : [])])
  const denied = all.find((x) => AUTHORIZATION_FAILED[x.type ?? ''])
  if (!denied) return undefined
  const type = denied.type!
  const kind = AUTHORIZATION_FAILED[type]!
  const noted = access ?? chain.map((x) => accessOf.get(x)).find((a) => a !== undefined)
  const deniedTopics = [...new Set(all.filter((x) => x.type === type && typeof x.topic === 'string').map((x) => x.topic!))]
  const principal = principalOf(settings)
  const q = (v: string) => (/^[\w.,:/@=-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`)
  const names =
    kind.resource === 'topic' ? (deniedTopics.length ? deniedTopics : (noted?.topics ?? [])) : kind.resource === 'group' ? (noted?.groups ?? []) : kind.resource === 'transactional-id' ? (noted?.transactionalId ? [noted.transactionalId] : []) : []
  // the cluster's operation only from a request on the cluster (a producer's connect, a topic created): else kafkajs' default
  const operation: AclOperation =
    kind.resource === 'cluster'
      ? noted?.operation === 'Create' || noted?.operation === 'IdempotentWrite' || noted?.operation === 'Alter' || noted?.operation === 'DescribeConfigs'
        ? noted.operation
        : kind.operation
      : kind.resource === 'transactional-id'
        ? 'Write'
        : kind.resource === 'group'
          ? noted?.operation === 'Describe' || noted?.operation === 'Delete'
            ? noted.operation
            : 'Read'
          : (noted?.operation ?? kind.operation)
  const resource = kind.resource === 'cluster' ? 'the cluster' : names.length ? `${kind.resource} ${names.join(', ')}` : `a ${kind.resource}`
  const secured = settings.sasl !== undefined || settings.ssl !== undefined ? ' --command-config <a file with the SASL/TLS client settings of an administrator>' : ''
  const grant = (op: AclOperation, flag: string) => `kafka-acls.sh --bootstrap-server ${q(address)}${secured} --add --allow-principal ${q(principal)} --operation ${op} ${flag}`
  const flags = kind.resource === 'cluster' ? ['--cluster'] : (names.length ? names : [`<${kind.resource}>`]).map((n) => `--${kind.resource} ${names.length ? q(n) : n}`)
  const commands = flags.map((f) => grant(operation, f)).join('; ')
  // a topic's metadata needs DESCRIBE, which READ and WRITE include: grant the one the work needs
  const describeTopic = kind.resource === 'topic' && operation === 'Describe'
  const hint = describeTopic
    ? `an administrator grants ${principal} READ on it to read it (WRITE to write it; either includes DESCRIBE): ${flags.map((f) => grant('Read', f)).join('; ')}`
    : kind.resource === 'group' && operation === 'Describe'
      ? `an administrator grants ${principal} DESCRIBE on ${resource} (READ, which includes it, for a principal that consumes in the group): ${commands}`
      : `an administrator grants ${principal} ${operation.toUpperCase()} on ${resource}: ${commands}`
  return new UsageError(`Kafka at ${address} refused ${what}: ${principal} may not ${operation.toUpperCase()} ${resource} (${type}; ACLs)`, {
    cause: e,
    hint,
    details: {
      service: 'kafka',
      address,
      kafka_error: type,
      principal,
      operation: operation.toUpperCase(),
      resource_type: kind.resource,
      ...(names.length ? {resources: names} : {}),
    },
  })
}

/** Whether `e` (mapKafkaError's result) is an operation Kafka's ACLs refused (exit 2, naming the ACL to grant). */
export function isAclRefusal(e: CutoverError | undefined): e is CutoverError {
  return e !== undefined && /_AUTHORIZATION_FAILED$/.test(String(e.details.kafka_error ?? ''))
}

export function mapKafkaError(e: unknown, settings: KafkaSettings, what = 'request', access?: KafkaAccess): CutoverError {
  if (e instanceof CutoverError) return e
  const err = e as KafkaJsError
  const address = settings.brokers.join(',')
  const chain = errorChain(e)
  const refused = refusedSettings(chain, settings, address, e) ?? refusedAccess(chain, settings, address, what, access, e)
  if (refused) return refused
  const root = chain.at(-1) ?? err
  const unreachable = chain.some((x) => UNREACHABLE.has(x.name ?? ''))
  if (unreachable) {
    const said = root?.message ?? err.message ?? String(e)
    // KAFKA_SSL against a listener without TLS: the port answers, then drops the handshake
    const tls = settings.ssl !== undefined && /TLS|SSL|secure/i.test(said)
    // the port answered, then the broker closed the connection: down, or a listener that wants
    // other security settings (TLS or a SASL login where these give none, or the other way round)
    const closed = chain.some((x) => x.name === 'KafkaJSConnectionClosedError' || /^Closed connection|^Connection closed/.test(x.message ?? ''))
    const given = `${settings.sasl ? `SASL ${settings.sasl.mechanism}` : 'no SASL'}, ${settings.ssl ? 'TLS' : 'no TLS'}`
    return new ServiceUnavailableError('kafka', address, `${what} failed: ${said}`, {
      cause: e,
      hint: tls
        ? `TLS is on (KAFKA_SSL or KAFKA_SSL_*) and ${address} dropped the TLS handshake: point KAFKA_BROKERS at the broker's TLS listener, or unset KAFKA_SSL for a plaintext one`
        : closed
          ? `the broker closed the connection: start it if it is down (\`cutover dev up\`); if it is up, the listener at ${address} may want other security settings than these (${given}): SASL_SSL takes KAFKA_SASL_* with KAFKA_SSL_CA (or KAFKA_SSL=true), SASL_PLAINTEXT KAFKA_SASL_* alone, SSL KAFKA_SSL alone, PLAINTEXT neither`
          : 'start a broker (`cutover dev up`) or point KAFKA_BROKERS at a running one',
    })
  }
  return new CutoverError('KAFKA_ERROR', `Kafka ${what} failed: ${err.message ?? String(e)}`, {
    cause: e,
    retriable: err.retriable === true,
    details: {...(err.type ? {kafka_error: err.type} : {}), brokers: address},
  })
}

/** Connects an admin client; an unreachable cluster becomes `ServiceUnavailableError`. */
export async function connectAdmin(kafka: KafkaClient, settings: KafkaSettings): Promise<Admin> {
  const admin = kafka.admin()
  try {
    await admin.connect()
    return admin
  } catch (e) {
    await admin.disconnect().catch(() => {})
    throw mapKafkaError(e, settings, 'connect')
  }
}

export interface ClusterInfo {
  clusterId: string
  controller: number | null
  brokers: {nodeId: number; host: string; port: number}[]
}

/** Asks the cluster to describe itself, with one quick attempt. */
export async function probeKafka(settings: KafkaSettings, logger?: Logger): Promise<ClusterInfo> {
  const kafka = createKafka(settings, {mode: 'fail-fast', ...(logger ? {logger} : {})})
  const admin = await connectAdmin(kafka, settings)
  try {
    const d = await admin.describeCluster()
    return {clusterId: d.clusterId, controller: d.controller, brokers: d.brokers}
  } catch (e) {
    throw mapKafkaError(e, settings, 'describe cluster')
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

/**
 * `admin.createTopics` that returns once every partition of every topic has a leader that answers
 * for it (a ListOffsets request). kafkajs' own `waitForLeaders` retries LEADER_NOT_AVAILABLE only;
 * a KRaft broker that has not yet applied the new topic answers UNKNOWN_TOPIC_OR_PARTITION or
 * NOT_LEADER_FOR_PARTITION for a moment, which kafkajs throws. Here all three are waited out (up to `timeoutMs`, default 30 s). A topic that
 * already exists is not an error. Returns false when every topic already existed.
 */
export async function createTopicsReady(admin: Admin, topics: Parameters<Admin['createTopics']>[0]['topics'], timeoutMs = 30_000): Promise<boolean> {
  const created = await admin.createTopics({waitForLeaders: false, topics}).catch((e: unknown) => {
    if ((e as {type?: string}).type === 'TOPIC_ALREADY_EXISTS') return false
    throw e
  })
  const names = topics.map((t) => t.topic)
  const deadline = Date.now() + timeoutMs
  for (let wait = 50; ; wait = Math.min(1000, wait * 2)) {
    try {
      const {topics: meta} = await admin.fetchTopicMetadata({topics: names})
      if (meta.length === names.length && meta.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) {
        // the leader in the metadata may not serve the partition yet: ask it for the offsets
        for (const t of names) await admin.fetchTopicOffsets(t)
        return created
      }
    } catch (e) {
      const type = (e as {type?: string}).type
      if (type !== 'UNKNOWN_TOPIC_OR_PARTITION' && type !== 'LEADER_NOT_AVAILABLE' && type !== 'NOT_LEADER_FOR_PARTITION') throw e
    }
    if (Date.now() > deadline) {
      throw new CutoverError('KAFKA_ERROR', `Kafka topics ${names.join(', ')} have no partition leader after ${Math.round(timeoutMs / 1000)} s`, {
        retriable: true,
        hint: 'check the broker with `cutover dev status` and its log',
      })
    }
    await new Promise((resolve) => setTimeout(resolve, wait))
  }
}

/**
 * Which member holds each partition (`topic/partition` -> `member-id@host`) of a Stable group of
 * the consumer protocol; undefined when that is not known (another state, another protocol, an
 * assignment that does not decode). `status` names the members; `stream run --until-idle` waits
 * for partitions no member holds.
 */
export function groupAssignments(g: GroupDescription | undefined): Map<string, string> | undefined {
  if (!g || g.state !== 'Stable' || g.protocolType !== 'consumer') return undefined
  const held = new Map<string, string>()
  try {
    for (const m of g.members) {
      const a = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
      for (const [topic, partitions] of Object.entries(a?.assignment ?? {})) for (const p of partitions) held.set(`${topic}/${p}`, `${m.memberId}@${m.clientHost.replace(/^\//, '')}`)
    }
  } catch {
    return undefined
  }
  return held
}

/** kafka-configs.sh that lets `topic` take a record of `bytes` (aimed at KAFKA_BROKERS, as createTopicCommand is). */
export function raiseMaxMessageBytesCommand(settings: KafkaSettings, topic: string, bytes: number): string {
  const q = (v: string) => (/^[\w.,:/=-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`)
  const secured = settings.sasl !== undefined || settings.ssl !== undefined ? ' --command-config <a file with the SASL/TLS client settings of an administrator>' : ''
  return `kafka-configs.sh --bootstrap-server ${q(settings.brokers.join(','))}${secured} --alter --entity-type topics --entity-name ${q(topic)} --add-config max.message.bytes=${bytes}`
}

/**
 * The command that creates `topic`, for a hint that says to create it: Kafka's own
 * kafka-topics.sh, aimed at the brokers in use (KAFKA_BROKERS) so that it runs as written, with
 * `partitions` (default 6: a topic a pipeline reads, as many as stream run's least concurrency)
 * and a replication factor of 3, or of every broker when the cluster has fewer (`brokerCount`).
 * With SASL or TLS settings the tool needs them too, in a client properties file (--command-config).
 * (`cutover dev up`'s broker ships no kafka-topics.sh, and its jars hold no TopicCommand.)
 */
export function createTopicCommand(settings: KafkaSettings, topic: string, o: {brokerCount: number; partitions?: number}): string {
  const q = (v: string) => (/^[\w.,:/-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`)
  const secured = settings.sasl !== undefined || settings.ssl !== undefined ? ' --command-config <a file with the SASL/TLS client settings>' : ''
  const replication = Math.max(1, Math.min(3, o.brokerCount))
  return `kafka-topics.sh --bootstrap-server ${q(settings.brokers.join(','))}${secured} --create --topic ${q(topic)} --partitions ${o.partitions ?? 6} --replication-factor ${replication}`
}

/**
 * createTopicCommand for `topic`, with the cluster's broker count and, given `partitionsOf`, as
 * many partitions as that topic has (a DLQ as its source, a replay target as its DLQ); either
 * unknown (the broker did not answer) leaves createTopicCommand's default.
 *
 * A topic missing from the list may be one the principal may not DESCRIBE (Kafka's ACLs hide it
 * from listTopics): asked for by name, the broker says so, and the authorization error naming the
 * topic and `operation` (default WRITE: the topic a backfill writes) is thrown instead of a hint
 * to create a topic that may well exist. Not for a DLQ or replay target (`partitionsOf` given):
 * the work may never write it.
 */
export async function createTopicHint(admin: Admin, settings: KafkaSettings, topic: string, o: {partitionsOf?: string; operation?: 'Read' | 'Write'} = {}): Promise<string> {
  if (o.partitionsOf === undefined) {
    const denied = await admin.fetchTopicMetadata({topics: [topic]}).then(
      () => undefined,
      (e: unknown) => (errorChain(e).some((x) => x.type === 'TOPIC_AUTHORIZATION_FAILED') ? e : undefined),
    )
    if (denied) throw mapKafkaError(denied, settings, `the metadata of topic ${topic}`, {operation: o.operation ?? 'Write', topics: [topic]})
  }
  const brokerCount = await admin.describeCluster().then((c) => c.brokers.length, () => 1)
  const partitions =
    o.partitionsOf === undefined ? undefined : await admin.fetchTopicMetadata({topics: [o.partitionsOf]}).then((m) => m.topics[0]?.partitions.length || undefined, () => undefined)
  return createTopicCommand(settings, topic, {brokerCount, ...(partitions ? {partitions} : {})})
}
