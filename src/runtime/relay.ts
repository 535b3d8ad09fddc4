/**
 * The outbox relay: publishes this pipeline's unsent outbox rows (dead letters) to Kafka with
 * kafkajs' idempotent producer, then marks them sent. One round:
 *
 *   BEGIN; pg_try_advisory_xact_lock(pipeline's relay lock)      (else: another process relays now)
 *   SELECT ... WHERE pipeline = $1 AND sent_at IS NULL ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED
 *     (at most RELAY_ROUND_BYTES of keys, values and headers, and always the first row)
 *   producer.sendBatch(...)       (acks=all, idempotent)
 *   UPDATE ... SET sent_at = now() WHERE id = ANY($ids); COMMIT
 *
 * Order: one process of the pipeline relays at a time (the advisory lock), rows in id order, one
 * round after the other, so that the dead letters of one source partition go out in offset order;
 * on the DLQ topic a dead letter goes to the partition of its key, or, without a key, to its source
 * partition (relayPartitioner), so that a partition of the DLQ holds them in that order.
 *
 * Sequence numbers: the idempotent producer numbers the records of each partition, and the broker
 * drops a batch it already has only when it comes again with the same numbers: the same records
 * per partition. kafkajs gives a failed send's numbers back, so the next send must hold exactly
 * the same records per partition, or the broker answers OUT_OF_ORDER_SEQUENCE_NUMBER to it and to
 * every send after it, for ever (the relay stalled after a send whose answer was lost while more
 * dead letters arrived, and after a dead letter too large for the DLQ topic on a topic of several
 * partitions). So a send that failed (the broker down, the answer lost: maybe written) is sent
 * again as it was, before anything else ("in doubt"), and the broker keeps one copy; when what
 * goes next must differ (a batch too large, sent one by one; a send the broker refused for its
 * sequence), the producer is renewed first (RelayProducer: a new producer id, numbers from 0):
 * what the failed send may have written is then published again (at-least-once).
 *
 * Too large: a round the broker refuses as too large (MESSAGE_TOO_LARGE) goes one record at a
 * time; a dead letter larger than the DLQ topic accepts (max.message.bytes) is published without
 * its value, with `cutover.value.omitted` saying why (else it would block the outbox for ever),
 * logged at error level (`relay.value_omitted`, with the outbox row's id and the record's source
 * coordinates) and counted (`onValueOmitted`). Its outbox row keeps the value and the header and
 * is never pruned: nothing is lost. Once the topic takes it, `cutover dlq republish`
 * (src/dlq/republish.ts) makes the row unsent again and publishes it with these rounds: a row
 * with the header goes with its value (never the header: messageOf), and once the broker took it
 * the header leaves the row (`restored`: prunable again); one still too large goes without its
 * value again, the header kept.
 *
 * A crash between the send and the COMMIT publishes those rows again on the next run
 * (at-least-once); their `cutover.source.*` headers let readers drop the repeat.
 * The relay wakes when a batch commits dead letters, and polls every second otherwise.
 *
 * Stop (`stop(limitMs)`, SIGTERM/SIGINT: STOP_DRAIN_MS): the relay publishes what it can for at
 * most `limitMs`, then gives up a send still waiting for the broker (kafkajs retries a missing
 * topic or an unreachable broker for ~10 s per send): its transaction rolls back, so those rows
 * stay unsent in `cutover.outbox`, with everything else not yet published, and the next run
 * publishes them. A send given up may still have reached the broker: the next run then
 * publishes those rows again (at-least-once, as after a crash).
 */
import kafkajs, {type ICustomPartitioner, type IHeaders, type Message, type Producer, type RetryOptions, type TopicMessages} from 'kafkajs'
import type {KafkaSettings} from '../config/env.js'
import {createKafka, errorChain} from '../kafka/client.js'
import type {Pool, PoolClient} from '../pg/pool.js'
import type {Logger} from '../log.js'
import {BEGIN_BATCH} from './batch.js'
import {checkout} from './checkout.js'
import {toKafkaHeaders, VALUE_OMITTED_HEADER, type StoredHeaders} from './outbox.js'
import {backoffMs, sleep} from './ratelimit.js'

