/**
 * Rows the database refuses (src/runtime/batch.ts writeSinks), against the real PostgreSQL: the
 * transaction that isolates them finds each by the row its statement stopped at (a check, a
 * numeric overflow, a unique index met by an earlier row of the batch), looks a foreign key's
 * suspects up (it is checked at the end of the statement), falls back to bisection for what
 * neither can tell (an aggregate),
 * dead-letters each with the database's message and commits the rest, upserts and aggregates;
 * it needs O(refused rows) statements, not bisection's; after a batch with refused rows the
 * next one isolates straight away, until one finds none; and with one upsert keyed like the dedupe
 * and one aggregate it isolates beside the pipeline's other transactions (its lock shared)
 * without deadlocking, alone only when the aggregate refuses a record.
 */
import {describe, expect, it} from 'vitest'
import {commitBatch, commitBatches, isolatesInOrder, RefusedRows} from '../../src/runtime/batch.js'
import {batchFixture, holdPipelineLock, recordingPool, untilWaitingForPipelineLock} from './stream-support.js'

const SPEC = `fields:
  id: {type: string, required: true}
  acct: {type: string, required: true}
  amount: {type: decimal, scale: 2, required: true}
  ref: {type: string}
key: id
dedupe: {by: id}
sinks:
  - table: t
  - table: agg
    group_by: [acct]
    aggregates: {n: count, total: sum(amount)}
`

/** whether `p` settles within `ms` */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let done = false
  void p.then(
    () => (done = true),
    () => (done = true),
  )
  const until = Date.now() + ms
  while (!done && Date.now() < until) await new Promise((r) => setTimeout(r, 20))
  return done
}

async function setup() {
  const f = await batchFixture({
    prefix: 'refused',
    tables: (schema) => [
      `CREATE TABLE "${schema}".accts (acct text PRIMARY KEY)`,
      `INSERT INTO "${schema}".accts VALUES ('A1'), ('A2'), ('A3'), ('BIG')`,
      `CREATE TABLE "${schema}".t (id text PRIMARY KEY, acct text NOT NULL REFERENCES "${schema}".accts, amount numeric(8,2) NOT NULL CHECK (amount >= 0), ref text UNIQUE)`,
      `CREATE TABLE "${schema}".agg (acct text PRIMARY KEY, n bigint NOT NULL DEFAULT 0, total numeric(12,2) NOT NULL DEFAULT 0 CHECK (total < 100000))`,
    ],
    spec: SPEC,
  })
  const seen: string[] = []
  const deps = {...f.deps, pool: recordingPool(f.pool, seen)}
  const id = (o: number) => `k${String(o).padStart(4, '0')}`
  const rows = async () => (await f.pool.query<{id: string; acct: string; amount: string}>(`SELECT id, acct, amount::text FROM "${f.schema}".t ORDER BY id`)).rows
  const aggregates = async () => (await f.pool.query<{acct: string; n: string; total: string}>(`SELECT acct, n::text, total::text FROM "${f.schema}".agg ORDER BY acct`)).rows
  return {...f, deps, seen, id, rows, aggregates}
}

type Rec = {id: string; acct: string; amount: string; ref?: string}

/** per account: count and sum (in cents) of `recs` */
function totals(recs: readonly Rec[]): {acct: string; n: string; total: string}[] {
  const by = new Map<string, {n: number; cents: bigint}>()
  for (const r of recs) {
    const t = by.get(r.acct) ?? {n: 0, cents: 0n}
    t.n++
    t.cents += BigInt(r.amount.replace('.', ''))
    by.set(r.acct, t)
  }
  return [...by]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([acct, t]) => ({acct, n: String(t.n), total: `${t.cents / 100n}.${String(t.cents % 100n).padStart(2, '0')}`}))
}

