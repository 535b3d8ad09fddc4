/**
 * `dlq stats` on a dead-letter topic written in Kafka transactions (Spring's DLTs, cutover's own
 * `<dlq>.parked`): each commit marker takes an offset, so `records` is what was read, not the
 * sum of end - start. Progress is reported as the topic is read.
 */
import {describe, expect, it} from 'vitest'
import type {DlqStatsResult} from '../../src/dlq/stats.js'
import {dlqStats} from '../../src/dlq/stats.js'
import {createTestTopic, kafka, kafkaSettings, runCli, uniqueName} from '../helpers.js'

describe('dlq stats', () => {
  it('counts the records of a topic written in transactions, not its offsets, and reports progress', async () => {
    const dlq = await createTestTopic({prefix: 'dlq-stats-txn'})
    const producer = kafka().producer({transactionalId: uniqueName('dlq-stats'), idempotent: true, maxInFlightRequests: 1})
    await producer.connect()
    try {
      for (let t = 0; t < 3; t++) {
        const txn = await producer.transaction()
        await txn.send({
          topic: dlq,
          acks: -1,
          messages: [0, 1].map((i) => ({
            key: `T${t}${i}`,
            value: '{}',
            headers: {'cutover.error.code': 'UNPARSEABLE_DATE', 'cutover.source.topic': 'txn.raw', 'cutover.source.partition': '0', 'cutover.source.offset': `${t}${i}`, 'cutover.failed.at': new Date().toISOString()},
          })),
        })
        await txn.commit()
      }
    } finally {
      await producer.disconnect()
    }
    const r = await runCli(['dlq', 'stats', '--topic', dlq, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const s = r.json as DlqStatsResult
    expect(Number(s.partitions[0]!.end)).toBe(9) // 6 records and 3 commit markers
    expect(s).toMatchObject({records: 6, total: 6, by_code: {UNPARSEABLE_DATE: 6}, last_hour: {count: 6}})

    const seen: number[] = []
    const lib = await dlqStats({topic: dlq, kafka: kafkaSettings(), onProgress: (n) => seen.push(n)})
    expect(lib.records).toBe(6)
    expect(seen.length).toBeGreaterThan(0)
    expect(seen.at(-1)).toBe(6)
  })
})
