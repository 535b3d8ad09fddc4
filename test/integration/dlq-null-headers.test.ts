/**
 * Kafka allows a header without a value (length -1; kafkajs reads it as null). Kafka Connect
 * writes one for an exception without a message: `__connect.errors.exception.message` of a
 * NullPointerException. Such dead letters, produced here with kcat (kafkajs cannot write a null
 * header), are inspected, counted and replayed: the header reads as absent, a replayed or parked
 * record carries it with an empty value (kafkajs cannot write it without one).
 */
import {spawnSync} from 'node:child_process'
import {describe, expect, it, onTestFinished} from 'vitest'
import type {DlqInspectResult} from '../../src/dlq/inspect.js'
import type {DlqReplayResult} from '../../src/dlq/replay.js'
import type {DlqStatsResult} from '../../src/dlq/stats.js'
import {forgetReplays} from '../../fixtures/dlq/cleanup.js'
import {createTestTopic, kafkaSettings, kcatConsume, runCli, testPool} from '../helpers.js'

/** One record with kcat: `-H name` without `=` is a header without a value. */
function kcatSend(topic: string, key: string, value: string, headers: string[]): void {
  const args = ['-b', kafkaSettings().brokers.join(','), '-P', '-t', topic, '-k', key, ...headers.flatMap((h) => ['-H', h])]
  const r = spawnSync('kcat', args, {input: value, encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`kcat produce failed (${r.status}): ${r.stderr}`)
}

describe('dlq: headers without a value', () => {
  it('inspect, stats and replay read a Connect dead letter whose exception message header is null', async () => {
    const dlq = await createTestTopic({prefix: 'dlq-nullhdr'})
    const source = await createTestTopic({prefix: 'dlq-nullhdr-src'})
    const pool = testPool()
    onTestFinished(() => forgetReplays(pool, dlq))
    const connect = (offset: number) => [
      `__connect.errors.topic=${source}`,
      '__connect.errors.partition=0',
      `__connect.errors.offset=${offset}`,
      '__connect.errors.connector.name=jdbc-sink-txn',
      '__connect.errors.stage=TASK_PUT',
      '__connect.errors.exception.class.name=java.lang.NullPointerException',
      '__connect.errors.exception.message',
      '__connect.errors.exception.stacktrace=java.lang.NullPointerException\n\tat x',
      'x-trace',
    ]
    kcatSend(dlq, 'N1', '{"id":"N1"}', connect(7))
    // replayed three times already: parked, with every header it had
    kcatSend(dlq, 'N2', '{"id":"N2"}', [...connect(8), 'cutover.replay.count=3'])
    expect(kcatConsume(dlq).map((r) => r.headers['__connect.errors.exception.message'])).toEqual([null, null])

    const i = await runCli(['dlq', 'inspect', '--topic', dlq, '--json'])
    expect(i.code, i.stdout + i.stderr).toBe(0)
    const inspected = i.json as DlqInspectResult
    expect(inspected).toMatchObject({scanned: 2, total: 2, by_code: {NullPointerException: 2}, by_origin: {connect: 2}, by_source: [{topic: source, partition: 0, count: 2}]})
    expect(inspected.samples.NullPointerException?.map((s) => [s.message, s.source.offset, s.exception_class])).toEqual([
      [null, '7', 'java.lang.NullPointerException'],
      [null, '8', 'java.lang.NullPointerException'],
    ])

    const s = await runCli(['dlq', 'stats', '--topic', dlq, '--json'])
    expect(s.code, s.stdout + s.stderr).toBe(0)
    expect(s.json as DlqStatsResult).toMatchObject({records: 2, total: 2, by_code: {NullPointerException: 2}})

    const r = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', 'fixtures/specs/stream-card-transactions.yaml', '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json as DlqReplayResult).toMatchObject({status: 'completed', selected: 2, sent: 1, parked: 1, sent_by_topic: {[source]: 1}})
    const sent = kcatConsume(source)
    expect(sent.map((x) => [x.key, x.payload])).toEqual([['N1', '{"id":"N1"}']])
    // the original header kept (empty: kafkajs cannot write it without a value), the Connect ones dropped
    expect(sent[0]!.headers).toEqual({'x-trace': '', 'cutover.replay.count': '1', 'cutover.replay.id': r.json.replay_id})
    const parked = kcatConsume(`${dlq}.parked`)
    expect(parked.map((x) => [x.key, x.headers['__connect.errors.exception.message'], x.headers['__connect.errors.offset'], x.headers['cutover.parked.by']])).toEqual([['N2', '', '8', r.json.replay_id]])
  })
})
