/**
 * fixed: fixed-length mainframe records described by a COBOL copybook (./copybook.ts).
 *
 * File layout:
 *
 *   fixed length (default)   record 1 | record 2 | ...      each `record_length` bytes
 *                            (default: the copybook's length; a larger record_length skips
 *                            the extra bytes at the end of each record, e.g. a CRLF)
 *   rdw=true                 RDW | record | RDW | record ...
 *                            RDW = 2-byte big-endian length, counting the RDW itself, then 2
 *                            bytes 00 00 (IBM variable-blocked, as transferred in binary)
 *
 *   record                   the copybook's fields at their offsets:
 *                            PIC X     text in `encoding` (cp037 default, cp1047, ascii,
 *                                      latin1), trailing spaces and low-values removed
 *                            PIC 9 / S9 DISPLAY   zoned decimal, EBCDIC or ASCII overpunch
 *                            COMP-3    packed decimal
 *                            COMP / COMP-4 / BINARY  big-endian binary, at most the PIC's digits
 *                            COMP-5    big-endian binary, any value of its bytes
 *
 * Yields {ok: true, fields: {name: text}} with numbers as exact decimal strings, and the
 * record's bytes in `raw` (a reject's with `rawEncoding`, the file's encoding: they are never UTF-8 text). The fields object's prototype names the numbers with an implied
 * decimal point (V) as exact decimals (EXACT_DECIMALS, src/normalize/decimal.ts): their "." is
 * the decimal point, which printed text cannot promise ("1.234" may be 1234). A numeric field
 * left uninitialised yields "" (blank), for the normalizer to judge (REQUIRED_FIELD_EMPTY, or null): a zoned or packed field that is all
 * spaces or all low-values (0x00); a COMP / COMP-4 / BINARY field that is all spaces when its
 * PIC cannot hold the value those bytes make (EBCDIC X'4040' = 16448 in S9(4) COMP, always; ASCII
 * X'2020' = 8224 is a value of S9(4) COMP and read as one). Low-values in a binary field are
 * zero, and a COMP-5 field has no blank. What is wrong is a record, not an exception: a bad
 * packed nibble or zoned byte, a COMP / COMP-4 / BINARY value with more digits than its PIC
 * (X'7FFF' = 32767 in S9(4) COMP), or a text byte with no character in the encoding
 * (windows-1251 0x98), is DECODE_ERROR naming the field and the byte offset within the file,
 * with `field` and the field's bytes as `value` (X'C098C1'; unmasked:
 * whoever shows it masks it for a sensitive field); a record shorter than the copybook (a partial
 * record at the end of the file, or an RDW record too short) is SCHEMA_VIOLATION.
 * An RDW that cannot be a length (under 4 bytes, or non-zero bytes 3-4) ends the read with a
 * SpecError: the record boundaries after it are unknown. A file whose records are each followed
 * by a line end (CRLF, LF; EBCDIC NL) while record_length is the copybook's is a UsageError
 * before any record, naming the record_length= that skips them: read as it is, every record
 * after the first would be shifted (lineEndsAfterRecords).
 *
 * Position: the file, the 1-based record number and the record's byte offset in the file.
 */
import {createReadStream} from 'node:fs'
import {readFile, stat} from 'node:fs/promises'
import {isAbsolute, resolve} from 'node:path'
import {RecordError, SpecError, UsageError} from '../src/errors.js'
import {exactDecimalsPrototype} from '../src/normalize/decimal.js'
import {decodeBytes, resolveEncoding, singleByteTable, unmappedByteError, unmappedBytes, type SupportedEncoding} from '../src/normalize/encoding.js'
import {decodeBinary, decodePacked, decodeZoned, parseCopybook, type Copybook, type CopybookField} from './copybook.js'
import {batchedSource} from './source.js'
import type {BatchedRecords, Position, RawRecord, ReaderContext, SourceUri} from './types.js'

export interface FixedOptions {
  source: string
  copybook: Copybook
  encoding: SupportedEncoding
  recordLength: number
  rdw: boolean
}

const CHUNK_BYTES = 256 * 1024
const EBCDIC = new Set<SupportedEncoding>(['cp037', 'cp1047'])

