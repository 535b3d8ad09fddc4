/**
 * The pipeline's advisory lock around batch transactions (src/runtime/batch.ts beginBatch),
 * against the real PostgreSQL: the common transaction takes it shared, and the rerun that
 * isolates a row the database refuses takes it exclusively when it may write the sinks part by
 * part, out of key order (without `isolateInOrder`, as here), so that it never runs beside another
 * transaction of the pipeline that updates the same rows (a deadlock). The shared case:
 * stream-refused-rows.test.ts.
 */
import {describe, expect, it} from 'vitest'
import {commitBatch} from '../../src/runtime/batch.js'
import {batchFixture, holdPipelineLock, ID_AMOUNT_SPEC, untilWaitingForPipelineLock} from './stream-support.js'

async function setup() {
  const f = await batchFixture({
    prefix: 'isolock',
    tables: (schema) => [`CREATE TABLE "${schema}".t (id text PRIMARY KEY, amount numeric(8,2) NOT NULL CHECK (amount < 1000))`],
    spec: ID_AMOUNT_SPEC,
  })
  const rows = async () => Number((await f.pool.query<{n: string}>(`SELECT count(*) AS n FROM "${f.schema}".t`)).rows[0]!.n)
  /** another session holding the pipeline's lock (`shared` or not) in an open transaction */
  const holdLock = (shared: boolean) => holdPipelineLock(f.name, !shared)
  /** resolves once a session waits for this pipeline's lock, or `pending` settles (then it did not wait) */
  const someoneWaits = (pending: Promise<unknown>) => untilWaitingForPipelineLock(f.pool, f.name, pending)
  return {...f, rows, holdLock, someoneWaits}
}

/** a function telling whether `p` has settled */
function tracked(p: Promise<unknown>): () => boolean {
  let done = false
  void p.then(
    () => (done = true),
    () => (done = true),
  )
  return () => done
}

/** whether `p` has settled by now (after the turns already queued) */
async function settled(p: Promise<unknown>): Promise<boolean> {
  const done = tracked(p)
  await new Promise((r) => setImmediate(r))
  return done()
}

describe('stream batch transactions: the pipeline lock', () => {
  it('a batch transaction takes it shared: while it is held exclusively, the batch waits, then commits', async () => {
    const s = await setup()
    const lock = await s.holdLock(false)
    const pending = commitBatch(s.deps, await s.batch(0, 0, 9, (o) => ({id: `k${o}`, amount: '1.00'})), 1)
    await s.someoneWaits(pending)
    expect(await settled(pending)).toBe(false)
    expect(await s.rows()).toBe(0)
    await lock.release()
    expect(await pending).toMatchObject({kind: 'committed', counts: {read: 10, written: 10}})
    expect(await s.rows()).toBe(10)
  })

  it('two batch transactions of the pipeline run side by side (both shared)', async () => {
    const s = await setup()
    const lock = await s.holdLock(true)
    try {
      const outcome = await commitBatch(s.deps, await s.batch(0, 0, 9, (o) => ({id: `k${o}`, amount: '1.00'})), 1)
      expect(outcome).toMatchObject({kind: 'committed', counts: {written: 10}})
    } finally {
      await lock.release()
    }
  })

  it('the rerun that isolates a refused row takes it exclusively: it waits for the transaction holding it, then dead-letters only that row', async () => {
    const s = await setup()
    const lock = await s.holdLock(true)
    const pending = commitBatch(s.deps, await s.batch(0, 0, 9, (o) => ({id: `k${o}`, amount: o === 4 ? '5000.00' : '1.00'})), 1)
    await s.someoneWaits(pending)
    expect(await settled(pending)).toBe(false)
    await lock.release()
    expect(await pending).toMatchObject({kind: 'committed', counts: {read: 10, written: 9, dead: {SINK_REJECTED: 1}}})
    expect(await s.rows()).toBe(9)
  })
})
