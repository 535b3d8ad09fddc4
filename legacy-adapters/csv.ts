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
 *             A UTF-8 BOM (EF BB BF) before a file of another encoding: when the bytes after it
 *             (its first BOM_SNIFF_BYTES) hold non-ASCII and are valid UTF-8, the file is UTF-8
 *             mislabelled by encoding= (Excel's "CSV UTF-8") and is refused (UsageError, exit 2)
 *             before any record: read as windows-1251 every Cyrillic letter would be mojibake,
 *             without an error. Else the three bytes are dropped, as for utf-8 (not `п»ї` in the
 *             first column's name); lines and dead letters count the file as it is.
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
 *   - a quote never closed (the file ends inside it): DECODE_ERROR for the record's lines up to
 *     the one where that quote opened, and the lines after it are read again as records (they
 *     held no quote, or it would have closed there: a stray `"` at the start of a field must not
 *     take the rest of a file into one dead letter); see readOnAfterOpenQuote;
 *   - an invalid byte for the encoding (U+FFFD after decoding): DECODE_ERROR naming the field.
 * A record larger than `max_record_bytes` (a runaway quote) ends the read with a SpecError
 * after the RECORD_TOO_LARGE record: what follows it cannot be split into records. With
 * `resyncTooLarge` (profile) the record's end is found without holding it (RecordSkipper: the
 * first line end outside quotes, as csv-parse would find it) and the read goes on after it; only
 * a quote never closed ends the read then, with the line where it opened.
 * Each of these records carries `raw`, for its dead letter: its lines as they are in the file
 * (FileLines), without the last line end; as UTF-8 text when all of them are characters of the
 * file's encoding, else the file's bytes themselves, a bad byte included, with `rawEncoding`
 * saying so (deadLetterRaw). A record that runs to the end of the file or past max_record_bytes (a quote
 * never closed) keeps its first min(max_record_bytes, 64 KiB) bytes, and its message says so.
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
import {open, stat} from 'node:fs/promises'
import {isAscii, isUtf8} from 'node:buffer'
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
   * Past a record larger than maxRecordBytes, read on (`profile` only; normalize and backfill stop
   * there): its bytes are scanned, not held, for its end (RecordSkipper), its RECORD_TOO_LARGE
   * says where it starts and ends (line and byte), and the records after it are read. A quote
   * never closed (the record runs to the end of the file) still ends the read with a SpecError,
   * naming the line where the quote opened.
   */
  resyncTooLarge?: boolean
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

/**
 * The reader registered for `csv:`. Iterate it, or its `batches()` (one await per chunk).
 * `options.resyncTooLarge` (profile): read on past a record larger than max_record_bytes.
 */
export function readCsv(uri: SourceUri, ctx: ReaderContext = {}, options: Pick<CsvOptions, 'resyncTooLarge'> = {}): BatchedRecords {
  const opts = {...csvOptionsFromUri(uri), ...options}
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
  state: {record: string[]; quoting: boolean; recordHasError: boolean}
  /** ends a record (csv-parse calls it for every record, for dropped ones too: `recordHasError`) */
  __onRecord: (this: CsvApi, push: (record: string[]) => void) => unknown
}

/** The line breaks inside a record's fields: all of them, and how many of those are CRLF. */
function lineBreaksIn(rec: readonly string[]): {breaks: number; crlf: number} {
  let breaks = 0
  let crlf = 0
  for (const f of rec) {
    for (let i = f.indexOf('\n'); i !== -1; i = f.indexOf('\n', i + 1)) {
      breaks++
      if (i > 0 && f.charCodeAt(i - 1) === 13) crlf++
    }
    for (let i = f.indexOf('\r'); i !== -1; i = f.indexOf('\r', i + 1)) if (f.charCodeAt(i + 1) !== 10) breaks++
  }
  return {breaks, crlf}
}

const REPLACEMENT = '\uFFFD'

/** Fields as one CSV line: a field holding the delimiter, a quote or a line break is quoted, its quotes doubled. */
export function csvLine(fields: readonly string[], delimiter: string): string {
  return fields.map((f) => (f.includes(delimiter) || f.includes('"') || f.includes('\n') || f.includes('\r') ? `"${f.replaceAll('"', '""')}"` : f)).join(delimiter)
}

/**
 * The most of a record larger than max_record_bytes (a runaway quote) kept for its dead letter:
 * enough to find the quote, and under the broker's default message.max.bytes (1 MiB), which a
 * dead letter of up to max_record_bytes (16 MiB by default) would exceed.
 */
export const TOO_LARGE_KEPT_BYTES = 64 * 1024

/** The bytes that end a line in a file of each encoding: LF (and EBCDIC's NL), and CR. */
interface LineEndBytes {
  lf: readonly number[]
  cr: number
}

const lineEndBytesOf = new Map<SupportedEncoding, LineEndBytes>()

/** The bytes the reader's transcoder turns into LF and CR (EBCDIC: LF 0x25 and NL 0x15 or 0x25, CR 0x0D). */
function lineEndBytes(encoding: SupportedEncoding): LineEndBytes {
  if (encoding === 'utf-8') return {lf: [10], cr: 13}
  let ends = lineEndBytesOf.get(encoding)
  if (!ends) {
    const t = createUtf8Transcoder(encoding)
    const lf: number[] = []
    let cr = 13
    for (let b = 0; b < 256; b++) {
      const u = t.write(Uint8Array.of(b))
      if (u.length === 1 && u[0] === 10) lf.push(b)
      else if (u.length === 1 && u[0] === 13) cr = b
    }
    ends = {lf, cr}
    lineEndBytesOf.set(encoding, ends)
  }
  return ends
}

/** The line ends in `bytes` (LF, CRLF, or the encoding's NL; CR alone when there is no LF). */
function lineEndsIn(bytes: Uint8Array, encoding: SupportedEncoding): number {
  const ends = lineEndBytes(encoding)
  let lf = 0
  let cr = 0
  for (const b of bytes) {
    if (ends.lf.includes(b)) lf++
    else if (b === ends.cr) cr++
  }
  return lf > 0 ? lf : cr
}

/** The bytes at a csv: file's start that estimateCsvRecords measures its lines in. */
export const ESTIMATE_SAMPLE_BYTES = 64 * 1024

/**
 * About how many records a csv: file holds, for the "of about N records" of progress (backfill
 * and normalize off a terminal, parity check): the file's size over the mean length of the lines
 * of its first ESTIMATE_SAMPLE_BYTES (the header row, with header=true, kept out of the mean and
 * of the count), never a count of the whole file (which would read a 20 GB file twice). One
 * record a line: a quoted field that spans lines makes the file's lines more than its records,
 * and the estimate then high (the percentage low), never a count of lines beside a count of
 * records. A file the sample holds whole is counted (its lines). undefined when there is nothing
 * to measure: not a regular file (a FIFO or /dev/stdin, whose bytes reading them here would take
 * from the reader; not even opened), an empty file, a sample without a record's line end, a URI
 * the reader refuses (the reader reports it). Never throws: only an estimate.
 */
export async function estimateCsvRecords(uri: SourceUri, ctx: Pick<ReaderContext, 'cwd'> = {}): Promise<number | undefined> {
  try {
    const opts = csvOptionsFromUri(uri)
    const path = isAbsolute(uri.target) ? uri.target : resolve(ctx.cwd ?? process.cwd(), uri.target)
    const st = await stat(path)
    if (!st.isFile() || st.size === 0) return undefined
    const fh = await open(path, 'r')
    try {
      const sample = Buffer.alloc(Math.min(st.size, ESTIMATE_SAMPLE_BYTES))
      const {bytesRead} = await fh.read(sample, 0, sample.length, 0)
      return csvRecordsFromSample(sample.subarray(0, bytesRead), st.size, opts.encoding, opts.header)
    } finally {
      await fh.close()
    }
  } catch {
    return undefined
  }
}

/**
 * estimateCsvRecords' arithmetic: the records of a file of `size` bytes whose first bytes are
 * `sample`. Line ends are the encoding's LF bytes (EBCDIC's NL too; CRLF counts once, by its LF),
 * or CR where the sample holds no LF (a file whose lines end in CR alone).
 */
export function csvRecordsFromSample(sample: Buffer, size: number, encoding: SupportedEncoding, header: boolean): number | undefined {
  if (sample.length === 0) return undefined
  const ends = lineEndBytes(encoding)
  const isEnd = new Uint8Array(256)
  for (const b of ends.lf) isEnd[b] = 1
  let count = 0
  let first = -1
  let last = -1
  const scan = () => {
    for (let i = 0; i < sample.length; i++) {
      if (isEnd[sample[i]!] === 1) {
        if (first < 0) first = i
        last = i
        count++
      }
    }
  }
  scan()
  if (count === 0) {
    isEnd.fill(0)
    isEnd[ends.cr] = 1
    scan()
  }
  const skipped = header ? 1 : 0
  if (sample.length >= size) {
    // the whole file: its lines (a last one without a line end too), less the header
    const lines = count + (last === size - 1 ? 0 : 1)
    return Math.max(0, lines - skipped)
  }
  // the mean length of the sample's whole lines after the header, over the rest of the file
  const from = header ? first + 1 : 0
  const lines = count - skipped
  if (first < 0 || lines < 1) return undefined
  return Math.round((size - from) / ((last + 1 - from) / lines))
}

/**
 * Walks the physical lines of `FileLines`' chunks forward, from the start of a line. Where each
 * line end byte next occurs is kept per chunk, so that a walk over a chunk searches it once per
 * kind of byte (Buffer.indexOf), not once per line.
 */
class LineWalker {
  private posChunk = -1
  private readonly pos: number[]

  constructor(
    private readonly chunks: readonly Buffer[],
    private readonly ends: LineEndBytes,
    private readonly isLf: Uint8Array,
    /** the chunk and offset where the current line starts */
    public c: number,
    public i: number,
  ) {
    this.pos = [...ends.lf, ends.cr].map(() => -1)
  }

  /** where the line last passed (`next`) ends: the first byte of its line end */
  endC = 0
  endI = 0

  /**
   * Moves to the next line (true), setting where the current one ends (endC, endI); false, without
   * moving, when the bytes read hold no end of this line. A CR as the last byte read ends its line
   * only when `final` (else it may be the first half of a CRLF).
   */
  next(final: boolean): boolean {
    const {chunks, pos, isLf} = this
    const cr = this.ends.cr
    const needles = this.ends.lf
    const n = needles.length
    let c = this.c
    let i = this.i
    for (;;) {
      const b = chunks[c]
      if (b === undefined) return false
      const fresh = this.posChunk !== c
      this.posChunk = c
      let p = -1
      for (let k = 0; k <= n; k++) {
        let q = pos[k]!
        if (fresh || (q !== -1 && q < i)) q = pos[k] = b.indexOf(k < n ? needles[k]! : cr, i)
        if (q !== -1 && (p === -1 || q < p)) p = q
      }
      if (p === -1) {
        c++
        i = 0
        continue
      }
      let nc = c
      let ni = p + 1
      if (b[p] === cr) {
        if (ni < b.length) {
          if (isLf[b[ni]!] === 1) ni++
        } else {
          const after = chunks[c + 1]
          if (after === undefined) {
            if (!final) return false
          } else if (isLf[after[0]!] === 1) {
            nc = c + 1
            ni = 1
          }
        }
      }
      this.endC = c
      this.endI = p
      this.c = nc
      this.i = ni
      return true
    }
  }
}

/**
 * The file's own bytes, by physical line as positions count them (a line ends at CRLF, LF or
 * CR), for the dead letters of records that cannot be read: the bytes as they are in the file
 * (windows-1251 stays windows-1251, an invalid byte stays that byte), never text re-encoded.
 * Holds the chunks read from the first line of the record being read on; `release` forgets the
 * lines before a line (once per chunk), so it holds about one chunk and the record in progress.
 */
export class FileLines {
  private chunks: Buffer[] = []
  /** where line `line` starts in chunks[0] */
  private at = 0
  private line = 1
  /** the file offset of chunks[0]'s first byte */
  private dropped = 0
  private readonly ends: LineEndBytes
  private readonly isLf = new Uint8Array(256)

  constructor(encoding: SupportedEncoding) {
    this.ends = lineEndBytes(encoding)
    for (const b of this.ends.lf) this.isLf[b] = 1
  }

  /** The next bytes read from the file. */
  add(chunk: Buffer): void {
    if (chunk.length > 0) this.chunks.push(chunk)
  }

  /** Forgets the lines before `line` (those whose end was read). */
  release(line: number): void {
    if (line <= this.line || this.chunks.length === 0) return
    const w = this.walker()
    let n = this.line
    while (n < line && w.next(false)) n++
    this.line = n
    const drop = Math.min(w.c, this.chunks.length)
    for (let k = 0; k < drop; k++) this.dropped += this.chunks[k]!.length
    if (drop > 0) this.chunks.splice(0, drop)
    this.at = this.chunks.length > 0 ? w.i : 0
  }

  /**
   * The bytes of lines `from` to `to` (Infinity: to the end of what was read) as in the file,
   * without the last one's line end (nor a UTF-8 BOM before line 1, in any encoding: the reader
   * drops it, or refuses the file, see BOM_SNIFF_BYTES), and at most `max` of them
   * (`cut` then). undefined when line `from` is no longer (or not yet) held.
   */
  bytes(from: number, to: number, max = Infinity): {bytes: Buffer; cut: boolean} | undefined {
    if (from < this.line || this.chunks.length === 0) return undefined
    const w = this.walker()
    let n = this.line
    while (n < from && w.next(true)) n++
    if (n < from) return undefined
    const sc = w.c
    const si = w.i
    const lastChunk = this.chunks.length - 1
    let ec = lastChunk
    let ei = this.chunks[lastChunk]!.length
    let endFound = false
    if (to !== Infinity) {
      for (let k = from; k <= to; k++) {
        if (!w.next(true)) break
        if (k === to) {
          ec = w.endC
          ei = w.endI
          endFound = true
        }
      }
    }
    const parts: Buffer[] = []
    let length = 0
    for (let c = sc; c <= ec && c < this.chunks.length; c++) {
      const b = this.chunks[c]!
      const part = b.subarray(c === sc ? si : 0, c === ec ? ei : b.length)
      parts.push(part)
      length += part.length
    }
    let out = Buffer.concat(parts, length)
    if (!endFound) {
      // to the end of what was read: without the line end the file (or the data) ends with
      const last = out.length - 1
      if (last >= 0 && this.isLf[out[last]!] === 1) out = out.subarray(0, last > 0 && out[last - 1] === this.ends.cr ? last - 1 : last)
      else if (last >= 0 && out[last] === this.ends.cr) out = out.subarray(0, last)
    }
    if (from === 1 && startsWithBom(out)) out = out.subarray(3)
    const cut = out.length > max
    return {bytes: cut ? Buffer.from(out.subarray(0, max)) : out, cut}
  }

  /**
   * The bytes read from the start of line `from` on (views of the chunks held; after a UTF-8 BOM
   * before line 1), with the file offset of the first: undefined when line `from` is not held.
   */
  from(from: number): {parts: Buffer[]; offset: number} | undefined {
    if (from < this.line || this.chunks.length === 0) return undefined
    const w = this.walker()
    let n = this.line
    while (n < from && w.next(true)) n++
    if (n < from) return undefined
    let offset = this.dropped
    for (let c = 0; c < w.c && c < this.chunks.length; c++) offset += this.chunks[c]!.length
    const parts = this.chunks.slice(w.c)
    if (parts.length > 0) parts[0] = parts[0]!.subarray(w.i)
    offset += w.i
    if (from === 1 && offset === 0 && parts.length > 0 && startsWithBom(parts[0]!)) {
      parts[0] = parts[0]!.subarray(3)
      offset = 3
    }
    return {parts, offset}
  }

  /** Holds nothing but `parts`, which start line `line` at file offset `offset` (after a record skipped: RecordSkipper). */
  restart(line: number, parts: readonly Buffer[], offset: number): void {
    this.chunks = parts.filter((p) => p.length > 0)
    this.at = 0
    this.line = line
    this.dropped = offset
  }

  private walker(): LineWalker {
    return new LineWalker(this.chunks, this.ends, this.isLf, 0, this.at)
  }
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf])

