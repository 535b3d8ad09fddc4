/**
 * The outbox relay of three `stream run` processes of one pipeline (each its own OutboxRelay and
 * producer, against the real PostgreSQL and broker): the dead letters of one source partition
 * reach the DLQ topic in offset order, read back with kcat (an independent client). Before, each
 * process took the next unsent rows it could lock (SKIP LOCKED) and they sent at once: a later
 * round could land before an earlier one.
 */
import {describe, expect, it, onTestFinished} from 'vitest'
import {kcatRead} from '../../fixtures/generator/stream-harness.js'
import {createTopicsReady} from '../../src/kafka/client.js'
import {silentLogger} from '../../src/log.js'
import {OutboxRelay, relayProducer} from '../../src/runtime/relay.js'
import {kafka, kafkaSettings, testPool, uniqueName} from '../helpers.js'

describe('outbox relay: three processes of one pipeline', () => {
  it('publish the dead letters of a source partition in offset order, each once', async () => {
    const pool = testPool()
    const pipeline = uniqueName('relay-order')
    const topic = `${pipeline}.dlq`
    const admin = kafka().admin()
    await admin.connect()
    await createTopicsReady(admin, [{topic, numPartitions: 1}])
    onTestFinished(async () => {
      await admin.deleteTopics({topics: [topic]}).catch(() => {})
      await admin.disconnect()
      await pool.query('DELETE FROM cutover.outbox WHERE pipeline = $1', [pipeline])
    })
    // 3000 dead letters of source partition 0, offsets 0..2999, in the order their batches committed
    const rows = 3000
    await pool.query(
      `INSERT INTO cutover.outbox (pipeline, topic, key, value, headers)
       SELECT $1, $2, NULL, convert_to('v' || i, 'UTF8'),
              jsonb_build_array(jsonb_build_array('cutover.source.partition', encode('0', 'base64')),
                                jsonb_build_array('cutover.source.offset', encode(convert_to(i::text, 'UTF8'), 'base64')))
         FROM generate_series(0, $3::int - 1) AS i ORDER BY i`,
      [pipeline, topic, rows],
    )
    const relays = [0, 1, 2].map(() => {
      const producer = relayProducer(kafkaSettings(), {logger: silentLogger, clientId: pipeline})
      onTestFinished(() => producer.disconnect())
      return {producer, relay: new OutboxRelay({pool, producer, pipeline, logger: silentLogger, batchSize: 25})}
    })
    for (const r of relays) await r.producer.connect()
    const left = await Promise.all(relays.map((r) => r.relay.drain(60_000)))
    expect(left).toEqual([0, 0, 0])

    const offsets = kcatRead(kafkaSettings().brokers.join(','), topic).map((r) => Number(r.headers['cutover.source.offset']))
    expect(offsets).toHaveLength(rows)
    const outOfOrder = offsets.findIndex((o, i) => i > 0 && o <= offsets[i - 1]!)
    expect(outOfOrder, `offset ${offsets[outOfOrder]} after ${offsets[outOfOrder - 1]}`).toBe(-1)
  })
})
