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
 */
import {createHash} from 'node:crypto'
import {namesOf, sensitiveInputs, type PipelineSpec} from '../config/spec.js'
import {JsonNumberText, maskValue, parseJsonExact} from '../normalize/index.js'
import {UnusableJsonError} from '../normalize/json.js'
import {decodeMarked, lookupEncoding, type SupportedEncoding} from '../normalize/encoding.js'
import {SOURCE_ENCODING_HEADER} from '../runtime/outbox.js'
import type {DlqHeaders} from './reader.js'

export {SOURCE_ENCODING_HEADER}

export type ValueMasking = 'sensitive-fields' | 'all'

export interface ShownValue {
  /** the value as shown: a JSON value with masked leaves, a text preview, or null */
  value: unknown
  masking: ValueMasking
  /** why the value (or part of it) is not shown; how it was decoded */
  note?: string
  /** the value's bytes were decoded from this encoding (its cutover.source.encoding header) */
  encoding?: SupportedEncoding
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

export function showDeadLetterValue(value: Buffer | null, sensitive: string[][] | undefined, encoding?: SupportedEncoding): ShownValue {
  const masking: ValueMasking = sensitive ? 'sensitive-fields' : 'all'
  if (value === null) return {value: null, masking, note: 'no value (a tombstone, or omitted by the relay)'}
  if (encoding !== undefined) {
    // a file's bytes, never JSON: text in that encoding, shown or not as any other text
    if (!(sensitive && sensitive.length === 0)) {
      return {value: null, masking, encoding, note: `${value.length} bytes of ${encoding} text (its cutover.source.encoding header), not a JSON object: not shown (${sensitive ? 'the spec has sensitive fields' : 'no --spec'})`}
    }
    const {text, marked} = decodeMarked(value, encoding)
    const note = `decoded from ${encoding}, as its cutover.source.encoding header says${marked > 0 ? `; ${marked} byte${marked === 1 ? '' : 's'} with no character in ${encoding} shown as \\xNN` : ''}`
    return {value: text.length > 200 ? `${text.slice(0, 200)}…` : text, masking, encoding, note}
  }
  let parsed: unknown
  let text: string | undefined
  try {
    text = new TextDecoder('utf-8', {fatal: true}).decode(value)
    parsed = parseJsonExact(text)
  } catch (e) {
    // a member name given twice, a lone surrogate: shown as JSON.parse reads it (which has read it once already)
    parsed = e instanceof UnusableJsonError && text !== undefined ? JSON.parse(text) : undefined
  }
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
    if (!sensitive) return {value: maskAll(parsed), masking, note: 'every value masked: pass --spec to show the fields that are not sensitive'}
    const copy = parsed as Record<string, unknown>
    for (const p of sensitive) maskPath(copy, p)
    return {value: copy, masking}
  }
  if (sensitive && sensitive.length === 0) {
    const shown = text ?? value.toString('utf8') // invalid UTF-8 shows as U+FFFD here: it is a preview
    return {value: shown.length > 200 ? `${shown.slice(0, 200)}…` : shown, masking}
  }
  return {value: null, masking, note: `${value.length} bytes, not a JSON object: not shown (${sensitive ? 'the spec has sensitive fields' : 'no --spec'})`}
}