function startsWithBom(b: Buffer): boolean {
  return b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf
}

/** The bytes after a UTF-8 BOM that tell, in a file of a single-byte encoding, whether it is UTF-8 (mislabelled). */
export const BOM_SNIFF_BYTES = 64 * 1024

/**
 * A file of a single-byte `encoding` (encoding=) that starts with a UTF-8 BOM, followed by
 * `after` (up to BOM_SNIFF_BYTES of it; `whole`: the file ends there): a UsageError when `after`
 * holds non-ASCII bytes and is valid UTF-8 (a character cut at the end of the sample included),
 * the file then being UTF-8 that encoding= mislabels; undefined when the BOM is to be dropped
 * (ASCII after it, or bytes that are not UTF-8: a file of that encoding with three stray bytes).
 */
export function bomMislabel(after: Buffer, encoding: SupportedEncoding, source: string, whole: boolean): UsageError | undefined {
  if (encoding === 'utf-8' || isAscii(after)) return undefined
  const r = utf8Check(after, undefined)
  if (!r.valid || (whole && r.tail)) return undefined
  return new UsageError(
    `${source}: starts with a UTF-8 byte order mark (EF BB BF) and is UTF-8 text after it, not ${encoding} (encoding=${encoding}): read as ${encoding}, every non-ASCII character would be garbled without an error`,
    {hint: 'drop encoding= from the source, or give encoding=utf-8', details: {encoding_given: encoding, encoding_found: 'utf-8'}},
  )
}

