/**
 * `dlq replay` of a DLQ written in Kafka transactions (as the replay writes `<dlq>.parked`, and
 * as Spring's transactional DLTs are): the range ends on a commit marker, which no consumer ever
 * receives. The replay used to wait for ever for that last offset; it completes now, having sent
 * every dead letter once (read back with kcat, read committed).
 */
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {forgetReplays} from '../../fixtures/dlq/cleanup.js'
import type {DlqReplayResult} from '../../src/dlq/replay.js'
import {createTestTopic, kafka, kcatConsume, runCli, testPool} from '../helpers.js'

describe('dlq replay: a DLQ written in transactions', () => {
  it('completes although its last offsets are transaction markers, and sends each dead letter once', async () => {
    const dlq = await createTestTopic({partitions: 1, prefix: 'replay-markers-dlq'})
    const source = await createTestTopic({partitions: 1, prefix: 'replay-markers-src'})
    onTestFinished(() => forgetReplays(testPool(), dlq))
    const producer = kafka().producer({transactionalId: `${dlq}-writer`, idempotent: true, maxInFlightRequests: 1})
    await producer.connect()
    const n = 300
    for (let i = 0; i < n; i += 100) {
      const t = await producer.transaction()
      await t.send({
        topic: dlq,
        messages: Array.from({length: 100}, (_, k) => ({
          key: `k${i + k}`,
          value: JSON.stringify({id: `k${i + k}`, amt: '1.00', ts: '2026-11-20T10:00:00Z'}),
          headers: {'cutover.error.code': 'UNPARSEABLE_DATE', 'cutover.error.message': 'x', 'cutover.error.stage': 'normalize', 'cutover.source.topic': source, 'cutover.source.partition': '0', 'cutover.source.offset': String(i + k), 'cutover.pipeline': 'replay-markers'},
        })),
      })
      await t.commit()
    }
    await producer.disconnect()
    const admin = kafka().admin()
    await admin.connect()
    const [w] = await admin.fetchTopicOffsets(dlq)
    await admin.disconnect()
    expect(Number(w!.high)).toBeGreaterThan(n) // the commit markers take offsets too

    const dir = mkdtempSync(join(tmpdir(), 'cutover-replay-markers-'))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, `version: 1\nname: replay-markers\nsource: { topic: ${source}, format: json }\nfields:\n  id: { type: string, required: true }\n  amt: { type: decimal, scale: 2 }\n  ts: { type: timestamp, formats: [iso] }\nkey: id\nsinks:\n  - table: t\ndlq: { topic: ${dlq} }\n`)
    const r = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', spec, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json as DlqReplayResult).toMatchObject({status: 'completed', selected: n, sent: n, parked: 0})
    const sent = kcatConsume(source)
    expect(sent).toHaveLength(n)
    expect(new Set(sent.map((m) => m.key)).size).toBe(n)
    // no false "deleted by retention" warning for the markers inside the range
    expect(r.stderr).not.toContain('replay.gap')
  })
})
