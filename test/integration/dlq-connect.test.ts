/**
 * A dead-letter topic written by Kafka Connect (errors.deadletterqueue.context.headers.enable:
 * the original record plus `__connect.errors.*` headers), produced here with those header
 * names, is inspected and replayed the same way as cutover's own: codes mapped from the
 * exception class, source coordinates from the headers, replay to the source topic without the
 * Connect headers, and a stream run writes the records. Also: parking past --max-replays; a
 * replay whose ledger row fell behind its consumer group (a crash between the Kafka commit
 * and the row update) recounts without sending anything again; a second, different replay of
 * the same records is written once (the pipeline's dedupe); a Spring DLQ.
 */
import {describe, expect, it, onTestFinished} from 'vitest'
import {readSinkState} from '../../fixtures/generator/pipeline.js'
import {generateTransactions} from '../../fixtures/generator/transactions.js'
import type {DlqInspectResult} from '../../src/dlq/inspect.js'
import type {DlqReplayResult} from '../../src/dlq/replay.js'
import {createTestTopic, kafka, kcatConsume, runCli, testPool} from '../helpers.js'
import {forgetReplays} from '../../fixtures/dlq/cleanup.js'
import {produce, startStream, streamFixture} from './stream-support.js'

const STACK = 'org.apache.kafka.connect.errors.DataException: boom\n\tat org.apache.kafka.connect.json.JsonConverter.toConnectData(JsonConverter.java:324)'