const {Partitioners} = kafkajs

/**
 * How long a stop (SIGTERM/SIGINT) goes on publishing the outbox: what is not published by then
 * stays in `cutover.outbox` for the next run. With the broker answering, thousands of dead
 * letters go out in well under a second; longer only helps a broker that is about to come back.
 */
export const STOP_DRAIN_MS = 3000
/** How long the count of what a stop left unsent may take (PostgreSQL not answering: unknown, -1). */
const COUNT_LEFT_MS = 1000
/**
 * How long a stop waits for a send it gave up to end in kafkajs (RELAY_RETRY: about a second), so
 * that the producer's disconnect after it closes the connection kafkajs reopened for its retries.
 */
const GIVEN_UP_SETTLE_MS = 2000
/**
 * Keys, values and headers of one round, at most (the first row always goes, whatever its size).
 * kafkajs sends a round as one request with one record batch per partition: 500 rows of
 * RECORD_TOO_LARGE values (several MB each) made a request over the broker's
 * socket.request.max.bytes (100 MB), which closes the connection, and the relay retried it for
 * ever; and a batch over the topic's max.message.bytes (1 MB by default) is refused. Half a MB
 * keeps a round within both, at 500 rows of up to 1 KB.
 */
export const RELAY_ROUND_BYTES = 512 * 1024
/** The pipeline's relay lock (pg_try_advisory_xact_lock(RELAY_LOCK, hashtext(pipeline))): one process relays at a time. */
const RELAY_LOCK = "hashtext('cutover.outbox.relay')"

/**
 * kafkajs' client-level retry of the relay's producer (its connects, metadata and sends). kafkajs
 * cannot cancel a send: one the stop gave up goes on retrying, reconnecting after the producer's
 * disconnect, and keeps node alive until it fails; with the runtime's retry (8 retries up to 10 s)
 * that was ~10 s per send to a missing DLQ topic. Short here, so that such a send ends about a
 * second after it; the relay retries a failed send itself, with its own backoff, forever (run()).
 */
export const RELAY_RETRY: RetryOptions = {retries: 2, initialRetryTime: 100, maxRetryTime: 1000}

/** Attempts of the relay producer's connect (its InitProducerId included) at start: about the runtime's ~10 s, not RELAY_RETRY's second. */
const CONNECT_ATTEMPTS = 6

/** The source partition a dead letter names (`cutover.source.partition`), undefined when it names none. */
function sourcePartition(headers: IHeaders | undefined): number | undefined {
  const v = headers?.['cutover.source.partition']
  const one = Array.isArray(v) ? v[v.length - 1] : v
  const text = one === undefined ? undefined : Buffer.isBuffer(one) ? one.toString('utf8') : String(one)
  return text !== undefined && /^\d{1,9}$/.test(text) ? Number(text) : undefined
}

/**
 * Where the relay's producer puts a record on the DLQ topic: a keyed one where Kafka's default
 * partitioner does (murmur2 of the key: one key's dead letters in one partition, in order), one
 * without a key in its source partition (modulo the DLQ topic's partitions; partition 0 when it
 * names none), never round-robin: kafkajs assigns the partitions again on every attempt of a send,
 * and round-robin gave a retried send other records per partition than the attempt the broker
 * may have written (see the sequence numbers above); and one source partition's dead letters
 * stay in one DLQ partition, in offset order.
 */
export const relayPartitioner: ICustomPartitioner = () => {
  const byKey = Partitioners.DefaultPartitioner()
  return (args) => {
    const {message, partitionMetadata} = args
    if (message.key !== null && message.key !== undefined) return byKey(args)
    return (sourcePartition(message.headers) ?? 0) % Math.max(1, partitionMetadata.length)
  }
}

/**
 * The relay's producer: kafkajs' idempotent producer (RELAY_RETRY, relayPartitioner, no topic
 * auto-creation), which `renew()` replaces by a new one (a new producer id, sequence numbers from
 * 0) for a send that must differ from the failed one before it. run.ts connects and disconnects
 * it as any kafkajs producer; `make` builds each one (relayProducer: on a Kafka client of the
 * settings; tests: on a client of their own).
 */