/**
 * The value of a dead letter holding a file's bytes: as UTF-8 text when every byte is a character
 * of the file's encoding (a windows-1251 line as readable text, as the file's other dead letters,
 * the JSON of a record's fields, are UTF-8), else the bytes as they are in the file (an invalid
 * byte is the evidence, and U+FFFD in its place would hide which byte it was).
 */
export function deadLetterValue(bytes: Buffer, encoding: SupportedEncoding): Buffer {
  return deadLetterRaw(bytes, encoding).raw
}

/**
 * deadLetterValue as a record carries it: `raw`, with `rawEncoding` when it is the file's bytes
 * (a byte invalid in the encoding among them), so that nobody has to tell from the bytes which it
 * is: windows-1251 `D0 98` (Р, then the invalid 0x98) is also valid UTF-8 ("И").
 */
export function deadLetterRaw(bytes: Buffer, encoding: SupportedEncoding): {raw: Buffer; rawEncoding?: SupportedEncoding} {
  if (encoding === 'utf-8') return isUtf8(bytes) ? {raw: bytes} : {raw: bytes, rawEncoding: encoding}
  const t = createUtf8Transcoder(encoding)
  const utf8 = t.write(bytes)
  return t.sawInvalid ? {raw: bytes, rawEncoding: encoding} : {raw: Buffer.from(utf8)}
}

