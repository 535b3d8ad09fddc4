/**
 * The pure parts of `dlq republish`: which copy of a dead letter stands for it (DeadLetterCopies:
 * the one with its value after copies without it), and the size the broker counts against
 * max.message.bytes for the record the relay sends (relayRecordBytes), checked against kafkajs'
 * own record batch encoder.
 */
import {createRequire} from 'node:module'
import {describe, expect, it} from 'vitest'
import {deadLetterView} from '../../src/dlq/headers.js'
import {DlqAggregator} from '../../src/dlq/inspect.js'
import type {DlqRecord} from '../../src/dlq/reader.js'
import {DeadLetterCopies, relayRecordBytes} from '../../src/dlq/republish.js'
import {toKafkaHeaders, VALUE_OMITTED_HEADER, type StoredHeaders} from '../../src/runtime/outbox.js'

const b = (s: string) => Buffer.from(s, 'utf8')

/** A copy of the dead letter of source offset `offset` on the DLQ at `at`, with its value or without (`omitted`). */
function copy(offset: number, at: number, omitted: boolean): DlqRecord {
  const headers: Record<string, Buffer> = {
    'cutover.error.code': b('RECORD_TOO_LARGE'),
    'cutover.source.topic': b('txn.raw'),
    'cutover.source.partition': b('0'),
    'cutover.source.offset': b(String(offset)),
    'cutover.pipeline': b('card-transactions'),
    'cutover.failed.at': b('2026-11-20T09:15:00.000Z'),
    ...(omitted ? {[VALUE_OMITTED_HEADER]: b('5000 bytes: more than txn.dlq accepts (max.message.bytes)')} : {}),
  }
  return {partition: 0, offset: String(at), timestamp: '1795414500000', key: b(`k${offset}`), value: omitted ? null : b('{"id":"x"}'), headers, view: deadLetterView(headers, '1795414500000')}
}

describe('DeadLetterCopies', () => {
  it('takes a copy with the value after copies without it for the dead letter; every other copy is a repeat', () => {
    const c = new DeadLetterCopies()
    const seq = [copy(1, 0, true), copy(1, 1, true), copy(2, 2, false), copy(1, 3, false), copy(1, 4, false), copy(1, 5, true), copy(2, 6, false)]
    expect(seq.map((r) => c.classify(r))).toEqual(['first', 'repeat', 'first', 'value', 'repeat', 'repeat', 'repeat'])
  })

  it('a copy with the value first: one without it afterwards is a repeat', () => {
    const c = new DeadLetterCopies()
    expect([copy(1, 0, false), copy(1, 1, true), copy(1, 2, false)].map((r) => c.classify(r))).toEqual(['first', 'repeat', 'repeat'])
  })

  it('inspect: counted once, the copy with the value sampled in its place', () => {
    const agg = new DlqAggregator({filter: {}, limit: 3, sensitive: []})
    for (const r of [copy(1, 0, true), copy(2, 1, true), copy(1, 2, false)]) agg.add(r)
    const r = agg.result({topic: 'txn.dlq', since: null, until: null, filter: {codes: [], key: null}, partitions: []})
    expect(r).toMatchObject({scanned: 3, total: 2, repeats: 1})
    expect(r.samples.RECORD_TOO_LARGE!.map((s) => [s.source.offset, s.dlq.offset, s.value_omitted !== undefined])).toEqual([
      ['1', '2', false],
      ['2', '1', true],
    ])
  })
})

describe('relayRecordBytes', () => {
  // kafkajs' record batch v2 encoder, as the relay's producer sends a record alone: firstOffset, length, then what the broker counts
  const require = createRequire(import.meta.url)
  const {RecordBatch} = require('kafkajs/src/protocol/recordBatch/v0/index.js') as {RecordBatch: (o: {records: unknown[]}) => Promise<{buffer: Buffer}>}
  const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (o: {key: Buffer | null; value: Buffer | null; headers: unknown}) => unknown
  const encoded = async (key: Buffer | null, value: Buffer | null, stored: StoredHeaders) => {
    const sent = toKafkaHeaders(stored.filter(([name, , b64name]) => b64name === 1 || name !== VALUE_OMITTED_HEADER))
    const batch = await RecordBatch({records: [Record({key, value, headers: sent})]})
    // Kafka's DefaultRecordBatch.sizeInBytes: LOG_OVERHEAD (firstOffset, length) + length: the whole batch
    return batch.buffer.length
  }
  const h = (name: string, value: string): [string, string] => [name, b(value).toString('base64')]

  it.each([
    ['no key, no headers, empty value', null, 0, [] as StoredHeaders],
    ['a key, a 63-byte value', 'k1', 63, [h('x', '1')]],
    ['a 64-byte value (two-byte length)', 'k1', 64, [h('x', '1')]],
    ['a 5,000-byte value, the omitted header left out', 'B1', 5000, [h('cutover.error.code', 'RECORD_TOO_LARGE'), h('x-trace', 't'), h(VALUE_OMITTED_HEADER, '5000 bytes: more')]],
    ['a repeated name, a name stored in base64, a 3 MB value', 'k', 3 * 1024 * 1024, [h('a', ''), h('a', 'two'), [b('n\u0000ul').toString('base64'), b('v').toString('base64'), 1]] as StoredHeaders],
  ])('%s', async (_what, key, valueBytes, stored) => {
    const k = key === null ? null : b(key)
    const v = Buffer.alloc(valueBytes, 0x78)
    expect(relayRecordBytes(k === null ? null : k.length, v.length, stored)).toBe(await encoded(k, v, stored))
  })
})
