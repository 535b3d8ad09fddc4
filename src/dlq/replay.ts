/**
 * `dlq replay`: sends selected dead letters back through the pipeline, exactly once.
 *
 * Selection: the DLQ offsets between --since and --until (record timestamps, per partition, as
 * the `kafka:` reader ranges them), then --code and --key; of cutover's dead letters only those
 * of the spec's pipeline (`cutover.pipeline`: a DLQ may be shared). The DLQ topic is only read, never
 * written. A relay repeat (the outbox relay publishes at least once: a copy with the same
 * headers, which `dlq inspect` counts once) is passed over, so the record is sent once. A dead
 * letter the relay published without its value and `dlq republish` published again with it is on
 * the DLQ twice (./republish.ts): the copy with the value is the one sent (never passed over as a
 * repeat, also after the other was parked), and the copy without it is passed over as a repeat
 * while the outbox row says its value went out again (parked otherwise: sent rows are pruned
 * after a day).
 *
 * Identity: the replay id is derived from the selection (topic, pipeline, codes, since, until,
 * key, --to, --max-replays, as given) unless --replay-id names one. The row keeps --key only as
 * its SHA-256 (a key may be a card number or an account id; ./mask.ts keyDigest), and messages
 * show `sha256:` and 12 hex digits of it. Its row in `cutover.replays`
 * (./ledger.ts) fixes the DLQ end offsets it covers on its first run, so running the same
 * replay again later sends nothing new (even though the DLQ grew with the records that failed
 * again), and a run killed part-way continues where it stopped.
 *
 * --rate N: at most N records in any second, the first one included, however a record's time
 * is read (its timestamp, its append, its commit: WindowLimiter), in transactions of about a
 * tenth of a second's worth (chunkUnderRate).
 *
 * Exactly once, per stretch of a DLQ partition (at most `chunk` records):
 *
 *   consumer group cutover-replay-<id>  (reads the DLQ, autoCommit off)
 *   transactional producer, transactional.id cutover-replay-<id> (idempotent)
 *     BEGIN (Kafka)
 *       records to their source topic (cutover.source.topic / __connect.errors.topic /
 *       kafka_dlt-original-topic) or --to <topic>: original key, value, headers byte for
 *       byte, without the dead-letter headers, plus cutover.replay.count (+1) and
 *       cutover.replay.id; records whose count would pass --max-replays (or whose value the
 *       relay could not publish: cutover.value.omitted, unless published again since) go to
 *       <dlq>.parked with all their headers and cutover.parked.by
 *       sendOffsets(group, next DLQ offset)
 *     COMMIT (Kafka)
 *   UPDATE cutover.replays: counts, progress (only if still at the stretch's start)
 *
 * A kill -9 before the Kafka commit: the next run's producer (same transactional.id) fences the
 * old one and its open transaction is aborted, so consumers reading committed records (stream
 * run does) never see those records; the group offset has not moved, so they are sent again.
 * A kill between the Kafka commit and the UPDATE: the group is ahead of the row; the next run
 * reads that stretch again only to count it. The pipeline's dedupe by key makes a record
 * replayed by two different replays land once in the sink.
 */
import {createHash} from 'node:crypto'
import {userInfo} from 'node:os'
import type {Admin, EachBatchPayload, IHeaders, KafkaMessage, Message, Producer, Transaction} from 'kafkajs'
import type {ConnectionSettings} from '../config/env.js'
import {loadSpec, type LoadedSpec} from '../config/spec.js'
import {CutoverError, UsageError} from '../errors.js'
import {connectAdmin, createKafka, createTopicHint, createTopicsReady, isRebalanceError, mapKafkaError, probeKafka} from '../kafka/client.js'
import {silentLogger, type Logger} from '../log.js'
import {mapPgError, openDatabase, type Pool} from '../pg/pool.js'
import {DLQ_REPLAY_NEEDS, requirePrivileges} from '../pg/privileges.js'
import {WindowLimiter} from '../runtime/ratelimit.js'
import {deadLetterView, parkedHeaders, replayHeaders} from './headers.js'
import {digestStoredKey, finishReplay, getReplay, openReplay, recordDeleted, recordProgress, type ReplayCounts, type ReplayRow, type ReplaySelection, type ReplayTarget} from './ledger.js'
import {keyDigest, showKeyDigest} from './mask.js'
import {ReplayPredictor, watermarkFloor, type DlqPrediction} from './predict.js'
import {DeadLetterCopies, deadLetterIdentity, dlqRanges, matchesFilter, MAX_REMEMBERED, ofOtherPipeline, readDeadLetters, type DlqFilter, type DlqHeaders, type DlqRecord} from './reader.js'
import {republishedCopies} from './republish.js'

export type {DlqPrediction}

