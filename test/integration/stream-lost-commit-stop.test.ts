/**
 * `stream run` stopped (SIGTERM) while it waits to retry a batch whose COMMIT reached PostgreSQL
 * and committed, but whose answer was lost (the connection broke): the run confirms the commit
 * (txid_status) and counts the batch in its --json result. It must also take it as committed
 * everywhere else an operator looks: the batch-size histogram and the last-commit time on
 * /metrics (the CutoverNoCommit alert reads it), and the group's offset in Kafka (lag tools,
 * `cutover status`). Before the fix only the totals counted it: the histogram had no batch, no
 * commit time, and the group had no offset, lag shown for records that were written.
 *
 * The answer is lost for real: PostgreSQL is reached through a TCP proxy (as test/fault-proxy.ts,
 * fault injection in front of the real server) that forwards the batch transaction's COMMIT and
 * then closes the connection before the server's answer comes back.
 */
import {createConnection, createServer, type Server, type Socket} from 'node:net'
import {describe, expect, it, onTestFinished} from 'vitest'
import {generateTransactions} from '../../fixtures/generator/transactions.js'
import {cardTransactionSpec} from '../../fixtures/generator/pipeline.js'
import {createLogger, type LogEntry} from '../../src/log.js'
import {RuntimeMetrics} from '../../src/runtime/metrics.js'
import {runStream} from '../../src/runtime/run.js'
import {kafka, settings} from '../helpers.js'
import {fromGenerated, produce, sleep, streamFixture} from './stream-support.js'
import {writeFileSync} from 'node:fs'

/**
 * A proxy to PostgreSQL that, once, forwards the COMMIT of a batch transaction (a connection that
 * asked txid_current(): offsets.ts beginLockAndAdvance) and closes both sides before the answer.
 */
async function commitAnswerDropper(target: {host: string; port: number}): Promise<{port: number; dropped: () => boolean; close(): Promise<void>}> {
  let dropped = false
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = createConnection(target)
    sockets.add(client).add(upstream)
    let buf = Buffer.alloc(0)
    let started = false
    let batchTx = false
    const drop = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', drop)
    upstream.on('error', drop)
    client.on('close', drop)
    upstream.on('close', drop)
    upstream.on('data', (d) => {
      if (!client.destroyed) client.write(d)
    })
    client.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      // frontend messages: the startup message (length first), then type byte + length + body
      for (;;) {
        const head = started ? 5 : 4
        if (buf.length < head) return
        const len = started ? buf.readInt32BE(1) + 1 : buf.readInt32BE(0)
        if (buf.length < len) return
        const msg = buf.subarray(0, len)
        buf = buf.subarray(len)
        started = true
        const text = msg[0] === 0x51 /* Q */ ? msg.subarray(5, len - 1).toString() : ''
        if (text.includes('txid_current()')) batchTx = true
        if (!dropped && batchTx && text === 'COMMIT') {
          dropped = true
          // the COMMIT reaches the server (end() flushes it); its answer never reaches the client
          upstream.end(msg)
          client.destroy()
          return
        }
        upstream.write(msg)
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return {
    port,
    dropped: () => dropped,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
}

describe('stream run: stopped after a COMMIT whose answer was lost', () => {
  it('counts the batch in the metrics and commits its offset to the Kafka group, as it counts it in --json', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'lost-commit-stop'})
    // a long retry backoff: the stop comes while the run waits to retry
    writeFileSync(f.specFile, cardTransactionSpec({name: f.name, topic: f.topic, group: `${f.name}-group`, dlqTopic: f.dlqTopic, retry: {initial: '60s', max: '60s'}}))
    const n = 50
    await produce(f.topic, fromGenerated(generateTransactions(n, {seed: 4242, dirty: 0})))

    const url = new URL(settings().databaseUrl)
    const proxy = await commitAnswerDropper({host: url.hostname, port: Number(url.port || 5432)})
    onTestFinished(() => proxy.close())
    url.port = String(proxy.port)

    const events: LogEntry[] = []
    const logger = createLogger({level: 'info', sink: (e) => events.push(e)})
    const metrics = new RuntimeMetrics(f.name, {defaultMetrics: false})
    const stop = new AbortController()
    onTestFinished(() => stop.abort())
    const run = runStream({spec: f.specFile, schema: f.schema, settings: {...settings(), databaseUrl: url.toString()}, logger, metrics, signal: stop.signal, consumers: 1})
    // the COMMIT went, its answer did not: the run logs the retry and waits (60 s)
    while (!events.some((e) => e.event === 'batch.retry')) {
      if (events.some((e) => e.level === 'error' && e.event !== 'batch.retry')) break
      await sleep(50)
    }
    expect(proxy.dropped()).toBe(true)
    stop.abort()
    const result = await run

    // the batch committed in PostgreSQL, once
    const rows = await f.pool.query<{n: number}>(`SELECT count(*)::int AS n FROM "${f.schema}".txn_clean`)
    expect(rows.rows[0]!.n).toBe(n)
    expect(events.filter((e) => e.event === 'batch.commit_confirmed')).toHaveLength(1)
    expect(result).toMatchObject({read: n, written: n, batches: 1, lag_end: 0})

    // ... and on /metrics: one batch of n records, a last-commit time
    const json = await metrics.registry.getMetricsAsJSON()
    const value = (name: string, metricName = name) => json.find((m) => m.name === name)?.values.find((v) => (v as {metricName?: string}).metricName === metricName || metricName === name)?.value
    expect(value('cutover_batch_size_records', 'cutover_batch_size_records_count')).toBe(1)
    expect(value('cutover_batch_size_records', 'cutover_batch_size_records_sum')).toBe(n)
    expect(value('cutover_last_commit_timestamp_seconds')).toBeGreaterThan(0)

    // ... and in the group's offsets in Kafka, where kafka-consumer-groups and `cutover status` read it
    const admin = kafka().admin()
    await admin.connect()
    try {
      const [offsets] = await admin.fetchOffsets({groupId: `${f.name}-group`, topics: [f.topic]})
      expect(offsets!.partitions).toEqual([expect.objectContaining({partition: 0, offset: String(n)})])
    } finally {
      await admin.disconnect()
    }
  })
})
