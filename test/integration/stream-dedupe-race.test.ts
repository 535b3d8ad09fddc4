/**
 * The dedupe fast path (src/runtime/stages/dedupe.ts, DEDUPE_FAST_SQL) against the real
 * PostgreSQL: it claims new keys with a plain INSERT, so a key that another transaction commits
 * while the batch runs fails that INSERT (23505). The batch must then run again at once with
 * the race-free statements and still classify every record: the raced key is a duplicate
 * (same payload) or DUPLICATE_CONFLICT (another payload), the others are written once.
 */
import type {KafkaMessage} from 'kafkajs'
import {describe, expect, it} from 'vitest'
import {parseSpec} from '../../src/config/spec.js'
import {silentLogger} from '../../src/log.js'
import {commitBatch, type BatchDeps, type BatchInput} from '../../src/runtime/batch.js'
import {buildSinks} from '../../src/runtime/sinks/index.js'
import {buildStages} from '../../src/runtime/stages/index.js'
import {payloadHash} from '../../src/runtime/stages/dedupe.js'
import type {PipelineContext, WorkItem} from '../../src/runtime/types.js'
import {createTestSchema, testPool, uniqueName} from '../helpers.js'
import {sleep} from './stream-support.js'

async function setup() {
  const pool = testPool()
  const schema = await createTestSchema(pool)
  await pool.query(`CREATE TABLE "${schema}".t (id text PRIMARY KEY, amount numeric(8,2) NOT NULL)`)
  const name = uniqueName('race')
  const loaded = parseSpec(
    `version: 1
name: ${name}
source: {topic: ${name}.raw}
fields:
  id: {type: string, required: true}
  amount: {type: decimal, scale: 2, required: true}
key: id
dedupe: {by: id}
sinks: [{table: t}]
`,
    'race.yaml',
  )
  const ctx: PipelineContext = {loaded, pipeline: name, schema, maxRecordBytes: 1 << 20, dedupeRetentionMs: 60_000, logger: silentLogger}
  const stages = buildStages(ctx)
  const deps: BatchDeps = {pool, transact: stages.transact, sinks: await buildSinks(ctx, pool), dlqTopic: `${name}.dlq`, deadLetter: {pipeline: name, version: 'v', attempts: 1}}
  const ref = {pipeline: name, topic: `${name}.raw`, partition: 0}
  const batch = async (from: number, to: number, amount: (i: number) => string): Promise<BatchInput> => {
    const items: WorkItem[] = []
    for (let o = from; o <= to; o++) {
      const message = {key: Buffer.from(`k${o}`), value: Buffer.from(JSON.stringify({id: `k${o}`, amount: amount(o)})), timestamp: String(Date.now()), attributes: 0, offset: String(o), headers: {}} as KafkaMessage
      items.push({message, topic: ref.topic, partition: 0, offset: BigInt(o), status: 'ok'})
    }
    for (const s of stages.prepare) await s.run(items, null)
    return {ref, items, firstOffset: BigInt(from), lastOffset: BigInt(to), allowGap: false}
  }
  return {pool, schema, name, deps, batch}
}

describe('stream dedupe: a key committed by another transaction during the batch', () => {
  for (const same of [true, false]) {
    it(`is ${same ? 'a duplicate (same payload)' : 'DUPLICATE_CONFLICT (another payload)'}, and the rest of the batch is written once`, async () => {
      const s = await setup()
      const input = await s.batch(0, 9, () => '1.00')
      const raced = input.items[5]!
      // another transaction (another partition's batch) claims k5 first and has not committed yet
      const other = await s.pool.connect()
      try {
        await other.query('BEGIN')
        const record = same ? raced.record! : {...raced.record!, amount: '9.99'}
        await other.query(`INSERT INTO cutover.stream_dedupe (pipeline, key, payload_sha256) VALUES ($1, 'k5', decode($2, 'hex'))`, [s.name, payloadHash(record)])
        const batch = commitBatch(s.deps, input, 1)
        let settled = false
        void batch.finally(() => (settled = true))
        await sleep(300)
        expect(settled, 'the batch waits for the other transaction on the key').toBe(false)
        await other.query('COMMIT')
        const outcome = await batch
        expect(outcome.kind).toBe('committed')
        if (outcome.kind !== 'committed') return
        expect(outcome.counts.read).toBe(10)
        expect(outcome.counts.written).toBe(9)
        if (same) expect(outcome.counts.duplicates).toBe(1)
        else expect(outcome.counts.dead).toEqual({DUPLICATE_CONFLICT: 1})
      } finally {
        other.release()
      }
      const rows = await s.pool.query<{id: string}>(`SELECT id FROM "${s.schema}".t ORDER BY id`)
      expect(rows.rows.map((r) => r.id)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'k6', 'k7', 'k8', 'k9'])
      const keys = await s.pool.query<{n: string}>('SELECT count(*) AS n FROM cutover.stream_dedupe WHERE pipeline = $1', [s.name])
      expect(Number(keys.rows[0]!.n)).toBe(10)
    })
  }
})
