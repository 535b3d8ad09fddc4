/**
 * Per-message decoders, for Kafka topics that carry legacy records one per message
 * (a spec's `source.format: csv | fixed`), so that `stream run` reads them with the same
 * code as the file readers.
 *
 *   csv     the value is one CSV line (a trailing CR/LF is allowed; in cp037/cp1047 the EBCDIC
 *           NL too, read as a line end as the csv: file reader reads it) in `encoding`, with the
 *           given `columns`, `delimiter` and `quote`; quoted fields may hold the delimiter,
 *           quotes ("") and line breaks; a quote inside an unquoted field (`ООО "Ромашка"`,
 *           `12" pipe`) is a literal character, as the csv: file reader reads it. A value in a
 *           single-byte encoding that starts with a UTF-8 BOM (EF BB BF, the first line of a
 *           file a tool wrote with one) is read without it when the rest is no UTF-8 text
 *           (nothing to mistake: ASCII is the same in every one of them), and is a DECODE_ERROR
 *           when the rest is UTF-8 text with other characters: it is UTF-8, not `encoding`
 *   fixed   the value is one record laid out by the copybook, in `encoding` (cp037 default).
 *           Bytes after the copybook's length may only be padding: spaces of the encoding (0x40
 *           in EBCDIC), low-values (0x00) and line ends (CR, LF; EBCDIC NL). Anything else is a
 *           SCHEMA_VIOLATION that gives the sizes (a value of k × the record's length may hold k
 *           records): a second record in the same message would otherwise be dropped unseen,
 *           read 1 and written 1. A producer whose records carry bytes of their own past the
 *           copybook (a longer record layout) needs a FILLER at the copybook's end
 *
 * Results are those of the file readers, without a position (the caller has the Kafka one):
 * DECODE_ERROR for bytes invalid in the encoding (a byte with no character in a single-byte
 * encoding, such as windows-1251 0x98, naming the field that holds it), a malformed quote, a bad
 * packed or zoned digit (naming the field); SCHEMA_VIOLATION for a wrong field count, no line or several
 * lines, a value shorter than the copybook or longer with more than padding after it.
 */
import {isUtf8} from 'node:buffer'
import {readFileSync} from 'node:fs'
import {parse as parseStream, type CsvError} from 'csv-parse'
import {parse as parseSync} from 'csv-parse/sync'
import {RecordError, type RecordErrorCode} from '../src/errors.js'
import {createStreamDecoder, decodeBytes, resolveEncoding, unmappedBytes, type SupportedEncoding} from '../src/normalize/encoding.js'
import {parseCopybook, type Copybook} from './copybook.js'
import {recordDecoder} from './fixed.js'
import {unescapeChar} from './uri.js'

export interface MessageDecodeOk {
  ok: true
  fields: Record<string, unknown>
}

export interface MessageDecodeError {
  ok: false
  code: RecordErrorCode
  message: string
  /** the field at fault, when one is */
  field?: string
}

export type MessageDecodeResult = MessageDecodeOk | MessageDecodeError
export type MessageDecoder = (value: Buffer) => MessageDecodeResult

export interface CsvMessageOptions {
  columns: string[]
  /** default "," (`tab`, `semicolon` and the like are understood) */
  delimiter?: string
  /** default '"'; `none` disables quoting */
  quote?: string
  /** default utf-8 */
  encoding?: string
}

/** What of csv-parse's push parser (`parser.api`) the lenient parse uses, as the csv: file reader does. */
interface CsvPushApi {
  parse(buf: Buffer, end: boolean, push: (record: string[]) => void, close: () => void): Error | undefined
  state: {recordHasError: boolean}
}

/** true when `b` holds a byte above 0x7F */
function hasNonAscii(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i]! > 0x7f) return true
  return false
}

