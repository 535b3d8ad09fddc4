/**
 * `dlq republish`: publishes again, WITH its value, a dead letter the outbox relay published
 * without it (larger than the DLQ topic's max.message.bytes: `cutover.value.omitted`,
 * src/runtime/relay.ts), once the topic takes it. The outbox row kept the value:
 *
 *   SELECT the pipeline's outbox rows whose stored headers hold cutover.value.omitted (--id: those)
 *   describeConfigs: each one's DLQ topic's max.message.bytes, now
 *   each row: the record the relay sends (key, value, headers without cutover.value.omitted)
 *     measured as the broker measures it against max.message.bytes (a record batch of one:
 *     relayRecordBytes): it fits, or it is too large (with the kafka-configs.sh command that lets
 *     the topic take it)                                                     --dry-run stops here
 *   UPDATE ... SET sent_at = NULL for the rows that fit: unsent again, the relay's to publish
 *   the relay's own rounds (OutboxRelay.publishOnce on relayProducer) until those rows are sent,
 *     REPUBLISH_WAIT_MS at most
 *
 * Why the relay's rounds and not a send of its own: a round takes the pipeline's relay lock
 * (pg_try_advisory_xact_lock, one process relays at a time), sends the unsent rows in id order
 * with the relay's idempotent producer (relayPartitioner: the record goes to the partition of its
 * key, or of its source partition, as its first copy did), sends a row with the stored
 * cutover.value.omitted WITH its value and never with that header, and, once the broker took it,
 * marks it sent and takes the header out of the row (prunable again, relay.ts `restored`); a row
 * the broker still refuses goes without its value again, as before. A send of its own would need
 * all of that again. With `stream run` running, its relay holds the lock in turn and may be the
 * one that publishes them; a row not published within the wait (the broker not answering) stays
 * unsent: the relay of the running, or of the next, `stream run` publishes it.
 *
 * The DLQ topic then holds two copies of the dead letter (same cutover.* headers): the earlier one
 * without its value, this one with it. DeadLetterCopies makes the one with the value the dead
 * letter for `dlq inspect`, `stats` and `replay` (it is not a relay repeat to drop), and
 * `republishedCopies` lets `dlq replay` pass over the earlier one (not parked) while the outbox
 * row says the value went out again (sent rows are pruned after a day: then it is parked, as
 * before, and the copy with the value is replayed all the same).
 */
import type {ConnectionSettings} from '../config/env.js'
import {loadSpec} from '../config/spec.js'
import {CutoverError, UsageError} from '../errors.js'
import {mapKafkaError, probeKafka, raiseMaxMessageBytesCommand} from '../kafka/client.js'
import {BATCH_OVERHEAD, fieldBytes, varintBytes} from '../kafka/record-size.js'
import {silentLogger, type Logger} from '../log.js'
import {mapPgError, openDatabase, type Pool} from '../pg/pool.js'
import {requirePrivileges, type TableNeed} from '../pg/privileges.js'
import {VALUE_OMITTED_HEADER, type StoredHeaders} from '../runtime/outbox.js'
import {sleep} from '../runtime/ratelimit.js'
import {OutboxRelay, relayProducer, sentHeaders, sourceOf, storedText} from '../runtime/relay.js'
import {headerText} from './headers.js'
import {deadLetterIdentity, withAdmin, type DlqRecord} from './reader.js'

/** How long `dlq republish` lets the relay's rounds publish the rows it made unsent (then the relay of `stream run` does). */
export const REPUBLISH_WAIT_MS = 30_000

/** What `dlq republish` does with cutover.outbox (not --dry-run): reads the rows, sets sent_at (NULL, then the relay's now()) and their headers. */
export const DLQ_REPUBLISH_NEEDS: readonly TableNeed[] = [{table: 'outbox', privileges: ['SELECT', 'UPDATE']}]

/** jsonb containment of a stored header named VALUE_OMITTED_HEADER (as relay.ts and pruneSentOutbox ask it). */
const OMITTED = JSON.stringify([[VALUE_OMITTED_HEADER]])