export class RelayProducer implements Producer {
  private current: Producer
  private closed = false

  constructor(private readonly make: () => Producer) {
    this.current = make()
  }

  /** The producer options of every producer the relay uses. */
  static readonly config = {idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: relayPartitioner} as const

  get events(): Producer['events'] {
    return this.current.events
  }

  /** Connects, trying CONNECT_ATTEMPTS times (its InitProducerId included: about the runtime's ~10 s, not RELAY_RETRY's second). */
  async connect(): Promise<void> {
    this.closed = false
    await this.connectCurrent()
  }

  private async connectCurrent(): Promise<void> {
    const producer = this.current
    for (let attempt = 1; ; attempt++) {
      try {
        await producer.connect()
        // disconnected (the run closing) or renewed meanwhile: this one is not used
        if (this.closed || producer !== this.current) await producer.disconnect().catch(() => {})
        return
      } catch (e) {
        if (attempt >= CONNECT_ATTEMPTS || this.closed || producer !== this.current) throw e
        await sleep(backoffMs(attempt, 200, 4000))
      }
    }
  }

  async disconnect(): Promise<void> {
    this.closed = true
    await this.current.disconnect()
  }

  /** Replaces the producer by a new, connected one: a new producer id, whose sequence numbers owe nothing to the sends before. */
  async renew(): Promise<void> {
    if (this.closed) throw new Error('the relay producer is disconnected')
    const old = this.current
    this.current = this.make()
    await old.disconnect().catch(() => {})
    await this.connectCurrent()
  }

  isIdempotent(): boolean {
    return this.current.isIdempotent()
  }

  send(record: Parameters<Producer['send']>[0]): ReturnType<Producer['send']> {
    return this.current.send(record)
  }

  sendBatch(batch: Parameters<Producer['sendBatch']>[0]): ReturnType<Producer['sendBatch']> {
    return this.current.sendBatch(batch)
  }

  on: Producer['on'] = ((eventName: never, listener: never) => this.current.on(eventName, listener)) as Producer['on']

  transaction(): ReturnType<Producer['transaction']> {
    return this.current.transaction()
  }

  logger(): ReturnType<Producer['logger']> {
    return this.current.logger()
  }
}

/** The relay's producer, on a Kafka client of its own with RELAY_RETRY (connect it before use). */
export function relayProducer(settings: KafkaSettings, o: {logger: Logger; clientId: string}): RelayProducer {
  const kafka = createKafka(settings, {mode: 'resilient', logger: o.logger, clientId: o.clientId, retry: RELAY_RETRY})
  return new RelayProducer(() => kafka.producer(RelayProducer.config))
}

export interface RelayOptions {
  pool: Pool
  /** a RelayProducer (relayProducer()), or any producer (tests: a stand-in, which is never renewed) */
  producer: Producer
  pipeline: string
  logger: Logger
  batchSize?: number
  pollMs?: number
  onPublished?: (n: number) => void
  onBacklog?: (n: number) => void
  /** dead letters published without their value (larger than the DLQ topic accepts): the value stays in cutover.outbox */
  onValueOmitted?: (n: number) => void
}

export interface RelayStopResult {
  /** rows published during the stop */
  published: number
  /** unsent rows of this pipeline left in cutover.outbox for the next run (-1: PostgreSQL did not answer) */
  left: number
  /** a send still waited for the broker at the limit and was given up (its rows rolled back to unsent) */
  gaveUp: boolean
  /** how long the stop took */
  ms: number
}

/** A send given up at the stop's limit (its transaction rolls back: the rows stay unsent). */
class SendGivenUp extends Error {
  constructor() {
    super('send given up: the stop drain limit passed')
    this.name = 'SendGivenUp'
  }
}

/** The kafkajs error types along `e`'s chain (a retried send's error wraps the last attempt's). */
const kafkaErrorTypes = (e: unknown): string[] => errorChain(e).flatMap((x) => (x.type ? [x.type] : []))

