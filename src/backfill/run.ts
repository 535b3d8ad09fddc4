/**
 * `cutover backfill`: replay a legacy source into a Kafka topic at a controlled pace, resumably.
 *
 *   read (legacy-adapters, one await per batch; csv: and fixed: sources without --spec are read,
 *        keyed, serialized and partitioned in a worker thread, ./reader-worker.ts, which hands
 *        over each batch packed in one transferred buffer: this thread then only runs kafkajs)
 *     -> [--spec] normalize (the normalizer every command shares); a reject becomes a dead letter
 *        for the spec's DLQ topic with the DESIGN.md headers and its code
 *     -> keyed record: JSON of the raw fields as read (with --spec: only records the spec accepts,
 *        keyed by the normalized key, as read in the spec's source.format, see recordAsRead;
 *        `--send normalized` sends the typed record instead) (kafka:
 *        sources without --spec: the original value bytes, a tombstone as a tombstone), key = the
 *        spec's key or --key (kafka: sources keep their key, headers and timestamp), headers cutover.backfill.id and
 *        cutover.backfill.position (formatPosition: `file.csv:12`, `topic/3@1042`, `table[17]`);
 *        a csv:/fixed: dead letter whose value is bytes in the file's encoding (a line holding a
 *        byte invalid in it, a copybook record, a line re-encoded for a csv spec), not UTF-8 text,
 *        also has cutover.source.encoding naming it (fileDeadLetterEncoding)
 *     -> paced (./pacing.ts: --rate/--burst through the one TokenBucket, --max-lag by the group's lag)
 *     -> batched, snappy, idempotent producer (./producer.ts), acknowledged in order; a batch goes
 *        out in as many sends as keep each under the target's and the DLQ's max.message.bytes (read
 *        at the start; Kafka's default 1,048,588 when the broker does not say), and a record no
 *        send can hold, even alone and compressed, is a RECORD_TOO_LARGE dead letter (stage sink)
 *        naming the kafka-configs.sh that lets the target take it
 *     -> checkpoint of the acknowledged source position in cutover.backfills every few seconds
 *        and when stopped (./checkpoint.ts)
 *
 * Every record is accounted for: read = sent + rejected (records outside --since/--until are
 * counted apart, as out_of_range). The counts are the backfill's totals over all its runs.
 *
 * Resuming (`--resume ID`) reads the source again from its start and skips what the checkpoint
 * covers (file and pg sources by record number; a file only if it is the one the checkpoint was
 * taken from, see FILE); a kafka: source's reader starts each partition after the checkpoint's
 * offset there (position.partitions), without fetching what it covers, so a record
 * is sent twice only if its batch was sent after the last checkpoint; it then carries the same
 * key, value and headers, and the pipeline's dedupe drops it. A pg source must read in a stable
 * order (`order_by=`, or ORDER BY in `query=`) for this to hold; it warns otherwise.
 */
import {hostname, userInfo} from 'node:os'
import {createHash, randomBytes} from 'node:crypto'
import {createReadStream, readFileSync, realpathSync} from 'node:fs'
import {stat} from 'node:fs/promises'
import {dirname, resolve as resolvePath} from 'node:path'
import type {Admin, IHeaders, KafkaMessage, Producer} from 'kafkajs'
import {formatPosition, openSource, parseSourceUri, recordBatches} from '../../legacy-adapters/index.js'
import {isTombstone} from '../../legacy-adapters/kafka.js'
import {csvLine, estimateCsvRecords} from '../../legacy-adapters/csv.js'
import {csvMessageDecoder, fixedMessageDecoder, type MessageDecoder} from '../../legacy-adapters/message.js'
import {parseCopybook} from '../../legacy-adapters/copybook.js'
import {estimatePgRows, pgSourceDataError, pgSourceError, type PgRowEstimate} from '../../legacy-adapters/pg.js'
import {fixedOptionsFromUri} from '../../legacy-adapters/fixed.js'
import type {RawRecord, RawRecordOk, ReaderContext, SourceUri} from '../../legacy-adapters/types.js'
import type {KafkaReaderContext} from '../../legacy-adapters/kafka.js'
import type {ConnectionSettings, KafkaSettings} from '../config/env.js'
import {loadSpec, namesOf, sensitiveInputs, specLocation, type LoadedSpec} from '../config/spec.js'
import {CutoverError, SpecError, UsageError} from '../errors.js'
import {missingColumns, recordSerializer} from '../jobs/normalize.js'
import type {ProgressTracker} from '../jobs/progress.js'
import {connectAdmin, createKafka, createTopicHint, mapKafkaError, probeKafka, raiseMaxMessageBytesCommand} from '../kafka/client.js'
import {writableHeaders} from '../kafka/headers.js'
import {redactString, silentLogger, type Logger} from '../log.js'
import {encodeString, resolveEncoding, type SupportedEncoding} from '../normalize/encoding.js'
import {createNormalizer, fieldsJson} from '../normalize/index.js'
import {openDatabase, type Pool} from '../pg/pool.js'
import {BACKFILL_NEEDS, requirePrivileges} from '../pg/privileges.js'
import {deadLetterHeaders, SOURCE_ENCODING_HEADER, toKafkaHeaders} from '../runtime/outbox.js'
import type {WorkItem} from '../runtime/types.js'
import {CheckpointStore, emptyCounts, type BackfillCounts, type BackfillPosition, type BackfillStatus} from './checkpoint.js'
import {LagWindow, sampleGroupLag} from './lag.js'
import {Pacer, type PaceChange} from './pacing.js'
import {createBackfillProducer, KAFKA_DEFAULT_MAX_MESSAGE_BYTES, messageBytes, OrderedSender, oversizeFit, sendsBudget, topicMaxMessageBytes, type OutBatch, type OutMessage} from './producer.js'
import {readerWorkerUrl, startReaderThread, type ReaderThread} from './file-reader.js'
import {assertSameFile, FILE_SAMPLE_BYTES, fileFingerprint, resumePointMismatch, savedFingerprint, sourcePath, type FileFingerprint} from './file-identity.js'
import {keyFunction, keyOf, recordSha256} from './records.js'

export const BACKFILL_ID_HEADER = 'cutover.backfill.id'
export const BACKFILL_POSITION_HEADER = 'cutover.backfill.position'

export interface BackfillOptions {
  /** source URI (optional with resume) */
  from?: string
  /** target topic (optional with resume) */
  to?: string
  /** path of the pipeline spec */
  spec?: string
  key?: string
  rate?: number
  burst?: number
  maxLag?: number
  group?: string
  /** ms since epoch, inclusive */
  since?: number
  /** ms since epoch, exclusive */
  until?: number
  resume?: string
  /** name a new backfill (default bf-<utc time>-<random>) */
  id?: string
  dryRun?: boolean
  /** DLQ topic (default: the spec's, else <to>.dlq) */
  dlq?: string
  /**
   * With --spec, what a clean record is sent as: `raw` (default) the fields as read, so that
   * `stream run` with the same spec consumes the topic (its `from:` names the raw fields);
   * `normalized` the typed record under the spec's field names (for a topic of clean records).
   */
  send?: 'raw' | 'normalized'
  /** records per batch (default from the rate: 50 ms worth, 1..2000) */
  batchSize?: number
  checkpointMs?: number
  lagIntervalMs?: number
  settings: ConnectionSettings
  logger: Logger
  signal?: AbortSignal
  cwd?: string
  progress?: ProgressTracker
  /**
   * count a csv file's lines first, so that progress knows the total (a person is watching);
   * without, its records are estimated from its first 64 KiB (estimateCsvRecords): progress
   * lines say "of about N records", without reading the file twice
   */
  countTotal?: boolean
  onPace?: (c: PaceChange) => void
  /** called once the backfill has its id (before the first record) */
  onStart?: (info: {id: string; source: string; target: string; resumedFrom: BackfillPosition | null; rate: number | null}) => void
}

export interface BackfillResult {
  id: string
  source: string
  target: string
  status: BackfillStatus
  dry_run: boolean
  /** totals over all runs of this backfill: read = sent + rejected */
  read: number
  sent: number
  rejected: number
  rejected_by_code: Record<string, number>
  out_of_range: number
  dlq_topic: string
  /** this run */
  elapsed_ms: number
  /** records per second sent by this run while not paused, first send to last acknowledgement */
  rate_achieved: number
  paused_ms: number
  pace_changes: number
  /** the acknowledged position this run started after (null for a new backfill) */
  resumed_from: BackfillPosition | null
  runs: number
  /** the pace in force (this run's flags, else the backfill's saved ones; a resumed run saves the ones it was given) */
  rate: number | null
  burst: number | null
  max_lag: number | null
  group: string | null
  /**
   * About how many records the source holds (pg: sources, see estimatePgRows: PostgreSQL's
   * statistics, never a count), the records of earlier runs included; null when unknown
   * (query=, a table never analyzed, csv:/fixed:/kafka: sources). An estimate: `read` may end
   * above or below it.
   */
  total_estimate: number | null
  /** where total_estimate comes from: pg_class.reltuples (a table), explain (a table with where=) */
  total_estimate_source: PgRowEstimate['source'] | null
  /**
   * the target's max.message.bytes the sends were cut to, over which a record is RECORD_TOO_LARGE
   * (a dry run's prediction too); null for a --resume of a completed backfill (nothing to send)
   */
  max_message_bytes: number | null
  /** `broker`: the topic's own or the broker's default, as the broker said; `kafka_default`: Kafka's 1,048,588, the broker did not say (a dry run without a broker) */
  max_message_bytes_source: 'broker' | 'kafka_default' | null
  /** whether the target topic exists (a real run refuses to start without it, exit 2); null when not known: a dry run no broker answered, a --resume of a completed backfill */
  target_exists: boolean | null
  /**
   * whether the DLQ topic exists (a real run's first rejected record stops it, exit 2, when it
   * does not); null when not known: a dry run no broker answered, a --resume of a completed backfill
   */
  dlq_exists: boolean | null
}

interface BatchMeta {
  records: number
  partitions: Record<string, string>
  last: RawRecord['position'] | undefined
  /** csv:/fixed: the digest of the record at `last` (the worker's), or that record (this thread's) */
  lastSha256?: string | undefined
  lastRecord?: RawRecord | undefined
  counts: BackfillCounts
  /** the ordinal (record number) of each of the batch's records for the target, in order: read in this thread */
  ordinals?: number[]
  /** ...or, read by the worker, from the batch's first ordinal and the ordinals of its dead letters (recordOrdinal) */
  firstOrdinal?: number
  deadOrdinals?: number[]
}

