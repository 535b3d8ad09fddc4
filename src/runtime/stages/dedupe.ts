/**
 * Stage `dedupe` (transactional): drops identical repeats and dead-letters conflicting ones,
 * across restarts, through `cutover.stream_dedupe (pipeline, key, payload_sha256, seen_at)`.
 *
 * - The payload hash is the SHA-256 of the normalized record as canonical JSON (sorted keys),
 *   so two messages that differ only in formatting ("1 234,50" and "1234.50") are the same.
 *   It is computed in the prepare phase (`precompute`), outside the batch transaction.
 * - Within a batch, repeats are resolved in offset order against the first occurrence. The
 *   first occurrences get their key's rank in sorted order (`dedupeOrder`): the runtime hands
 *   the sinks the batch's records in that order (types.ts inDedupeOrder), when the spec's `key`
 *   is the dedupe key (otherwise in offset order: the newer record of a sink key is written last).
 * - Across batches: one statement (DEDUPE_FAST_SQL) returns the hashes of the keys already
 *   there (same hash -> duplicate, else DUPLICATE_CONFLICT) and claims the others with a plain
 *   INSERT (sorted, so concurrent partitions lock in the same order). If a concurrent
 *   transaction committed one of those keys first, the INSERT fails (23505, isDedupeRace) and
 *   the batch transaction runs again at once in `conservative` mode: `INSERT ... ON CONFLICT DO
 *   NOTHING RETURNING key`, then one SELECT for the others (the previous, slower statements).
 *   Both INSERTs take the keys in the same order (`ORDER BY u.k`, PostgreSQL's, not the batch's
 *   JavaScript sort): a conservative rerun and a concurrent fast path cannot lock two keys in
 *   opposite orders (a deadlock). With COPY_MIN_ROWS keys or more the fast path is two
 *   statements instead, the lookup and a COPY of the keys not found, in the same byte order
 *   (inByteOrder); a race fails the COPY the same way.
 * - A claimed key whose row a sink then rejects is released again by `releaseDedupeKeys` in
 *   the same transaction, so that a fixed record can be replayed later.
 * - A composite key (dedupeKeyOf: the JSON of its values) longer than MAX_KEY_BYTES, which
 *   escaping can make of values the validate stage let through (a control character is six
 *   bytes), is SCHEMA_VIOLATION: the key table's index could not hold it, and the batch would
 *   fail again and again. (A key holding a lone UTF-16 surrogate, which PostgreSQL would store
 *   as U+FFFD, never gets here: parseJsonExact refuses it, a DECODE_ERROR.)
 */
import * as crypto from 'node:crypto'
import {createHash} from 'node:crypto'
import {namesOf} from '../../config/spec.js'
import type {PoolClient} from '../../pg/pool.js'
import {maskedKeyOf} from '../../normalize/index.js'
import {copyField, copyIn} from '../../pg/copy.js'
import {pgArray} from '../sinks/pgarray.js'
import type {NormalizedRecord, PipelineContext, Stage, WorkItem} from '../types.js'
import {COPY_MIN_ROWS, markDead} from '../types.js'
import {MAX_KEY_BYTES} from './validate.js'

/**
 * The dedupe key of a record, as the key table stores it: the field's text for one field, the
 * JSON array of the values for several (so that "a|b" + "c" and "a" + "b|c" differ). `dlq
 * replay`'s predictor (src/dlq/predict.ts) computes the same key with it.
 */
export function dedupeKeyOf(by: readonly string[]): (r: NormalizedRecord) => string {
  if (by.length === 1) {
    const f = by[0]!
    return (r) => String(r[f])
  }
  return (r) => JSON.stringify(by.map((f) => r[f] ?? null))
}

/**
 * The normalized record as canonical text: its field names sorted, then the values in that
 * order as one JSON array (one JSON.stringify per record: this runs for every record).
 */
export function canonicalJson(record: NormalizedRecord, sortedKeys: readonly string[] = Object.keys(record).sort(), prefix = JSON.stringify(sortedKeys)): string {
  const values = new Array<unknown>(sortedKeys.length)
  for (let i = 0; i < sortedKeys.length; i++) values[i] = record[sortedKeys[i]!] ?? null
  return prefix + JSON.stringify(values)
}

