/**
 * The offset store of `stream run`: `cutover.stream_offsets (pipeline, topic, partition,
 * next_offset)`, the source of truth for where each partition resumes. It is written only in
 * the batch transaction, together with the sink rows, so a batch is either entirely applied
 * with its offset or not at all (effectively-once).
 *
 * `lockOffset` takes the row lock (`SELECT ... FOR UPDATE`): two consumers of one partition
 * (a zombie that lost it in a rebalance and the new owner) serialize here, and the second one
 * reads the offset the first one committed. `advanceOffset` is a compare-and-set on the offset
 * read under that lock, as a second fence: 0 rows updated means someone else moved it.
 */
import pg from 'pg'
import type {Pool, PoolClient} from '../pg/pool.js'

type Db = Pick<PoolClient, 'query'>

export interface PartitionRef {
  pipeline: string
  topic: string
  partition: number
}

/** Locks the partition's row for this transaction and returns its next offset; creates it at `initial` when missing. */
export async function lockOffset(tx: Db, p: PartitionRef, initial: bigint): Promise<bigint> {
  const select = () =>
    tx.query<{next_offset: string}>('SELECT next_offset FROM cutover.stream_offsets WHERE pipeline = $1 AND topic = $2 AND partition = $3 FOR UPDATE', [p.pipeline, p.topic, p.partition])
  let r = await select()
  if (r.rows.length === 0) {
    await tx.query('INSERT INTO cutover.stream_offsets (pipeline, topic, partition, next_offset) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [
      p.pipeline,
      p.topic,
      p.partition,
      initial.toString(),
    ])
    r = await select()
  }
  return BigInt(r.rows[0]!.next_offset)
}

/** A batch's claim on its partition for `beginLockAndAdvance`. */
export interface OffsetClaim {
  ref: PartitionRef
  /** the batch's first offset (also the offset a missing row is created at) */
  first: bigint
  /** the batch's last offset + 1: the new stored offset if the batch is applied */
  next: bigint
  /** accept a stored offset below `first` (a gap shown real by one seek) */
  allowGap: boolean
}

/** What `beginLockAndAdvance` found (under the row lock) and did for one claim. */
export interface OffsetState {
  /** the stored next offset before this transaction */
  stored: bigint
  /** the offset was moved to `next` (compare-and-set on `stored`): the batch applies from `stored` */
  moved: boolean
}

/** stored < next and (allowGap or stored >= first): the batch has records to apply, none missing before it. */
export function applies(c: OffsetClaim, stored: bigint): boolean {
  return stored < c.next && (c.allowGap || stored >= c.first)
}

const lit = pg.escapeLiteral

/**
 * `begin` (BEGIN and its SET LOCALs), the row locks of `lockOffset` for several partitions of one
 * topic taken in partition order (so two consumers never deadlock on them), and the
 * compare-and-set of every claim that `applies`, in ONE round trip: one simple-query message of
 * three statements, the identities inlined as escaped literals and the offsets as integers (the
 * simple protocol takes no parameters). The UPDATE runs under the locks the SELECT just took, so
 * the offsets it compares are the ones the SELECT returned; it moves a row only from the stored
 * offset it checks (`next_offset < n AND next_offset >= f`), as `advanceOffset` does.
 *
 * A missing row (the partition's first batch) is created at its `first` offset, locked, and
 * advanced by `advanceOffsets` (three more round trips, once per partition and pipeline).
 * Returns one state per claim, in the order given, and the transaction's id (`txid_current()`,
 * asked in the same message): if the answer to its COMMIT is lost, `txid_status` tells later
 * whether it committed.
 */
