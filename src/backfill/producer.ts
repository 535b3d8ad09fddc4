/**
 * The backfill's producer: kafkajs' idempotent producer (acks=all, one request in flight per
 * connection so retries keep per-partition order), snappy-compressed batches, and up to `depth`
 * batches handed to kafkajs at once so that the next batch is read, normalized and encoded
 * while the previous one is on the wire.
 *
 * A batch holds the records for the target topic and the dead letters for the DLQ topic and
 * goes out as one `sendBatch`; its acknowledgement covers both. Acknowledgements are reported in
 * the order batches were submitted (`onAck`), so the caller's checkpoint only ever moves over a
 * prefix of the source that the broker holds entirely.
 */
import kafkajs from 'kafkajs'
import type {IHeaders, Producer, RetryOptions} from 'kafkajs'
import type {KafkaSettings} from '../config/env.js'
import {createKafka} from '../kafka/client.js'
import type {Logger} from '../log.js'

const {CompressionTypes} = kafkajs

export interface OutMessage {
  key: string | Buffer | null
  value: string | Buffer | null
  headers: IHeaders
  /** set when the caller already knows it (the same as kafkajs' default partitioner picks) */
  partition?: number
  /** ms since epoch, as a string: a kafka: source record's own (kafkajs stamps the send time otherwise) */
  timestamp?: string
}

export interface OutBatch<M> {
  records: OutMessage[]
  dead: OutMessage[]
  meta: M
}

/** How long a send rides out an unreachable broker: 20 retries, up to 10 s apart (about two minutes). */
export const PRODUCE_RETRY: RetryOptions = {retries: 20, initialRetryTime: 200, maxRetryTime: 10_000}

/**
 * The producer, on a client of its own whose retry is PRODUCE_RETRY too: when a produce request
 * fails because the broker went away, kafkajs reconnects inside the producer's retry loop with the
 * *client's* retry, and when that runs out (the `resilient` client's ~10 s) it fails the whole
 * send as not retriable, whatever the producer's own retry says. A broker restart that takes
 * longer than that would otherwise end the backfill (exit 70) although it recovers on its own.
 */
export function createBackfillProducer(settings: KafkaSettings, logger: Logger): Producer {
  const kafka = createKafka(settings, {logger, mode: 'resilient', clientId: 'cutover-backfill', retry: PRODUCE_RETRY})
  return kafka.producer({idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, retry: PRODUCE_RETRY})
}

/**
 * Sends batches, at most `depth` outstanding, and reports their acknowledgements in order, each as
 * soon as the broker has given it (and every batch before it was reported): not when the next batch
 * is handed over. A caller that waits between two batches (paused by --max-lag, a source that is
 * slow to give its next records or to end) would otherwise hold the last batch for unacknowledged
 * all that time: its checkpoint one batch behind the topic, its rate counting the wait as sending.
 */
export class OrderedSender<M> {
  private readonly inflight: {done: Promise<void>; batch: OutBatch<M>; acked: boolean}[] = []
  private failure: unknown

  constructor(
    private readonly producer: Producer,
    private readonly target: string,
    private readonly dlqTopic: string,
    private readonly onAck: (meta: M, batch: OutBatch<M>) => void,
    private readonly depth = 1,
  ) {}

  /** Hands a batch to the producer; waits first while `depth` batches are outstanding. */
  async submit(batch: OutBatch<M>): Promise<void> {
    while (this.inflight.length >= this.depth) await this.settleOldest()
    if (this.failure !== undefined) throw this.failure
    const topicMessages = []
    if (batch.records.length > 0) topicMessages.push({topic: this.target, messages: batch.records})
    if (batch.dead.length > 0) topicMessages.push({topic: this.dlqTopic, messages: batch.dead})
    const done = topicMessages.length === 0 ? Promise.resolve() : this.producer.sendBatch({acks: -1, compression: CompressionTypes.Snappy, topicMessages}).then(() => undefined)
    const entry = {done, batch, acked: false}
    done.then(
      () => {
        entry.acked = true
        try {
          this.reportAcked()
        } catch (e) {
          this.failure ??= e // the caller's onAck threw: the next submit or flush throws it
        }
      },
      () => {}, // a failure is observed in settleOldest
    )
    this.inflight.push(entry)
  }

  /** Reports the acknowledged batches at the head of the queue, in the order they were submitted. */
  private reportAcked(): void {
    while (this.failure === undefined && this.inflight[0]?.acked) {
      const first = this.inflight.shift()!
      this.onAck(first.batch.meta, first.batch)
    }
  }

  private async settleOldest(): Promise<void> {
    const first = this.inflight[0]!
    try {
      await first.done
    } catch (e) {
      this.failure ??= e
      // later batches may still complete; they are not acknowledged past a failed one
      this.inflight.length = 0
      throw e
    }
    // reported by its own callback (registered before this await), unless that has not run yet
    first.acked = true
    this.reportAcked()
    if (this.failure !== undefined) {
      this.inflight.length = 0
      throw this.failure
    }
  }

  /** Waits for every outstanding batch; throws the first failure. */
  async flush(): Promise<void> {
    while (this.inflight.length > 0) await this.settleOldest()
    if (this.failure !== undefined) throw this.failure
  }

  get outstanding(): number {
    return this.inflight.length
  }
}
