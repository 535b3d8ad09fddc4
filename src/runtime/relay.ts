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
 */
import type {Producer} from 'kafkajs'
import type {Pool} from '../pg/pool.js'
import type {Logger} from '../log.js'
import {BEGIN_BATCH} from './batch.js'
import {checkout} from './checkout.js'
import {toKafkaHeaders, type StoredHeaders} from './outbox.js'

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

  async stop(): Promise<void> {
    this.running = false
    this.wake()
    await this.loop
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
      try {
        while ((await this.publishOnce()) > 0 && Date.now() < until);
        const left = await this.backlog()
        if (left === 0 || Date.now() >= until) return left
      } catch (e) {
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
        await this.o.producer.sendBatch({acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({topic, messages}))})
      } catch (e) {
        if (!isTooLarge(e)) throw e
        // one value is larger than the DLQ topic accepts: send one by one; the ones still too large
        // go without their value, with a header that says so (else the relay would block forever)
        for (const [topic, messages] of byTopic) {
          for (const m of messages) {
            try {
              await this.o.producer.send({acks: -1, topic, messages: [m]})
            } catch (e2) {
              if (!isTooLarge(e2)) throw e2
              this.o.logger.error('relay.value_omitted', {topic, bytes: m.value?.length ?? 0, note: 'raise max.message.bytes of the DLQ topic'})
              const headers = {...m.headers, 'cutover.value.omitted': `${m.value?.length ?? 0} bytes: more than ${topic} accepts (max.message.bytes)`}
              await this.o.producer.send({acks: -1, topic, messages: [{key: m.key, value: null, headers}]})
            }
          }
        }
      }
      await client.query('UPDATE cutover.outbox SET sent_at = now() WHERE id = ANY($1::bigint[])', [rows.rows.map((r) => r.id)])
      await client.query('COMMIT')
      ok = true
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
        this.failures++
        this.o.logger.warn('relay.publish.failed', {error: e, attempt: this.failures})
        // the backlog gauge while publishing fails (the broker or the DLQ topic gone): it grows with
        // every dead letter committed meanwhile (the alert on it); no answer when PostgreSQL is down
        await this.backlog().catch(() => {})
      }
      if (sent > 0) continue
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

/** Deletes outbox rows of this pipeline sent more than `olderThanMs` ago (occasional housekeeping). */
export async function pruneSentOutbox(pool: Pool, pipeline: string, olderThanMs: number): Promise<number> {
  const r = await pool.query(
    `DELETE FROM cutover.outbox WHERE ctid IN (
       SELECT ctid FROM cutover.outbox WHERE pipeline = $1 AND sent_at < now() - make_interval(secs => $2) LIMIT 50000)`,
    [pipeline, olderThanMs / 1000],
  )
  return r.rowCount ?? 0
}
