/**
 * Proves the harness is real: records produced through the broker with kafkajs are read back
 * with kcat (librdkafka), a transactional producer can commit on the single-node broker, and
 * each test's PostgreSQL schema exists and is its own.
 */
import {describe, expect, it} from 'vitest'
import {createTopicsReady} from '../../src/kafka/client.js'
import {createTestSchema, createTestTopic, kafka, kcatConsume, kcatProduce, testPool, uniqueName} from '../helpers.js'

describe('harness against the real broker and PostgreSQL', () => {
  it('kafkajs produces, kcat reads back the same keys, values and headers', async () => {
    const topic = await createTestTopic({partitions: 3})
    const producer = kafka().producer({idempotent: true})
    await producer.connect()
    const messages = Array.from({length: 30}, (_, i) => ({key: `k${i}`, value: JSON.stringify({i, amount: `${i}.50`}), headers: {'x-test': `h${i}`}}))
    await producer.send({topic, messages})
    await producer.disconnect()

    const read = kcatConsume(topic)
    expect(read).toHaveLength(30)
    const byKey = new Map(read.map((r) => [r.key, r]))
    for (let i = 0; i < 30; i++) {
      const r = byKey.get(`k${i}`)
      expect(r?.payload).toBe(JSON.stringify({i, amount: `${i}.50`}))
      expect(r?.headers['x-test']).toBe(`h${i}`)
    }
    expect(new Set(read.map((r) => r.partition)).size).toBeGreaterThan(1)
  })

  it('createTopicsReady returns with a leader for every partition, and false for topics that exist', async () => {
    const topic = uniqueName('ready')
    const admin = kafka().admin()
    await admin.connect()
    try {
      expect(await createTopicsReady(admin, [{topic, numPartitions: 4}])).toBe(true)
      const [meta] = (await admin.fetchTopicMetadata({topics: [topic]})).topics
      expect(meta!.partitions.map((p) => p.leader >= 0)).toEqual([true, true, true, true])
      expect(await createTopicsReady(admin, [{topic, numPartitions: 4}])).toBe(false)
      // readable at once: kcat sees an empty topic, not an unknown one
      expect(kcatConsume(topic)).toEqual([])
    } finally {
      await admin.deleteTopics({topics: [topic]}).catch(() => {})
      await admin.disconnect()
    }
  })

  it('a kafkajs transactional producer commits, and a read_committed consumer sees only committed records', async () => {
    const topic = await createTestTopic()
    const client = kafka()
    const producer = client.producer({transactionalId: `tx-${topic}`, idempotent: true, maxInFlightRequests: 1})
    await producer.connect()
    const aborted = await producer.transaction()
    await aborted.send({topic, messages: [{key: 'a', value: 'aborted'}]})
    await aborted.abort()
    const tx = await producer.transaction()
    await tx.send({topic, messages: [{key: 'c', value: 'committed'}]})
    await tx.commit()
    await producer.disconnect()

    const consumer = client.consumer({groupId: `g-${topic}`, readUncommitted: false})
    await consumer.connect()
    await consumer.subscribe({topics: [topic], fromBeginning: true})
    const seen: string[] = []
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({message}) => {
            seen.push(message.value!.toString())
            if (message.value!.toString() === 'committed') resolve()
          },
        })
        .catch(reject)
    })
    await consumer.disconnect()
    expect(seen).toEqual(['committed'])
    // librdkafka (kcat) agrees: read_committed sees only the committed record, read_uncommitted both.
    expect(kcatConsume(topic).map((r) => r.payload)).toEqual(['committed'])
    expect(kcatConsume(topic, {readUncommitted: true}).map((r) => r.payload)).toEqual(['aborted', 'committed'])
  })

  it('kcat produces, kafkajs consumes', async () => {
    const topic = await createTestTopic()
    kcatProduce(topic, ['k1\tv1', 'k2\tv2'], {keyed: true})
    const consumer = kafka().consumer({groupId: `g-${topic}`})
    await consumer.connect()
    await consumer.subscribe({topics: [topic], fromBeginning: true})
    const seen: string[] = []
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({message}) => {
            seen.push(`${message.key}=${message.value}`)
            if (seen.length === 2) resolve()
          },
        })
        .catch(reject)
    })
    await consumer.disconnect()
    expect(seen.sort()).toEqual(['k1=v1', 'k2=v2'])
  })

  it('each test gets its own PostgreSQL schema', async () => {
    const pool = testPool()
    const a = await createTestSchema(pool)
    const b = await createTestSchema(pool)
    expect(a).not.toBe(b)
    await pool.query(`CREATE TABLE "${a}".t (id int)`)
    const r = await pool.query(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = $1`, [b])
    expect(r.rows[0].n).toBe(0)
  })
})
