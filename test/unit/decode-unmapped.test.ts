/**
 * The stream's decode stage on a byte with no character in the source encoding
 * (windows-1251 0x98): a DECODE_ERROR dead letter naming the field, never a silent U+FFFD.
 */
import type {KafkaMessage} from 'kafkajs'
import {describe, expect, it} from 'vitest'
import {parseSpec} from '../../src/config/spec.js'
import {silentLogger} from '../../src/log.js'
import {encodeString} from '../../src/normalize/encoding.js'
import {decodeStage} from '../../src/runtime/stages/decode.js'
import type {PipelineContext, WorkItem} from '../../src/runtime/types.js'

const spec = (source: string) => `version: 1
name: unmapped
source: ${source}
fields:
  id: {type: string, required: true}
  name: {type: string}
  amt: {type: decimal, scale: 2}
key: id
sinks: [{table: t}]
`

async function decode(source: string, values: Buffer[]): Promise<WorkItem[]> {
  const ctx: PipelineContext = {loaded: parseSpec(spec(source), 'unmapped.yaml'), pipeline: 'unmapped', schema: 'public', maxRecordBytes: 1 << 20, dedupeRetentionMs: 1, logger: silentLogger}
  const items = values.map((value, i): WorkItem => ({
    message: {key: null, value, timestamp: '1795300000000', attributes: 0, offset: String(i), headers: {}} as KafkaMessage,
    topic: 't',
    partition: 0,
    offset: BigInt(i),
    status: 'ok',
  }))
  await decodeStage(ctx).run(items, null)
  return items
}

const w1251 = (parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? encodeString(p, 'windows-1251') : Buffer.from(p))))

describe('decode stage: a byte with no character in source.encoding', () => {
  it('json: DECODE_ERROR naming the field that holds the byte', async () => {
    const items = await decode('{topic: t, format: json, encoding: windows-1251}', [
      w1251(['{"id":"T1","name":"', [0xc0, 0x98, 0xc1], '"}']),
      w1251(['{"id":"T2","name":"Ёж€"}']),
      w1251(['{"id":"T3","name":"', [0x98], '","amt":"\\ufffd"}']), // two fields hold U+FFFD: no guess
      w1251(['{"id":"T4","name":', [0x98], '}']), // not JSON even so
    ])
    expect(items[0]).toMatchObject({
      status: 'dead',
      dead: {code: 'DECODE_ERROR', stage: 'decode', field: 'name', message: 'field name holds bytes that are not valid windows-1251: no character in windows-1251 for byte 0x98 at offset 20'},
    })
    expect(items[1]).toMatchObject({status: 'ok', raw: {fields: {id: 'T2', name: 'Ёж€'}}})
    expect(items[2]).toMatchObject({status: 'dead', dead: {code: 'DECODE_ERROR', field: null, message: expect.stringMatching(/^the value is not valid windows-1251: .*byte 0x98/)}})
    expect(items[3]).toMatchObject({status: 'dead', dead: {code: 'DECODE_ERROR', field: null}})
  })

  it('json in utf-8: U+FFFD written as UTF-8 is a character, not an error', async () => {
    const items = await decode('{topic: t, format: json}', [Buffer.from('{"id":"T1","name":"a\uFFFDb"}', 'utf8')])
    expect(items[0]).toMatchObject({status: 'ok', raw: {fields: {name: 'a\uFFFDb'}}})
  })

  it('csv: DECODE_ERROR naming the column', async () => {
    const items = await decode('{topic: t, format: csv, encoding: windows-1251, delimiter: ";", columns: [id, name, amt]}', [w1251(['T1;', [0xc0, 0x98], ';1,00'])])
    expect(items[0]).toMatchObject({status: 'dead', dead: {code: 'DECODE_ERROR', stage: 'decode', field: 'name'}})
  })
})

describe('decode stage: JSON that is JSON, said so', () => {
  it('a value nested deeper than the stack is read (was "not JSON"); a member name given twice is refused, saying so', async () => {
    const deep = `{"id":"D1","amt":"1.00","deep":${'['.repeat(100_000)}1${']'.repeat(100_000)}}`
    const repeated = '{"id":"D2","amt":"1.00","amt":"2.00","x":12345678901234567}'
    // without a long number JSON.parse kept the last amount, silently: the same money accepted or refused by an unrelated field
    const repeatedPlain = '{"id":"D3","amt":"1.00","amt":"2.00"}'
    // in a nested object, which a field reads by a dotted path (from: card.amt): last-wins there too until now
    const repeatedNested = '{"id":"D4","card":{"amt":"1.00","amt":"2.00"}}'
    const items = await decode('{topic: t}', [Buffer.from(deep), Buffer.from(repeated), Buffer.from(repeatedPlain), Buffer.from(repeatedNested)])
    expect(items[0]!.status, items[0]!.dead?.message).toBe('ok')
    for (const item of items.slice(1, 3)) {
      expect(item.dead).toMatchObject({code: 'DECODE_ERROR', message: 'the value is JSON, but the member name "amt" is given twice: which one is meant is unknown'})
    }
    expect(items[3]!.dead).toMatchObject({code: 'DECODE_ERROR', message: 'the value is JSON, but the member name "amt" is given twice (in card): which one is meant is unknown'})
  })
})