/** SHA-256 (hex) of the canonical text; one-shot `crypto.hash` (node >= 20.12) when present. */
export function payloadHash(record: NormalizedRecord, sortedKeys?: readonly string[], prefix?: string): string {
  const text = canonicalJson(record, sortedKeys, prefix)
  return oneShot ? oneShot('sha256', text, 'hex') : createHash('sha256').update(text).digest('hex')
}

const oneShot = (crypto as {hash?: (algorithm: string, data: string, encoding: 'hex') => string}).hash

/**
 * The stored rows of the keys that `keys` (a one-column relation: SQL text) lists, for the
 * pipeline in $1: one primary-key probe per key (pipeline AND key in the index condition).
 * Not `key = ANY($2)`: with statistics that do not know the pipeline yet (a new pipeline, or
 * ANALYZE behind), PostgreSQL estimates one row for `pipeline = $1`, scans ALL of the
 * pipeline's keys and filters on `key`, at a cost that grows with every batch (measured:
 * bench/stream at 5,000 events/s, one backend at 80% CPU, latency doubled). The LIMIT keeps
 * the subquery a parameterized probe (not flattened into a join the same estimate could spoil).
 * `d` has payload_sha256, seen_at and ctid. Every reader of the table by key goes through here
 * (the stage, `dlq replay`'s predictor, parity's root causes).
 */
export function storedKeys(keys: string, columns = 'k.key AS key, d.payload_sha256'): string {
  return `SELECT ${columns} FROM ${keys} AS k(key)
  CROSS JOIN LATERAL (SELECT d.payload_sha256, d.seen_at, d.ctid FROM cutover.stream_dedupe d WHERE d.pipeline = $1 AND d.key = k.key LIMIT 1) AS d`
}

/**
 * The fast path of the stage, one round trip: the keys already stored come back with their hash
 * (a snapshot read: this transaction's own earlier rows included), and the others are inserted
 * with a plain INSERT in key order. All sub-statements share one snapshot, so a key that another
 * transaction commits meanwhile is not in `seen` and the INSERT fails on the primary key (23505),
 * never silently: see isDedupeRace.
 */
export const DEDUPE_FAST_SQL = `WITH u AS (SELECT * FROM unnest($2::text[], $3::text[]) AS x(k, h)),
seen AS (${storedKeys('(SELECT k FROM u)')}),
ins AS (INSERT INTO cutover.stream_dedupe (pipeline, key, payload_sha256, seen_at)
        SELECT $1, u.k, decode(u.h, 'hex'), now() FROM u WHERE NOT EXISTS (SELECT 1 FROM seen WHERE seen.key = u.k) ORDER BY u.k)
SELECT key, encode(payload_sha256, 'hex') AS h FROM seen`

/** The fast path's insert of many keys (COPY_MIN_ROWS or more): pipeline, key, `\x<hex hash>`; seen_at is its default, now(). */
export const DEDUPE_COPY_SQL = 'COPY cutover.stream_dedupe (pipeline, key, payload_sha256) FROM STDIN'

/**
 * `keys` (sorted by JavaScript, in UTF-16 code units) in PostgreSQL's "C" order, the order of
 * their UTF-8 bytes, in which every insert of dedupe keys takes them (no two transactions lock two
 * keys in opposite orders). The two orders differ only between characters beyond U+FFFF and
 * U+E000..U+FFFF: without a code unit from U+D800 up, `keys` as they are.
 */
export function inByteOrder(keys: string[]): string[] {
  if (!keys.some((k) => /[\uD800-\uFFFF]/.test(k))) return keys
  return keys.map((k) => ({k, b: Buffer.from(k)})).sort((x, y) => Buffer.compare(x.b, y.b)).map((x) => x.k)
}

/** The fast path lost a race for a key (another transaction committed it first): run the batch again, conservatively. */
export function isDedupeRace(e: unknown): boolean {
  const err = e as {code?: unknown; constraint?: unknown}
  return err?.code === '23505' && err.constraint === 'stream_dedupe_pkey'
}

