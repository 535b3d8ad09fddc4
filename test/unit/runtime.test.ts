/**
 * Pure parts of the stream runtime (no services): backoff, the rate limiter, dead-letter
 * headers (original bytes kept, DESIGN.md headers added), the payload hash of dedupe,
 * business_date, and the decode/validate stages on poison records.
 */
import {readFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import fc from 'fast-check'
import iconv from 'iconv-lite'
import type {KafkaMessage} from 'kafkajs'
import {Histogram, Registry} from 'prom-client'
import {describe, expect, it, vi} from 'vitest'
import {parseSpec} from '../../src/config/spec.js'
import {silentLogger} from '../../src/log.js'
import {countItems, InsertFirst, isRowLevelError} from '../../src/runtime/batch.js'
import {DLQ_HEADERS, deadLetterHeaders, toKafkaHeaders} from '../../src/runtime/outbox.js'
import {RecordHistogram} from '../../src/runtime/metrics.js'
import {backoffMs, TokenBucket} from '../../src/runtime/ratelimit.js'
import {partitionsNotReadElsewhere, transactionLanes} from '../../src/runtime/run.js'
import {businessDateOf} from '../../src/runtime/sinks/aggregate.js'
import {lookupColumnFits, typeText} from '../../src/runtime/sinks/lookup-columns.js'
import {pgArray} from '../../src/runtime/sinks/pgarray.js'
import {overflowOf, suggestedType, tableRef, typeMismatch, type ColumnInfo} from '../../src/runtime/sinks/table.js'
import {canonicalJson, payloadHash} from '../../src/runtime/stages/dedupe.js'
import {buildStages, STAGES} from '../../src/runtime/stages/index.js'
import {inDedupeOrder, type PipelineContext, type WorkItem} from '../../src/runtime/types.js'

/** node-postgres' own serialization of a parameter (a JS array -> an array literal) */
const pgPrepareValue = (createRequire(import.meta.url)('pg/lib/utils.js') as {prepareValue(v: unknown): string}).prepareValue

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const iconvEncode = (s: string) => iconv.encode(s, 'win1251')

const SPEC = `version: 1
name: unit
source: {topic: unit.raw}
fields:
  id: {type: string, required: true}
  amt: {type: decimal, scale: 2, required: true}
  card: {type: string, sensitive: true, pattern: "^[0-9]{16}$"}
key: id
sinks: [{table: t}]
`

function context(maxRecordBytes = 100): PipelineContext {
  return {loaded: parseSpec(SPEC, 'unit.yaml'), pipeline: 'unit', schema: 'public', maxRecordBytes, dedupeRetentionMs: 1, logger: silentLogger}
}

function item(value: Buffer | null, offset = 0, headers: KafkaMessage['headers'] = {}): WorkItem {
  const message = {key: Buffer.from('k'), value, timestamp: '1795300000000', attributes: 0, offset: String(offset), headers} as KafkaMessage
  return {message, topic: 'unit.raw', partition: 3, offset: BigInt(offset), status: 'ok'}
}

async function prepare(items: WorkItem[], maxRecordBytes?: number): Promise<WorkItem[]> {
  for (const s of buildStages(context(maxRecordBytes)).prepare) await s.run(items, null)
  return items
}

describe('stream runtime: stages', () => {
  it('registers the stages by name, in pipeline order', () => {
    expect([...STAGES.keys()]).toEqual(['decode', 'normalize', 'validate', 'enrich', 'dedupe', 'window', 'rules'])
    const {prepare: p, transact} = buildStages(context())
    expect(p.map((s) => s.name)).toEqual(['decode', 'normalize', 'validate'])
    expect(transact).toEqual([]) // no dedupe in this spec
  })

  it('poison records become dead letters with their code; good ones pass', async () => {
    const items = await prepare([
      item(Buffer.from('{"id":"a","amt":"1,50"}')),
      item(null),
      item(Buffer.from('x'.repeat(101))),
      item(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d])),
      item(Buffer.from('id=a;amt=1')),
      item(Buffer.from('[1,2]')),
      item(Buffer.from('{"id":"b","amt":"abc"}')),
      item(Buffer.from('{"id":"c","amt":"1.00","card":"4111-bad-1111"}')),
      item(Buffer.from('{"id":"d\\u0000","amt":"1.00"}')),
    ])
    expect(items.map((i) => (i.status === 'ok' ? 'ok' : i.dead!.code))).toEqual([
      'ok',
      'DECODE_ERROR',
      'RECORD_TOO_LARGE',
      'DECODE_ERROR',
      'DECODE_ERROR',
      'SCHEMA_VIOLATION',
      'UNPARSEABLE_AMOUNT',
      'PATTERN_MISMATCH',
      'SCHEMA_VIOLATION',
    ])
    expect(items[8]!.dead).toMatchObject({stage: 'validate', field: 'id'})
    expect(items[0]!.record).toMatchObject({id: 'a', amt: '1.50'})
    expect(items[2]!.dead!.message).toMatch(/101 bytes, more than the limit of 100 bytes/)
    expect(items[3]!.dead!.message).toMatch(/not valid utf-8/)
    // this spec has a sensitive field (card): text that is not JSON is not quoted (stream-sensitive-rejections shows it quoted otherwise)
    expect(items[4]!.dead!.message).toBe('the value is not JSON (10 bytes, not quoted: the spec has sensitive fields)')
    expect(items[6]!.dead).toMatchObject({stage: 'normalize', field: 'amt'})
    expect(items[7]!.dead!.message).not.toContain('4111-bad-1111') // sensitive: masked
  })

  it('dedupe hashes the payloads of the records still ok before the transaction (precompute)', async () => {
    const ctx = context()
    ctx.loaded = parseSpec(`${SPEC}dedupe: {by: id}\n`, 'unit.yaml')
    const {prepare: p, transact} = buildStages(ctx)
    const items = [item(Buffer.from('{"id":"a","amt":"1,50"}')), item(Buffer.from('not json')), item(Buffer.from('{"id":"b","amt":"2"}'))]
    for (const s of p) await s.run(items, null)
    expect(transact.map((s) => s.name)).toEqual(['dedupe'])
    transact[0]!.precompute!(items)
    expect(items[0]!.dedupeHash).toBe(payloadHash(items[0]!.record!))
    expect(items[2]!.dedupeHash).toBe(payloadHash({id: 'b', amt: '2.00', card: null}))
    expect(items[1]!.dedupeHash).toBeUndefined()
  })
})