type FieldDecoder = (buf: Buffer, start: number) => string

function fieldDecoder(f: CopybookField, encoding: SupportedEncoding): FieldDecoder {
  const space = EBCDIC.has(encoding) ? 0x40 : 0x20
  // Blank: all spaces, or all low-values (0x00), as uninitialised mainframe fields are.
  const blank = (buf: Buffer, start: number): boolean => {
    const first = buf[start]
    if (first !== space && first !== 0) return false
    for (let i = start + 1; i < start + f.length; i++) if (buf[i] !== first) return false
    return true
  }
  switch (f.kind) {
    case 'text': {
      const table = singleByteTable(encoding)
      const trimmedEnd = (buf: Buffer, start: number): number => {
        let end = start + f.length
        while (end > start && (buf[end - 1] === space || buf[end - 1] === 0)) end--
        return end
      }
      if (!table) return (buf, start) => decodeBytes(buf.subarray(start, trimmedEnd(buf, start)), encoding)
      if (table.every((c) => c.charCodeAt(0) <= 0xff)) {
        // EBCDIC and latin1 map into Latin-1: translate into a scratch buffer, make one string.
        const toLatin1 = Uint8Array.from(table, (c) => c.charCodeAt(0))
        const scratch = Buffer.allocUnsafe(f.length)
        return (buf, start) => {
          const end = trimmedEnd(buf, start)
          for (let i = start; i < end; i++) scratch[i - start] = toLatin1[buf[i]!]!
          return scratch.toString('latin1', 0, end - start)
        }
      }
      // Cyrillic code pages: UTF-16 code units into a scratch buffer, one string.
      const codes = Uint16Array.from(table, (c) => c.charCodeAt(0))
      const scratch = Buffer.allocUnsafe(f.length * 2)
      const bad = unmappedBytes(encoding)
      if (bad.length > 0) {
        // windows-1251 0x98 has no character: DECODE_ERROR, never a silent U+FFFD. A separate
        // loop, so that code pages with a character for every byte (ibm866) pay nothing for it.
        const unmapped = new Uint8Array(256)
        for (const b of bad) unmapped[b] = 1
        return (buf, start) => {
          const end = trimmedEnd(buf, start)
          for (let i = start; i < end; i++) {
            const b = buf[i]!
            if (unmapped[b] === 1) throw unmappedByteError(b, i - start, encoding)
            scratch.writeUInt16LE(codes[b]!, (i - start) * 2)
          }
          return scratch.toString('utf16le', 0, (end - start) * 2)
        }
      }
      return (buf, start) => {
        const end = trimmedEnd(buf, start)
        for (let i = start; i < end; i++) scratch.writeUInt16LE(codes[buf[i]!]!, (i - start) * 2)
        return scratch.toString('utf16le', 0, (end - start) * 2)
      }
    }
    case 'zoned': {
      const opts = {
        charset: EBCDIC.has(encoding) ? ('ebcdic' as const) : ('ascii' as const),
        signed: f.signed,
        ...(f.signLeading ? {leading: true} : {}),
        ...(f.signSeparate ? {separate: f.signSeparate} : {}),
      }
      if (!f.signed && f.scale === 0 && !f.signSeparate) {
        // Unsigned DISPLAY integers keep their leading zeros (dates, times, account numbers).
        return (buf, start) => {
          if (blank(buf, start)) return ''
          const digits = decodeZoned(buf, 0, opts, start, f.length)
          return digits.length === f.length ? digits : digits.padStart(f.length, '0')
        }
      }
      return (buf, start) => (blank(buf, start) ? '' : decodeZoned(buf, f.scale, opts, start, f.length))
    }
    case 'packed':
      return (buf, start) => (blank(buf, start) ? '' : decodePacked(buf, f.scale, start, f.length, {digits: f.digits, signed: f.signed}))
    case 'binary': {
      const pic = {digits: f.digits, ...(f.nativeBinary ? {native: true} : {})}
      // Spaces are blank where they cannot be a value of the field (always in EBCDIC, where
      // X'40..' has more digits than any PIC of its length): an uninitialised field, as a blank
      // COMP-3 beside it. Where they can (ASCII X'2020' = 8224 in S9(4) COMP), a value.
      let spacesAreBlank = false
      if (!f.nativeBinary) {
        try {
          decodeBinary(Buffer.alloc(f.length, space), f.scale, f.signed, 0, f.length, pic)
        } catch (e) {
          if (!(e instanceof RecordError)) throw e
          spacesAreBlank = true // out of the PIC's range: never a value of this field
        }
      }
      const spaces = (buf: Buffer, start: number): boolean => {
        for (let i = start; i < start + f.length; i++) if (buf[i] !== space) return false
        return true
      }
      if (!spacesAreBlank) return (buf, start) => decodeBinary(buf, f.scale, f.signed, start, f.length, pic)
      return (buf, start) => (buf[start] === space && spaces(buf, start) ? '' : decodeBinary(buf, f.scale, f.signed, start, f.length, pic))
    }
  }
}

