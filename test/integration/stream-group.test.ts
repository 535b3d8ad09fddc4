/**
 * Group commit (src/runtime/batch.ts commitBatches, src/runtime/group.ts) against the real
 * PostgreSQL: batches of several partitions in one transaction advance each partition's offset
 * exactly as alone; a batch that is behind or has a gap gets that outcome and contributes
 * nothing while the others commit; a repeat across partitions of one group is a duplicate;
 * a group whose transaction fails runs each batch alone, so only the batch the database cannot
 * take fails.
 */
import {describe, expect, it} from 'vitest'
import {commitBatch, commitBatches, joinedWrite} from '../../src/runtime/batch.js'
import {GroupCommitter} from '../../src/runtime/group.js'
import {storedOffsets} from '../../src/runtime/offsets.js'
import {batchFixture} from './stream-support.js'

async function setup() {
  const {pool, schema, name, deps, topic, batch: prepared} = await batchFixture({
    prefix: 'group',
    tables: (schema) => [
      `CREATE TABLE "${schema}".t (id text PRIMARY KEY, amount numeric(8,2) NOT NULL, id_count_key text)`,
      `CREATE TABLE "${schema}".agg (id_count_key text PRIMARY KEY, n bigint NOT NULL DEFAULT 0, total numeric NOT NULL DEFAULT 0)`,
    ],
    spec: `fields:
  id: {type: string, required: true}
  amount: {type: decimal, scale: 2, required: true}
  id_count_key: {type: string, default: all}
key: id
dedupe: {by: id}
sinks:
  - table: t
  - table: agg
    group_by: [id_count_key]
    aggregates: {n: count, total: sum(amount)}
`,
  })
  const batch = (partition: number, from: number, to: number, id: (o: number) => string = (o) => `p${partition}-${o}`, amount = '1.00') => prepared(partition, from, to, (o) => ({id: id(o), amount}))
  const count = async () => Number((await pool.query<{n: string}>(`SELECT count(*) AS n FROM "${schema}".t`)).rows[0]!.n)
  const agg = async () => (await pool.query<{n: string; total: string}>(`SELECT n::text, total::text FROM "${schema}".agg`)).rows[0]
  return {pool, schema, name, deps, topic, batch, count, agg}
}