export function dedupeStage(ctx: PipelineContext): Stage | null {
  const by = namesOf(ctx.loaded.spec.dedupe?.by)
  // Ranks for the sinks (inDedupeOrder) only when they are keyed like the dedupe: then the batch's
  // records reach them distinct and sorted. Keyed otherwise (key: acct, dedupe by txn id), two
  // records of one sink key must reach the upsert in offset order, so that the newer one is
  // written last, and a sort by the dedupe key would put them in any order.
  const key = namesOf(ctx.loaded.spec.key)
  const rankForSinks = key.length === by.length && key.every((k, i) => k === by[i])
  if (by.length === 0) return null
  const keyOf = dedupeKeyOf(by)
  const label = by.join(', ')
  // the key as the message shows it: a sensitive field's value masked, as everywhere
  const maskedKey = maskedKeyOf(by, ctx.loaded.spec.fields)
  const shown = (item: WorkItem, key: string): string => (maskedKey ? maskedKey(item.record!) : key)
  const sortedKeys = Object.keys(ctx.loaded.spec.fields).sort()
  const prefix = JSON.stringify(sortedKeys)
  const hashOf = (r: NormalizedRecord) => payloadHash(r, sortedKeys, prefix)
  const pipelineField = copyField(ctx.pipeline)
  const conflict = (item: WorkItem, key: string, where: string) =>
    markDead(item, {
      code: 'DUPLICATE_CONFLICT',
      message: `${label} "${shown(item, key)}" was already seen ${where} with a different payload`,
      stage: 'dedupe',
      field: by[0] ?? null,
    })
  /**
   * The record's key (set on the item), or undefined when it is too long for the key table (the
   * item is then dead-lettered). Only a composite key can be: a single field's is its text, which
   * the validate stage measured.
   */
  const claimable = (item: WorkItem): string | undefined => {
    const key = keyOf(item.record!)
    if (by.length > 1 && key.length * 3 > MAX_KEY_BYTES) {
      const bytes = Buffer.byteLength(key)
      if (bytes > MAX_KEY_BYTES) {
        markDead(item, {
          code: 'SCHEMA_VIOLATION',
          message: `the dedupe key of fields ${label} is ${bytes} bytes long as stored (its values as a JSON array, with escapes), over the ${MAX_KEY_BYTES} a key may be (PostgreSQL's B-tree index of the key table cannot hold longer ones)`,
          stage: 'dedupe',
          field: by[0]!,
        })
        return undefined
      }
    }
    return (item.dedupeKey = key)
  }

  return {
    name: 'dedupe',
    phase: 'transact',
    // the payload hashes, before the transaction (a record's hash never changes: kept across reruns)
    precompute(items) {
      // (a composite key's length checked here too, so that a record too long is out before the transaction)
      for (const item of items) if (item.status === 'ok' && item.record && (by.length === 1 || claimable(item) !== undefined)) item.dedupeHash = hashOf(item.record)
    },
    async run(items, tx, opts) {
      if (!tx) throw new Error('dedupe runs inside the batch transaction')
      // pass 1: key and hash of every candidate; the first occurrence of each key in the batch
      const candidates: WorkItem[] = []
      const first = new Map<string, WorkItem>()
      for (const item of items) {
        if (item.status !== 'ok' || !item.record) continue
        item.dedupeInserted = false
        const key = claimable(item)
        if (key === undefined) continue
        item.dedupeHash ??= hashOf(item.record)
        candidates.push(item)
        if (!first.has(key)) first.set(key, item)
      }
      if (first.size === 0) return
      const keys = [...first.keys()].sort()
      if (rankForSinks) for (let i = 0; i < keys.length; i++) first.get(keys[i]!)!.dedupeOrder = i
      const keyArray = pgArray(keys)
      // the reference payload of each key: the stored hash if the key was seen before (in
      // `stored`), else the hash of its first occurrence here (the keys this batch inserted)
      const stored = new Map<string, string>()
      if (!opts?.conservative && keys.length >= COPY_MIN_ROWS) {
        // many keys: the same in two statements, the lookup and a COPY of the keys not found
        // (pg/copy.ts: no executor work per key; 4.96 -> 3.83 µs of backend CPU per key). A key
        // that a concurrent transaction commits in between fails the COPY with 23505, as it
        // would the INSERT: the batch transaction then runs again in conservative mode.
        const known = await tx.query<{key: string; h: string}>(storedKeys('unnest($2::text[])', "k.key AS key, encode(d.payload_sha256, 'hex') AS h"), [ctx.pipeline, keyArray])
        for (const r of known.rows) stored.set(r.key, r.h)
        const fresh = inByteOrder(keys.filter((k) => !stored.has(k)))
        if (fresh.length > 0) {
          const lines = new Array<string>(fresh.length)
          for (let i = 0; i < fresh.length; i++) lines[i] = `${pipelineField}\t${copyField(fresh[i]!)}\t\\\\x${first.get(fresh[i]!)!.dedupeHash!}`
          await copyIn(tx, DEDUPE_COPY_SQL, lines.join('\n') + '\n')
          for (const k of fresh) first.get(k)!.dedupeInserted = true
        }
      } else if (!opts?.conservative) {
        // one statement: the keys already stored (with their hash) come back; every other key is
        // inserted by a plain INSERT (no speculative insertion: ~half the cost of ON CONFLICT per row).
        // A key that a concurrent transaction commits in between fails it with 23505 on
        // stream_dedupe_pkey: the batch transaction is then run again at once in conservative mode.
        const known = await tx.query<{key: string; h: string}>(DEDUPE_FAST_SQL, [ctx.pipeline, keyArray, pgArray(keys.map((k) => first.get(k)!.dedupeHash!))])
        for (const r of known.rows) stored.set(r.key, r.h)
        for (const k of keys) if (!stored.has(k)) first.get(k)!.dedupeInserted = true
      } else {
        const inserted = await tx.query<{key: string}>(
          `INSERT INTO cutover.stream_dedupe (pipeline, key, payload_sha256, seen_at)
           SELECT $1, u.k, decode(u.h, 'hex'), now() FROM unnest($2::text[], $3::text[]) AS u(k, h) ORDER BY u.k
           ON CONFLICT (pipeline, key) DO NOTHING RETURNING key`,
          [ctx.pipeline, keyArray, pgArray(keys.map((k) => first.get(k)!.dedupeHash!))],
        )
        for (const r of inserted.rows) first.get(r.key)!.dedupeInserted = true
        const existing = keys.filter((k) => !first.get(k)!.dedupeInserted)
        if (existing.length > 0) {
          const known = await tx.query<{key: string; h: string}>(storedKeys('unnest($2::text[])', "k.key AS key, encode(d.payload_sha256, 'hex') AS h"), [ctx.pipeline, pgArray(existing)])
          for (const r of known.rows) stored.set(r.key, r.h)
        }
      }
      // pass 2, in offset order: a repeat of the reference is a duplicate, anything else a conflict
      for (const item of candidates) {
        if (item.dedupeInserted) continue
        const key = item.dedupeKey!
        const before = stored.get(key)
        const ref = before ?? (first.get(key)!.dedupeInserted ? first.get(key)!.dedupeHash : undefined)
        if (ref === undefined) throw new Error(`dedupe key ${key} neither inserted nor found`) // cannot happen: the insert lost to a concurrent delete
        if (ref === item.dedupeHash) item.status = 'duplicate'
        else conflict(item, key, before !== undefined ? 'before' : 'earlier in the same batch')
      }
    },
  }
}

/** Releases the keys this batch claimed for records a sink then rejected. */
export async function releaseDedupeKeys(tx: PoolClient, pipeline: string, items: readonly WorkItem[]): Promise<void> {
  const keys = items.filter((i) => i.dedupeInserted && i.dedupeKey !== undefined).map((i) => i.dedupeKey!)
  if (keys.length === 0) return
  await tx.query(`DELETE FROM cutover.stream_dedupe WHERE ctid = ANY(ARRAY(${storedKeys('unnest($2::text[])', 'd.ctid')}))`, [pipeline, pgArray(keys)])
  for (const i of items) i.dedupeInserted = false
}

/** Deletes dedupe keys older than the retention, a chunk at a time (run occasionally). */
export async function pruneDedupeKeys(db: {query: PoolClient['query']}, pipeline: string, retentionMs: number): Promise<number> {
  const r = await db.query(
    `DELETE FROM cutover.stream_dedupe WHERE ctid IN (
       SELECT ctid FROM cutover.stream_dedupe WHERE pipeline = $1 AND seen_at < now() - make_interval(secs => $2) LIMIT 50000)`,
    [pipeline, retentionMs / 1000],
  )
  return r.rowCount ?? 0
}