/** A character as the file's bytes (its encoding's one byte, or UTF-8); undefined when the encoding has no such character. */
function fileBytesOf(ch: string, encoding: SupportedEncoding): Buffer | undefined {
  if (encoding === 'utf-8') return Buffer.from(ch)
  const want = Buffer.from(ch)
  const t = createUtf8Transcoder(encoding)
  for (let b = 0; b < 256; b++) if (Buffer.from(t.write(Uint8Array.of(b))).equals(want)) return Buffer.of(b)
  return undefined
}

/**
 * Finds where a record larger than max_record_bytes ends, without holding it (resyncTooLarge): its
 * bytes as they are in the file, from the start of its first line, are scanned for the first
 * record end outside quotes, as csv-parse reads them: a quote opens quotes at the start of a field
 * only (elsewhere it is a character); inside quotes a doubled quote (or the escape character and
 * the next one) is text, and a quote followed by anything else ends them (a malformed closing
 * quote too: the reader reads on unquoted there as well). The record ends at LF or CRLF (also at
 * CR alone in a file whose lines end in CR); every line end, quoted or not, counts a line.
 */
class RecordSkipper {
  /** inside quotes, opened on `quoteLine` */
  quoting = false
  quoteLine = 0
  /** the file offset of that quote */
  quoteByte = 0
  /** line ends passed */
  lines = 0
  /** bytes passed */
  bytes = 0
  /** the record's last line, once it ended */
  endLine = 0
  /** the last byte passed ended a line */
  lineEnded = false
  private fieldStart = true
  /** inside quotes, the byte before was a quote: closing, unless this one is its double */
  private afterQuote = false
  private escaping = false
  private afterCr = false
  private delimAt = 0
  private readonly isLf = new Uint8Array(256)

  constructor(
    /** the record's first line and file offset */
    readonly startLine: number,
    readonly startByte: number,
    private readonly syntax: {quote: number | undefined; escape: number | undefined; delimiter: Buffer; cr: number; lf: readonly number[]; crEnds: boolean},
  ) {
    for (const b of syntax.lf) this.isLf[b] = 1
  }