/** Larger than the topic or the broker takes (a record, or a batch over the topic's segment size). */
function isTooLarge(e: unknown): boolean {
  return kafkaErrorTypes(e).some((t) => t === 'MESSAGE_TOO_LARGE' || t === 'RECORD_LIST_TOO_LARGE') || /MESSAGE_TOO_LARGE|too large/i.test((e as {message?: string})?.message ?? '')
}

/**
 * The broker refused the producer's sequence numbers or its id: sending the same again cannot
 * succeed; a new producer id can.
 */
const SEQUENCE_REFUSED = new Set(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'DUPLICATE_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_EPOCH', 'INVALID_PRODUCER_ID_MAPPING', 'PRODUCER_FENCED'])

/** One send: the outbox rows it publishes and the records, per topic, exactly as they go. */
interface Outgoing {
  ids: string[]
  topicMessages: TopicMessages[]
  /** rows published without their value: their stored headers get VALUE_OMITTED_HEADER (the row is then never pruned) */
  omitted?: {id: string; note: string}
  /** rows published without their value before (VALUE_OMITTED_HEADER stored) that go with it now: the header leaves their stored headers (prunable again) */
  restored?: string[]
}

interface OutboxRow {
  id: string
  topic: string
  key: Buffer | null
  value: Buffer | null
  headers: StoredHeaders
}

/** The stored headers the relay sends: all but VALUE_OMITTED_HEADER, which only the relay sets, again when the value does not fit. */
export function sentHeaders(headers: StoredHeaders): StoredHeaders {
  return headers.filter(([name, , b64name]) => b64name === 1 || name !== VALUE_OMITTED_HEADER)
}

/** A stored dead letter as the relay sends it (sentHeaders). */
function messageOf(r: OutboxRow): Message {
  return {key: r.key, value: r.value, headers: toKafkaHeaders(sentHeaders(r.headers))}
}

/** The stored headers hold VALUE_OMITTED_HEADER: an earlier round published the row without its value. */
const wasOmitted = (r: OutboxRow): boolean => r.headers.some(([name, , b64name]) => b64name !== 1 && name === VALUE_OMITTED_HEADER)

/** The ids of `rows` that go with their value after a round that published them without it. */
function restoredOf(rows: readonly OutboxRow[]): {restored?: string[]} {
  const ids = rows.filter(wasOmitted).map((r) => r.id)
  return ids.length > 0 ? {restored: ids} : {}
}

/** A stored header's text (the last of a repeated name), undefined when the dead letter has none. */
export function storedText(headers: StoredHeaders, name: string): string | undefined {
  const h = headers.findLast(([n, , b64name]) => b64name !== 1 && n === name)
  return h ? Buffer.from(h[1], 'base64').toString('utf8') : undefined
}

/** `topic/partition@offset` of the source record a stored dead letter names (its `cutover.source.*` headers). */
export function sourceOf(headers: StoredHeaders): string | undefined {
  const [topic, partition, offset] = ['topic', 'partition', 'offset'].map((c) => storedText(headers, `cutover.source.${c}`))
  return topic === undefined ? undefined : `${topic}/${partition}@${offset}`
}

export class OutboxRelay {
  private running = false
  private loop: Promise<void> | undefined
  private wakeUp: (() => void) | undefined
  private lastBacklog = -1
  private failures = 0
  private pending = false
  private published = 0
  /** the sends a stop gave up, still going on in kafkajs */
  private readonly givenUp: Promise<unknown>[] = []
  /** aborted when a stop's limit passes: a send in flight is given up */
  private readonly giveUp = new AbortController()
  private stopped: Promise<RelayStopResult> | undefined
  /** a send that failed, maybe after the broker wrote it: sent again exactly as it was before anything else */
  private inDoubt: Outgoing | undefined
  /** the next send differs from a failed one: it goes with a new producer id (RelayProducer.renew) */
  private renewFirst = false
  /** the rounds of this process, one after the other (the loop's, drain()'s, stop()'s) */
  private rounds: Promise<unknown> = Promise.resolve()
  /**
   * Every row of this pipeline with an id up to `floor` was sent (or is gone) when last looked:
   * a round's select starts past it. Without it each round would start at the pipeline's oldest
   * entry of the partial index outbox_unsent, which keeps an entry for every row sent until
   * VACUUM: a day of dead letters walked again every round (BENCHMARKS.md, thirty-first session).
   * See `nextFloor` for how it moves; backlog() puts it back to 0 whenever rows are unsent.
   */
  private floor = '0'
  /**
   * The floor to take once every transaction that was running when it was read has ended: the
   * largest outbox id committed then (`max(id)`), and that snapshot's xmax. A transaction holding
   * a smaller id took it before that row was committed, and (batch transactions lock their offset
   * row first) had its xid already: below xmax. Once a later snapshot's xmin reaches xmax, each
   * such row is committed or gone, and the round's select (a newer snapshot still) sees it. The
   * floor then moves to `id`, or to just below the first unsent row that select returns. A row
   * made unsent again below the floor (`dlq republish`) is found by the next full scan: backlog()
   * sees it and puts the floor back to 0 (and republish's own relay starts at 0).
   */
  private nextFloor: {id: string; xmax: string} | undefined

