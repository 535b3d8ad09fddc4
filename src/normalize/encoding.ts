/**
 * Character encodings of legacy sources: bytes in, JavaScript strings out.
 *
 *   utf-8          TextDecoder with `fatal: true`: an invalid byte sequence is a DECODE_ERROR,
 *                  never a silent U+FFFD. A leading BOM (EF BB BF) is dropped.
 *   windows-1251   Cyrillic Windows code page (Russian bank exports), via iconv-lite; byte 0x98
 *                  has no character: decodeBytes makes it a DECODE_ERROR, never a silent U+FFFD
 *   ibm866         Cyrillic DOS code page (old terminals, cp866), via iconv-lite
 *   latin1         ISO-8859-1, one byte = one code point
 *   cp037          EBCDIC US/Canada (IBM z/OS default), 256-entry table from `codepage`
 *   cp1047         EBCDIC Latin-1/Open Systems (z/OS UNIX), 256-entry table from `codepage`
 *   ascii          7-bit; a byte above 0x7F is a DECODE_ERROR
 *
 * The EBCDIC tables are built once, on first use, from the `codepage` package (SheetJS):
 * decoding is then one array look-up per byte.
 */
import {isUtf8} from 'node:buffer'
import {createRequire} from 'node:module'
import iconv from 'iconv-lite'
import {RecordError, UsageError} from '../errors.js'

export const SUPPORTED_ENCODINGS = ['utf-8', 'windows-1251', 'ibm866', 'latin1', 'cp037', 'cp1047', 'ascii'] as const
export type SupportedEncoding = (typeof SUPPORTED_ENCODINGS)[number]

const ALIASES: Record<string, SupportedEncoding> = {
  'utf-8': 'utf-8',
  utf8: 'utf-8',
  'windows-1251': 'windows-1251',
  windows1251: 'windows-1251',
  cp1251: 'windows-1251',
  win1251: 'windows-1251',
  ibm866: 'ibm866',
  cp866: 'ibm866',
  '866': 'ibm866',
  latin1: 'latin1',
  'iso-8859-1': 'latin1',
  iso88591: 'latin1',
  cp037: 'cp037',
  ibm037: 'cp037',
  'ibm-037': 'cp037',
  ebcdic: 'cp037',
  cp1047: 'cp1047',
  ibm1047: 'cp1047',
  'ibm-1047': 'cp1047',
  ascii: 'ascii',
  'us-ascii': 'ascii',
}

/** Canonical name of a supported encoding, or `undefined`. Case-insensitive; knows common aliases (cp1251, cp866, utf8). */
export function lookupEncoding(name: string): SupportedEncoding | undefined {
  return ALIASES[name.trim().toLowerCase()]
}

/** Like `lookupEncoding`, but an unknown name is a UsageError listing what is supported. */
export function resolveEncoding(name: string, where = 'encoding'): SupportedEncoding {
  const enc = lookupEncoding(name)
  if (!enc) {
    throw new UsageError(`${where} "${name}" is not supported`, {hint: `use one of: ${SUPPORTED_ENCODINGS.join(', ')}`})
  }
  return enc
}

const EBCDIC_CODEPAGE: Partial<Record<SupportedEncoding, number>> = {cp037: 37, cp1047: 1047}

interface ByteTable {
  /** byte -> one-character string */
  decode: string[]
  /** code point -> byte (for encodeString) */
  encode: Map<string, number>
}

const tables = new Map<SupportedEncoding, ByteTable>()

function byteTable(enc: SupportedEncoding): ByteTable {
  let t = tables.get(enc)
  if (t) return t
  const cp = EBCDIC_CODEPAGE[enc]
  if (cp === undefined) throw new Error(`no byte table for ${enc}`)
  // Only the single-byte tables (75 kB), not the whole package with the CJK pages.
  const cptable = createRequire(import.meta.url)('codepage/dist/sbcs.full.js') as Record<number, {dec: Record<number, string>}>
  const dec = cptable[cp]?.dec
  if (!dec) throw new Error(`codepage ${cp} is missing from the codepage package`)
  const decode: string[] = new Array<string>(256)
  const encode = new Map<string, number>()
  for (let b = 0; b < 256; b++) {
    const ch = dec[b] ?? '\uFFFD'
    decode[b] = ch
    if (!encode.has(ch)) encode.set(ch, b)
  }
  t = {decode, encode}
  tables.set(enc, t)
  return t
}

