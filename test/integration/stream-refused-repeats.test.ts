/**
 * Repeats of a record the database refuses, in the same batch (src/runtime/batch.ts
 * RepeatsOfRefused, refusedWithRepeats), against the real PostgreSQL: a run of identical repeats
 * of a record refused for itself (a CHECK) costs one more run of the batch transaction, not one
 * per repeat, with the outcome of one batch per record; and a transaction that fails after it
 * found refused records leaves the records as they came, so that the batch's next try (group.ts
 * runs a failed group's batches again alone) tries them again rather than dead-lettering them for
 * a refusal that was never committed.
 */
import {describe, expect, it} from 'vitest'
import type {Pool} from '../../src/pg/pool.js'
import {commitBatch, type BatchInput} from '../../src/runtime/batch.js'
import {batchFixture, recordingPool} from './stream-support.js'

const SPEC = `fields:
  id: {type: string, required: true}
  acct: {type: string, required: true}
  amount: {type: decimal, scale: 2, required: true}
key: id
dedupe: {by: id}
sinks:
  - table: t
  - table: agg
    group_by: [acct]
    aggregates: {n: count, total: sum(amount)}
`

type Rec = {id: string; acct: string; amount: string}

async function setup() {
  const f = await batchFixture({
    prefix: 'refrep',
    tables: (schema) => [
      `CREATE TABLE "${schema}".accts (acct text PRIMARY KEY)`,
      `INSERT INTO "${schema}".accts VALUES ('A1'), ('A2')`,
      `CREATE TABLE "${schema}".t (id text PRIMARY KEY, acct text NOT NULL REFERENCES "${schema}".accts, amount numeric(8,2) NOT NULL CHECK (amount >= 0))`,
      `CREATE TABLE "${schema}".agg (acct text PRIMARY KEY, n bigint NOT NULL DEFAULT 0, total numeric(12,2) NOT NULL DEFAULT 0)`,
    ],
    spec: SPEC,
  })
  const seen: string[] = []
  const state = async () => ({
    rows: (await f.pool.query<{id: string; amount: string}>(`SELECT id, amount::text FROM "${f.schema}".t ORDER BY id`)).rows,
    aggregates: (await f.pool.query<{acct: string; n: string; total: string}>(`SELECT acct, n::text, total::text FROM "${f.schema}".agg ORDER BY acct`)).rows,
  })
  return {...f, seen, deps: {...f.deps, pool: recordingPool(f.pool, seen)}, state}
}

/** offset -> what the batch said of it: ok, duplicate, or the dead letter's code */
function codesOf(outcome: Awaited<ReturnType<typeof commitBatch>>): [number, string][] {
  if (outcome.kind !== 'committed') throw new Error(`not committed: ${outcome.kind}`)
  return outcome.items.map((i) => [Number(i.offset), i.status === 'dead' ? i.dead!.code : i.status])
}

describe('stream run: identical repeats of a refused record in one batch', () => {
  it('cost one more run of the transaction, not one per repeat, with the outcome of one batch per record', async () => {
    // BAD is refused by t's CHECK; it comes 40 times, then its fix (FIX), a repeat of the fix,
    // the bad payload once more (a conflict with the fix, as in a later batch), and the fix again
    const bad: Rec = {id: 'BAD', acct: 'A1', amount: '-1.00'}
    const fix: Rec = {id: 'BAD', acct: 'A1', amount: '5.00'}
    const special = new Map<number, Rec>()
    for (let o = 5; o < 205; o += 5) special.set(o, bad)
    special.set(207, fix)
    special.set(210, fix)
    special.set(212, bad)
    special.set(215, fix)
    const rec = (o: number): Rec => special.get(o) ?? {id: `k${o}`, acct: o % 2 === 0 ? 'A1' : 'A2', amount: '1.00'}
    const last = 219

    const one = await setup()
    const outcome = await commitBatch(one.deps, await one.batch(0, 0, last, rec), 1)
    const codes = codesOf(outcome)
    // the joined write failed, the isolating run found BAD and its repeats, one more run wrote the fix
    expect(one.seen.filter((q) => q === 'ROLLBACK').length).toBeLessThanOrEqual(2)

    const per = await setup()
    const perCodes: [number, string][] = []
    for (let o = 0; o <= last; o++) perCodes.push(...codesOf(await commitBatch(per.deps, await per.batch(0, o, o, rec), 1)))
    expect(codes).toEqual(perCodes)
    expect(await one.state()).toEqual(await per.state())

    const byOffset = new Map(codes)
    expect([...special.keys()].filter((o) => special.get(o) === bad && o < 207).every((o) => byOffset.get(o) === 'SINK_REJECTED')).toBe(true)
    expect([byOffset.get(207), byOffset.get(210), byOffset.get(212), byOffset.get(215)]).toEqual(['ok', 'duplicate', 'DUPLICATE_CONFLICT', 'duplicate'])
    expect((await one.state()).rows.find((r) => r.id === 'BAD')).toEqual({id: 'BAD', amount: '5.00'})
    // each repeat's dead letter says what the database said of the row
    if (outcome.kind !== 'committed') throw new Error('not committed')
    const repeat = outcome.items.find((i) => Number(i.offset) === 200)!
    expect(repeat.dead).toMatchObject({code: 'SINK_REJECTED', stage: 'sink', message: expect.stringMatching(/violates check constraint "t_amount_check"/)})
  })

  it('a transaction that fails after finding refused records leaves them as they came: the next try writes what the database now takes', async () => {
    const f = await setup()
    // A9 is no account (yet): K is refused by the foreign key, and its repeat makes the
    // transaction run again with K dead from the start; that run fails (the connection, say)
    const rec = (o: number): Rec => (o === 1 || o === 2 ? {id: 'K', acct: 'A9', amount: '3.00'} : {id: `k${o}`, acct: 'A1', amount: '1.00'})
    let checkouts = 0
    const failing = new Proxy(f.deps.pool, {
      get(target, prop) {
        if (prop === 'connect') {
          return async () => {
            // 1: the joined write (refused), 2: isolating (finds K and its repeat), 3: the run again
            if (++checkouts === 3) throw Object.assign(new Error('connection terminated unexpectedly'), {code: 'ECONNRESET'})
            return target.connect()
          }
        }
        const v = Reflect.get(target, prop) as unknown
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
      },
    }) as Pool
    const input: BatchInput = await f.batch(0, 0, 3, rec)
    await expect(commitBatch({...f.deps, pool: failing}, input, 1)).rejects.toThrow(/connection terminated/)
    expect(checkouts).toBe(3)
    expect(input.items.map((i) => i.status)).toEqual(['ok', 'ok', 'ok', 'ok'])
    // the account arrives before the batch is tried again (with the same records, as group.ts does)
    await f.pool.query(`INSERT INTO "${f.schema}".accts VALUES ('A9')`)
    const again = await commitBatch(f.deps, input, 2)
    expect(codesOf(again)).toEqual([
      [0, 'ok'],
      [1, 'ok'],
      [2, 'duplicate'],
      [3, 'ok'],
    ])
    expect((await f.state()).rows).toEqual([
      {id: 'K', amount: '3.00'},
      {id: 'k0', amount: '1.00'},
      {id: 'k3', amount: '1.00'},
    ])
  })
})