export interface DlqReplayOptions {
  /** the dead-letter topic */
  topic: string
  /** the pipeline spec (its current version: dry runs use its stages) */
  spec: string
  settings: ConnectionSettings
  codes?: string[]
  /** ms since epoch */
  since?: number
  until?: number
  /**
   * --since/--until as the operator wrote them ("2h"): they, not the times they resolve to,
   * identify the replay, so the same command run again after a crash is the same replay
   * (which covers the DLQ offsets fixed by its first run).
   */
  sinceText?: string
  untilText?: string
  key?: string
  /** 'source' (default): each record's source topic; or a topic name */
  to?: string
  /** records per second */
  rate?: number
  dryRun?: boolean
  /** a record replayed this many times already is parked instead (default 3) */
  maxReplays?: number
  /** name the replay instead of deriving its id from the selection */
  replayId?: string
  /** records per Kafka transaction (default 500; under --rate, chunkUnderRate) */
  chunk?: number
  /** --dry-run: the `stream run --max-record-bytes` the prediction assumes (default 1 MiB, as stream run's) */
  maxRecordBytes?: number
  logger?: Logger
  signal?: AbortSignal
  onProgress?: (p: DlqReplayProgress) => void
}

export interface DlqReplayProgress {
  /** DLQ records covered so far (this and earlier runs) */
  scanned: number
  /** DLQ records the replay covers */
  total: number
  selected: number
  sent: number
  parked: number
}

/** The `--json` document of `cutover dlq replay`. */
export interface DlqReplayResult {
  dry_run: boolean
  /** null for a dry run */
  replay_id: string | null
  topic: string
  spec: string
  pipeline: string
  /** 'source' or the topic */
  to: string
  max_replays: number
  parked_topic: string
  /** completed; stopped (a signal: run it again to continue); dry-run */
  status: 'completed' | 'stopped' | 'dry-run'
  /** the replay had completed before this run: nothing was sent */
  already_completed: boolean
  /** this run continued an earlier, unfinished run */
  resumed: boolean
  /** DLQ offsets covered, per partition */
  targets: ReplayTarget[]
  /** totals over every run of this replay (the ledger row) */
  scanned: number
  selected: number
  sent: number
  parked: number
  /** dead letters of the range that retention deleted before the replay reached them */
  deleted: number
  sent_by_topic: Record<string, number>
  /** by this run */
  sent_now: number
  parked_now: number
  /**
   * relay repeats this run passed over: copies of a dead letter the outbox relay published twice
   * (same headers, as `dlq inspect` counts them once); neither selected nor sent, so the record goes
   * back once. Looked for among the latest 500,000 dead letters (a run that resumes reads back that
   * far before where the last one stopped). Counts too a copy published without its value whose
   * dead letter `dlq republish` published again with it (the later copy, with the value, is sent).
   */
  repeats_now: number
  /** cutover's dead letters of other pipelines (cutover.pipeline) in the range this run read: not selected */
  other_pipelines_now: number
  /** dry run: per original code, what the current spec does with the records */
  prediction?: Record<string, DlqPrediction>
  elapsed_ms: number
}

const DEFAULT_MAX_REPLAYS = 3
/** JSON with the members of objects sorted (a jsonb column returns them in its own order). */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x !== null && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x))
}

/** fetches that start after the expected offset before it is taken for a retention gap */
const GAP_PATIENCE = 20

/** The selection as given: --key as it is. The replay id is derived from this (replayIdOf), as it always was. */
function selectionOf(o: DlqReplayOptions): ReplaySelection {
  return {
    codes: [...new Set(o.codes ?? [])].sort(),
    since: o.sinceText ?? (o.since === undefined ? null : new Date(o.since).toISOString()),
    until: o.untilText ?? (o.until === undefined ? null : new Date(o.until).toISOString()),
    key: o.key ?? null,
    to: o.to ?? 'source',
    max_replays: o.maxReplays ?? DEFAULT_MAX_REPLAYS,
  }
}

/** The selection as the ledger keeps it, and compares it: --key as its digest (./mask.ts keyDigest). */
function storedSelection(given: ReplaySelection): ReplaySelection {
  return {...given, key: given.key === null ? null : keyDigest(given.key)}
}

/** A selection as messages show it: --key as `sha256:` and 12 hex digits (a stored key of an earlier version too). */
function shownSelection(selection: ReplaySelection): string {
  return JSON.stringify({...selection, key: selection.key === null ? null : showKeyDigest(selection.key)})
}

/**
 * Records per Kafka transaction under --rate N: about a tenth of a second's worth (1 to 500), a
 * divisor of N where one is near, so that whole transactions fill each second (WindowLimiter lets
 * N records go in any second: with transactions of n, N rounded down to a multiple of n).
 */
export function chunkUnderRate(rate: number): number {
  const most = Math.max(1, Math.min(500, Math.floor(rate / 10)))
  for (let d = most; d * 2 >= most; d--) if (rate % d === 0) return d
  return most
}

/**
 * The id of a replay: named, or derived from what it selects (so the same replay finds its row).
 * `selection` is as given (selectionOf, --key as it is): ids of replays started by earlier
 * versions stay what they were.
 */
export function replayIdOf(topic: string, pipeline: string, selection: ReplaySelection, named?: string): string {
  if (named !== undefined) {
    if (!/^[A-Za-z0-9._-]{1,100}$/.test(named)) throw new UsageError(`--replay-id ${named}: use letters, digits, . _ - (at most 100)`)
    return named
  }
  const h = createHash('sha256').update(JSON.stringify({topic, pipeline, ...selection})).digest('hex')
  return `r-${h.slice(0, 16)}`
}

