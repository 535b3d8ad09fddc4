/**
 * The contract every legacy reader keeps: an async iterable of raw records, each with the
 * position it came from, streamed with bounded memory. A reader never throws for one bad
 * record: it yields `{ok: false}` with a code and the position, and goes on.
 */
import type {RecordErrorCode} from '../src/errors.js'
import type {Logger} from '../src/log.js'
import type {KafkaSettings} from '../src/config/env.js'
import type {SupportedEncoding} from '../src/normalize/encoding.js'

/** Where a record came from: enough for every error to say `file:line`, an offset, or a row key. */
export interface Position {
  /** `csv` | `fixed` | `pg` | `kafka` */
  scheme: string
  /** file path, table/query, or topic */
  source: string
  /** 1-based physical line where the record starts (csv) */
  line?: number
  /** 1-based record number within the source */
  record?: number
  /** byte offset of the record within the file (fixed, csv) */
  byteOffset?: number
  /** row key (pg) */
  key?: string
  partition?: number
  offset?: string
  /** Kafka record timestamp (ms since epoch, as a string) */
  timestamp?: string
}

/** Kafka only: the original key and headers, kept byte for byte for dead letters and replay. */
export interface KafkaOrigin {
  key?: Buffer | null
  headers?: Record<string, Buffer | string | (Buffer | string)[] | undefined>
}

export interface RawRecordOk extends KafkaOrigin {
  ok: true
  /** field name -> decoded text (csv, fixed, pg text) or a JSON value (kafka json, pg) */
  fields: Record<string, unknown>
  position: Position
  /** the undecoded bytes when the reader has them (fixed, kafka), for dead letters */
  raw?: Buffer
}

export interface RawRecordError extends KafkaOrigin {
  ok: false
  code: RecordErrorCode
  message: string
  position: Position
  /** what the record was read from, for its dead letter (csv: its lines, fixed: its bytes, kafka: the value) */
  raw?: Buffer
  /**
   * Set when `raw` is the file's own bytes in this encoding rather than UTF-8 text: a fixed:
   * record, always; a csv: record's lines when they hold a byte invalid in the file's encoding
   * (else the csv reader gives them as UTF-8 text, and this is not set). Whoever writes `raw`
   * (normalize's rejects, backfill's dead letters) goes by this, never by whether the bytes
   * happen to be valid UTF-8: windows-1251 `D0 98` (Р and the invalid 0x98) is UTF-8 "И".
   */
  rawEncoding?: SupportedEncoding
  /** the input field at fault, as the reader names it (a CSV column, a copybook field), when one is */
  field?: string
  /**
   * that field's value as read: its text, or its bytes as a hexadecimal literal (X'C098C1').
   * NOT masked (a reader does not know the spec): whoever shows it masks it when the spec marks
   * the field `sensitive`, as `normalize`'s rejects do.
   */
  value?: string
}

export type RawRecord = RawRecordOk | RawRecordError

export interface ReaderContext {
  /** DATABASE_URL, for pg: */
  databaseUrl?: string
  /** KAFKA settings, for kafka: */
  kafka?: KafkaSettings
  logger?: Logger
  signal?: AbortSignal
  /** base directory for relative paths in a URI (default process.cwd()) */
  cwd?: string
  /**
   * Input columns whose values are sensitive (the `from` of a spec's `sensitive` fields): a
   * reader keeps their values out of positions (pg: a `key=` column among them gives the row
   * number instead), since positions travel in headers, rejects, logs and checkpoints.
   */
  sensitiveColumns?: readonly string[]
}

export interface SourceUri {
  scheme: string
  /** the part after `scheme:` and before `?` */
  target: string
  params: Record<string, string>
  /** the URI as given, for messages */
  text: string
}

export type Reader = (uri: SourceUri, ctx: ReaderContext) => AsyncIterable<RawRecord>

/** `formatPosition({scheme:'csv', source:'a.csv', line: 12})` -> `a.csv:12` */
export function formatPosition(p: Position): string {
  if (p.partition !== undefined) return `${p.source}/${p.partition}@${p.offset}`
  if (p.line !== undefined) return `${p.source}:${p.line}`
  if (p.key !== undefined) return `${p.source}[${p.key}]`
  if (p.byteOffset !== undefined) return `${p.source}@${p.byteOffset}${p.record !== undefined ? ` (record ${p.record})` : ''}`
  if (p.record !== undefined) return `${p.source}#${p.record}`
  return p.source
}

/**
 * What a reader returns may also hand out its records in batches: one `await` per batch
 * instead of one per record, which matters at a million rows. Use `recordBatches(source)`
 * (legacy-adapters/source.ts), which falls back to grouping when a source has no `batches()`.
 */
export interface BatchedRecords extends AsyncIterable<RawRecord> {
  batches(): AsyncIterable<RawRecord[]>
}