// DeadLetterCopies lives beside RepeatFilter, which it wraps (./reader.ts); exported here too
export {DeadLetterCopies, type DeadLetterCopy} from './reader.js'

/** The headers that, with the pipeline, name one dead letter's outbox row (deadLetterIdentity's). */
const IDENTITY_HEADERS = ['cutover.source.topic', 'cutover.source.partition', 'cutover.source.offset', 'cutover.failed.at'] as const

/**
 * Of `records`, the identities (deadLetterIdentity) of the copies without their value whose
 * outbox row the relay has published again WITH its value since (`dlq republish`: sent, the
 * header gone): a later copy on the DLQ topic holds the value. Empty where the outbox cannot tell
 * (no cutover.outbox in this database, no SELECT on it, the row pruned).
 */
export async function republishedCopies(pool: Pool, records: readonly DlqRecord[], logger: Logger = silentLogger): Promise<Set<string>> {
  const asked = records.filter((r) => r.view.valueOmitted !== null && r.view.pipeline !== null && deadLetterIdentity(r) !== null)
  const out = new Set<string>()
  if (asked.length === 0) return out
  const patterns = asked.map((r) =>
    JSON.stringify(
      IDENTITY_HEADERS.flatMap((name) => {
        const t = headerText(r.headers, name)
        return t === null ? [] : [[name, Buffer.from(t, 'utf8').toString('base64')]]
      }),
    ),
  )
  try {
    const found = await pool.query<{i: string}>(
      `SELECT p.i::text AS i FROM unnest($1::text[], $2::jsonb[]) WITH ORDINALITY AS p(pipeline, pattern, i)
        WHERE EXISTS (SELECT 1 FROM cutover.outbox o
                       WHERE o.pipeline = p.pipeline AND o.headers @> p.pattern AND o.sent_at IS NOT NULL AND NOT o.headers @> $3::jsonb)`,
      [asked.map((r) => r.view.pipeline), patterns, OMITTED],
    )
    for (const row of found.rows) out.add(deadLetterIdentity(asked[Number(row.i) - 1]!)!)
  } catch (e) {
    const code = (e as {code?: unknown}).code
    if (code === '42501') logger.warn('republished.unknown', {note: 'no SELECT on cutover.outbox: a dead letter published again with its value (dlq republish) is not known as such; its copy without the value is parked'})
    else if (code !== '42P01') throw e // 42P01: no outbox in this database, nothing was published from it
  }
  return out
}

/**
 * The size the broker checks against the topic's max.message.bytes when the relay sends this
 * row alone: a record batch of one record, uncompressed (the relay's producer compresses
 * nothing), with the headers the relay sends (the stored ones, without VALUE_OMITTED_HEADER).
 * The record: attributes, timestamp and offset deltas (0: one byte each), key, value, headers.
 */
export function relayRecordBytes(keyBytes: number | null, valueBytes: number | null, headers: StoredHeaders): number {
  const sent = sentHeaders(headers)
  let body = 3 + fieldBytes(keyBytes) + fieldBytes(valueBytes) + varintBytes(sent.length)
  for (const [stored, b64, b64name] of sent) {
    const name = b64name === 1 ? Buffer.from(stored, 'base64') : Buffer.from(stored, 'utf8')
    body += fieldBytes(name.length) + fieldBytes(Buffer.from(b64, 'base64').length)
  }
  return BATCH_OVERHEAD + varintBytes(body) + body
}

export type DlqRepublishStatus = 'republished' | 'would-republish' | 'queued' | 'too-large' | 'value-published'

export interface DlqRepublishRow {
  /** cutover.outbox id */
  id: string
  /** its DLQ topic */
  topic: string
  /**
   * republished: on the topic with its value now; would-republish (--dry-run): fits; queued: made
   * unsent, not published within the wait (the relay of the running or the next `stream run`
   * publishes it); too-large: the topic does not take it yet (see `fix`), left as it was (or the
   * broker refused it: published without its value again); value-published (--id): its value was
   * published already, nothing to do
   */
  status: DlqRepublishStatus
  /** bytes of the value, kept in cutover.outbox */
  value_bytes: number
  /** the record as the relay sends it, as the broker counts it against max.message.bytes (relayRecordBytes) */
  record_bytes: number
  /** the topic's max.message.bytes when the command asked */
  max_message_bytes: number
  code: string | null
  /** `topic/partition@offset` of the source record */
  source: string | null
  /** too-large: the command that lets the topic take it */
  fix?: string
}

