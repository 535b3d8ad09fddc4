/**
 * The outbox relay when the broker goes away in the middle of a send and comes back: the broker
 * wrote the records, its answer never came, and it stayed unreachable longer than kafkajs
 * retries (a crash right after the append, a cut network), while more dead letters committed.
 *
 * Against the real broker and PostgreSQL, with a TCP proxy in front of the broker (kafkajs'
 * socketFactory sends every connection through it): it forwards every byte, swallows the answer
 * of one Produce request, cuts every connection and refuses new ones, then lets them through again.
 *
 * Before: kafkajs gave the failed send's sequence numbers back, the relay's next round sent more
 * rows from the same numbers, and the broker answered OUT_OF_ORDER_SEQUENCE_NUMBER to it and
 * every round after: nothing more was published until a restart (and a restart published the
 * first rows twice). Now the send in doubt goes again as it was first: each dead letter once
 * on the DLQ topic (kcat, an independent client), the outbox empty, the backlog gauge back to 0.
 */
import {createConnection, createServer, type Socket} from 'node:net'
import kafkajs from 'kafkajs'
import {describe, expect, it, onTestFinished} from 'vitest'
import {kcatRead} from '../../fixtures/generator/stream-harness.js'
import {createTopicsReady, kafkaConfig} from '../../src/kafka/client.js'
import {silentLogger, type Logger} from '../../src/log.js'
import {OutboxRelay, RELAY_RETRY, RelayProducer} from '../../src/runtime/relay.js'
import {kafka, kafkaSettings, testPool, uniqueName} from '../helpers.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * A proxy in front of the broker at `target`. `loseNextProduceAnswer()`: the answer of the next
 * Produce request (Kafka API key 0) never reaches the client, and the broker looks down (every
 * connection cut, new ones refused) until `up()`.
 */