describe('stream group commit', () => {
  it('commits batches of three partitions in one transaction, each offset as alone; behind and gap contribute nothing', async () => {
    const s = await setup()
    expect((await commitBatch(s.deps, await s.batch(2, 0, 4), 1)).kind).toBe('committed')
    expect((await commitBatch(s.deps, await s.batch(3, 0, 4), 1)).kind).toBe('committed')
    const outcomes = await commitBatches(s.deps, [
      {input: await s.batch(0, 0, 9), attempt: 1},
      {input: await s.batch(1, 0, 4), attempt: 2},
      {input: await s.batch(2, 0, 4), attempt: 1}, // already committed: behind
      {input: await s.batch(3, 7, 9), attempt: 1}, // starts after the stored offset 5: a gap
    ])
    expect(outcomes.map((o) => o.kind)).toEqual(['committed', 'committed', 'behind', 'gap'])
    expect(outcomes[0]!.kind === 'committed' && outcomes[0]!.counts.written).toBe(10)
    expect(outcomes[1]!.kind === 'committed' && outcomes[1]!.counts.written).toBe(5)
    expect(outcomes[2]).toEqual({kind: 'behind', stored: 5n})
    expect(outcomes[3]).toEqual({kind: 'gap', stored: 5n})
    const stored = await storedOffsets(s.pool, s.name, s.topic)
    expect([0, 1, 2, 3].map((p) => stored.get(p))).toEqual([10n, 5n, 5n, 5n])
    expect(await s.count()).toBe(25)
    expect(await s.agg()).toEqual({n: '25', total: '25.00'})
  })

  it('a key repeated in two partitions of one group is written once, the repeat counted as a duplicate', async () => {
    const s = await setup()
    const outcomes = await commitBatches(s.deps, [
      {input: await s.batch(0, 0, 2, (o) => `same-${o}`), attempt: 1},
      {input: await s.batch(1, 0, 2, (o) => `same-${o}`), attempt: 1},
    ])
    const counts = outcomes.map((o) => (o.kind === 'committed' ? o.counts : null))
    expect(counts.map((c) => c?.written)).toEqual([3, 0])
    expect(counts.map((c) => c?.duplicates)).toEqual([0, 3])
    expect(await s.count()).toBe(3)
    expect(await s.agg()).toEqual({n: '3', total: '3.00'})
  })

  it('a group whose transaction fails runs each batch alone: only the batch the database cannot take fails', async () => {
    const s = await setup()
    const committer = new GroupCommitter(s.deps)
    // a batch the database cannot take: a trigger failing it with 54000 (program_limit_exceeded,
    // as an index entry too large does), not a row-level rejection. (A key too long for the index
    // itself is refused by the validate stage now, before any transaction.)
    await s.pool.query(`CREATE FUNCTION "${s.schema}".poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.id = 'poison' THEN RAISE EXCEPTION 'planted' USING ERRCODE = '54000'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON "${s.schema}".t FOR EACH ROW EXECUTE FUNCTION "${s.schema}".poison()`)
    const poison = await s.batch(1, 0, 0, () => 'poison')
    const first = await s.batch(0, 0, 4)
    const third = await s.batch(2, 0, 4)
    // the three go together (one event-loop turn); the group fails, and each batch runs alone
    const results = await Promise.allSettled([committer.commit(first, 1), committer.commit(poison, 1), committer.commit(third, 1)])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    // failed for the reason planted, not another (54000, program_limit_exceeded)
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({code: '54000'})
    expect(await s.count()).toBe(10)
    const stored = await storedOffsets(s.pool, s.name, s.topic)
    expect([0, 1, 2].map((p) => stored.get(p))).toEqual([5n, undefined, 5n])
  })

  it('runs at most `lanes` transactions at once; small batches ready together share one', async () => {
    const s = await setup()
    let held = 0
    let most = 0
    const pool = Object.create(s.pool) as typeof s.pool
    pool.connect = (async () => {
      // counted when asked for (each lane asks as it starts), not when the pool hands it over:
      // a new connection can take longer than another lane's whole transaction
      most = Math.max(most, ++held)
      const client = await s.pool.connect()
      const release = client.release.bind(client)
      client.release = (e?: boolean | Error) => {
        held--
        release(e)
      }
      return client
    }) as typeof s.pool.connect
    // four batches of 5 records, each "big" (groupRecords 5): one lane each, two lanes
    const lanes = new GroupCommitter({...s.deps, pool}, 2, 5)
    const big = await Promise.all([0, 1, 2, 3].map(async (p) => lanes.commit(await s.batch(p, 0, 4), 1)))
    expect(big.map((o) => o.kind)).toEqual(['committed', 'committed', 'committed', 'committed'])
    expect(most).toBe(2)
    // four small batches handed over in one turn: one transaction for all four
    most = 0
    const small = new GroupCommitter({...s.deps, pool}, 2, 1000)
    const batches = await Promise.all([0, 1, 2, 3].map((p) => s.batch(p, 5, 6)))
    const outcomes = await Promise.all(batches.map((b) => small.commit(b, 1)))
    expect(outcomes.map((o) => o.kind)).toEqual(['committed', 'committed', 'committed', 'committed'])
    expect(most).toBe(1)
    // one transaction: all four offsets moved with the latest transaction's now()
    const last = await s.pool.query<{n: string}>(`SELECT count(*) AS n FROM cutover.stream_offsets WHERE pipeline = $1 AND next_offset = 7 AND updated_at = (SELECT max(updated_at) FROM cutover.stream_offsets WHERE pipeline = $1)`, [s.name])
    expect(Number(last.rows[0]!.n)).toBe(4)
    expect(await s.count()).toBe(28)
  })

  it('writes the aggregate, whose rows every transaction updates, after the other rows of the batch', async () => {
    const s = await setup()
    // BEFORE ROW triggers note the order in which PostgreSQL writes the rows of the one joined statement
    await s.pool.query(`CREATE TABLE "${s.schema}".written (seq serial, tbl text);
      CREATE FUNCTION "${s.schema}".note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO "${s.schema}".written (tbl) VALUES (TG_TABLE_NAME); RETURN NEW; END $$;
      CREATE TRIGGER note BEFORE INSERT ON "${s.schema}".t FOR EACH ROW EXECUTE FUNCTION "${s.schema}".note();
      CREATE TRIGGER note BEFORE INSERT ON "${s.schema}".agg FOR EACH ROW EXECUTE FUNCTION "${s.schema}".note();`)
    expect((await commitBatch(s.deps, await s.batch(0, 0, 2), 1)).kind).toBe('committed')
    const order = await s.pool.query<{tbl: string}>(`SELECT tbl FROM "${s.schema}".written ORDER BY seq`)
    // the aggregate's row locks are taken last, held only until COMMIT
    expect(order.rows.map((r) => r.tbl)).toEqual(['t', 't', 't', 'agg'])
    expect(await s.agg()).toEqual({n: '3', total: '3.00'})
  })

  it('joins writes to different tables into one statement, and runs two on one table one after the other', async () => {
    const s = await setup()
    const upsert = (id: string, amount: string, target: string) => ({
      target,
      text: (b: number) => `INSERT INTO "${s.schema}".t (id, amount) VALUES ($${b + 1}, $${b + 2}) ON CONFLICT (id) DO UPDATE SET amount = excluded.amount`,
      params: [id, amount],
    })
    const agg = {target: 'agg', text: (b: number) => `INSERT INTO "${s.schema}".agg (id_count_key, n, total) VALUES ($${b + 1}, 1, $${b + 2})`, params: ['k', '5.00']}
    await joinedWrite(s.pool, [upsert('a', '1.00', 't'), agg])
    expect((await s.pool.query(`SELECT id, amount::text FROM "${s.schema}".t`)).rows).toEqual([{id: 'a', amount: '1.00'}])
    expect(await s.agg()).toEqual({n: '1', total: '5.00'})
    // one statement could not change the row twice (PostgreSQL refuses it); two on one table run in order
    await expect(joinedWrite(s.pool, [upsert('b', '1.00', 'x'), upsert('b', '2.00', 'y')])).rejects.toThrow(/cannot affect row a second time/)
    await joinedWrite(s.pool, [upsert('b', '1.00', 't'), upsert('b', '2.00', 't')])
    expect((await s.pool.query(`SELECT amount::text FROM "${s.schema}".t WHERE id = 'b'`)).rows).toEqual([{amount: '2.00'}])
  })
})