describe('stream runtime: legacy formats, one record per message', () => {
  const run = async (spec: string, file: string, values: Buffer[]) => {
    const ctx: PipelineContext = {...context(), loaded: parseSpec(spec, file)}
    const items = values.map((v, i) => item(v, i))
    for (const s of buildStages(ctx).prepare) await s.run(items, null)
    return items
  }

  it('csv: one line per message in windows-1251 with ; and decimal commas', async () => {
    const spec = `version: 1
name: csvmsg
source: {topic: t, format: csv, encoding: windows-1251, delimiter: ";", columns: [id, amt, merchant]}
fields:
  id: {type: string, required: true}
  amt: {type: decimal, scale: 2, required: true}
  merchant: {type: string}
key: id
`
    const items = await run(spec, 'csvmsg.yaml', [
      iconvEncode('T1;1 234,56;ПЯТЁРОЧКА'),
      iconvEncode('T2;1,00'),
      iconvEncode('T3;"1;5";x'),
    ])
    expect(items.map((i) => (i.status === 'ok' ? i.record : i.dead!.code))).toEqual([{id: 'T1', amt: '1234.56', merchant: 'ПЯТЁРОЧКА'}, 'SCHEMA_VIOLATION', 'UNPARSEABLE_AMOUNT'])
  })

  it('fixed: one copybook record per message (EBCDIC, COMP-3), the copybook relative to the spec', async () => {
    const golden = readFileSync(join(ROOT, 'fixtures/golden/fixed-ebcdic-cp037/spec.yaml'), 'utf8').replace(
      'source: { topic: txn.raw, group: cutover-golden, format: json, encoding: utf-8 }',
      'source: { topic: txn.raw, format: fixed, encoding: cp037, copybook: ../../legacy/txn.cpy }',
    )
    const dat = readFileSync(join(ROOT, 'fixtures/legacy/TXN.DAT'))
    const items = await run(golden, join(ROOT, 'fixtures/golden/fixed-ebcdic-cp037/spec.yaml'), [dat.subarray(0, 100), dat.subarray(0, 50)])
    const expected = JSON.parse(readFileSync(join(ROOT, 'fixtures/golden/fixed-ebcdic-cp037/expected.ndjson'), 'utf8').split('\n')[0]!)
    expect(items[0]!.record).toEqual(expected)
    expect(items[1]!.dead).toMatchObject({code: 'SCHEMA_VIOLATION', stage: 'decode'})
  })
})

