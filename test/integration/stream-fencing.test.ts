/**
 * The fencing of the batch transaction (src/runtime/batch.ts), at unit level against the real
 * PostgreSQL: a zombie and the new owner of a partition serialize on the offset row and only
 * the first writes; a compare-and-set on a moved offset writes nothing; a batch that starts
 * after the stored offset is refused until a seek showed the gap is real; records below the
 * stored offset are skipped; a row the database refuses is found by bisection and
 * dead-lettered while the rest of its batch commits.
 */
import {describe, expect, it} from 'vitest'
import {commitBatch, CommitOutcomeUnknown, type BatchInput} from '../../src/runtime/batch.js'
import {advanceOffset, lockOffset, storedOffsets, transactionStatus} from '../../src/runtime/offsets.js'
import type {Pool, PoolClient} from '../../src/pg/pool.js'
import type {Sink, WorkItem} from '../../src/runtime/types.js'
import {batchFixture, sleep} from './stream-support.js'

/**
 * `pool` whose clients run each query through `wrap` (given the client's own query function),
 * restored when the client is released: to plant a failure or a concurrent change in one statement.
 */
function interceptingPool(pool: Pool, wrap: (query: (...a: unknown[]) => Promise<unknown>, client: PoolClient, a: unknown[]) => Promise<unknown>): Pool {
  const p = Object.create(pool) as Pool
  p.connect = (async () => {
    const client = await pool.connect()
    const query = client.query.bind(client) as (...a: unknown[]) => Promise<unknown>
    ;(client as unknown as {query: unknown}).query = (...a: unknown[]) => wrap(query, client, a)
    const release = client.release.bind(client)
    client.release = (e?: boolean | Error) => {
      delete (client as unknown as {query?: unknown}).query
      release(e)
    }
    return client
  }) as typeof pool.connect
  return p
}

async function setup(options: {dedupe?: boolean} = {}) {
  const {pool, schema, name, deps, batch: prepared} = await batchFixture({
    prefix: 'fence',
    tables: (schema) => [`CREATE TABLE "${schema}".t (id text PRIMARY KEY, amount numeric(8,2) NOT NULL CHECK (amount >= 0))`],
    spec: `fields:
  id: {type: string, required: true}
  amount: {type: decimal, scale: 2, required: true}
key: id
${options.dedupe ? 'dedupe: {by: id}\n' : ''}sinks: [{table: t}]
`,
    dedupeRetentionMs: 1000,
  })
  const ref = {pipeline: name, topic: `${name}.raw`, partition: 0}
  const batch = (from: number, to: number, amount: (i: number) => string, extra: Partial<BatchInput> = {}) => prepared(0, from, to, (o) => ({id: `k${o}`, amount: amount(o)}), extra)
  const rows = async () => (await pool.query<{id: string; amount: string}>(`SELECT id, amount FROM "${schema}".t ORDER BY id`)).rows
  const stored = async () => (await storedOffsets(pool, name, ref.topic)).get(0)
  const outbox = async () => (await pool.query<{code: string}>(`SELECT convert_from(decode(h->>1, 'base64'), 'UTF8') AS code FROM cutover.outbox, jsonb_array_elements(headers) h WHERE pipeline = $1 AND h->>0 = 'cutover.error.code' ORDER BY id`, [name])).rows
  return {pool, schema, name, deps, ref, batch, rows, stored, outbox}
}

/** What the runtime sends for one sink, outside the runtime's transaction. */
async function writeSink(client: PoolClient, sink: Sink, items: readonly WorkItem[]): Promise<void> {
  const st = sink.statement(items)
  if (st) await client.query(st.text(0), st.params)
}