/** The ordinal of the batch's `index`-th record for the target (for its dead letter's cutover.source.offset, unique in the backfill). */
function recordOrdinal(meta: BatchMeta, index: number): number | undefined {
  if (meta.ordinals) return meta.ordinals[index]
  if (meta.firstOrdinal === undefined) return undefined
  const dead = meta.deadOrdinals ?? []
  let o = meta.firstOrdinal - 1
  let d = 0
  for (let n = -1; n < index; n++) {
    o++
    while (d < dead.length && dead[d] === o) {
      d++
      o++
    }
  }
  return o
}

async function countLines(path: string): Promise<number> {
  let n = 0
  for await (const chunk of createReadStream(path, {highWaterMark: 1 << 20}) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) n++
  }
  return n
}

function newId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-')
  return `bf-${t}-${randomBytes(3).toString('hex')}`
}

function whoAmI(): string {
  try {
    return `${userInfo().username}@${hostname()}`
  } catch {
    return hostname()
  }
}

function addCounts(into: BackfillCounts, d: BackfillCounts): void {
  into.read += d.read
  into.sent += d.sent
  into.rejected += d.rejected
  into.out_of_range += d.out_of_range
  for (const [c, n] of Object.entries(d.rejected_by_code)) into.rejected_by_code[c] = (into.rejected_by_code[c] ?? 0) + n
}

function cloneCounts(c: BackfillCounts): BackfillCounts {
  return {...c, rejected_by_code: {...c.rejected_by_code}}
}

/**
 * A source with columns (csv:, fixed:, pg:) must have the column every spec field reads (`from`)
 * and every --key names, as `normalize` requires: a missing one (a typo, another export's layout,
 * a header read in the wrong encoding) would otherwise dead-letter the whole history as
 * REQUIRED_FIELD_EMPTY, or send it all with null keys, exit 0. Exit 2 naming the columns instead,
 * before the backfill has a row or sends anything. kafka: sources carry JSON: no columns to check.
 */
async function assertColumnsRead(uri: SourceUri, ctx: ReaderContext, loaded: LoadedSpec | undefined, keyFields: string[]): Promise<void> {
  const wanted = loaded ? Object.entries(loaded.spec.fields).map(([name, f]) => ({name, from: f.from})) : keyFields.map((k) => ({name: k, from: k}))
  const found = await missingColumns(uri, ctx, wanted)
  if (!found) return
  if (loaded) throw new SpecError(specLocation(loaded, ['fields', found.missing[0]!.name]), found.message, {hint: found.hint})
  throw new UsageError(`--key ${keyFields.join(',')}: ${found.message}`, {hint: "name the source's key column(s) in --key (a header that looks garbled: check encoding= of the source)"})
}

/**
 * With --spec (and `--send raw`), a record as read, in the form `stream run` with the same spec
 * decodes (its source.format):
 *   json   the fields as JSON (kafka: sources: the value bytes as they were)
 *   fixed  the record's bytes as the fixed: source holds them (the copybook's layout, its
 *          encoding); a csv: or pg: source has no such bytes: exit 2
 *   csv    one line of the spec's source.columns, in that order, with its delimiter, in its
 *          encoding (a character the encoding has no byte for: RangeError)
 */
function recordAsRead(loaded: LoadedSpec, uri: SourceUri): (r: RawRecordOk) => string | Buffer {
  const source = loaded.spec.source
  if (uri.scheme === 'kafka' || source.format === 'json') {
    // a pg: numeric or a copybook number (exact decimals) of a decimal field: a JSON number, that
    // stream run with this spec reads as the number it is, never as printed text ("1.234")
    const numeric = new Set(Object.entries(loaded.spec.fields).flatMap(([name, f]) => (f.type === 'decimal' ? [f.from ?? name] : [])))
    return (r) => (uri.scheme === 'kafka' && r.raw ? r.raw : fieldsJson(r.fields, numeric))
  }
  if (source.format === 'fixed') {
    if (uri.scheme !== 'fixed') {
      throw new SpecError(specLocation(loaded, ['source', 'format']), `source.format fixed: stream run reads each message as a copybook record, and the records of a ${uri.scheme}: source are not copybook records`, {
        hint: 'backfill the fixed: file itself with this spec, or give the topic a spec with source.format json (what backfill sends from other sources), or --send normalized',
      })
    }
    return (r) => r.raw ?? JSON.stringify(r.fields)
  }
  const columns = source.columns ?? []
  const delimiter = source.delimiter ?? ','
  const encoding = resolveEncoding(source.encoding, 'source.encoding')
  const text = (v: unknown): string => (v === null || v === undefined ? '' : typeof v === 'string' ? v : String(v))
  return (r) => {
    const values = columns.map((c) => text(r.fields[c]))
    try {
      return encodeString(csvLine(values, delimiter), encoding)
    } catch (e) {
      // named by its column, without the value (it may be a sensitive field's)
      const i = values.findIndex((v) => {
        try {
          encodeString(v, encoding)
          return false
        } catch {
          return true
        }
      })
      throw new RangeError(`column ${columns[i] ?? '?'} holds a character that ${encoding} has no byte for`, {cause: e})
    }
  }
}

/**
 * The encoding of a csv: or fixed: record as recordAsRead gives it, for the dead letter of a record
 * the spec rejects, when those are bytes in an encoding other than UTF-8 (cutover.source.encoding):
 * a fixed spec's record bytes are in the fixed: source's encoding (EBCDIC, packed fields: never
 * UTF-8 text), a csv spec's line in the spec's source.encoding. undefined for a json spec (UTF-8
 * JSON) and for other sources.
 */
async function fileDeadLetterEncoding(loaded: LoadedSpec, uri: SourceUri, cwd: string | undefined): Promise<SupportedEncoding | undefined> {
  const source = loaded.spec.source
  if (uri.scheme === 'fixed' && source.format === 'fixed') return (await fixedOptionsFromUri(uri, cwd ? {cwd} : {})).encoding
  if ((uri.scheme === 'csv' || uri.scheme === 'fixed') && source.format === 'csv') {
    const encoding = resolveEncoding(source.encoding, 'source.encoding')
    return encoding === 'utf-8' ? undefined : encoding
  }
  return undefined
}

/**
 * A kafka: source read with a spec whose source.format is csv or fixed holds what `stream run`
 * with that spec consumes: one CSV line, or one copybook record, per message (an archive of the
 * pipeline's own topic, say). Each message is decoded as `stream run` decodes it (the same
 * per-message decoders, legacy-adapters/message.ts), so that the spec sees the record's fields;
 * the kafka: reader alone takes a value for JSON (or, format=text, for one field `value`), and
 * every such record was rejected (DECODE_ERROR), exit 0. undefined for json specs. A fixed spec's
 * copybook (source.copybook, relative to the spec's folder) is read here, once: `copybook` its
 * path and digest, for the checkpoint (see COPYBOOKS).
 */
function kafkaMessageFields(loaded: LoadedSpec): {fields: (r: RawRecord) => RawRecord; copybook?: CopybookDigest} | undefined {
  const source = loaded.spec.source
  let decode: MessageDecoder | undefined
  let copybook: CopybookDigest | undefined
  if (source.format === 'csv') {
    decode = csvMessageDecoder({columns: source.columns ?? [], delimiter: source.delimiter ?? ',', encoding: source.encoding})
  } else if (source.format === 'fixed') {
    const path = resolvePath(dirname(loaded.file), source.copybook ?? '')
    let bytes: Buffer
    try {
      bytes = readFileSync(path)
    } catch (e) {
      throw new SpecError(specLocation(loaded, ['source', 'copybook']), `source.copybook ${source.copybook ?? ''}: cannot read ${path}: ${(e as Error).message}`, {
        hint: 'a relative copybook path starts at the folder of the spec file',
        cause: e,
      })
    }
    copybook = {path, sha256: sha256Of(bytes)}
    decode = fixedMessageDecoder({copybook: parseCopybook(bytes.toString('utf8'), path), encoding: source.encoding})
  }
  if (!decode) return undefined
  const d = decode
  const fields = (r: RawRecord): RawRecord => {
    if (!r.raw) return r // a tombstone: the reader's DECODE_ERROR
    const origin = {key: r.key ?? null, ...(r.headers ? {headers: r.headers} : {})}
    const m = d(r.raw)
    if (m.ok) return {ok: true, fields: m.fields, position: r.position, raw: r.raw, ...origin}
    return {ok: false, code: m.code, message: `${formatPosition(r.position)}: ${m.message}`, position: r.position, raw: r.raw, ...origin, ...(m.field !== undefined ? {field: m.field} : {})}
  }
  return copybook ? {fields, copybook} : {fields}
}

/**
 * The source's batches until a stop: a reader given the signal gives up its read when it aborts
 * (pg: destroys its cursor stream, csv:/fixed: their file stream, kafka: its fetch wait) and
 * throws from the read it was in. After SIGINT/SIGTERM that is the stop, not a failure of the
 * source: the batches end there, and the backfill stops with its checkpoint (exit 130/143,
 * status stopped), as it does when the signal comes between two reads. An error of the source
 * while no stop was asked for is thrown as it is.
 */
async function* untilStopped<T>(batches: AsyncIterable<T>, signal: AbortSignal | undefined): AsyncGenerator<T> {
  try {
    for await (const b of batches) yield b
  } catch (e) {
    if (signal?.aborted) return
    throw e
  }
}

async function* pgDataErrors<T>(batches: AsyncIterable<T>, uri: SourceUri): AsyncGenerator<T> {
  try {
    for await (const b of batches) yield b
  } catch (e) {
    throw pgSourceDataError(e, uri)
  }
}

/**
 * PG_RESUME: a pg: source is resumed by row number (the rows of its order_by= up to the
 * checkpoint are skipped), and each run reads its own snapshot. A row deleted (or inserted) before
 * the checkpoint's row since the backfill stopped moves every later row one number down (up): the
 * resume would skip rows it never sent, exit 0, "completed". So a checkpoint keeps the SHA-256 of
 * the last row it covers (its position and fields, as for a file's record), and a resume that
 * reads another row at that number (rows inserted, deleted or updated before it, or an order_by=
 * with ties), or fewer rows than the checkpoint covers, refuses (exit 2) before it sends anything.
 */
function pgResumeMismatch(id: string, uriText: string, records: number, last: RawRecord['position'] | undefined, endedAfter?: number): UsageError {
  const what =
    endedAfter === undefined
      ? `its row ${records.toLocaleString('en-US')}${last ? ` (${formatPosition(last)} then)` : ''}, the last one the checkpoint covers, is not the row read there when the checkpoint was taken`
      : `it gives ${endedAfter.toLocaleString('en-US')} rows now, and the checkpoint covers ${records.toLocaleString('en-US')}`
  return new UsageError(
    `the source ${uriText} changed before backfill ${id}'s checkpoint since it started: ${what}; rows were inserted, deleted or updated before it (or order_by= gives no single order), and a resume skips rows by their number: it would skip rows never sent, or send others twice`,
    {
      hint: `start a new backfill (another --id; it reads the source from its start, and the pipeline's dedupe drops the records sent again), or read a range that no longer changes (where=, with an order_by= of unique columns)`,
      details: {resume_record: records, ...(endedAfter === undefined ? {} : {records_now: endedAfter})},
    },
  )
}