  constructor(private readonly o: RelayOptions) {}

  start(): void {
    if (this.running) return
    this.running = true
    this.loop = this.run()
  }

  /** A batch committed dead letters: publish them now. */
  wake(): void {
    this.pending = true
    this.wakeUp?.()
  }

  /**
   * Stops the relay: it publishes the backlog for at most `limitMs` (the round in flight
   * included), then gives up a send still waiting for the broker and counts what is left unsent
   * for the next run. Later calls return the first one's result.
   */
  stop(limitMs = 0): Promise<RelayStopResult> {
    this.stopped ??= this.stopWithin(limitMs)
    return this.stopped
  }

  private async stopWithin(limitMs: number): Promise<RelayStopResult> {
    const started = Date.now()
    const until = started + limitMs
    const publishedBefore = this.published
    const limit = setTimeout(() => this.giveUp.abort(), Math.max(0, limitMs))
    this.running = false
    this.wake()
    try {
      // the loop's round in flight ends first (by the limit at the latest), then the backlog goes
      await this.loop?.catch(() => {})
      for (;;) {
        if (this.giveUp.signal.aborted || Date.now() >= until) break
        try {
          if ((await this.publishOnce()) > 0) continue
          // nothing this process can take: done when nothing is unsent (rows another process of the pipeline holds are its to send)
          if ((await this.backlog()) === 0) break
        } catch (e) {
          if (e instanceof SendGivenUp) break
          this.o.logger.warn('relay.drain.retry', {error: e})
        }
        await sleep(Math.min(200, until - Date.now()), this.giveUp.signal)
      }
    } finally {
      clearTimeout(limit)
    }
    const left = await within(this.backlog(), COUNT_LEFT_MS).catch(() => undefined)
    if (this.givenUp.length > 0) await within(Promise.all(this.givenUp), GIVEN_UP_SETTLE_MS)
    return {published: this.published - publishedBefore, left: left ?? -1, gaveUp: this.givenUp.length > 0, ms: Date.now() - started}
  }

  /**
   * `send` (a kafkajs send), rejected with SendGivenUp when a stop's limit passes first. The send
   * itself goes on in kafkajs until it fails or the producer disconnects; its outcome is ignored.
   */
  private bounded<T>(send: Promise<T>): Promise<T> {
    const signal = this.giveUp.signal
    return new Promise<T>((resolve, reject) => {
      const onGiveUp = () => {
        this.givenUp.push(send.catch(() => {}))
        reject(new SendGivenUp())
      }
      if (signal.aborted) return onGiveUp()
      signal.addEventListener('abort', onGiveUp, {once: true})
      send.then(
        (v) => {
          signal.removeEventListener('abort', onGiveUp)
          resolve(v)
        },
        (e: unknown) => {
          signal.removeEventListener('abort', onGiveUp)
          reject(e instanceof Error ? e : new Error(String(e)))
        },
      )
    })
  }

