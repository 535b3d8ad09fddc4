/**
 * The one module that builds kafkajs clients.
 *
 * Settings come from `KafkaSettings` (read from KAFKA_* at the edge): brokers, SASL
 * (plain, scram-sha-256/512), TLS. The snappy codec (kafkajs-snappy) is registered once so
 * that topics written by JVM producers with `compression.type=snappy` can be read.
 * kafkajs' own log lines go through our logger (namespaced `kafka`, secrets redacted), and
 * kafkajs errors are mapped to the project's error types by `mapKafkaError`.
 */
import {readFileSync} from 'node:fs'
import kafkajs from 'kafkajs'
import type {Kafka as KafkaClient, KafkaConfig, logCreator, Admin, GroupDescription, RetryOptions} from 'kafkajs'
import SnappyCodec from 'kafkajs-snappy'
import {CutoverError, ServiceUnavailableError} from '../errors.js'
import type {KafkaSettings} from '../config/env.js'
import {silentLogger, type Logger} from '../log.js'

const {Kafka, CompressionTypes, CompressionCodecs, logLevel, AssignerProtocol} = kafkajs

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec

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
    retry: options.retry ?? (failFast ? {retries: 0} : {retries: 8, initialRetryTime: 200, maxRetryTime: 10000}),
    logLevel: logLevel.WARN,
    logCreator: kafkaLogCreator(logger),
  }
  if (settings.sasl) {
    const {mechanism, username, password} = settings.sasl
    config.sasl = {mechanism, username, password} as KafkaConfig['sasl']
  }
  if (settings.ssl) {
    const read = (p: string | undefined) => (p ? readFileSync(p, 'utf8') : undefined)
    config.ssl = {
      rejectUnauthorized: settings.ssl.rejectUnauthorized,
      ...(settings.ssl.ca ? {ca: [read(settings.ssl.ca)!]} : {}),
      ...(settings.ssl.cert ? {cert: read(settings.ssl.cert)} : {}),
      ...(settings.ssl.key ? {key: read(settings.ssl.key)} : {}),
    }
  }
  return config
}

export function createKafka(settings: KafkaSettings, options: ClientOptions = {}): KafkaClient {
  return new Kafka(kafkaConfig(settings, options))
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

export function mapKafkaError(e: unknown, settings: KafkaSettings, what = 'request'): CutoverError {
  if (e instanceof CutoverError) return e
  const err = e as {name?: string; message?: string; retriable?: boolean; type?: string; cause?: unknown}
  const address = settings.brokers.join(',')
  // kafkajs wraps the real error: in `originalError` (retries of the client) or in `cause`
  // (kafkajs 2: NumberOfRetriesExceeded, and the NonRetriableError a producer throws when its
  // reconnect gives up); the innermost one says what happened
  let root: {name?: string; message?: string} = err
  let unreachable = UNREACHABLE.has(err.name ?? '')
  for (let depth = 0; depth < 10; depth++) {
    const next = ((root as {originalError?: unknown}).originalError ?? (root as {cause?: unknown}).cause) as typeof root | undefined
    if (!next || typeof next !== 'object') break
    root = next
    if (UNREACHABLE.has(root.name ?? '')) unreachable = true
  }
  if (unreachable) {
    const said = root?.message ?? err.message ?? String(e)
    // KAFKA_SSL against a listener without TLS: the port answers, then drops the handshake
    const tls = settings.ssl !== undefined && /TLS|SSL|secure/i.test(said)
    return new ServiceUnavailableError('kafka', address, `${what} failed: ${said}`, {
      cause: e,
      hint: tls
        ? `TLS is on (KAFKA_SSL or KAFKA_SSL_*) and ${address} dropped the TLS handshake: point KAFKA_BROKERS at the broker's TLS listener, or unset KAFKA_SSL for a plaintext one`
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
