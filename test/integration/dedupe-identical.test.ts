/**
 * The dedupe stage in the runtime's batch transaction against the real PostgreSQL (batchFixture:
 * stages and sinks as `stream run` builds them, no broker): what "identical" means (the
 * normalized record, not the raw bytes), repeats inside one batch in any order, a key dead-lettered
 * before the dedupe, a key a sink refused, and read = written + dead + duplicates throughout.
 */
import {describe, expect, it} from 'vitest'
import {commitBatch} from '../../src/runtime/batch.js'
import type {BatchCounts} from '../../src/runtime/batch.js'
import {batchFixture} from './stream-support.js'

const SPEC = `fields:
  id: {type: string, required: true, trim: true}
  amount: {type: decimal, scale: 2, required: true}
  ts: {type: timestamp, required: true, timezone: Europe/Moscow, formats: ["iso", "dd.MM.yyyy HH:mm:ss", "epoch_ms"]}
key: id
dedupe: {by: id}
sinks: [{table: t}]
`

async function setup() {
  return batchFixture({
    prefix: 'review-dedupe',
    tables: (schema) => [`CREATE TABLE "${schema}".t (id text PRIMARY KEY, amount numeric(8,2) NOT NULL CHECK (amount > 0), ts timestamptz NOT NULL)`],
    spec: SPEC,
  })
}

type Rec = {id: string} & Record<string, unknown>
const base = {amount: '1.50', ts: '2026-11-20T10:00:00+03:00'}

async function commit(s: Awaited<ReturnType<typeof setup>>, from: number, recs: Rec[]): Promise<BatchCounts & {codes: string[]}> {
  const input = await s.batch(0, from, from + recs.length - 1, (o) => recs[o - from]!)
  const out = await commitBatch(s.deps, input, 1)
  if (out.kind !== 'committed') throw new Error(`batch ${out.kind}`)
  const c = out.counts
  const dead = Object.values(c.dead).reduce<number>((a, b) => a + (b ?? 0), 0)
  expect(c.read).toBe(c.written + dead + c.duplicates)
  return {...c, codes: input.items.map((i) => (i.status === 'ok' ? 'ok' : i.status === 'duplicate' ? 'dup' : i.dead!.code))}
}

async function rows(s: Awaited<ReturnType<typeof setup>>): Promise<string[]> {
  const r = await s.pool.query<{id: string; amount: string}>(`SELECT id, amount::text AS amount FROM "${s.schema}".t ORDER BY id COLLATE "C"`)
  return r.rows.map((x) => `${x.id}=${x.amount}`)
}

describe('dedupe: identical means the same normalized record', () => {
  it('key order, an extra field, "1,50", another date format or offset, a number, a padded key: duplicates; another amount: DUPLICATE_CONFLICT, in one batch and after it', async () => {
    const s = await setup()
    const same: Rec[] = [
      {id: 'a', ...base},
      {ts: base.ts, amount: '1.50', id: 'a'},
      {id: 'a', ...base, unknown: 'x'},
      {id: 'a', ...base, amount: '1,50'},
      {id: 'a', ...base, amount: 1.5},
      {id: 'a', ...base, ts: '20.11.2026 10:00:00'},
      {id: 'a', ...base, ts: '2026-11-20T07:00:00Z'},
      {id: 'a', ...base, ts: String(Date.parse('2026-11-20T07:00:00Z'))},
      {id: ' a ', ...base},
    ]
    const c = await commit(s, 0, [...same, {id: 'a', ...base, amount: '1.51'}])
    expect(c.codes).toEqual(['ok', ...Array(same.length - 1).fill('dup'), 'DUPLICATE_CONFLICT'])
    const again = await commit(s, 10, [{...same[5]!}, {id: 'a', ...base, amount: '9.99'}])
    expect(again.codes).toEqual(['dup', 'DUPLICATE_CONFLICT'])
    expect(await rows(s)).toEqual(['a=1.50'])
  })

  it('repeats in one batch in any order are judged against the first occurrence; case and NFC/NFD are distinct keys', async () => {
    const s = await setup()
    const p1 = {id: 'k', ...base}
    const p2 = {id: 'k', ...base, amount: '2.00'}
    const c = await commit(s, 0, [p2, p1, p2, p1, {id: 'K', ...base}, {id: '\u00e9', ...base}, {id: 'e\u0301', ...base}])
    expect(c.codes).toEqual(['ok', 'DUPLICATE_CONFLICT', 'dup', 'DUPLICATE_CONFLICT', 'ok', 'ok', 'ok'])
    expect(await rows(s)).toEqual(['K=1.50', 'e\u0301=1.50', 'k=2.00', '\u00e9=1.50'].sort())
  })

  it('a record dead-lettered before the dedupe (invalid) claims no key: its key arriving valid later is written', async () => {
    const s = await setup()
    expect((await commit(s, 0, [{id: 'b', ...base, amount: 'xx'}, {id: 'b', ...base, amount: '3.00'}])).codes).toEqual(['UNPARSEABLE_AMOUNT', 'ok'])
    expect((await commit(s, 2, [{id: 'c', ...base, ts: 'never'}])).codes).toEqual(['UNPARSEABLE_DATE'])
    expect((await commit(s, 3, [{id: 'c', ...base}])).codes).toEqual(['ok'])
    expect(await rows(s)).toEqual(['b=3.00', 'c=1.50'])
  })

  it('a SINK_REJECTED record releases its key: the fixed record in a later batch is written', async () => {
    const s = await setup()
    expect((await commit(s, 0, [{id: 'm', ...base, amount: '-1.00'}, {id: 'n', ...base}])).codes).toEqual(['SINK_REJECTED', 'ok'])
    const keys = await s.pool.query<{key: string}>('SELECT key FROM cutover.stream_dedupe WHERE pipeline = $1 ORDER BY key', [s.name])
    expect(keys.rows.map((r) => r.key)).toEqual(['n'])
    expect((await commit(s, 2, [{id: 'm', ...base}])).codes).toEqual(['ok'])
    expect(await rows(s)).toEqual(['m=1.50', 'n=1.50'])
  })
})