describe('stream run: rows the database refuses', () => {
  it('each kind of refused row is dead-lettered with its message; the rest commits to the table and the aggregate', async () => {
    const s = await setup()
    const odd = new Map<number, Partial<Rec>>([
      [17, {amount: '-1.00'}], // CHECK (amount >= 0): where the statement stopped
      [120, {amount: '-2.00'}],
      [399, {amount: '-3.00'}], // the last row
      [55, {amount: '1234567.00'}], // numeric(8,2) overflow, in the coercion to the column
      [0, {amount: '7654321.00'}], // the first row
      [100, {ref: 'R1'}],
      [300, {ref: 'R1'}], // the unique index on ref, met by row 100 of the same batch: refused, 100 kept
      [210, {acct: 'A9'}], // foreign key: checked at the end of the statement (bisection)
      [250, {acct: 'BIG', amount: '60000.00'}],
      [260, {acct: 'BIG', amount: '60000.00'}], // the aggregate's CHECK (total < 100000): this one tips it
    ])
    const rec = (o: number): Rec => ({id: s.id(o), acct: `A${(o % 3) + 1}`, amount: '1.00', ...odd.get(o)})
    const outcome = await commitBatch(s.deps, await s.batch(0, 0, 399, rec), 1)
    const refused = [0, 17, 55, 120, 210, 260, 300, 399]
    expect(outcome).toMatchObject({kind: 'committed', next: 400n, counts: {read: 400, written: 392, dead: {SINK_REJECTED: 8}}})
    if (outcome.kind !== 'committed') throw new Error('not committed')
    const dead = outcome.items.filter((i) => i.status === 'dead')
    expect(dead.map((i) => Number(i.offset)).sort((a, b) => a - b)).toEqual(refused)
    const message = (o: number) => dead.find((i) => Number(i.offset) === o)!.dead!.message
    expect(message(17)).toMatch(/violates check constraint "t_amount_check"/)
    expect(message(399)).toMatch(/violates check constraint "t_amount_check"/)
    // PostgreSQL names no column for an overflow: the sink does, and the dead letter's field
    expect(message(0)).toMatch(/numeric field overflow.*\(column amount: 7 digits before the decimal point, at most 6\)$/)
    expect(message(55)).toMatch(/numeric field overflow/)
    expect(dead.find((i) => Number(i.offset) === 55)!.dead!.field).toBe('amount')
    expect(message(300)).toMatch(/duplicate key value violates unique constraint "t_ref_key"/)
    expect(message(210)).toMatch(/violates foreign key constraint/)
    expect(message(260)).toMatch(/violates check constraint "agg_total_check"/)
    const kept = Array.from({length: 400}, (_, o) => rec(o)).filter((_, o) => !refused.includes(o))
    expect(await s.rows()).toEqual(kept.map((r) => ({id: r.id, acct: r.acct, amount: r.amount})))
    expect(await s.aggregates()).toEqual(totals(kept))
    // the refused rows' dedupe keys are released (a fixed record can be replayed)
    const keys = await s.pool.query('SELECT key FROM cutover.stream_dedupe WHERE pipeline = $1 AND key = ANY($2)', [s.name, refused.map(s.id)])
    expect(keys.rows).toEqual([])
  })

  it('a value too long and a total that overflows are said with their column (PostgreSQL names none)', async () => {
    const f = await batchFixture({
      prefix: 'refusedcol',
      tables: (schema) => [
        `CREATE TABLE "${schema}".t (id text PRIMARY KEY, acct varchar(4) NOT NULL, amount numeric(8,2) NOT NULL, ref varchar(3))`,
        `CREATE TABLE "${schema}".agg (acct text PRIMARY KEY, n integer NOT NULL DEFAULT 0, total numeric(7,2) NOT NULL DEFAULT 0)`,
      ],
      spec: SPEC,
    })
    const id = (o: number) => `c${String(o).padStart(4, '0')}`
    const odd = new Map<number, Partial<Rec>>([
      [3, {ref: 'ЖЖЖЖ'}], // 4 characters (8 bytes) into varchar(3)
      [7, {acct: 'A12345'}],
      [9, {acct: 'BIG', amount: '60000.00'}],
      [11, {acct: 'BIG', amount: '60000.00'}], // BIG's total 120000.00 passes numeric(7,2)
    ])
    const rec = (o: number): Rec => ({id: id(o), acct: 'A1', amount: '1.00', ...odd.get(o)})
    const outcome = await commitBatch(f.deps, await f.batch(0, 0, 19, rec), 1)
    if (outcome.kind !== 'committed') throw new Error('not committed')
    const dead = new Map(outcome.items.filter((i) => i.status === 'dead').map((i) => [Number(i.offset), i.dead!]))
    expect([...dead.keys()].sort((a, b) => a - b)).toEqual([3, 7, 11])
    expect(dead.get(3)).toMatchObject({field: 'ref', message: expect.stringMatching(/value too long for type character varying\(3\) \(column ref: 4 characters, at most 3\)$/)})
    expect(dead.get(7)).toMatchObject({field: 'acct', message: expect.stringMatching(/\(column acct: 6 characters, at most 4\)$/)})
    expect(dead.get(11)).toMatchObject({field: 'amount', message: expect.stringMatching(/numeric field overflow.*\(column total: the total would pass numeric\(7, 2\)\)$/)})
  })

  it('a repeat of a refused record in the same batch is judged as in the next batch: a fixed one is written, an identical one refused too', async () => {
    // offsets 2..6 share one key: 2 is refused (CHECK amount >= 0), 3 repeats it exactly, 5 is the
    // fix; 4 and 6 repeat the fix. Offset 8's key: refused, and 9 repeats it exactly.
    const records = new Map<number, Rec>([
      [2, {id: 'K', acct: 'A1', amount: '-1.00'}],
      [3, {id: 'K', acct: 'A1', amount: '-1.00'}],
      [4, {id: 'K', acct: 'A1', amount: '-2.00'}],
      [5, {id: 'K', acct: 'A1', amount: '5.00'}],
      [6, {id: 'K', acct: 'A1', amount: '5.00'}],
      [8, {id: 'L', acct: 'A2', amount: '-1.00'}],
      [9, {id: 'L', acct: 'A2', amount: '-1.00'}],
    ])
    const rec = (o: number): Rec => records.get(o) ?? {id: `k${o}`, acct: 'A3', amount: '1.00'}
    const outcomes = async (s: Awaited<ReturnType<typeof setup>>, cuts: number[]) => {
      const codes = new Map<number, string>()
      let from = 0
      for (const to of [...cuts, 11]) {
        const outcome = await commitBatch(s.deps, await s.batch(0, from, to, rec), 1)
        if (outcome.kind !== 'committed') throw new Error(`not committed: ${outcome.kind}`)
        for (const i of outcome.items) codes.set(Number(i.offset), i.status === 'dead' ? i.dead!.code : i.status)
        from = to + 1
      }
      return {codes: [...codes].sort(([a], [b]) => a - b).map(([, c]) => c), rows: await s.rows(), aggregates: await s.aggregates()}
    }
    const expected = {
      codes: ['ok', 'ok', 'SINK_REJECTED', 'SINK_REJECTED', 'SINK_REJECTED', 'ok', 'duplicate', 'ok', 'SINK_REJECTED', 'SINK_REJECTED', 'ok', 'ok'],
      rows: expect.arrayContaining([{id: 'K', acct: 'A1', amount: '5.00'}]),
      aggregates: [
        {acct: 'A1', n: '1', total: '5.00'},
        {acct: 'A3', n: '5', total: '5.00'},
      ],
    }
    // one batch, and each record in a batch of its own: the same outcome
    const one = await outcomes(await setup(), [])
    expect(one).toEqual(expected)
    expect(one.rows.map((r) => r.id)).not.toContain('L')
    expect(await outcomes(await setup(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])).toEqual(one)
  })

  it('k refused rows take O(k) statements: the row each try stopped at, not bisection', async () => {
    const s = await setup()
    // 20 refused rows among 2,000: bisection tries ~2·20·log2(100) parts of the batch, with a
    // savepoint each
    const rec = (o: number): Rec => ({id: s.id(o), acct: 'A1', amount: o % 100 === 37 ? '-1.00' : '1.00'})
    const outcome = await commitBatch(s.deps, await s.batch(0, 0, 1999, rec), 1)
    expect(outcome).toMatchObject({kind: 'committed', counts: {read: 2000, written: 1980, dead: {SINK_REJECTED: 20}}})
    const writes = s.seen.filter((q) => q.startsWith(`INSERT INTO "${s.schema}"."t" `)).length
    expect(s.seen.length).toBeLessThan(400) // 259 measured; 906 by bisection
    expect(writes).toBeLessThan(120) // 80 measured; 296 by bisection
    expect(await s.aggregates()).toEqual([{acct: 'A1', n: '1980', total: '1980.00'}])
  })

  it('rows a foreign key refuses (checked at the end of the statement) are looked up, not bisected', async () => {
    const s = await setup()
    const rec = (o: number): Rec => ({id: s.id(o), acct: o % 100 === 37 ? 'A9' : 'A1', amount: '1.00'})
    const outcome = await commitBatch(s.deps, await s.batch(0, 0, 1999, rec), 1)
    expect(outcome).toMatchObject({kind: 'committed', counts: {read: 2000, written: 1980, dead: {SINK_REJECTED: 20}}})
    if (outcome.kind !== 'committed') throw new Error('not committed')
    const dead = outcome.items.filter((i) => i.status === 'dead')
    expect(dead.map((i) => Number(i.offset) % 100)).toEqual(Array.from({length: 20}, () => 37))
    for (const i of dead) expect(i.dead!.message).toMatch(/violates foreign key constraint "t_acct_fkey".*Key \(acct\)=\(A9\) is not present/)
    expect(s.seen.length).toBeLessThan(250) // 149 measured; 916 by bisection
    expect(await s.aggregates()).toEqual([{acct: 'A1', n: '1980', total: '1980.00'}])
  })

  it('after a batch with refused rows the next one isolates straight away; after one that finds none, the joined write again', async () => {
    const s = await setup()
    const isolated: [number, boolean][] = []
    const deps = {...s.deps, refusedRows: new RefusedRows((n, alone) => isolated.push([n, alone]))}
    const run = async (from: number, bad: number | null) => {
      s.seen.length = 0
      const outcome = await commitBatch(deps, await s.batch(0, from, from + 49, (o) => ({id: s.id(o), acct: 'A2', amount: o === bad ? '-1.00' : '1.00'})), 1)
      expect(outcome.kind).toBe('committed')
      return {rolledBack: s.seen.filter((q) => q === 'ROLLBACK').length, savepoints: s.seen.filter((q) => q.startsWith('SAVEPOINT cutover_sink')).length}
    }
    // the joined write fails, the transaction runs again isolating
    expect(await run(0, 10)).toMatchObject({rolledBack: 1})
    // straight to isolating: no failed try first
    expect(await run(50, 60)).toEqual({rolledBack: 0, savepoints: expect.any(Number)})
    // isolating straight away again, and it finds none...
    expect(await run(100, null)).toMatchObject({rolledBack: 0})
    expect(s.seen.some((q) => q.startsWith('SAVEPOINT cutover_sink'))).toBe(true)
    // ...so the next one writes in one joined statement, without savepoints
    expect(await run(150, null)).toEqual({rolledBack: 0, savepoints: 0})
    expect(await s.aggregates()).toEqual([{acct: 'A2', n: '198', total: '198.00'}])
    // the runtime's cutover_isolating_transactions_total: three isolating transactions, alone (no isolateInOrder here)
    expect(isolated).toEqual([
      [1, true],
      [1, true],
      [0, true],
    ])
  })

  it('isolating beside the other transactions (lock shared) when the sinks take rows in key order; alone when the aggregate refuses a record', async () => {
    const s = await setup()
    expect(isolatesInOrder({key: 'id', dedupe: {by: 'id'}}, s.deps.sinks)).toBe(true)
    expect(isolatesInOrder({key: 'id', dedupe: {by: 'acct'}}, s.deps.sinks)).toBe(false)
    expect(isolatesInOrder({key: 'id'}, s.deps.sinks)).toBe(false)
    expect(isolatesInOrder({key: 'id', dedupe: {by: 'id'}}, [...s.deps.sinks, s.deps.sinks[0]!])).toBe(false)
    const deps = {...s.deps, isolateInOrder: true}
    const other = await holdPipelineLock(s.name, false)
    // a refused row (the upsert's check): isolated while another transaction holds the lock shared
    const first = commitBatch(deps, await s.batch(0, 0, 49, (o) => ({id: s.id(o), acct: 'A1', amount: o === 7 ? '-1.00' : '1.00'})), 1)
    expect(await settlesWithin(first, 10_000)).toBe(true)
    expect(await first).toMatchObject({kind: 'committed', counts: {written: 49, dead: {SINK_REJECTED: 1}}})
    // the aggregate refuses one (60000 + 60000 over its check): run again alone, so it waits for the other
    const second = commitBatch(deps, await s.batch(0, 50, 99, (o) => ({id: s.id(o), acct: o >= 90 ? 'BIG' : 'A1', amount: o >= 90 && o < 92 ? '60000.00' : '1.00'})), 1)
    await untilWaitingForPipelineLock(s.pool, s.name, second)
    expect(await settlesWithin(second, 200)).toBe(false)
    await other.release()
    expect(await second).toMatchObject({kind: 'committed', counts: {written: 49, dead: {SINK_REJECTED: 1}}})
    expect(await s.aggregates()).toEqual([
      {acct: 'A1', n: '89', total: '89.00'},
      {acct: 'BIG', n: '9', total: '60008.00'},
    ])
  })

  it('transactions isolating beside common ones on the same aggregate rows do not deadlock, and every record is counted once', async () => {
    const s = await setup()
    await s.pool.query(`INSERT INTO "${s.schema}".accts SELECT 'A' || i FROM generate_series(10, 19) i`)
    const deps = {...s.deps, isolateInOrder: true}
    // the accounts descend along each batch (A19 first), so a transaction that wrote the aggregate
    // part by part would lock them in descending order, against the ascending order of the
    // common transactions' one statement: a deadlock
    const acct = (o: number) => `A${19 - Math.floor((o % 300) / 30)}`
    const refused = (p: number, o: number) => p % 2 === 0 && o % 23 === 5
    const rec = (p: number, o: number): Rec => ({id: `p${p}-${s.id(o)}`, acct: acct(o), amount: refused(p, o) ? '-1.00' : `${(o % 50) + 1}.00`})
    const kept: Rec[] = []
    for (let round = 0; round < 4; round++) {
      // four partitions' batches at once, each its own transaction: 0 and 2 with refused rows, 1 and 3 without
      const inputs = await Promise.all([0, 1, 2, 3].map((p) => s.batch(p, round * 300, round * 300 + 299, (o) => rec(p, o))))
      const outcomes = await Promise.all(inputs.map((input) => commitBatches(deps, [{input, attempt: 1}])))
      for (const [outcome] of outcomes) expect(outcome).toMatchObject({kind: 'committed'})
      for (const p of [0, 1, 2, 3]) for (let o = round * 300; o < round * 300 + 300; o++) if (!refused(p, o)) kept.push(rec(p, o))
    }
    expect(await s.aggregates()).toEqual(totals(kept))
    expect((await s.rows()).length).toBe(kept.length)
  })
})

