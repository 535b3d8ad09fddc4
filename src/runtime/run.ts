/**
 * `runStream(options)`: the stream runtime behind `cutover stream run`.
 *
 * Start (each failure is exit 2 or 3, before anything is consumed): load the spec, open
 * PostgreSQL (migrations), reach Kafka and find the source topic, create the DLQ topic when
 * missing, check every sink table (exit 2 naming the column, with the SQL that fixes it).
 *
 * Run: kafkajs consumers (`eachBatch`, autoCommit off, eachBatchAutoResolve off) in the spec's
 * group, two by default (`consumers`), each a member with its own share of the partitions and
 * its own fetch loop, so that one fetches and decodes while the other's transactions run. Each
 * batch (one partition) goes through the prepare stages (decode, normalize, validate), then
 * ONE PostgreSQL transaction (./batch.ts: offset lock, dedupe, sinks, outbox, offset
 * compare-and-set). Only after COMMIT is the offset resolved and committed to Kafka too (for
 * lag tools; PostgreSQL stays the source of truth).
 *
 * - Assignment: kafkajs has no rebalance listener, so on every GROUP_JOIN each assigned
 *   partition is sought to its stored offset (one without: to its first offset), and batches
 *   wait for that seek; the offset lock and compare-and-set in the transaction fence late seeks
 *   and zombies anyway. Partitions added to the topic are taken within METADATA_MAX_AGE_MS
 *   (`source.partitions.grown` logs the counts).
 * - Failures: a batch whose transaction fails (PostgreSQL down, serialization failure, a
 *   dropped table) is retried with exponential backoff and jitter (spec `retry`), its
 *   partition paused meanwhile, forever: an outage never dead-letters a good record and never
 *   ends the run. After `retry.max_attempts` the retries go on at the `max` backoff, logged at
 *   error level, as the spec reference describes `max_attempts` (issue 4: never exit on
 *   an outage). A consumer crash kafkajs will not restart is handled by a new consumer.
 * - Backpressure: a kafkajs consumer fetches again only when the batches in hand are done, so
 *   records in flight are bounded by `maxBytes` (shared by the consumers) and
 *   `maxBytesPerPartition`; `maxRate` caps records/s.
 * - Stop: on `signal` abort the batches in hand finish and commit, the consumers leave the
 *   group, the outbox relay drains (bounded), and the result is returned. A stop during the
 *   start (a start check waiting for a lock on a sink table: sinks/table.ts) consumes nothing.
 * - `untilIdle`: returns once every assigned partition's stored offset reached the high
 *   watermark, no partition with records is held by no member of the group (one added to the
 *   topic while running: the consumers see it within 10 s and rebalance), nothing arrived for
 *   `idleMs`, and the outbox is drained. Records deleted from the topic (retention) before they
 *   were read are no lag: a `stream.records.gone` warning names them.
 */
import {availableParallelism} from 'node:os'
import {setImmediate as nextTurn} from 'node:timers/promises'
import type {Admin, Consumer, EachBatchPayload, Producer} from 'kafkajs'
import type {ConnectionSettings} from '../config/env.js'
import {describeDatabaseUrl} from '../config/env.js'
import {loadSpec, specLocation, type LoadedSpec} from '../config/spec.js'
import {CutoverError, SpecError, UsageError, type RecordErrorCode} from '../errors.js'
import {connectAdmin, createKafka, createTopicHint, createTopicsReady, groupAssignments, isAclRefusal, isRebalanceError, mapKafkaError, type KafkaClient} from '../kafka/client.js'
import {silentLogger, type Logger} from '../log.js'
import {mapPgError, openDatabase, type Pool} from '../pg/pool.js'
import {requirePrivileges, streamRunNeeds} from '../pg/privileges.js'
import {CommitOutcomeUnknown, InsertFirst, isolatesInOrder, RefusedRows, snapshotItems, type BatchDeps, type BatchOutcome} from './batch.js'
import {GroupCommitter} from './group.js'
import {RuntimeMetrics, startMetricsServer, type HealthProbe, type StageName} from './metrics.js'
import {storedOffsets, transactionStatus} from './offsets.js'
import {backoffMs, sleep, TokenBucket} from './ratelimit.js'
import {OutboxRelay, pruneSentOutbox, relayProducer, STOP_DRAIN_MS} from './relay.js'
import {buildSinks} from './sinks/index.js'
import {batchTextMasker} from './sinks/sensitive.js'
import {checkSourceFormat} from './stages/decode.js'
import {pruneDedupeKeys} from './stages/dedupe.js'
import {alertsOf, emitTopics, pruneRuleFirings} from './stages/rules.js'
import {buildStages, startStages} from './stages/index.js'
import type {PipelineContext, Stage, WorkItem} from './types.js'

export interface StreamRunOptions {
  /** path of the pipeline spec (YAML) */
  spec: string
  settings: ConnectionSettings
  /** PostgreSQL schema of sink tables named without `schema.` (default public) */
  schema?: string
  untilIdle?: boolean
  idleMs?: number
  /** records per second, all partitions together */
  maxRate?: number
  /** serve /metrics, /healthz, /readyz on this port */
  metricsPort?: number
  logger?: Logger
  /** abort = stop gracefully (SIGTERM/SIGINT) */
  signal?: AbortSignal
  onProgress?: (p: StreamProgress) => void
  /** a line for the person at the terminal (a sink table's lock waited for at start) */
  onNotice?: (message: string) => void
  progressIntervalMs?: number
  /** values above this many bytes are RECORD_TOO_LARGE (default 1 MiB) */
  maxRecordBytes?: number
  /** dedupe keys are kept this long (default 7 days) */
  dedupeRetentionMs?: number
  partitionsConsumedConcurrently?: number
  /**
   * kafkajs consumers in this process, each a member of the spec's group with its own fetch loop
   * (default: 2 when the topic has 2 or more partitions). kafkajs fetches again only when every
   * batch of its last fetch is done: with one consumer node sits idle through the last
   * transactions and PostgreSQL through the next fetch's decoding; two consumers, each with
   * its share of the partitions, fetch and decode while the other's transactions run.
   */
  consumers?: number
  /**
   * PostgreSQL batch transactions in flight at once (default: the CPU count, at least 2, at most
   * the partitions consumed concurrently). More than the cores only adds lock contention between
   * the backends: measured on 2 cores, 6 at once used ~30% more PostgreSQL CPU per record than 2.
   */
  maxTransactions?: number
  maxBytesPerPartition?: number
  maxBytes?: number
  /** registry for the metrics (tests) */
  metrics?: RuntimeMetrics
  /** how often Kafka and PostgreSQL are asked for the lag gauge and /readyz (default 5 s) */
  probeIntervalMs?: number
}

/** The `--json` document of `cutover stream run`. read = written + sum(dead_lettered) + duplicates. */
export interface StreamRunResult {
  read: number
  written: number
  dead_lettered: Partial<Record<RecordErrorCode, number>>
  duplicates: number
  batches: number
  /** sum over the topic's partitions of high watermark - stored offset, at exit (-1: Kafka did not answer) */
  lag_end: number
  elapsed_ms: number
  /**
   * alerts of the spec's rules written to the outbox by the committed batches (the relay publishes
   * them to each rule's `emit` topic); present when the spec has rules. Alerts are not records:
   * read = written + dead_lettered + duplicates holds as without rules
   */
  alerts?: number
}

export interface StreamProgress {
  read: number
  written: number
  deadLettered: number
  duplicates: number
  batches: number
  recordsPerSecond: number
  /** last known lag of the assigned partitions */
  lag: number
  elapsedMs: number
}