/** The selection's filter; a DLQ shared by several pipelines: only the spec's own dead letters (their spec is not this one). */
function filterOf(o: DlqReplayOptions, pipeline: string): DlqFilter {
  return {pipeline, ...(o.codes && o.codes.length > 0 ? {codes: o.codes} : {}), ...(o.key !== undefined ? {key: o.key} : {})}
}

function whoAmI(): string {
  try {
    return userInfo().username
  } catch {
    return process.env.USER ?? 'unknown'
  }
}

export async function replayDlq(o: DlqReplayOptions): Promise<DlqReplayResult> {
  const started = Date.now()
  const logger = (o.logger ?? silentLogger).namespace('dlq.replay')
  const loaded = await loadSpec(o.spec)
  if (o.rate !== undefined && !(o.rate > 0)) throw new UsageError('--rate must be more than 0')
  const maxReplays = o.maxReplays ?? DEFAULT_MAX_REPLAYS
  const to = o.to ?? 'source'
  const base = {
    topic: o.topic,
    spec: o.spec,
    pipeline: loaded.spec.name,
    to,
    max_replays: maxReplays,
    parked_topic: `${o.topic}.parked`,
  }
  // an unreachable broker is exit 3 in seconds, not after the resilient client's retries
  await probeKafka(o.settings.kafka, logger)
  const url = o.settings.databaseUrl
  // a dry run writes nothing: no migrations either (a missing cutover schema means nothing was written yet)
  const pool = await openDatabase(url, {logger, max: 2, applicationName: 'cutover dlq replay', ...(o.dryRun ? {migrate: false} : {})})
  try {
    if (o.dryRun) return await dryRun(o, loaded, pool, logger, base, started)
    // the ledger's privileges, on this pool, before any dead letter is read (pg/privileges.ts)
    await requirePrivileges(pool, 'dlq replay', DLQ_REPLAY_NEEDS)
    return await new Replay(o, loaded, pool, logger).run(base, started)
  } catch (e) {
    if (e instanceof CutoverError) throw e
    const err = e as {code?: unknown; name?: unknown}
    if (typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code)) throw mapPgError(e, url)
    if (typeof err.name === 'string' && err.name.startsWith('KafkaJS')) throw mapKafkaError(e, o.settings.kafka, 'replay')
    throw e
  } finally {
    await pool.end().catch(() => {})
  }
}

type Base = Pick<DlqReplayResult, 'topic' | 'spec' | 'pipeline' | 'to' | 'max_replays' | 'parked_topic'>

async function dryRun(o: DlqReplayOptions, loaded: LoadedSpec, pool: Pool, logger: Logger, base: Base, started: number): Promise<DlqReplayResult> {
  const predictor = new ReplayPredictor(loaded, pool, base.max_replays, logger, o.maxRecordBytes)
  const admin = await connectAdmin(createKafka(o.settings.kafka, {mode: 'fail-fast', logger}), o.settings.kafka)
  let targets: Awaited<ReturnType<typeof dlqRanges>>
  try {
    targets = await dlqRanges(admin, o.settings.kafka, o.topic, o.since, o.until)
    // windows: how far behind a replayed record may be (predict.ts late)
    if (loaded.spec.windows.length > 0 && (o.to ?? 'source') === 'source') predictor.watermarkFloor = await watermarkFloor(pool, admin, loaded.spec.name, loaded.spec.source.topic)
  } finally {
    await admin.disconnect().catch(() => {})
  }
  const filter = filterOf(o, loaded.spec.name)
  const copies = new DeadLetterCopies()
  let repeatsNow = 0
  let otherPipelines = 0
  let scanned = 0
  let selected = 0
  const total = targets.reduce((a, t) => a + Number(t.end - t.start), 0)
  for await (const batch of readDeadLetters({
    topic: o.topic,
    kafka: o.settings.kafka,
    logger,
    ...(o.since !== undefined ? {since: o.since} : {}),
    ...(o.until !== undefined ? {until: o.until} : {}),
    ...(o.signal ? {signal: o.signal} : {}),
  })) {
    scanned += batch.length
    const matching = batch.filter((r) => {
      if (ofOtherPipeline(r, loaded.spec.name)) otherPipelines++
      return matchesFilter(r, filter)
    })
    const republished = await republishedCopies(pool, matching, logger)
    const chosen = matching.filter((r) => {
      const copy = copies.classify(r)
      // a repeat; or a copy without its value whose dead letter was published again with it (that copy is the one)
      if (copy === 'value' || (copy === 'first' && !republished.has(deadLetterIdentity(r) ?? ''))) return true
      repeatsNow++
      return false
    })
    selected += chosen.length
    await predictor.add(chosen)
    o.onProgress?.({scanned, total, selected, sent: 0, parked: 0})
  }
  const prediction = predictor.result()
  return {
    ...base,
    dry_run: true,
    replay_id: null,
    status: 'dry-run',
    already_completed: false,
    resumed: false,
    targets: targets.map((t) => ({partition: t.partition, start: t.start.toString(), end: t.end.toString()})),
    scanned,
    selected,
    sent: 0,
    parked: 0,
    deleted: 0,
    sent_by_topic: {},
    sent_now: 0,
    parked_now: 0,
    repeats_now: repeatsNow,
    other_pipelines_now: otherPipelines,
    prediction,
    elapsed_ms: Date.now() - started,
  }
}