export function csvMessageDecoder(options: CsvMessageOptions): MessageDecoder {
  const encoding = resolveEncoding(options.encoding ?? 'utf-8')
  const columns = options.columns
  const quote = unescapeChar(options.quote ?? '"')
  const parseOptions = {delimiter: unescapeChar(options.delimiter ?? ','), quote: quote === '' ? false : quote, relax_column_count: true, bom: true}
  /**
   * csv-parse refuses a quote inside an unquoted field (INVALID_OPENING_QUOTE), which the csv: file
   * reader keeps as a literal character (Excel and csv-spectrum read it so; Russian exports write
   * `ООО "Ромашка"` unquoted): such a line is parsed again with that one error ignored, as the
   * file reader ignores it. Any other error in the line (a quote closed and followed by more, one
   * never closed) is still thrown. Not `relax_quotes`, which would also repair a malformed closing
   * quote that the file reader refuses.
   */
  const lenient = (text: string): string[][] => {
    const rows: string[][] = []
    let failed: Error | undefined
    const parser = parseStream({
      ...parseOptions,
      skip_records_with_error: true,
      on_skip: (err: CsvError | undefined) => {
        if (!err) return
        if (err.code === 'INVALID_OPENING_QUOTE' && failed === undefined) api.state.recordHasError = false
        else failed ??= err
      },
    })
    const api = (parser as unknown as {api: CsvPushApi}).api
    const err = api.parse(Buffer.from(text), true, (r) => rows.push(r), () => {})
    if (err) throw err
    if (failed) throw failed
    return rows
  }
  const parse = (text: string): string[][] => {
    try {
      return parseSync(text, parseOptions) as string[][]
    } catch (e) {
      if ((e as CsvError).code === 'INVALID_OPENING_QUOTE') return lenient(text)
      throw e
    }
  }
  // EBCDIC's NL (NEL, U+0085: 0x15 in cp037, 0x25 in cp1047) ends a line of z/OS text, as LF:
  // csv-parse knows no NEL (the csv: file reader turns it into LF too, createUtf8Transcoder)
  const ebcdic = encoding === 'cp037' || encoding === 'cp1047'
  const nelAsLf = (text: string): string => (ebcdic && text.includes('\u0085') ? text.replaceAll('\u0085', '\n') : text)
  // a byte with no character (windows-1251 0x98) is U+FFFD in the lenient decoding, and nowhere
  // else: the field that holds one is the field at fault, as the CSV file reader names it
  const hasUnmapped = unmappedBytes(encoding).length > 0
  const faultyField = (value: Buffer): string | undefined => {
    let rows: string[][]
    try {
      rows = parse(createStreamDecoder(encoding).write(value))
    } catch {
      return undefined
    }
    const row = rows.length === 1 ? rows[0]! : undefined
    if (row?.length !== columns.length) return undefined
    const i = row.findIndex((f) => f.includes('\uFFFD'))
    return i === -1 ? undefined : columns[i]
  }
  return (value) => {
    const body = withoutUtf8Bom(value, encoding)
    if (!Buffer.isBuffer(body)) return {ok: false, code: 'DECODE_ERROR', message: body.message}
    value = body
    let text: string
    try {
      text = nelAsLf(decodeBytes(value, encoding))
    } catch (e) {
      const field = hasUnmapped ? faultyField(value) : undefined
      const why = `not valid ${encoding}: ${(e as Error).message}`
      if (field !== undefined) return {ok: false, code: 'DECODE_ERROR', message: `field ${field} holds bytes that are ${why}`, field}
      return {ok: false, code: 'DECODE_ERROR', message: `the value is ${why}`}
    }
    let rows: string[][]
    try {
      rows = parse(text)
    } catch (e) {
      return {ok: false, code: 'DECODE_ERROR', message: `the value is not one CSV line: ${(e as Error).message}`}
    }
    if (rows.length !== 1) {
      return {ok: false, code: 'SCHEMA_VIOLATION', message: rows.length === 0 ? 'the value holds no CSV line' : `the value holds ${rows.length} CSV lines, not one`}
    }
    const row = rows[0]!
    if (row.length !== columns.length) {
      return {ok: false, code: 'SCHEMA_VIOLATION', message: `expected ${columns.length} fields (${columns.join(parseOptions.delimiter)}), got ${row.length}`}
    }
    const fields: Record<string, unknown> = {}
    for (let i = 0; i < row.length; i++) fields[columns[i]!] = row[i]
    return {ok: true, fields}
  }
}

/**
 * A value in a single-byte `encoding` that starts with a UTF-8 BOM (EF BB BF): that BOM is text
 * there (windows-1251 "п»ї"), which would begin the first field, the key often. The value without
 * it; or, when what follows is UTF-8 text with characters beyond ASCII (read as `encoding`, every
 * one of them would be garbled), the DECODE_ERROR message. The value as it is otherwise. For the
 * csv format here and the json format of stream run's decode stage.
 */
export function withoutUtf8Bom(value: Buffer, encoding: SupportedEncoding): Buffer | {message: string} {
  if (encoding === 'utf-8' || value.length < 3 || value[0] !== 0xef || value[1] !== 0xbb || value[2] !== 0xbf) return value
  const rest = value.subarray(3)
  if (hasNonAscii(rest) && isUtf8(rest)) return {message: `the value starts with a UTF-8 byte order mark (EF BB BF) and is UTF-8 text, not ${encoding} (the source.encoding)`}
  return rest
}

export interface FixedMessageOptions {
  /** a parsed copybook, or the path of one */
  copybook: Copybook | string
  /** default cp037 */
  encoding?: string
}

export function fixedMessageDecoder(options: FixedMessageOptions): MessageDecoder {
  const copybook = typeof options.copybook === 'string' ? parseCopybook(readFileSync(options.copybook, 'utf8'), options.copybook) : options.copybook
  const encoding = resolveEncoding(options.encoding ?? 'cp037')
  const decode = recordDecoder(copybook, encoding)
  const need = copybook.recordLength
  const padding = trailingPadding(encoding)
  return (value) => {
    if (value.length < need) return {ok: false, code: 'SCHEMA_VIOLATION', message: `the value is ${value.length} bytes, the copybook needs ${need}`}
    if (value.length > need) {
      let at = need
      while (at < value.length && padding.has(value[at]!)) at++
      if (at < value.length) {
        const records = value.length % need === 0 ? `; it may hold ${value.length / need} records, and stream run reads one record per message` : ''
        return {
          ok: false,
          code: 'SCHEMA_VIOLATION',
          message: `the value is ${value.length} bytes, the copybook's record is ${need}: the ${value.length - need} bytes after it are not padding (byte ${at} is 0x${value[at]!.toString(16).toUpperCase().padStart(2, '0')})${records}; if every record is that long, end the copybook with a FILLER for its last bytes`,
        }
      }
    }
    try {
      return {ok: true, fields: decode(value, 0)}
    } catch (e) {
      if (e instanceof RecordError) return {ok: false, code: 'DECODE_ERROR', message: e.message, ...(e.field ? {field: e.field} : {})}
      throw e
    }
  }
}

/** Bytes that may follow a record in its message: the encoding's space, low-values, line ends. */
function trailingPadding(encoding: SupportedEncoding): ReadonlySet<number> {
  // EBCDIC: space 0x40, NL 0x15, LF 0x25, CR 0x0D; the others (ASCII-based): space 0x20, LF, CR
  return new Set(encoding === 'cp037' || encoding === 'cp1047' ? [0x00, 0x40, 0x15, 0x25, 0x0d] : [0x00, 0x20, 0x0a, 0x0d])
}
