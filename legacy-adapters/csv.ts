/**
 * csv: a delimited text file, streamed with bounded memory.
 *
 * Record layout (RFC 4180 as bank exports bend it):
 *
 *   file    = [BOM] [header CRLF] record *(CRLF record) [CRLF]     ; CRLF, LF or CR
 *   header  = name *(DELIM name)                                    ; default DELIM ","; ";" in RU exports
 *   record  = field *(DELIM field)
 *   field   = QUOTE *(any char but QUOTE / QUOTE QUOTE) QUOTE         ; may span lines
 *           / *(any char but DELIM, QUOTE, CR, LF)
 *
 *   encoding  utf-8 (BOM optional), windows-1251, ibm866, latin1, ascii, cp037, cp1047
 *   header    first row names the columns (default); `header=false&columns=a,b,c` names them.
 *             Without delimiter=, a header that is one column holding ";", a tab or "|" is
 *             refused (UsageError, exit 2) naming the delimiter and the URI with it added: read
 *             with ",", every row of a ";" file with a decimal comma (`T1;A1;12,50`) would be
 *             a SCHEMA_VIOLATION, and without one the file one column named `id;acct;amt`
 *   yields    {ok: true, fields: {name: text}} per record; every value is the text as written
 *             (no trimming, no casting: normalization is the next stage's job)
 *
 * What is wrong is yielded, never thrown, never repaired:
 *   - a row whose field count differs from the header: SCHEMA_VIOLATION, not padded;
 *   - a malformed quote (`1,"ab"c,2`: a closing quote followed by other characters):
 *     DECODE_ERROR for that record; the quote is ended there, so parsing resumes with the
 *     next physical line instead of swallowing the lines up to the next quote;
 *   - a quote inside an unquoted field (`37.8"N`, `12" pipe`) is a literal character, as
 *     Excel and the csv-spectrum suite read it;
 *   - a quote never closed: DECODE_ERROR at the end of the file;
 *   - an invalid byte for the encoding (U+FFFD after decoding): DECODE_ERROR naming the field.
 * A record larger than `max_record_bytes` (a runaway quote) ends the read with a SpecError
 * after the RECORD_TOO_LARGE record: what follows it cannot be split into records.
 *
 * Position: the source path, the 1-based physical line where the record starts (right with
 * multi-line quoted fields, CRLF inside quotes, blank and comment lines) and the 1-based
 * record number (the header is not a record).
 *
 * Speed: the bytes go straight into csv-parse's push parser (`parser.api.parse`), without a
 * Transform stream between it and us; UTF-8 files are not decoded by us at all (csv-parse
 * turns fields into strings), single-byte encodings are re-encoded to UTF-8 bytes by table. Lines come from csv-parse's own counter, corrected only for
 * records it cannot count (quoted line breaks), which are found by a cheap consistency check.
 */