describe('stream run: a constraint checked at COMMIT (DEFERRABLE INITIALLY DEFERRED)', () => {
  it('dead-letters the row it refuses as SINK_REJECTED and commits the rest (it was taken for a COMMIT without an answer, retried for ever)', async () => {
    const f = await batchFixture({
      prefix: 'deferred-fk',
      tables: (schema) => [
        `CREATE TABLE "${schema}".acc (id text PRIMARY KEY)`,
        `INSERT INTO "${schema}".acc VALUES ('A1')`,
        `CREATE TABLE "${schema}".t (id text PRIMARY KEY, acct text NOT NULL CONSTRAINT t_acct_fk REFERENCES "${schema}".acc (id) DEFERRABLE INITIALLY DEFERRED)`,
      ],
      spec: `fields:
  id: {type: string, required: true}
  acct: {type: string, required: true}
key: id
dedupe: {by: id}
sinks:
  - table: t
`,
    })
    const records = [{id: 'x1', acct: 'A1'}, {id: 'x2', acct: 'NOPE'}, {id: 'x3', acct: 'A1'}]
    const deps = {...f.deps, refusedRows: new RefusedRows()}
    const outcome = await commitBatch(deps, await f.batch(0, 0, 2, (o) => records[o]!), 1)
    expect(outcome.kind).toBe('committed')
    if (outcome.kind !== 'committed') return
    expect(outcome.items.filter((i) => i.status === 'dead').map((i) => [i.offset, i.dead!.code])).toEqual([[1n, 'SINK_REJECTED']])
    expect(outcome.items.find((i) => i.status === 'dead')!.dead!.message).toContain('t_acct_fk')
    expect((await f.pool.query(`SELECT id FROM "${f.schema}".t ORDER BY id`)).rows).toEqual([{id: 'x1'}, {id: 'x3'}])
    expect((await f.pool.query('SELECT next_offset::int AS n FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])).rows).toEqual([{n: 3}])
    // the refused row's dedupe key is released: a corrected replay is not a duplicate
    expect((await f.pool.query('SELECT key FROM cutover.stream_dedupe WHERE pipeline = $1 ORDER BY key', [f.name])).rows.map((r: {key: string}) => r.key)).toEqual(['x1', 'x3'])
  })
})
