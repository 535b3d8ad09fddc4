/**
 * The pure parts of `cutover dlq`: header mapping (cutover, Kafka Connect, Spring), replay and
 * parking headers, value masking, the inspect aggregator, replay ids and time flags.
 */
import {describe, expect, it} from 'vitest'
import {codeOfException, deadLetterView, isDeadLetterHeader, parkedHeaders, replayHeaders} from '../../src/dlq/headers.js'
import {DlqAggregator} from '../../src/dlq/inspect.js'
import {keyIsSensitive, showDeadLetterValue} from '../../src/dlq/mask.js'
import {parseTimeFlag, type DlqRecord} from '../../src/dlq/reader.js'
import {replayIdOf} from '../../src/dlq/replay.js'
import {readFileSync} from 'node:fs'
import {parseSpec} from '../../src/config/spec.js'
import {ReplayPredictor} from '../../src/dlq/predict.js'
import {silentLogger} from '../../src/log.js'
import {DLQ_HEADERS} from '../../src/runtime/outbox.js'

const b = (s: string) => Buffer.from(s, 'utf8')

function cutoverHeaders(over: Record<string, string> = {}): Record<string, Buffer> {
  const h: Record<string, string> = {
    'x-trace': 'trace-1',
    'cutover.error.code': 'UNPARSEABLE_DATE',
    'cutover.error.message': 'field event_time: "31.02.2026 10:00:00" matches none of the formats',
    'cutover.error.stage': 'normalize',
    'cutover.source.topic': 'txn.raw',
    'cutover.source.partition': '2',
    'cutover.source.offset': '4711',
    'cutover.source.timestamp': '1795414500000',
    'cutover.pipeline': 'card-transactions',
    'cutover.pipeline.version': 'ab'.repeat(32),
    'cutover.attempts': '1',
    'cutover.replay.count': '0',
    'cutover.failed.at': '2026-11-20T09:15:00.000Z',
    ...over,
  }
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, b(v)]))
}

function record(headers: Record<string, Buffer>, over: Partial<DlqRecord> = {}): DlqRecord {
  return {partition: 0, offset: '0', timestamp: '1795414500000', key: b('T1'), value: b('{"id":"T1","acct":"A1","pan":"4111 1111 1111 1111"}'), headers, view: deadLetterView(headers, '1795414500000'), ...over}
}