/** Decodes one record (`buf` from `start`); throws RecordError naming the field. */
export function recordDecoder(copybook: Copybook, encoding: SupportedEncoding): (buf: Buffer, start: number) => Record<string, string> {
  const decoders = copybook.fields.map((f) => ({f, d: fieldDecoder(f, encoding)}))
  // The numbers with an implied decimal point (V in the PIC) come out as "-1234.567": the
  // record's prototype says so (EXACT_DECIMALS), so that a decimal field reads "1.234" of a
  // PIC S9(3)V999 as 1.234, not as printed text (ambiguous, or 1234 with decimal_separator ",").
  const proto = exactDecimalsPrototype(copybook.fields.filter((f) => f.kind !== 'text' && f.scale > 0).map((f) => f.name))
  // One object literal with the copybook's names (snake_case, safe to quote): every record
  // gets the same shape, much faster than assigning keys one by one.
  let build: (v: string[]) => Record<string, string>
  if (proto === undefined) {
    build = new Function('v', 'return {' + copybook.fields.map((f, i) => `${JSON.stringify(f.name)}: v[${i}]`).join(', ') + '}') as typeof build
  } else {
    // with that prototype: a constructor of constant keys (a `__proto__:` literal is slower)
    const Fields = new Function('v', copybook.fields.map((f, i) => `this[${JSON.stringify(f.name)}] = v[${i}]`).join('; ')) as unknown as new (v: string[]) => Record<string, string>
    Fields.prototype = proto
    build = (v) => new Fields(v)
  }
  return (buf, start) => {
    const values: string[] = new Array<string>(decoders.length)
    for (let i = 0; i < decoders.length; i++) {
      const {f, d} = decoders[i]!
      try {
        values[i] = d(buf, start + f.offset)
      } catch (e) {
        const rel = (e as RecordError).details?.byteOffset
        const at = f.offset + (typeof rel === 'number' ? rel : 0)
        const what = (e as Error).message.replace(/ at offset \d+$/, '')
        // no `value`: RecordError values are masked, and the field's sensitivity is the spec's;
        // the reader shows the field's bytes from `fieldOffset` and `fieldLength`
        throw new RecordError('DECODE_ERROR', `field ${f.name} (${f.cobolName} PIC ${f.picture}${f.kind === 'text' ? '' : ' ' + f.kind}): ${what}`, {
          cause: e,
          field: f.name,
          details: {recordByteOffset: at, fieldOffset: f.offset, fieldLength: f.length},
        })
      }
    }
    return build(values)
  }
}

