/**
 * A string field holding U+0000 (JSON's "\u0000"), which PostgreSQL text cannot store, in the
 * runtime's batch transaction against the real PostgreSQL (batchFixture: stages and sinks as
 * `stream run` builds them): SCHEMA_VIOLATION at validate, naming the field, when a sink writes
 * that field (before, the sink statement failed, the batch ran again row by row, and the record
 * was SINK_REJECTED with PostgreSQL's "invalid byte sequence for encoding "UTF8": 0x00", which names
 * no column); the rest of the batch written; a field no sink writes is not refused.
 */
import {describe, expect, it} from 'vitest'
import {commitBatch} from '../../src/runtime/batch.js'
import {batchFixture} from './stream-support.js'

const FIELDS = `fields:
  id: {type: string, required: true}
  acct: {type: string, required: true}
  memo: {type: string, empty_as_null: true}
  amount: {type: decimal, scale: 2, required: true}
key: id
`

type Rec = {id: string} & Record<string, unknown>

async function commit(s: Awaited<ReturnType<typeof batchFixture>>, recs: Rec[]) {
  const input = await s.batch(0, 0, recs.length - 1, (o) => recs[o]!)
  const out = await commitBatch(s.deps, input, 1)
  if (out.kind !== 'committed') throw new Error(`batch ${out.kind}`)
  const c = out.counts
  expect(c.read).toBe(c.written + Object.values(c.dead).reduce<number>((a, b) => a + (b ?? 0), 0) + c.duplicates)
  return {counts: c, dead: input.items.filter((i) => i.status === 'dead').map((i) => ({offset: Number(i.offset), ...i.dead}))}
}

describe('a NUL character in a string field', () => {
  it('an upsert sink writes every field: SCHEMA_VIOLATION at validate, naming the field; the other records written', async () => {
    const s = await batchFixture({
      prefix: 'nul-upsert',
      tables: (schema) => [`CREATE TABLE "${schema}".t (id text PRIMARY KEY, acct text NOT NULL, memo text, amount numeric(12,2) NOT NULL)`],
      spec: `${FIELDS}sinks: [{table: t}]\n`,
    })
    const {counts, dead} = await commit(s, [
      {id: 'a', acct: 'A1', memo: 'fine', amount: '1.00'},
      {id: 'b', acct: 'A1', memo: 'half\u0000way', amount: '2.00'},
      {id: 'c', acct: 'A2', memo: null, amount: '3.00'},
      {id: 'd', acct: 'A\u0000', memo: 'x', amount: '4.00'},
    ])
    expect(counts).toMatchObject({read: 4, written: 2, duplicates: 0, dead: {SCHEMA_VIOLATION: 2}})
    expect(dead).toEqual([
      {offset: 1, code: 'SCHEMA_VIOLATION', stage: 'validate', field: 'memo', message: 'field memo contains a NUL character (U+0000), which PostgreSQL text cannot store'},
      {offset: 3, code: 'SCHEMA_VIOLATION', stage: 'validate', field: 'acct', message: 'field acct contains a NUL character (U+0000), which PostgreSQL text cannot store'},
    ])
    const rows = await s.pool.query(`SELECT id, memo, amount::text FROM "${s.schema}".t ORDER BY id`)
    expect(rows.rows).toEqual([
      {id: 'a', memo: 'fine', amount: '1.00'},
      {id: 'c', memo: null, amount: '3.00'},
    ])
  })

  it('an aggregate sink alone writes only its group and aggregate fields: a NUL elsewhere is counted; in a min of a string, refused', async () => {
    const s = await batchFixture({
      prefix: 'nul-aggregate',
      tables: (schema) => [`CREATE TABLE "${schema}".agg (acct text PRIMARY KEY, n bigint NOT NULL DEFAULT 0, total numeric(14,2) NOT NULL DEFAULT 0, first_memo text)`],
      spec: `${FIELDS}sinks: [{table: agg, group_by: [acct], aggregates: {n: count, total: sum(amount)}}]\n`,
    })
    const {counts} = await commit(s, [
      {id: 'a', acct: 'A1', memo: 'half\u0000way', amount: '1.00'},
      {id: 'b', acct: 'A1', memo: 'fine', amount: '2.00'},
    ])
    expect(counts).toMatchObject({read: 2, written: 2, dead: {}})
    expect((await s.pool.query(`SELECT acct, n::int, total::text FROM "${s.schema}".agg`)).rows).toEqual([{acct: 'A1', n: 2, total: '3.00'}])

    const m = await batchFixture({
      prefix: 'nul-min',
      tables: (schema) => [`CREATE TABLE "${schema}".agg (acct text PRIMARY KEY, n bigint NOT NULL DEFAULT 0, first_memo text)`],
      spec: `${FIELDS}sinks: [{table: agg, group_by: [acct], aggregates: {n: count, first_memo: min(memo)}}]\n`,
    })
    const mm = await commit(m, [
      {id: 'a', acct: 'A1', memo: 'half\u0000way', amount: '1.00'},
      {id: 'b', acct: 'A1', memo: 'fine', amount: '2.00'},
    ])
    expect(mm.counts).toMatchObject({read: 2, written: 1, dead: {SCHEMA_VIOLATION: 1}})
    expect(mm.dead.map((d) => [d.offset, d.stage, d.field])).toEqual([[0, 'validate', 'memo']])
    expect((await m.pool.query(`SELECT acct, n::int, first_memo FROM "${m.schema}".agg`)).rows).toEqual([{acct: 'A1', n: 1, first_memo: 'fine'}])
  })
})