/** The options that define the record stream: a resumed run must not change them. */
const FIXED = ['from', 'to', 'spec', 'key', 'since', 'until', 'dlq', 'send'] as const
/** The options of pace: a resumed run may change them, and saves the ones it was given for the next. */
const PACE = ['rate', 'burst', 'maxLag', 'group', 'batchSize'] as const

function paceOf(opts: Pick<BackfillOptions, 'rate' | 'burst' | 'maxLag' | 'group'>): Pick<BackfillResult, 'rate' | 'burst' | 'max_lag' | 'group'> {
  return {rate: opts.rate ?? null, burst: opts.burst ?? null, max_lag: opts.maxLag ?? null, group: opts.group ?? null}
}

/**
 * What a checkpoint keeps of a csv: or fixed: source file, in `options.file`: its resolved path,
 * size, and the SHA-256 of its first and last MiB (./file-identity.ts), and with each checkpoint
 * the digest of the last record covered (position.last_sha256). A resume compares both, so that
 * it never goes on at record N of another file (tonight's export at the same path, or the same
 * relative path from another working directory). Checkpoints from before keep working,
 * unverified (debug log).
 */
const FILE = 'file'

/**
 * What a checkpoint keeps of --spec, in `options`: `spec` the path resolved against the working
 * directory it was read from, and `specSha256` the SHA-256 of the file's bytes (loadSpec's
 * `sha256`, as stream run's dead letters carry it). A resume compares the content, not the path
 * text: an edited spec (another normalize rule, another field) would send the rest normalized
 * unlike the part already sent, and `./p.yaml` is `p.yaml`. Checkpoints from before the digest
 * have `spec` as it was typed, and are compared by path.
 */
const SPEC_DIGEST = 'specSha256'

function samePath(a: string, b: string): boolean {
  const real = (p: string) => {
    try {
      return realpathSync(p)
    } catch {
      return resolvePath(p)
    }
  }
  return resolvePath(a) === resolvePath(b) || real(a) === real(b)
}

/**
 * What a checkpoint keeps of the copybooks the backfill reads, in `options.copybooks`, by where
 * each one's path comes from:
 *   from   copybook= of a fixed: --from (relative to the working directory): the layout the
 *          file's records are read with
 *   spec   the spec's source.copybook (relative to the spec's folder), read when a kafka: source
 *          is read with a fixed spec: the layout each message is decoded with
 * each as {path: resolved, sha256: of the file's bytes}. The spec's digest does not cover them
 * (they are files of their own), nor does --from's text (the same copybook= may name an edited
 * file, or, from another working directory, another one). A resume reads them again and compares
 * the content: a copybook edited since (a PIC one byte longer) moves every field after it, and
 * the rest would be sent read with another layout than the part already sent. Checkpoints from
 * before keep working, unverified (debug log). A fixed: source read with a fixed spec is read
 * with its copybook= alone: the spec's source.copybook is what `stream run` decodes the topic with,
 * not read by the backfill.
 */
const COPYBOOKS = 'copybooks'
type CopybookRole = 'from' | 'spec'
interface CopybookDigest {
  path: string
  sha256: string
}
const COPYBOOK_OF: Record<CopybookRole, string> = {from: 'copybook= of --from', spec: "the spec's source.copybook"}