export async function fixedOptionsFromUri(uri: SourceUri, ctx: ReaderContext): Promise<FixedOptions> {
  const p = uri.params
  const cbPath = isAbsolute(p.copybook!) ? p.copybook! : resolve(ctx.cwd ?? process.cwd(), p.copybook!)
  let text: string
  try {
    text = await readFile(cbPath, 'utf8')
  } catch (e) {
    throw new UsageError(`source "${uri.text}": cannot read the copybook ${cbPath}: ${(e as Error).message}`, {cause: e, hint: 'check copybook= (relative paths start at the working directory)'})
  }
  const copybook = parseCopybook(text, p.copybook!)
  if (copybook.fields.length === 0) throw new SpecError({file: p.copybook!}, 'the copybook describes no fields', {hint: 'add elementary items with PIC clauses'})
  const recordLength = p.record_length ? Number(p.record_length) : copybook.recordLength
  if (recordLength < copybook.recordLength) {
    throw new UsageError(`source "${uri.text}": record_length=${recordLength} is shorter than the copybook's ${copybook.recordLength} bytes`, {
      hint: `drop record_length= or give at least ${copybook.recordLength}`,
    })
  }
  return {source: uri.target, copybook, encoding: resolveEncoding(p.encoding ?? 'cp037'), recordLength, rdw: p.rdw === 'true'}
}

/** The reader registered for `fixed:`. */
export function readFixed(uri: SourceUri, ctx: ReaderContext = {}): BatchedRecords {
  const path = isAbsolute(uri.target) ? uri.target : resolve(ctx.cwd ?? process.cwd(), uri.target)
  return batchedSource(async function* () {
    const opts = await fixedOptionsFromUri(uri, ctx)
    try {
      await stat(path)
    } catch (e) {
      throw new UsageError(`source "${uri.text}": cannot open ${path}: ${(e as Error).message}`, {cause: e, hint: 'check the path (relative paths start at the working directory)'})
    }
    const stream = createReadStream(path, {highWaterMark: CHUNK_BYTES, ...(ctx.signal ? {signal: ctx.signal} : {})})
    try {
      yield* fixedBatches(stream as AsyncIterable<Buffer>, opts)
    } finally {
      stream.destroy()
    }
  })
}

/** Parses fixed-length or RDW records from byte chunks (exported for tests). */
export function parseFixedChunks(chunks: AsyncIterable<Buffer>, opts: FixedOptions): BatchedRecords {
  return batchedSource(() => fixedBatches(chunks, opts))
}

async function* fixedBatches(chunks: AsyncIterable<Buffer>, opts: FixedOptions): AsyncGenerator<RawRecord[]> {
  const decode = recordDecoder(opts.copybook, opts.encoding)
  const need = opts.copybook.recordLength
  let pending: Buffer = Buffer.alloc(0)
  let fileOffset = 0 // offset of pending[0] in the file
  let recordNo = 0

  const one = (buf: Buffer, start: number, length: number, offset: number): RawRecord => {
    recordNo++
    const position: Position = {scheme: 'fixed', source: opts.source, record: recordNo, byteOffset: offset}
    const raw = Buffer.from(buf.subarray(start, start + length))
    if (length < need) {
      return {ok: false, code: 'SCHEMA_VIOLATION', message: `${opts.source} record ${recordNo} at byte ${offset}: ${length} bytes, the copybook needs ${need}`, position, raw, rawEncoding: opts.encoding}
    }
    try {
      return {ok: true, fields: decode(buf, start), position, raw}
    } catch (e) {
      if (!(e instanceof RecordError)) throw e
      const rel = e.details.recordByteOffset
      const at = offset + (typeof rel === 'number' ? rel : 0)
      const {fieldOffset, fieldLength} = e.details
      return {
        ok: false,
        code: 'DECODE_ERROR',
        message: `${opts.source} record ${recordNo}, byte ${at}: ${e.message}`,
        position,
        raw,
        rawEncoding: opts.encoding,
        ...(e.field !== undefined ? {field: e.field} : {}),
        ...(typeof fieldOffset === 'number' && typeof fieldLength === 'number' ? {value: hexValue(buf.subarray(start + fieldOffset, start + fieldOffset + fieldLength))} : {}),
      }
    }
  }

  let checkedLineEnds = opts.rdw || opts.recordLength !== need
  for await (const chunk of chunks) {
    const buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    if (!checkedLineEnds) {
      checkedLineEnds = true
      const ends = lineEndsAfterRecords(buf, need, opts.encoding)
      if (ends) {
        throw new UsageError(
          `${opts.source}: each ${need}-byte record of the copybook is followed by a line end (${ends.name} at bytes ${ends.at.join(', ')}${ends.more ? ', ...' : ''}): read as ${need}-byte records, every record after the first would start ${ends.length} byte${ends.length === 1 ? '' : 's'} late`,
          {
            hint: `add record_length=${need + ends.length} to the source to skip the line ends${opts.copybook.fields.some((f) => f.kind === 'packed' || f.kind === 'binary') ? ' (a file with COMP-3 or binary fields that has line ends was probably transferred as text, which corrupts those fields: transfer it in binary)' : ''}`,
          },
        )
      }
    }
    const batch: RawRecord[] = []
    let pos = 0
    if (opts.rdw) {
      while (pos + 4 <= buf.length) {
        const len = buf.readUInt16BE(pos)
        if (len < 4 || buf[pos + 2] !== 0 || buf[pos + 3] !== 0) {
          if (batch.length > 0) yield batch
          throw new SpecError({file: opts.source}, `byte ${fileOffset + pos}: ${hexBytes(buf.subarray(pos, pos + 4))} is not a record descriptor word`, {
            hint: 'check rdw=true (the file may be fixed-length) and that it was transferred in binary, with RDWs kept',
          })
        }
        if (pos + len > buf.length) break
        batch.push(one(buf, pos + 4, len - 4, fileOffset + pos + 4))
        pos += len
      }
    } else {
      const size = opts.recordLength
      while (pos + size <= buf.length) {
        batch.push(one(buf, pos, need, fileOffset + pos))
        pos += size
      }
    }
    pending = pos === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos))
    fileOffset += pos
    if (batch.length > 0) yield batch
  }
  if (pending.length > 0) {
    if (opts.rdw) {
      recordNo++
      yield [{
        ok: false,
        code: 'SCHEMA_VIOLATION',
        message: `${opts.source} record ${recordNo} at byte ${fileOffset}: the file ends inside a record (${pending.length} bytes left)`,
        position: {scheme: 'fixed', source: opts.source, record: recordNo, byteOffset: fileOffset},
        raw: pending,
        rawEncoding: opts.encoding,
      }]
    } else {
      yield [one(pending, 0, Math.min(pending.length, need), fileOffset)]
    }
  }
}

