/**
 * Dead letters larger than the DLQ topic takes, against the real broker and PostgreSQL.
 *
 * A RECORD_TOO_LARGE dead letter keeps its value byte for byte (DESIGN.md): a 5 MB source record
 * is a 5 MB dead letter. A DLQ topic made by the platform team with the default max.message.bytes
 * (1 MB) refuses it. The relay must not stall on it (nor on the dead letters behind it), must
 * lose nothing, and must say so:
 *
 * - through `stream run` (the built CLI): the relay publishes it without its value, with
 *   `cutover.value.omitted`, logs `relay.value_omitted` (error) naming the outbox row and the
 *   source record, and publishes every other dead letter, once, in offset order; the outbox row
 *   keeps the 5 MB and is never pruned. Before, on a DLQ topic of two partitions, the round that
 *   held it was refused on one partition and written on the other, and the relay's one-by-one
 *   retry met OUT_OF_ORDER_SEQUENCE_NUMBER on the written one, for ever: nothing more published,
 *   --until-idle never ending.
 * - the relay alone, on a DLQ topic that takes 2 KB: a round refused on one partition and
 *   written on the other goes again one by one with a new producer id: every dead letter
 *   published (the written ones again: at-least-once), the large one without its value, counted.
 * - the relay alone, with 52 dead letters of 2 MiB unsent (104 MiB): it sent them in one request,
 *   over the broker's socket.request.max.bytes (100 MiB); the broker closed the connection and the
 *   relay sent it again, for ever. Rounds now hold at most RELAY_ROUND_BYTES (the first row always).
 */
import {describe, expect, it, onTestFinished} from 'vitest'
import {freePort, kcatRead, tail} from '../../fixtures/generator/stream-harness.js'
import {createTopicsReady} from '../../src/kafka/client.js'
import {createLogger, type LogEntry} from '../../src/log.js'
import {OutboxRelay, pruneSentOutbox, relayProducer} from '../../src/runtime/relay.js'
import {kafka, kafkaSettings, testPool, uniqueName} from '../helpers.js'
import {committedOffsets, sleep, startStream, streamFixture} from './stream-support.js'

const MB = 1024 * 1024
const record = (id: string, extra: Record<string, unknown> = {}) => Buffer.from(JSON.stringify({id, acct: 'A1', amt: '1.50', ts: '2026-11-20T10:00:00+03:00', ...extra}))

async function createTopic(topic: string, partitions: number, maxMessageBytes: number): Promise<void> {
  const admin = kafka().admin()
  await admin.connect()
  try {
    await createTopicsReady(admin, [{topic, numPartitions: partitions, configEntries: [{name: 'max.message.bytes', value: String(maxMessageBytes)}]}])
  } finally {
    await admin.disconnect()
  }
  onTestFinished(async () => {
    const a = kafka().admin()
    await a.connect()
    await a.deleteTopics({topics: [topic]}).catch(() => {})
    await a.disconnect()
  })
}

/** polls `probe` until it returns true (0.1 s apart, at most `tries`), then returns its last answer */
async function until(probe: () => Promise<boolean>, tries = 300): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await probe()) return true
    await sleep(100)
  }
  return probe()
}

