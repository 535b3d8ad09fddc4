/**
 * How a backfill keys a record, shared by the in-thread loop (./run.ts) and the file reader's
 * worker (./reader-worker.ts), so that both send the same key for the same record; and the digest
 * of a file source's record that a checkpoint keeps of the last record it covers (recordSha256).
 */
import {createHash} from 'node:crypto'
import {formatPosition, type RawRecord} from '../../legacy-adapters/types.js'

/**
 * The SHA-256 of a csv: or fixed: record as read: its position (`data/tx.csv:12`, `TXN.DAT@170
 * (record 11)`) and its bytes (fixed:), else its fields as JSON (csv:), else its reject (code,
 * message). A checkpoint keeps it for the last record it covers (position.last_sha256); a resume
 * recomputes it when it reads that record again, before it sends anything, and so knows that it
 * continues after the same record of the same file (see ./file-identity.ts). Both readers (the
 * worker and the in-thread loop) compute it the same way from the same record.
 */
export function recordSha256(r: RawRecord): string {
  const h = createHash('sha256').update(formatPosition(r.position)).update('\n')
  if (r.raw) h.update(r.raw)
  else if (r.ok) h.update(JSON.stringify(r.fields))
  else h.update(`${r.code}\n${r.message}`)
  return h.digest('hex')
}

/** The key of a record from its key field values: null when one is missing or empty. */
export function keyOf(values: unknown[]): string | null {
  if (values.length === 0 || values.some((v) => v === null || v === undefined || v === '')) return null
  return values.length === 1 ? String(values[0]) : JSON.stringify(values)
}

/** The key function for `keyFields` (the hot path, one field, builds no array per record). */
export function keyFunction(keyFields: string[]): (fields: Record<string, unknown>) => string | null {
  const single = keyFields.length === 1 ? keyFields[0]! : undefined
  if (single !== undefined) {
    return (fields) => {
      const v = fields[single]
      return v === null || v === undefined || v === '' ? null : typeof v === 'string' ? v : String(v)
    }
  }
  return (fields) => keyOf(keyFields.map((f) => fields[f]))
}

const M = 0x5bd1e995

/**
 * Kafka's murmur2 of `len` bytes of `data` from `start` (the Java client's Utils.murmur2, as
 * kafkajs' default partitioner computes it with Long arithmetic), in 32-bit integer arithmetic.
 */
export function murmur2(data: Uint8Array, start = 0, len = data.length - start): number {
  let h = (0x9747b28c ^ len) | 0
  const len4 = len >>> 2
  let i = start
  for (let n = 0; n < len4; n++, i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)
    k = Math.imul(k, M)
    k ^= k >>> 24
    k = Math.imul(k, M)
    h = Math.imul(h, M) ^ k
  }
  const rest = len & 3
  if (rest === 3) h ^= data[i + 2]! << 16
  if (rest >= 2) h ^= data[i + 1]! << 8
  if (rest >= 1) h = Math.imul(h ^ data[i]!, M)
  h ^= h >>> 13
  h = Math.imul(h, M)
  h ^= h >>> 15
  return h | 0
}

/** The partition kafkajs' default (Java-compatible) partitioner picks for a key's UTF-8 bytes. */
export function partitionOfKey(data: Uint8Array, start: number, len: number, partitions: number): number {
  return (murmur2(data, start, len) & 0x7fffffff) % partitions
}
