/**
 * Stage `decode`: Kafka message bytes -> a raw record (field name -> JSON value).
 *
 *   value          bytes in `source.encoding` (utf-8 by default; decodeBytes is fatal on
 *                  invalid UTF-8 and on a byte with no character, windows-1251 0x98:
 *                  DECODE_ERROR, never a silent U+FFFD, naming the field that holds the byte
 *                  when the value is JSON all the same)
 *   format json    one JSON object per message; not JSON -> DECODE_ERROR (its first characters
 *                  quoted, unless the spec has a sensitive field); JSON that is not an
 *                  object (an array, a number) -> SCHEMA_VIOLATION. A value in a single-byte
 *                  encoding that starts with a UTF-8 BOM (EF BB BF, a producer that wrote
 *                  UTF-8 with one) is read without it when the rest is no UTF-8 text (ASCII
 *                  is the same in every one of them), and is a DECODE_ERROR saying so when
 *                  the rest is UTF-8 text with other characters: it is UTF-8, not
 *                  `source.encoding` (as the csv format's decoder, legacy-adapters/message.ts)
 *   size           a value over `maxRecordBytes` (1 MiB by default) -> RECORD_TOO_LARGE
 *                  before any decoding, so a 5 MB poison value costs nothing
 *   tombstone      a null value -> DECODE_ERROR
 *
 * Formats csv (one line per message: `source.columns`, `source.delimiter`) and fixed (one
 * copybook record per message: `source.copybook`, relative to the spec file) go through the
 * legacy adapters' per-message decoders (legacy-adapters/message.ts), the same code as the file
 * readers: DECODE_ERROR for bad bytes or quoting, SCHEMA_VIOLATION for a wrong field count or a
 * short record. At start (checkSourceFormat, exit 2): a field whose `from` is no CSV column or
 * copybook field, which every record would have null.
 */
import {readFileSync} from 'node:fs'
import {dirname, resolve} from 'node:path'
import {parseCopybook} from '../../../legacy-adapters/copybook.js'
import {csvMessageDecoder, fixedMessageDecoder, withoutUtf8Bom, type MessageDecoder} from '../../../legacy-adapters/message.js'
import type {RawRecordOk} from '../../../legacy-adapters/types.js'
import {specLocation} from '../../config/spec.js'
import {isCutoverError, SpecError} from '../../errors.js'
import {createStreamDecoder, decodeBytes, resolveEncoding, unmappedBytes, type SupportedEncoding} from '../../normalize/encoding.js'
import {parseJsonExact, RepeatedMemberError, UnusableJsonError} from '../../normalize/json.js'
import type {PipelineContext, Stage, WorkItem} from '../types.js'
import {markDead} from '../types.js'

const PREVIEW = 40

function preview(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ')
  return oneLine.length > PREVIEW ? `${oneLine.slice(0, PREVIEW)}…` : oneLine
}

/**
 * The top-level field of a JSON value that holds a byte with no character in `encoding`
 * (windows-1251 0x98): decoded leniently, that byte is U+FFFD, and the one field whose value
 * (or a key within it) then holds U+FFFD is named. undefined when the value is not a JSON
 * object even so, or when several fields hold U+FFFD (one of them may be a `\uFFFD` escape).
 */