  /** Unsent rows of this pipeline. */
  async backlog(): Promise<number> {
    const r = await this.o.pool.query<{n: number}>('SELECT count(*)::int AS n FROM cutover.outbox WHERE pipeline = $1 AND sent_at IS NULL', [this.o.pipeline])
    const n = r.rows[0]?.n ?? 0
    // rows unsent: the next round scans from the start (one below the floor, made unsent again by
    // `dlq republish`, would otherwise wait for ever)
    if (n > 0) {
      this.floor = '0'
      this.nextFloor = undefined
    }
    this.lastBacklog = n
    this.o.onBacklog?.(n)
    return n
  }

  /**
   * Publishes until the backlog is empty or `timeoutMs` passes; returns what is left, counted
   * after the last failure (the broker down: PostgreSQL still tells), or -1 when even that
   * could not be counted (never a stale 0: a stop would then pass over unsent dead letters).
   */
  async drain(timeoutMs: number): Promise<number> {
    const until = Date.now() + timeoutMs
    for (;;) {
      if (this.stopped) return -1 // stopping (a signal during --until-idle): stop() drains, within its limit
      try {
        while ((await this.publishOnce()) > 0 && Date.now() < until);
        const left = await this.backlog()
        if (left === 0 || Date.now() >= until) return left
      } catch (e) {
        if (e instanceof SendGivenUp) return -1
        this.o.logger.warn('relay.drain.retry', {error: e})
        if (Date.now() >= until) return this.backlog().catch(() => -1)
      }
      await new Promise((r) => setTimeout(r, 200))
    }
  }

  /** One round: publishes up to batchSize rows (RELAY_ROUND_BYTES), or the send in doubt; returns how many. */
  publishOnce(): Promise<number> {
    const round = this.rounds.then(() => this.round())
    this.rounds = round.catch(() => {})
    return round
  }

  private async round(): Promise<number> {
    const co = await checkout(this.o.pool)
    const client = co.client
    let ok = false
    try {
      await client.query(BEGIN_BATCH)
      const lock = await client.query<{ok: boolean}>(`SELECT pg_try_advisory_xact_lock(${RELAY_LOCK}, hashtext($1)) AS ok`, [this.o.pipeline])
      let n = 0
      // another process of the pipeline relays now: the rows are its to send, in order
      if (lock.rows[0]?.ok === true) n = this.inDoubt ? await this.resend(client, this.inDoubt) : await this.publishNext(client, await this.floorReady(client))
      await client.query('COMMIT')
      ok = true
      if (n > 0) {
        this.published += n
        this.o.onPublished?.(n)
      }
      return n
    } finally {
      if (!ok) await client.query('ROLLBACK').catch(() => {})
      co.release(!ok)
    }
  }

  /** The send in doubt, again; then its rows are sent (another process may have published them meanwhile: then twice). */
  private async resend(client: PoolClient, d: Outgoing): Promise<number> {
    await this.send(d)
    await this.markSent(client, d)
    return d.ids.length
  }

  private async markSent(client: PoolClient, d: Outgoing): Promise<void> {
    await client.query('UPDATE cutover.outbox SET sent_at = now() WHERE id = ANY($1::bigint[]) AND sent_at IS NULL', [d.ids])
    if (d.omitted) {
      const entry: StoredHeaders = [[VALUE_OMITTED_HEADER, Buffer.from(d.omitted.note, 'utf8').toString('base64')]]
      await client.query('UPDATE cutover.outbox SET headers = headers || $2::jsonb WHERE id = $1 AND NOT headers @> $3::jsonb', [d.omitted.id, JSON.stringify(entry), JSON.stringify([[VALUE_OMITTED_HEADER]])])
    }
    if (d.restored) {
      // the DLQ topic holds the value now: the row no longer says it does not (and is pruned as any other)
      await client.query(
        `UPDATE cutover.outbox SET headers = coalesce(
           (SELECT jsonb_agg(h.e ORDER BY h.i) FROM jsonb_array_elements(headers) WITH ORDINALITY AS h(e, i) WHERE NOT (jsonb_array_length(h.e) = 2 AND h.e ->> 0 = $2)), '[]'::jsonb)
          WHERE id = ANY($1::bigint[])`,
        [d.restored, VALUE_OMITTED_HEADER],
      )
    }
  }

