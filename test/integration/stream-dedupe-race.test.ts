/**
 * The dedupe fast path (src/runtime/stages/dedupe.ts, DEDUPE_FAST_SQL) against the real
 * PostgreSQL: it claims new keys with a plain INSERT, so a key that another transaction commits
 * while the batch runs fails that INSERT (23505). The batch must then run again at once with
 * the race-free statements and still classify every record: the raced key is a duplicate
 * (same payload) or DUPLICATE_CONFLICT (another payload), the others are written once. Both forms
 * of the fast path: one statement (a few keys) and the lookup then a COPY (COPY_MIN_ROWS keys or
 * more), whose COPY the race fails the same way.
 */
import {describe, expect, it} from 'vitest'
import {commitBatch} from '../../src/runtime/batch.js'
import {payloadHash} from '../../src/runtime/stages/dedupe.js'
import {COPY_MIN_ROWS} from '../../src/runtime/types.js'
import {batchFixture, ID_AMOUNT_SPEC, recordingPool, sleep} from './stream-support.js'

async function setup() {
  const {pool, schema, name, deps, batch: prepared} = await batchFixture({
    prefix: 'race',
    tables: (schema) => [`CREATE TABLE "${schema}".t (id text PRIMARY KEY, amount numeric(8,2) NOT NULL)`],
    spec: ID_AMOUNT_SPEC,
  })
  const batch = (from: number, to: number, amount: (i: number) => string) => prepared(0, from, to, (o) => ({id: `k${o}`, amount: amount(o)}))
  return {pool, schema, name, deps, batch}
}

describe('stream dedupe: a key committed by another transaction during the batch', () => {
  for (const [same, n] of [[true, 10], [false, 10], [true, COPY_MIN_ROWS + 100], [false, COPY_MIN_ROWS + 100]] as const) {
    it(`is ${same ? 'a duplicate (same payload)' : 'DUPLICATE_CONFLICT (another payload)'}, and the rest of the batch is written once (${n} keys: ${n < COPY_MIN_ROWS ? 'one statement' : 'lookup and COPY'})`, async () => {
      const s = await setup()
      const seen: string[] = []
      const deps = {...s.deps, pool: recordingPool(s.pool, seen)}
      const input = await s.batch(0, n - 1, () => '1.00')
      const raced = input.items[5]!
      // another transaction (another partition's batch) claims k5 first and has not committed yet
      const other = await s.pool.connect()
      try {
        await other.query('BEGIN')
        const record = same ? raced.record! : {...raced.record!, amount: '9.99'}
        await other.query(`INSERT INTO cutover.stream_dedupe (pipeline, key, payload_sha256) VALUES ($1, 'k5', decode($2, 'hex'))`, [s.name, payloadHash(record)])
        const batch = commitBatch(deps, input, 1)
        let settled = false
        void batch.finally(() => (settled = true))
        await sleep(300)
        expect(settled, 'the batch waits for the other transaction on the key').toBe(false)
        await other.query('COMMIT')
        const outcome = await batch
        expect(outcome.kind).toBe('committed')
        if (outcome.kind !== 'committed') return
        // the raced try took the form its size asks for; the rerun the conservative statements
        expect(seen.filter((q) => q.startsWith('COPY cutover.stream_dedupe')).length).toBe(n < COPY_MIN_ROWS ? 0 : 1)
        expect(seen.filter((q) => q.includes('ON CONFLICT (pipeline, key) DO NOTHING')).length).toBe(1)
        expect(outcome.counts.read).toBe(n)
        expect(outcome.counts.written).toBe(n - 1)
        if (same) expect(outcome.counts.duplicates).toBe(1)
        else expect(outcome.counts.dead).toEqual({DUPLICATE_CONFLICT: 1})
      } finally {
        other.release()
      }
      const rows = await s.pool.query<{id: string}>(`SELECT id FROM "${s.schema}".t ORDER BY id`)
      expect(rows.rows.map((r) => r.id)).toEqual(Array.from({length: n}, (_, o) => `k${o}`).filter((id) => id !== 'k5').sort())
      const keys = await s.pool.query<{n: string}>('SELECT count(*) AS n FROM cutover.stream_dedupe WHERE pipeline = $1', [s.name])
      expect(Number(keys.rows[0]!.n)).toBe(n)
    })
  }
})