function fieldWithUnmappedByte(value: Buffer, encoding: SupportedEncoding): string | undefined {
  let parsed: unknown
  try {
    parsed = parseJsonExact(createStreamDecoder(encoding).write(value))
  } catch {
    return undefined
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined
  const holders = Object.entries(parsed as Record<string, unknown>).filter(([k, v]) => k.includes('\uFFFD') || JSON.stringify(v).includes('\uFFFD'))
  return holders.length === 1 ? holders[0]![0] : undefined
}

/**
 * Throws SpecError (exit 2) for a source this stage cannot read: a csv source without
 * `columns`, a copybook that cannot be read, and a field whose `from` names no column of the csv
 * source (`columns`) or no field of the copybook. Such a field would be null in every record,
 * silently (or reject every record as empty, when required), as normalize and backfill refuse
 * it for the files (src/jobs/normalize.ts missingColumns).
 */
export function checkSourceFormat(ctx: PipelineContext): void {
  const {source, fields} = ctx.loaded.spec
  if (source.format === 'csv' && !source.columns) {
    throw new SpecError({file: ctx.loaded.file}, 'source.format csv in stream run needs `columns: [...]` (each message is one line, without a header)', {
      hint: 'list the columns in order: columns: [id, acct, amt, ts]',
    })
  }
  let have: string[] | undefined
  let what = 'source.columns'
  if (source.format === 'csv') have = source.columns
  if (source.format === 'fixed' && source.copybook !== undefined) {
    // read here, not at the first message: a missing copybook is a bad spec (exit 2), not an internal error
    const path = resolve(dirname(ctx.loaded.file), source.copybook)
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (e) {
      throw new SpecError(specLocation(ctx.loaded, ['source', 'copybook']), `source.copybook ${source.copybook}: cannot read ${path}: ${(e as Error).message}`, {
        hint: 'a relative copybook path starts at the folder of the spec file',
        cause: e,
      })
    }
    have = parseCopybook(text, path).fields.map((f) => f.name)
    what = `the copybook ${source.copybook}`
  }
  if (have === undefined) return
  const known = new Set(have)
  const missing = Object.entries(fields).filter(([, f]) => !known.has(f.from))
  if (missing.length === 0) return
  const which = missing.map(([name, f]) => (f.from === name ? name : `${f.from} (field ${name})`)).join(', ')
  const shown = have.length > 20 ? `${have.slice(0, 20).join(', ')}, … (${have.length})` : have.join(', ')
  throw new SpecError(specLocation(ctx.loaded, ['fields', missing[0]![0]]), `${what} has no ${source.format === 'csv' ? 'column' : 'field'} ${which}; it has: ${shown}`, {
    hint:
      source.format === 'csv'
        ? "set the field's `from:` to one of source.columns, or add the column to source.columns in its place in the line"
        : "set the field's `from:` to a copybook name in lower_snake_case (TXN-ID is txn_id, an OCCURS item's first is name_1), or remove the field",
  })
}

/** The per-message decoder of a csv or fixed source; undefined for json. */
function legacyDecoder(ctx: PipelineContext): MessageDecoder | undefined {
  const {source} = ctx.loaded.spec
  if (source.format === 'csv') return csvMessageDecoder({columns: source.columns!, delimiter: source.delimiter ?? ',', encoding: source.encoding})
  if (source.format === 'fixed') return fixedMessageDecoder({copybook: resolve(dirname(ctx.loaded.file), source.copybook!), encoding: source.encoding})
  return undefined
}

function rawOf(item: WorkItem, fields: Record<string, unknown>, value: Buffer): RawRecordOk {
  return {
    ok: true,
    fields,
    position: {scheme: 'kafka', source: item.topic, partition: item.partition, offset: item.message.offset, timestamp: item.message.timestamp},
    raw: value,
  }
}

export function decodeStage(ctx: PipelineContext): Stage {
  const encoding = resolveEncoding(ctx.loaded.spec.source.encoding, 'source.encoding')
  const limit = ctx.maxRecordBytes
  const legacy = legacyDecoder(ctx)
  const hasUnmapped = unmappedBytes(encoding).length > 0
  // a value that is not JSON is quoted in its dead letter's message, unless the spec has a
  // sensitive field: its value could be among the characters quoted, and nothing can find it there
  const quotable = !Object.values(ctx.loaded.spec.fields).some((f) => f.sensitive)
  const decodeOne = (item: WorkItem): void => {
    const value = item.message.value
    if (value === null) {
      markDead(item, {code: 'DECODE_ERROR', message: 'the message has no value (a tombstone)', stage: 'decode', field: null})
      return
    }
    if (value.length > limit) {
      markDead(item, {
        code: 'RECORD_TOO_LARGE',
        message: `the value is ${value.length} bytes, more than the limit of ${limit} bytes`,
        stage: 'decode',
        field: null,
      })
      return
    }
    if (legacy) {
      const r = legacy(value)
      if (!r.ok) {
        markDead(item, {code: r.code, message: r.message, stage: 'decode', field: r.field ?? null})
        return
      }
      item.raw = rawOf(item, r.fields, value)
      return
    }
    // the record keeps the message's bytes (raw: value); only the text read drops a BOM
    const body = withoutUtf8Bom(value, encoding)
    if (!Buffer.isBuffer(body)) {
      markDead(item, {code: 'DECODE_ERROR', message: body.message, stage: 'decode', field: null})
      return
    }
    let text: string
    try {
      text = decodeBytes(body, encoding)
    } catch (e) {
      const why = isCutoverError(e) ? e.message : String(e)
      const field = hasUnmapped ? fieldWithUnmappedByte(body, encoding) : undefined
      const what = field === undefined ? 'the value is' : `field ${field} holds bytes that are`
      markDead(item, {code: 'DECODE_ERROR', message: `${what} not valid ${encoding}: ${why}`, stage: 'decode', field: field ?? null})
      return
    }
    let parsed: unknown
    try {
      parsed = parseJsonExact(text)
    } catch (e) {
      if (e instanceof UnusableJsonError) {
        const why = e instanceof RepeatedMemberError ? ': which one is meant is unknown' : ''
        markDead(item, {code: 'DECODE_ERROR', message: `the value is JSON, but ${e.message}${why}`, stage: 'decode', field: null})
        return
      }
      const shown = quotable ? `: "${preview(text)}"` : ` (${value.length} bytes, not quoted: the spec has sensitive fields)`
      markDead(item, {code: 'DECODE_ERROR', message: `the value is not JSON${shown}`, stage: 'decode', field: null})
      return
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      const kind = parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed
      markDead(item, {code: 'SCHEMA_VIOLATION', message: `the value is JSON ${kind}, not an object`, stage: 'decode', field: null})
      return
    }
    item.raw = rawOf(item, parsed as Record<string, unknown>, value)
  }
  return {
    name: 'decode',
    phase: 'prepare',
    run(items) {
      for (const item of items) if (item.status === 'ok') decodeOne(item)
    },
  }
}