/** One run of a real replay. */
class Replay {
  private readonly logger: Logger
  private readonly filter: DlqFilter
  /** as given (the id is derived from it) */
  private readonly given: ReplaySelection
  /** as the ledger keeps it: --key as its digest */
  private readonly selection: ReplaySelection
  private readonly limiter: WindowLimiter | undefined
  private readonly chunk: number
  private readonly knownTopics = new Set<string>()
  private sentNow = 0
  private parkedNow = 0
  private repeatsNow = 0
  private otherPipelinesNow = 0
  /** relay repeats and copies published again with their value: the selected dead letters seen by this run (and read back on resuming) */
  private readonly copies = new DeadLetterCopies()

  constructor(
    private readonly o: DlqReplayOptions,
    private readonly loaded: LoadedSpec,
    private readonly pool: Pool,
    logger: Logger,
  ) {
    this.logger = logger
    this.filter = filterOf(o, loaded.spec.name)
    this.given = selectionOf(o)
    this.selection = storedSelection(this.given)
    this.limiter = o.rate ? new WindowLimiter(o.rate) : undefined
    this.chunk = o.chunk ?? (o.rate ? chunkUnderRate(o.rate) : 500)
  }

  private resultOf(base: Base, row: ReplayRow, status: DlqReplayResult['status'], flags: {already: boolean; resumed: boolean}, started: number): DlqReplayResult {
    return {
      ...base,
      dry_run: false,
      replay_id: row.id,
      status,
      already_completed: flags.already,
      resumed: flags.resumed,
      targets: row.targets,
      scanned: Number(row.scanned),
      selected: Number(row.selected),
      sent: Number(row.sent),
      parked: Number(row.parked),
      deleted: Number(row.deleted ?? 0),
      sent_by_topic: Object.fromEntries(Object.entries(row.sent_by_topic).map(([k, v]) => [k, Number(v)])),
      sent_now: this.sentNow,
      parked_now: this.parkedNow,
      repeats_now: this.repeatsNow,
      other_pipelines_now: this.otherPipelinesNow,
      elapsed_ms: Date.now() - started,
    }
  }

  async run(base: Base, started: number): Promise<DlqReplayResult> {
    const {o} = this
    const id = replayIdOf(o.topic, this.loaded.spec.name, this.given, o.replayId)
    const existing = await getReplay(this.pool, id)
    if (existing) {
      this.assertSameSelection(existing)
      await this.digestLegacyKey(existing)
    }
    if (existing?.status === 'completed') {
      this.logger.info('replay.already_completed', {replay_id: id})
      return this.resultOf(base, existing, 'completed', {already: true, resumed: false}, started)
    }
    // One run of a replay at a time: a second one would read the same starting point and send
    // again what the first sends meanwhile. The lock is the session's: a killed run releases it.
    const lock = await this.pool.connect()
    let locked = false
    try {
      locked = (await lock.query<{ok: boolean}>("SELECT pg_try_advisory_lock(hashtext('cutover.replay'), hashtext($1)) AS ok", [id])).rows[0]?.ok === true
    } catch (e) {
      lock.release(true)
      throw e
    }
    if (!locked) {
      lock.release()
      throw new UsageError(`replay ${id} is running in another process`, {hint: 'wait for it to finish, or stop it (Ctrl-C) and run this again to resume it'})
    }
    try {
      return await this.runLocked(base, started, id)
    } finally {
      await lock.query("SELECT pg_advisory_unlock(hashtext('cutover.replay'), hashtext($1))", [id]).catch(() => {})
      lock.release()
    }
  }

  private async runLocked(base: Base, started: number, id: string): Promise<DlqReplayResult> {
    const {o} = this
    const settings = o.settings.kafka
    const kafka = createKafka(settings, {mode: 'resilient', logger: this.logger, clientId: `cutover-replay-${id}`})
    const admin = await connectAdmin(kafka, settings)
    try {
      const ranges = await dlqRanges(admin, settings, o.topic, o.since, o.until)
      if (o.to !== undefined && o.to !== 'source') await this.requireTopic(admin, o.to)
      const groupId = `cutover-replay-${id}`
      const {row, created} = await openReplay(this.pool, {
        id,
        dlq_topic: o.topic,
        pipeline: this.loaded.spec.name,
        spec_sha256: this.loaded.sha256,
        selection: this.selection,
        group_id: groupId,
        targets: ranges.map((r) => ({partition: r.partition, start: r.start.toString(), end: r.end.toString()})),
        run_by: whoAmI(),
      })
      const resumed = !created
      if (resumed) {
        this.assertSameSelection(row)
        await this.digestLegacyKey(row)
      }
      this.logger.info(resumed ? 'replay.resumed' : 'replay.started', {replay_id: id, targets: row.targets})
      const done = await this.consume(admin, kafka, row, groupId)
      const after = (await getReplay(this.pool, id))!
      if (done) {
        await finishReplay(this.pool, id, 'completed')
        return this.resultOf(base, {...after, status: 'completed'}, 'completed', {already: false, resumed}, started)
      }
      return this.resultOf(base, after, 'stopped', {already: false, resumed}, started)
    } finally {
      await admin.disconnect().catch(() => {})
    }
  }