export async function beginLockAndAdvance(tx: Db, begin: string, claims: readonly OffsetClaim[]): Promise<{states: OffsetState[]; xid: string | undefined}> {
  const {pipeline, topic} = claims[0]!.ref
  for (const c of claims) {
    if (!Number.isInteger(c.ref.partition)) throw new Error(`partition ${String(c.ref.partition)} is not an integer`)
    if (c.ref.pipeline !== pipeline || c.ref.topic !== topic) throw new Error('the partitions locked together belong to one pipeline and topic')
  }
  const where = (alias: string) => `${alias}pipeline = ${lit(pipeline)} AND ${alias}topic = ${lit(topic)}`
  const selectOf = (some: readonly OffsetClaim[]) =>
    `SELECT partition, next_offset FROM cutover.stream_offsets WHERE ${where('')} AND partition IN (${some.map((c) => c.ref.partition).join(', ')}) ORDER BY partition FOR UPDATE`
  const values = claims.map((c) => `(${c.ref.partition}, ${c.first.toString()}::bigint, ${c.next.toString()}::bigint, ${c.allowGap ? 'true' : 'false'})`).join(', ')
  const update = `UPDATE cutover.stream_offsets o SET next_offset = v.n, updated_at = now() FROM (VALUES ${values}) AS v(p, f, n, g)
    WHERE ${where('o.')} AND o.partition = v.p AND o.next_offset < v.n AND (v.g OR o.next_offset >= v.f) RETURNING o.partition`
  type Row = {partition: number; next_offset?: string}
  const results = (await tx.query(`${begin}; SELECT txid_current()::text AS cutover_xid; ${selectOf(claims)}; ${update}`)) as unknown as {command: string; rows: (Row & {cutover_xid?: string})[]}[]
  const xid = results.find((r) => r.command === 'SELECT' && r.rows[0]?.cutover_xid !== undefined)?.rows[0]!.cutover_xid
  // one result per statement: the last SELECT's rows are the locked offsets (`begin` may hold a
  // SELECT of its own, the advisory lock), the last result's (the UPDATE's) the moved partitions
  const locked = results.filter((r) => r.command === 'SELECT').at(-1)!.rows
  const moved = new Set(results[results.length - 1]!.rows.map((r) => r.partition))
  const state = new Map(locked.map((r) => [r.partition, {stored: BigInt(r.next_offset!), moved: moved.has(r.partition)}]))
  const missing = claims.filter((c) => !state.has(c.ref.partition))
  if (missing.length > 0) {
    await tx.query(
      `INSERT INTO cutover.stream_offsets (pipeline, topic, partition, next_offset)
       SELECT $1, $2, u.p, u.o FROM unnest($3::int[], $4::bigint[]) AS u(p, o) ORDER BY u.p ON CONFLICT DO NOTHING`,
      [pipeline, topic, missing.map((c) => c.ref.partition), missing.map((c) => c.first.toString())],
    )
    const rows = (await tx.query<Row>(selectOf(missing))).rows
    const stored = new Map(rows.map((r) => [r.partition, BigInt(r.next_offset!)]))
    const moves = missing.filter((c) => stored.has(c.ref.partition) && applies(c, stored.get(c.ref.partition)!))
    const ok = moves.length === 0 || (await advanceOffsets(tx, moves.map((c) => ({ref: c.ref, expected: stored.get(c.ref.partition)!, next: c.next}))))
    for (const c of missing) {
      const s = stored.get(c.ref.partition)
      if (s !== undefined) state.set(c.ref.partition, {stored: s, moved: ok && moves.includes(c)})
    }
  }
  const states = claims.map((c) => {
    const s = state.get(c.ref.partition)
    if (s === undefined) throw new Error(`the offset row of ${topic}[${c.ref.partition}] is missing after its insert`)
    return s
  })
  return {states, xid}
}

/**
 * Whether the transaction `xid` committed (`txid_status`): for a COMMIT whose answer was lost.
 * 'committed', 'aborted' (or crashed), 'in progress', or null when it is too old to know.
 */
export async function transactionStatus(db: Db, xid: string): Promise<string | null> {
  const r = await db.query<{s: string | null}>('SELECT txid_status($1::bigint) AS s', [xid])
  return r.rows[0]?.s ?? null
}

/** `advanceOffset` for several partitions of one topic in one statement; false unless every one moved. */
export async function advanceOffsets(tx: Db, moves: readonly {ref: PartitionRef; expected: bigint; next: bigint}[]): Promise<boolean> {
  if (moves.length === 1) return advanceOffset(tx, moves[0]!.ref, moves[0]!.expected, moves[0]!.next)
  const r = await tx.query(
    `UPDATE cutover.stream_offsets o SET next_offset = u.n, updated_at = now()
       FROM unnest($3::int[], $4::bigint[], $5::bigint[]) AS u(p, e, n)
      WHERE o.pipeline = $1 AND o.topic = $2 AND o.partition = u.p AND o.next_offset = u.e`,
    [moves[0]!.ref.pipeline, moves[0]!.ref.topic, moves.map((m) => m.ref.partition), moves.map((m) => m.expected.toString()), moves.map((m) => m.next.toString())],
  )
  return r.rowCount === moves.length
}

/** Compare-and-set: moves the offset from `expected` to `next`; false when it was not `expected`. */
export async function advanceOffset(tx: Db, p: PartitionRef, expected: bigint, next: bigint): Promise<boolean> {
  const r = await tx.query('UPDATE cutover.stream_offsets SET next_offset = $4, updated_at = now() WHERE pipeline = $1 AND topic = $2 AND partition = $3 AND next_offset = $5', [
    p.pipeline,
    p.topic,
    p.partition,
    next.toString(),
    expected.toString(),
  ])
  return r.rowCount === 1
}

/** The stored next offset of every partition of `topic` this pipeline has committed. */
export async function storedOffsets(db: Db | Pool, pipeline: string, topic: string): Promise<Map<number, bigint>> {
  const r = await db.query<{partition: number; next_offset: string}>('SELECT partition, next_offset FROM cutover.stream_offsets WHERE pipeline = $1 AND topic = $2', [pipeline, topic])
  return new Map(r.rows.map((row) => [row.partition, BigInt(row.next_offset)]))
}
