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
import type {Admin, IHeaders, Producer, RetryOptions} from 'kafkajs'
import SnappyCodec from 'kafkajs-snappy'
import type {KafkaSettings} from '../config/env.js'
import {createKafka} from '../kafka/client.js'
import {BATCH_OVERHEAD, fieldBytes, varintBytes} from '../kafka/record-size.js'
import type {Logger} from '../log.js'
import {VALUE_OMITTED_HEADER} from '../runtime/outbox.js'

const {CompressionTypes} = kafkajs

/** Kafka's own default max.message.bytes (the broker's message.max.bytes), taken when a topic's cannot be read. */
export const KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588

const lengthOf = (v: string | Buffer | null | undefined): number | null => (v === null || v === undefined ? null : typeof v === 'string' ? Buffer.byteLength(v) : v.length)

/**
 * The bytes a message takes in a v2 record batch before compression, as the broker counts a batch
 * against the topic's max.message.bytes: its length, attributes, timestamp and offset deltas (at most
 * 10 and 5 bytes: a kafka: source's records keep timestamps far apart), key, value and headers, each
 * with its varint length.
 */
export function messageBytes(m: OutMessage): number {
  let body = 1 + 10 + 5 + fieldBytes(lengthOf(m.key)) + fieldBytes(lengthOf(m.value))
  let count = 0
  for (const [name, v] of Object.entries(m.headers)) {
    for (const one of Array.isArray(v) ? v : [v]) {
      if (one === undefined) continue
      count++
      body += fieldBytes(Buffer.byteLength(name)) + fieldBytes(lengthOf(one as string | Buffer) ?? 0)
    }
  }
  body += varintBytes(count)
  return varintBytes(body) + body
}

/**
 * What one send may hold before compression, all its messages together, so that no partition's
 * record batch in it is over `maxMessageBytes` once snappy has compressed it: snappy never grows
 * incompressible data by more than a few bytes per 64 KiB block (1/64 is ample), and the batch
 * header and 1 KiB more stay free.
 */
export function sendBudget(maxMessageBytes: number): number {
  return Math.max(1, maxMessageBytes - BATCH_OVERHEAD - 1024 - Math.ceil(maxMessageBytes / 64))
}

/** What one send may hold before compression under both topics' limits (OrderedSender's sends hold records and dead letters together). */
export function sendsBudget(limits: {target: number; dlq: number}): number {
  return Math.min(sendBudget(limits.target), sendBudget(limits.dlq))
}

/**
 * A record for the target over the send budget (messageBytes): whether it goes alone (its record
 * batch fits the target's max.message.bytes compressed) or not at all (its RECORD_TOO_LARGE dead
 * letter), as OrderedSender decides it; `backfill --dry-run` predicts with the same decision.
 */
export async function oversizeFit(m: OutMessage, bytes: number, targetMaxBytes: number): Promise<{fit: 'alone'} | {fit: 'too_large'; bytes: number; compressed: number}> {
  const compressed = await compressedBytes(m)
  return compressed <= targetMaxBytes ? {fit: 'alone'} : {fit: 'too_large', bytes, compressed}
}

const snappy = SnappyCodec()

/** The record batch of `m` alone, snappy-compressed as the producer sends it (its fields' bytes compressed together: within a few bytes), with 1% and the header to spare. */
async function compressedBytes(m: OutMessage): Promise<number> {
  const parts: Buffer[] = []
  const add = (v: string | Buffer | null | undefined) => {
    if (v !== null && v !== undefined) parts.push(typeof v === 'string' ? Buffer.from(v) : v)
  }
  add(m.key)
  add(m.value)
  for (const [name, v] of Object.entries(m.headers)) {
    add(name)
    for (const one of Array.isArray(v) ? v : [v]) add(one as string | Buffer | undefined)
  }
  const compressed = await snappy.compress({buffer: Buffer.concat(parts)} as unknown as Parameters<typeof snappy.compress>[0])
  return BATCH_OVERHEAD + 128 + compressed.length + Math.ceil(compressed.length / 100)
}

/** max.message.bytes of each of `topics` as the broker applies it (the topic's own, or the broker's default); a topic it did not say is left out. */
export async function topicMaxMessageBytes(admin: Admin, topics: string[]): Promise<Map<string, number>> {
  const r = await admin.describeConfigs({includeSynonyms: false, resources: topics.map((name) => ({type: 2 /* TOPIC */, name, configNames: ['max.message.bytes']}))})
  const out = new Map<string, number>()
  for (const t of topics) {
    const v = r.resources.find((x) => x.resourceName === t)?.configEntries.find((c) => c.configName === 'max.message.bytes')?.configValue
    if (v !== undefined && /^\d+$/.test(v)) out.set(t, Number(v))
  }
  return out
}