  /**
   * A named replay (--replay-id) resumed with other flags would send, and count, another selection under the old row's name.
   * Compared with --key as digests: a row of an earlier version keeps the key itself. Neither key is shown, only their digests.
   */
  private assertSameSelection(row: ReplayRow): void {
    if (canonical(storedSelection(row.selection)) === canonical(this.selection)) return
    throw new UsageError(`replay ${row.id} was started with another selection (${shownSelection(row.selection)}); this run asks ${shownSelection(this.selection)}`, {
      hint: 'give the same --code/--since/--until/--key/--to/--max-replays to resume it, or another --replay-id for a new replay',
    })
  }

  /** A row of an earlier version, resumed (its selection is this one's): its --key replaced by the digest. */
  private async digestLegacyKey(row: ReplayRow): Promise<void> {
    const stored = row.selection.key
    if (stored === null || this.given.key === null || stored === this.selection.key) return
    await digestStoredKey(this.pool, row.id, stored, this.selection.key!)
    row.selection = {...row.selection, key: this.selection.key}
    this.logger.info('replay.key_digested', {replay_id: row.id, note: 'the ledger row of an earlier version kept --key itself: replaced by its SHA-256'})
  }

  private async requireTopic(admin: Admin, topic: string): Promise<void> {
    if (this.knownTopics.has(topic)) return
    const topics = await admin.listTopics()
    for (const t of topics) this.knownTopics.add(t)
    if (!this.knownTopics.has(topic)) {
      // the command that creates it, with as many partitions as the dead-letter topic (which stream run creates with its source's)
      const create = await createTopicHint(admin, this.o.settings.kafka, topic, {partitionsOf: this.o.topic})
      throw new UsageError(`topic ${topic} does not exist on ${this.o.settings.kafka.brokers.join(',')}`, {
        hint:
          topic === this.o.to
            ? `create it (${create}), or fix --to`
            : `the dead letters name it as their source topic: create it (${create}), or send them elsewhere with --to <topic>`,
      })
    }
  }

  private async ensureParkedTopic(admin: Admin, partitions: number): Promise<void> {
    const parked = `${this.o.topic}.parked`
    if (this.knownTopics.has(parked)) return
    const topics = await admin.listTopics()
    for (const t of topics) this.knownTopics.add(t)
    if (this.knownTopics.has(parked)) return
    await createTopicsReady(admin, [{topic: parked, numPartitions: partitions}])
    this.knownTopics.add(parked)
    this.logger.info('replay.parked_topic.created', {topic: parked, partitions})
  }