describe('stream runtime: dead-letter headers', () => {
  it('keeps the original headers byte for byte and adds the DESIGN.md ones', () => {
    const binary = Buffer.from([0x00, 0xff, 0xfe, 0x41])
    const i = item(Buffer.from('v'), 42, {'x-bin': binary, 'x-multi': [Buffer.from('1'), Buffer.from('2')], 'cutover.replay.count': Buffer.from('2'), 'cutover.error.code': Buffer.from('OLD')})
    i.status = 'dead'
    i.dead = {code: 'DECODE_ERROR', message: 'the value is not JSON: "v"', stage: 'decode', field: null}
    const stored = deadLetterHeaders(i, {pipeline: 'p', version: 'abc', attempts: 3, failedAt: new Date('2026-11-22T00:00:00Z')})
    const h = toKafkaHeaders(stored) as Record<string, Buffer | Buffer[]>
    expect(Buffer.compare(h['x-bin'] as Buffer, binary)).toBe(0)
    expect((h['x-multi'] as Buffer[]).map(String)).toEqual(['1', '2'])
    for (const name of DLQ_HEADERS) expect(h[name], name).toBeInstanceOf(Buffer)
    const text = (n: string) => (h[n] as Buffer).toString()
    expect(text('cutover.error.code')).toBe('DECODE_ERROR') // replaced, not repeated
    expect(text('cutover.replay.count')).toBe('2') // carried over from a replay
    expect(text('cutover.source.partition')).toBe('3')
    expect(text('cutover.source.offset')).toBe('42')
    expect(text('cutover.source.timestamp')).toBe('1795300000000')
    expect(text('cutover.attempts')).toBe('3')
    expect(text('cutover.pipeline.version')).toBe('abc')
    expect(text('cutover.failed.at')).toBe('2026-11-22T00:00:00.000Z')
  })

  it('stores a header name holding U+0000 (which jsonb refuses) without it, and gives it back whole', () => {
    const i = item(Buffer.from('v'), 7, {'x-a\u0000b': Buffer.from([0xff, 0x00]), 'x-plain': Buffer.from('p')})
    i.status = 'dead'
    i.dead = {code: 'DECODE_ERROR', message: 'the value is not JSON: "v"', stage: 'decode', field: null}
    const stored = deadLetterHeaders(i, {pipeline: 'p', version: 'abc', attempts: 1, failedAt: new Date('2026-11-22T00:00:00Z')})
    expect(JSON.stringify(stored)).not.toContain('\\u0000')
    expect(stored[1]).toEqual(['x-plain', Buffer.from('p').toString('base64')])
    const h = toKafkaHeaders(stored) as Record<string, Buffer>
    expect(Object.keys(h).slice(0, 2)).toEqual(['x-a\u0000b', 'x-plain'])
    expect(Buffer.compare(h['x-a\u0000b']!, Buffer.from([0xff, 0x00]))).toBe(0)
  })
})