function sha256Of(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** copybook= of a fixed: source, resolved as the fixed: reader resolves it, and its digest. */
function uriCopybook(uri: SourceUri, cwd: string): CopybookDigest | undefined {
  if (uri.scheme !== 'fixed' || uri.params.copybook === undefined) return undefined
  const path = resolvePath(cwd, uri.params.copybook)
  try {
    return {path, sha256: sha256Of(readFileSync(path))}
  } catch (e) {
    // as the reader says it, but before the backfill has a row (or a resumed one runs again)
    throw new UsageError(`source "${uri.text}": cannot read the copybook ${path}: ${(e as Error).message}`, {cause: e, hint: 'check copybook= (relative paths start at the working directory)'})
  }
}

/** The copybook digests of a checkpoint's options; undefined for a checkpoint from before them. */
function savedCopybooks(options: Record<string, unknown>): Partial<Record<CopybookRole, CopybookDigest>> | undefined {
  const v = options[COPYBOOKS]
  if (typeof v !== 'object' || v === null) return undefined
  const out: Partial<Record<CopybookRole, CopybookDigest>> = {}
  for (const role of ['from', 'spec'] as const) {
    const d = (v as Record<string, unknown>)[role] as Partial<CopybookDigest> | undefined
    if (typeof d?.path === 'string' && typeof d.sha256 === 'string') out[role] = {path: d.path, sha256: d.sha256}
  }
  return out
}

/** A resume reads the copybooks it started with, by content (see COPYBOOKS): exit 2 otherwise. */
function assertSameCopybooks(id: string, started: Partial<Record<CopybookRole, CopybookDigest>> | undefined, now: Partial<Record<CopybookRole, CopybookDigest>>, logger: Logger): void {
  for (const role of ['from', 'spec'] as const) {
    const cur = now[role]
    if (!cur) continue
    const then = started?.[role]
    if (!then) {
      logger.debug('backfill.copybook_unverified', {id, copybook: cur.path, copybook_of: role, note: `this checkpoint has no digest of ${COPYBOOK_OF[role]} (the backfill started before checkpoints kept one): an edit of the copybook since is not noticed`})
      continue
    }
    const same = samePath(cur.path, then.path)
    if (cur.sha256 !== then.sha256) {
      throw new UsageError(
        same
          ? `the copybook ${cur.path} (${COPYBOOK_OF[role]}) changed since backfill ${id} started (sha256 ${then.sha256} then, ${cur.sha256} now): the rest would be read with another record layout than the records already sent`
          : `the copybook ${cur.path} (${COPYBOOK_OF[role]}, sha256 ${cur.sha256}) is not the one backfill ${id} started with (${then.path}, sha256 ${then.sha256}): the rest would be read with another record layout than the records already sent`,
        {
          hint:
            `start a new backfill with the copybook as it is now (another --id; it reads the source from its start), or restore ${same ? 'the copybook' : then.path} to what it held (sha256 ${then.sha256}) and resume` +
            (!same && role === 'from' ? ' (copybook= starts at the working directory: resume from the one the backfill started in)' : ''),
          details: {copybook: cur.path, copybook_of: role, copybook_started: then.path, copybook_sha256_started: then.sha256, copybook_sha256_now: cur.sha256},
        },
      )
    }
    if (!same) logger.debug('backfill.copybook_moved', {id, copybook: cur.path, copybook_of: role, copybook_started: then.path, note: 'another path, the same content (sha256): resumed with it'})
  }
}

/**
 * The time-based retention of `topic` in ms: undefined when it has none (retention.ms -1, or a
 * cleanup.policy without delete). A kafka: source's records keep their timestamps, and the broker
 * deletes a segment once its newest timestamp is older than that: history older than the target's
 * retention would be gone minutes after the backfill wrote it.
 */
async function timeRetentionMs(admin: Admin, topic: string): Promise<number | undefined> {
  const r = await admin.describeConfigs({includeSynonyms: false, resources: [{type: 2 /* TOPIC */, name: topic, configNames: ['retention.ms', 'cleanup.policy']}]})
  const entries = r.resources[0]?.configEntries ?? []
  const value = (name: string) => entries.find((e) => e.configName === name)?.configValue
  if (!(value('cleanup.policy') ?? 'delete').split(',').includes('delete')) return undefined
  const ms = Number(value('retention.ms'))
  return Number.isFinite(ms) && ms > 0 ? ms : undefined
}

/** --max-lag paces by a group's lag: one without the other does nothing (or has no N). */
function maxLagWithoutGroup(o: {maxLag?: number | undefined; group?: string | undefined}, resumed?: string): UsageError {
  if (!resumed) return new UsageError('--max-lag and --group go together', {hint: 'add --group <consumer group of the pipeline> to --max-lag N (or drop both)'})
  return o.group === undefined
    ? new UsageError(`--max-lag ${o.maxLag} needs a --group, and backfill ${resumed} has none`, {hint: `add --group <consumer group of the pipeline> to pace the rest of ${resumed} by its lag, or drop --max-lag`})
    : new UsageError(`--group ${o.group} needs a --max-lag, and backfill ${resumed} has none`, {hint: `add --max-lag N to pause the rest of ${resumed} while the group's lag is above N, or drop --group`})
}

/** --burst is tokens on top of --rate's: without a rate there is no bucket, and it did nothing. */
function burstWithoutRate(burst: number, resumed?: string): UsageError {
  return new UsageError(
    resumed ? `--burst ${burst} needs a --rate, and backfill ${resumed} has none` : `--burst ${burst} needs --rate: it is the records that may go at once beyond the rate`,
    {hint: resumed ? `add --rate N/s to pace the rest of ${resumed} (--burst goes on top of it), or drop --burst` : 'add --rate N/s (--burst goes on top of it), or drop --burst'},
  )
}

export async function runBackfill(o: BackfillOptions): Promise<BackfillResult> {
  const started = Date.now()
  const logger = o.logger.namespace('backfill')
  // a resumed backfill may have its group (or its --max-lag) saved: checked once its options are known
  if (!o.resume && (o.maxLag === undefined) !== (o.group === undefined)) throw maxLagWithoutGroup(o)
  if (o.resume && o.dryRun) throw new UsageError('--dry-run cannot resume a backfill', {hint: 'drop --dry-run, or --resume'})
  // a resumed backfill may have its rate saved: checked once its options are known
  if (o.burst !== undefined && o.rate === undefined && !o.resume) throw burstWithoutRate(o.burst)

  const pool: Pool | undefined = o.dryRun ? undefined : await openDatabase(o.settings.databaseUrl, {logger, max: 3, applicationName: 'cutover backfill'})
  const store = pool ? new CheckpointStore(pool) : undefined
  let admin: Admin | undefined
  let lagAdmin: Admin | undefined
  let producer: Producer | undefined
  let lagTimer: NodeJS.Timeout | undefined
  let checkpointTimer: NodeJS.Timeout | undefined
  let reader: ReaderThread | undefined
  /**
   * Set once this run has created (or restarted) its row and until the send loop takes over its
   * last checkpoint: a start that fails in between (the target topic missing, the broker refusing)
   * marks the row failed, its position and counts as they were; it stayed `running`, and the same
   * command with --id then said the backfill exists already and is running.
   */
  let failStart: ((error: string) => Promise<void>) | undefined
  try {
    // the checkpoint's privileges, on this pool, before anything is read or sent (pg/privileges.ts; a dry run writes none)
    if (pool) await requirePrivileges(pool, 'backfill', BACKFILL_NEEDS)
    // ---- the backfill's identity: new, or resumed from its row
    let opts: Omit<BackfillOptions, 'settings' | 'logger'> = {...o}
    let id = o.resume ?? o.id ?? newId()
    let resumedFrom: BackfillPosition | null = null
    let base = emptyCounts()
    let runs = 1
    /** the spec the resumed backfill started with: its saved path and digest */
    let startedSpec: {path: string; sha256: string} | undefined
    /** the copybooks the resumed backfill started with (undefined: a checkpoint from before their digests) */
    let startedCopybooks: Partial<Record<CopybookRole, CopybookDigest>> | undefined
    /** the resumed backfill's saved options */
    let savedOptions: Record<string, unknown> | undefined
    if (o.resume) {
      await store!.lock(id)
      const row = await store!.load(id)
      if (!row) throw new UsageError(`no backfill ${id} in cutover.backfills`, {hint: 'give the id printed when the backfill started (or find it with SELECT id, status FROM cutover.backfills)'})
      const saved = row.options as Partial<BackfillOptions> & {[SPEC_DIGEST]?: unknown}
      if (typeof saved.spec === 'string' && typeof saved[SPEC_DIGEST] === 'string') startedSpec = {path: saved.spec, sha256: saved[SPEC_DIGEST]}
      else if (saved.spec !== undefined) {
        logger.debug('backfill.spec_unverified', {id, spec: saved.spec, note: 'this checkpoint has no digest of its spec (the backfill started before checkpoints kept one): --spec is compared by its path only, and an edit of the file since is not noticed'})
      }
      for (const k of FIXED) {
        const given = o[k]
        if (given === undefined || saved[k] === undefined) continue
        // --spec by its content, once loaded (below); without a digest by its path, as before
        if (k === 'spec' && (startedSpec || samePath(String(given), String(saved.spec)))) continue
        if (String(given) !== String(saved[k])) {
          throw new UsageError(`--${k} ${String(given)} differs from the backfill's ${String(saved[k])}`, {hint: `a resumed backfill reads the same records: drop --${k} or start a new backfill`})
        }
      }
      opts = {...saved, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)), from: row.source, to: row.target}
      if (o.burst !== undefined && opts.rate === undefined) throw burstWithoutRate(o.burst, id)
      if ((opts.maxLag === undefined) !== (opts.group === undefined)) throw maxLagWithoutGroup(opts, id)
      startedCopybooks = savedCopybooks(row.options)
      savedOptions = row.options
      base = {...emptyCounts(), ...row.counts}
      // a kafka: source's checkpoint counts the source records it covers (KAFKA_COUNT, below); one
      // from before kept the ordinal of its last record in that run's read order: shown as the count
      resumedFrom = parseSourceUri(row.source).scheme === 'kafka' ? {...row.position, records: base.read + base.out_of_range} : row.position
      runs = row.runs + 1
      if (row.status === 'completed') {
        logger.info('backfill.already_completed', {id})
        return {
          id, source: redactString(row.source), target: row.target, status: 'completed', dry_run: false, ...base, dlq_topic: String(saved.dlq ?? ''),
          elapsed_ms: Date.now() - started, rate_achieved: 0, paused_ms: 0, pace_changes: 0, resumed_from: resumedFrom, runs: row.runs, ...paceOf(saved),
          total_estimate: null, total_estimate_source: null, max_message_bytes: null, max_message_bytes_source: null, target_exists: null, dlq_exists: null,
        }
      }
    }
    if (!opts.from) throw new UsageError('--from <source URI> is required', {hint: 'for example --from "csv:data/txn.csv?delimiter=;"'})
    if (!opts.to) throw new UsageError('--to <topic> is required', {hint: 'name the topic to fill'})
    const target = opts.to
    const loaded: LoadedSpec | undefined = opts.spec ? await loadSpec(opts.spec) : undefined
    if (loaded && startedSpec && loaded.sha256 !== startedSpec.sha256) {
      const same = samePath(loaded.file, startedSpec.path)
      throw new UsageError(
        same
          ? `the spec ${loaded.file} changed since backfill ${id} started (sha256 ${startedSpec.sha256} then, ${loaded.sha256} now): the rest would be normalized unlike the records already sent`
          : `--spec ${loaded.file} (sha256 ${loaded.sha256}) is not the spec backfill ${id} started with (${startedSpec.path}, sha256 ${startedSpec.sha256}): the rest would be normalized unlike the records already sent`,
        {
          hint: `start a new backfill with the spec as it is now (another --id; it reads the source from its start), or restore ${same ? 'the spec file' : startedSpec.path} to what it held (sha256 ${startedSpec.sha256}) and resume`,
          details: {spec: loaded.file, spec_started: startedSpec.path, spec_sha256_started: startedSpec.sha256, spec_sha256_now: loaded.sha256},
        },
      )
    }
    if (loaded && startedSpec && !samePath(loaded.file, startedSpec.path)) {
      logger.debug('backfill.spec_moved', {id, spec: loaded.file, spec_started: startedSpec.path, note: 'another path, the same content (sha256): resumed with it'})
    }
    const spec = loaded?.spec
    const dlqTopic = opts.dlq ?? spec?.dlq.topic ?? `${target}.dlq`

    // ---- the source, with --since/--until as a kafka time range or an event-time filter
    const uri: SourceUri = parseSourceUri(opts.from)
    const isKafka = uri.scheme === 'kafka'
    // a kafka: source is read on the cluster --to writes to (KAFKA_BROKERS): the same topic would
    // get a second copy of every record it holds, appended behind them
    if (isKafka && uri.target === target) {
      throw new UsageError(`--from ${opts.from} reads the topic that --to ${target} writes: every record in it would be appended to it again (the topic doubled)`, {
        hint: `backfill into another topic (--to ${target}.replay, created first), or read the topic whose history ${target} should get`,
      })
    }
    const since = opts.since
    const until = opts.until
    let eventTimeField: string | undefined
    if (since !== undefined || until !== undefined) {
      if (isKafka) {
        uri.params = {...uri.params, ...(since !== undefined ? {from: new Date(since).toISOString()} : {}), ...(until !== undefined ? {to: new Date(until).toISOString()} : {})}
      } else if (spec?.event_time) {
        eventTimeField = spec.event_time
      } else {
        throw new UsageError('--since/--until need a kafka: source (record timestamps) or --spec with event_time', {hint: 'add --spec <pipeline.yaml> whose event_time names the timestamp field'})
      }
    }

    // ---- keys and values
    const normalize = spec ? createNormalizer(spec.fields) : undefined
    // the event time alone, for a record the normalizer rejects: in or out of --since/--until
    const timeOnly = spec && eventTimeField ? createNormalizer({[eventTimeField]: spec.fields[eventTimeField]!}) : undefined
    const outOfRange = (t: number) => (since !== undefined && !(t >= since)) || (until !== undefined && !(t < until))
    const serialize = spec ? recordSerializer(Object.keys(spec.fields)) : undefined
    const sendNormalized = opts.send === 'normalized'
    if (opts.send !== undefined && !spec) throw new UsageError('--send chooses how records accepted by --spec are sent', {hint: 'add --spec <pipeline.yaml>, or drop --send'})
    const keyFields = opts.key ? opts.key.split(',').map((s) => s.trim()) : spec ? namesOf(spec.key) : []
    if (spec) for (const k of keyFields) if (!(k in spec.fields)) throw new UsageError(`--key ${k} is not a field of the spec`, {hint: `one of: ${Object.keys(spec.fields).join(', ')}`})
    // --send normalized: a dead letter keeps the fields as JSON (kafka: the value bytes), as before
    const asRead = loaded && !sendNormalized ? recordAsRead(loaded, uri) : (r: RawRecordOk) => (isKafka && r.raw ? r.raw : JSON.stringify(r.fields))
    // the encoding of what asRead gives a file's record, when it is not UTF-8 text: on its dead letter
    const asReadEncoding = loaded && !sendNormalized ? await fileDeadLetterEncoding(loaded, uri, o.cwd) : undefined
    // a kafka: source with a csv or fixed spec: each message decoded as stream run decodes it (read
    // as text, not tried as JSON first, unless the URI says format=)
    const decoded = isKafka && loaded ? kafkaMessageFields(loaded) : undefined
    const messageFields = decoded?.fields
    if (messageFields && uri.params.format === undefined) uri.params = {...uri.params, format: 'text'}
    // and a json spec's messages in its source.encoding, as stream run reads them (unless the URI says encoding=)
    if (isKafka && spec && !messageFields && uri.params.encoding === undefined && spec.source.encoding) uri.params = {...uri.params, encoding: spec.source.encoding}
    // the raw field behind the key, for keying dead letters like their clean siblings
    const rawKeyFields = spec ? keyFields.map((k) => spec.fields[k]!.from) : keyFields
    const keyFrom = keyFunction(keyFields)
    // a raw kafka: replay (no spec, the records' own keys) is a copy: every record goes as it is,
    // bytes unchanged, whatever its value (Avro, text, JSON that is no object), and a tombstone as a
    // tombstone; nothing is judged without a spec (the pipeline reading the target does that).
    // With a spec a tombstone is a DECODE_ERROR, as stream run's decode stage takes it (no value to
    // normalize), and with --key a record whose value is no JSON object has no field to be keyed
    // by: dead-lettered with its key, as before
    const rawCopy = isKafka && !spec && keyFields.length === 0
    // ---- the copybooks the records are read with: kept by content, a resume reads the same ones
    const fromCopybook = uriCopybook(uri, o.cwd ?? process.cwd())
    const copybooks: Partial<Record<CopybookRole, CopybookDigest>> = {...(fromCopybook ? {from: fromCopybook} : {}), ...(decoded?.copybook ? {spec: decoded.copybook} : {})}
    if (o.resume) assertSameCopybooks(id, startedCopybooks, copybooks, logger)
    if (uri.scheme === 'pg' && !uri.params.order_by && !/order\s+by/i.test(uri.params.query ?? '')) {
      logger.warn('backfill.pg_unordered', {note: 'without order_by= (or ORDER BY in the query) a resumed backfill may skip or repeat rows: PostgreSQL does not promise the same order twice'})
    }
    // its probe of a pg: source's columns fails as the read would: exit 2 with the reader's hint (pgSourceError, PG_DATA)
    await assertColumnsRead(uri, {databaseUrl: o.settings.databaseUrl, ...(o.cwd ? {cwd: o.cwd} : {}), ...(spec ? {sensitiveColumns: sensitiveInputs(spec.fields)} : {})}, loaded, keyFields).catch(async (e: unknown) => {
      throw pgSourceDataError(await pgSourceError(e, uri, o.settings.databaseUrl), uri)
    })
    if (keyFields.length === 0 && !isKafka) logger.warn('backfill.unkeyed', {note: 'no --key and no spec key: records are spread over partitions without per-key order'})
    // ---- the file read: kept by its size and the digests of its ends, a resume reads the same one (see FILE)
    const isFile = uri.scheme === 'csv' || uri.scheme === 'fixed'
    const filePath = isFile ? sourcePath(uri.target, o.cwd ?? process.cwd()) : undefined
    const startedFile = savedFingerprint(savedOptions?.[FILE])
    let fingerprint: FileFingerprint | undefined
    if (filePath && store) {
      const restore = startedFile ? `restore the file backfill ${id} started from (${startedFile.path}) and resume, or start a new backfill (another --id)` : undefined
      fingerprint = await fileFingerprint(filePath, uri.text, startedFile?.sample_bytes ?? FILE_SAMPLE_BYTES, restore)
      if (o.resume && startedFile) assertSameFile(id, uri.text, startedFile, fingerprint, samePath(filePath, startedFile.path))
      else if (o.resume) logger.debug('backfill.file_unverified', {id, file: filePath, note: 'this checkpoint has no digest of its source file (the backfill started before checkpoints kept one): another file at this path is not noticed'})
      if (o.resume && startedFile && !samePath(filePath, startedFile.path)) logger.debug('backfill.file_moved', {id, file: filePath, file_started: startedFile.path, note: 'another path, the same size and digests: resumed with it'})
    }
    // the record the checkpoint was taken after, checked when it is read again (before anything is sent)
    // a pg: source too (PG_RESUME): a resume skips rows by number, so the row at the checkpoint's
    // number must still be the row it was taken after
    const isPg = uri.scheme === 'pg'
    const checkedPath = filePath ?? (isPg ? uri.target : undefined)
    const resumeCheck = checkedPath !== undefined && resumedFrom?.last_sha256 && resumedFrom.records > 0 ? {id, path: checkedPath, sha256: resumedFrom.last_sha256, ...(resumedFrom.last ? {last: resumedFrom.last} : {})} : undefined
    /** the refusal of a resume whose record at the checkpoint is not the one it was taken after (or the source ends before it) */
    const resumeMismatch = (records: number, endedAfter?: number) => (isPg ? pgResumeMismatch(id, uri.text, records, resumeCheck?.last, endedAfter) : resumePointMismatch(id, uri.text, resumeCheck!.path, records, resumeCheck?.last, endedAfter))

    // ---- identity row
    if (store && !o.resume) {
      await store.lock(id)
      const saved: Record<string, unknown> = {}
      for (const k of [...FIXED, 'rate', 'burst', 'maxLag', 'group', 'batchSize'] as const) if (opts[k] !== undefined) saved[k] = opts[k]
      saved.dlq = dlqTopic
      if (loaded) {
        saved.spec = resolvePath(loaded.file)
        saved[SPEC_DIGEST] = loaded.sha256
      }
      if (Object.keys(copybooks).length > 0) saved[COPYBOOKS] = copybooks
      if (fingerprint) saved[FILE] = fingerprint
      await store.create({id, source: opts.from, target, options: saved, position: {records: 0}, counts: emptyCounts(), status: 'running', paused_ms: 0, elapsed_ms: 0}, whoAmI())
    } else if (store) {
      // the pace this run was given is the backfill's from now on: the next resume (and its output) keeps it
      const given = PACE.filter((k) => o[k] !== undefined && o[k] !== savedOptions?.[k])
      await store.restart(id, given.length > 0 ? {...savedOptions, ...Object.fromEntries(given.map((k) => [k, o[k]]))} : undefined)
      if (given.length > 0) logger.info('backfill.pace_saved', {id, ...Object.fromEntries(given.map((k) => [k, o[k]]))})
    }
    if (store) {
      const at: BackfillPosition = resumedFrom ?? {records: 0}
      const counts = base
      failStart = (error) => store.save(id, at, counts, 0, Date.now() - started, 'failed', error)
    }
    if (o.dryRun) id = `${id}-dry-run`
    // PG_ESTIMATE: a pg: source's total, for the percentage and ETA of progress (a csv:/fixed: file's:
    // see CSV_ESTIMATE): PostgreSQL's statistics, never a count(*), which takes about as long as the read
    const estimate = isPg ? await estimatePgRows(uri, {databaseUrl: o.settings.databaseUrl, logger}) : undefined
    if (estimate && o.progress) o.progress.total = {value: estimate.rows, estimate: true, unit: 'rows'}
    o.onStart?.({id, source: redactString(opts.from), target, resumedFrom, rate: opts.rate ?? null})
    logger.info('backfill.start', {id, source: uri.text, target, resumed_from: resumedFrom, rate: opts.rate ?? null, max_lag: opts.maxLag ?? null, ...(loaded ? {spec: loaded.file, spec_sha256: loaded.sha256} : {}), ...(Object.keys(copybooks).length > 0 ? {copybooks} : {}), ...(estimate ? {total_estimate: estimate.rows, total_estimate_source: estimate.source} : {})})

    const batchSize = Math.max(
      1,
      Math.min(
        opts.batchSize ?? (opts.rate !== undefined ? Math.ceil(opts.rate / 20) : 2000),
        opts.maxLag !== undefined ? Math.max(1, Math.floor(opts.maxLag / 5)) : Number.MAX_SAFE_INTEGER,
        2000,
      ),
    )
    // csv:/fixed: without --spec: read, parse and serialize in a worker thread (./reader-worker.ts),
    // which hands over each batch's messages packed in one transferred buffer; it starts as soon as
    // the target's partitions are known, so that its start-up overlaps connecting the producer
    const workerUrl = !spec && (uri.scheme === 'csv' || uri.scheme === 'fixed') ? readerWorkerUrl() : undefined
    const skipRecords = resumedFrom?.records ?? 0
    const startReader = (partitions: number) => {
      reader = startReaderThread(workerUrl!, {uri: opts.from!, ...(o.cwd ? {cwd: o.cwd} : {}), keyFields, batchSize, skipRecords, ...(resumeCheck ? {resumeCheck} : {}), partitions, ahead: 4})
    }

    // ---- Kafka
    let dlqExists = true
    /** the command that creates the DLQ topic, when it does not exist */
    let createDlq: string | undefined
    /** the target's time-based retention, for a kafka: source (see timeRetentionMs) */
    let retentionMs: number | undefined
    let olderThanRetention = false
    /** max.message.bytes of the target and the DLQ topic as the broker says them (either may be missing) */
    let saidMaxBytes = new Map<string, number>()
    /** --dry-run: whether the DLQ topic exists (and the command that creates it), as the broker said; undefined when no broker answered */
    let dryRunDlq: {exists: boolean; create: string | undefined} | undefined
    /** --dry-run: whether the target exists, as the broker said; undefined when no broker answered */
    let dryRunTarget: boolean | undefined
    const kafka = createKafka(o.settings.kafka, {logger, mode: 'resilient', clientId: 'cutover-backfill'})
    if (!o.dryRun) {
      // one quick attempt first: an unreachable broker is exit 3 in seconds, not after the resilient client's retries (~35 s)
      await probeKafka(o.settings.kafka, logger)
      admin = await connectAdmin(kafka, o.settings.kafka)
      const topics = new Set(await admin.listTopics().catch((e: unknown) => Promise.reject(mapKafkaError(e, o.settings.kafka, 'list topics'))))
      if (!topics.has(target)) {
        throw new UsageError(`topic ${target} does not exist on ${o.settings.kafka.brokers.join(',')}`, {
          hint: `create it first, with as many partitions as the pipeline that reads it needs (${await createTopicHint(admin, o.settings.kafka, target)})`,
        })
      }
      dlqExists = topics.has(dlqTopic)
      if (!dlqExists) {
        // as stream run creates a DLQ: as many partitions as the topic it reads
        createDlq = await createTopicHint(admin, o.settings.kafka, dlqTopic, {partitionsOf: target})
      }
      if (isKafka) retentionMs = await timeRetentionMs(admin, target).catch((e: unknown) => void logger.debug('backfill.retention_unknown', {target, error: e}))
      // what each topic takes per record batch: a send is cut to fit it (OrderedSender), a record that
      // cannot fit is dead-lettered (RECORD_TOO_LARGE); Kafka's default when the broker does not say
      const limitTopics = dlqExists ? [target, dlqTopic] : [target]
      saidMaxBytes = await topicMaxMessageBytes(admin, limitTopics).catch((e: unknown) => {
        logger.warn('backfill.max_message_bytes_unknown', {topics: limitTopics, error: e, note: `sends are cut to Kafka's default max.message.bytes (${KAFKA_DEFAULT_MAX_MESSAGE_BYTES})`})
        return new Map<string, number>()
      })
      if (workerUrl) {
        // the reader thread partitions keyed records itself (see ./reader-worker.ts)
        startReader(keyFields.length === 0 ? 0 : await admin.fetchTopicMetadata({topics: [target]}).then((m) => m.topics[0]?.partitions.length ?? 0, () => 0))
      }
      if (!dlqExists) {
        // with a spec (or --dlq given) rejects are expected; without, only unreadable records would
        // go there. Not opts.dlq: a resumed backfill's saved options always hold its DLQ topic
        const log = opts.spec || o.dlq ? logger.warn : logger.info
        log('backfill.dlq_missing', {dlq: dlqTopic, note: 'the first rejected record stops the backfill (exit 2) until it exists'})
      }
      producer = createBackfillProducer(o.settings.kafka, logger)
      try {
        await producer.connect()
      } catch (e) {
        throw mapKafkaError(e, o.settings.kafka, 'connect producer')
      }
    } else {
      // a dry run sends nothing, but counts the records the target would refuse (RECORD_TOO_LARGE) as
      // the sends would, against the topics' max.message.bytes: the broker's when it says them at
      // once (one quick attempt), else Kafka's default, with a warning
      const asked = await dryRunTopics(o.settings.kafka, target, dlqTopic, logger)
      if (asked) saidMaxBytes = asked.max
      // whether a real run could start, and dead-letter what this one rejects: told at the end
      dryRunDlq = asked ? {exists: asked.dlqExists, create: asked.createDlq} : undefined
      dryRunTarget = asked?.targetExists
    }
    // what each send is cut to, and what a record over it is (OrderedSender, predictTooLarge): Kafka's default where the broker did not say
    const maxMessageBytes = {target: saidMaxBytes.get(target) ?? KAFKA_DEFAULT_MAX_MESSAGE_BYTES, dlq: saidMaxBytes.get(dlqTopic) ?? KAFKA_DEFAULT_MAX_MESSAGE_BYTES}
    if (workerUrl && !reader) startReader(0) // --dry-run
    // ---- pace
    const pacer = new Pacer({
      ...(opts.rate !== undefined ? {rate: opts.rate} : {}),
      ...(opts.burst !== undefined ? {burst: opts.burst} : {}),
      ...(opts.maxLag !== undefined ? {maxLag: opts.maxLag} : {}),
      logger,
      ...(o.onPace ? {onChange: o.onPace} : {}),
    })
    const signal = o.signal
    if (opts.maxLag !== undefined && !o.dryRun) {
      lagAdmin = await connectAdmin(kafka, o.settings.kafka)
      // a --group that names no consumer (a typo, or the pipeline not started yet) is not an error,
      // but its lag is the backfill's own records: it pauses once they reach --max-lag
      try {
        const [described] = (await lagAdmin.describeGroups([opts.group!])).groups
        const committed = (await lagAdmin.fetchOffsets({groupId: opts.group!, topics: [target]})).flatMap((t) => t.partitions).some((p) => Number(p.offset) >= 0)
        if ((described?.members.length ?? 0) === 0 && !committed) {
          logger.warn('backfill.group_unknown', {group: opts.group, topic: target, note: `no member of ${opts.group} consumes ${target} and it has committed nothing there: the backfill pauses once its own records reach --max-lag ${opts.maxLag}; check --group, or start the pipeline`})
        }
      } catch (e) {
        logger.debug('backfill.group_check_failed', {group: opts.group, error: e})
      }
      const window = new LagWindow(10)
      let sampling = false
      let failures = 0
      const sample = async () => {
        if (sampling) return
        sampling = true
        try {
          const mark = pacer.markSample()
          const s = await sampleGroupLag(lagAdmin!, opts.group!, [target])
          pacer.onLag(window.add(s), mark)
          failures = 0
        } catch (e) {
          if (failures++ % 10 === 0) logger.warn('backfill.lag.sample_failed', {group: opts.group, error: e})
        } finally {
          sampling = false
        }
      }
      await sample()
      lagTimer = setInterval(() => void sample(), o.lagIntervalMs ?? 1000)
    }

    // ---- acknowledged state and checkpoints
    const acked = cloneCounts(base)
    const ackedPos: BackfillPosition = resumedFrom
      ? {records: resumedFrom.records, ...(resumedFrom.partitions ? {partitions: {...resumedFrom.partitions}} : {}), ...(resumedFrom.last ? {last: resumedFrom.last} : {}), ...(resumedFrom.last_sha256 ? {last_sha256: resumedFrom.last_sha256} : {})}
      : {records: 0}
    let firstSendAt = 0
    let lastAckAt = 0
    // the pacer's paused time when the first batch went and when the last was acknowledged: only
    // the pauses between the two are taken out of rate_achieved's span (not a pause before the
    // first send, nor one a stop interrupted after the last acknowledgement)
    let pausedAtFirstSend = 0
    let pausedAtLastAck = 0
    let sentThisRun = 0
    /**
     * KAFKA_COUNT: the records a checkpoint covers. A file or pg: source is read in one order
     * every run, and a resume skips by that number: the ordinal of the last record acknowledged.
     * A kafka: source's reader interleaves its partitions differently each run, and a resume skips
     * by partition offset (reading the skipped records again, in another order): the ordinal of
     * the last record in this run's order counts whichever skipped records came before it, so it
     * went backwards between two resumes, or past what was sent. There the records are counted:
     * every source record handled, over all runs (read + out_of_range), never less than before.
     */
    const coveredRecords = (meta: {records: number}) => (isKafka ? acked.read + acked.out_of_range : meta.records)
    const onAck = (m: BatchMeta, b: OutBatch<BatchMeta>) => {
      addCounts(acked, m.counts)
      ackedPos.records = coveredRecords(m)
      if (Object.keys(m.partitions).length > 0) ackedPos.partitions = {...ackedPos.partitions, ...m.partitions}
      if (m.last) {
        ackedPos.last = m.last
        const sha = m.lastSha256 ?? ((isFile || isPg) && m.lastRecord ? recordSha256(m.lastRecord) : undefined)
        if (sha) ackedPos.last_sha256 = sha
        else delete ackedPos.last_sha256
      }
      sentThisRun += b.records.length
      lastAckAt = Date.now()
      pausedAtLastAck = pacer.pausedMs
      updateProgress()
    }
    let bytesTotal = 0
    let linesTotal = 0
    if ((uri.scheme === 'csv' || uri.scheme === 'fixed') && o.progress) {
      const path = resolvePath(o.cwd ?? process.cwd(), uri.target)
      bytesTotal = await stat(path).then((st) => st.size, () => 0)
      // csv positions carry lines, not bytes: count the file's lines once (only for a progress bar)
      if (uri.scheme === 'csv' && o.countTotal) linesTotal = await countLines(path).catch(() => 0)
      // CSV_ESTIMATE: off a terminal (a script, a CI job) the file is not read twice: its records are
      // estimated from its first 64 KiB, for "of about N records" (a resumed run's earlier records
      // count towards it: ProgressTracker.doneBefore). Records, as `done` counts them: a quoted field
      // spanning lines makes the estimate high, never a count of lines beside a count of records
      if (uri.scheme === 'csv' && !o.countTotal) {
        const records = await estimateCsvRecords(uri, o.cwd ? {cwd: o.cwd} : {})
        if (records) o.progress.total = {value: records, estimate: true, unit: 'records'}
      }
      // a fixed-length file's records are its size over the record length, exactly (with rdw=true
      // they are of their own lengths: no total); a last partial record is one more, a reject
      if (uri.scheme === 'fixed' && bytesTotal > 0) {
        const fixed = await fixedOptionsFromUri(uri, o.cwd ? {cwd: o.cwd} : {}).catch(() => undefined)
        if (fixed && !fixed.rdw) o.progress.total = {value: Math.ceil(bytesTotal / fixed.recordLength), estimate: false, unit: 'records'}
      }
    }
    const updateProgress = () => {
      if (!o.progress) return
      const bytesDone = ackedPos.last?.byteOffset
      o.progress.extra = {
        sent: acked.sent,
        rejected: acked.rejected,
        ...(pacer.pace.lag !== null ? {lag: pacer.pace.lag} : {}),
        paused_ms: pacer.pausedMs,
        ...(bytesTotal > 0 && bytesDone !== undefined ? {bytes_done: bytesDone, bytes_total: bytesTotal} : {}),
        ...(linesTotal > 0 && ackedPos.last?.line !== undefined ? {bytes_done: ackedPos.last.line, bytes_total: linesTotal} : {}),
      }
    }
    // one batch outstanding: kafkajs' idempotent producer numbers a batch's records when it builds
    // the request and takes the numbers back when the request fails, so a retry of one batch while
    // a second is in flight reuses the second's sequence numbers (the broker then takes the retry
    // for a duplicate and drops it, or rejects the pair out of order): tulios/kafkajs#598
    /** A record the target cannot take even alone and compressed: its RECORD_TOO_LARGE dead letter (the value kept when the DLQ takes it: OrderedSender). */
    const tooLarge = (b: OutBatch<BatchMeta>, m: OutMessage, index: number, bytes: number, compressed: number): OutMessage => {
      const at = m.headers[BACKFILL_POSITION_HEADER]
      const position = at === undefined ? 'a record' : String(at)
      const c = b.meta.counts
      c.sent--
      c.rejected++
      c.rejected_by_code.RECORD_TOO_LARGE = (c.rejected_by_code.RECORD_TOO_LARGE ?? 0) + 1
      const fix = raiseMaxMessageBytesCommand(o.settings.kafka, target, compressed + 1024)
      const message = `${position}: the record is ${bytes} bytes (${compressed} compressed), more than ${target} takes in one record batch (max.message.bytes ${maxMessageBytes.target}): raise it (${fix}), then send the record again`
      if (!dlqExists) {
        throw new UsageError(`${message}; and its dead-letter topic ${dlqTopic} does not exist`, {
          hint: `create ${dlqTopic}${createDlq ? ` (${createDlq})` : ''}, or name another with --dlq or the spec's dlq.topic; then continue with --resume ${id}`,
        })
      }
      // its own ordinal as cutover.source.offset: dead letters of one batch, failed in the same ms, are told apart by it (dlq/reader.ts deadLetterIdentity)
      return deadLetterMessage(m.timestamp ?? String(Date.now()), 'RECORD_TOO_LARGE', message, 'sink', m.key, m.value, m.headers, recordOrdinal(b.meta, index) ?? ordinal)
    }
    const sender = producer ? new OrderedSender<BatchMeta>(producer, target, dlqTopic, onAck, 1, {...maxMessageBytes, tooLarge}) : undefined
    /** --dry-run: the batch's records the target would refuse, moved from sent to rejected as OrderedSender's sends would (tooLarge) */
    const predictTooLarge = async (b: OutBatch<BatchMeta>): Promise<void> => {
      const budget = sendsBudget(maxMessageBytes)
      for (let i = 0; i < b.records.length; i++) {
        const m = b.records[i]!
        const bytes = messageBytes(m)
        if (bytes <= budget) continue
        const fit = await oversizeFit(m, bytes, maxMessageBytes.target)
        if (fit.fit === 'too_large') tooLarge(b, m, i, fit.bytes, fit.compressed)
      }
    }
    let saving: Promise<void> | undefined
    const save = (status: BackfillStatus = 'running', error?: string): Promise<void> => {
      if (!store) return Promise.resolve()
      const prev = saving ?? Promise.resolve()
      const pos = {...ackedPos, ...(ackedPos.partitions ? {partitions: {...ackedPos.partitions}} : {})}
      const counts = cloneCounts(acked)
      // after the one before, whether that one failed or not: a rejected save must not reject
      // every later one (the final one included), or the row stays at an old position and
      // --resume sends the rest again
      saving = prev.catch(() => {}).then(() => store.save(id, pos, counts, pacer.pausedMs, Date.now() - started, status, error))
      return saving
    }
    /** The last checkpoint: retried, since everything after the row's position is sent again by --resume. */
    const saveFinal = async (status: BackfillStatus, error?: string): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await save(status, error)
        } catch (e) {
          if (attempt >= 5) throw e
          logger.warn('backfill.checkpoint_failed', {error: e, attempt, final: true})
          await new Promise((r) => setTimeout(r, 200 * 2 ** attempt))
        }
      }
    }
    if (store) {
      checkpointTimer = setInterval(() => {
        save().catch((e: unknown) => logger.warn('backfill.checkpoint_failed', {error: e}))
      }, o.checkpointMs ?? 2000)
    }

    // ---- the read loop
    const skipPartitions = new Map(Object.entries(resumedFrom?.partitions ?? {}).map(([p, off]) => [Number(p), BigInt(off)]))
    const pipelineName = spec?.name ?? 'backfill'
    const pipelineVersion = loaded?.sha256 ?? ''
    let ordinal = 0
    const idHeader = Buffer.from(id) // one buffer shared by every record's header
    // a resumed run's records before it count towards the total, not towards this run's rate (its ETA)
    if (o.progress) o.progress.done = o.progress.doneBefore = base.read + base.out_of_range
    let batch: OutBatch<BatchMeta> = {records: [], dead: [], meta: {records: 0, partitions: {}, last: undefined, counts: emptyCounts(), ordinals: []}}
    const fresh = (): OutBatch<BatchMeta> => ({records: [], dead: [], meta: {records: 0, partitions: {}, last: undefined, counts: emptyCounts(), ordinals: []}})
    let stoppedEarly = false

    const deadLetterMessage = (timestamp: string, code: string, message: string, stage: 'decode' | 'normalize' | 'sink', key: string | Buffer | null, value: string | Buffer | null, headers: IHeaders, at = ordinal): OutMessage => {
      const item = {
        message: {key: key === null ? null : Buffer.from(key), value: value === null ? null : Buffer.from(value), headers, timestamp, offset: String(at), attributes: 0} as unknown as KafkaMessage,
        topic: target,
        partition: -1,
        offset: BigInt(at),
        status: 'dead',
        dead: {code, message, stage, field: null},
      } as WorkItem
      const stored = deadLetterHeaders(item, {pipeline: pipelineName, version: pipelineVersion, attempts: 1, failedAt: new Date()})
      return {key, value, headers: toKafkaHeaders(stored)}
    }
    const deadLetter = (r: RawRecord, code: string, message: string, stage: 'decode' | 'normalize', key: string | Buffer | null, value: string | Buffer | null, headers: IHeaders) => {
      if (!dlqExists) {
        throw new UsageError(`${formatPosition(r.position)} was rejected (${code}) and its dead-letter topic ${dlqTopic} does not exist`, {
          hint: `create ${dlqTopic}${createDlq ? ` (${createDlq})` : ''}, or name another with --dlq or the spec's dlq.topic; then continue with --resume ${id}`,
        })
      }
      batch.dead.push(deadLetterMessage(r.position.timestamp ?? String(Date.now()), code, message, stage, key, value, headers))
    }

    const flush = async (): Promise<boolean> => {
      const b = batch
      batch = fresh()
      // nothing read since the last batch (the source ended on a batch boundary): nothing to acknowledge
      if (b.meta.records === 0 && b.records.length === 0 && b.dead.length === 0) return true
      if (o.dryRun || !sender) {
        if (o.dryRun) await predictTooLarge(b)
        addCounts(acked, b.meta.counts)
        ackedPos.records = coveredRecords(b.meta)
        updateProgress()
        return true
      }
      if (b.records.length > 0 && !(await pacer.acquire(b.records.length, signal))) return false
      if (firstSendAt === 0 && b.records.length > 0) {
        firstSendAt = Date.now()
        pausedAtFirstSend = pacer.pausedMs
      }
      try {
        await sender.submit(b)
      } catch (e) {
        throw mapKafkaError(e, o.settings.kafka, `send to ${target}`)
      }
      return true
    }

    failStart = undefined // from here the send loop's own last checkpoint says how the run ended
    try {
      if (reader) {
        for await (const pb of reader.batches()) {
          if (signal?.aborted) {
            stoppedEarly = true
            break
          }
          const buf = Buffer.from(pb.buf.buffer, pb.buf.byteOffset, pb.buf.byteLength)
          const ends = pb.ends
          const nullKeys = pb.nullKeys
          const parts = pb.parts
          const out = batch.records
          let start = 0
          let nk = 0
          for (let i = 0, j = 0; i < pb.n; i++, j += 3) {
            const keyEnd = ends[j]!
            const valueEnd = ends[j + 1]!
            const posEnd = ends[j + 2]!
            let key: Buffer | null
            if (nk < nullKeys.length && nullKeys[nk] === i) {
              nk++
              key = null
            } else {
              key = buf.subarray(start, keyEnd)
            }
            const headers = {[BACKFILL_ID_HEADER]: idHeader, [BACKFILL_POSITION_HEADER]: buf.subarray(valueEnd, posEnd)}
            const p = parts ? parts[i]! : -1
            out.push(p >= 0 ? {key, value: buf.subarray(keyEnd, valueEnd), partition: p, headers} : {key, value: buf.subarray(keyEnd, valueEnd), headers})
            start = posEnd
          }
          for (const d of pb.dead) {
            ordinal = d.ordinal
            const raw = d.raw ? Buffer.from(d.raw.buffer, d.raw.byteOffset, d.raw.byteLength) : undefined
            const r: RawRecord = {ok: false, code: d.code, message: d.message, position: d.position, ...(raw ? {raw} : {})}
            const headers: IHeaders = {[BACKFILL_ID_HEADER]: idHeader, [BACKFILL_POSITION_HEADER]: formatPosition(d.position)}
            if (raw && d.rawEncoding) headers[SOURCE_ENCODING_HEADER] = d.rawEncoding
            deadLetter(r, d.code, d.message, 'decode', null, raw ?? null, headers)
          }
          batch.meta = {records: pb.meta.records, partitions: {}, last: pb.meta.last, lastSha256: pb.meta.lastSha256, counts: pb.meta.counts, firstOrdinal: pb.meta.records - pb.processed + 1, deadOrdinals: pb.dead.map((d) => d.ordinal)}
          if (o.progress) o.progress.done += pb.processed
          if (!(await flush())) {
            stoppedEarly = true
            break
          }
        }
      } else {
        // a kafka: source resumes each partition after its checkpoint offset: the reader does not fetch what it covers
        const readerCtx: KafkaReaderContext = {databaseUrl: o.settings.databaseUrl, kafka: o.settings.kafka, logger, ...(signal ? {signal} : {}), ...(o.cwd ? {cwd: o.cwd} : {}), ...(spec ? {sensitiveColumns: sensitiveInputs(spec.fields)} : {}), ...(isKafka && skipPartitions.size > 0 ? {startAfter: skipPartitions} : {})}
        outer: for await (const records of untilStopped(pgDataErrors(recordBatches(openSource(uri, readerCtx)), uri), signal)) {
          for (const read of records) {
            ordinal++
            const pos = read.position
            if (isKafka && pos.partition !== undefined && pos.offset !== undefined) {
              const done = skipPartitions.get(pos.partition)
              if (done !== undefined && BigInt(pos.offset) <= done) continue
            } else if (ordinal <= skipRecords) {
              if (resumeCheck && ordinal === skipRecords && recordSha256(read) !== resumeCheck.sha256) throw resumeMismatch(ordinal)
              continue
            }
            const r = messageFields ? messageFields(read) : read
            const m = batch.meta
            m.records = ordinal
            m.last = pos
            if (isFile || isPg) m.lastRecord = read
            if (isKafka && pos.partition !== undefined && pos.offset !== undefined) m.partitions[String(pos.partition)] = pos.offset
            const c = m.counts
            const headers: IHeaders =
              isKafka && r.headers
                ? {...writableHeaders(r.headers as IHeaders), [BACKFILL_ID_HEADER]: idHeader, [BACKFILL_POSITION_HEADER]: formatPosition(pos)}
                : {[BACKFILL_ID_HEADER]: idHeader, [BACKFILL_POSITION_HEADER]: formatPosition(pos)}
            // a kafka: source's record keeps its own timestamp (the time it happened, as MirrorMaker keeps it)
            const ts = isKafka ? pos.timestamp : undefined
            if (retentionMs !== undefined && !olderThanRetention && ts !== undefined && Number(ts) < Date.now() - retentionMs) {
              olderThanRetention = true
              logger.warn('backfill.older_than_retention', {
                target,
                retention_ms: retentionMs,
                position: formatPosition(pos),
                timestamp: new Date(Number(ts)).toISOString(),
                note: `records keep their source timestamps, and the broker deletes those older than ${target}'s retention.ms (${retentionMs}) once their segment rolls: set retention.ms on ${target} to cover the history (-1: keep all) before a backfill, or replay a range within it (--since)`,
              })
            }
            if (!r.ok && rawCopy && (r.raw !== undefined || isTombstone(r))) {
              // a raw replay copies what JSON decoding refused too: its value bytes as they were, and
              // a tombstone (history of a compacted topic: the deletion) as a null value, same key
              c.read++
              c.sent++
              const value = r.raw ?? null
              batch.records.push(ts ? {key: r.key ?? null, value, headers, timestamp: ts} : {key: r.key ?? null, value, headers})
              m.ordinals!.push(ordinal)
            } else if (!r.ok) {
              c.read++
              c.rejected++
              c.rejected_by_code[r.code] = (c.rejected_by_code[r.code] ?? 0) + 1
              // a file's bytes (the reader says so: rawEncoding), not UTF-8 text: their encoding named
              const withEncoding = isFile && r.raw && r.rawEncoding ? {...headers, [SOURCE_ENCODING_HEADER]: r.rawEncoding} : headers
              deadLetter(r, r.code, r.message, 'decode', isKafka ? (r.key ?? null) : null, r.raw ?? null, withEncoding)
            } else if (normalize) {
              const result = normalize(r)
              const timeOk = result.ok ? undefined : timeOnly?.(r)
              if (!result.ok && timeOk?.ok && outOfRange(Date.parse(String(timeOk.record[eventTimeField!])))) {
                // a reject from outside --since/--until is another run's to dead-letter (the day it
                // belongs to), not this one's: its event time alone decides, as for a clean record
                c.out_of_range++
              } else if (!result.ok) {
                c.read++
                c.rejected++
                const first = result.rejections[0]!
                c.rejected_by_code[first.code] = (c.rejected_by_code[first.code] ?? 0) + 1
                const rawKey = keyOf(rawKeyFields.map((f) => r.fields[f])) ?? (isKafka && r.key ? r.key : null)
                let value: string | Buffer
                let encoded = asReadEncoding
                try {
                  value = asRead(r)
                } catch {
                  value = JSON.stringify(r.fields) // not encodable as the spec's source: the fields, to fix and replay
                  encoded = undefined
                }
                deadLetter(r, first.code, first.message, 'normalize', rawKey, value, encoded ? {...headers, [SOURCE_ENCODING_HEADER]: encoded} : headers)
              } else {
                if (eventTimeField && outOfRange(Date.parse(String(result.record[eventTimeField])))) {
                  c.out_of_range++
                } else {
                  let value: string | Buffer | undefined
                  let unencodable: string | undefined
                  try {
                    value = sendNormalized ? serialize!(result.record) : asRead(r)
                  } catch (e) {
                    if (!(e instanceof RangeError)) throw e
                    unencodable = e.message
                  }
                  c.read++
                  if (value === undefined) {
                    // a character the spec's source.encoding has no byte for: stream run could not read it back
                    c.rejected++
                    c.rejected_by_code.DECODE_ERROR = (c.rejected_by_code.DECODE_ERROR ?? 0) + 1
                    const message = `${formatPosition(pos)}: ${unencodable} (the spec's source.encoding: stream run reads the topic in it)`
                    deadLetter(r, 'DECODE_ERROR', message, 'decode', keyOf(rawKeyFields.map((f) => r.fields[f])), JSON.stringify(r.fields), headers)
                  } else {
                    c.sent++
                    const key = keyFields.length > 0 ? keyFrom(result.record) : isKafka ? (r.key ?? null) : null
                    batch.records.push(ts ? {key, value, headers, timestamp: ts} : {key, value, headers})
                    m.ordinals!.push(ordinal)
                  }
                }
              }
            } else {
              c.read++
              c.sent++
              const key = keyFields.length > 0 ? keyFrom(r.fields) : isKafka ? (r.key ?? null) : null
              const value = isKafka && r.raw ? r.raw : JSON.stringify(r.fields)
              batch.records.push(ts ? {key, value, headers, timestamp: ts} : {key, value, headers})
              m.ordinals!.push(ordinal)
            }
            if (o.progress) o.progress.done++
            if (batch.records.length + batch.dead.length >= batchSize) {
              if (!(await flush())) {
                stoppedEarly = true
                break outer
              }
            }
          }
          if (signal?.aborted) {
            stoppedEarly = true
            break
          }
        }
        if (resumeCheck && !stoppedEarly && !signal?.aborted && ordinal < skipRecords) throw resumeMismatch(skipRecords, ordinal)
      }
      if (!stoppedEarly && !signal?.aborted) {
        if (!(await flush())) stoppedEarly = true
      } else {
        stoppedEarly = true
      }
      await sender?.flush()
    } catch (e) {
      // what the broker acknowledged is kept; the rest is resent by --resume
      await sender?.flush().catch(() => {})
      if (checkpointTimer) clearInterval(checkpointTimer)
      const err = e instanceof CutoverError ? e : new CutoverError('INTERNAL', (e as Error)?.message ?? String(e), {cause: e})
      await saveFinal('failed', err.message).catch(() => {})
      logger.error('backfill.failed', {id, error: err, position: ackedPos})
      throw err
    }
    if (checkpointTimer) clearInterval(checkpointTimer)
    const status: BackfillStatus = stoppedEarly ? 'stopped' : 'completed'
    if (dryRunDlq && !dryRunDlq.exists && acked.rejected > 0) {
      logger.warn('backfill.dry_run.dlq_missing', {
        dlq: dlqTopic,
        rejected: acked.rejected,
        note: 'a real run stops at its first rejected record (exit 2) until the topic exists',
        ...(dryRunDlq.create ? {hint: `create it first: ${dryRunDlq.create}`} : {}),
      })
    }
    await saveFinal(status)
    const activeMs = firstSendAt > 0 && lastAckAt > firstSendAt ? lastAckAt - firstSendAt - (pausedAtLastAck - pausedAtFirstSend) : 0
    const result: BackfillResult = {
      id,
      // shown as given, without a password it may hold (a pg:query= with a dblink conninfo); the checkpoint keeps it whole, to resume
      source: redactString(opts.from),
      target,
      status,
      dry_run: o.dryRun === true,
      read: acked.read,
      sent: acked.sent,
      rejected: acked.rejected,
      rejected_by_code: acked.rejected_by_code,
      out_of_range: acked.out_of_range,
      dlq_topic: dlqTopic,
      elapsed_ms: Date.now() - started,
      rate_achieved: activeMs > 0 ? Math.round((sentThisRun * 1000 * 10) / activeMs) / 10 : 0,
      paused_ms: pacer.pausedMs,
      pace_changes: pacer.changes,
      resumed_from: resumedFrom,
      runs,
      ...paceOf(opts),
      total_estimate: estimate?.rows ?? null,
      total_estimate_source: estimate?.source ?? null,
      max_message_bytes: maxMessageBytes.target,
      max_message_bytes_source: saidMaxBytes.has(target) ? 'broker' : 'kafka_default',
      target_exists: o.dryRun ? (dryRunTarget ?? null) : true,
      dlq_exists: o.dryRun ? (dryRunDlq?.exists ?? null) : dlqExists,
    }
    logger.info('backfill.end', {...result})
    return result
  } catch (e) {
    await failStart?.(e instanceof Error ? e.message : String(e)).catch(() => {})
    throw e
  } finally {
    if (lagTimer) clearInterval(lagTimer)
    if (checkpointTimer) clearInterval(checkpointTimer)
    await reader?.close().catch(() => {})
    await producer?.disconnect().catch(() => {})
    await admin?.disconnect().catch(() => {})
    await lagAdmin?.disconnect().catch(() => {})
    await store?.release().catch(() => {})
    await pool?.end().catch(() => {})
  }
}

