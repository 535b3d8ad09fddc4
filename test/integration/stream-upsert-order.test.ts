/**
 * An upsert sink keyed unlike the dedupe (`key: acct`, `dedupe: {by: id}`: the latest balance of
 * an account, each transaction deduplicated by its id), against the real PostgreSQL: of two
 * records of one account in a batch the newer one (higher offset) is the row left, also when the
 * batch isolates a row the database refuses. The records used to reach the sink sorted by the
 * dedupe key, and the older one could win.
 */
import {describe, expect, it} from 'vitest'
import {commitBatch} from '../../src/runtime/batch.js'
import {batchFixture} from './stream-support.js'

const SPEC = `fields:
  id: {type: string, required: true}
  acct: {type: string, required: true}
  balance: {type: decimal, scale: 2, required: true}
key: acct
dedupe: {by: id}
sinks:
  - table: latest
`

async function setup() {
  return batchFixture({
    prefix: 'upsert-order',
    tables: (schema) => [`CREATE TABLE "${schema}".latest (acct text PRIMARY KEY, id text NOT NULL, balance numeric(12,2) NOT NULL CHECK (balance >= 0))`],
    spec: SPEC,
  })
}

describe('upsert sink keyed unlike the dedupe', () => {
  it.each([
    ['the common transaction', [{id: 'txn-b', acct: 'A1', balance: '100.00'}, {id: 'txn-a', acct: 'A1', balance: '200.00'}], []],
    [
      'a transaction isolating a refused row',
      [{id: 'txn-c', acct: 'A1', balance: '100.00'}, {id: 'txn-z', acct: 'A2', balance: '-5.00'}, {id: 'txn-b', acct: 'A1', balance: '150.00'}, {id: 'txn-a', acct: 'A1', balance: '200.00'}],
      ['txn-z'],
    ],
  ])('keeps the newer record of an account: %s', async (_, records, refused) => {
    const f = await setup()
    const outcome = await commitBatch(f.deps, await f.batch(0, 0, records.length - 1, (o) => records[o]!), 1)
    expect(outcome.kind).toBe('committed')
    if (outcome.kind !== 'committed') return
    expect(outcome.items.filter((i) => i.status === 'dead').map((i) => records[Number(i.offset)]!.id)).toEqual(refused)
    const rows = await f.pool.query<{acct: string; id: string; balance: string}>(`SELECT acct, id, balance::text FROM "${f.schema}".latest ORDER BY acct`)
    expect(rows.rows).toEqual([{acct: 'A1', id: 'txn-a', balance: '200.00'}])
  })
})
