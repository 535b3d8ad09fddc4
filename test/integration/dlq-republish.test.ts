/**
 * `dlq republish` against the real broker and PostgreSQL: a dead letter larger than the DLQ
 * topic's max.message.bytes, which the outbox relay published without its value
 * (`cutover.value.omitted`, the value kept in cutover.outbox), is published again WITH its value
 * once the topic takes it, and `dlq inspect` and `dlq replay` take that later copy for the dead
 * letter: the replay sends it once and parks nothing (before: the copy without the value was
 * parked and the one with it dropped as a relay repeat; and the only way back was a hand-written
 * UPDATE, after which the outbox row kept the header and was never pruned).
 */
import type {KafkaMessage} from 'kafkajs'
import {describe, expect, it, onTestFinished} from 'vitest'
import {forgetReplays} from '../../fixtures/dlq/cleanup.js'
import {createTopicsReady} from '../../src/kafka/client.js'
import {silentLogger} from '../../src/log.js'
import {insertDeadLetters} from '../../src/runtime/outbox.js'
import {OutboxRelay, pruneSentOutbox, relayProducer} from '../../src/runtime/relay.js'
import type {WorkItem} from '../../src/runtime/types.js'
import {kafka, kafkaSettings, kcatConsume, runCli} from '../helpers.js'
import {streamFixture} from './stream-support.js'

const record = (id: string, extra: Record<string, unknown> = {}) => Buffer.from(JSON.stringify({id, acct: 'A1', amt: '1.50', ts: '2026-11-20T10:00:00+03:00', ...extra}))