/**
 * What `backfill --dry-run` asks the broker, with one quick attempt (the fail-fast client): the
 * max.message.bytes of the target and the DLQ topic (those that exist), and whether each exists
 * (for a missing DLQ topic, the command that creates it). Undefined, with a warning, when no broker answers: the
 * dry run then predicts RECORD_TOO_LARGE against Kafka's default, and goes on.
 */
async function dryRunTopics(settings: KafkaSettings, target: string, dlq: string, logger: Logger): Promise<{max: Map<string, number>; targetExists: boolean; dlqExists: boolean; createDlq: string | undefined} | undefined> {
  const note = `records over Kafka's default max.message.bytes (${KAFKA_DEFAULT_MAX_MESSAGE_BYTES}) are predicted RECORD_TOO_LARGE`
  let admin: Admin | undefined
  try {
    // kafkajs' own connection errors stay out of a dry run's output: the warning below says it once
    admin = await connectAdmin(createKafka(settings, {logger: silentLogger, mode: 'fail-fast', clientId: 'cutover-backfill'}), settings)
    const present = new Set(await admin.listTopics())
    const exist = [target, dlq].filter((t) => present.has(t))
    // a broker that lists the topics but will not describe them (an ACL): as if it did not say, as a real run takes it
    const max = exist.length > 0 ? await topicMaxMessageBytes(admin, exist).catch(() => new Map<string, number>()) : new Map<string, number>()
    if (!max.has(target)) logger.warn('backfill.dry_run.max_message_bytes_unknown', {topic: target, reason: present.has(target) ? 'the broker did not say it' : 'the topic does not exist (a real run stops: exit 2)', note})
    const dlqExists = present.has(dlq)
    const createDlq = dlqExists ? undefined : await createTopicHint(admin, settings, dlq, {partitionsOf: target}).catch(() => undefined)
    return {max, targetExists: present.has(target), dlqExists, createDlq}
  } catch (e) {
    logger.warn('backfill.dry_run.max_message_bytes_unknown', {topic: target, reason: 'no broker answered', error: e, note})
    return undefined
  } finally {
    await admin?.disconnect().catch(() => {})
  }
}

