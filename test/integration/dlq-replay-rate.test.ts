/**
 * `dlq replay --rate N`: at most N records in any second, the first one included. The token
 * bucket it used started full and let batches go as soon as they were paid for: `--rate 5` sent
 * 10 records in its first second (and 6 in later ones). Read back with kcat (librdkafka, an
 * independent client): the replayed records' Kafka timestamps, counted per second - as the
 * producer stamped them (CreateTime), and as the broker appended them (a target topic with
 * LogAppendTime).
 */
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {ConfigResourceTypes} from 'kafkajs'
import {describe, expect, it, onTestFinished} from 'vitest'
import {forgetReplays, sendDeadLetters} from '../../fixtures/dlq/cleanup.js'
import type {DlqReplayResult} from '../../src/dlq/replay.js'
import {createTestTopic, kafka, kcatConsume, runCli, testPool} from '../helpers.js'

const PIPELINE = 'replay-rate'

/** The most records whose timestamps fall in one window [t, t + 1000 ms), over every t that is a record's. */
function mostInOneSecond(timestamps: number[]): number {
  const ts = [...timestamps].sort((a, b) => a - b)
  let most = 0
  for (let i = 0, j = 0; i < ts.length; i++) {
    while (j < ts.length && ts[j]! < ts[i]! + 1000) j++
    most = Math.max(most, j - i)
  }
  return most
}

describe('dlq replay --rate', () => {
  it.each([
    [5, 20, 'CreateTime'],
    [20, 60, 'LogAppendTime'],
  ])('--rate %i over %i records: at most that many in the first second, and in any second (%s)', async (rate, n, timestampType) => {
    const dlq = await createTestTopic({partitions: 1, prefix: 'replay-rate-dlq'})
    const source = await createTestTopic({partitions: 1, prefix: 'replay-rate-src'})
    const admin = kafka().admin()
    await admin.connect()
    await admin.alterConfigs({validateOnly: false, resources: [{type: ConfigResourceTypes.TOPIC, name: source, configEntries: [{name: 'message.timestamp.type', value: timestampType}]}]})
    const described = await admin.describeConfigs({includeSynonyms: false, resources: [{type: ConfigResourceTypes.TOPIC, name: source, configNames: ['message.timestamp.type']}]})
    await admin.disconnect()
    expect(described.resources[0]!.configEntries[0]!.configValue).toBe(timestampType)
    onTestFinished(() => forgetReplays(testPool(), dlq))
    await sendDeadLetters(dlq, source, n, PIPELINE)
    const spec = join(mkdtempSync(join(tmpdir(), 'cutover-replay-rate-')), 'spec.yaml')
    writeFileSync(spec, `version: 1\nname: ${PIPELINE}\nsource: { topic: ${source}, format: json }\nfields:\n  id: { type: string, required: true }\n  amt: { type: decimal, scale: 2 }\n  ts: { type: timestamp, formats: [iso] }\nkey: id\nsinks:\n  - table: t\ndlq: { topic: ${dlq} }\n`)

    const r = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', spec, '--rate', String(rate), '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json as DlqReplayResult).toMatchObject({status: 'completed', selected: n, sent: n})

    const sent = kcatConsume(source)
    expect(sent.map((m) => m.key).sort()).toEqual(Array.from({length: n}, (_, i) => `k${i}`).sort())
    const ts = sent.map((m) => m.ts!)
    expect(ts.every((t) => Number.isFinite(t))).toBe(true)
    const first = Math.min(...ts)
    expect(ts.filter((t) => t < first + 1000).length).toBeLessThanOrEqual(rate)
    expect(mostInOneSecond(ts)).toBeLessThanOrEqual(rate)
  })
})
