/**
 * How a dead letter's value is shown in samples, without ever showing a sensitive value:
 *
 * - with a spec (`--spec`), a JSON value is shown with the input fields of every `sensitive`
 *   field masked (`from`, dotted paths included) by the normalizer's own `maskValue`;
 * - without a spec nothing is known to be safe: every leaf of the JSON value is masked and
 *   only the structure (member names) is shown;
 * - a value that is not a JSON object is shown as text (cut at 200 characters) only when a
 *   spec is given and has no sensitive field; otherwise only its size is said.
 *
 * A JSON value is read as the normalizer reads it (parseJsonExact): a number a double cannot hold
 * exactly (`0.30000000000000001`, a 20-digit account number) is a JsonNumberText and shows as its
 * text, as written, where JSON.parse would show 0.3 or 40817810099910000000 beside a message that
 * quotes the digits. (JSON.stringify, in --json and in the text view, writes it as a JSON string
 * of that text: Node 20 has no raw JSON numbers.) A value that gives a member name twice, which
 * the normalizer refuses, is shown as JSON.parse reads it (the last one), and so is one holding a
 * lone UTF-16 surrogate (also refused).
 *
 * A value that is a file's bytes in another encoding than UTF-8 (a backfill's dead letter of a
 * windows-1251 line holding a byte invalid in it, of an EBCDIC record) says so in its
 * `cutover.source.encoding` header: it is decoded with that encoding, each byte with no character
 * in it written `\x98` (decodeMarked), and `encoding` says so. Shown as any other text is (or
 * not: the rules above); the bytes themselves are untouched.
 *
 * `stream run`'s dead letters have no such header: their value is the message as the pipeline's
 * topic held it, in the spec's `source.encoding`. With a `--spec` whose name is the dead letter's
 * `cutover.pipeline`, a value is decoded with that encoding when it is not UTF-8, or is not valid
 * UTF-8 (valueDecodingOf): as text for a csv or fixed source, and for a json source as JSON
 * (masked as above) when every byte is a character of the encoding, else as text. The header,
 * when there is one, wins. A dead letter `backfill` wrote itself (cutover.source.partition -1 and
 * cutover.backfill.id) is UTF-8 unless its header says otherwise, and is read so whatever the spec
 * says.
 */
import {isUtf8} from 'node:buffer'
import {createHash} from 'node:crypto'
import {namesOf, sensitiveInputs, type PipelineSpec} from '../config/spec.js'
import {JsonNumberText, maskValue, parseJsonExact} from '../normalize/index.js'
import {UnusableJsonError} from '../normalize/json.js'
import {decodeMarked, lookupEncoding, type SupportedEncoding} from '../normalize/encoding.js'
import {SOURCE_ENCODING_HEADER} from '../runtime/outbox.js'
import {headerText} from './headers.js'
import type {DlqHeaders} from './reader.js'

export {SOURCE_ENCODING_HEADER}

export type ValueMasking = 'sensitive-fields' | 'all'

export interface ShownValue {
  /** the value as shown: a JSON value with masked leaves, a text preview, or null */
  value: unknown
  masking: ValueMasking
  /** why the value (or part of it) is not shown; how it was decoded */
  note?: string
  /** the value's bytes were decoded from this encoding (its cutover.source.encoding header, or the --spec's source.encoding) */
  encoding?: SupportedEncoding
}

/** How a dead letter's value bytes are read for showing, when not as UTF-8 alone. */
export interface ValueDecoding {
  encoding: SupportedEncoding
  /**
   * who says: the dead letter's cutover.source.encoding header, or the --spec (the dead letter is
   * of its pipeline: the message as stream run read it, in its source.encoding)
   */
  from: 'header' | 'spec'
  /** the spec's source.format is json: the decoded text is read as JSON (a file's bytes never are) */
  json?: boolean
}

/**
 * The encoding a dead letter's `cutover.source.encoding` header names (the last one given), when
 * it is one cutover reads; undefined without one (the value is UTF-8, or nobody said).
 */
export function valueEncodingOf(headers: DlqHeaders | undefined): SupportedEncoding | undefined {
  const v = headers?.[SOURCE_ENCODING_HEADER]
  const one = Array.isArray(v) ? v[v.length - 1] : v
  if (one === undefined || one === null) return undefined
  return lookupEncoding(Buffer.isBuffer(one) ? one.toString('utf8') : one)
}