describe('dead-letter headers', () => {
  it('reads every cutover header of DESIGN.md', () => {
    const v = deadLetterView(cutoverHeaders())
    expect(v).toEqual({
      origin: 'cutover',
      code: 'UNPARSEABLE_DATE',
      message: 'field event_time: "31.02.2026 10:00:00" matches none of the formats',
      stage: 'normalize',
      source: {topic: 'txn.raw', partition: 2, offset: '4711', timestamp: '1795414500000'},
      pipeline: 'card-transactions',
      pipelineVersion: 'ab'.repeat(32),
      attempts: 1,
      replayCount: 0,
      failedAt: '2026-11-20T09:15:00.000Z',
      exceptionClass: null,
      valueOmitted: null,
    })
    // every header the runtime writes is dead-letter bookkeeping, stripped on replay
    for (const h of DLQ_HEADERS) expect(isDeadLetterHeader(h)).toBe(true)
  })

  it('maps Kafka Connect headers (text numbers) onto the same view', () => {
    const v = deadLetterView(
      {
        '__connect.errors.topic': b('txn.raw'),
        '__connect.errors.partition': b('1'),
        '__connect.errors.offset': b('99'),
        '__connect.errors.connector.name': b('jdbc-sink'),
        '__connect.errors.task.id': b('3'),
        '__connect.errors.stage': b('VALUE_CONVERTER'),
        '__connect.errors.exception.class.name': b('org.apache.kafka.connect.errors.DataException'),
        '__connect.errors.exception.message': b('Converting byte[] to Kafka Connect data failed due to serialization error'),
        '__connect.errors.exception.stacktrace': b('...'),
      },
      String(Date.UTC(2026, 10, 20, 9)),
    )
    expect(v).toMatchObject({
      origin: 'connect',
      code: 'DECODE_ERROR',
      stage: 'VALUE_CONVERTER',
      source: {topic: 'txn.raw', partition: 1, offset: '99', timestamp: null},
      pipeline: 'jdbc-sink',
      pipelineVersion: null,
      failedAt: '2026-11-20T09:00:00.000Z',
      exceptionClass: 'org.apache.kafka.connect.errors.DataException',
    })
  })

  it('maps Spring headers, binary (4- and 8-byte big-endian) and text', () => {
    const partition = Buffer.alloc(4)
    partition.writeInt32BE(5)
    const offset = Buffer.alloc(8)
    offset.writeBigInt64BE(123456789012n)
    const ts = Buffer.alloc(8)
    ts.writeBigInt64BE(1795414500000n)
    const v = deadLetterView({
      'kafka_dlt-original-topic': b('payments'),
      'kafka_dlt-original-partition': partition,
      'kafka_dlt-original-offset': offset,
      'kafka_dlt-original-timestamp': ts,
      'kafka_dlt-original-consumer-group': b('payments-app'),
      'kafka_dlt-exception-fqcn': b('org.springframework.kafka.listener.ListenerExecutionFailedException'),
      'kafka_dlt-exception-cause-fqcn': b('org.springframework.kafka.support.serializer.DeserializationException'),
      'kafka_dlt-exception-message': b('failed to deserialize'),
    })
    expect(v).toMatchObject({
      origin: 'spring',
      code: 'DECODE_ERROR',
      source: {topic: 'payments', partition: 5, offset: '123456789012', timestamp: '1795414500000'},
      pipeline: 'payments-app',
      exceptionClass: 'org.springframework.kafka.support.serializer.DeserializationException',
    })
    const old = deadLetterView({'kafka_dlt-original-topic': 'payments', 'kafka_dlt-original-partition': '7', 'kafka_dlt-original-offset': '42', 'kafka_dlt-exception-fqcn': 'java.lang.IllegalStateException'})
    expect(old).toMatchObject({code: 'IllegalStateException', source: {partition: 7, offset: '42'}})
  })

  it('names unknown exceptions by their simple class name', () => {
    expect(codeOfException('java.sql.SQLException', 'x')).toBe('SQLException')
    expect(codeOfException('org.apache.kafka.connect.errors.DataException', 'Struct schemas do not match')).toBe('DataException')
    expect(codeOfException(null, null)).toBe('UNKNOWN')
    expect(deadLetterView({other: b('x')}).origin).toBe('unknown')
  })

  it('a replayed record keeps its original headers byte for byte, plus the replay count and id', () => {
    const raw = Buffer.from([0xff, 0x00, 0xc3])
    const h = {...cutoverHeaders({'cutover.replay.count': '1', 'cutover.replay.id': 'r-old'}), 'x-bin': raw, '__connect.errors.topic': b('t')}
    const out = replayHeaders(h, 'r-new', 2)
    expect(Object.keys(out)).toEqual(['x-trace', 'x-bin', 'cutover.replay.count', 'cutover.replay.id'])
    expect(out['x-bin']).toBe(raw)
    expect(String(out['cutover.replay.count'])).toBe('2')
    expect(String(out['cutover.replay.id'])).toBe('r-new')
    const parked = parkedHeaders(h, 'r-new')
    expect(Object.keys(parked)).toContain('cutover.error.code')
    expect(String(parked['cutover.parked.by'])).toBe('r-new')
  })
})