import {createReadStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import {isUtf8} from 'node:buffer'
import {isAbsolute, resolve} from 'node:path'
import {parse as csvParse, type CsvError} from 'csv-parse'
import {SpecError, UsageError} from '../src/errors.js'
import {createUtf8Transcoder, resolveEncoding, type SupportedEncoding} from '../src/normalize/encoding.js'
import {unescapeChar} from './uri.js'
import {batchedSource} from './source.js'
import type {BatchedRecords, Position, RawRecord, RawRecordError, ReaderContext, SourceUri} from './types.js'

export interface CsvOptions {
  /** the path as written in the URI, for positions */
  source: string
  delimiter: string
  quote: string
  escape?: string
  encoding: SupportedEncoding
  header: boolean
  columns?: string[]
  skipEmptyLines: boolean
  comment?: string
  maxRecordBytes: number
  /**
   * The source URI as written, when `delimiter` is the default because the URI gives none: a
   * header that is then one column holding ";", a tab or "|" is refused (UsageError) with this
   * URI and the delimiter added to it (`delimiterMisread`). Unset: no such check.
   */
  defaultDelimiterOf?: string
}

export const DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024
const CHUNK_BYTES = 256 * 1024

export function csvOptionsFromUri(uri: SourceUri): CsvOptions {
  const p = uri.params
  const opts: CsvOptions = {
    source: uri.target,
    delimiter: unescapeChar(p.delimiter ?? ','),
    quote: unescapeChar(p.quote ?? '"'),
    encoding: resolveEncoding(p.encoding ?? 'utf-8'),
    header: p.header !== 'false',
    skipEmptyLines: p.skip_empty_lines !== 'false',
    maxRecordBytes: p.max_record_bytes ? Number(p.max_record_bytes) : DEFAULT_MAX_RECORD_BYTES,
  }
  if (p.escape !== undefined) opts.escape = unescapeChar(p.escape)
  if (p.comment !== undefined) opts.comment = unescapeChar(p.comment)
  if (p.columns !== undefined) opts.columns = p.columns.split(',').map((c) => c.trim())
  if (p.delimiter === undefined) opts.defaultDelimiterOf = uri.text
  if (!opts.header && !opts.columns) {
    throw new UsageError(`source "${uri.text}": header=false needs columns`, {hint: 'add columns=a,b,c naming the fields in order'})
  }
  return opts
}

/** The reader registered for `csv:`. Iterate it, or its `batches()` (one await per chunk). */
export function readCsv(uri: SourceUri, ctx: ReaderContext = {}): BatchedRecords {
  const opts = csvOptionsFromUri(uri)
  const path = isAbsolute(uri.target) ? uri.target : resolve(ctx.cwd ?? process.cwd(), uri.target)
  return batchedSource(() => readCsvFile(uri, path, opts, ctx, undefined) as AsyncGenerator<RawRecord[]>)
}

/**
 * Receives the records of a batch without an object per record (for `normalize`'s worker
 * thread): each ok record's values in column order with its line and record number, and the
 * records that could not be read, in order. `take` ends the batch.
 */
export interface CsvRowSink<T> {
  /** the column names, once known (before the first row) */
  columns(names: string[]): void
  row(values: string[], line: number, record: number): void
  error(record: RawRecordError): void
  /** records since the last take */
  readonly size: number
  take(): T
}

/**
 * `readCsv` for a sink: the same records, positions and errors (the same parser, the same
 * bookkeeping), delivered to `sink` and yielded as what `sink.take()` makes of each batch.
 */
export function readCsvRows<T>(uri: SourceUri, ctx: ReaderContext, sink: CsvRowSink<T>): AsyncIterable<T> {
  const opts = csvOptionsFromUri(uri)
  const path = isAbsolute(uri.target) ? uri.target : resolve(ctx.cwd ?? process.cwd(), uri.target)
  return {[Symbol.asyncIterator]: () => readCsvFile(uri, path, opts, ctx, sink) as AsyncGenerator<T>}
}

/** Records of chunks into a sink (tests: the same input through both forms). */
export function parseCsvChunksRows<T>(chunks: AsyncIterable<Buffer>, opts: CsvOptions, sink: CsvRowSink<T>): AsyncIterable<T> {
  return {[Symbol.asyncIterator]: () => csvBatches(chunks, opts, sink) as AsyncGenerator<T>}
}

async function* readCsvFile(uri: SourceUri, path: string, opts: CsvOptions, ctx: ReaderContext, sink: CsvRowSink<unknown> | undefined): AsyncGenerator<RawRecord[] | unknown> {
  try {
    const s = await stat(path)
    if (!s.isFile()) throw new UsageError(`source "${uri.text}": ${path} is not a file`, {hint: 'give the path of a CSV file'})
  } catch (e) {
    if (e instanceof UsageError) throw e
    throw new UsageError(`source "${uri.text}": cannot open ${path}: ${(e as Error).message}`, {cause: e, hint: 'check the path (relative paths start at the working directory)'})
  }
  const stream = createReadStream(path, {highWaterMark: CHUNK_BYTES, ...(ctx.signal ? {signal: ctx.signal} : {})})
  try {
    yield* csvBatches(stream as AsyncIterable<Buffer>, opts, sink)
  } finally {
    stream.destroy()
  }
}

/**
 * Parses CSV from byte chunks (a file stream, or any chunks in tests). Exported so that
 * tests can put chunk boundaries anywhere.
 */
export function parseCsvChunks(chunks: AsyncIterable<Buffer>, opts: CsvOptions): BatchedRecords {
  return batchedSource(() => csvBatches(chunks, opts) as AsyncGenerator<RawRecord[]>)
}

const RECORD_DELIMITERS = ['\r\n', '\n']

/**
 * The record delimiters for a file that starts with `head`: CRLF and LF both when its first line
 * ends in either, so that a file whose lines end both ways (files from two systems put together)
 * is read line by line. csv-parse, left to guess, takes the first line's end for all, and then
 * leaves the CR of a CRLF line in its last field, or reads an LF line and the next as one
 * record. 'guess' (csv-parse's own) for CR line ends; undefined while `head` holds no line end
 * yet (a CR as its last byte included).
 */
export function lineEndsOf(head: Buffer): string[] | 'guess' | undefined {
  for (let i = 0; i < head.length; i++) {
    const b = head[i]
    if (b === 10) return RECORD_DELIMITERS
    if (b === 13) return i + 1 >= head.length ? undefined : head[i + 1] === 10 ? RECORD_DELIMITERS : 'guess'
  }
  return undefined
}

/** Bytes held back at most, waiting for the first line end (lineEndsOf), before csv-parse guesses. */
const LINE_END_LOOKAHEAD = 64 * 1024

/** The internals of csv-parse's push parser that the reader drives directly (csv-parse 6). */
interface CsvApi {
  parse(buf: Buffer | undefined, end: boolean, push: (record: string[]) => void, close: () => void): CsvError | Error | undefined
  info: {lines: number; empty_lines: number; comment_lines: number}
  state: {record: unknown; quoting: boolean; recordHasError: boolean}
}

const REPLACEMENT = '\uFFFD'

/** Fields as one CSV line: a field holding the delimiter, a quote or a line break is quoted, its quotes doubled. */
export function csvLine(fields: readonly string[], delimiter: string): string {
  return fields.map((f) => (f.includes(delimiter) || f.includes('"') || f.includes('\n') || f.includes('\r') ? `"${f.replaceAll('"', '""')}"` : f)).join(delimiter)
}

async function* csvBatches(chunks: AsyncIterable<Buffer>, opts: CsvOptions, sink?: CsvRowSink<unknown>): AsyncGenerator<RawRecord[] | unknown> {
  const source = opts.source
  let columns: string[] | undefined = opts.header ? undefined : opts.columns
  let build = columns ? recordBuilder(columns, source) : undefined
  if (columns && sink) sink.columns(columns)
  let batch: RawRecord[] = []
  // Without a sink, records go to `batch`; with one, to the sink.
  const fail = (r: RawRecordError): void => {
    if (sink) sink.error(r)
    else batch.push(r)
  }
  const pending = (): boolean => (sink ? sink.size > 0 : batch.length > 0)
  const take = (): RawRecord[] | unknown => {
    if (sink) return sink.take()
    const out = batch
    batch = []
    return out
  }
  let recordNo = 0
  // Line bookkeeping (see the header comment): true end line of the previous record.
  let prevEnd = 0
  let prevEmpty = 0
  let prevComment = 0
  let skew = 0 // csv-parse counts CRLF inside quotes as two lines; subtract what it over-counted
  let checkReplacement = false // set once an invalid byte was seen: records are then checked for U+FFFD
  let lastErrorRecord: unknown
  let fatal: SpecError | undefined

  const pos = (line: number): Position => ({scheme: 'csv', source, line, record: recordNo})

  // created at the first bytes, which tell the line ends (lineEndsOf)
  let api: CsvApi = undefined as unknown as CsvApi
  const createParser = (recordDelimiter: string[] | undefined): void => {
  const parser = csvParse({
    ...(recordDelimiter ? {record_delimiter: recordDelimiter} : {}),
    delimiter: opts.delimiter,
    quote: opts.quote === '' ? false : opts.quote,
    ...(opts.escape !== undefined ? {escape: opts.escape} : {}),
    ...(opts.comment !== undefined ? {comment: opts.comment, comment_no_infix: true} : {}),
    bom: true,
    relax_column_count: true, // our own check, below, reports the line and both counts
    skip_empty_lines: opts.skipEmptyLines,
    skip_records_with_error: true,
    max_record_size: opts.maxRecordBytes,
    on_skip: (err: CsvError | undefined) => {
      // Called while the bad record is being read; one report per record.
      if (!err) return
      if (api.state.record === lastErrorRecord) return
      if (err.code === 'INVALID_OPENING_QUOTE') {
        // A quote inside an unquoted field (`37.8"N`, `12" pipe`) is kept as a literal
        // character, as Excel and csv-spectrum read it: the record is not an error.
        api.state.recordHasError = false
        return
      }
      lastErrorRecord = api.state.record
      const line = api.info.lines - skew
      prevEnd = line
      prevEmpty = api.info.empty_lines
      prevComment = api.info.comment_lines
      recordNo++
      if (err.code === 'CSV_MAX_RECORD_SIZE') {
        fail({ok: false, code: 'RECORD_TOO_LARGE', message: `${source}:${line}: record is larger than ${opts.maxRecordBytes} bytes (a quote never closed?)`, position: pos(line)})
        fatal = new SpecError({file: source, line}, `record larger than ${opts.maxRecordBytes} bytes; the rest of the file cannot be split into records`, {
          hint: 'fix the unbalanced quote near this line, or raise max_record_bytes',
        })
        throw err // stops csv-parse; the reader ends with `fatal`
      }
      if (err.code === 'CSV_INVALID_CLOSING_QUOTE') {
        // csv-parse would stay inside the quote and swallow the next lines; end the quote here
        // so that the record ends with its physical line.
        api.state.quoting = false
      }
      fail({ok: false, code: 'DECODE_ERROR', message: `${source}:${line}: ${describeCsvError(err)}`, position: pos(line)})
    },
  })
  api = (parser as unknown as {api: CsvApi}).api
  fastFieldText(api)
  }

  const push = (rec: string[]): void => {
    const info = api.info
    let end = info.lines - skew
    let start = end
    const expected = prevEnd + 1 + (info.empty_lines - prevEmpty) + (info.comment_lines - prevComment)
    if (end !== expected) {
      // The record spans lines (or follows a skipped one): count the line breaks it holds.
      let breaks = 0
      let crlf = 0
      for (const f of rec) {
        for (let i = f.indexOf('\n'); i !== -1; i = f.indexOf('\n', i + 1)) {
          breaks++
          if (i > 0 && f.charCodeAt(i - 1) === 13) crlf++
        }
        for (let i = f.indexOf('\r'); i !== -1; i = f.indexOf('\r', i + 1)) if (f.charCodeAt(i + 1) !== 10) breaks++
      }
      skew += crlf
      end -= crlf
      start = end - breaks
    }
    prevEnd = end
    prevEmpty = info.empty_lines
    prevComment = info.comment_lines
    if (columns === undefined) {
      if (opts.defaultDelimiterOf !== undefined) {
        const misread = delimiterMisread(rec, opts.delimiter, opts.defaultDelimiterOf)
        if (misread) throw misread
      }
      columns = headerColumns(rec, opts, source)
      build = recordBuilder(columns, source)
      if (sink) sink.columns(columns)
      return
    }
    recordNo++
    if (rec.length !== columns.length) {
      fail({
        ok: false,
        code: 'SCHEMA_VIOLATION',
        message: `${source}:${start}: expected ${columns.length} fields (${columns.join(opts.delimiter)}), got ${rec.length}`,
        position: pos(start),
        // the record's fields as one CSV line (UTF-8), for its dead letter: what was read, to fix and send again
        raw: Buffer.from(csvLine(rec, opts.delimiter)),
      })
      return
    }
    if (checkReplacement) {
      for (let i = 0; i < rec.length; i++) {
        if (rec[i]!.includes(REPLACEMENT)) {
          fail({
            ok: false,
            code: 'DECODE_ERROR',
            message: `${source}:${start}: field ${columns[i]} holds bytes that are not valid ${opts.encoding}`,
            position: pos(start),
            field: columns[i]!,
            value: rec[i]!, // as read, U+FFFD for each bad byte; masked by whoever shows it when sensitive
          })
          return
        }
      }
    }
    if (sink) sink.row(rec, start, recordNo)
    else batch.push({ok: true, fields: build!(rec), position: pos(start)})
  }

  // UTF-8 goes to csv-parse as it is; single-byte encodings are re-encoded as UTF-8 bytes.
  const transcoder = opts.encoding === 'utf-8' ? undefined : createUtf8Transcoder(opts.encoding)
  let utf8Tail: Buffer | undefined
  let failed: Error | undefined
  let held: Buffer | undefined
  const feed = (buf: Buffer | undefined, end: boolean): void => {
    if (failed) return
    if (api === undefined) {
      // the first bytes, up to their first line end, are held back to choose the record delimiters
      if (buf !== undefined) held = held ? Buffer.concat([held, buf]) : buf
      const ends = held ? lineEndsOf(held) : undefined
      if (ends === undefined && !end && (held?.length ?? 0) < LINE_END_LOOKAHEAD) return
      createParser(Array.isArray(ends) ? ends : undefined)
      buf = held
      held = undefined
    }
    const err = api.parse(buf, end, push, () => {})
    if (err) failed = err
  }

  for await (const chunk of chunks) {
    if (transcoder) {
      const utf8 = transcoder.write(chunk)
      if (transcoder.sawInvalid) checkReplacement = true
      feed(utf8, false)
    } else {
      if (!checkReplacement) {
        const r = utf8Check(chunk, utf8Tail)
        utf8Tail = r.tail
        if (!r.valid) checkReplacement = true
      }
      feed(chunk, false)
    }
    if (pending()) yield take()
    if (fatal || failed) break
  }
  if (!fatal && !failed) {
    if (!transcoder && utf8Tail && !checkReplacement) {
      checkReplacement = true // the file ends inside a multi-byte character
    }
    feed(undefined, true)
  }
  if (pending()) yield take()
  if (fatal) throw fatal
  if (failed) {
    throw new SpecError({file: source, line: api.info.lines - skew}, `cannot parse CSV: ${failed.message}`, {cause: failed, hint: 'check the delimiter, quote and encoding parameters'})
  }
}

let fieldTextPatched = false
let fieldTextFast = false

/** Whether csv-parse's field text is taken without a Buffer per field (false before the first read, or when csv-parse changed shape). */
export function csvFieldTextIsFast(): boolean {
  return fieldTextFast
}

/**
 * csv-parse turns every field into text with `buf.slice(0, length).toString(encoding)`: a
 * Buffer object made and dropped per field. `buf.toString(encoding, 0, length)` is the same
 * text without it (about 5% of the reader's time). Patched once on csv-parse's field buffer
 * class (csv-parse 6 `ResizeableBuffer`), and only when it has the shape this relies on.
 */
function fastFieldText(api: CsvApi): void {
  if (fieldTextPatched) return
  fieldTextPatched = true
  const field = (api.state as unknown as {field?: unknown}).field as {buf?: unknown; length?: unknown} | undefined
  if (!field || !Buffer.isBuffer(field.buf) || typeof field.length !== 'number') return
  const proto = Object.getPrototypeOf(field) as {toString: (encoding?: BufferEncoding) => unknown}
  if (proto === Object.prototype || typeof proto.toString !== 'function' || !/this\.buf\.slice\(0, this\.length\)\.toString\(encoding\)/.test(String(proto.toString))) return
  const original = proto.toString
  proto.toString = function (this: {buf: Buffer; length: number}, encoding?: BufferEncoding) {
    return encoding ? this.buf.toString(encoding, 0, this.length) : original.call(this, encoding)
  }
  fieldTextFast = true
}

/**
 * A function that turns a row into its fields object with one object literal of constant
 * keys: V8 gives every record the same shape, several times faster than assigning keys in
 * a loop (this is the reader's hottest line). Keys are JSON-quoted; `__proto__` is refused
 * by `recordBuilder`.
 */
function recordBuilder(columns: string[], source: string): (rec: string[]) => Record<string, string> {
  if (columns.includes('__proto__')) {
    throw new SpecError({file: source, line: 1}, 'a column may not be named __proto__', {hint: 'rename it with columns=a,b,c'})
  }
  const body = 'return {' + columns.map((c, i) => `${JSON.stringify(c)}: r[${i}]`).join(', ') + '}'
  return new Function('r', body) as (rec: string[]) => Record<string, string>
}

/** The delimiters of legacy exports other than ",", and how a URI writes each. */
const OTHER_DELIMITERS = [
  {char: ';', param: ';', shown: '";"'},
  {char: '\t', param: 'tab', shown: 'a tab'},
  {char: '|', param: '|', shown: '"|"'},
] as const

/**
 * A header read with the default "," (no delimiter= in `uriText`) that is one column holding ";", a
 * tab or "|": the file is delimited by that character, and reading on would make every record a
 * SCHEMA_VIOLATION (a decimal comma splits it) or one column named `id;acct;amt`. The error names
 * the character and the URI with delimiter= added (its other parameters kept). The header's text
 * is not quoted: in a file without a header it is a record, which may be sensitive. A one-column
 * file whose name really holds the character reads with delimiter=, given.
 */
export function delimiterMisread(header: readonly string[], delimiter: string, uriText: string): UsageError | undefined {
  if (header.length !== 1 || delimiter !== ',') return undefined
  const name = header[0]!
  const count = (c: string) => name.split(c).length - 1
  // the most frequent of them (";" first on a tie)
  const found = OTHER_DELIMITERS.map((d) => ({...d, n: count(d.char)})).reduce((a, b) => (b.n > a.n ? b : a))
  if (found.n === 0) return undefined
  const text = uriText.trim()
  const sep = !text.includes('?') ? '?' : text.endsWith('?') || text.endsWith('&') ? '' : '&'
  const fixed = `${text}${sep}delimiter=${found.param}`
  return new UsageError(
    `source "${uriText}": its header is one column with ${found.shown} in it (${found.n + 1} columns when split at ${found.shown}): the file is delimited by ${found.shown}, not by "," (the default without delimiter=)`,
    {
      hint: `add delimiter=${found.param} to the source: ${fixed} (in quotes in a shell); if the one column's name really holds ${found.shown}, give delimiter=, to read it as it is`,
      details: {delimiter_seen: found.char, source_fixed: fixed},
    },
  )
}

function headerColumns(rec: string[], opts: CsvOptions, source: string): string[] {
  if (opts.columns) {
    if (opts.columns.length !== rec.length) {
      throw new SpecError({file: source, line: 1}, `header has ${rec.length} fields but columns= names ${opts.columns.length}`, {
        hint: 'give one name per header field in columns=, or drop columns= to use the header',
      })
    }
    return opts.columns
  }
  const seen = new Set<string>()
  return rec.map((raw, i) => {
    const name = raw.trim() === '' ? `column_${i + 1}` : raw.trim()
    if (seen.has(name)) {
      throw new SpecError({file: source, line: 1}, `header names column "${name}" twice`, {hint: 'rename the columns with columns=a,b,c'})
    }
    seen.add(name)
    return name
  })
}

function describeCsvError(err: CsvError): string {
  switch (err.code) {
    case 'CSV_INVALID_CLOSING_QUOTE':
      return 'malformed quote: a closing quote followed by other characters'
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'malformed quote: the file ends inside a quoted field'
    default:
      return err.message
  }
}

/**
 * Is this chunk valid UTF-8? A character split across chunks is carried over (`tail`), so a
 * chunk boundary is never mistaken for a bad byte.
 */
function utf8Check(chunk: Buffer, prevTail: Buffer | undefined): {valid: boolean; tail: Buffer | undefined} {
  let start = 0
  let valid = true
  if (prevTail) {
    // Complete the previous chunk's last character with this chunk's continuation bytes.
    let k = 0
    while (k < 3 && k < chunk.length && (chunk[k]! & 0xc0) === 0x80) k++
    valid = isUtf8(Buffer.concat([prevTail, chunk.subarray(0, k)]))
    start = k
  }
  // Find where the last (possibly incomplete) character starts.
  let end = chunk.length
  let i = end - 1
  let back = 0
  while (i >= start && back < 3 && (chunk[i]! & 0xc0) === 0x80) {
    i--
    back++
  }
  if (i >= start) {
    const b = chunk[i]!
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1
    if (need > end - i) end = i
  }
  if (valid) valid = isUtf8(chunk.subarray(start, end))
  return {valid, tail: end < chunk.length ? Buffer.from(chunk.subarray(end)) : undefined}
}