/**
 * How to read a dead letter's value for showing: with the encoding its cutover.source.encoding
 * header names, else, for a dead letter of the --spec's pipeline (its `cutover.pipeline` is the
 * spec's name), with the spec's source.encoding (the topic's messages are in it) when that is not
 * utf-8 or the value is not valid UTF-8; undefined otherwise (read as UTF-8, as before). A dead
 * letter backfill wrote itself (`cutover.source.partition` -1, with cutover.backfill.id: a record
 * it read and the spec rejected, never a message on the topic) holds UTF-8 text or JSON unless the
 * header says otherwise: not read with the spec's encoding.
 */
export function valueDecodingOf(headers: DlqHeaders | undefined, value: Buffer | null, spec: PipelineSpec | undefined): ValueDecoding | undefined {
  const said = valueEncodingOf(headers)
  if (said !== undefined) return {encoding: said, from: 'header'}
  if (!spec || value === null || headerText(headers, 'cutover.pipeline') !== spec.name) return undefined
  if (headerText(headers, 'cutover.source.partition') === '-1' && headerText(headers, BACKFILL_ID_HEADER) !== null) return undefined
  const encoding = lookupEncoding(spec.source.encoding)
  if (encoding === undefined || (encoding === 'utf-8' && isUtf8(value))) return undefined
  return {encoding, from: 'spec', json: spec.source.format === 'json'}
}

/** backfill/run.ts BACKFILL_ID_HEADER (not imported: run.ts would load backfill's readers into every dlq command) */
const BACKFILL_ID_HEADER = 'cutover.backfill.id'

/**
 * Whether a dead letter's Kafka key is masked in samples: without a spec (nothing is known to be
 * safe, as for the value), or when one of the spec's `key` fields is `sensitive` (the key is that
 * value: a card number keyed by its PAN).
 */
export function keyIsSensitive(spec: PipelineSpec | undefined): boolean {
  if (!spec) return true
  return namesOf(spec.key).some((k) => spec.fields[k]?.sensitive === true)
}

/** A dead letter's Kafka key as samples show it. */
export function showDeadLetterKey(key: string | null, masked: boolean): string | null {
  return key === null || !masked ? key : maskValue(key)
}

const KEY_DIGEST = /^sha256:[0-9a-f]{64}$/

/**
 * A `--key` as the replay ledger keeps it (`cutover.replays.selection`): `sha256:` and the
 * SHA-256 of its UTF-8 bytes, never the key itself (a card number, an account id). Two
 * selections are still told apart, and the same --key given again finds its row. A digest is
 * returned as it is, and a key stored by an older version (the key itself) is digested: the
 * form every comparison uses.
 */
export function keyDigest(key: string): string {
  return KEY_DIGEST.test(key) ? key : `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`
}

/**
 * How a `--key` (or its digest) is shown in messages, logs and output: `sha256:` and the first 12
 * hex digits of its digest, enough to match a ledger row, not the key.
 */
export function showKeyDigest(keyOrDigest: string): string {
  return keyDigest(keyOrDigest).slice(0, 'sha256:'.length + 12)
}

/**
 * Input paths of the spec's sensitive fields. A dotted `from` ("card.number") is both paths the
 * normalizer reads it from (src/normalize/record.ts): a member of that very name first, else the
 * nested member; both are masked.
 */
export function sensitivePaths(spec: PipelineSpec | undefined): string[][] | undefined {
  if (!spec) return undefined
  return sensitiveInputs(spec.fields).flatMap((from) => (from.includes('.') ? [[from], from.split('.')] : [[from]]))
}

function maskLeaf(v: unknown): unknown {
  if (v === null || v === undefined) return v
  if (v instanceof JsonNumberText) return maskValue(v.text) // a number, not an object of {text}
  if (typeof v === 'object') return maskAll(v)
  return maskValue(String(v))
}

function maskAll(v: unknown): unknown {
  if (v instanceof JsonNumberText) return maskLeaf(v)
  if (Array.isArray(v)) return v.map(maskLeaf)
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, maskLeaf(x)]))
  return maskLeaf(v)
}