/** Line ends of text files: CRLF, LF, and for EBCDIC NL (0x15), LF (0x25) and CR LF (0x0D 0x25). */
const LINE_ENDS: Record<'ascii' | 'ebcdic', {name: string; bytes: number[]}[]> = {
  ascii: [
    {name: 'CRLF', bytes: [0x0d, 0x0a]},
    {name: 'LF', bytes: [0x0a]},
  ],
  ebcdic: [
    {name: 'CR LF (0D 25)', bytes: [0x0d, 0x25]},
    {name: 'NL (15)', bytes: [0x15]},
    {name: 'LF (25)', bytes: [0x25]},
  ],
}

/**
 * Whether the first bytes of a file (`head`) are `need`-byte records each followed by a line end
 * (a fixed-width file written or transferred as text): a line end right after every record in
 * `head`, at least two of them, or one that ends `head` exactly. Undefined when not: a binary
 * file of `need`-byte records has a line end at all these places only by a chance that falls
 * with every record looked at.
 */
export function lineEndsAfterRecords(head: Uint8Array, need: number, encoding: SupportedEncoding): {name: string; length: number; at: number[]; more: boolean} | undefined {
  for (const end of LINE_ENDS[EBCDIC.has(encoding) ? 'ebcdic' : 'ascii']) {
    const k = end.bytes.length
    const at: number[] = []
    let ok = true
    for (let p = need; p + k <= head.length; p += need + k) {
      if (!end.bytes.every((b, i) => head[p + i] === b)) {
        ok = false
        break
      }
      at.push(p)
    }
    if (ok && (at.length >= 2 || (at.length === 1 && head.length === need + k))) return {name: end.name, length: k, at: at.slice(0, 3), more: at.length > 3}
  }
  return undefined
}

/** A field's bytes as a COBOL hexadecimal literal: X'C098C1404040'. */
function hexValue(b: Uint8Array): string {
  return `X'${Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex').toUpperCase()}'`
}

function hexBytes(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).toUpperCase().padStart(2, '0')).join(' ')
}