/** max.message.bytes of the target and the DLQ topic, and what to make of a record the target cannot take. */
export interface SendLimits<M> {
  target: number
  dlq: number
  /**
   * A record larger than the target takes even compressed and alone (batch.records[index]): its dead
   * letter for the DLQ (RECORD_TOO_LARGE), the batch's counts moved from sent to rejected. `bytes`: the record's size
   * before compression, `compressed` after (as the broker would count it).
   */
  tooLarge: (batch: OutBatch<M>, record: OutMessage, index: number, bytes: number, compressed: number) => OutMessage
}

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
    /** the topics' max.message.bytes: a batch goes out in as many sends as keep each under it (sendsOf); without, in one */
    private readonly limits?: SendLimits<M>,
  ) {}

  /** Hands a batch to the producer; waits first while `depth` batches are outstanding. */
  async submit(batch: OutBatch<M>): Promise<void> {
    while (this.inflight.length >= this.depth) await this.settleOldest()
    if (this.failure !== undefined) throw this.failure
    const sends = this.limits ? await this.sendsOf(batch, this.limits) : [this.topicMessages(batch.records, batch.dead)].filter((t) => t.length > 0)
    // one after the other, each acknowledged before the next goes (one request in flight: see run.ts)
    const done = sends.reduce<Promise<void>>((prev, topicMessages) => prev.then(() => this.producer.sendBatch({acks: -1, compression: CompressionTypes.Snappy, topicMessages}).then(() => undefined)), Promise.resolve())
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

  private topicMessages(records: OutMessage[], dead: OutMessage[]): {topic: string; messages: OutMessage[]}[] {
    const out: {topic: string; messages: OutMessage[]}[] = []
    if (records.length > 0) out.push({topic: this.target, messages: records})
    if (dead.length > 0) out.push({topic: this.dlqTopic, messages: dead})
    return out
  }

  /**
   * The sends of a batch, in order, each at most sendBudget of the smaller of the two topics'
   * max.message.bytes before compression (every partition's record batch in it then fits, whatever
   * the records' keys): one send with a topic's default 1 MB and 300-byte records, several for wide
   * ones (2,000 records of 800 bytes were one 1.6 MB batch, which the broker refused with
   * MESSAGE_TOO_LARGE, ending the backfill). A message over the budget on its own goes alone when it
   * fits compressed; else a record for the target becomes its RECORD_TOO_LARGE dead letter
   * (limits.tooLarge), and a dead letter goes to the DLQ without its value, with the header
   * VALUE_OMITTED_HEADER saying why, as the stream's relay sends one.
   */
  private async sendsOf(batch: OutBatch<M>, limits: SendLimits<M>): Promise<{topic: string; messages: OutMessage[]}[][]> {
    const budget = sendsBudget(limits)
    const sends: {topic: string; messages: OutMessage[]}[][] = []
    let records: OutMessage[] = []
    let dead: OutMessage[] = []
    let bytes = 0
    const close = () => {
      if (records.length > 0 || dead.length > 0) sends.push(this.topicMessages(records, dead))
      records = []
      dead = []
      bytes = 0
    }
    const add = (into: 'records' | 'dead', m: OutMessage, n: number) => {
      if (bytes + n > budget) close()
      ;(into === 'records' ? records : dead).push(m)
      bytes += n
    }
    const alone = (topic: string, m: OutMessage) => {
      close()
      sends.push([{topic, messages: [m]}])
    }
    const addDead = async (d: OutMessage) => {
      const n = messageBytes(d)
      if (n <= budget) return add('dead', d, n)
      if ((await compressedBytes(d)) <= limits.dlq) return alone(this.dlqTopic, d)
      const bytesOfValue = lengthOf(d.value) ?? 0
      const omitted: OutMessage = {...d, value: null, headers: {...d.headers, [VALUE_OMITTED_HEADER]: `${bytesOfValue} bytes: more than ${this.dlqTopic} accepts (max.message.bytes ${limits.dlq})`}}
      add('dead', omitted, messageBytes(omitted))
    }
    for (let i = 0; i < batch.records.length; i++) {
      const m = batch.records[i]!
      const n = messageBytes(m)
      if (n <= budget) {
        add('records', m, n)
        continue
      }
      const fit = await oversizeFit(m, n, limits.target)
      if (fit.fit === 'alone') alone(this.target, m)
      else await addDead(limits.tooLarge(batch, m, i, fit.bytes, fit.compressed))
    }
    for (const d of batch.dead) await addDead(d)
    close()
    return sends
  }
}