/** The `--json` document of `cutover dlq republish`. */
export interface DlqRepublishResult {
  dry_run: boolean
  spec: string
  pipeline: string
  /** rows looked at: those published without their value (with --id, the ones named) */
  rows: DlqRepublishRow[]
  republished: number
  would_republish: number
  queued: number
  too_large: number
  elapsed_ms: number
}

export interface DlqRepublishOptions {
  spec: string
  settings: ConnectionSettings
  /** only these outbox rows (each must be a dead letter of the spec's pipeline) */
  ids?: readonly number[]
  dryRun?: boolean
  /** how long the relay's rounds may take (default REPUBLISH_WAIT_MS) */
  waitMs?: number
  logger?: Logger
}

interface OmittedRow {
  id: string
  topic: string
  key_bytes: number | null
  value_bytes: number | null
  headers: StoredHeaders
  omitted: boolean
}

export async function republishDlq(o: DlqRepublishOptions): Promise<DlqRepublishResult> {
  const started = Date.now()
  const logger = (o.logger ?? silentLogger).namespace('dlq.republish')
  const loaded = await loadSpec(o.spec)
  const pipeline = loaded.spec.name
  // an unreachable broker is exit 3 in seconds
  await probeKafka(o.settings.kafka, logger)
  const url = o.settings.databaseUrl
  // nothing to migrate or create: a database without cutover.outbox never published a dead letter
  const pool = await openDatabase(url, {logger, max: 2, applicationName: 'cutover dlq republish', create: false, migrate: false})
  try {
    if (!o.dryRun) await requirePrivileges(pool, 'dlq republish', DLQ_REPUBLISH_NEEDS)
    const rows = await rowsOf(pool, pipeline, o.ids)
    const limits = await maxMessageBytes(o.settings, logger, [...new Set(rows.map((r) => r.topic))])
    const out: DlqRepublishRow[] = rows.map((r) => {
      const max = limits.get(r.topic) ?? 0
      const bytes = relayRecordBytes(r.key_bytes, r.value_bytes, r.headers)
      const status: DlqRepublishStatus = !r.omitted ? 'value-published' : bytes > max ? 'too-large' : o.dryRun ? 'would-republish' : 'queued'
      return {
        id: r.id,
        topic: r.topic,
        status,
        value_bytes: r.value_bytes ?? 0,
        record_bytes: bytes,
        max_message_bytes: max,
        code: storedText(r.headers, 'cutover.error.code') ?? null,
        source: sourceOf(r.headers) ?? null,
        ...(status === 'too-large' ? {fix: raiseCommand(o.settings, r.topic, bytes)} : {}),
      }
    })
    const fit = out.filter((r) => r.status === 'queued')
    if (fit.length > 0) await publish(pool, o, pipeline, fit, logger)
    const count = (s: DlqRepublishStatus) => out.filter((r) => r.status === s).length
    return {
      dry_run: o.dryRun === true,
      spec: o.spec,
      pipeline,
      rows: out,
      republished: count('republished'),
      would_republish: count('would-republish'),
      queued: count('queued'),
      too_large: count('too-large'),
      elapsed_ms: Date.now() - started,
    }
  } catch (e) {
    if (e instanceof CutoverError) throw e
    const err = e as {code?: unknown; name?: unknown}
    if (typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code)) throw mapPgError(e, url)
    if (typeof err.name === 'string' && err.name.startsWith('KafkaJS')) throw mapKafkaError(e, o.settings.kafka, 'republish')
    throw e
  } finally {
    await pool.end().catch(() => {})
  }
}