describe('stream runtime: helpers', () => {
  it('backoff grows exponentially with jitter, capped', () => {
    expect(backoffMs(1, 100, 10_000, () => 1)).toBe(100)
    expect(backoffMs(4, 100, 10_000, () => 1)).toBe(800)
    expect(backoffMs(20, 100, 10_000, () => 1)).toBe(10_000)
    expect(backoffMs(20, 100, 10_000, () => 0)).toBe(100)
  })

  it('the token bucket holds the long-run rate', async () => {
    // on a virtual clock: the waits are exact, neither shorter (the rate) nor longer (the throughput)
    vi.useFakeTimers()
    try {
      const bucket = new TokenBucket(1000)
      const t0 = Date.now()
      const takes = (async () => {
        for (let i = 0; i < 6; i++) await bucket.take(500) // 3000 records at 1000/s, 1000 of them free
      })()
      await vi.runAllTimersAsync()
      await takes
      expect(Date.now() - t0).toBe(2000)
    } finally {
      vi.useRealTimers()
    }
  })

  it('the dedupe hash is of the normalized record, independent of key order', () => {
    expect(canonicalJson({b: '1', a: null})).toBe('["a","b"][null,"1"]')
    expect(payloadHash({a: '1.50', b: true})).toBe(payloadHash({b: true, a: '1.50'}))
    expect(payloadHash({a: '1.50'})).not.toBe(payloadHash({a: '1.5'}))
  })

  it('business_date is the date of event_time in the timezone', () => {
    const moscow = businessDateOf('Europe/Moscow')
    expect(moscow('2026-11-19T20:59:59.999Z')).toBe('2026-11-19')
    expect(moscow('2026-11-19T21:00:00.000Z')).toBe('2026-11-20')
    const ny = businessDateOf('America/New_York')
    expect(ny('2026-03-08T04:30:00.000Z')).toBe('2026-03-07')
    expect(ny('2026-03-08T05:00:00.000Z')).toBe('2026-03-08') // EST: midnight
    expect(ny('2026-11-01T03:59:59.999Z')).toBe('2026-10-31') // EDT: 23:59:59.999
    expect(ny('2026-11-01T04:00:00.000Z')).toBe('2026-11-01')
    expect(businessDateOf('Asia/Kolkata')('2026-11-19T18:29:59.000Z')).toBe('2026-11-19')
    expect(businessDateOf('Asia/Kolkata')('2026-11-19T18:30:00.000Z')).toBe('2026-11-20')
    // years 0-99 (mainframe placeholders such as 0001-01-01): Date.UTC read them as 1900-1999
    expect(moscow('0099-06-15T09:00:00.000Z')).toBe('0099-06-15')
    expect(businessDateOf('UTC')('0001-01-01T00:00:00.000Z')).toBe('0001-01-01')
    // local mean time before ~1920 has seconds in its offset: Moscow +2:30:17, New York -4:56:02
    expect(moscow('1915-12-31T21:29:53.000Z')).toBe('1916-01-01') // 00:00:10 local
    expect(moscow('1915-12-31T21:29:40.000Z')).toBe('1915-12-31') // 23:59:57 local
    expect(ny('1880-01-01T04:56:30.000Z')).toBe('1880-01-01') // 00:00:28 local
  })

  it('builds PostgreSQL array literals', () => {
    expect(pgArray(['a', null, 'x"y', 'b\\c', true, false, undefined])).toBe('{"a",NULL,"x\\"y","b\\\\c",t,f,NULL}')
    expect(pgArray([])).toBe('{}')
    // strings only, nothing to escape (the one-join path), and the same with a late NULL or quote
    expect(pgArray(['a', 'b c', '', 'NULL'])).toBe('{"a","b c","","NULL"}')
    expect(pgArray(['a', 'b', null])).toBe('{"a","b",NULL}')
    expect(pgArray(['a', 'b', 'c"'])).toBe('{"a","b","c\\""}')
  })

  it('array literals of strings and NULLs are those node-postgres itself would send', () => {
    // node-postgres' own serialization of a JS array (pg/lib/utils prepareValue) as the oracle
    const element = fc.oneof(fc.constant(null), fc.string(), fc.string({unit: fc.constantFrom('"', '\\', ',', '{', '}', ' ', 'a', 'é')}))
    fc.assert(
      fc.property(fc.array(element, {maxLength: 20}), (values) => {
        expect(pgArray(values)).toBe(pgPrepareValue(values))
      }),
    )
  })

  it('the per-record histogram exports what prom-client\'s Histogram would for the same observations', async () => {
    const ours = new Registry()
    const theirs = new Registry()
    const buckets = [0.005, 0.1, 1]
    const h = new RecordHistogram('x_seconds', 'From here to there', buckets, {pipeline: 'p'}, ours)
    const ref = new Histogram({name: 'x_seconds', help: 'From here to there', labelNames: ['pipeline'], buckets, registers: [theirs]})
    for (const v of [0, 0.005, 0.0051, 0.5, 1, 2, 100]) {
      h.observe(v)
      ref.observe({pipeline: 'p'}, v)
    }
    // one line per sample, labels in a fixed order (their order on a line means nothing to Prometheus)
    const lines = (text: string) =>
      text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.replace(/\{([^}]*)\}/, (_, inner: string) => `{${inner.split(',').sort().join(',')}}`))
    const mine = lines(await ours.metrics())
    expect(mine).toEqual(lines(await theirs.metrics()))
    expect(mine).toContain('x_seconds_bucket{le="0.005",pipeline="p"} 2')
    expect(mine).toContain('x_seconds_count{pipeline="p"} 7')
    h.reset()
    expect(lines(await ours.metrics())).toContain('x_seconds_count{pipeline="p"} 0')
  })

  it('hands the sinks a batch in the dedupe key order when dedupe ranked every item, else as it came', () => {
    const item = (offset: number, dedupeOrder?: number) => ({offset: BigInt(offset), status: 'ok', dedupeOrder}) as unknown as WorkItem
    const ranked = [item(0, 2), item(1, 0), item(2, 5), item(3, 1)]
    expect(inDedupeOrder(ranked).map((i) => i.offset)).toEqual([1n, 3n, 0n, 2n])
    const oneUnranked = [item(0, 2), item(1), item(2, 0)]
    expect(inDedupeOrder(oneUnranked)).toBe(oneUnranked)
    const collision = [item(0, 1), item(1, 1)]
    expect(inDedupeOrder(collision)).toBe(collision)
  })

  it('tables, types and row-level errors', () => {
    expect(tableRef('t', 'stg')).toMatchObject({schema: 'stg', table: 't', sql: '"stg"."t"'})
    expect(tableRef('a.b"c', 'stg').sql).toBe('"a"."b""c"')
    const col = (dataType: string, extra: Partial<ColumnInfo> = {}): ColumnInfo => ({name: 'c', dataType, castType: dataType, maxLength: null, numericPrecision: null, numericScale: null, nullable: true, hasDefault: false, ...extra})
    expect(typeMismatch({type: 'decimal', scale: 2}, col('numeric', {numericPrecision: 18, numericScale: 2}))).toBeNull()
    expect(typeMismatch({type: 'decimal', scale: 4}, col('numeric', {numericPrecision: 18, numericScale: 2}))).toMatch(/would round/)
    expect(typeMismatch({type: 'decimal', scale: 2}, col('double precision'))).toMatch(/cannot hold a decimal/)
    expect(typeMismatch({type: 'timestamp'}, col('timestamp without time zone'))).toMatch(/cannot hold a timestamp/)
    expect(suggestedType({type: 'decimal', precision: 18, scale: 2})).toBe('numeric(18, 2)')
    // the column PostgreSQL does not name for an overflow or a value too long (a size, never the value)
    const amount = col('numeric', {name: 'amount', numericPrecision: 8, numericScale: 2})
    expect(overflowOf(amount, '-000123456.78', '22003')).toBeUndefined()
    expect(overflowOf(amount, '-1234567.00', '22003')).toBe('column amount: 7 digits before the decimal point, at most 6')
    expect(overflowOf(amount, '1234567.00', '23514')).toBeUndefined()
    expect(overflowOf(col('integer', {name: 'n'}), '2147483648', '22003')).toBe('column n: out of the range of integer')
    expect(overflowOf(col('integer', {name: 'n'}), '-2147483648', '22003')).toBeUndefined()
    expect(overflowOf(col('character varying', {name: 'v', maxLength: 3}), 'ЖЖЖ', '22001')).toBeUndefined()
    expect(overflowOf(col('character varying', {name: 'v', maxLength: 3}), '😀😀😀😀', '22001')).toBe('column v: 4 characters, at most 3')
    expect(isRowLevelError({code: '23505'})).toBe(true)
    expect(isRowLevelError({code: '22003'})).toBe(true)
    expect(isRowLevelError({code: '40001'})).toBe(false)
    expect(isRowLevelError({code: 'ECONNREFUSED'})).toBe(false)
  })

  it("which sink column types take a lookup column's values (its text, cast)", () => {
    const col = (dataType: string, extra: Partial<ColumnInfo> = {}): ColumnInfo => ({name: 'c', dataType, castType: dataType, maxLength: null, numericPrecision: null, numericScale: null, nullable: true, hasDefault: false, ...extra})
    const numeric = (p: number | null, s: number | null) => col('numeric', {numericPrecision: p, numericScale: s})
    const varchar = (n: number | null) => col('character varying', {maxLength: n})
    const citext = col('USER-DEFINED', {castType: '"public"."citext"', userKind: 'string'})
    const fits: [ColumnInfo, ColumnInfo][] = [
      [col('text'), col('text')],
      [col('bigint'), col('text')], // any text into an unbounded string column
      [numeric(14, 2), varchar(null)],
      [col('date'), citext],
      [varchar(10), varchar(10)],
      [col('text'), varchar(10)], // a string without a declared length, as a string field without max_length
      [col('integer'), col('bigint')],
      [col('bigint'), numeric(18, 2)],
      [numeric(12, 0), col('bigint')],
      [numeric(14, 2), numeric(14, 2)],
      [numeric(14, 2), numeric(18, 4)],
      [numeric(null, null), numeric(null, null)],
      [col('timestamp with time zone'), col('timestamp with time zone')],
      [col('date'), col('date')],
      [col('boolean'), col('boolean')],
      [col('text'), col('uuid')], // as a string field: a value it cannot read is refused as one row
      [col('jsonb'), col('jsonb')],
      [col('timestamp without time zone'), col('timestamp without time zone')],
    ]
    for (const [lookup, sink] of fits) expect(lookupColumnFits(lookup, sink), `${typeText(lookup)} -> ${typeText(sink)}`).toBe(true)
    const refused: [ColumnInfo, ColumnInfo][] = [
      [col('text'), col('integer')],
      [varchar(40), varchar(10)],
      [numeric(14, 2), col('integer')],
      [numeric(14, 4), numeric(18, 2)],
      [numeric(null, null), numeric(18, 2)],
      [numeric(null, null), col('bigint')],
      [col('timestamp without time zone'), col('timestamp with time zone')],
      [col('timestamp with time zone'), col('date')],
      [col('date'), col('timestamp with time zone')],
      [col('boolean'), col('integer')],
      [col('double precision'), numeric(18, 2)],
      [col('jsonb'), col('json')],
    ]
    for (const [lookup, sink] of refused) expect(lookupColumnFits(lookup, sink), `${typeText(lookup)} -> ${typeText(sink)}`).toBe(false)
    expect([numeric(14, 2), varchar(40), col('character', {maxLength: 3}), col('timestamp with time zone', {datetimePrecision: 3}), col('timestamp with time zone', {datetimePrecision: 6})].map(typeText)).toEqual([
      'numeric(14, 2)',
      'varchar(40)',
      'char(3)',
      'timestamptz(3)',
      'timestamptz',
    ])
  })

  it('counts a batch: read = written + dead + duplicates', () => {
    const items = [item(null), item(null), item(null), item(null)]
    items[1]!.status = 'duplicate'
    items[2]!.status = 'dead'
    items[2]!.dead = {code: 'SINK_REJECTED', message: 'm', stage: 'sink', field: null}
    expect(countItems(items)).toEqual({read: 4, written: 2, duplicates: 1, dead: {SINK_REJECTED: 1}})
  })
})

