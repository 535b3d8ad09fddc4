/**
 * Upsert sinks write by plain INSERT while the keys are new (src/runtime/batch.ts InsertFirst),
 * against the real PostgreSQL: new rows commit in one try; a key that exists makes the
 * transaction run again with the upsert (the row updated, nothing dead-lettered) and the next
 * transactions upsert straight away; a unique index other than the key still dead-letters the
 * row it refuses, as without InsertFirst.
 */
import {describe, expect, it} from 'vitest'
import {commitBatch, InsertFirst} from '../../src/runtime/batch.js'
import {batchFixture} from './stream-support.js'

async function setup(options: {uniqueRef?: boolean} = {}) {
  const f = await batchFixture({
    prefix: 'insfirst',
    tables: (schema) => [`CREATE TABLE "${schema}".t (id text PRIMARY KEY, amount numeric(8,2) NOT NULL, ref text${options.uniqueRef ? ' UNIQUE' : ''})`],
    spec: `fields:
  id: {type: string, required: true}
  amount: {type: decimal, scale: 2, required: true}
  ref: {type: string}
key: id
dedupe: {by: id}
sinks: [{table: t}]
`,
  })
  let reruns = 0
  const insertFirst = new InsertFirst(() => reruns++)
  const deps = {...f.deps, insertFirst}
  const rows = async () => (await f.pool.query<{id: string; amount: string; ref: string | null}>(`SELECT id, amount::text, ref FROM "${f.schema}".t ORDER BY id`)).rows
  const outbox = async () => Number((await f.pool.query<{n: string}>('SELECT count(*) AS n FROM cutover.outbox WHERE pipeline = $1', [f.name])).rows[0]!.n)
  return {...f, deps, insertFirst, rows, outbox, reruns: () => reruns}
}

describe('stream upsert sink: plain INSERT first', () => {
  it('writes new keys in one try, and keeps trying plain INSERTs', async () => {
    const s = await setup()
    const input = await s.batch(0, 0, 9, (o) => ({id: `k${o}`, amount: '1.00'}))
    const sink = s.deps.sinks[0]!
    expect(sink.statement(input.items, {insertFirst: true})!.text(0)).not.toMatch(/ON CONFLICT/)
    expect(sink.statement(input.items)!.text(0)).toMatch(/ON CONFLICT \("id"\) DO UPDATE SET "amount" = excluded\."amount"/)
    const outcome = await commitBatch(s.deps, input, 1)
    expect(outcome).toMatchObject({kind: 'committed', next: 10n, counts: {read: 10, written: 10}})
    expect(await s.rows()).toHaveLength(10)
    expect(s.insertFirst.upsertsAhead).toBe(0)
    expect(s.reruns()).toBe(0)
  })

  it('the statement sends each key once, sorted, whether the records come in key order (as after dedupe) or not; the last record of a key wins', async () => {
    const s = await setup()
    const ids = [3, 1, 4, 1, 5, 9]
    const input = await s.batch(0, 0, 5, (o) => ({id: `k${ids[o]}`, amount: `${o}.00`}))
    const sink = s.deps.sinks[0]!
    const want = ['{"k1","k3","k4","k5","k9"}', '{"3.00","0.00","2.00","4.00","5.00"}', '{NULL,NULL,NULL,NULL,NULL}']
    expect(sink.statement(input.items)!.params).toEqual(want)
    // already distinct and in key order: taken as they come, the same statement
    const byKey = [3, 0, 2, 4, 5].map((o) => input.items[o]!)
    expect(sink.statement(byKey)!.params).toEqual(want)
    // in key order but with a repeat: not strictly increasing, so grouped (the last one wins)
    const repeated = [1, 3, 0, 2, 4, 5].map((o) => input.items[o]!)
    expect(sink.statement(repeated)!.params).toEqual(want)
  })

  it('a key already in the table: the transaction runs again as an upsert, the row is updated, nothing is dead-lettered', async () => {
    const s = await setup()
    // a row the stream never saw (loaded by the legacy batch, say): not in the dedupe table
    await s.pool.query(`INSERT INTO "${s.schema}".t (id, amount) VALUES ('k3', 0.00)`)
    const outcome = await commitBatch(s.deps, await s.batch(0, 0, 9, (o) => ({id: `k${o}`, amount: '2.00'})), 1)
    expect(outcome).toMatchObject({kind: 'committed', next: 10n, counts: {read: 10, written: 10}})
    expect(outcome.kind === 'committed' && outcome.counts.dead).toEqual({}) // toMatchObject takes any object for {}
    const rows = await s.rows()
    expect(rows).toHaveLength(10)
    expect(rows.find((r) => r.id === 'k3')!.amount).toBe('2.00')
    expect(await s.outbox()).toBe(0)
    // counted once (the runtime's cutover_upsert_reruns_total), and the next transactions upsert straight away
    expect(s.reruns()).toBe(1)
    expect(s.insertFirst.upsertsAhead).toBe(InsertFirst.MIN)
    await s.pool.query(`INSERT INTO "${s.schema}".t (id, amount) VALUES ('k12', 0.00)`)
    expect(await commitBatch(s.deps, await s.batch(0, 10, 14, (o) => ({id: `k${o}`, amount: '3.00'})), 1)).toMatchObject({kind: 'committed', counts: {written: 5}})
    expect(s.insertFirst.upsertsAhead).toBe(InsertFirst.MIN - 1)
    expect((await s.rows()).find((r) => r.id === 'k12')!.amount).toBe('3.00')
    expect(s.reruns()).toBe(1) // that one upserted straight away: no second run
  })

  it('another unique index still refuses its row: SINK_REJECTED with the database message, the rest commits', async () => {
    const s = await setup({uniqueRef: true})
    const outcome = await commitBatch(s.deps, await s.batch(0, 0, 9, (o) => ({id: `k${o}`, amount: '1.00', ref: o === 6 ? 'R2' : `R${o}`})), 1)
    expect(outcome).toMatchObject({kind: 'committed', next: 10n, counts: {read: 10, written: 9, dead: {SINK_REJECTED: 1}}})
    if (outcome.kind !== 'committed') throw new Error('not committed')
    const dead = outcome.items.filter((i) => i.status === 'dead')
    expect(dead.map((i) => i.offset)).toEqual([6n])
    expect(dead[0]!.dead!.message).toMatch(/duplicate key value violates unique constraint "t_ref_key"/)
    expect((await s.rows()).map((r) => r.id)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k7', 'k8', 'k9'])
    expect(await s.outbox()).toBe(1)
  })
})
