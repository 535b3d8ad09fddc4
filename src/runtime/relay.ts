/**
 * The outbox relay: publishes this pipeline's unsent outbox rows (dead letters) to Kafka with
 * kafkajs' idempotent producer, then marks them sent.
 *
 *   BEGIN; SELECT ... WHERE pipeline = $1 AND sent_at IS NULL ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED
 *   producer.sendBatch(...)       (acks=all, idempotent)
 *   UPDATE ... SET sent_at = now() WHERE id = ANY($ids); COMMIT
 *
 * SKIP LOCKED lets several processes of one pipeline relay without publishing a row twice
 * while both are alive. A crash between the send and the COMMIT publishes those rows again on
 * the next run (at-least-once); their `cutover.source.*` headers let readers drop the repeat.
 * The relay wakes when a batch commits dead letters, and polls every second otherwise.
 *
 * Stop (`stop(limitMs)`, SIGTERM/SIGINT: STOP_DRAIN_MS): the relay publishes what it can for at
 * most `limitMs`, then gives up a send still waiting for the broker (kafkajs retries a missing
 * topic or an unreachable broker for ~10 s per send): its transaction rolls back, so those rows
 * stay unsent in `cutover.outbox`, with everything else not yet published, and the next run
 * publishes them. A send given up may still have reached the broker: the next run then
 * publishes those rows again (at-least-once, as after a crash).
 */
import type {Producer, RetryOptions} from 'kafkajs'
import type {KafkaSettings} from '../config/env.js'
import {createKafka} from '../kafka/client.js'
import type {Pool} from '../pg/pool.js'
import type {Logger} from '../log.js'
import {BEGIN_BATCH} from './batch.js'
import {checkout} from './checkout.js'
import {toKafkaHeaders, type StoredHeaders} from './outbox.js'
import {backoffMs, sleep} from './ratelimit.js'

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
 * kafkajs' client-level retry of the relay's producer (its connects, metadata and sends). kafkajs
 * cannot cancel a send: one the stop gave up goes on retrying, reconnecting after the producer's
 * disconnect, and keeps node alive until it fails; with the runtime's retry (8 retries up to 10 s)
 * that was ~10 s per send to a missing DLQ topic. Short here, so that such a send ends about a
 * second after it; the relay retries a failed send itself, with its own backoff, forever (run()).
 */
export const RELAY_RETRY: RetryOptions = {retries: 2, initialRetryTime: 100, maxRetryTime: 1000}

/** Attempts of the relay producer's connect (its InitProducerId included) at start: about the runtime's ~10 s, not RELAY_RETRY's second. */
const CONNECT_ATTEMPTS = 6

/** The relay's idempotent producer, on a Kafka client of its own with RELAY_RETRY (connect it before use). */
export function relayProducer(settings: KafkaSettings, o: {logger: Logger; clientId: string}): Producer {
  const producer = createKafka(settings, {mode: 'resilient', logger: o.logger, clientId: o.clientId, retry: RELAY_RETRY}).producer({idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false})
  const connect = producer.connect.bind(producer)
  producer.connect = async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await connect()
      } catch (e) {
        if (attempt >= CONNECT_ATTEMPTS) throw e
        await sleep(backoffMs(attempt, 200, 4000))
      }
    }
  }
  return producer
}

export interface RelayOptions {
  pool: Pool
  producer: Producer
  pipeline: string
  logger: Logger
  batchSize?: number
  pollMs?: number
  onPublished?: (n: number) => void
  onBacklog?: (n: number) => void
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

function isTooLarge(e: unknown): boolean {
  const err = e as {type?: string; originalError?: {type?: string}; message?: string}
  return err?.type === 'MESSAGE_TOO_LARGE' || err?.originalError?.type === 'MESSAGE_TOO_LARGE' || /MESSAGE_TOO_LARGE|too large/i.test(err?.message ?? '')
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

  /** One round: publishes up to batchSize rows; returns how many. */
  async publishOnce(): Promise<number> {
    const co = await checkout(this.o.pool)
    const client = co.client
    let ok = false
    try {
      await client.query(BEGIN_BATCH)
      const rows = await client.query<{id: string; topic: string; key: Buffer | null; value: Buffer | null; headers: StoredHeaders}>(
        `SELECT id, topic, key, value, headers FROM cutover.outbox
          WHERE pipeline = $1 AND sent_at IS NULL ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [this.o.pipeline, this.o.batchSize ?? 500],
      )
      if (rows.rows.length === 0) {
        await client.query('COMMIT')
        ok = true
        return 0
      }
      const byTopic = new Map<string, {key: Buffer | null; value: Buffer | null; headers: ReturnType<typeof toKafkaHeaders>}[]>()
      for (const r of rows.rows) {
        const list = byTopic.get(r.topic) ?? []
        list.push({key: r.key, value: r.value, headers: toKafkaHeaders(r.headers)})
        byTopic.set(r.topic, list)
      }
      try {
        await this.bounded(this.o.producer.sendBatch({acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({topic, messages}))}))
      } catch (e) {
        if (!isTooLarge(e)) throw e
        // one value is larger than the DLQ topic accepts: send one by one; the ones still too large
        // go without their value, with a header that says so (else the relay would block forever)
        for (const [topic, messages] of byTopic) {
          for (const m of messages) {
            try {
              await this.bounded(this.o.producer.send({acks: -1, topic, messages: [m]}))
            } catch (e2) {
              if (!isTooLarge(e2)) throw e2
              this.o.logger.error('relay.value_omitted', {topic, bytes: m.value?.length ?? 0, note: 'raise max.message.bytes of the DLQ topic'})
              const headers = {...m.headers, 'cutover.value.omitted': `${m.value?.length ?? 0} bytes: more than ${topic} accepts (max.message.bytes)`}
              await this.bounded(this.o.producer.send({acks: -1, topic, messages: [{key: m.key, value: null, headers}]}))
            }
          }
        }
      }
      await client.query('UPDATE cutover.outbox SET sent_at = now() WHERE id = ANY($1::bigint[])', [rows.rows.map((r) => r.id)])
      await client.query('COMMIT')
      ok = true
      this.published += rows.rows.length
      this.o.onPublished?.(rows.rows.length)
      return rows.rows.length
    } finally {
      if (!ok) await client.query('ROLLBACK').catch(() => {})
      co.release(!ok)
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

/** Deletes outbox rows of this pipeline sent more than `olderThanMs` ago (occasional housekeeping). */
export async function pruneSentOutbox(pool: Pool, pipeline: string, olderThanMs: number): Promise<number> {
  const r = await pool.query(
    `DELETE FROM cutover.outbox WHERE ctid IN (
       SELECT ctid FROM cutover.outbox WHERE pipeline = $1 AND sent_at < now() - make_interval(secs => $2) LIMIT 50000)`,
    [pipeline, olderThanMs / 1000],
  )
  return r.rowCount ?? 0
}