const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
const WEEK_MS = 7 * 24 * 3600 * 1000
const HEARTBEAT_SLICE_MS = 1000
/** how often the consumers ask the broker for the topic's metadata (partitions added while running) */
const METADATA_MAX_AGE_MS = 10_000
const MAX_CONCURRENCY = 16
/**
 * Those of `partitions` (records left in them, none in this process's assignments) that no other
 * process of the group will read: every one while the group is rebalancing (`held` undefined,
 * groupAssignments), one that no member holds (added to the topic, not yet assigned), and one held
 * by a consumer of this process (`ownMembers`) that has not been told yet: the coordinator shows
 * an assignment once the group's leader synced it, before each member's GROUP_JOIN. --until-idle
 * waits for these; a partition another process holds is that process's to read.
 */
export function partitionsNotReadElsewhere(topic: string, partitions: readonly number[], held: ReadonlyMap<string, string> | undefined, ownMembers: readonly string[]): number[] {
  if (held === undefined) return [...partitions]
  return partitions.filter((p) => {
    const holder = held.get(`${topic}/${p}`)
    return holder === undefined || ownMembers.some((m) => holder.startsWith(`${m}@`))
  })
}

/** PostgreSQL transactions in flight at once: `--max-transactions`, else the CPU count (at least 2), never more than the partition concurrency. */
export function transactionLanes(requested: number | undefined, concurrency: number, cpus = availableParallelism()): number {
  return Math.max(1, Math.min(concurrency, requested ?? Math.max(2, cpus)))
}

/**
 * --max-rate N: a fetched batch is paced and committed in slices of at most this long's worth of
 * records (N), each its own transaction, so that the rows arrive in PostgreSQL at N a second,
 * not a whole fetch at once after a long wait (--max-rate 1000 with 13,000-record fetches: nothing
 * for 13 s, then 13,000 rows in one transaction; 25,697 rows in one 10-s window). A second's worth
 * keeps the transactions as large as the cap allows.
 */
const RATE_SLICE_MS = 1000

/** Records per slice of a batch under --max-rate `rate` (RATE_SLICE_MS worth, at least 1). */
export function rateSlice(rate: number): number {
  return Math.max(1, Math.ceil((rate * RATE_SLICE_MS) / 1000))
}

/** batches ready while a transaction runs gather until they hold this many records (group.ts) */
const GROUP_RECORDS = 1000
/**
 * The prepare stages run on this many records at a time, the event loop turning between
 * slices, and one batch prepares at a time (the others queue): the transactions of the batches
 * already prepared get their PostgreSQL answers in between instead of after every batch in hand
 * has been decoded, so PostgreSQL works while node decodes.
 */
const PREPARE_SLICE = 1000

class Totals {
  read = 0
  written = 0
  duplicates = 0
  batches = 0
  alerts = 0
  dead: Partial<Record<RecordErrorCode, number>> = {}
  deadTotal(): number {
    return Object.values(this.dead).reduce((a, b) => a + (b ?? 0), 0)
  }
}

export async function runStream(options: StreamRunOptions): Promise<StreamRunResult> {
  const started = Date.now()
  const logger = (options.logger ?? silentLogger).namespace('stream')
  const loaded = await loadSpec(options.spec)
  const {spec} = loaded
  const topic = spec.source.topic
  const ctx: PipelineContext = {
    loaded,
    pipeline: spec.name,
    schema: options.schema ?? 'public',
    maxRecordBytes: options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES,
    dedupeRetentionMs: options.dedupeRetentionMs ?? WEEK_MS,
    logger,
    signal: options.signal,
    notice: options.onNotice,
  }
  checkSourceFormat(ctx)
  // batches of different partitions run concurrently, each holding one connection; the pool is
  // sized for the most (connections are opened lazily), the concurrency set once the topic is known
  const maxConcurrency = options.partitionsConsumedConcurrently ?? MAX_CONCURRENCY
  const url = options.settings.databaseUrl

  const metrics = options.metrics ?? new RuntimeMetrics(spec.name)
  // --metrics-port first: a port in use is exit 2 at once, before any connection. The probes
  // answer "not ready" until the runtime exists (readyz), and "healthy" from the start.
  const health: {probe?: HealthProbe} = {}
  const server =
    options.metricsPort === undefined
      ? undefined
      : await startMetricsServer(options.metricsPort, metrics, {healthy: () => health.probe?.healthy() ?? true, ready: () => health.probe?.ready() ?? false}).catch((e: unknown) => {
          const code = (e as {code?: string}).code
          if (code === 'EADDRINUSE' || code === 'EACCES') {
            throw new UsageError(`--metrics-port ${options.metricsPort}: ${code === 'EADDRINUSE' ? 'the port is in use (another stream run?)' : 'not allowed to listen on it'}`, {
              cause: e,
              hint: 'give each stream run process its own --metrics-port, or 0 for any free port',
            })
          }
          throw e
        })
  if (server) logger.info('metrics.listening', {port: server.port})
  const pool = await openDatabase(url, {logger, max: maxConcurrency + 4, applicationName: `cutover stream ${spec.name}`}).catch(async (e: unknown) => {
    await server?.close()
    throw e
  })
  const closers: (() => Promise<unknown>)[] = [...(server ? [() => server.close()] : []), () => pool.end()]
  const closeAll = async () => {
    for (const c of closers.reverse()) await c().catch(() => {})
  }
  try {
    // the role's privileges on cutover's tables, before the group is joined (pg/privileges.ts)
    await requirePrivileges(pool, 'stream run', streamRunNeeds({dedupe: spec.dedupe !== undefined, windows: spec.windows.length > 0, windowRules: spec.rules.length > 0 && spec.windows.length > 0}))
    // Kafka at start: one quick attempt, so an unreachable broker is exit 3 in seconds.
    const probe = await connectAdmin(createKafka(options.settings.kafka, {mode: 'fail-fast', logger}), options.settings.kafka)
    let sourcePartitions: number
    let stages: ReturnType<typeof buildStages>
    let sinks: Awaited<ReturnType<typeof buildSinks>>
    try {
      const meta = await probe.fetchTopicMetadata({topics: [topic]}).catch((e: unknown) => {
        if ((e as {type?: string}).type === 'UNKNOWN_TOPIC_OR_PARTITION') return null
        throw e
      })
      const t = meta?.topics.find((x) => x.name === topic)
      if (!t || t.partitions.length === 0) {
        throw new SpecError(specLocation(loaded, ['source', 'topic']), `source topic ${topic} does not exist on ${options.settings.kafka.brokers.join(',')}`, {
          hint: `create it (${await createTopicHint(probe, options.settings.kafka, topic)}), or fix source.topic`,
        })
      }
      sourcePartitions = t.partitions.length
      // the sink tables' start checks before the DLQ topic is created: a table that does not fit
      // is exit 2 with nothing created on the broker
      stages = buildStages(ctx)
      // the lookup tables of `enrich` (stages/enrich.ts), then the sink tables
      await startStages(stages, {pool, metrics, sourcePartitions}).catch((e: unknown) => {
        throw e instanceof CutoverError ? e : mapPgError(e, url)
      })
      sinks = await buildSinks(ctx, pool).catch((e: unknown) => {
        throw e instanceof CutoverError ? e : mapPgError(e, url)
      })
      const existing = await probe.listTopics()
      const dlqExists = existing.includes(spec.dlq.topic)
      // the DLQ must take every value the source takes (a RECORD_TOO_LARGE dead letter keeps its value)
      const configs = await probe
        .describeConfigs({includeSynonyms: false, resources: [topic, ...(dlqExists ? [spec.dlq.topic] : [])].map((name) => ({type: 2 /* TOPIC */, name, configNames: ['max.message.bytes']}))})
        .catch(() => undefined)
      const maxBytesOf = (name: string) => configs?.resources.find((r) => r.resourceName === name)?.configEntries.find((c) => c.configName === 'max.message.bytes')?.configValue
      const maxMessageBytes = maxBytesOf(topic)
      if (!dlqExists) {
        const configEntries = maxMessageBytes ? [{name: 'max.message.bytes', value: String(Number(maxMessageBytes) + 64 * 1024)}] : []
        await createTopicsReady(probe, [{topic: spec.dlq.topic, numPartitions: sourcePartitions, configEntries}])
        logger.info('dlq.topic.created', {topic: spec.dlq.topic, partitions: sourcePartitions})
        existing.push(spec.dlq.topic)
      } else {
        const dlqMax = maxBytesOf(spec.dlq.topic)
        if (maxMessageBytes !== undefined && dlqMax !== undefined && Number(dlqMax) < Number(maxMessageBytes)) {
          // made by someone else, smaller: a dead letter of a record it cannot hold goes without its value (relay.ts)
          logger.warn('dlq.topic.smaller', {
            topic: spec.dlq.topic,
            max_message_bytes: Number(dlqMax),
            source_max_message_bytes: Number(maxMessageBytes),
            note: `dead letters larger than ${dlqMax} bytes will be published without their value (kept in cutover.outbox); set max.message.bytes of ${spec.dlq.topic} to ${Number(maxMessageBytes) + 64 * 1024} (the source topic's + 64 KiB)`,
          })
        }
      }
      // the rules' emit topics, created as the DLQ topic when missing (the relay's producer creates no topic)
      const missingEmits = emitTopics(spec.rules).filter((t) => !existing.includes(t))
      if (missingEmits.length > 0) {
        await createTopicsReady(probe, missingEmits.map((t) => ({topic: t, numPartitions: sourcePartitions})))
        logger.info('rules.topics.created', {topics: missingEmits, partitions: sourcePartitions})
      }
      metrics.declareRules(spec.rules.map((r) => r.name))
    } catch (e) {
      throw e instanceof CutoverError ? e : mapKafkaError(e, options.settings.kafka, 'topic metadata')
    } finally {
      await probe.disconnect().catch(() => {})
    }

    const kafka = createKafka(options.settings.kafka, {mode: 'resilient', logger, clientId: `cutover-${spec.name}`})
    const admin = kafka.admin()
    await admin.connect().catch((e: unknown) => {
      throw mapKafkaError(e, options.settings.kafka, 'connect')
    })
    closers.push(() => admin.disconnect())
    const producer = relayProducer(options.settings.kafka, {logger, clientId: `cutover-${spec.name}`}) // the outbox relay's (relay.ts RELAY_RETRY)
    await producer.connect().catch((e: unknown) => {
      throw mapKafkaError(e, options.settings.kafka, 'connect producer')
    })
    closers.push(() => producer.disconnect())

    const concurrency = options.partitionsConsumedConcurrently ?? Math.min(MAX_CONCURRENCY, Math.max(6, sourcePartitions))
    const runtime = new StreamRuntime({options, ctx, loaded, pool, kafka, admin, producer, stages, sinks, metrics, logger, concurrency, sourcePartitions})
    closers.push(() => runtime.close())
    health.probe = runtime.health
    // stopped during the start (while a start check waited for a lock on a sink table): nothing consumed
    const stoppedAtStart = options.signal?.aborted === true
    if (stoppedAtStart) logger.info('stream.stopped.at_start', {})
    const totals = stoppedAtStart ? new Totals() : await runtime.run()
    const lagEnd = await runtime.lagEnd().catch(() => -1)
    return {
      read: totals.read,
      written: totals.written,
      dead_lettered: totals.dead,
      duplicates: totals.duplicates,
      batches: totals.batches,
      lag_end: lagEnd,
      elapsed_ms: Date.now() - started,
      ...(spec.rules.length > 0 ? {alerts: totals.alerts} : {}),
    }
  } finally {
    await closeAll()
  }
}

