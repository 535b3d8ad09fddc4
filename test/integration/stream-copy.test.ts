/**
 * Bulk inserts by COPY (src/pg/copy.ts) in the batch transaction, against the real PostgreSQL:
 * with COPY_MIN_ROWS records or more, the upsert sink's plain insert (InsertFirst) and the dedupe
 * keys go by `COPY ... FROM STDIN`; every value comes back exactly (text with tabs, line breaks,
 * backslashes, quotes and characters beyond U+FFFF; NULL; decimals; timestamps); a key that
 * exists fails the COPY and the transaction runs again as an upsert; a table with an INSERT rule
 * is refused at start (ON CONFLICT is refused on it); smaller batches keep the joined statement.
 */
import {describe, expect, it} from 'vitest'
import {commitBatch, InsertFirst} from '../../src/runtime/batch.js'
import {inByteOrder} from '../../src/runtime/stages/dedupe.js'
import {COPY_MIN_ROWS} from '../../src/runtime/types.js'
import {batchFixture, recordingPool} from './stream-support.js'

const SPEC = `fields:
  id: {type: string, required: true}
  note: {type: string}
  amount: {type: decimal, scale: 2, required: true}
  at: {type: timestamp, formats: [iso], timezone: UTC}
key: id
dedupe: {by: id}
sinks: [{table: t}]
`

const NOTES = ['tab\there', 'line\nbreak', 'carriage\rreturn', 'back\\slash', '\\N', '\\.', 'quote " and \'', 'emoji 😀 and 𝔘', 'Ё ё é', '', null]

async function setup(extraTables: (schema: string) => string[] = () => []) {
  const f = await batchFixture({
    prefix: 'copy',
    tables: (schema) => [`CREATE TABLE "${schema}".t (id text PRIMARY KEY, note text, amount numeric(12,2) NOT NULL, at timestamptz)`, ...extraTables(schema)],
    spec: SPEC,
  })
  const seen: string[] = []
  const deps = {...f.deps, pool: recordingPool(f.pool, seen), insertFirst: new InsertFirst()}
  const id = (o: number) => `k${String(o).padStart(5, '0')}`
  const record = (o: number, amount = `${o}.25`) => ({id: id(o), note: NOTES[o % NOTES.length], amount, at: new Date(Date.UTC(2026, 10, 20, 6, 15) + o * 1000).toISOString()})
  const rows = async () =>
    (await f.pool.query<{id: string; note: string | null; amount: string; at: string | null}>(`SELECT id, note, amount::text, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at FROM "${f.schema}".t ORDER BY id`)).rows
  return {...f, deps, seen, id, record, rows}
}