function decodeTable(buf: Uint8Array, decode: string[]): string {
  // Chunked String.fromCharCode-like join: fastest plain-JS route for short records.
  let s = ''
  for (let i = 0; i < buf.length; i++) s += decode[buf[i]!]
  return s
}

const utf8Fatal = new TextDecoder('utf-8', {fatal: true})
const ICONV_NAME: Partial<Record<SupportedEncoding, string>> = {'windows-1251': 'win1251', ibm866: 'cp866'}

function decodeError(message: string, cause?: unknown, byteOffset?: number): RecordError {
  return new RecordError('DECODE_ERROR', message, {...(cause === undefined ? {} : {cause}), ...(byteOffset === undefined ? {} : {details: {byteOffset}})})
}

/**
 * DECODE_ERROR for a byte that has no character in a single-byte encoding (windows-1251 0x98),
 * with its offset in the message (last, as `at offset N`) and in `details.byteOffset`.
 */
export function unmappedByteError(byte: number, offset: number, encoding: SupportedEncoding): RecordError {
  return decodeError(`no character in ${encoding} for byte 0x${byte.toString(16).padStart(2, '0')} at offset ${offset}`, undefined, offset)
}

/** Throws unmappedByteError for the first byte of `buf` in `bad` (one native indexOf per unmapped byte). */
function checkMapped(buf: Buffer, bad: readonly number[], encoding: SupportedEncoding): void {
  let first = -1
  for (const b of bad) {
    const at = buf.indexOf(b)
    if (at !== -1 && (first === -1 || at < first)) first = at
  }
  if (first !== -1) throw unmappedByteError(buf[first]!, first, encoding)
}

/**
 * Decodes bytes in a supported encoding. Invalid UTF-8, a byte above 0x7F in ASCII, and a byte
 * with no character in a single-byte encoding (windows-1251 0x98) throw
 * `RecordError('DECODE_ERROR')`, never a silent U+FFFD (the message and `details.byteOffset`
 * name the byte's offset, except for UTF-8). A U+FFFD written in valid UTF-8 is a character
 * like any other.
 */
export function decodeBytes(buf: Uint8Array, encoding: SupportedEncoding): string {
  switch (encoding) {
    case 'utf-8':
      try {
        return utf8Fatal.decode(buf)
      } catch (e) {
        throw decodeError('invalid UTF-8 byte sequence', e)
      }
    case 'latin1':
      return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('latin1')
    case 'ascii':
      for (let i = 0; i < buf.length; i++) {
        if (buf[i]! > 0x7f) throw decodeError(`byte 0x${buf[i]!.toString(16).padStart(2, '0')} at offset ${i} is not ASCII`, undefined, i)
      }
      return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('latin1')
    case 'cp037':
    case 'cp1047': {
      const bad = unmappedBytes(encoding)
      if (bad.length > 0) checkMapped(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength), bad, encoding)
      return decodeTable(buf, byteTable(encoding).decode)
    }
    case 'windows-1251':
    case 'ibm866': {
      const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
      const bad = unmappedBytes(encoding)
      if (bad.length > 0) checkMapped(b, bad, encoding)
      return iconv.decode(b, ICONV_NAME[encoding]!, {stripBOM: false})
    }
  }
}

/**
 * Encodes a string (tests and fixture generation). A character the encoding cannot
 * represent is an error, never a silent '?'.
 */
export function encodeString(s: string, encoding: SupportedEncoding): Buffer {
  switch (encoding) {
    case 'utf-8':
      return Buffer.from(s, 'utf8')
    case 'latin1':
    case 'ascii': {
      const max = encoding === 'ascii' ? 0x7f : 0xff
      for (let i = 0; i < s.length; i++) {
        if (s.charCodeAt(i) > max) throw new RangeError(`"${s[i]}" cannot be encoded in ${encoding}`)
      }
      return Buffer.from(s, 'latin1')
    }
    case 'cp037':
    case 'cp1047': {
      const {encode} = byteTable(encoding)
      const out = Buffer.alloc(s.length)
      for (let i = 0; i < s.length; i++) {
        const b = encode.get(s[i]!)
        if (b === undefined) throw new RangeError(`"${s[i]}" cannot be encoded in ${encoding}`)
        out[i] = b
      }
      return out
    }
    case 'windows-1251':
    case 'ibm866': {
      const out = iconv.encode(s, ICONV_NAME[encoding]!)
      const back = iconv.decode(out, ICONV_NAME[encoding]!)
      if (back !== s) throw new RangeError(`"${s}" cannot be encoded in ${encoding}`)
      return out
    }
  }
}