interface RuntimeDeps {
  options: StreamRunOptions
  ctx: PipelineContext
  loaded: LoadedSpec
  pool: Pool
  kafka: KafkaClient
  admin: Admin
  producer: Producer
  stages: {prepare: Stage[]; transact: Stage[]}
  sinks: BatchDeps['sinks']
  metrics: RuntimeMetrics
  logger: Logger
  concurrency: number
  sourcePartitions: number
}

/** One kafkajs consumer of the process (see StreamRunOptions.consumers). */
interface ConsumerSlot {
  index: number
  consumer: Consumer | undefined
  /** partitions of its last assignment; undefined until it joined */
  assigned: number[] | undefined
  /** its member id in the group, from its last assignment */
  memberId?: string
  /** the seeks to the stored offsets after its last assignment: its batches wait for them */
  joinReady: Promise<void>
  restarting: boolean
}

class StreamRuntime {
  private readonly totals = new Totals()
  private readonly topic: string
  private readonly pipeline: string
  private readonly relay: OutboxRelay
  private readonly limiter: TokenBucket | undefined
  private readonly batchDeps: BatchDeps
  /** masks the spec's sensitive values in a retried batch's error (sinks/sensitive.ts); undefined when none is sensitive */
  private readonly maskBatchText: ReturnType<typeof batchTextMasker>
  private readonly committer: GroupCommitter
  private readonly stopController = new AbortController()
  private readonly slots: ConsumerSlot[]
  private stopping = false
  /** an error that ends the run (exit 2: Kafka's ACLs refuse the group or the topic), thrown by run() once stopped */
  private fatal: CutoverError | undefined
  private inFlight = 0
  /** the batches' prepare phases, one after the other (prepare) */
  private prepareQueue: Promise<void> = Promise.resolve()
  private lastActivity = Date.now()
  /** partitions sought back to the stored offset after a gap: the next batch may start after it */
  private readonly gapSeeks = new Map<number, bigint>()
  /** end of batches kafkajs resolved itself (only control records / aborted transactions) */
  private readonly filteredEnd = new Map<number, bigint>()
  private readonly lag = new Map<number, number>()
  private timers: NodeJS.Timeout[] = []
  private readonly startedAt = Date.now()
  /** next offset of each partition as this process last committed or read it (the lag when PostgreSQL does not answer) */
  private readonly knownNext = new Map<number, bigint>()
  /** whether Kafka and PostgreSQL answered the last probe (watchDependencies), or a batch found PostgreSQL gone */
  private readonly deps = {kafka: true, pg: true}
  /** --until-idle: the unheld partitions it said it waits for (stream.idle.waiting, once each) */
  private readonly waitingFor = new Set<string>()
  /** partition@low of the records gone from the topic unread that it said (recordsGone) */
  private readonly goneSaid = new Set<string>()
  /** the source topic's partition count as last seen (at start, then by the probes): a growth is logged once (notePartitions) */
  private partitionCount: number
  /**
   * Partitions whose batch PostgreSQL has refused `retry.max_attempts` times or more while it
   * answers (a sink table dropped or renamed, a trigger failing on every try): /readyz says not
   * ready while one is, since nothing of that partition commits; cleared when the batch commits
   * or is given up (a rebalance, a stop)
   */
  private readonly stalled = new Set<number>()
  /** the spec has rules: committed batches' alerts are counted (countCommitted) */
  private readonly alerting: boolean
  /** /healthz and /readyz */
  readonly health: HealthProbe = {
    healthy: () => !this.stopping,
    ready: () => !this.stopping && this.deps.kafka && this.deps.pg && this.stalled.size === 0 && this.slots.every((s) => s.consumer !== undefined && s.assigned !== undefined),
  }