async function answerLosingProxy(target: {host: string; port: number}) {
  let armed = false
  let down = false
  let lost = 0
  const sockets = new Set<Socket>()
  const cutAll = () => {
    for (const s of sockets) s.destroy()
    sockets.clear()
  }
  const server = createServer((client) => {
    if (down) return client.destroy()
    const upstream = createConnection(target)
    sockets.add(client).add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    for (const s of [client, upstream]) s.on('error', drop).on('close', drop)
    // requests: int32 size, int16 api key, int16 api version, int32 correlation id, ...
    const produces = new Set<number>()
    let requests = Buffer.alloc(0)
    client.on('data', (d: Buffer) => {
      requests = Buffer.concat([requests, d])
      while (requests.length >= 12 && requests.length >= 4 + requests.readInt32BE(0)) {
        if (requests.readInt16BE(4) === 0) produces.add(requests.readInt32BE(8))
        requests = requests.subarray(4 + requests.readInt32BE(0))
      }
      upstream.write(d)
    })
    // answers: int32 size, int32 correlation id, ...
    let answers = Buffer.alloc(0)
    upstream.on('data', (d: Buffer) => {
      answers = Buffer.concat([answers, d])
      const pass: Buffer[] = []
      while (answers.length >= 8 && answers.length >= 4 + answers.readInt32BE(0)) {
        const frame = answers.subarray(0, 4 + answers.readInt32BE(0))
        answers = answers.subarray(frame.length)
        if (armed && produces.has(frame.readInt32BE(4))) {
          armed = false
          lost++
          down = true
          cutAll()
          return
        }
        pass.push(frame)
      }
      if (pass.length > 0) client.write(Buffer.concat(pass))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        cutAll()
        server.close(() => resolve())
      }),
  )
  return {
    port: (server.address() as {port: number}).port,
    loseNextProduceAnswer: () => (armed = true),
    up: () => (down = false),
    get lost() {
      return lost
    },
  }
}

describe('outbox relay: the broker gone in the middle of a send, then back', () => {
  it('publishes each dead letter once (the send in doubt again, as it was), and the backlog gauge returns to 0', async () => {
    const [host, port] = kafkaSettings().brokers[0]!.split(':')
    const proxy = await answerLosingProxy({host: host!, port: Number(port)})
    const pool = testPool()
    const pipeline = uniqueName('relay-lost')
    const topic = `${pipeline}.dlq`
    const admin = kafka().admin()
    await admin.connect()
    await createTopicsReady(admin, [{topic, numPartitions: 3}])
    onTestFinished(async () => {
      await admin.deleteTopics({topics: [topic]}).catch(() => {})
      await admin.disconnect()
      await pool.query('DELETE FROM cutover.outbox WHERE pipeline = $1', [pipeline])
    })
    // dead letters of records without a key, from source partitions 0, 1, 2 (offset = n)
    const commit = (from: number, to: number) =>
      pool.query(
        `INSERT INTO cutover.outbox (pipeline, topic, key, value, headers)
         SELECT $1, $2, NULL, convert_to('v' || i, 'UTF8'),
                jsonb_build_array(jsonb_build_array('cutover.source.partition', encode(convert_to((i % 3)::text, 'UTF8'), 'base64')),
                                  jsonb_build_array('cutover.source.offset', encode(convert_to(i::text, 'UTF8'), 'base64')))
           FROM generate_series($3::int, $4::int) AS i ORDER BY i`,
        [pipeline, topic, from, to],
      )
    const unsent = async () => (await pool.query<{n: number}>('SELECT count(*)::int AS n FROM cutover.outbox WHERE pipeline = $1 AND sent_at IS NULL', [pipeline])).rows[0]!.n

    // the relay's producer as relayProducer() makes it, its connections through the proxy
    const client = new kafkajs.Kafka({
      ...kafkaConfig(kafkaSettings(), {mode: 'resilient', retry: RELAY_RETRY, clientId: pipeline}),
      socketFactory: ({onConnect}) => createConnection({host: '127.0.0.1', port: proxy.port}, onConnect),
    })
    const producer = new RelayProducer(() => client.producer(RelayProducer.config))
    await producer.connect()
    onTestFinished(() => producer.disconnect())
    const failures: string[] = []
    const logger: Logger = {...silentLogger, warn: (event, fields) => failures.push(`${event}: ${(fields?.error as Error | undefined)?.message}`), namespace: () => logger}
    const backlog: number[] = []
    const relay = new OutboxRelay({pool, producer, pipeline, logger, pollMs: 50, onBacklog: (n) => backlog.push(n)})
    onTestFinished(async () => {
      await relay.stop(0)
    })

    await commit(0, 5)
    proxy.loseNextProduceAnswer()
    relay.start()
    while (proxy.lost === 0) await sleep(20)
    // while the broker is away, more dead letters commit; the relay fails and counts its backlog
    await commit(6, 9)
    for (let i = 0; i < 100 && !backlog.includes(10); i++) await sleep(50)
    expect(backlog, 'the backlog gauge while the broker is away').toContain(10)
    proxy.up()
    for (let i = 0; i < 200 && (await unsent()) > 0; i++) await sleep(100)
    expect(await unsent(), `the relay published nothing more after the broker came back:\n${failures.join('\n')}`).toBe(0)
    await relay.stop(1000)
    expect(backlog.at(-1), 'the backlog gauge at the end').toBe(0)

    const dlq = kcatRead(kafkaSettings().brokers.join(','), topic)
    const offsets = dlq.map((r) => Number(r.headers['cutover.source.offset']))
    expect(offsets.sort((a, b) => a - b), 'each dead letter once').toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    // without a key, a dead letter goes to its source partition, there in offset order
    for (const r of dlq) expect(r.partition).toBe(Number(r.headers['cutover.source.partition']))
    for (const p of [0, 1, 2]) {
      const inP = dlq.filter((r) => r.partition === p).map((r) => Number(r.headers['cutover.source.offset']))
      expect(inP).toEqual([...inP].sort((a, b) => a - b))
    }
  })
})