/** A streaming decoder: bytes may split a character across chunks. */
export interface StreamDecoder {
  write(chunk: Buffer): string
  end(): string
}

/**
 * A streaming decoder for text files (CSV). Not fatal: an invalid byte becomes U+FFFD,
 * which the CSV reader turns into a DECODE_ERROR for the record that holds it (a file is
 * not abandoned for one bad byte). A UTF-8 BOM is stripped.
 */
export function createStreamDecoder(encoding: SupportedEncoding): StreamDecoder {
  switch (encoding) {
    case 'utf-8': {
      const d = new TextDecoder('utf-8', {fatal: false, ignoreBOM: false})
      return {write: (c) => d.decode(c, {stream: true}), end: () => d.decode()}
    }
    case 'latin1':
      return {write: (c) => c.toString('latin1'), end: () => ''}
    case 'ascii':
      return {
        write: (c) => {
          const s = c.toString('latin1')
          // eslint-disable-next-line no-control-regex
          return /[^\x00-\x7f]/.test(s) ? s.replace(/[^\x00-\x7f]/g, '\uFFFD') : s
        },
        end: () => '',
      }
    case 'cp037':
    case 'cp1047': {
      const {decode} = byteTable(encoding)
      return {write: (c) => decodeTable(c, decode), end: () => ''}
    }
    case 'windows-1251':
    case 'ibm866': {
      const d = iconv.getDecoder(ICONV_NAME[encoding]!, {stripBOM: false})
      return {write: (c) => d.write(c), end: () => d.end() ?? ''}
    }
  }
}

/** Re-encodes bytes of a single-byte encoding as UTF-8, without building a JS string. */
export interface Utf8Transcoder {
  write(chunk: Uint8Array): Buffer
  /** true once a byte with no character in the encoding was seen (written as U+FFFD) */
  readonly sawInvalid: boolean
}

const transcodeTables = new Map<SupportedEncoding, {len: Uint8Array; bytes: Uint8Array; invalid: Uint8Array}>()

/**
 * A transcoder from a single-byte encoding (all supported ones but utf-8) to UTF-8: one
 * table look-up per byte. For CSV text: EBCDIC's NL (NEL) becomes LF, a line end. The CSV reader feeds csv-parse with its output, which is about
 * twice as fast as decoding to a string and encoding that string again.
 */
export function createUtf8Transcoder(encoding: Exclude<SupportedEncoding, 'utf-8'>): Utf8Transcoder {
  let t = transcodeTables.get(encoding)
  if (!t) {
    const all = new Uint8Array(256)
    for (let b = 0; b < 256; b++) all[b] = b
    const chars =
      encoding === 'ascii'
        ? Array.from(all, (b) => (b < 0x80 ? String.fromCharCode(b) : '\uFFFD'))
        : Array.from(createStreamDecoder(encoding).write(Buffer.from(all)))
    const len = new Uint8Array(256)
    const bytes = new Uint8Array(256 * 3)
    const invalid = new Uint8Array(256)
    for (let b = 0; b < 256; b++) {
      // EBCDIC's NL (NEL, U+0085: 0x15 in cp037, 0x25 in cp1047), a line end of z/OS text files, as LF: csv-parse knows no NEL
      const decoded = chars[b] ?? '\uFFFD'
      const ch = (encoding === 'cp037' || encoding === 'cp1047') && decoded === '\u0085' ? '\n' : decoded
      const u = Buffer.from(ch, 'utf8')
      len[b] = u.length
      bytes.set(u, b * 3)
      invalid[b] = ch === '\uFFFD' ? 1 : 0
    }
    t = {len, bytes, invalid}
    transcodeTables.set(encoding, t)
  }
  const {len, bytes, invalid} = t
  const identityAscii = encoding !== 'cp037' && encoding !== 'cp1047' // bytes below 0x80 are themselves
  const state = {sawInvalid: false}
  return {
    get sawInvalid() {
      return state.sawInvalid
    },
    write(chunk) {
      const out = Buffer.allocUnsafe(chunk.length * 3)
      let o = 0
      for (let i = 0; i < chunk.length; i++) {
        const b = chunk[i]!
        if (identityAscii && b < 0x80) {
          out[o++] = b
          continue
        }
        const l = len[b]!
        const at = b * 3
        out[o++] = bytes[at]!
        if (l > 1) out[o++] = bytes[at + 1]!
        if (l > 2) out[o++] = bytes[at + 2]!
        if (invalid[b] === 1) state.sawInvalid = true
      }
      return out.subarray(0, o)
    },
  }
}