  constructor(private readonly d: RuntimeDeps) {
    this.topic = d.ctx.loaded.spec.source.topic
    this.pipeline = d.ctx.pipeline
    this.partitionCount = d.sourcePartitions
    this.alerting = d.loaded.spec.rules.length > 0
    // paced against elapsed time from the first slice, no credit at start and at most 250 ms of it
    // after a quiet spell: in any 10 s, at most 10 s worth plus a quarter second's and a slice
    this.limiter = d.options.maxRate ? new TokenBucket(d.options.maxRate, {burst: 0}) : undefined
    const consumers = Math.max(1, Math.min(d.sourcePartitions, d.options.consumers ?? 2))
    this.slots = Array.from({length: consumers}, (_, index) => ({index, consumer: undefined, assigned: undefined, joinReady: Promise.resolve(), restarting: false}))
    this.relay = new OutboxRelay({
      pool: d.pool,
      producer: d.producer,
      pipeline: this.pipeline,
      logger: d.logger.namespace('relay'),
      onBacklog: (n) => d.metrics.outboxBacklog(n),
      onValueOmitted: (n) => d.metrics.valuesOmitted(n),
    })
    this.maskBatchText = batchTextMasker(d.loaded.spec.fields)
    this.batchDeps = {
      pool: d.pool,
      transact: d.stages.transact,
      sinks: d.sinks,
      dlqTopic: d.loaded.spec.dlq.topic,
      deadLetter: {pipeline: this.pipeline, version: d.loaded.sha256, attempts: 1},
      insertFirst: new InsertFirst(() => d.metrics.upsertRerun()),
      refusedRows: new RefusedRows((_, alone) => d.metrics.isolating(alone)),
      isolateInOrder: isolatesInOrder(d.loaded.spec, d.sinks),
    }
    // at most transactionLanes() transactions at once (the CPU count by default); small batches (a steady trickle) group
    this.committer = new GroupCommitter(this.batchDeps, transactionLanes(d.options.maxTransactions, d.concurrency), GROUP_RECORDS)
  }

  async run(): Promise<Totals> {
    const {options} = this.d
    const signal = options.signal
    const done = new Promise<void>((resolve) => {
      if (signal?.aborted) resolve()
      signal?.addEventListener('abort', () => resolve(), {once: true})
      this.stopController.signal.addEventListener('abort', () => resolve(), {once: true})
    })
    this.housekeeping()
    this.relay.start()
    await Promise.all(this.slots.map((slot) => this.startConsumer(slot))).catch((e: unknown) => {
      throw mapKafkaError(e, this.d.options.settings.kafka, 'start the consumer')
    })
    this.startMonitors()
    await done
    await this.shutdown()
    if (this.fatal) throw this.fatal
    return this.totals
  }

  private housekeeping(): void {
    // a pipeline without `dedupe:` neither writes keys nor needs DELETE on their table (privileges.ts):
    // keys a former version of its spec left stay until a version with `dedupe:` prunes them
    const dedupes = this.d.loaded.spec.dedupe !== undefined
    const {rules, windows} = this.d.loaded.spec
    const fires = rules.length > 0 && windows.length > 0
    const prune = () => {
      if (fires) {
        // the window instances rules fired for, after 8 days (stages/rules.ts RULE_FIRINGS_RETENTION_MS)
        void pruneRuleFirings(this.d.pool, this.pipeline)
          .then((n) => n > 0 && this.d.logger.info('rules.firings.pruned', {rows: n}))
          .catch((e: unknown) => this.d.logger.warn('rules.firings.prune.failed', {error: e}))
      }
      if (dedupes) {
        void pruneDedupeKeys(this.d.pool, this.pipeline, this.d.ctx.dedupeRetentionMs)
          .then((n) => n > 0 && this.d.logger.info('dedupe.pruned', {keys: n}))
          .catch((e: unknown) => this.d.logger.warn('dedupe.prune.failed', {error: e}))
      }
      void pruneSentOutbox(this.d.pool, this.pipeline, 24 * 3600 * 1000).catch((e: unknown) => this.d.logger.warn('outbox.prune.failed', {error: e}))
    }
    prune()
    const t = setInterval(prune, 3600 * 1000)
    t.unref()
    this.timers.push(t)
  }