/** The pipeline's rows published without their value; with `ids`, those rows (each must be one of the pipeline's). */
async function rowsOf(pool: Pool, pipeline: string, ids: readonly number[] | undefined): Promise<OmittedRow[]> {
  const select = `SELECT id::text AS id, pipeline, topic, octet_length(key) AS key_bytes, octet_length(value) AS value_bytes, headers, headers @> $1::jsonb AS omitted FROM cutover.outbox`
  try {
    if (ids === undefined || ids.length === 0) {
      return (await pool.query<OmittedRow>(`${select} WHERE pipeline = $2 AND headers @> $1::jsonb ORDER BY id`, [OMITTED, pipeline])).rows
    }
    const wanted = [...new Set(ids.map(String))]
    const found = (await pool.query<OmittedRow & {pipeline: string}>(`${select} WHERE id = ANY($2::bigint[]) ORDER BY id`, [OMITTED, wanted])).rows
    const ours = found.filter((r) => r.pipeline === pipeline)
    const missing = wanted.filter((id) => !ours.some((r) => r.id === id))
    if (missing.length > 0) {
      throw new UsageError(`--id ${missing.join(', ')}: no dead letter of pipeline ${pipeline} in cutover.outbox has ${missing.length === 1 ? 'this id' : 'these ids'}`, {
        hint: `cutover dlq republish --spec <this spec> --dry-run lists the dead letters of ${pipeline} published without their value, with their ids`,
      })
    }
    return ours.map(({pipeline: _p, ...r}) => r)
  } catch (e) {
    // 42P01: no cutover.outbox in this database: nothing was ever published from it
    if ((e as {code?: unknown}).code === '42P01' && (ids === undefined || ids.length === 0)) return []
    if ((e as {code?: unknown}).code === '42P01') throw new UsageError(`--id ${ids!.join(', ')}: this database has no cutover.outbox (stream run never ran on it)`, {hint: 'check DATABASE_URL'})
    throw e
  }
}

/** max.message.bytes of each topic, as the broker applies it now (the topic's own, or the broker's default). */
async function maxMessageBytes(settings: ConnectionSettings, logger: Logger, topics: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  if (topics.length === 0) return out
  return withAdmin(settings.kafka, logger, async (admin) => {
    let existing: Set<string>
    try {
      existing = new Set(await admin.listTopics())
    } catch (e) {
      throw mapKafkaError(e, settings.kafka, 'list topics')
    }
    const missing = topics.filter((t) => !existing.has(t))
    if (missing.length > 0) {
      throw new UsageError(`DLQ topic ${missing.join(', ')} does not exist on ${settings.kafka.brokers.join(',')}`, {
        hint: 'the outbox rows name it as their dead-letter topic: create it (as stream run does: with the source topic\'s partitions and a max.message.bytes that takes the dead letters), or check KAFKA_BROKERS',
      })
    }
    let r: Awaited<ReturnType<typeof admin.describeConfigs>>
    try {
      r = await admin.describeConfigs({includeSynonyms: false, resources: topics.map((name) => ({type: 2 /* TOPIC */, name, configNames: ['max.message.bytes']}))})
    } catch (e) {
      throw mapKafkaError(e, settings.kafka, `the configuration of ${topics.join(', ')}`, {operation: 'DescribeConfigs', topics})
    }
    for (const t of topics) {
      const v = r.resources.find((x) => x.resourceName === t)?.configEntries.find((c) => c.configName === 'max.message.bytes')?.configValue
      if (v === undefined || !/^\d+$/.test(v)) throw new CutoverError('KAFKA_ERROR', `Kafka did not say the max.message.bytes of ${t}`, {details: {topic: t}})
      out.set(t, Number(v))
    }
    return out
  })
}

/** kafka-configs.sh that lets `topic` take a record of `bytes` (aimed at KAFKA_BROKERS, as kafka/client.ts's commands are). */
function raiseCommand(settings: ConnectionSettings, topic: string, bytes: number): string {
  return raiseMaxMessageBytesCommand(settings.kafka, topic, bytes)
}

/**
 * Makes the rows unsent and lets the relay's rounds publish them (see the top of this file); sets
 * each one's status from its row afterwards: republished, too-large (the broker refused it all
 * the same: without its value again) or queued (not published within the wait).
 */