function maskPath(obj: Record<string, unknown>, path: string[]): void {
  const [head, ...rest] = path
  if (head === undefined || !Object.prototype.hasOwnProperty.call(obj, head)) return
  const v = obj[head]
  if (rest.length === 0) obj[head] = maskAll(v)
  else if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof JsonNumberText)) maskPath(v as Record<string, unknown>, rest)
}

/** JSON text as the normalizer reads it (parseJsonExact); undefined when it is not JSON. */
function readJson(text: string): unknown {
  try {
    return parseJsonExact(text)
  } catch (e) {
    // a member name given twice, a lone surrogate: shown as JSON.parse reads it (which has read it once already)
    return e instanceof UnusableJsonError ? JSON.parse(text) : undefined
  }
}

/** A JSON object with the sensitive paths masked (every leaf without a spec). */
function showObject(parsed: Record<string, unknown>, sensitive: string[][] | undefined): ShownValue {
  if (!sensitive) return {value: maskAll(parsed), masking: 'all', note: 'every value masked: pass --spec to show the fields that are not sensitive'}
  for (const p of sensitive) maskPath(parsed, p)
  return {value: parsed, masking: 'sensitive-fields'}
}

// a top-level number kept as its text (JsonNumberText) passes too, as it always did
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * A dead letter's value as samples show it (the rules at the top). `decoding`: how to read its
 * bytes when not as UTF-8 (valueDecodingOf; an encoding alone: its cutover.source.encoding header).
 */
export function showDeadLetterValue(value: Buffer | null, sensitive: string[][] | undefined, decoding?: SupportedEncoding | ValueDecoding): ShownValue {
  const masking: ValueMasking = sensitive ? 'sensitive-fields' : 'all'
  if (value === null) return {value: null, masking, note: 'no value (a tombstone, or omitted by the relay)'}
  const how: ValueDecoding | undefined = typeof decoding === 'string' ? {encoding: decoding, from: 'header'} : decoding
  if (how !== undefined) {
    const {encoding} = how
    const said = how.from === 'header' ? 'as its cutover.source.encoding header says' : "the --spec's source.encoding: the dead letter is of its pipeline"
    // a file's bytes are never JSON; a json source's message is, when every byte is a character of
    // the encoding (as stream run read it): masked as any JSON value
    const decoded = how.json || sensitive?.length === 0 ? decodeMarked(value, encoding) : undefined
    if (how.json && decoded?.marked === 0) {
      const parsed = readJson(decoded.text)
      if (isObject(parsed)) return {...showObject(parsed, sensitive), encoding, note: `decoded from ${encoding}, ${said}`}
    }
    // text in that encoding, shown or not as any other text
    if (decoded === undefined || !(sensitive && sensitive.length === 0)) {
      const whose = how.from === 'header' ? 'its cutover.source.encoding header' : "the --spec's source.encoding"
      return {value: null, masking, encoding, note: `${value.length} bytes of ${encoding} text (${whose}), not a JSON object: not shown (${sensitive ? 'the spec has sensitive fields' : 'no --spec'})`}
    }
    const {text, marked} = decoded
    const note = `decoded from ${encoding}, ${said}${marked > 0 ? `; ${marked} byte${marked === 1 ? '' : 's'} with no character in ${encoding} shown as \\xNN` : ''}`
    return {value: text.length > 200 ? `${text.slice(0, 200)}…` : text, masking, encoding, note}
  }
  let parsed: unknown
  let text: string | undefined
  try {
    text = new TextDecoder('utf-8', {fatal: true}).decode(value)
  } catch {
    // not UTF-8: not JSON either
  }
  if (text !== undefined) parsed = readJson(text)
  if (isObject(parsed)) return showObject(parsed, sensitive)
  if (sensitive && sensitive.length === 0) {
    const shown = text ?? value.toString('utf8') // invalid UTF-8 shows as U+FFFD here: it is a preview
    return {value: shown.length > 200 ? `${shown.slice(0, 200)}…` : shown, masking}
  }
  return {value: null, masking, note: `${value.length} bytes, not a JSON object: not shown (${sensitive ? 'the spec has sensitive fields' : 'no --spec'})`}
}