describe('dlq with Kafka Connect and Spring headers', () => {
  it('inspects and replays a Connect DLQ, parks past --max-replays, and recounts a ledger behind its group', async () => {
    const f = await streamFixture({partitions: 2, prefix: 'dlqc'})
    const dlq = await createTestTopic({partitions: 2, prefix: 'connect-dlq'})
    onTestFinished(() => forgetReplays(f.pool, dlq))
    const txns = generateTransactions(200, {seed: 5, dirty: 0, idPrefix: 'C'})
    // 150 conversion failures (DECODE_ERROR), 50 sink failures (SQLException), as Connect writes them
    await produce(
      dlq,
      txns.map((t, i) => ({
        key: t.key,
        value: t.value,
        headers: {
          'x-trace': `trace-${t.seq}`,
          '__connect.errors.topic': f.topic,
          '__connect.errors.partition': String(i % 2),
          '__connect.errors.offset': String(1000 + i),
          '__connect.errors.connector.name': 'jdbc-sink-txn',
          '__connect.errors.task.id': '0',
          '__connect.errors.stage': i < 150 ? 'VALUE_CONVERTER' : 'TASK_PUT',
          '__connect.errors.class.name': i < 150 ? 'org.apache.kafka.connect.json.JsonConverter' : 'io.confluent.connect.jdbc.sink.JdbcSinkTask',
          '__connect.errors.exception.class.name': i < 150 ? 'org.apache.kafka.connect.errors.DataException' : 'java.sql.SQLException',
          '__connect.errors.exception.message': i < 150 ? 'Converting byte[] to Kafka Connect data failed due to serialization error: ' : 'ERROR: value too long for type character varying(8)',
          '__connect.errors.exception.stacktrace': STACK,
        },
      })),
    )

    const inspect = await runCli(['dlq', 'inspect', '--topic', dlq, '--limit', '1', '--spec', f.specFile, '--json'])
    expect(inspect.code, inspect.stderr).toBe(0)
    expect(inspect.stdout).not.toContain('JsonConverter.java') // stack traces are never shown
    const ir = inspect.json as DlqInspectResult
    expect(ir.by_code).toEqual({DECODE_ERROR: 150, SQLException: 50})
    expect(ir.by_origin).toEqual({connect: 200})
    expect(ir.by_pipeline_version).toEqual([{pipeline: 'jdbc-sink-txn', version: null, count: 200}])
    expect(ir.by_source).toEqual([
      {topic: f.topic, partition: 0, count: 100},
      {topic: f.topic, partition: 1, count: 100},
    ])
    const s = ir.samples.DECODE_ERROR![0]!
    expect(s).toMatchObject({origin: 'connect', stage: 'VALUE_CONVERTER', exception_class: 'org.apache.kafka.connect.errors.DataException', source: {topic: f.topic}})
    // the source coordinates are the sample's own Connect headers (keys are unique: dirty 0)
    const i = txns.findIndex((t) => t.key === s.key)
    expect(i).toBeGreaterThanOrEqual(0)
    expect(s.source).toMatchObject({topic: f.topic, partition: i % 2, offset: String(1000 + i)})
    expect(ir.samples.SQLException![0]!.message).toContain('value too long')

    // dry run, then the replay of the conversion failures to their source topic
    const dry = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', f.specFile, '--code', 'DECODE_ERROR', '--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.json.prediction).toEqual({DECODE_ERROR: {selected: 150, would_pass: 150, duplicates: 0, still_failing: {}, would_park: 0}})
    const replay = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', f.specFile, '--code', 'DECODE_ERROR', '--json'])
    expect(replay.code, replay.stderr).toBe(0)
    const rr = replay.json as DlqReplayResult
    expect(rr).toMatchObject({status: 'completed', selected: 150, sent: 150, parked: 0, sent_by_topic: {[f.topic]: 150}})
    const inSource = kcatConsume(f.topic)
    expect(inSource).toHaveLength(150)
    for (const r of inSource) {
      expect(Object.keys(r.headers).sort()).toEqual(['cutover.replay.count', 'cutover.replay.id', 'x-trace'])
      const t = txns[Number(r.headers['x-trace']!.slice('trace-'.length))]!
      expect(t.seq).toBeLessThan(150)
      expect(r.key).toBe(t.key)
      expect(r.payload).toBe(t.value.toString('utf8'))
    }
    const run = await startStream(f, ['--until-idle', '--idle-ms', '1500', '--json']).exited
    expect(run.code, run.stderr).toBe(0)
    const out = JSON.parse(run.stdout) as {read: number; written: number; dead_lettered: Record<string, number>}
    expect(out).toMatchObject({read: 150, written: 150})
    expect(out.dead_lettered).toEqual({}) // toMatchObject would take any object for {}
    const sink = await readSinkState(f.pool, f.schema)
    expect(sink.rows.size).toBe(150)
    for (const t of txns.slice(0, 150)) expect(sink.rows.get(t.clean!.txn_id)?.amount).toBe(t.clean!.amount)

    // past --max-replays: parked, not sent; the parked topic keeps every header
    const park = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', f.specFile, '--code', 'SQLException', '--max-replays', '0', '--json'])
    expect(park.code, park.stderr).toBe(0)
    expect(park.json).toMatchObject({selected: 50, sent: 0, parked: 50, parked_topic: `${dlq}.parked`})
    const parked = kcatConsume(`${dlq}.parked`)
    expect(parked).toHaveLength(50)
    expect(parked.every((r) => r.headers['cutover.parked.by'] === park.json.replay_id && r.headers['__connect.errors.exception.class.name'] === 'java.sql.SQLException')).toBe(true)
    expect(kcatConsume(f.topic)).toHaveLength(150)

    // a crash between the Kafka commit and the ledger update: the row is behind the group.
    // The rerun counts that stretch again, sends nothing, and completes with the same totals.
    await f.pool.query(
      `UPDATE cutover.replays SET progress = '{}', scanned = 0, selected = 0, sent = 0, parked = 0, sent_by_topic = '{}', status = 'running', finished_at = NULL WHERE id = $1`,
      [rr.replay_id],
    )
    const recount = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', f.specFile, '--code', 'DECODE_ERROR', '--json'])
    expect(recount.code, recount.stderr).toBe(0)
    expect(recount.json).toMatchObject({status: 'completed', resumed: true, selected: 150, sent: 150, sent_now: 0, scanned: 200})
    expect(kcatConsume(f.topic)).toHaveLength(150)
    // the DLQ itself was never written
    expect(kcatConsume(dlq)).toHaveLength(200)

    // another replay of the same records (named, so it is a new one): sent again, written once
    const second = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', f.specFile, '--code', 'DECODE_ERROR', '--replay-id', `${f.name}-again`, '--json'])
    expect(second.code, second.stderr).toBe(0)
    expect(second.json).toMatchObject({replay_id: `${f.name}-again`, sent: 150, sent_now: 150})
    const rerun = await startStream(f, ['--until-idle', '--idle-ms', '1500', '--json']).exited
    expect(rerun.code, rerun.stderr).toBe(0)
    const again = JSON.parse(rerun.stdout) as {read: number; written: number; duplicates: number; dead_lettered: Record<string, number>}
    expect(again).toMatchObject({read: 150, written: 0, duplicates: 150})
    expect(again.dead_lettered).toEqual({})
    expect((await readSinkState(f.pool, f.schema)).rows.size).toBe(150)
  })

  it('reads Spring dead letters (binary partition and offset headers) and replays them to their source', async () => {
    const source = await createTestTopic({partitions: 1, prefix: 'spring-src'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'spring-dlt'})
    const pool = testPool()
    onTestFinished(() => forgetReplays(pool, dlq))
    const txns = generateTransactions(30, {seed: 9, dirty: 0, idPrefix: 'S'})
    const int32 = (n: number) => {
      const x = Buffer.alloc(4)
      x.writeInt32BE(n)
      return x
    }
    const int64 = (n: bigint) => {
      const x = Buffer.alloc(8)
      x.writeBigInt64BE(n)
      return x
    }
    const p = kafka().producer()
    await p.connect()
    await p.send({
      topic: dlq,
      acks: -1,
      messages: txns.map((t, i) => ({
        key: t.key,
        value: t.value,
        headers: {
          'x-trace': `trace-${t.seq}`,
          'kafka_dlt-original-topic': source,
          'kafka_dlt-original-partition': int32(0),
          'kafka_dlt-original-offset': int64(BigInt(500 + i)),
          'kafka_dlt-original-timestamp': int64(1795414500000n),
          'kafka_dlt-original-consumer-group': 'payments-app',
          'kafka_dlt-exception-fqcn': 'org.springframework.kafka.listener.ListenerExecutionFailedException',
          'kafka_dlt-exception-cause-fqcn': 'org.springframework.kafka.support.serializer.DeserializationException',
          'kafka_dlt-exception-message': 'failed to deserialize; nested exception',
        },
      })),
    })
    await p.disconnect()
    const inspect = await runCli(['dlq', 'inspect', '--topic', dlq, '--limit', '1', '--json'])
    expect(inspect.code, inspect.stderr).toBe(0)
    expect(inspect.json).toMatchObject({total: 30, by_code: {DECODE_ERROR: 30}, by_origin: {spring: 30}, by_source: [{topic: source, partition: 0, count: 30}]})
    expect(inspect.json.samples.DECODE_ERROR[0].source).toEqual({topic: source, partition: 0, offset: '500', timestamp: '1795414500000'})
    const replay = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', 'fixtures/specs/stream-card-transactions.yaml', '--json'])
    expect(replay.code, replay.stderr).toBe(0)
    expect(replay.json).toMatchObject({status: 'completed', selected: 30, sent: 30, sent_by_topic: {[source]: 30}})
    const back = kcatConsume(source)
    expect(back.map((r) => r.headers['x-trace'])).toEqual(txns.map((t) => `trace-${t.seq}`))
    expect(back.every((r) => Object.keys(r.headers).every((h) => !h.startsWith('kafka_dlt-')))).toBe(true)
    expect(back.map((r) => r.payload)).toEqual(txns.map((t) => t.value.toString('utf8')))
  })
})