  /**
   * One statement before the round's select: the floor that `nextFloor` waited for, when every
   * transaction running as it was read has ended (returned: publishNext moves the floor to it, or
   * below the first row its select finds), and a new `nextFloor` when none waits.
   */
  private async floorReady(client: PoolClient): Promise<string | undefined> {
    const r = await client.query<{max: string | null; xmin: string; xmax: string}>(
      'SELECT (SELECT max(id) FROM cutover.outbox)::text AS max, pg_snapshot_xmin(pg_current_snapshot())::text AS xmin, pg_snapshot_xmax(pg_current_snapshot())::text AS xmax',
    )
    const {max, xmin, xmax} = r.rows[0]!
    let ready: string | undefined
    if (this.nextFloor && BigInt(xmin) >= BigInt(this.nextFloor.xmax)) {
      ready = this.nextFloor.id
      this.nextFloor = undefined
    }
    if (!this.nextFloor && max !== null && BigInt(max) > BigInt(this.floor)) this.nextFloor = {id: max, xmax}
    return ready
  }

  /** The floor (for tests). */
  get scanFloor(): string {
    return this.floor
  }

  /**
   * The next unsent rows past the floor, at most batchSize and RELAY_ROUND_BYTES (the first one
   * whatever its size), in id order. `ready`: a floor floorReady found safe, taken now (at most
   * just below the first row found).
   */
  private async publishNext(client: PoolClient, ready?: string): Promise<number> {
    const rows = await client.query<OutboxRow>(
      `WITH next AS (
         SELECT id, coalesce(octet_length(key), 0) + coalesce(octet_length(value), 0) + octet_length(headers::text) AS bytes
           FROM cutover.outbox WHERE pipeline = $1 AND sent_at IS NULL AND id > $4 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED),
       upto AS (SELECT id, row_number() OVER (ORDER BY id) AS n, sum(bytes) OVER (ORDER BY id) AS bytes FROM next)
       SELECT o.id, o.topic, o.key, o.value, o.headers FROM upto JOIN cutover.outbox o ON o.id = upto.id
        WHERE upto.n = 1 OR upto.bytes <= $3 ORDER BY o.id`,
      [this.o.pipeline, this.o.batchSize ?? 500, RELAY_ROUND_BYTES, this.floor],
    )
    if (ready !== undefined) {
      const first = rows.rows[0]?.id
      let to = BigInt(ready)
      if (first !== undefined && BigInt(first) - 1n < to) to = BigInt(first) - 1n
      if (to > BigInt(this.floor)) this.floor = to.toString()
    }
    if (rows.rows.length === 0) return 0
    const byTopic = new Map<string, Message[]>()
    for (const r of rows.rows) byTopic.set(r.topic, [...(byTopic.get(r.topic) ?? []), messageOf(r)])
    const all: Outgoing = {ids: rows.rows.map((r) => r.id), topicMessages: [...byTopic].map(([topic, messages]) => ({topic, messages})), ...restoredOf(rows.rows)}
    try {
      await this.send(all)
      await this.markSent(client, all)
    } catch (e) {
      if (!isTooLarge(e)) throw e
      // one value is larger than the DLQ topic accepts (or the batch is): one by one; one still too
      // large goes without its value (else it would block the outbox for ever). A send failing
      // part-way ends the round with what went out (committed: not published twice).
      let done = 0
      for (const r of rows.rows) {
        try {
          await this.publishAlone(client, r)
        } catch (e2) {
          if (done === 0) throw e2
          this.o.logger.warn('relay.publish.failed', {error: e2, published: done, of: rows.rows.length})
          break
        }
        done++
      }
      return done
    }
    return rows.rows.length
  }