  /** Scans `buf`: the offset in it just past the record's end (its line end included), or -1 when the record goes on. */
  scan(buf: Buffer): number {
    const {quote, escape, delimiter, cr, crEnds} = this.syntax
    const isLf = this.isLf
    if (buf.length > 0) this.lineEnded = isLf[buf[buf.length - 1]!] === 1 || buf[buf.length - 1] === cr
    for (let i = 0; i < buf.length; i++) {
      const b = buf[i]!
      if (this.afterCr) {
        this.afterCr = false
        if (isLf[b] === 1) {
          // the LF of a CRLF: one line end, counted at its CR
          if (!this.quoting) return this.end(i + 1)
          continue
        }
        if (crEnds && !this.quoting) return this.end(i)
      }
      if (this.quoting) {
        if (this.escaping) {
          this.escaping = false
          continue
        }
        if (this.afterQuote) {
          this.afterQuote = false
          if (b === quote) continue // a doubled quote: text
          this.quoting = false // the quote before ended the quotes; this byte is read unquoted, below
        } else if (b === quote) {
          this.afterQuote = true
          continue
        } else if (escape !== undefined && b === escape) {
          this.escaping = true
          continue
        } else {
          if (b === cr) {
            this.lines++
            this.afterCr = true
          } else if (isLf[b] === 1) this.lines++
          continue
        }
      }
      if (isLf[b] === 1) {
        this.lines++
        return this.end(i + 1)
      }
      if (b === cr) {
        this.lines++
        this.afterCr = true
        continue
      }
      if (b === delimiter[this.delimAt]) {
        this.delimAt++
        if (this.delimAt === delimiter.length) {
          this.delimAt = 0
          this.fieldStart = true
          continue
        }
        this.fieldStart = false
        continue
      }
      this.delimAt = b === delimiter[0] ? 1 : 0
      if (b === quote && this.fieldStart) {
        this.quoting = true
        this.quoteLine = this.startLine + this.lines
        this.quoteByte = this.startByte + this.bytes + i
      }
      this.fieldStart = false
    }
    this.bytes += buf.length
    return -1
  }

  /** The last line of the file, at its end. */
  get lastLine(): number {
    return this.startLine + this.lines - (this.lineEnded ? 1 : 0)
  }

  /** At the end of the file: whether the record ended there (false: inside quotes never closed). */
  finish(): boolean {
    if (this.quoting && !this.afterQuote) return false
    this.quoting = false
    this.endLine = this.lastLine
    return true
  }

  private end(at: number): number {
    this.bytes += at
    this.endLine = this.startLine + this.lines - 1
    return at
  }
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
  /** resyncTooLarge: the record larger than max_record_bytes csv-parse stopped at, then the one being skipped (RecordSkipper) */
  let toSkip: {record: RawRecordError; start: number; note: string} | undefined
  let skipping: {record: RawRecordError; start: number; note: string; skipper: RecordSkipper} | undefined
  /** times the read went on after a record skipped (resume) */
  let resumes = 0
  /** the record delimiters csv-parse was given (undefined: it guesses them) */
  let parserDelimiters: string[] | undefined

  const pos = (line: number, record = recordNo): Position => ({scheme: 'csv', source, line, record})
  // The file's bytes from the record being read on, for the dead letters of those that cannot be read.
  const fileLines = new FileLines(opts.encoding)
  /** the record being read, once csv-parse found it bad (on_skip): reported at its end (endBad) */
  let bad: {start: number; record: number; why: string} | undefined
  /** the line the record being read starts on: after the previous one and the blank and comment lines since */
  const startOfRecord = (): number => prevEnd + 1 + (api.info.empty_lines - prevEmpty) + (api.info.comment_lines - prevComment)
  /** A bad record's report, with its lines `b.start` to `end` (Infinity: a quote never closed, to the end of the file, cut as a runaway is) */
  const reportBad = (b: NonNullable<typeof bad>, end: number): void => {
    const raw = fileLines.bytes(b.start, end, end === Infinity ? Math.min(opts.maxRecordBytes, TOO_LARGE_KEPT_BYTES) : Infinity)
    const note = raw?.cut ? `; its dead letter holds its first ${raw.bytes.length} bytes` : ''
    // a quote never closed took every line after it into this record: say how many (`read 2` of a
    // 2,000-line file is otherwise a mystery), though its dead letter holds them all
    const last = b.why === QUOTE_NOT_CLOSED && end === Infinity && raw && !raw.cut ? b.start + lineEndsIn(raw.bytes, opts.encoding) : undefined
    // a quote that a later one closed took the lines between into this record (a stray `"` at the
    // start of a field, closed by the next quoted field's opening quote): say how many, which of
    // them were records cannot be told
    const span =
      last !== undefined && last > b.start
        ? ` (lines ${b.start} to ${last}, the rest of the file, are this one record)`
        : end !== Infinity && end > b.start
          ? ` (lines ${b.start} to ${end} are this one record: a quoted field spans them)`
          : ''
    fail({ok: false, code: 'DECODE_ERROR', message: `${source}:${b.start}: ${b.why}${span}${note}`, position: pos(b.start, b.record), ...(raw ? deadLetterRaw(raw.bytes, opts.encoding) : {})})
  }
  // csv-parse's own end of a record, and in its place while a bad record is read
  let onRecord: CsvApi['__onRecord'] = undefined as unknown as CsvApi['__onRecord']
  const endBad: CsvApi['__onRecord'] = function (push) {
    this.__onRecord = onRecord
    const b = bad
    bad = undefined
    if (b) {
      skew += lineBreaksIn(this.state.record).crlf
      const end = this.info.lines - skew
      reportBad(b, end)
      prevEnd = end
      prevEmpty = this.info.empty_lines
      prevComment = this.info.comment_lines
    }
    return onRecord.call(this, push)
  }

