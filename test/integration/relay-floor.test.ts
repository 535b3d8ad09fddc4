/**
 * The outbox relay's scan floor (src/runtime/relay.ts `floor`), against the real PostgreSQL and
 * broker: a round's select starts past the rows already sent, yet a row that a slower transaction
 * commits later with a smaller id is still published, once, and so is a row made unsent again
 * below the floor (as `dlq republish` does). What reached the DLQ topic is read back with kcat.
 */
import {describe, expect, it, onTestFinished} from 'vitest'
import {silentLogger} from '../../src/log.js'
import {OutboxRelay, relayProducer} from '../../src/runtime/relay.js'
import {createTestTopic, kafkaSettings, kcatConsume, testPool, uniqueName} from '../helpers.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('outbox relay: the scan floor', () => {
  it('starts past the rows sent, and still publishes a row committed late below them and a row made unsent again', async () => {
    const pool = testPool()
    const pipeline = uniqueName('relay-floor')
    const topic = await createTestTopic({prefix: 'relay-floor-dlq'})
    const late = await pool.connect()
    onTestFinished(async () => {
      await late.query('ROLLBACK').catch(() => {})
      late.release()
      await pool.query('DELETE FROM cutover.outbox WHERE pipeline = $1', [pipeline])
    })
    const insert = (db: {query: typeof pool.query}, from: number, to: number) =>
      db.query<{id: string}>(
        `INSERT INTO cutover.outbox (pipeline, topic, key, value, headers)
         SELECT $1, $2, NULL, convert_to('v' || i, 'UTF8'), '[]'::jsonb FROM generate_series($3::int, $4::int) AS i ORDER BY i RETURNING id::text`,
        [pipeline, topic, from, to],
      )
    const sentAt = async (id: string) => (await pool.query<{sent: boolean}>('SELECT sent_at IS NOT NULL AS sent FROM cutover.outbox WHERE id = $1', [id])).rows[0]?.sent
    const producer = relayProducer(kafkaSettings(), {logger: silentLogger, clientId: pipeline})
    onTestFinished(() => producer.disconnect())
    await producer.connect()
    const relay = new OutboxRelay({pool, producer, pipeline, logger: silentLogger, batchSize: 40})

    // a batch transaction's shape: its xid first (the offset row), then its outbox row, left open
    await late.query('BEGIN')
    await late.query('SELECT txid_current()')
    const lateId = (await insert(late, 0, 0)).rows[0]!.id
    // 200 rows with larger ids, committed
    const ids = (await insert(pool, 1, 200)).rows.map((r) => r.id)
    expect(BigInt(ids[0]!)).toBeGreaterThan(BigInt(lateId))
    // rounds until all 200 are sent, and more: the floor must stay below the open transaction's row
    for (let i = 0; i < 20 || !(await sentAt(ids.at(-1)!)); i++) {
      await relay.publishOnce()
      if (i > 200) throw new Error('the relay did not send 200 committed rows in 200 rounds')
    }
    for (const id of ids) expect(await sentAt(id)).toBe(true)
    expect(BigInt(relay.scanFloor)).toBeLessThan(BigInt(lateId))

    // the late row commits: the next rounds publish it, and the floor then passes every row sent
    await late.query('COMMIT')
    for (let i = 0; !(await sentAt(lateId)) || BigInt(relay.scanFloor) < BigInt(ids.at(-1)!); i++) {
      // a transaction open anywhere in the cluster (another test file's) holds the xmin back meanwhile: wait for it, up to 90 s
      if (i > 1800) throw new Error(`after 1800 rounds: late row sent ${await sentAt(lateId)}, floor ${relay.scanFloor} (last id ${ids.at(-1)})`)
      await relay.publishOnce()
      await sleep(50)
    }

    // a row below the floor made unsent again (dlq republish): the backlog sees it, and the next round scans from the start
    await pool.query('UPDATE cutover.outbox SET sent_at = NULL WHERE id = $1', [ids[10]])
    expect(await relay.drain(30_000)).toBe(0)
    expect(await sentAt(ids[10]!)).toBe(true)

    // on the topic: the 200 rows and the late one once each, and the row made unsent once more
    const values = kcatConsume(topic).map((r) => r.payload)
    expect(values).toHaveLength(202)
    const counts = new Map<string, number>()
    for (const v of values) counts.set(String(v), (counts.get(String(v)) ?? 0) + 1)
    expect(counts.get('v0')).toBe(1)
    expect(counts.get('v11')).toBe(2)
    expect([...counts.values()].filter((n) => n === 1)).toHaveLength(200)
  }, 240_000)
})