  private async startConsumer(slot: ConsumerSlot): Promise<void> {
    const {kafka, logger, options, concurrency} = this.d
    const spec = this.d.loaded.spec
    const consumer = kafka.consumer({
      groupId: spec.source.group,
      maxBytesPerPartition: options.maxBytesPerPartition ?? 2 * 1024 * 1024,
      // the consumers share the bound: records in flight stay within maxBytes for the process
      maxBytes: Math.ceil((options.maxBytes ?? 12 * 1024 * 1024) / this.slots.length),
      // a stop (SIGTERM, --until-idle) waits for the fetch in flight, which waits this long for
      // data on an idle topic: 200 ms (was 500) shortens every stop, at 5 empty fetches a second when idle
      maxWaitTimeInMs: 200,
      // 10 s: a process killed with -9 holds its partitions this long before the group moves them
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      // partitions added to the topic are seen (and the group rebalances onto them) within this
      // long, not kafkajs' default 5 minutes: --until-idle waits for them
      metadataMaxAge: METADATA_MAX_AGE_MS,
      // kafkajs restarts a consumer that crashed (the broker gone) even once it was told to disconnect,
      // and the restarted one reconnects and keeps node alive after the stop: no restart once stopping
      retry: {retries: 10, initialRetryTime: 300, maxRetryTime: 10_000, restartOnFailure: async (e) => !this.stopping && this.aclRefusal(e) === undefined},
    })
    slot.consumer = consumer
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      const partitions = (e.payload.memberAssignment[this.topic] ?? []).slice().sort((a, b) => a - b)
      const before = slot.assigned ?? []
      slot.assigned = partitions
      slot.memberId = e.payload.memberId
      // a rebalance is activity: --until-idle counts its idle time from the last one
      this.lastActivity = Date.now()
      // partitions gone to another process: their lag series go with them (else counted twice: here, stale, and by their new owner)
      for (const p of before) if (!this.isAssigned(p)) this.forgetPartition(p)
      for (const p of partitions) this.gapSeeks.delete(p)
      logger.info('consumer.assigned', {topic: this.topic, partitions, group: e.payload.groupId, member: e.payload.memberId, consumer: slot.index})
      slot.joinReady = this.seekToStored(consumer, partitions)
    })
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
      if (e.payload.batchSize !== 0) return
      // a fetch of only control records or aborted ones: kafkajs resolved it itself, and without
      // a commit (autoCommit off) the group's offset in Kafka stayed before them, shown as lag for
      // ever by kafka-consumer-groups and `cutover status` (a partition whose last transaction
      // aborted: lag 21 with every record read). PostgreSQL's offset stays: a restart reads them again.
      const next = BigInt(e.payload.lastOffset) + 1n
      this.filteredEnd.set(e.payload.partition, next)
      consumer
        .commitOffsets([{topic: e.payload.topic, partition: e.payload.partition, offset: next.toString()}])
        .catch((err: unknown) => logger.debug('kafka.offset_commit.failed', {error: err, partition: e.payload.partition}))
    })
    consumer.on(consumer.events.CRASH, (e) => {
      logger.error('consumer.crash', {error: e.payload.error, restart: e.payload.restart, consumer: slot.index})
      // Kafka's ACLs refuse the group (or the topic) to this principal: no restart gets past that
      // (it ran for ever, lag growing); the run ends with exit 2 naming the ACL to grant
      const refused = this.aclRefusal(e.payload.error)
      if (refused) {
        this.fatal ??= refused
        this.stopController.abort()
        return
      }
      if (!e.payload.restart && !this.stopping) void this.restartConsumer(slot)
    })
    await consumer.connect()
    await consumer.subscribe({topics: [this.topic], fromBeginning: true})
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: concurrency,
      eachBatch: (payload) => this.eachBatch(slot, consumer, payload),
    })
  }

  /** The consumer's error as an ACL refusal (mapKafkaError: exit 2 naming the principal, operation and group or topic), else undefined. */
  private aclRefusal(e: unknown): CutoverError | undefined {
    const mapped = mapKafkaError(e, this.d.options.settings.kafka, `consume ${this.topic} in group ${this.d.loaded.spec.source.group}`, {operation: 'Read', groups: [this.d.loaded.spec.source.group], topics: [this.topic]})
    return isAclRefusal(mapped) ? mapped : undefined
  }

  /** kafkajs gave up (restart: false): a new consumer, after a pause, until one runs. */
  private async restartConsumer(slot: ConsumerSlot): Promise<void> {
    if (slot.restarting) return
    slot.restarting = true
    try {
      for (let attempt = 1; !this.stopping; attempt++) {
        await slot.consumer?.disconnect().catch(() => {})
        await sleep(backoffMs(attempt, 500, 10_000), this.stopController.signal)
        if (this.stopping) return
        try {
          await this.startConsumer(slot)
          this.d.logger.info('consumer.restarted', {attempt, consumer: slot.index})
          return
        } catch (e) {
          this.d.logger.warn('consumer.restart.failed', {error: e, attempt, consumer: slot.index})
        }
      }
    } finally {
      slot.restarting = false
    }
  }

  /**
   * Seeks each assigned partition to its stored offset, and one without a stored offset (a new
   * pipeline's, or one added to the topic while running) to its first offset (the low watermark):
   * PostgreSQL is the truth, and without this kafkajs would start such a partition at the group's
   * offset in Kafka when it has one (a group used before, rows deleted to replay), its records
   * before that offset never read (its offset row would be created at the first batch read).
   */
  private async seekToStored(consumer: Consumer, partitions: number[]): Promise<void> {
    // seek throws once the consumer is disconnected (a stop, a restart) while this awaited
    try {
      const stored = await storedOffsets(this.d.pool, this.pipeline, this.topic)
      if (this.stopping) return
      for (const p of partitions) {
        const offset = stored.get(p)
        if (offset !== undefined) consumer.seek({topic: this.topic, partition: p, offset: offset.toString()})
      }
      const fresh = partitions.filter((p) => !stored.has(p))
      if (fresh.length === 0) return
      const offsets = await this.d.admin.fetchTopicOffsets(this.topic)
      if (this.stopping) return
      this.notePartitions(offsets.length)
      for (const o of offsets) if (fresh.includes(o.partition)) consumer.seek({topic: this.topic, partition: o.partition, offset: o.low})
    } catch (e) {
      // PostgreSQL unreachable: the batch transaction still skips what is committed and seeks on a
      // gap; Kafka: partitions without a stored offset start at the group's offset in Kafka, else
      // at the earliest (fromBeginning)
      if (!this.stopping) this.d.logger.warn('consumer.seek_on_join.failed', {error: e})
    }
  }

  /**
   * Says once that the source topic has more partitions than last seen (`source.partitions.grown`):
   * each consumer's metadata is at most METADATA_MAX_AGE_MS old, and kafkajs rejoins the group when
   * it sees partitions its assignment did not know, so the group takes them within about that long;
   * they are read from their first offset (seekToStored).
   */
  private notePartitions(count: number): void {
    if (count <= this.partitionCount) return
    this.d.logger.info('source.partitions.grown', {
      topic: this.topic,
      from: this.partitionCount,
      to: count,
      note: `the consumer group takes the new partitions within ~${METADATA_MAX_AGE_MS / 1000} s and reads them from their first offset`,
    })
    this.partitionCount = count
  }

  /**
   * Waits for `n` tokens of --max-rate, heartbeating meanwhile. A rebalance while waiting ends
   * the wait and returns false: the batch is dropped unprocessed (nothing of it is committed,
   * its partition's next owner fetches it again), so a process that joins the group does not
   * wait for this one to work through everything it fetched at the capped rate.
   */
  private async paced(n: number, heartbeat: () => Promise<void>): Promise<boolean> {
    const wait = new AbortController()
    const onStop = () => wait.abort()
    this.stopController.signal.addEventListener('abort', onStop, {once: true})
    let lost = false
    const beat = setInterval(() => {
      heartbeat().catch((he: unknown) => {
        if (isRebalanceError(he)) {
          lost = true
          wait.abort()
        }
      })
    }, HEARTBEAT_SLICE_MS)
    try {
      await this.limiter!.take(n, wait.signal)
    } finally {
      clearInterval(beat)
      this.stopController.signal.removeEventListener('abort', onStop)
    }
    return !lost
  }

  private async eachBatch(slot: ConsumerSlot, consumer: Consumer, payload: EachBatchPayload): Promise<void> {
    const {batch, heartbeat, isRunning, isStale} = payload
    if (this.stopping) return
    await slot.joinReady
    if (this.stopping || !isRunning() || isStale() || batch.messages.length === 0) return
    const {logger} = this.d
    const partition = batch.partition
    this.inFlight++
    this.lastActivity = Date.now()
    try {
      // with --max-rate, the batch goes in slices of RATE_SLICE_MS worth of records, each paced and
      // committed (its own transaction and offset) before the next: a fetched batch of 13,000 records
      // at --max-rate 1000 was one transaction 13 s after the fetch, 13,000 rows at once
      const {messages} = batch
      const size = this.limiter ? rateSlice(this.limiter.rate) : messages.length
      for (let from = 0; from < messages.length; from += size) {
        const slice = size >= messages.length ? messages : messages.slice(from, from + size)
        const last = from + size >= messages.length
        if (from > 0 && (this.stopping || !isRunning() || isStale())) return
        if (this.limiter && !(await this.paced(slice.length, heartbeat))) {
          logger.info('batch.abandoned.rebalance', {topic: batch.topic, partition, first_offset: slice[0]!.offset, note: 'rebalance while waiting for --max-rate'})
          return
        }
        if (this.stopping) return
        // a slice ends where the next one begins (transaction markers between them are its own, so
        // that the next slice starts at the stored offset, not after a gap), the last one where the
        // batch ends (control records after its last message included)
        const lastOffset = last ? BigInt(batch.lastOffset()) : BigInt(messages[from + size]!.offset) - 1n
        if (!(await this.commitSlice(consumer, payload, slice, lastOffset))) return
      }
    } finally {
      this.stalled.delete(partition)
      this.inFlight--
    }
  }

  /**
   * One batch (or, with --max-rate, one slice of it) through the prepare stages and its
   * PostgreSQL transaction, retried until it commits. Returns whether the partition's next records
   * may follow: false once the batch was given up (a stop, the partition lost) or the stored offset
   * says they must not (a gap sought back to, a fenced batch).
   */
  private async commitSlice(consumer: Consumer, payload: EachBatchPayload, messages: EachBatchPayload['batch']['messages'], lastOffset: bigint): Promise<boolean> {
    const {batch, heartbeat, pause} = payload
    const {metrics, logger} = this.d
    const partition = batch.partition
    const items: WorkItem[] = messages.map((message) => ({message, topic: batch.topic, partition, offset: BigInt(message.offset), status: 'ok'}))
    await this.prepare(items)
    const prepared = snapshotItems(items)
    const firstOffset = items[0]!.offset
    const gapSeek = this.gapSeeks.get(partition)
    const input = {ref: {pipeline: this.pipeline, topic: batch.topic, partition}, items, firstOffset, lastOffset, allowGap: gapSeek !== undefined}

    let outcome: BatchOutcome | undefined
    let unknown: CommitOutcomeUnknown | undefined
    let resume: (() => void) | undefined
    const {retry} = this.d.loaded.spec
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1) prepared.restore()
      try {
        const t0 = process.hrtime.bigint()
        // heartbeating while the transaction runs: one waiting on a lock (an ALTER TABLE, a
        // report holding the sink table) longer than the session timeout would otherwise get
        // the member expelled, and the whole group would rebalance when the lock goes
        const beat = setInterval(() => void heartbeat().catch(() => {}), HEARTBEAT_SLICE_MS)
        try {
          outcome = await this.committer.commit(input, attempt)
        } finally {
          clearInterval(beat)
        }
        if (outcome.kind === 'behind' && unknown && outcome.stored === unknown.outcome.next && (await this.lostCommitCommitted(unknown))) {
          // our earlier COMMIT went through although its answer was lost: count that batch
          logger.info('batch.commit_confirmed', {topic: batch.topic, partition, next: outcome.stored.toString()})
          outcome = {...unknown.outcome, committedAt: Date.now()}
        }
        if (outcome.kind === 'committed') metrics.batchCommitted(outcome.counts.read, Number(process.hrtime.bigint() - t0) / 1e9)
        break
      } catch (e) {
        if (e instanceof CommitOutcomeUnknown) {
          unknown = e
          // keep what that attempt decided: if it committed, those are the statuses of record
          e.outcome.items = e.outcome.items.map((i) => ({...i}))
        }
        const err = mapPgError(e, this.d.options.settings.databaseUrl)
        // the spec's sensitive values of this batch's records masked in the message (a trigger's text may hold them)
        const shown = this.maskBatchText ? Object.assign(new Error(this.maskBatchText(err.message, items.map((i) => i.record), typeof err.details.sqlstate === 'string' ? err.details.sqlstate : undefined)), {name: err.name, code: err.code}) : err
        const fields = {topic: batch.topic, partition, first_offset: firstOffset.toString(), attempt, error: shown, database: describeDatabaseUrl(this.d.options.settings.databaseUrl)}
        if (err.code === 'SERVICE_UNAVAILABLE') this.deps.pg = false // /readyz: not ready until a commit or a probe gets through
        else if (attempt >= retry.max_attempts) this.stalled.add(partition) // /readyz: not ready while this batch cannot commit
        if (attempt >= retry.max_attempts) logger.error('batch.retry', {...fields, note: 'still retrying: an outage never dead-letters a good record'})
        else logger.warn('batch.retry', fields)
        if (this.stopping) return this.settleLostCommit(consumer, unknown, payload)
        resume ??= pause()
        // sleep in slices, heartbeating, so a long backoff does not cost the group membership
        let lostPartition = false
        const until = Date.now() + backoffMs(attempt, retry.initial, retry.max)
        while (!this.stopping && Date.now() < until && !lostPartition) {
          await sleep(Math.min(HEARTBEAT_SLICE_MS, until - Date.now()), this.stopController.signal)
          try {
            await heartbeat()
          } catch (he) {
            lostPartition = isRebalanceError(he)
          }
        }
        if (this.stopping) return this.settleLostCommit(consumer, unknown, payload)
        if (lostPartition) {
          logger.info('batch.abandoned.rebalance', {topic: batch.topic, partition})
          resume()
          return this.settleLostCommit(consumer, unknown, payload)
        }
      }
    }
    resume?.()
    this.lastActivity = Date.now()
    await this.afterOutcome(consumer, payload, outcome, batch.highWatermark)
    try {
      await heartbeat()
    } catch {
      // a rebalance or a broker outage: kafkajs' own loop handles it; the batch is committed
    }
    return outcome.kind === 'committed' || outcome.kind === 'behind'
  }

  /**
   * Runs the prepare stages over `items` (PREPARE_SLICE at a time, one batch at a time: see
   * there), then the transact stages' `precompute`. Their records are counted in the metrics
   * when the batch commits (countStages), not here: a batch given up (a rebalance, a stop during
   * an outage) or found already committed is read again or not at all, and counting it here
   * would count its records twice or for nothing.
   */
  private async prepare(items: WorkItem[]): Promise<void> {
    const {stages} = this.d
    const turn = this.prepareQueue.then(async () => {
      for (let from = 0; from < items.length; from += PREPARE_SLICE) {
        if (from > 0) await nextTurn()
        const slice = items.length <= PREPARE_SLICE ? items : items.slice(from, from + PREPARE_SLICE)
        for (const stage of stages.prepare) await stage.run(slice, null)
        for (const stage of stages.transact) stage.precompute?.(slice)
      }
    })
    this.prepareQueue = turn.then(
      () => undefined,
      () => undefined,
    )
    return turn
  }

  /**
   * `cutover_records_total` of a committed batch's records (those at or above the stored offset:
   * the ones its counts read): each stage's in is the previous stage's out, and its out is its in
   * less the records it dead-lettered or (dedupe) dropped as duplicates.
   */
  private countStages(items: readonly WorkItem[]): void {
    const {metrics, stages} = this.d
    const deadAt = new Map<StageName, number>()
    let duplicates = 0
    for (const item of items) {
      if (item.status === 'duplicate') duplicates++
      else if (item.dead) deadAt.set(item.dead.stage, (deadAt.get(item.dead.stage) ?? 0) + 1)
    }
    let n = items.length
    for (const stage of [...stages.prepare, ...stages.transact]) {
      const out = n - (deadAt.get(stage.name) ?? 0) - (stage.name === 'dedupe' ? duplicates : 0)
      metrics.stageRecords(stage.name, 'in', n)
      metrics.stageRecords(stage.name, 'out', out)
      n = out
    }
    metrics.stageRecords('sink', 'in', n)
    metrics.stageRecords('sink', 'out', n - (deadAt.get('sink') ?? 0))
  }

  /** A committed batch in the run's totals (its --json result) and metrics. */
  private countCommitted(outcome: Extract<BatchOutcome, {kind: 'committed'}>, topic: string, partition: number, highWatermark: string): void {
    const {metrics} = this.d
    const c = outcome.counts
    const t = this.totals
    t.read += c.read
    t.written += c.written
    t.duplicates += c.duplicates
    t.batches++
    let deadN = 0
    for (const [code, n] of Object.entries(c.dead) as [RecordErrorCode, number][]) {
      t.dead[code] = (t.dead[code] ?? 0) + n
      metrics.deadLettered(code, n)
      deadN += n
    }
    metrics.duplicates(c.duplicates)
    // the alerts its rules wrote to the outbox (none without rules: no per-record work)
    let alertN = 0
    if (this.alerting) {
      for (const item of outcome.items) {
        const fired = alertsOf(item)
        if (fired === undefined) continue
        for (const rule of fired) metrics.alerts(rule)
        alertN += fired.length
      }
      t.alerts += alertN
    }
    this.countStages(outcome.items)
    const now = outcome.committedAt
    for (const item of outcome.items) if (item.status === 'ok') metrics.endToEnd((now - Number(item.message.timestamp)) / 1000)
    this.deps.pg = true
    if (this.isAssigned(partition)) {
      this.knownNext.set(partition, outcome.next)
      const lag = Math.max(0, Number(BigInt(highWatermark) - outcome.next))
      this.lag.set(partition, lag)
      metrics.lag(topic, partition, lag)
    }
    if (deadN > 0 || alertN > 0) this.relay.wake()
  }

  /**
   * Whether a COMMIT whose answer was lost went through: its transaction's status
   * (`txid_status`), not a guess from the stored offset (another consumer may have committed the
   * same range after a rebalance). Unknown (no id, or the question fails) counts it not.
   */
  private async lostCommitCommitted(unknown: CommitOutcomeUnknown): Promise<boolean> {
    if (unknown.xid === undefined) return false
    try {
      // a backend cut off mid-COMMIT may still be finishing it: 'in progress' for a moment
      let status = await transactionStatus(this.d.pool, unknown.xid)
      for (let i = 0; i < 50 && status === 'in progress'; i++) {
        await sleep(100)
        status = await transactionStatus(this.d.pool, unknown.xid)
      }
      return status === 'committed'
    } catch (e) {
      this.d.logger.warn('batch.commit_status_unknown', {xid: unknown.xid, error: e})
      return false
    }
  }

  /**
   * A batch given up (the run stopping, or its partition lost) after a COMMIT whose answer was
   * lost: if that COMMIT went through, the batch is taken as committed like any other (the run's
   * totals, the batch-size histogram and last-commit time, the lag, the group's offset in Kafka).
   * Returns false: the partition's next records are not this batch's to follow.
   */
  private async settleLostCommit(consumer: Consumer, unknown: CommitOutcomeUnknown | undefined, payload: EachBatchPayload): Promise<false> {
    if (!unknown || !(await this.lostCommitCommitted(unknown))) return false
    const {batch} = payload
    this.d.logger.info('batch.commit_confirmed', {topic: batch.topic, partition: batch.partition, next: unknown.outcome.next.toString()})
    // its transaction's duration is not known (the answer never came): no commit latency
    this.d.metrics.batchCommitted(unknown.outcome.counts.read)
    await this.afterOutcome(consumer, payload, {...unknown.outcome, committedAt: Date.now()}, batch.highWatermark)
    return false
  }

  private async afterOutcome(consumer: Consumer, payload: EachBatchPayload, outcome: BatchOutcome, highWatermark: string): Promise<void> {
    const {batch, resolveOffset, commitOffsetsIfNecessary} = payload
    const partition = batch.partition
    const {logger} = this.d
    const commitToKafka = async (next: bigint) => {
      resolveOffset((next - 1n).toString())
      try {
        await commitOffsetsIfNecessary({topics: [{topic: batch.topic, partitions: [{partition, offset: next.toString()}]}]})
      } catch (e) {
        logger.debug('kafka.offset_commit.failed', {error: e, partition}) // PostgreSQL holds the truth; lag tools catch up
      }
    }
    switch (outcome.kind) {
      case 'committed': {
        this.gapSeeks.delete(partition)
        this.countCommitted(outcome, batch.topic, partition, highWatermark)
        await commitToKafka(outcome.next)
        break
      }
      case 'behind':
        await commitToKafka(outcome.stored)
        break
      case 'gap':
        logger.info('batch.gap.seek', {partition, first_offset: batch.firstOffset(), stored: outcome.stored.toString()})
        this.gapSeeks.set(partition, outcome.stored)
        try {
          consumer.seek({topic: batch.topic, partition, offset: outcome.stored.toString()})
        } catch (e) {
          logger.warn('batch.gap.seek_failed', {partition, error: e}) // the next batch meets the same gap and seeks again
        }
        break
      case 'fenced':
        logger.warn('batch.fenced', {partition, stored: outcome.stored.toString(), note: 'another consumer committed this partition; batch dropped'})
        break
    }
  }

  private isAssigned(partition: number): boolean {
    return this.slots.some((s) => s.assigned?.includes(partition))
  }

  private forgetPartition(partition: number): void {
    this.lag.delete(partition)
    this.knownNext.delete(partition)
    this.d.metrics.forgetLag(this.topic, partition)
  }

  /**
   * Every probeIntervalMs: the high watermarks from Kafka and the stored offsets from PostgreSQL,
   * for the lag gauge of each assigned partition, and whether each answered (/readyz). Between
   * commits, and above all while one of them is down, the lag keeps moving (the alerts on it
   * fire); with PostgreSQL down the lag counts from the offsets this process last committed.
   */
  private watchDependencies(): void {
    const every = this.d.options.probeIntervalMs ?? 5000
    const within = <T>(p: Promise<T>): Promise<T> =>
      Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${every} ms`)), every).unref())])
    // one request of each kind at a time: a question still unanswered (kafkajs retrying through an
    // outage) is waited for again by the next probe, not asked a second time beside it
    let highCall: ReturnType<Admin['fetchTopicOffsets']> | undefined
    let storedCall: ReturnType<typeof storedOffsets> | undefined
    let probing = false
    const probe = async () => {
      if (probing || this.stopping) return
      probing = true
      try {
        highCall ??= this.d.admin.fetchTopicOffsets(this.topic).finally(() => (highCall = undefined))
        storedCall ??= storedOffsets(this.d.pool, this.pipeline, this.topic).finally(() => (storedCall = undefined))
        const [high, stored] = await Promise.allSettled([within(highCall), within(storedCall)])
        this.deps.kafka = high.status === 'fulfilled'
        if (stored.status === 'fulfilled') this.deps.pg = true
        else if (mapPgError(stored.reason, this.d.options.settings.databaseUrl).code === 'SERVICE_UNAVAILABLE' || /no answer within/.test(String((stored.reason as Error)?.message))) this.deps.pg = false
        if (high.status !== 'fulfilled' || this.stopping) return
        this.notePartitions(high.value.length)
        for (const o of high.value) {
          if (!this.isAssigned(o.partition)) continue
          const at = this.standsAt(o.partition, (stored.status === 'fulfilled' ? stored.value.get(o.partition) : undefined) ?? this.knownNext.get(o.partition), o.low)
          const lag = Math.max(0, Number(BigInt(o.high) - at))
          this.lag.set(o.partition, lag)
          this.d.metrics.lag(this.topic, o.partition, lag)
        }
      } catch (e) {
        this.d.logger.debug('probe.failed', {error: e})
      } finally {
        probing = false
      }
    }
    const t = setInterval(() => void probe(), every)
    t.unref()
    this.timers.push(t)
  }

  private startMonitors(): void {
    const {options} = this.d
    this.watchDependencies()
    if (options.onProgress) {
      let lastRead = 0
      let lastAt = Date.now()
      const every = options.progressIntervalMs ?? 5000
      const t = setInterval(() => {
        const now = Date.now()
        const t2 = this.totals
        options.onProgress!({
          read: t2.read,
          written: t2.written,
          deadLettered: t2.deadTotal(),
          duplicates: t2.duplicates,
          batches: t2.batches,
          recordsPerSecond: Math.round(((t2.read - lastRead) * 1000) / Math.max(1, now - lastAt)),
          lag: [...this.lag.values()].reduce((a, b) => a + b, 0),
          elapsedMs: now - this.startedAt,
        })
        lastRead = t2.read
        lastAt = now
      }, every)
      t.unref()
      this.timers.push(t)
    }
    if (options.untilIdle) {
      const idleMs = options.idleMs ?? 3000
      let checking = false
      const t = setInterval(() => {
        if (checking || this.stopping) return
        checking = true
        this.caughtUp(idleMs)
          .then((yes) => {
            if (yes) {
              this.d.logger.info('stream.idle', {idle_ms: idleMs})
              this.stopController.abort()
            }
          })
          .catch((e: unknown) => this.d.logger.debug('idle.check.failed', {error: e}))
          .finally(() => (checking = false))
      }, 200)
      this.timers.push(t)
    }
  }

  /**
   * The next offset a partition stands at: its stored (or last known) offset, else the topic's low
   * watermark, moved past the batches kafkajs resolved itself (only control records).
   */
  private standsAt(partition: number, stored: bigint | undefined, low: string): bigint {
    let at = stored ?? BigInt(low)
    if (at < BigInt(low)) {
      // the records from the stored offset up to the low watermark left the topic (retention,
      // deleteRecords) before this pipeline read them: no fetch returns them, so they are no lag
      // (else --until-idle waits for them for ever), and no sink or DLQ will ever hold them
      this.recordsGone(partition, at, BigInt(low))
      at = BigInt(low)
    }
    const f = this.filteredEnd.get(partition)
    return f !== undefined && f > at ? f : at
  }

  /**
   * Every assigned partition committed up to its high watermark, and no partition with records
   * left that no member of the group holds (one added to the topic while running), idle for
   * idleMs, outbox drained.
   */
  private async caughtUp(idleMs: number): Promise<boolean> {
    if (this.slots.some((s) => s.assigned === undefined) || this.inFlight > 0 || Date.now() - this.lastActivity < idleMs) return false
    const assigned = this.slots.flatMap((s) => s.assigned ?? [])
    const offsets = await this.d.admin.fetchTopicOffsets(this.topic)
    this.notePartitions(offsets.length)
    const stored = await storedOffsets(this.d.pool, this.pipeline, this.topic)
    for (const p of assigned) {
      const o = offsets.find((x) => x.partition === p)
      if (!o) return false
      if (this.standsAt(p, stored.get(p), o.low) < BigInt(o.high)) return false
    }
    // records left in partitions this process does not hold: another member's, or a partition
    // added while running that the group has not taken yet (the consumers see it within
    // METADATA_MAX_AGE_MS and rebalance), or one the group gave to a consumer of this process
    // that has not been told yet; the run must not end before it is read
    const behind = offsets.filter((o) => !assigned.includes(o.partition) && this.standsAt(o.partition, stored.get(o.partition), o.low) < BigInt(o.high)).map((o) => o.partition)
    if (behind.length > 0) {
      const {groups} = await this.d.admin.describeGroups([this.d.loaded.spec.source.group])
      const unheld = partitionsNotReadElsewhere(
        this.topic,
        behind,
        groupAssignments(groups[0]),
        this.slots.flatMap((s) => (s.memberId === undefined ? [] : [s.memberId])),
      )
      if (unheld.length > 0) {
        if (!this.waitingFor.has(unheld.join(','))) {
          this.waitingFor.add(unheld.join(','))
          this.d.logger.info('stream.idle.waiting', {topic: this.topic, partitions: unheld, note: 'records in partitions that no consumer reads yet (added while running, or just assigned to a consumer of this process that has not been told): waiting for them'})
        }
        return false
      }
    }
    if (this.inFlight > 0 || Date.now() - this.lastActivity < idleMs) return false
    return (await this.relay.drain(30_000)) === 0
  }

  /** Says once per partition and low watermark that records left the topic unread (standsAt). */
  private recordsGone(partition: number, stored: bigint, low: bigint): void {
    const key = `${partition}@${low}`
    if (this.goneSaid.has(key)) return
    this.goneSaid.add(key)
    this.d.logger.warn('stream.records.gone', {
      topic: this.topic,
      partition,
      first_offset: stored.toString(),
      last_offset: (low - 1n).toString(),
      records: Number(low - stored),
      note: 'deleted from the topic (retention.ms, retention.bytes or deleteRecords) before this pipeline read them: they are in no sink and no dead letter; re-send them from the source if they matter',
    })
  }

  /**
   * The lag at exit (lag_end). The high watermarks are asked on a Kafka client of its own with a
   * short retry (LAG_END_RETRY): through the runtime's admin, a broker gone at a stop held the exit
   * for kafkajs' ~10 s of retries. Throws when Kafka does not answer (lag_end -1).
   */
  async lagEnd(): Promise<number> {
    const admin = createKafka(this.d.options.settings.kafka, {mode: 'fail-fast', logger: this.d.logger, clientId: `cutover-${this.pipeline}`, retry: LAG_END_RETRY}).admin()
    let offsets: Awaited<ReturnType<Admin['fetchTopicOffsets']>>
    try {
      await admin.connect()
      offsets = await admin.fetchTopicOffsets(this.topic)
    } finally {
      await admin.disconnect().catch(() => {})
    }
    const stored = await storedOffsets(this.d.pool, this.pipeline, this.topic)
    let lag = 0n
    for (const o of offsets) {
      const l = BigInt(o.high) - this.standsAt(o.partition, stored.get(o.partition), o.low)
      if (l > 0n) lag += l
    }
    return Number(lag)
  }

  private async shutdown(): Promise<void> {
    const {logger, options} = this.d
    this.stopping = true
    this.stopController.abort()
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    const started = Date.now()
    // kafkajs waits for the batches in hand (each finishes and commits its transaction), then leaves the group
    const consumersStopped = Promise.all(this.slots.map((s) => s.consumer?.disconnect().catch((e: unknown) => logger.warn('consumer.disconnect.failed', {error: e, consumer: s.index})))).then(() =>
      logger.info('consumer.stopped', {ms: Date.now() - started}),
    )
    // The relay drains once the batches in hand have committed (their dead letters are in the
    // outbox), while kafkajs may still be leaving the group (the broker gone: its retries, seconds).
    // A signal stops promptly: the relay publishes for at most STOP_DRAIN_MS, and what it could not
    // publish (the broker or the DLQ topic gone) stays unsent in cutover.outbox for the next run.
    // --until-idle's own end (its outbox drained when it decided to stop) waits longer for the
    // dead letters of batches that came in after that.
    let stopped = false
    void consumersStopped.then(() => (stopped = true))
    while (!stopped && this.inFlight > 0) await sleep(20)
    const limitMs = options.untilIdle && !options.signal?.aborted ? IDLE_DRAIN_MS : STOP_DRAIN_MS
    const r = await this.relay.stop(limitMs)
    logger.info('relay.drain', {published: r.published, left: r.left, ms: r.ms, limit_ms: limitMs, send_given_up: r.gaveUp})
    if (r.left !== 0) {
      logger.warn('outbox.not_drained', {
        rows: r.left < 0 ? 'unknown (PostgreSQL did not answer)' : r.left,
        limit_ms: limitMs,
        note: 'dead letters kept in cutover.outbox: published by the next run',
      })
    }
    await consumersStopped
  }

  /** Releases everything, also when `run` failed half-way (idempotent). */
  async close(): Promise<void> {
    this.stopping = true
    this.stopController.abort()
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    await Promise.all(this.slots.map((s) => s.consumer?.disconnect().catch(() => {})))
    await this.relay.stop().catch(() => {})
  }
}

/** How long the outbox relay may publish at the end of a --until-idle run (a signal: STOP_DRAIN_MS). */
const IDLE_DRAIN_MS = 60_000
/** lag_end's retry: about half a second of attempts, then -1 (lagEnd) */
const LAG_END_RETRY = {retries: 2, initialRetryTime: 100, maxRetryTime: 500}
