/**
 * `stream run` samples the Kafka key against the spec's key (DESIGN.md: `key` is the Kafka key
 * and the sink's primary key), through the built CLI against the real broker and PostgreSQL: a
 * partition whose records are keyed by their txn_id (or by it padded with the spaces `trim`
 * removes) says nothing; one keyed by the account, and one without keys, are each said once
 * (`stream.kafka_key_differs`, partition and offset, no value); every record is written either way.
 */
import {describe, expect, it} from 'vitest'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {exitedWithoutRetry, produce, startStream, streamFixture} from './stream-support.js'

const record = (id: string, acct: string) => Buffer.from(JSON.stringify({id, acct, amt: '1.50', ts: '2026-11-20T10:00:00+03:00', merchant: 'M-4111111111111111'}))

describe('stream run: the Kafka key against the spec key', () => {
  it('says once per partition that records are keyed otherwise (by the account; none), never for a key that is the txn_id, and writes them all', async () => {
    const f = await streamFixture({partitions: 3, prefix: 'kafka-key'})
    await produce(f.topic, [
      // partition 0: keyed by the txn_id, one padded as the producer sent it (trim: true removes it)
      {partition: 0, key: ' T2 ', value: record(' T2 ', 'ACC-7')},
      {partition: 0, key: 'T1', value: record('T1', 'ACC-7')},
      // partition 1: keyed by the account (two records, two batches at most: said once)
      {partition: 1, key: 'ACC-7', value: record('T3', 'ACC-7')},
      {partition: 1, key: 'ACC-7', value: record('T4', 'ACC-7')},
      // partition 2: no key
      {partition: 2, key: null, value: record('T5', 'ACC-8')},
    ])
    const r = await exitedWithoutRetry(startStream(f, ['--until-idle', '--idle-ms', '500', '--json']))
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out).toMatchObject({read: 5, written: 5, duplicates: 0, dead_lettered: {}})
    const said = r.stderr.split('\n').filter((l) => l.includes('"event":"stream.kafka_key_differs"'))
    const lines = said.map((l) => JSON.parse(l) as Record<string, unknown>).sort((a, b) => Number(a.partition) - Number(b.partition))
    expect(lines).toEqual([
      expect.objectContaining({level: 'warn', topic: f.topic, partition: 1, offset: '0', key_field: 'txn_id', note: expect.stringContaining('has a Kafka key (5 bytes) that is not its txn_id')}),
      expect.objectContaining({level: 'warn', topic: f.topic, partition: 2, offset: '0', key_field: 'txn_id', note: expect.stringContaining('has no Kafka key')}),
    ])
    // no value of the records in what is said (a key may be a card number)
    for (const l of said) for (const v of ['ACC-7', 'T3', '4111']) expect(l).not.toContain(v)
    const rows = await f.pool.query(`SELECT txn_id FROM "${f.schema}".txn_clean ORDER BY txn_id`)
    expect(rows.rows.map((x: {txn_id: string}) => x.txn_id)).toEqual(['T1', 'T2', 'T3', 'T4', 'T5'])
  })
})
