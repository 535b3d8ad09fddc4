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

/**
 * `begin` (BEGIN and its SET LOCALs) and the row locks of `lockOffset` for several partitions of
 * one topic, taken in partition order (so two consumers never deadlock on them), in ONE round
 * trip: one simple-query message, the identities inlined as escaped literals (the simple
 * protocol takes no parameters). A missing row is created at its `initial` offset first.
 * Returns the stored next offset of each, in the order given.
 */
export async function beginAndLockOffsets(tx: Db, begin: string, parts: readonly {ref: PartitionRef; initial: bigint}[]): Promise<bigint[]> {
  const {pipeline, topic} = parts[0]!.ref
  for (const p of parts) {
    if (!Number.isInteger(p.ref.partition)) throw new Error(`partition ${String(p.ref.partition)} is not an integer`)
    if (p.ref.pipeline !== pipeline || p.ref.topic !== topic) throw new Error('the partitions locked together belong to one pipeline and topic')
  }
  const select = `SELECT partition, next_offset FROM cutover.stream_offsets WHERE pipeline = ${pg.escapeLiteral(pipeline)} AND topic = ${pg.escapeLiteral(topic)} AND partition IN (${parts.map((p) => p.ref.partition).join(', ')}) ORDER BY partition FOR UPDATE`
  const results = (await tx.query(`${begin}; ${select}`)) as unknown as {rows: {partition: number; next_offset: string}[]}[]
  let rows = (Array.isArray(results) ? results[results.length - 1]! : (results as unknown as {rows: {partition: number; next_offset: string}[]})).rows
  if (rows.length < parts.length) {
    const have = new Set(rows.map((r) => r.partition))
    const missing = parts.filter((p) => !have.has(p.ref.partition))
    await tx.query(
      `INSERT INTO cutover.stream_offsets (pipeline, topic, partition, next_offset)
       SELECT $1, $2, u.p, u.o FROM unnest($3::int[], $4::bigint[]) AS u(p, o) ORDER BY u.p ON CONFLICT DO NOTHING`,
      [pipeline, topic, missing.map((p) => p.ref.partition), missing.map((p) => p.initial.toString())],
    )
    rows = (await tx.query<{partition: number; next_offset: string}>(select)).rows
  }
  const byPartition = new Map(rows.map((r) => [r.partition, BigInt(r.next_offset)]))
  return parts.map((p) => {
    const o = byPartition.get(p.ref.partition)
    if (o === undefined) throw new Error(`the offset row of ${topic}[${p.ref.partition}] is missing after its insert`)
    return o
  })
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
