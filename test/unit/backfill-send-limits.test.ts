/**
 * How the backfill's sender cuts a batch to the topics' max.message.bytes (producer.ts
 * OrderedSender with limits): each send at most sendBudget before compression, records in their
 * order; a record over the budget alone when it fits compressed, else its dead letter (tooLarge);
 * a dead letter the DLQ cannot take goes without its value. Against a producer that records what
 * it is given (the real broker: test/integration/backfill-max-message-bytes.test.ts).
 */
import {randomBytes} from 'node:crypto'
import type {Producer} from 'kafkajs'
import {describe, expect, it} from 'vitest'
import {messageBytes, OrderedSender, sendBudget, type OutBatch, type OutMessage} from '../../src/backfill/producer.js'

type Send = {topic: string; messages: OutMessage[]}[]

function recorder(): {producer: Producer; sends: Send[]} {
  const sends: Send[] = []
  const producer = {sendBatch: async ({topicMessages}: {topicMessages: Send}) => void sends.push(topicMessages)} as unknown as Producer
  return {producer, sends}
}

const record = (i: number, bytes: number, fill?: string): OutMessage => ({key: `K${i}`, value: fill ? fill.repeat(bytes) : randomBytes(bytes), headers: {'cutover.backfill.position': `f.csv:${i + 1}`}})

describe('backfill: sends cut to max.message.bytes', () => {
  it('cuts a batch of wide records into sends under the budget, in order; one send when it fits', async () => {
    const {producer, sends} = recorder()
    const acked: number[] = []
    const tooLarge = () => {
      throw new Error('no record is too large here')
    }
    const sender = new OrderedSender<number>(producer, 'txn', 'txn.dlq', (m) => acked.push(m), 1, {target: 100_000, dlq: 100_000, tooLarge})
    const records = Array.from({length: 300}, (_, i) => record(i, 1000))
    await sender.submit({records, dead: [record(999, 500)], meta: 1})
    await sender.submit({records: records.slice(0, 10), dead: [], meta: 2})
    await sender.flush()
    expect(acked).toEqual([1, 2])
    const budget = sendBudget(100_000)
    expect(budget).toBeLessThan(100_000 - 1024)
    const first = sends.slice(0, -1)
    expect(first.length).toBeGreaterThan(3)
    for (const s of first) expect(s.flatMap((t) => t.messages).reduce((a, m) => a + messageBytes(m), 0)).toBeLessThanOrEqual(budget)
    expect(first.flatMap((s) => s.filter((t) => t.topic === 'txn').flatMap((t) => t.messages))).toEqual(records)
    expect(first.flatMap((s) => s.filter((t) => t.topic === 'txn.dlq').flatMap((t) => t.messages.map((m) => m.key)))).toEqual(['K999'])
    expect(sends.at(-1)).toEqual([{topic: 'txn', messages: records.slice(0, 10)}])
  })

  it('a record over the budget: alone when it fits compressed, else its dead letter; a dead letter alone too, or without its value', async () => {
    const {producer, sends} = recorder()
    const made: string[] = []
    const tooLarge = (b: OutBatch<{rejected: number}>, m: OutMessage, index: number, bytes: number, compressed: number): OutMessage => {
      b.meta.rejected++
      made.push(`${String(m.key)} #${index} ${bytes > 50_000} ${compressed > 50_000}`)
      return {key: m.key, value: m.value, headers: {...m.headers, 'cutover.error.code': 'RECORD_TOO_LARGE'}}
    }
    const sender = new OrderedSender<{rejected: number}>(producer, 'txn', 'txn.dlq', () => {}, 1, {target: 50_000, dlq: 60_000, tooLarge})
    const meta = {rejected: 0}
    const batch = {records: [record(1, 100), record(2, 80_000, 'x'), record(3, 100), record(4, 70_000), record(5, 100)], dead: [record(6, 58_000)], meta}
    await sender.submit(batch)
    await sender.flush()
    // the compressible 80 KB record alone; the incompressible 70 KB one dead-lettered, its value dropped (over the DLQ's 60,000 too)
    expect(made).toEqual(['K4 #3 true true'])
    expect(meta.rejected).toBe(1)
    const shape = sends.map((s) => s.map((t) => `${t.topic}:${t.messages.map((m) => `${String(m.key)}${m.value === null ? '(no value)' : ''}`).join(',')}`).join(' '))
    // the 58 KB dead letter fits the DLQ's 60,000 compressed: alone, with its value
    expect(shape).toEqual(['txn:K1', 'txn:K2', 'txn:K3,K5 txn.dlq:K4(no value)', 'txn.dlq:K6'])
    const omitted = sends[2]![1]!.messages[0]!
    expect(omitted.headers['cutover.value.omitted']).toBe('70000 bytes: more than txn.dlq accepts (max.message.bytes 60000)')
    expect(omitted.headers['cutover.error.code']).toBe('RECORD_TOO_LARGE')
  })
})
