/**
 * Dead letters into the PostgreSQL outbox (`cutover.outbox`), inside the batch transaction,
 * so a dead letter exists exactly when its batch's offset committed. The relay (./relay.ts)
 * publishes them.
 *
 * A dead letter keeps the original key, value and headers byte for byte and adds the headers of
 * DESIGN.md. Headers are stored as a JSON array of [name, base64 value] pairs ([base64 name,
 * base64 value, 1] for a name holding U+0000, which jsonb cannot store). An original
 * header that `cutover` sets itself (a record replayed from the DLQ that fails again) is
 * replaced, not repeated; `cutover.replay.count` is carried over from the original when present.
 * Note: kafkajs groups repeated header names of a consumed record into one array, so the
 * relative order of different names is kept but interleaved repeats are grouped.
 */
import type {IHeaders} from 'kafkajs'
import type {PoolClient} from '../pg/pool.js'
import type {WorkItem, WriteStatement} from './types.js'

export const DLQ_HEADERS = [
  'cutover.error.code',
  'cutover.error.message',
  'cutover.error.stage',
  'cutover.source.topic',
  'cutover.source.partition',
  'cutover.source.offset',
  'cutover.source.timestamp',
  'cutover.pipeline',
  'cutover.pipeline.version',
  'cutover.attempts',
  'cutover.replay.count',
  'cutover.failed.at',
] as const

/**
 * Set by the relay (./relay.ts) on a dead letter it published without its value (larger than the
 * DLQ topic accepts), in the record and in its outbox row: the record's own header of that name,
 * if it had one, is not kept (as DLQ_HEADERS: cutover's bookkeeping, replaced, not repeated).
 */
export const VALUE_OMITTED_HEADER = 'cutover.value.omitted'

/**
 * Set by `backfill` on a dead letter of a csv: or fixed: source whose value is the file's bytes in
 * an encoding other than UTF-8: the encoding's name (`windows-1251`, `cp037`), for `dlq inspect` to
 * show the text. Bookkeeping as DLQ_HEADERS: `dlq replay` sends the record without it.
 */
export const SOURCE_ENCODING_HEADER = 'cutover.source.encoding'

const OWN = new Set<string>([...DLQ_HEADERS, VALUE_OMITTED_HEADER])

/**
 * [name, base64 value], or [base64 name, base64 value, 1] for a name holding U+0000, which jsonb
 * cannot store (22P05): the outbox insert of such a dead letter would fail on every retry and
 * stall its partition.
 */
export type StoredHeaders = ([string, string] | [string, string, 1])[]

/**
 * The record's headers, each value as bytes. A header without a value (Kafka allows length -1:
 * Kafka Connect writes one for an exception without a message), which kafkajs reads as null, is
 * kept empty: the relay's producer (kafkajs) cannot write a header without a value, and a null
 * here failed the batch for ever (its partition stalled).
 */
function headerEntries(headers: IHeaders | undefined): [string, Buffer][] {
  const out: [string, Buffer][] = []
  for (const [name, v] of Object.entries(headers ?? {}) as [string, IHeaders[string] | null][]) {
    if (v === undefined) continue
    for (const one of Array.isArray(v) ? (v as (Buffer | string | null)[]) : [v]) out.push([name, one === null ? EMPTY : Buffer.isBuffer(one) ? one : Buffer.from(one)])
  }
  return out
}

const EMPTY = Buffer.alloc(0)

export interface DeadLetterContext {
  pipeline: string
  /** SHA-256 of the spec file */
  version: string
  attempts: number
  failedAt: Date
}

export function deadLetterHeaders(item: WorkItem, ctx: DeadLetterContext): StoredHeaders {
  const original = headerEntries(item.message.headers)
  const replay = original.find(([n]) => n === 'cutover.replay.count')?.[1].toString() ?? '0'
  const out: StoredHeaders = original
    .filter(([n]) => !OWN.has(n))
    .map(([n, b]): StoredHeaders[number] => (n.includes('\u0000') ? [Buffer.from(n, 'utf8').toString('base64'), b.toString('base64'), 1] : [n, b.toString('base64')]))
  const add = (name: (typeof DLQ_HEADERS)[number], value: string) => out.push([name, Buffer.from(value, 'utf8').toString('base64')])
  const dead = item.dead!
  add('cutover.error.code', dead.code)
  add('cutover.error.message', dead.message)
  add('cutover.error.stage', dead.stage)
  add('cutover.source.topic', item.topic)
  add('cutover.source.partition', String(item.partition))
  add('cutover.source.offset', item.offset.toString())
  add('cutover.source.timestamp', item.message.timestamp)
  add('cutover.pipeline', ctx.pipeline)
  add('cutover.pipeline.version', ctx.version)
  add('cutover.attempts', String(ctx.attempts))
  add('cutover.replay.count', replay)
  add('cutover.failed.at', ctx.failedAt.toISOString())
  return out
}

/** The outbox insert of the dead letters among `items` (one statement), null when there are none. */
export function deadLetterStatement(dlqTopic: string, items: readonly WorkItem[], ctx: DeadLetterContext): (WriteStatement & {count: number}) | null {
  const dead = items.filter((i) => i.status === 'dead' && i.dead)
  if (dead.length === 0) return null
  return {
    target: 'cutover.outbox',
    count: dead.length,
    text: (b) =>
      `INSERT INTO cutover.outbox (pipeline, topic, key, value, headers)
     SELECT $${b + 1}, $${b + 2}, u.k, u.v, u.h FROM unnest($${b + 3}::bytea[], $${b + 4}::bytea[], $${b + 5}::jsonb[]) AS u(k, v, h)`,
    params: [ctx.pipeline, dlqTopic, dead.map((i) => i.message.key), dead.map((i) => i.message.value), dead.map((i) => JSON.stringify(deadLetterHeaders(i, ctx)))],
  }
}

/** Inserts the dead letters of a batch into the outbox (one statement). */
export async function insertDeadLetters(tx: Pick<PoolClient, 'query'>, dlqTopic: string, items: readonly WorkItem[], ctx: DeadLetterContext): Promise<number> {
  const st = deadLetterStatement(dlqTopic, items, ctx)
  if (!st) return 0
  await tx.query(st.text(0), st.params)
  return st.count
}

/** Stored headers -> kafkajs headers (repeated names become arrays, as kafkajs sends them). */
export function toKafkaHeaders(stored: StoredHeaders): IHeaders {
  const out: Record<string, Buffer | Buffer[]> = {}
  for (const [stored0, b64, nameInBase64] of stored) {
    const name = nameInBase64 === 1 ? Buffer.from(stored0, 'base64').toString('utf8') : stored0
    const b = Buffer.from(b64, 'base64')
    const prev = out[name]
    out[name] = prev === undefined ? b : Array.isArray(prev) ? [...prev, b] : [prev, b]
  }
  return out
}