describe('values in samples', () => {
  it('masks the sensitive fields of the spec, dotted paths included', () => {
    const v = showDeadLetterValue(b('{"id":"T1","pan":"4111 1111 1111 1111","card":{"cvv":"123"},"amt":"1.00"}'), [['pan'], ['card', 'cvv']])
    expect(v).toEqual({value: {id: 'T1', pan: '4111********1111', card: {cvv: '***'}, amt: '1.00'}, masking: 'sensitive-fields'})
  })

  it('masks every value without a spec, and shows non-JSON only when nothing is sensitive', () => {
    expect(showDeadLetterValue(b('{"id":"T1","n":[1,"x"]}'), undefined).value).toEqual({id: '***', n: ['***', '***']})
    expect(showDeadLetterValue(b('id=T1;amt=5'), undefined).value).toBeNull()
    expect(showDeadLetterValue(b('id=T1;amt=5'), [['pan']]).value).toBeNull()
    expect(showDeadLetterValue(b('id=T1;amt=5'), []).value).toBe('id=T1;amt=5')
    expect(showDeadLetterValue(null, []).value).toBeNull()
  })
})

describe('the inspect aggregator', () => {
  it('counts by code, source, hour and version, drops relay repeats, keeps N samples per code', () => {
    const agg = new DlqAggregator({filter: {}, limit: 1, sensitive: [['pan']]})
    agg.add(record(cutoverHeaders()))
    agg.add(record(cutoverHeaders())) // the relay published it twice
    agg.add(record(cutoverHeaders({'cutover.source.offset': '4712', 'cutover.failed.at': '2026-11-20T10:01:00.000Z'}), {offset: '2'}))
    agg.add(record(cutoverHeaders({'cutover.error.code': 'PATTERN_MISMATCH', 'cutover.source.offset': '4713', 'cutover.source.partition': '0'}), {offset: '3'}))
    const r = agg.result({topic: 'txn.dlq', since: null, until: null, filter: {codes: [], key: null}, partitions: []})
    expect(r.scanned).toBe(4)
    expect(r.repeats).toBe(1)
    expect(r.total).toBe(3)
    expect(r.by_code).toEqual({UNPARSEABLE_DATE: 2, PATTERN_MISMATCH: 1})
    expect(r.by_source).toEqual([
      {topic: 'txn.raw', partition: 0, count: 1},
      {topic: 'txn.raw', partition: 2, count: 2},
    ])
    expect(r.by_hour).toEqual([
      {hour: '2026-11-20T09:00:00.000Z', count: 2},
      {hour: '2026-11-20T10:00:00.000Z', count: 1},
    ])
    expect(r.first).toMatchObject({at: '2026-11-20T09:15:00.000Z'})
    expect(r.last).toMatchObject({at: '2026-11-20T10:01:00.000Z', code: 'UNPARSEABLE_DATE'})
    expect(r.samples.UNPARSEABLE_DATE).toHaveLength(1)
    expect(r.samples.UNPARSEABLE_DATE![0]!.value).toEqual({id: 'T1', acct: 'A1', pan: '4111********1111'})
    expect(r.samples.UNPARSEABLE_DATE![0]!.key).toBe('T1') // the spec's key is not sensitive: shown
    expect(r.samples.UNPARSEABLE_DATE![0]!.source).toEqual({topic: 'txn.raw', partition: 2, offset: '4711', timestamp: '1795414500000'})
  })

  it('masks the key without a spec, and when the spec keys by a sensitive field', () => {
    const card = b('4111111111111111')
    const cases: [{sensitive: string[][] | undefined; maskKeys?: boolean}, string][] = [
      [{sensitive: undefined}, '4111********1111'],
      [{sensitive: [['pan']], maskKeys: true}, '4111********1111'],
      [{sensitive: [['pan']], maskKeys: false}, '4111111111111111'],
    ]
    for (const [o, shown] of cases) {
      const agg = new DlqAggregator({filter: {}, limit: 1, ...o})
      agg.add(record(cutoverHeaders(), {key: card}))
      const r = agg.result({topic: 'txn.dlq', since: null, until: null, filter: {codes: [], key: null}, partitions: []})
      expect(r.samples.UNPARSEABLE_DATE![0]!.key, JSON.stringify(o)).toBe(shown)
    }
    expect(keyIsSensitive(undefined)).toBe(true)
  })

  it('filters by code and key', () => {
    const agg = new DlqAggregator({filter: {codes: ['PATTERN_MISMATCH'], key: 'T2'}, limit: 3, sensitive: undefined})
    agg.add(record(cutoverHeaders({'cutover.error.code': 'PATTERN_MISMATCH'})))
    agg.add(record(cutoverHeaders({'cutover.error.code': 'PATTERN_MISMATCH', 'cutover.source.offset': '1'}), {key: b('T2')}))
    agg.add(record(cutoverHeaders({'cutover.source.offset': '2'}), {key: b('T2')}))
    expect(agg.total).toBe(1)
  })
})