const singleByteTables = new Map<SupportedEncoding, string[]>()

/**
 * byte -> character for the single-byte encodings (cp037, cp1047, latin1, windows-1251,
 * ibm866), for decoders that read fields in place (the fixed: reader). A byte with no
 * character (see unmappedBytes) is U+FFFD here: such a decoder must check for it.
 * `undefined` for utf-8 and ascii, which need decodeBytes' checks.
 */
export function singleByteTable(encoding: SupportedEncoding): readonly string[] | undefined {
  if (encoding === 'utf-8' || encoding === 'ascii') return undefined
  let t = singleByteTables.get(encoding)
  if (!t) {
    const all = new Uint8Array(256)
    for (let b = 0; b < 256; b++) all[b] = b
    t = Array.from(createStreamDecoder(encoding).write(Buffer.from(all)))
    if (t.length !== 256) throw new Error(`${encoding} is not a single-byte encoding`)
    singleByteTables.set(encoding, t)
  }
  return t
}

const unmappedTables = new Map<SupportedEncoding, readonly number[]>()

/**
 * The bytes that have no character in a single-byte encoding: [0x98] for windows-1251, none
 * for cp037, cp1047, latin1 and ibm866 (every byte is a character). Empty for utf-8 and ascii,
 * whose invalid bytes decodeBytes finds itself. Lets a decoder check only when there is
 * something to find.
 */
export function unmappedBytes(encoding: SupportedEncoding): readonly number[] {
  if (encoding === 'utf-8' || encoding === 'ascii') return []
  let bad = unmappedTables.get(encoding)
  if (!bad) {
    bad = singleByteTable(encoding)!.flatMap((c, b) => (c === '\uFFFD' ? [b] : []))
    unmappedTables.set(encoding, bad)
  }
  return bad
}

/**
 * Bytes in a supported encoding as text for a person to read (`dlq inspect` of a dead letter
 * whose value is a file's bytes): each byte with no character in the encoding (windows-1251
 * 0x98, a byte above 0x7F in ASCII, a byte of no UTF-8 character) written `\x98`, never U+FFFD
 * (which hides which byte it was) and never an error. `marked`: how many bytes were so written.
 */
export function decodeMarked(buf: Uint8Array, encoding: SupportedEncoding): {text: string; marked: number} {
  const mark = (b: number) => `\\x${b.toString(16).padStart(2, '0')}`
  let text = ''
  let marked = 0
  if (encoding === 'utf-8') {
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
    if (isUtf8(b)) return {text: b.toString('utf8'), marked: 0}
    let i = 0
    while (i < b.length) {
      const c = b[i]!
      const len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0
      if (len > 0 && i + len <= b.length && (len === 1 || isUtf8(b.subarray(i, i + len)))) {
        text += b.toString('utf8', i, i + len)
        i += len
      } else {
        text += mark(c)
        marked++
        i++
      }
    }
    return {text, marked}
  }
  const table = encoding === 'ascii' ? undefined : singleByteTable(encoding)!
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!
    const ch = table ? table[c]! : c < 0x80 ? String.fromCharCode(c) : '\uFFFD'
    if (ch === '\uFFFD') {
      text += mark(c)
      marked++
    } else {
      text += ch
    }
  }
  return {text, marked}
}
