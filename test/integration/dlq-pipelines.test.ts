/**
 * A dead-letter topic shared by two cutover pipelines: `dlq replay --spec a.yaml` predicts and
 * sends only pipeline a's dead letters (cutover.pipeline); b's are neither run through a's stages
 * nor sent back to b's source topic.
 */
import {describe, expect, it, onTestFinished} from 'vitest'
import type {DlqReplayResult} from '../../src/dlq/replay.js'
import {createTestTopic, kcatConsume, runCli} from '../helpers.js'
import {forgetReplays} from '../../fixtures/dlq/cleanup.js'
import {produce, streamFixture, type ProducedMessage} from './stream-support.js'

describe('dlq replay: a DLQ shared by pipelines', () => {
  it("replays only the spec's own pipeline's dead letters", async () => {
    const f = await streamFixture({partitions: 1, prefix: 'dlqpipe'})
    onTestFinished(() => forgetReplays(f.pool, f.dlqTopic))
    const otherSource = await createTestTopic({prefix: 'dlqpipe-other-src'})
    const deadLetter = (i: number, pipeline: string, source: string): ProducedMessage => ({
      key: `P${i}`,
      value: Buffer.from(JSON.stringify({id: `P${i}`, acct: 'A1', amt: '1.00', ts: '2026-11-20T09:15:00+03:00'})),
      headers: {
        'x-trace': `trace-${i}`,
        'cutover.error.code': 'UNPARSEABLE_DATE',
        'cutover.error.stage': 'normalize',
        'cutover.source.topic': source,
        'cutover.source.partition': '0',
        'cutover.source.offset': String(i),
        'cutover.pipeline': pipeline,
        'cutover.replay.count': '0',
        'cutover.failed.at': '2026-11-20T06:15:00.000Z',
      },
    })
    await produce(f.dlqTopic, [0, 1, 2, 3, 4, 5].map((i) => (i % 2 === 0 ? deadLetter(i, f.name, f.topic) : deadLetter(i, 'other-pipeline', otherSource))))

    const dry = await runCli(['dlq', 'replay', '--topic', f.dlqTopic, '--spec', f.specFile, '--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.json).toMatchObject({scanned: 6, selected: 3, other_pipelines_now: 3})
    expect(dry.json.prediction).toEqual({UNPARSEABLE_DATE: {selected: 3, would_pass: 3, duplicates: 0, still_failing: {}, would_park: 0}})

    const replay = await runCli(['dlq', 'replay', '--topic', f.dlqTopic, '--spec', f.specFile, '--json'])
    expect(replay.code, replay.stderr).toBe(0)
    expect(replay.json as DlqReplayResult).toMatchObject({status: 'completed', scanned: 6, selected: 3, sent: 3, sent_by_topic: {[f.topic]: 3}, other_pipelines_now: 3})
    expect(kcatConsume(f.topic).map((r) => r.key).sort()).toEqual(['P0', 'P2', 'P4'])
    expect(kcatConsume(otherSource)).toEqual([])
  })
})