describe('outbox relay: a dead letter larger than the DLQ topic takes', () => {
  it('stream run: a 5 MB RECORD_TOO_LARGE goes without its value (said, and kept in the outbox); every other dead letter goes, once, in order', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'relay-big'})
    const admin = kafka().admin()
    await admin.connect()
    await admin.alterConfigs({validateOnly: false, resources: [{type: 2 /* TOPIC */, name: f.topic, configEntries: [{name: 'max.message.bytes', value: String(6 * MB)}]}]})
    await admin.disconnect()
    // the DLQ topic as a platform team makes it: two partitions, the default 1 MB (1048588) per batch
    await createTopic(f.dlqTopic, 2, 1048588)
    // k1, k2 and k6 go to DLQ partition 1, the others to 0 (murmur2 of the key, as Kafka's default partitioner)
    const big = record('k3', {memo: 'x'.repeat(5 * MB)})
    const source = [
      {key: 'G1', value: record('G1')},
      ...['k1', 'k2'].map((k) => ({key: k, value: Buffer.from(`not json ${k}`)})),
      {key: 'k3', value: big},
      ...['k4', 'k5', 'k6', 'k7', 'k8'].map((k) => ({key: k, value: Buffer.from(`not json ${k}`)})),
      {key: 'G2', value: record('G2')},
    ]
    // in one record batch: one stream run transaction dead-letters the eight, one relay round takes them
    const producer = kafka().producer({idempotent: true, maxInFlightRequests: 1})
    await producer.connect()
    try {
      await producer.send({topic: f.topic, acks: -1, messages: source})
    } finally {
      await producer.disconnect()
    }
    const unsent = async () => (await f.pool.query<{n: number}>('SELECT count(*)::int AS n FROM cutover.outbox WHERE pipeline = $1 AND sent_at IS NULL', [f.name])).rows[0]!.n

    const port = await freePort()
    const s = startStream(f, ['--json', '--metrics-port', String(port)])
    expect(await until(async () => (await committedOffsets(f)) === source.length), 'the records committed').toBe(true)
    expect(await until(async () => (await unsent()) === 0), 'the relay published every dead letter').toBe(true)
    // counted for the operator's dashboard and alerts
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    expect(metrics).toContain(`cutover_dead_letter_values_omitted_total{pipeline="${f.name}"} 1`)
    s.child.kill('SIGTERM')
    const exit = await s.exited
    expect(exit.code, tail(exit.stderr, 30)).toBe(0)
    expect(JSON.parse(exit.stdout)).toMatchObject({read: 10, written: 2, batches: 1, dead_lettered: {DECODE_ERROR: 7, RECORD_TOO_LARGE: 1}})

    // the DLQ topic, read back with kcat: each dead letter once; each partition in source offset order
    const dlq = kcatRead(kafkaSettings().brokers.join(','), f.dlqTopic)
    const offsets = dlq.map((r) => Number(r.headers['cutover.source.offset']))
    expect([...offsets].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    for (const p of [0, 1]) {
      const inP = dlq.filter((r) => r.partition === p).map((r) => Number(r.headers['cutover.source.offset']))
      expect(inP).toEqual([...inP].sort((a, b) => a - b))
    }
    const tooLarge = dlq.find((r) => r.key === 'k3')!
    expect(tooLarge.headers['cutover.error.code']).toBe('RECORD_TOO_LARGE')
    expect(tooLarge.payload, 'published without its value').toBeNull()
    expect(tooLarge.headers['cutover.value.omitted']).toBe(`${big.length} bytes: more than ${f.dlqTopic} accepts (max.message.bytes)`)
    for (const r of dlq.filter((x) => x.key !== 'k3')) {
      expect(r.payload).toBe(`not json ${r.key}`)
      expect(r.headers['cutover.value.omitted']).toBeUndefined()
    }

    // the outbox row keeps the value, byte for byte, and says it was published without it
    const row = await f.pool.query<{id: string; value: Buffer; sent: boolean; omitted: boolean}>(
      `SELECT id, value, sent_at IS NOT NULL AS sent, headers @> '[["cutover.value.omitted"]]' AS omitted FROM cutover.outbox WHERE pipeline = $1 AND key = 'k3'`,
      [f.name],
    )
    expect(row.rows).toHaveLength(1)
    expect(row.rows[0]!.value.equals(big)).toBe(true)
    expect(row.rows[0]).toMatchObject({sent: true, omitted: true})

    // warned at start: the DLQ topic takes less than the source topic
    const smaller = exit.stderr.split('\n').filter((l) => l.includes('"event":"dlq.topic.smaller"')).map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(smaller).toEqual([expect.objectContaining({level: 'warn', topic: f.dlqTopic, max_message_bytes: 1048588, source_max_message_bytes: 6 * MB})])
    // the operator is told: which outbox row, which source record, what to do
    const said = exit.stderr
      .split('\n')
      .filter((l) => l.includes('"event":"relay.value_omitted"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(said, tail(exit.stderr, 30)).toHaveLength(1)
    expect(said[0]).toMatchObject({level: 'error', outbox_id: row.rows[0]!.id, topic: f.dlqTopic, bytes: big.length, code: 'RECORD_TOO_LARGE', source: `${f.topic}/0@3`})
    expect(String(said[0]!.note)).toContain(`cutover dlq republish --spec <the pipeline's spec> --id ${row.rows[0]!.id}`)

    // housekeeping prunes the sent rows, never the one whose value the DLQ topic does not hold
    expect(await pruneSentOutbox(f.pool, f.name, 0)).toBe(7)
    const left = await f.pool.query<{key: string}>(`SELECT convert_from(key, 'UTF8') AS key FROM cutover.outbox WHERE pipeline = $1`, [f.name])
    expect(left.rows.map((r) => r.key)).toEqual(['k3'])
  })

  it('OutboxRelay: a round refused on one partition and written on the other goes again one by one, with a new producer id; nothing stalls', async () => {
    const pool = testPool()
    const pipeline = uniqueName('relay-split')
    const topic = `${pipeline}.dlq`
    await createTopic(topic, 2, 2048)
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.outbox WHERE pipeline = $1', [pipeline])
    })
    // k1, k2, k6 (300 bytes each: their batch fits) to partition 1; k3 (5000 bytes) with k4, k5, k7, k8 to partition 0
    await pool.query(
      `INSERT INTO cutover.outbox (pipeline, topic, key, value, headers)
       SELECT $1, $2, convert_to('k' || i, 'UTF8'), convert_to(repeat('y', CASE WHEN i = 3 THEN 5000 ELSE 300 END), 'UTF8'),
              jsonb_build_array(jsonb_build_array('cutover.source.offset', encode(convert_to(i::text, 'UTF8'), 'base64')))
         FROM generate_series(1, 8) AS i ORDER BY i`,
      [pipeline, topic],
    )
    const logged: LogEntry[] = []
    const logger = createLogger({level: 'info', sink: (e) => logged.push(e)})
    const producer = relayProducer(kafkaSettings(), {logger, clientId: pipeline})
    await producer.connect()
    onTestFinished(() => producer.disconnect())
    let omitted = 0
    const relay = new OutboxRelay({pool, producer, pipeline, logger, onValueOmitted: (n) => (omitted += n)})
    const left = await relay.drain(15_000)
    expect(left, JSON.stringify(logged.filter((e) => e.level !== 'debug').slice(-5))).toBe(0)

    const dlq = kcatRead(kafkaSettings().brokers.join(','), topic)
    expect([...new Set(dlq.map((r) => r.key))].sort(), 'every dead letter, at least once').toEqual(['k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8'])
    const k3 = dlq.filter((r) => r.key === 'k3')
    expect(k3).toHaveLength(1)
    expect(k3[0]!.payload).toBeNull()
    expect(k3[0]!.headers['cutover.value.omitted']).toBe(`5000 bytes: more than ${topic} accepts (max.message.bytes)`)
    expect(omitted, 'counted').toBe(1)
    expect(logged.filter((e) => e.event === 'relay.value_omitted')).toHaveLength(1)
  })

  it('OutboxRelay: 104 MiB of dead letters unsent go in rounds the broker takes', async () => {
    const pool = testPool()
    const pipeline = uniqueName('relay-huge')
    const topic = `${pipeline}.dlq`
    // as stream run makes a DLQ topic for a source that takes 3 MB: 3 MB + 64 KB
    await createTopic(topic, 1, 3 * MB + 64 * 1024)
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.outbox WHERE pipeline = $1', [pipeline])
    })
    const rows = 52
    await pool.query(
      `INSERT INTO cutover.outbox (pipeline, topic, key, value, headers)
       SELECT $1, $2, convert_to('k' || i, 'UTF8'), convert_to(repeat('z', 2 * 1024 * 1024), 'UTF8'), '[]'::jsonb FROM generate_series(1, $3::int) AS i`,
      [pipeline, topic, rows],
    )
    const logged: LogEntry[] = []
    const logger = createLogger({level: 'warn', sink: (e) => logged.push(e)})
    const producer = relayProducer(kafkaSettings(), {logger, clientId: pipeline})
    await producer.connect()
    onTestFinished(() => producer.disconnect())
    const relay = new OutboxRelay({pool, producer, pipeline, logger})
    expect(await relay.drain(60_000), JSON.stringify(logged.slice(-3))).toBe(0)

    // what the broker holds, asked by another client
    const admin = kafka().admin()
    await admin.connect()
    try {
      expect(await admin.fetchTopicOffsets(topic)).toMatchObject([{partition: 0, high: String(rows)}])
    } finally {
      await admin.disconnect()
    }
  })
})