describe('stream runtime: plain INSERT first (InsertFirst)', () => {
  const run = (f: InsertFirst, n: number) => Array.from({length: n}, () => f.take())
  it('tries plain INSERTs until a key exists, then upserts for a while that doubles while the first try keeps failing', () => {
    const f = new InsertFirst()
    expect(run(f, 3)).toEqual([true, true, true])
    f.success()
    f.conflict()
    expect(run(f, InsertFirst.MIN + 1)).toEqual([...Array<boolean>(InsertFirst.MIN).fill(false), true])
    f.conflict() // the first try after the pause failed again: twice as long
    expect(run(f, 2 * InsertFirst.MIN + 1)).toEqual([...Array<boolean>(2 * InsertFirst.MIN).fill(false), true])
    for (let i = 0; i < 20; i++) f.conflict()
    expect(f.upsertsAhead).toBe(InsertFirst.MAX)
    run(f, InsertFirst.MAX)
    expect(f.take()).toBe(true)
    f.success() // a first try went through: the next pause is short again
    f.conflict()
    expect(f.upsertsAhead).toBe(InsertFirst.MIN)
  })
})

describe('stream runtime: transaction lanes', () => {
  it('defaults to the CPU count, at least 2, never more than the partitions consumed at once', () => {
    expect(transactionLanes(undefined, 6, 2)).toBe(2)
    expect(transactionLanes(undefined, 6, 1)).toBe(2)
    expect(transactionLanes(undefined, 6, 16)).toBe(6)
    expect(transactionLanes(undefined, 1, 16)).toBe(1)
    expect(transactionLanes(4, 6, 2)).toBe(4)
    expect(transactionLanes(12, 6, 2)).toBe(6)
  })
})