describe('stream run: bulk inserts by COPY', () => {
  it(`${COPY_MIN_ROWS} records or more: the rows and the dedupe keys go by COPY, every value exact`, async () => {
    const s = await setup()
    const n = COPY_MIN_ROWS + 37
    const outcome = await commitBatch(s.deps, await s.batch(0, 0, n - 1, (o) => s.record(o)), 1)
    expect(outcome).toMatchObject({kind: 'committed', counts: {read: n, written: n}})
    expect(s.seen.filter((q) => q.startsWith(`COPY "${s.schema}"."t" ("id", "note", "amount", "at") FROM STDIN`))).toHaveLength(1)
    expect(s.seen.filter((q) => q.startsWith('COPY cutover.stream_dedupe'))).toHaveLength(1)
    expect(await s.rows()).toEqual(Array.from({length: n}, (_, o) => s.record(o)).map((r) => ({...r, note: r.note ?? null})))
    const keys = await s.pool.query<{key: string; h: string}>(`SELECT key, encode(payload_sha256, 'hex') AS h FROM cutover.stream_dedupe WHERE pipeline = $1 ORDER BY key`, [s.name])
    expect(keys.rows).toHaveLength(n)
    if (outcome.kind !== 'committed') return
    const hashes = new Map(outcome.items.map((i) => [i.dedupeKey, i.dedupeHash]))
    for (const k of keys.rows) expect(k.h).toBe(hashes.get(k.key))
  })

  it('a repeat of a stored key is found by the lookup before the COPY: a duplicate or DUPLICATE_CONFLICT', async () => {
    const s = await setup()
    const n = COPY_MIN_ROWS + 10
    await commitBatch(s.deps, await s.batch(0, 0, 9, (o) => s.record(o)), 1)
    // offsets 10.. repeat k00003 (same payload) and k00004 (another amount) among new keys
    const outcome = await commitBatch(s.deps, await s.batch(0, 10, 10 + n - 1, (o) => (o === 20 ? s.record(3) : o === 30 ? s.record(4, '9.99') : s.record(o))), 1)
    expect(outcome).toMatchObject({kind: 'committed', counts: {read: n, written: n - 2, duplicates: 1, dead: {DUPLICATE_CONFLICT: 1}}})
    expect(s.seen.filter((q) => q.startsWith('COPY cutover.stream_dedupe'))).toHaveLength(1)
  })

  it('a key already in the table fails the COPY: the transaction runs again as an upsert, nothing is dead-lettered', async () => {
    const s = await setup()
    await s.pool.query(`INSERT INTO "${s.schema}".t VALUES ('${s.id(100)}', 'old', 1.00, NULL)`)
    const n = COPY_MIN_ROWS + 1
    const outcome = await commitBatch(s.deps, await s.batch(0, 0, n - 1, (o) => s.record(o)), 1)
    expect(outcome).toMatchObject({kind: 'committed', counts: {read: n, written: n}})
    expect(outcome.kind === 'committed' && outcome.counts.dead).toEqual({}) // toMatchObject takes any object for {}
    expect(s.seen.filter((q) => q.startsWith(`COPY "${s.schema}"."t"`))).toHaveLength(1)
    expect(s.seen.filter((q) => q === 'ROLLBACK')).toHaveLength(1)
    expect(s.deps.insertFirst.upsertsAhead).toBeGreaterThan(0)
    const row = (await s.rows()).find((r) => r.id === s.id(100))
    expect(row).toEqual({...s.record(100), note: s.record(100).note ?? null})
  })

  it('a table with an INSERT rule is refused at start (exit 2, DROP RULE and a trigger as the fix): INSERT ... ON CONFLICT never works on it', async () => {
    const err = await setup((schema) => [`CREATE TABLE "${schema}".audit (id text)`, `CREATE RULE audit AS ON INSERT TO "${schema}".t DO ALSO INSERT INTO "${schema}".audit VALUES (NEW.id)`]).then(
      () => undefined,
      (e: unknown) => e as {exitCode?: number; hint?: string},
    )
    expect(err?.exitCode).toBe(2)
    expect(err?.hint).toContain('DROP RULE "audit"')
  })

  it(`fewer than ${COPY_MIN_ROWS} records keep the joined statement`, async () => {
    const s = await setup()
    await commitBatch(s.deps, await s.batch(0, 0, 49, (o) => s.record(o)), 1)
    expect(s.seen.filter((q) => q.startsWith('COPY'))).toEqual([])
    expect(await s.rows()).toHaveLength(50)
  })
})

describe('inByteOrder', () => {
  it("puts keys in PostgreSQL's C order (UTF-8 bytes), which differs from JavaScript's only beyond U+FFFF", () => {
    const keys = ['a', 'b\uFFFD', 'b😀', 'c'].sort()
    expect(keys).toEqual(['a', 'b😀', 'b\uFFFD', 'c']) // UTF-16: the surrogate 0xD83D sorts below 0xFFFD
    expect(inByteOrder(keys)).toEqual(['a', 'b\uFFFD', 'b😀', 'c']) // UTF-8: EF BF BD below F0 9F 98 80
    const plain = ['a', 'b', 'é']
    expect(inByteOrder(plain)).toBe(plain)
  })
})