/** `--since`/`--until`: ISO-8601 with a zone (or a date, taken as UTC midnight) -> ms. */
export function parseTimeOption(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined
  const ms = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text)
  if (!Number.isFinite(ms) || !/(Z|[+-]\d{2}:?\d{2})$|^\d{4}-\d{2}-\d{2}$/.test(text)) {
    throw new UsageError(`${flag} "${text}" is not an ISO-8601 time with a zone`, {hint: `for example ${flag} 2026-11-01T00:00:00Z`})
  }
  return ms
}

/** The pace in force, as the flags that give it: `--rate 2000/s --burst 100 --max-lag 50000 --group g`. */
function formatPace(r: Pick<BackfillResult, 'rate' | 'burst' | 'max_lag' | 'group'>): string {
  const parts: string[] = []
  if (r.rate !== null) parts.push(`--rate ${Number(r.rate.toFixed(3))}/s${r.burst !== null ? ` --burst ${r.burst}` : ''}`)
  if (r.max_lag !== null) parts.push(`--max-lag ${r.max_lag} --group ${r.group ?? '?'}`)
  return parts.length > 0 ? parts.join(' ') : 'unpaced (no --rate, no --max-lag)'
}

/** One line for a person. */
export function formatBackfillResult(r: BackfillResult): string {
  const codes = Object.entries(r.rejected_by_code).map(([c, n]) => `${c} ${n}`).join(', ')
  return [
    `backfill ${r.id} ${r.status}${r.dry_run ? ' (dry run: nothing sent)' : ''}: ${r.source} -> ${r.target}`,
    `  read ${r.read.toLocaleString('en-US')} = sent ${r.sent.toLocaleString('en-US')} + rejected ${r.rejected.toLocaleString('en-US')}${codes ? ` (${codes}) -> ${r.dlq_topic}` : ''}${r.out_of_range ? `; outside --since/--until ${r.out_of_range.toLocaleString('en-US')}` : ''}`,
    `  ${(r.elapsed_ms / 1000).toFixed(1)} s, ${Math.round(r.rate_achieved).toLocaleString('en-US')}/s while sending, paused ${(r.paused_ms / 1000).toFixed(1)} s, ${r.pace_changes} changes of pace${r.resumed_from ? `, resumed after record ${r.resumed_from.records}` : ''}`,
    `  pace: ${formatPace(r)}`,
    r.dry_run && r.max_message_bytes !== null
      ? `  records over ${r.target}'s max.message.bytes ${r.max_message_bytes.toLocaleString('en-US')} (${r.max_message_bytes_source === 'broker' ? 'as the broker says it' : "Kafka's default: the broker did not say it"}) counted as RECORD_TOO_LARGE`
      : '',
    r.dry_run && r.target_exists === false ? `  ${r.target} does not exist: a real run refuses to start (exit 2); create it first` : '',
    r.dry_run && r.dlq_exists === false && r.rejected > 0 ? `  ${r.dlq_topic} does not exist: a real run stops at its first rejected record (exit 2); create it first` : '',
    r.status === 'stopped' ? `  continue with: cutover backfill --resume ${r.id}` : '',
  ]
    .filter(Boolean)
    .join('\n')
}