async function publish(pool: Pool, o: DlqRepublishOptions, pipeline: string, rows: DlqRepublishRow[], logger: Logger): Promise<void> {
  const ids = rows.map((r) => r.id)
  const marked = await pool.query('UPDATE cutover.outbox SET sent_at = NULL WHERE id = ANY($1::bigint[]) AND pipeline = $2 AND headers @> $3::jsonb', [ids, pipeline, OMITTED])
  logger.info('republish.unsent', {ids, rows: marked.rowCount ?? 0})
  const unsent = async () => (await pool.query<{n: number}>('SELECT count(*)::int AS n FROM cutover.outbox WHERE id = ANY($1::bigint[]) AND sent_at IS NULL', [ids])).rows[0]?.n ?? 0
  const producer = relayProducer(o.settings.kafka, {logger, clientId: `cutover-${pipeline}`})
  try {
    await producer.connect()
  } catch (e) {
    // the rows stay unsent: the relay of the next stream run publishes them
    logger.warn('republish.connect_failed', {error: e, note: 'the rows stay unsent in cutover.outbox: the relay of the running or the next stream run publishes them'})
    return
  }
  try {
    const relay = new OutboxRelay({pool, producer, pipeline, logger: logger.namespace('relay')})
    const until = Date.now() + (o.waitMs ?? REPUBLISH_WAIT_MS)
    let failures = 0
    while ((await unsent()) > 0 && Date.now() < until) {
      try {
        // 0: nothing to send, or another process (stream run's relay) holds the lock and publishes them
        if ((await relay.publishOnce()) > 0) {
          failures = 0
          continue
        }
      } catch (e) {
        failures++
        logger.warn('republish.publish.failed', {error: e, attempt: failures})
      }
      await sleep(Math.min(200 * 2 ** Math.min(failures, 4), Math.max(0, until - Date.now())))
    }
  } finally {
    await producer.disconnect().catch(() => {})
  }
  const after = await pool.query<{id: string; sent: boolean; omitted: boolean}>(
    'SELECT id::text AS id, sent_at IS NOT NULL AS sent, headers @> $2::jsonb AS omitted FROM cutover.outbox WHERE id = ANY($1::bigint[])',
    [ids, OMITTED],
  )
  const byId = new Map(after.rows.map((r) => [r.id, r]))
  for (const r of rows) {
    const now = byId.get(r.id)
    if (now?.sent && !now.omitted) r.status = 'republished'
    else if (now?.sent) {
      // the broker refused it (a limit lowered meanwhile, another broker's): published without its value again
      r.status = 'too-large'
      r.fix = raiseCommand(o.settings, r.topic, Math.max(r.record_bytes, r.max_message_bytes + 1))
    }
  }
}

const n = (x: number) => x.toLocaleString('en-US')

/** The plain-text rendering of a result. */
export function formatRepublish(r: DlqRepublishResult): string {
  if (r.rows.length === 0) return `${r.pipeline}: no dead letter in cutover.outbox was published without its value`
  const lines = r.rows.map((row) => {
    const what = `outbox ${row.id}${row.code ? ` ${row.code}` : ''}${row.source ? ` (${row.source})` : ''}, ${n(row.record_bytes)} bytes`
    switch (row.status) {
      case 'republished':
        return `${what}: published again to ${row.topic} with its value`
      case 'would-republish':
        return `${what}: ${row.topic} takes it now (max.message.bytes ${n(row.max_message_bytes)}): would be published again with its value`
      case 'queued':
        return `${what}: unsent again, not yet published (the relay of the running or the next stream run publishes it)`
      case 'value-published':
        return `${what}: its value is on ${row.topic} already`
      case 'too-large':
        return `${what}: more than ${row.topic} takes (max.message.bytes ${n(row.max_message_bytes)}); raise it: ${row.fix}`
    }
  })
  const counts = [
    r.dry_run ? `${n(r.would_republish)} would be published again` : `${n(r.republished)} published again`,
    ...(r.queued ? [`${n(r.queued)} left to the relay`] : []),
    `${n(r.too_large)} too large`,
  ]
  return [...lines, `${r.pipeline}: ${counts.join(', ')}${r.dry_run ? ' (dry run: nothing changed)' : ''}`].join('\n')
}