describe('stream runtime --until-idle: partitions with records left that this process does not hold', () => {
  const held = new Map([
    ['t/2', 'cutover-p-aaa@10.0.0.1'],
    ['t/3', 'cutover-p-bbb@10.0.0.1'],
    ['t/4', 'cutover-p-other@10.0.0.2'],
  ])
  it('waits for one no member holds and for one the coordinator gave a consumer of this process that has not been told yet', () => {
    // 3 is held by this process's consumer bbb (its GROUP_JOIN not yet seen); 5 by no one (added, not yet assigned)
    expect(partitionsNotReadElsewhere('t', [3, 4, 5], held, ['cutover-p-aaa', 'cutover-p-bbb'])).toEqual([3, 5])
  })
  it('leaves to another process what it holds; waits for all while the group rebalances', () => {
    expect(partitionsNotReadElsewhere('t', [2, 4], held, ['cutover-p-zzz'])).toEqual([])
    expect(partitionsNotReadElsewhere('t', [2, 4], undefined, ['cutover-p-aaa'])).toEqual([2, 4])
    // a member id that only begins like one of ours is not ours
    expect(partitionsNotReadElsewhere('t', [3], new Map([['t/3', 'cutover-p-bbbx@10.0.0.1']]), ['cutover-p-bbb'])).toEqual([])
  })
})