describe('dlq republish', () => {
  it('publishes a dead letter the DLQ topic refused again with its value once the topic takes it; replay sends that copy once and parks nothing', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'dlq-repub'})
    onTestFinished(() => forgetReplays(f.pool, f.dlqTopic))
    // the DLQ topic as someone made it: it takes 2 KB (deleted with the fixture's topics)
    const admin = kafka().admin()
    await admin.connect()
    onTestFinished(() => admin.disconnect())
    await createTopicsReady(admin, [{topic: f.dlqTopic, numPartitions: 1, configEntries: [{name: 'max.message.bytes', value: '2048'}]}])

    // two dead letters as stream run writes them to the outbox: a small one, and one of 5000 bytes
    const big = record('B1', {memo: 'x'.repeat(5000)})
    const item = (offset: number, key: string, value: Buffer, code: 'DECODE_ERROR' | 'ENRICHMENT_UNAVAILABLE'): WorkItem => ({
      message: {key: Buffer.from(key), value, headers: {'x-trace': Buffer.from(`trace-${key}`)}, timestamp: '1795414500000', attributes: 0, offset: String(offset)} as unknown as KafkaMessage,
      topic: f.topic,
      partition: 0,
      offset: BigInt(offset),
      status: 'dead',
      dead: {code, message: `failed: ${code}`, stage: code === 'DECODE_ERROR' ? 'decode' : 'enrich', field: null},
    })
    await insertDeadLetters(f.pool, f.dlqTopic, [item(0, 'S1', Buffer.from('not json S1'), 'DECODE_ERROR'), item(1, 'B1', big, 'ENRICHMENT_UNAVAILABLE')], {
      pipeline: f.name,
      version: 'a'.repeat(64),
      attempts: 1,
      failedAt: new Date('2026-11-20T07:00:00Z'),
    })
    const producer = relayProducer(kafkaSettings(), {logger: silentLogger, clientId: f.name})
    await producer.connect()
    onTestFinished(() => producer.disconnect())
    expect(await new OutboxRelay({pool: f.pool, producer, pipeline: f.name, logger: silentLogger}).drain(15_000)).toBe(0)
    const first = kcatConsume(f.dlqTopic)
    expect(first.map((r) => [r.key, r.payload === null])).toEqual([
      ['S1', false],
      ['B1', true],
    ])
    const outboxRow = async () =>
      (
        await f.pool.query<{id: string; sent: boolean; omitted: boolean; same: boolean}>(
          `SELECT id::text AS id, sent_at IS NOT NULL AS sent, headers @> '[["cutover.value.omitted"]]' AS omitted, value = $2 AS same FROM cutover.outbox WHERE pipeline = $1 AND key = 'B1'`,
          [f.name, big],
        )
      ).rows
    const [before] = await outboxRow()
    expect(before).toMatchObject({sent: true, omitted: true, same: true})

    // --dry-run: too large for the topic now, with its size, the limit and the command that raises it; exit 1, nothing changed
    const dry = await runCli(['dlq', 'republish', '--spec', f.specFile, '--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(1)
    expect(dry.json).toMatchObject({dry_run: true, pipeline: f.name, would_republish: 0, republished: 0, too_large: 1})
    expect(dry.json.rows).toHaveLength(1)
    const row = dry.json.rows[0]
    expect(row).toMatchObject({id: before!.id, topic: f.dlqTopic, status: 'too-large', value_bytes: big.length, max_message_bytes: 2048, code: 'ENRICHMENT_UNAVAILABLE', source: `${f.topic}/0@1`})
    expect(row.record_bytes).toBeGreaterThan(big.length)
    expect(row.fix).toBe(`kafka-configs.sh --bootstrap-server ${kafkaSettings().brokers.join(',')} --alter --entity-type topics --entity-name ${f.dlqTopic} --add-config max.message.bytes=${row.record_bytes}`)
    expect(await outboxRow()).toEqual([before])

    // the operator raises the limit to what the dry run said: exactly the record's size
    await admin.alterConfigs({validateOnly: false, resources: [{type: 2 /* TOPIC */, name: f.dlqTopic, configEntries: [{name: 'max.message.bytes', value: String(row.record_bytes)}]}]})
    for (;;) {
      const c = await admin.describeConfigs({includeSynonyms: false, resources: [{type: 2, name: f.dlqTopic, configNames: ['max.message.bytes']}]})
      if (c.resources[0]?.configEntries[0]?.configValue === String(row.record_bytes)) break
      await new Promise((r) => setTimeout(r, 100))
    }

    const done = await runCli(['dlq', 'republish', '--spec', f.specFile, '--json'])
    expect(done.code, done.stderr).toBe(0)
    expect(done.json).toMatchObject({dry_run: false, republished: 1, queued: 0, too_large: 0, rows: [{id: before!.id, status: 'republished', max_message_bytes: row.record_bytes}]})
    // on the topic, after the copy without its value: the same dead letter with it, without the header
    const dlq = kcatConsume(f.dlqTopic)
    expect(dlq.map((r) => r.key)).toEqual(['S1', 'B1', 'B1'])
    const [without, withValue] = dlq.filter((r) => r.key === 'B1')
    expect(withValue!.payload).toBe(big.toString())
    expect(withValue!.headers['cutover.value.omitted']).toBeUndefined()
    const {['cutover.value.omitted']: note, ...rest} = without!.headers
    expect(note).toBe(`${big.length} bytes: more than ${f.dlqTopic} accepts (max.message.bytes)`)
    expect(withValue!.headers).toEqual(rest)
    // the outbox row: sent, the header gone (prunable), the value as it was
    expect(await outboxRow()).toEqual([{...before, omitted: false}])
    // run again: nothing left to do
    const again = await runCli(['dlq', 'republish', '--spec', f.specFile, '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json).toMatchObject({rows: [], republished: 0, too_large: 0})

    // dlq inspect: one dead letter each, the copy with the value the one sampled
    const inspect = await runCli(['dlq', 'inspect', '--topic', f.dlqTopic, '--spec', f.specFile, '--json'])
    expect(inspect.code, inspect.stderr).toBe(0)
    expect(inspect.json).toMatchObject({scanned: 3, total: 2, repeats: 1, by_code: {DECODE_ERROR: 1, ENRICHMENT_UNAVAILABLE: 1}})
    expect(inspect.json.samples.ENRICHMENT_UNAVAILABLE).toHaveLength(1)
    expect(inspect.json.samples.ENRICHMENT_UNAVAILABLE[0]).toMatchObject({dlq: {offset: String(withValue!.offset)}})
    expect(inspect.json.samples.ENRICHMENT_UNAVAILABLE[0].value_omitted).toBeUndefined()

    // dlq replay: the copy with the value once (the one without passed over, not parked)
    const dryReplay = await runCli(['dlq', 'replay', '--topic', f.dlqTopic, '--spec', f.specFile, '--dry-run', '--json'])
    expect(dryReplay.code, dryReplay.stderr).toBe(0)
    expect(dryReplay.json).toMatchObject({scanned: 3, selected: 2, repeats_now: 1})
    expect(dryReplay.json.prediction.ENRICHMENT_UNAVAILABLE).toMatchObject({selected: 1, would_park: 0})
    const replay = await runCli(['dlq', 'replay', '--topic', f.dlqTopic, '--spec', f.specFile, '--json'])
    expect(replay.code, replay.stderr).toBe(0)
    expect(replay.json).toMatchObject({status: 'completed', scanned: 3, selected: 2, sent: 2, parked: 0, repeats_now: 1})
    const replayed = kcatConsume(f.topic)
    expect(replayed.map((r) => r.key).sort()).toEqual(['B1', 'S1'])
    expect(replayed.find((r) => r.key === 'B1')!.payload).toBe(big.toString())
    expect(await admin.listTopics()).not.toContain(`${f.dlqTopic}.parked`)

    // housekeeping prunes both rows now: the DLQ topic holds both values
    expect(await pruneSentOutbox(f.pool, f.name, 0)).toBe(2)
  })
})