describe('stream batch transaction: fencing', () => {
  it('a zombie and the new owner serialize on the offset row; the second one writes nothing', async () => {
    const s = await setup()
    // the zombie: it still holds its batch transaction on partition 0 (offsets 0..9)
    const zombie = await s.pool.connect()
    try {
      await zombie.query('BEGIN')
      expect(await lockOffset(zombie, s.ref, 0n)).toBe(0n)
      const zb = await s.batch(0, 9, () => '1.00')
      await writeSink(zombie, s.deps.sinks[0]!, zb.items)
      // the new owner of the partition processes the same offsets (seeked from the same stored offset)
      const owner = commitBatch(s.deps, await s.batch(0, 9, () => '2.00'), 1)
      let settled = false
      void owner.finally(() => (settled = true))
      await sleep(300)
      expect(settled, 'the owner waits on the row lock').toBe(false)
      expect(await advanceOffset(zombie, s.ref, 0n, 10n)).toBe(true)
      await zombie.query('COMMIT')
      const outcome = await owner
      expect(outcome).toEqual({kind: 'behind', stored: 10n})
    } finally {
      zombie.release()
    }
    const rows = await s.rows()
    expect(rows).toHaveLength(10)
    expect(new Set(rows.map((r) => r.amount))).toEqual(new Set(['1.00']))
    expect(await s.stored()).toBe(10n)
  })

  it('compare-and-set: an offset moved under the transaction makes it roll back, writing nothing', async () => {
    const s = await setup()
    expect((await commitBatch(s.deps, await s.batch(0, 9, () => '1.00'), 1)).kind).toBe('committed')
    // a late writer that read next_offset = 10 without the lock, then lost the race
    const late = await s.pool.connect()
    try {
      await late.query('BEGIN')
      const seen = await late.query<{next_offset: string}>('SELECT next_offset FROM cutover.stream_offsets WHERE pipeline = $1', [s.name])
      expect(seen.rows[0]!.next_offset).toBe('10')
      expect((await commitBatch(s.deps, await s.batch(10, 19, () => '2.00'), 1)).kind).toBe('committed')
      await writeSink(late, s.deps.sinks[0]!, (await s.batch(10, 19, () => '3.00')).items)
      expect(await advanceOffset(late, s.ref, 10n, 20n)).toBe(false)
      await late.query('ROLLBACK')
    } finally {
      late.release()
    }
    expect((await s.rows()).filter((r) => r.amount === '3.00')).toEqual([])
    // and inside commitBatch: the offset moved between the locked read and the compare-and-set
    // (cannot happen under the row lock; simulated on the same session) -> fenced, nothing written
    const pool = interceptingPool(s.pool, async (query, _client, a) => {
      // the compare-and-set is the last statement of the first round trip (after the locking SELECT)
      if (typeof a[0] === 'string' && a[0].includes('FOR UPDATE; UPDATE cutover.stream_offsets o')) {
        const move = `UPDATE cutover.stream_offsets SET next_offset = next_offset + 100 WHERE pipeline = '${s.name}'`
        return query(a[0].replace('FOR UPDATE; UPDATE cutover.stream_offsets o', `FOR UPDATE; ${move}; UPDATE cutover.stream_offsets o`))
      }
      return query(...a)
    })
    const fenced = await commitBatch({...s.deps, pool}, await s.batch(20, 29, () => '4.00'), 1)
    expect(fenced).toEqual({kind: 'fenced', stored: 20n})
    expect((await s.rows()).filter((r) => r.amount === '4.00')).toEqual([])
    expect(await s.stored()).toBe(20n)
  })

  it('a COMMIT whose answer is lost is reported as unknown, and the retry sees it committed', async () => {
    const s = await setup()
    const pool = interceptingPool(s.pool, async (query, _client, a) => {
      const r = await query(...a)
      if (a[0] === 'COMMIT') throw Object.assign(new Error('Connection terminated unexpectedly'), {code: 'ECONNRESET'})
      return r
    })
    const input = await s.batch(0, 9, () => '1.00')
    const lost = await commitBatch({...s.deps, pool}, input, 1).catch((e: unknown) => e)
    expect(lost).toBeInstanceOf(CommitOutcomeUnknown)
    expect((lost as CommitOutcomeUnknown).outcome).toMatchObject({kind: 'committed', stored: 0n, next: 10n, counts: {read: 10, written: 10}})
    expect(await commitBatch(s.deps, input, 2)).toEqual({kind: 'behind', stored: 10n}) // the caller counts the lost one then
    expect(await s.rows()).toHaveLength(10)
    // ... once the transaction's own status says it committed (not a guess from the stored offset)
    const xid = (lost as CommitOutcomeUnknown).xid
    expect(xid).toMatch(/^\d+$/)
    expect(await transactionStatus(s.pool, xid!)).toBe('committed')
  })

  it('a COMMIT lost before it reached the server: its transaction is aborted, and a batch another consumer wrote is not counted as ours', async () => {
    const s = await setup()
    const pool = interceptingPool(s.pool, async (query, client, a) => {
      if (a[0] === 'COMMIT') {
        // the connection drops before COMMIT is sent: the server rolls the transaction back
        await client.end().catch(() => {})
        throw Object.assign(new Error('Connection terminated unexpectedly'), {code: 'ECONNRESET'})
      }
      return query(...a)
    })
    const input = await s.batch(0, 9, () => '1.00')
    const lost = await commitBatch({...s.deps, pool}, input, 1).catch((e: unknown) => e)
    expect(lost).toBeInstanceOf(CommitOutcomeUnknown)
    const xid = (lost as CommitOutcomeUnknown).xid!
    for (let i = 0; i < 50 && (await transactionStatus(s.pool, xid)) === 'in progress'; i++) await new Promise((r) => setTimeout(r, 100))
    expect(await transactionStatus(s.pool, xid)).toBe('aborted')
    // another consumer (after a rebalance) writes the same range: the stored offset is what ours would have left
    expect((await commitBatch(s.deps, await s.batch(0, 9, () => '2.00'), 1)).kind).toBe('committed')
    expect(await commitBatch(s.deps, input, 2)).toEqual({kind: 'behind', stored: 10n}) // not ours: run.ts asks the status
    expect((await s.rows()).map((r) => r.amount)).toEqual(Array(10).fill('2.00'))
  })

  it('a batch after the stored offset is a gap (seek back); records below it are skipped', async () => {
    const s = await setup()
    expect((await commitBatch(s.deps, await s.batch(0, 19, () => '1.00'), 1)).kind).toBe('committed')
    expect(await commitBatch(s.deps, await s.batch(25, 29, () => '1.00'), 1)).toEqual({kind: 'gap', stored: 20n})
    expect(await s.rows()).toHaveLength(20)
    // after one seek the broker still starts later (compaction, retention): accepted
    const accepted = await commitBatch(s.deps, await s.batch(25, 29, () => '1.00', {allowGap: true}), 1)
    expect(accepted).toMatchObject({kind: 'committed', next: 30n})
    // a late seek delivers 25..34 again: only 30..34 are new
    const overlap = await commitBatch(s.deps, await s.batch(25, 34, () => '5.00'), 1)
    expect(overlap).toMatchObject({kind: 'committed', stored: 30n, next: 35n, counts: {read: 5, written: 5}})
    expect((await s.rows()).filter((r) => r.amount === '5.00').map((r) => r.id)).toEqual(['k30', 'k31', 'k32', 'k33', 'k34'])
    expect(await commitBatch(s.deps, await s.batch(0, 34, () => '9.00'), 1)).toEqual({kind: 'behind', stored: 35n})
  })

  it('rows the database refuses are found by bisection, dead-lettered with its message, the rest commits', async () => {
    const s = await setup({dedupe: true})
    const bad = new Map([
      [7, '-1.00'], // CHECK (amount >= 0)
      [31, '12345678.00'], // numeric(8,2) overflow
    ])
    const outcome = await commitBatch(s.deps, await s.batch(0, 49, (o) => bad.get(o) ?? '1.00'), 1)
    expect(outcome).toMatchObject({kind: 'committed', next: 50n, counts: {read: 50, written: 48, dead: {SINK_REJECTED: 2}}})
    if (outcome.kind !== 'committed') throw new Error('not committed')
    const dead = outcome.items.filter((i) => i.status === 'dead')
    expect(dead.map((i) => i.offset)).toEqual([7n, 31n])
    expect(dead[0]!.dead!.message).toMatch(/violates check constraint/)
    expect(dead[1]!.dead!.message).toMatch(/numeric field overflow/)
    expect(await s.rows()).toHaveLength(48)
    expect(await s.outbox()).toEqual([{code: 'SINK_REJECTED'}, {code: 'SINK_REJECTED'}])
    const keys = await s.pool.query('SELECT key FROM cutover.stream_dedupe WHERE pipeline = $1 AND key IN ($2, $3)', [s.name, 'k7', 'k31'])
    expect(keys.rows).toEqual([])
  })
})
