/**
 * `dlq replay` of a DLQ whose records are not all there to read. Retention deleted some (or all)
 * of the range before the replay reached them: it used to wait for them for ever, or count them
 * nowhere; they are passed over and counted as `deleted` now. And a DLQ written in Kafka transactions (as the replay writes `<dlq>.parked`, and
 * as Spring's transactional DLTs are): the range ends on a commit marker, which no consumer ever
 * receives. The replay used to wait for ever for that last offset; it completes now, having sent
 * every dead letter once (read back with kcat, read committed).
 */
import {spawn} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {forgetReplays, sendDeadLetters} from '../../fixtures/dlq/cleanup.js'
import type {DlqReplayResult} from '../../src/dlq/replay.js'
import {BIN, createTestTopic, kafka, kcatConsume, ROOT, runCli, testPool} from '../helpers.js'
import {sleep} from './stream-support.js'

const deadLetters = (dlq: string, source: string, n: number) => sendDeadLetters(dlq, source, n, 'replay-markers')

function specFor(dlq: string, source: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cutover-replay-markers-'))
  const spec = join(dir, 'spec.yaml')
  writeFileSync(spec, `version: 1\nname: replay-markers\nsource: { topic: ${source}, format: json }\nfields:\n  id: { type: string, required: true }\n  amt: { type: decimal, scale: 2 }\n  ts: { type: timestamp, formats: [iso] }\nkey: id\nsinks:\n  - table: t\ndlq: { topic: ${dlq} }\n`)
  return spec
}

describe('dlq replay: dead letters deleted by retention', () => {
  it.each([
    ['part of what is left', 60],
    ['all of what is left', 100],
  ])('%s: passed over and counted as deleted (sent + deleted = the range), the replay completes', async (_, deleteTo) => {
    const n = 100
    const dlq = await createTestTopic({partitions: 1, prefix: 'replay-deleted-dlq'})
    const source = await createTestTopic({partitions: 1, prefix: 'replay-deleted-src'})
    onTestFinished(() => forgetReplays(testPool(), dlq))
    await deadLetters(dlq, source, n)
    const spec = specFor(dlq, source)
    const args = ['dlq', 'replay', '--topic', dlq, '--spec', spec, '--json']
    // a first run fixes the range (0..100) and is killed after a few records
    const child = spawn(process.execPath, [BIN, ...args, '--rate', '8'], {cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe']})
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    const pool = testPool()
    for (;;) {
      const row = await pool.query<{sent: number}>('SELECT sent::int AS sent FROM cutover.replays WHERE dlq_topic = $1', [dlq])
      if ((row.rows[0]?.sent ?? 0) >= 2) break
      if (child.exitCode !== null) throw new Error(`the first run ended (exit ${child.exitCode}) before it was killed`)
      await sleep(50)
    }
    child.kill('SIGKILL')
    await new Promise((r) => child.once('close', r))
    // then retention deletes the start of what is left (or all of it)
    const admin = kafka().admin()
    await admin.connect()
    await admin.fetchTopicMetadata({topics: [dlq]}) // kafkajs finds the partition's leader from it
    await admin.deleteTopicRecords({topic: dlq, partitions: [{partition: 0, offset: String(deleteTo)}]})
    await admin.disconnect()
    const r = await runCli(args)
    expect(r.code, r.stderr).toBe(0)
    const out = r.json as DlqReplayResult
    expect(out.status).toBe('completed')
    expect(out.sent + out.deleted).toBe(n)
    expect(out.deleted).toBeGreaterThan(deleteTo - 20)
    expect(r.stderr).toContain('replay.deleted_by_retention')
    const sent = kcatConsume(source)
    expect(new Set(sent.map((m) => m.key)).size).toBe(sent.length)
    expect(sent.length).toBeGreaterThanOrEqual(out.sent)
  })
})

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

    const spec = specFor(dlq, source)
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