describe('replay ids and time flags', () => {
  it('derives the same id from the same selection, another from another', () => {
    const sel = {codes: ['A'], since: null, until: null, key: null, to: 'source', max_replays: 3}
    expect(replayIdOf('t.dlq', 'p', sel)).toBe(replayIdOf('t.dlq', 'p', {...sel}))
    expect(replayIdOf('t.dlq', 'p', sel)).not.toBe(replayIdOf('t.dlq', 'p', {...sel, max_replays: 2}))
    expect(replayIdOf('t.dlq', 'p', sel, 'fix-42')).toBe('fix-42')
    expect(() => replayIdOf('t.dlq', 'p', sel, 'no spaces')).toThrow(/replay-id/)
  })

  it('reads ISO times and durations back from now', () => {
    const now = Date.UTC(2026, 10, 20, 12)
    expect(parseTimeFlag('2h', '--since', now)).toBe(now - 7_200_000)
    expect(parseTimeFlag('2026-11-20T00:00:00Z', '--since', now)).toBe(Date.UTC(2026, 10, 20))
    expect(parseTimeFlag(undefined, '--since', now)).toBeUndefined()
    expect(() => parseTimeFlag('yesterday', '--since', now)).toThrow(/--since/)
  })
})

describe('the dry-run predictor', () => {
  it("runs the current spec's decode, normalize and validate stages, then dedupe within the selection", async () => {
    const spec = parseSpec(readFileSync('fixtures/specs/stream-card-transactions.yaml', 'utf8'), 'stream-card-transactions.yaml')
    const predictor = new ReplayPredictor(spec, undefined, 3, silentLogger)
    const txn = (id: string, ts: string, amt = '10.00') => b(JSON.stringify({id, acct: 'A1', amt, ts, currency: 'RUB', merchant: 'M'}))
    const dead = (value: Buffer | null, over: Record<string, string> = {}, offset = '1') =>
      record(cutoverHeaders({'cutover.source.offset': offset, ...over}), {value, offset})
    await predictor.add([
      dead(txn('T1', '20.11.2026 09:15:00'), {}, '1'), // passes now (the spec has the dotted format)
      dead(txn('T1', '20.11.2026 09:15:00'), {}, '2'), // the same again: a duplicate
      dead(txn('T1', '20.11.2026 09:15:00', '11.00'), {}, '3'), // same key, other payload: DUPLICATE_CONFLICT
      dead(txn('T2', '31.02.2026 10:00:00'), {}, '4'), // still UNPARSEABLE_DATE
      dead(b('id=T3;amt=1'), {}, '5'), // DECODE_ERROR
      dead(txn('T4', '2026-11-20T09:15:00+03:00'), {'cutover.replay.count': '3'}, '6'), // past --max-replays 3
      dead(null, {'cutover.value.omitted': '2000000 bytes'}, '7'), // no value to replay
      dead(txn('T5', '2026-11-20T09:15:00+03:00'), {'cutover.error.code': 'PATTERN_MISMATCH'}, '8'),
    ])
    expect(predictor.result()).toEqual({
      UNPARSEABLE_DATE: {selected: 7, would_pass: 1, duplicates: 1, still_failing: {DUPLICATE_CONFLICT: 1, UNPARSEABLE_DATE: 1, DECODE_ERROR: 1}, would_park: 2},
      PATTERN_MISMATCH: {selected: 1, would_pass: 1, duplicates: 0, still_failing: {}, would_park: 0},
    })
  })
})