  /** Consumes the DLQ stretch by stretch until every partition reached its target end. Returns false when stopped by the signal. */
  private async consume(admin: Admin, kafka: ReturnType<typeof createKafka>, row: ReplayRow, groupId: string): Promise<boolean> {
    const {o} = this
    const topic = o.topic
    const ends = new Map(row.targets.map((t) => [t.partition, BigInt(t.end)]))
    const next = new Map(row.targets.map((t) => [t.partition, BigInt(row.progress[String(t.partition)] ?? t.start)]))
    // Where the ledger row's progress is, per partition: the `from` of its compare-and-set. It lags
    // `next` when this run passed over transaction markers or aborted records (skipMarkers, a stretch
    // that follows them): the next stretch, or deletion, then covers them too.
    const counted = new Map(next)
    const total = row.targets.reduce((a, t) => a + Number(BigInt(t.end) - BigInt(t.start)), 0)
    const progress: DlqReplayProgress = {scanned: Number(row.scanned), total, selected: Number(row.selected), sent: Number(row.sent), parked: Number(row.parked)}
    // The group is ahead of the ledger after a kill between the Kafka commit and the UPDATE:
    // that stretch is read again only to be counted.
    const countOnlyUntil = new Map<number, bigint>()
    // The producer first, fenced: its transactional id is registered (InitProducerId) at the first
    // transaction, which aborts whatever an earlier instance left open and fences that instance,
    // before the group's offsets are read.
    const producer = kafka.producer({transactionalId: groupId, idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false})
    await producer.connect()
    try {
      await (await producer.transaction()).abort()
    } catch (e) {
      await producer.disconnect().catch(() => {})
      throw e
    }
    const committed = await admin.fetchOffsets({groupId, topics: [topic]})
    for (const p of committed.find((t) => t.topic === topic)?.partitions ?? []) {
      const at = next.get(p.partition)
      if (at === undefined || p.offset === '-1' || p.offset === '') continue
      const k = BigInt(p.offset)
      if (k > at) countOnlyUntil.set(p.partition, k)
      else if (k < at) this.logger.warn('replay.group_behind_ledger', {partition: p.partition, group: p.offset, ledger: at.toString()})
    }
    // Retention may have deleted the start of what is left (all of it, even): passed over and
    // counted as deleted, the group moved past it (it has no member yet), so that the run does
    // not wait for records that will never come.
    // A resumed run first reads back up to its share of the latest MAX_REMEMBERED dead letters
    // before where the last run stopped (`lookback`), only to remember them: a relay repeat of a
    // dead letter an earlier run sent is then passed over too.
    const starts = new Map(row.targets.map((t) => [t.partition, BigInt(t.start)]))
    const share = BigInt(Math.max(1, Math.floor(MAX_REMEMBERED / Math.max(1, row.targets.length))))
    const lookback = new Map<number, bigint>()
    for (const w of await admin.fetchTopicOffsets(topic)) {
      const at = next.get(w.partition)
      const end = ends.get(w.partition)
      const low = BigInt(w.low)
      if (at !== undefined && end !== undefined && at < end) {
        let from = at - share
        for (const floor of [starts.get(w.partition) ?? at, low]) if (from < floor) from = floor
        if (from < at) lookback.set(w.partition, from)
      }
      if (at === undefined || end === undefined || at >= low) continue
      const to = low < end ? low : end
      if (to <= at) continue
      this.logger.warn('replay.deleted_by_retention', {partition: w.partition, from: at.toString(), to: to.toString(), records: (to - at).toString()})
      if (!(await recordDeleted(this.pool, row.id, w.partition, at, to))) this.logger.warn('replay.ledger_moved', {partition: w.partition, from: at.toString()})
      next.set(w.partition, to)
      counted.set(w.partition, to)
      const recount = countOnlyUntil.get(w.partition)
      if (recount !== undefined && recount <= to) countOnlyUntil.delete(w.partition)
      await admin.setOffsets({groupId, topic, partitions: [{partition: w.partition, offset: to.toString()}]}).catch((e: unknown) => this.logger.warn('replay.group_offset_failed', {partition: w.partition, error: e}))
    }
    const open = () => [...next].filter(([p, at]) => at < (ends.get(p) ?? 0n)).map(([p]) => p)
    if (open().length === 0) {
      await producer.disconnect().catch(() => {})
      return true
    }
    const consumer = kafka.consumer({groupId, allowAutoTopicCreation: false, readUncommitted: false, sessionTimeout: 10_000, heartbeatInterval: 1000, retry: {retries: 8}})
    let failure: unknown
    let finish!: () => void
    const finished = new Promise<void>((resolve) => (finish = resolve))
    const stop = () => finish()
    o.signal?.addEventListener('abort', stop, {once: true})
    if (o.signal?.aborted) finish()
    consumer.on(consumer.events.CRASH, (e) => {
      if (!e.payload.restart) {
        failure = e.payload.error
        finish()
      }
    })
    const seeked = new Set<number>()
    const gapWaits = new Map<number, number>()

    const eachBatch = async ({batch, heartbeat, isRunning, isStale, resolveOffset}: EachBatchPayload): Promise<void> => {
      const p = batch.partition
      const end = ends.get(p)
      if (end === undefined || failure !== undefined || o.signal?.aborted) return
      const from = lookback.get(p)
      if (from !== undefined && batch.messages.length > 0) {
        // a fetch from the group's offset before our seek to the look-back: wait for the seek (a
        // fetch from the look-back starts before where the last run stopped, unless only markers are
        // there: its first offset, filtered records included, says where it began)
        const began = batch.firstOffset()
        if (BigInt(batch.messages[0]!.offset) >= next.get(p)! && !(began !== null && BigInt(began) <= from)) {
          const waited = (gapWaits.get(p) ?? 0) + 1
          gapWaits.set(p, waited)
          if (!seeked.has(p) || waited <= GAP_PATIENCE) return
        }
        gapWaits.delete(p)
        lookback.delete(p)
      }
      for (let i = 0; i < batch.messages.length && isRunning() && !isStale() && !o.signal?.aborted; ) {
        const at = next.get(p)!
        if (at >= end) break
        const first = BigInt(batch.messages[i]!.offset)
        if (first < at) {
          // the look-back, or fetched before the seek: already counted, only remembered
          const m = batch.messages[i++]!
          const r = recordOf(p, m)
          if (matchesFilter(r, this.filter)) this.copies.classify(r)
          continue
        }
        // Offsets skipped before `first` inside one fetched batch, or by a fetch that began at or
        // before `at` (its first offset counts the records kafkajs filtered), are transaction
        // markers or aborted records: never dead letters, never deleted. Retention only removes the
        // start of a log, and a fetch from a deleted offset begins at the new start.
        const began = batch.firstOffset()
        if (first > at && i === 0 && !(began !== null && BigInt(began) <= at)) {
          // a fetch from the group's offset before our seek: wait for the seek (a few fetches at most);
          // past that, the records between were deleted by retention
          const waited = (gapWaits.get(p) ?? 0) + 1
          gapWaits.set(p, waited)
          if (!seeked.has(p) || waited <= GAP_PATIENCE) return
          // deleted while this run went on (up to where this fetch began): passed over and counted as deleted
          const to = [first, BigInt(began ?? first), end].reduce((a, b) => (b < a ? b : a))
          this.logger.warn('replay.gap', {partition: p, expected: at.toString(), got: to.toString(), note: 'records deleted by retention'})
          const from = counted.get(p)!
          if (!(await recordDeleted(this.pool, row.id, p, from, to, to - at))) this.logger.warn('replay.ledger_moved', {partition: p, from: from.toString()})
          counted.set(p, to)
          gapWaits.delete(p)
          skipMarkers(p, to)
          continue
        }
        gapWaits.delete(p)
        if (first >= end) {
          // what is left of the range holds only markers (a range ending at a marker: --until, or a
          // DLQ written in transactions that grew since the replay began): the partition is done
          skipMarkers(p, end)
          break
        }
        // a stretch never straddles the end of a count-only stretch (what an earlier run sent)
        const recount = countOnlyUntil.get(p)
        const stopAt = recount !== undefined && recount > at && recount < end ? recount : end
        const chunk: KafkaMessage[] = []
        while (i < batch.messages.length && chunk.length < this.chunk && BigInt(batch.messages[i]!.offset) < stopAt) chunk.push(batch.messages[i++]!)
        if (chunk.length === 0) break
        const last = BigInt(chunk[chunk.length - 1]!.offset)
        if (!(await this.stretch(admin, producer, groupId, p, counted.get(p)!, last + 1n, chunk, countOnlyUntil, progress))) return
        next.set(p, last + 1n)
        counted.set(p, last + 1n)
        if (recount !== undefined && last + 1n >= recount) countOnlyUntil.delete(p)
        resolveOffset(last.toString())
        await heartbeat()
        if (last + 1n >= end) {
          consumer.pause([{topic, partitions: [p]}])
          if (open().length === 0) finish()
        }
      }
      // every message of the batch handled: what follows its last one up to the batch's last offset
      // are transaction markers (a DLQ written in transactions: <dlq>.parked, Spring's DLTs)
      if (batch.messages.length > 0 && next.get(p)! > BigInt(batch.messages[batch.messages.length - 1]!.offset)) skipMarkers(p, BigInt(batch.lastOffset()) + 1n)
    }
    /** Moves partition `p` past offsets that hold only markers, up to `through`; ends it when that reaches its end. */
    const skipMarkers = (p: number, through: bigint) => {
      const at = next.get(p)
      const end = ends.get(p)
      if (at === undefined || end === undefined || at >= end || through <= at) return
      next.set(p, through < end ? through : end)
      if (next.get(p)! >= end) {
        consumer.pause([{topic, partitions: [p]}])
        if (open().length === 0) finish()
      }
    }
    // Batches made only of markers never reach eachBatch (they would leave a range ending on a
    // commit marker waiting for ever); a fetch from the position this run reached, so all markers.
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
      if (e.payload.topic === topic && e.payload.batchSize === 0 && seeked.has(e.payload.partition)) skipMarkers(e.payload.partition, BigInt(e.payload.lastOffset) + 1n)
    })

    try {
      await consumer.connect()
      await consumer.subscribe({topics: [topic], fromBeginning: true})
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        for (const p of e.payload.memberAssignment[topic] ?? []) {
          const at = next.get(p)
          const end = ends.get(p)
          if (at === undefined || end === undefined || at >= end) {
            consumer.pause([{topic, partitions: [p]}])
            continue
          }
          consumer.seek({topic, partition: p, offset: (lookback.get(p) ?? at).toString()})
          seeked.add(p)
        }
      })
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: async (payload) => {
          try {
            await eachBatch(payload)
          } catch (e) {
            // a rebalance is kafkajs' to handle: it rejoins, and GROUP_JOIN seeks to where this run is
            if (isRebalanceError(e)) throw e
            failure = e
            finish()
          }
        },
      })
      await finished
    } finally {
      o.signal?.removeEventListener('abort', stop)
      await consumer.disconnect().catch((e: unknown) => this.logger.warn('replay.consumer.disconnect_failed', {error: e}))
      await producer.disconnect().catch(() => {})
    }
    if (failure !== undefined) throw failure
    return open().length === 0
  }

  /** One stretch [from, next) of partition `p`: classify, send in one Kafka transaction with the group offset, then the ledger. False: stopped before sending. */
  private async stretch(
    admin: Admin,
    producer: Producer,
    groupId: string,
    p: number,
    from: bigint,
    nextOffset: bigint,
    messages: KafkaMessage[],
    countOnlyUntil: Map<number, bigint>,
    progress: DlqReplayProgress,
  ): Promise<boolean> {
    const {o} = this
    const replayId = groupId.slice('cutover-replay-'.length)
    const counts: ReplayCounts = {scanned: messages.length, selected: 0, sent: 0, parked: 0, sentByTopic: {}}
    const byTopic = new Map<string, Message[]>()
    const countOnly = (countOnlyUntil.get(p) ?? -1n) >= nextOffset
    const parkedTopic = `${o.topic}.parked`
    const records = messages.map((m) => recordOf(p, m))
    // copies without their value whose dead letter `dlq republish` published again with it (asked only when the stretch holds one)
    const republished = await republishedCopies(this.pool, records.filter((r) => matchesFilter(r, this.filter)), this.logger)
    for (const [i, m] of messages.entries()) {
      const r = records[i]!
      const headers = r.headers
      if (!countOnly && ofOtherPipeline(r, this.loaded.spec.name)) this.otherPipelinesNow++
      if (!matchesFilter(r, this.filter)) continue
      // a relay repeat of a dead letter this replay sent or parked already: once is enough; a copy
      // WITH its value after copies without it (dlq republish) is the dead letter: it goes
      const copy = this.copies.classify(r)
      if (copy === 'repeat') {
        if (!countOnly) this.repeatsNow++
        continue
      }
      if (copy === 'first' && republished.has(deadLetterIdentity(r) ?? '')) {
        // without its value, published again with it since: that later copy is the one replayed
        if (!countOnly) {
          this.repeatsNow++
          this.logger.info('replay.value_republished', {partition: p, offset: m.offset, source: r.view.source, note: 'published without its value, then again with it (dlq republish): the copy with the value is replayed, this one passed over'})
        }
        continue
      }
      counts.selected++
      const count = r.view.replayCount + 1
      let target: string
      let out: Message
      // past --max-replays, or a value the relay could not publish (replaying it would only fail again)
      if (count > this.selection.max_replays || r.view.valueOmitted !== null) {
        counts.parked++
        target = parkedTopic
        out = {key: m.key, value: m.value, headers: parkedHeaders(headers, replayId)}
      } else {
        target = this.selection.to === 'source' ? (r.view.source.topic ?? this.loaded.spec.source.topic) : this.selection.to
        counts.sent++
        counts.sentByTopic[target] = (counts.sentByTopic[target] ?? 0) + 1
        out = {key: m.key, value: m.value, headers: replayHeaders(headers, replayId, count) as IHeaders}
      }
      const list = byTopic.get(target) ?? []
      list.push(out)
      byTopic.set(target, list)
    }
    if (countOnly) {
      this.logger.info('replay.recount', {partition: p, from: from.toString(), next: nextOffset.toString(), note: 'sent by an earlier run (Kafka committed), counted now'})
    } else {
      for (const t of byTopic.keys()) {
        if (t === parkedTopic) await this.ensureParkedTopic(admin, (await admin.fetchTopicMetadata({topics: [o.topic]})).topics[0]?.partitions.length ?? 1)
        else await this.requireTopic(admin, t)
      }
      const n = counts.sent + counts.parked
      const limiter = n > 0 ? this.limiter : undefined
      if (limiter && (await limiter.take(n, o.signal)) === undefined) return false
      if (o.signal?.aborted) return false
      const txn = await producer.transaction()
      try {
        if (byTopic.size > 0) await txn.sendBatch({acks: -1, topicMessages: [...byTopic].map(([topic, msgs]) => ({topic, messages: msgs}))})
        await sendOffsetsRetrying(txn, {consumerGroupId: groupId, topics: [{topic: o.topic, partitions: [{partition: p, offset: nextOffset.toString()}]}]})
        await txn.commit()
      } catch (e) {
        await txn.abort().catch(() => {})
        throw e
      } finally {
        // the records are stamped, appended and made visible between take and here: all of it counts in --rate's second
        limiter?.done()
      }
      this.sentNow += counts.sent
      this.parkedNow += counts.parked
    }
    if (!(await recordProgress(this.pool, replayId, p, from, nextOffset, counts))) {
      this.logger.warn('replay.ledger_moved', {partition: p, from: from.toString(), note: 'another run of this replay counted this stretch'})
    }
    progress.scanned += counts.scanned
    progress.selected += counts.selected
    progress.sent += counts.sent
    progress.parked += counts.parked
    o.onProgress?.({...progress})
    return true
  }
}

function recordOf(partition: number, m: KafkaMessage): DlqRecord {
  const headers = (m.headers ?? {}) as DlqHeaders
  return {partition, offset: m.offset, timestamp: m.timestamp, key: m.key, value: m.value, headers, view: deadLetterView(headers, m.timestamp)}
}

/**
 * kafkajs retries CONCURRENT_TRANSACTIONS on produce (AddPartitionsToTxn) but not on AddOffsetsToTxn
 * (tulios/kafkajs#430, #1068): right after a commit the coordinator may still be writing the previous
 * transaction's markers and answers CONCURRENT_TRANSACTIONS. The request changed nothing, so it is
 * safe to send again after a short backoff, as the Java client does.
 */
async function sendOffsetsRetrying(txn: Transaction, offsets: Parameters<Transaction['sendOffsets']>[0]): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await txn.sendOffsets(offsets)
      return
    } catch (e) {
      if ((e as {type?: string}).type !== 'CONCURRENT_TRANSACTIONS' || attempt >= 12) throw e
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 20 * 2 ** attempt)))
    }
  }
}