  // created at the first bytes, which tell the line ends (lineEndsOf)
  let api: CsvApi = undefined as unknown as CsvApi
  const createParser = (recordDelimiter: string[] | undefined): void => {
  parserDelimiters = recordDelimiter
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
      // Called while the bad record is being read; one report per record, made when the record
      // ends (endBad), so that its dead letter holds all of its lines.
      if (!err) return
      if (err.code === 'CSV_MAX_RECORD_SIZE') {
        // also after another error in the same record: it would otherwise grow to the end of the file
        const start = bad?.start ?? startOfRecord()
        if (bad) api.__onRecord = onRecord
        else recordNo++
        bad = undefined
        lastErrorRecord = api.state.record
        const kept = fileLines.bytes(start, Infinity, Math.min(opts.maxRecordBytes, TOO_LARGE_KEPT_BYTES))
        const note = kept ? `; its dead letter holds ${kept.cut ? `its first ${kept.bytes.length} bytes` : 'its bytes'}, from line ${start}` : ''
        const tooLarge: RawRecordError = {
          ok: false,
          code: 'RECORD_TOO_LARGE',
          message: `${source}:${start}: record is larger than ${opts.maxRecordBytes} bytes (a quote never closed?)${note}`,
          position: pos(start),
          ...(kept ? deadLetterRaw(kept.bytes, opts.encoding) : {}),
        }
        if (opts.resyncTooLarge && columns !== undefined) {
          // profile: its end is looked for once csv-parse has stopped (startSkip), and it is reported there
          toSkip = {record: tooLarge, start, note}
          throw err // stops csv-parse
        }
        fail(tooLarge)
        fatal = new SpecError({file: source, line: start}, `record larger than ${opts.maxRecordBytes} bytes; the rest of the file cannot be split into records`, {
          hint: 'fix the unbalanced quote near this line, or raise max_record_bytes',
        })
        throw err // stops csv-parse; the reader ends with `fatal`
      }
      if (api.state.record === lastErrorRecord) return
      if (err.code === 'INVALID_OPENING_QUOTE') {
        // A quote inside an unquoted field (`37.8"N`, `12" pipe`) is kept as a literal
        // character, as Excel and csv-spectrum read it: the record is not an error (unless it
        // was one already: `"a "b"`).
        api.state.recordHasError = false
        return
      }
      if (columns === undefined) {
        // the header: without its names no record can be read (and reading on would take the first
        // record for the header, silently)
        fatal = new SpecError({file: source, line: startOfRecord()}, `the header cannot be read: ${describeCsvError(err)}`, {
          hint: 'fix the header line, or name the columns with header=false&columns=a,b,c (the header line is then read as a record)',
        })
        throw err // stops csv-parse; the reader ends with `fatal`
      }
      lastErrorRecord = api.state.record
      recordNo++
      bad = {start: startOfRecord(), record: recordNo, why: describeCsvError(err)}
      // the record's end is where csv-parse hands it over (and drops it): see it there
      api.__onRecord = endBad
      if (err.code === 'CSV_INVALID_CLOSING_QUOTE') {
        // csv-parse would stay inside the quote and swallow the next lines; end the quote here
        // so that the record ends with its physical line.
        api.state.quoting = false
      }
    },
  })
  api = (parser as unknown as {api: CsvApi}).api
  onRecord = api.__onRecord
  fastFieldText(api)
  }

  const push = (rec: string[]): void => {
    const info = api.info
    let end = info.lines - skew
    let start = end
    const expected = prevEnd + 1 + (info.empty_lines - prevEmpty) + (info.comment_lines - prevComment)
    if (end !== expected) {
      // The record spans lines: count the line breaks it holds.
      const {breaks, crlf} = lineBreaksIn(rec)
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
      // its dead letter holds the record's lines as they are in the file, to fix and send again
      const raw = fileLines.bytes(start, end)
      fail({
        ok: false,
        code: 'SCHEMA_VIOLATION',
        message: `${source}:${start}: expected ${columns.length} fields (${columns.join(opts.delimiter)}), got ${rec.length}`,
        position: pos(start),
        ...(raw ? deadLetterRaw(raw.bytes, opts.encoding) : {}),
      })
      return
    }
    if (checkReplacement) {
      for (let i = 0; i < rec.length; i++) {
        if (rec[i]!.includes(REPLACEMENT)) {
          const raw = fileLines.bytes(start, end)
          fail({
            ok: false,
            code: 'DECODE_ERROR',
            message: `${source}:${start}: field ${columns[i]} holds bytes that are not valid ${opts.encoding}`,
            position: pos(start),
            field: columns[i]!,
            value: rec[i]!, // as read, U+FFFD for each bad byte; masked by whoever shows it when sensitive
            ...(raw ? deadLetterRaw(raw.bytes, opts.encoding) : {}), // the bad bytes themselves, as they are in the file
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
  /**
   * Single-byte encodings: the first bytes, held until they show whether the file starts with a
   * UTF-8 BOM and, when it does, BOM_SNIFF_BYTES after it (bomMislabel); undefined once decided.
   */
  let head: Buffer[] | undefined = transcoder ? [] : undefined
  let headBytes = 0
  const transcode = (bytes: Buffer): void => {
    const utf8 = transcoder!.write(bytes)
    if (transcoder!.sawInvalid) checkReplacement = true
    feed(utf8, false)
  }
  /** Decides on the bytes in `head` (at the end of the file when `end`): feeds them, without a BOM, or throws bomMislabel's error. */
  const sniffBom = (end: boolean): void => {
    if (head!.length > 1 && head![0]!.length < 3) head = [Buffer.concat(head!, headBytes)] // the first three bytes in one buffer
    const first = head![0] ?? Buffer.alloc(0)
    const bom = startsWithBom(first)
    if (!end && (bom ? headBytes < 3 + BOM_SNIFF_BYTES : first.length < 3 && BOM.subarray(0, first.length).equals(first))) return
    const all = head!.length === 1 ? first : Buffer.concat(head!, headBytes)
    head = undefined
    if (!bom) {
      if (all.length > 0) transcode(all)
      return
    }
    const after = all.subarray(3)
    const mislabel = bomMislabel(after.subarray(0, BOM_SNIFF_BYTES), opts.encoding, source, end && after.length <= BOM_SNIFF_BYTES)
    if (mislabel) throw mislabel
    if (after.length > 0) transcode(after) // without the BOM, as csv-parse drops it from UTF-8 (and FileLines.bytes from line 1)
  }
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
    if (toSkip) {
      startSkip()
      return
    }
    if (err) failed = err
  }

  /** A RecordSkipper for the record that starts on line `line` at file offset `offset`, with the file's quote, escape, delimiter and line ends. */
  const skipperAt = (line: number, offset: number): RecordSkipper => {
    const ends = lineEndBytes(opts.encoding)
    const quote = opts.quote === '' ? undefined : fileBytesOf(opts.quote, opts.encoding)
    const escape = opts.escape !== undefined && opts.escape !== opts.quote ? fileBytesOf(opts.escape, opts.encoding) : undefined
    return new RecordSkipper(line, offset, {
      quote: quote?.length === 1 ? quote[0] : undefined,
      escape: escape?.length === 1 ? escape[0] : undefined,
      delimiter: fileBytesOf(opts.delimiter, opts.encoding) ?? Buffer.from(opts.delimiter),
      cr: ends.cr,
      lf: ends.lf,
      crEnds: parserDelimiters === undefined,
    })
  }

  /** The record csv-parse stopped at (toSkip): its end is looked for from its first line, in the bytes FileLines holds, then in those read next. */
  const startSkip = (): void => {
    const t = toSkip!
    toSkip = undefined
    const held = fileLines.from(t.start)
    if (!held) {
      // cannot happen (FileLines holds the record being read from its first line): stop as without resyncTooLarge
      fail(t.record)
      fatal = new SpecError({file: source, line: t.start}, `record larger than ${opts.maxRecordBytes} bytes; the rest of the file cannot be split into records`, {hint: 'fix the unbalanced quote near this line, or raise max_record_bytes'})
      return
    }
    const skipper = skipperAt(t.start, held.offset)
    skipping = {...t, skipper}
    fileLines.restart(t.start, [], held.offset) // the record is not held (its first bytes are, in its dead letter)
    skipParts(held.parts)
  }

  /** Bytes of the record being skipped: past its end, the read goes on (resume). */
  const skipParts = (parts: readonly Buffer[]): void => {
    for (let k = 0; k < parts.length; k++) {
      const at = skipping!.skipper.scan(parts[k]!)
      if (at >= 0) {
        resume([parts[k]!.subarray(at), ...parts.slice(k + 1)])
        return
      }
    }
  }

  /** The record skipped ended: it is reported, with where it starts and ends, and a new parser reads on from the next line. */
  const resume = (rest: readonly Buffer[]): void => {
    const {record, start, note, skipper} = skipping!
    skipping = undefined
    const end = skipper.endLine
    fail({
      ...record,
      message: `${source}:${start}: record is larger than ${opts.maxRecordBytes} bytes (max_record_bytes): lines ${start} to ${end}, bytes ${skipper.startByte} to ${skipper.startByte + skipper.bytes} of the file, skipped; read on from line ${end + 1}${note}`,
    })
    resumes++
    const gen = resumes
    prevEnd = end
    prevEmpty = 0
    prevComment = 0
    skew = -end // the new parser counts from 1 again
    lastErrorRecord = undefined
    bad = undefined
    createParser(parserDelimiters)
    fileLines.restart(end + 1, rest, skipper.startByte + skipper.bytes)
    for (const b of rest) {
      if (b.length === 0) continue
      if (transcoder) transcode(b)
      else feed(b, false)
      if (skipping || resumes !== gen || failed) return // another record too large: what is left of `rest` is its
    }
  }

  /**
   * At the end of the file, the bad record `b` ran to it inside a quote never closed (within
   * max_record_bytes: FileLines holds all of it). Everything after the line where that quote
   * opened held no quote of its own (else the quote would have closed there), so those lines are
   * records that the stray quote swallowed: the record is reported with its lines up to the
   * quote's (its dead letter), and a new parser reads on from the next line, as after a record
   * skipped (resume). false, with nothing done, when the quote cannot be found in the bytes held
   * (the caller then reports the record to the end of the file, as before).
   */
  const readOnAfterOpenQuote = (b: NonNullable<typeof bad>): boolean => {
    const held = fileLines.from(b.start)
    if (!held) return false
    const skipper = skipperAt(b.start, held.offset)
    for (const part of held.parts) if (skipper.scan(part) >= 0) return false // an end csv-parse did not see: do not guess
    if (skipper.finish() || skipper.quoteLine < b.start) return false
    const quoteLine = skipper.quoteLine
    const raw = fileLines.bytes(b.start, quoteLine)
    const lines = quoteLine > b.start ? `lines ${b.start} to ${quoteLine}` : `line ${b.start}`
    const also = b.why === QUOTE_NOT_CLOSED ? '' : ` (and ${b.why.replace(/^malformed quote: /, '')})`
    const rest = fileLines.from(quoteLine + 1)
    const after = rest && rest.parts.some((p) => p.length > 0) ? `; the lines after it were read on as records, from line ${quoteLine + 1}` : ''
    fail({
      ok: false,
      code: 'DECODE_ERROR',
      message: `${source}:${b.start}: ${QUOTE_NOT_CLOSED}: a quote opened on line ${quoteLine} (byte ${skipper.quoteByte}) is never closed${also}; this record is ${lines}${after}`,
      position: pos(b.start, b.record),
      ...(raw ? deadLetterRaw(raw.bytes, opts.encoding) : {}),
    })
    prevEnd = quoteLine
    prevEmpty = 0
    prevComment = 0
    skew = -quoteLine // the new parser counts from 1 again
    lastErrorRecord = undefined
    createParser(parserDelimiters)
    fileLines.restart(quoteLine + 1, rest?.parts ?? [], rest?.offset ?? skipper.startByte + skipper.bytes)
    for (const part of rest?.parts ?? []) {
      if (part.length === 0) continue
      if (transcoder) transcode(part)
      else feed(part, false)
      if (skipping || failed || fatal) break
    }
    return true
  }

  /** At the end of the file, a record being skipped: it ends there (true), or inside a quote never closed (false, `fatal`). */
  const finishSkip = (): boolean => {
    const {record, start, note, skipper} = skipping!
    if (skipper.finish()) {
      resume([])
      return true
    }
    skipping = undefined
    const last = skipper.lastLine
    fail({
      ...record,
      message: `${source}:${start}: record is larger than ${opts.maxRecordBytes} bytes (max_record_bytes): a quote opened on line ${skipper.quoteLine} is never closed, the record runs to the end of the file (line ${last})${note}`,
    })
    fatal = new SpecError(
      {file: source, line: skipper.quoteLine},
      `a quote opened on line ${skipper.quoteLine} (byte ${skipper.quoteByte}) is never closed: from line ${start} to the end of the file (line ${last}) nothing can be split into records`,
      {
        hint: `close the quote on line ${skipper.quoteLine} (a quote inside a quoted field is written twice: ""); raising max_record_bytes would not help`,
        details: {quote_line: skipper.quoteLine, byte_offset: skipper.quoteByte, record_line: start, last_line: last},
      },
    )
    return false
  }

  for await (const chunk of chunks) {
    if (skipping) {
      // a record larger than max_record_bytes (resyncTooLarge): its bytes are scanned for its end, not held
      if (!transcoder && !checkReplacement) {
        const r = utf8Check(chunk, utf8Tail)
        utf8Tail = r.tail
        if (!r.valid) checkReplacement = true
      }
      skipParts([chunk])
      if (pending()) yield take()
      if (fatal || failed) break
      continue
    }
    fileLines.release(prevEnd + 1) // the records before have ended; a bad one being read starts after them
    fileLines.add(chunk)
    if (head) {
      if (chunk.length > 0) head.push(chunk)
      headBytes += chunk.length
      sniffBom(false)
    } else if (transcoder) {
      transcode(chunk)
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
    if (head) sniffBom(true)
    if (!transcoder && utf8Tail && !checkReplacement) {
      checkReplacement = true // the file ends inside a multi-byte character
    }
    for (;;) {
      // a record being skipped (resyncTooLarge) ends here, or inside a quote never closed (`fatal`)
      if (skipping && !finishSkip()) break
      feed(undefined, true)
      if (skipping) continue // (the last bytes held back made a record too large)
      if (bad) {
        // a quote never closed: the record ran to the end of the file (and ends no other way)
        api.__onRecord = onRecord
        const b = bad
        bad = undefined
        if (readOnAfterOpenQuote(b)) continue // the lines after the quote's are read again: feed their end
        reportBad(b, Infinity)
      }
      break
    }
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

/** The error of a record whose quote is never closed: profile's note looks for it (when it still ran to the end of the file). */
export const QUOTE_NOT_CLOSED = 'malformed quote: the file ends inside a quoted field'

function describeCsvError(err: CsvError): string {
  switch (err.code) {
    case 'CSV_INVALID_CLOSING_QUOTE':
      return 'malformed quote: a closing quote followed by other characters'
    case 'CSV_QUOTE_NOT_CLOSED':
      return QUOTE_NOT_CLOSED
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