  private async publishAlone(client: PoolClient, r: OutboxRow): Promise<void> {
    const m = messageOf(r)
    try {
      const one: Outgoing = {ids: [r.id], topicMessages: [{topic: r.topic, messages: [m]}], ...restoredOf([r])}
      await this.send(one)
      await this.markSent(client, one)
      return
    } catch (e) {
      if (!isTooLarge(e)) throw e
    }
    const bytes = r.value?.length ?? 0
    const note = `${bytes} bytes: more than ${r.topic} accepts (max.message.bytes)`
    const omitted: Outgoing = {ids: [r.id], topicMessages: [{topic: r.topic, messages: [{key: m.key, value: null, headers: {...m.headers, [VALUE_OMITTED_HEADER]: note}}]}], omitted: {id: r.id, note}}
    await this.send(omitted)
    await this.markSent(client, omitted)
    this.o.logger.error('relay.value_omitted', {
      outbox_id: r.id,
      topic: r.topic,
      bytes,
      code: storedText(r.headers, 'cutover.error.code'),
      source: sourceOf(r.headers),
      note: `published without its value (header ${VALUE_OMITTED_HEADER}); the value stays in cutover.outbox id ${r.id}, never pruned. Raise max.message.bytes of ${r.topic} (cutover dlq republish --spec <the pipeline's spec> --id ${r.id} --dry-run says to what), then cutover dlq republish --spec <the pipeline's spec> --id ${r.id} publishes it again with its value`,
    })
    this.o.onValueOmitted?.(1)
  }

  /**
   * Sends `d` (bounded by a stop). A failure leaves it in doubt (sent again as it was, first), or,
   * when the next send will differ (too large: one by one) or the broker refused the producer's
   * sequence numbers, makes the next send renew the producer.
   */
  private async send(d: Outgoing): Promise<void> {
    const producer = this.o.producer
    if (this.renewFirst) {
      if (producer instanceof RelayProducer) await this.bounded(producer.renew())
      this.renewFirst = false
    }
    try {
      await this.bounded(producer.sendBatch({acks: -1, topicMessages: d.topicMessages}))
      this.inDoubt = undefined
    } catch (e) {
      if (e instanceof SendGivenUp) throw e // stopping: nothing is sent after it
      const types = kafkaErrorTypes(e)
      if (isTooLarge(e) || types.some((t) => SEQUENCE_REFUSED.has(t))) {
        this.inDoubt = undefined
        this.renewFirst = true
      } else {
        this.inDoubt = d
      }
      throw e
    }
  }

  private async run(): Promise<void> {
    while (this.running) {
      let sent = 0
      try {
        sent = await this.publishOnce()
        this.failures = 0
        if (sent === 0 && this.lastBacklog !== 0) await this.backlog().catch(() => {})
      } catch (e) {
        if (e instanceof SendGivenUp) break // stopping: the stop drain counts what is left
        this.failures++
        this.o.logger.warn('relay.publish.failed', {error: e, attempt: this.failures})
        // the backlog gauge while publishing fails (the broker or the DLQ topic gone): it grows with
        // every dead letter committed meanwhile (the alert on it); no answer when PostgreSQL is down
        await this.backlog().catch(() => {})
      }
      if (sent > 0 || !this.running) continue // stopping: no backoff wait, stop() takes over
      if (this.pending && this.failures === 0) {
        this.pending = false
        continue
      }
      const wait = this.failures > 0 ? Math.min(10_000, 200 * 2 ** Math.min(this.failures, 6)) : (this.o.pollMs ?? 1000)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait)
        this.wakeUp = () => {
          clearTimeout(t)
          resolve()
        }
      })
      this.wakeUp = undefined
    }
  }
}

/** `p`'s value, or undefined when it takes longer than `ms` (p goes on; its outcome is then ignored). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms)
  })
  p.catch(() => {})
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Deletes outbox rows of this pipeline sent more than `olderThanMs` ago (occasional housekeeping),
 * but never one published without its value (VALUE_OMITTED_HEADER): the outbox holds its only copy.
 */
export async function pruneSentOutbox(pool: Pool, pipeline: string, olderThanMs: number): Promise<number> {
  const r = await pool.query(
    `DELETE FROM cutover.outbox WHERE ctid IN (
       SELECT ctid FROM cutover.outbox WHERE pipeline = $1 AND sent_at < now() - make_interval(secs => $2) AND NOT headers @> $3::jsonb LIMIT 50000)`,
    [pipeline, olderThanMs / 1000, JSON.stringify([[VALUE_OMITTED_HEADER]])],
  )
  return r.rowCount ?? 0
}
