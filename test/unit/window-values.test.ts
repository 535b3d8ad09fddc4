/**
 * The window stage's pure core (src/runtime/stages/window.ts): which windows hold an instant,
 * and each record's running values (the stored values before the batch, then the batch's
 * records in offset order up to and including it), exact to the last decimal digit.
 */
import {describe, expect, it} from 'vitest'
import {compareDecimals as compareDecimal} from '../../src/config/rule-expression.js'
import {
  addDecimal,
  formatDuration,
  formatLag,
  mergeValues,
  parseInstant,
  runningValues,
  windowStarts,
  type WindowAggregate,
} from '../../src/runtime/stages/window.js'

const MIN = 60_000
const at = (iso: string) => Date.parse(iso)

describe('window: windows of an instant', () => {
  it('tumbling: the one window [s, s+size) with s a multiple of size', () => {
    expect(windowStarts(at('2026-11-20T10:00:59.999Z'), MIN, MIN)).toEqual([at('2026-11-20T10:00:00Z')])
    expect(windowStarts(at('2026-11-20T10:01:00Z'), MIN, MIN)).toEqual([at('2026-11-20T10:01:00Z')])
  })

  it('hopping 10m every 1m: the ten windows, the earliest first (the one covering the most time before the record)', () => {
    const s = windowStarts(at('2026-11-20T10:05:30Z'), 10 * MIN, MIN)
    expect(s).toHaveLength(10)
    expect(s[0]).toBe(at('2026-11-20T09:56:00Z'))
    expect(s.at(-1)).toBe(at('2026-11-20T10:05:00Z'))
    // at a boundary the window that just ended is out, the one just starting in
    const b = windowStarts(at('2026-11-20T10:06:00Z'), 10 * MIN, MIN)
    expect(b[0]).toBe(at('2026-11-20T09:57:00Z'))
    expect(b.at(-1)).toBe(at('2026-11-20T10:06:00Z'))
  })

  it('a slide that does not divide the size, and instants before 1970', () => {
    expect(windowStarts(7 * MIN, 5 * MIN, 2 * MIN)).toEqual([4 * MIN, 6 * MIN])
    expect(windowStarts(-1, MIN, MIN)).toEqual([-MIN])
  })

  it('microseconds are kept: an instant a microsecond before a window is not in it', () => {
    expect(parseInstant('2026-11-20T10:00:59.999999Z')).toEqual({ms: at('2026-11-20T10:00:59.999Z'), us: 999})
    expect(parseInstant('2026-11-20T10:01:00.000Z')).toEqual({ms: at('2026-11-20T10:01:00Z'), us: 0})
    expect(parseInstant('not a time')).toBeUndefined()
    expect(windowStarts(parseInstant('2026-11-20T10:00:59.999999Z')!.ms, MIN, MIN)).toEqual([at('2026-11-20T10:00:00Z')])
  })
})

describe('window: exact values', () => {
  it('decimals add as PostgreSQL numeric prints them (the larger scale), never through a float', () => {
    expect(addDecimal('0.10', '0.20')).toBe('0.30')
    expect(addDecimal('12345678901234567.89', '0.01')).toBe('12345678901234567.90')
    expect(addDecimal('-1.50', '1.50')).toBe('0.00')
    expect(addDecimal('-0.50', '0.25')).toBe('-0.25')
    expect(addDecimal('42', '0.5')).toBe('42.5')
    expect(compareDecimal('9.99', '10.00')).toBeLessThan(0)
    expect(compareDecimal('-2', '-10')).toBeGreaterThan(0)
  })

  const AGGS: WindowAggregate[] = [
    {name: 'n', fn: 'count'},
    {name: 'total', fn: 'sum', field: 'amount'},
    {name: 'smallest', fn: 'min', field: 'amount', compare: 'numeric'},
    {name: 'latest', fn: 'max', field: 'ts', compare: 'timestamp'},
    {name: 'first_merchant', fn: 'min', field: 'merchant', compare: 'text'},
  ]

  it('each record sees the values after itself and the records before it, from the stored ones', () => {
    const records = [
      {amount: '0.10', ts: '2026-11-20T10:00:01.000Z', merchant: 'b'},
      {amount: '9.90', ts: '2026-11-20T10:00:00.500001Z', merchant: null},
      {amount: '0.20', ts: '2026-11-20T10:00:00.500002Z', merchant: 'a'},
    ]
    // a new window: the third record sees count 3
    expect(runningValues(AGGS, undefined, records)).toEqual([
      {n: '1', total: '0.10', smallest: '0.10', latest: '2026-11-20T10:00:01.000Z', first_merchant: 'b'},
      {n: '2', total: '10.00', smallest: '0.10', latest: '2026-11-20T10:00:01.000Z', first_merchant: 'b'},
      {n: '3', total: '10.20', smallest: '0.10', latest: '2026-11-20T10:00:01.000Z', first_merchant: 'a'},
    ])
    // a window that held 5 records before the batch
    const stored = {n: '5', total: '100.05', smallest: '0.15', latest: '2026-11-20T10:00:00.500001Z', first_merchant: null}
    expect(runningValues(AGGS, stored, records)).toEqual([
      {n: '6', total: '100.15', smallest: '0.10', latest: '2026-11-20T10:00:01.000Z', first_merchant: 'b'},
      {n: '7', total: '110.05', smallest: '0.10', latest: '2026-11-20T10:00:01.000Z', first_merchant: 'b'},
      {n: '8', total: '110.25', smallest: '0.10', latest: '2026-11-20T10:00:01.000Z', first_merchant: 'a'},
    ])
  })

  it('the stored values merged with the batch total are the last record\'s values (what the upsert stores)', () => {
    const records = [{amount: '1.01', ts: null, merchant: 'z'}, {amount: '-3.00', ts: '2026-01-01T00:00:00.000Z', merchant: 'Z'}]
    const stored = {n: '2', total: '5.00', smallest: '-1.00', latest: null, first_merchant: 'a'}
    const total = runningValues(AGGS, undefined, records).at(-1)!
    expect(mergeValues(AGGS, stored, total)).toEqual(runningValues(AGGS, stored, records).at(-1))
    // "Z" sorts before "a" by bytes ("C"); a min/max of no value is null, a sum of none too
    expect(mergeValues(AGGS, stored, total)).toEqual({n: '4', total: '3.01', smallest: '-3.00', latest: '2026-01-01T00:00:00.000Z', first_merchant: 'Z'})
    expect(runningValues(AGGS, undefined, [{amount: null, ts: null, merchant: null}])).toEqual([{n: '1', total: null, smallest: null, latest: null, first_merchant: null}])
  })
})

describe('window: texts of a late event', () => {
  it('a lag from its largest unit to seconds; a spec duration as written', () => {
    expect(formatLag(5 * MIN * 1000)).toBe('5m 0s')
    expect(formatLag(3_723_000_000)).toBe('1h 2m 3s')
    expect(formatLag(500_000)).toBe('0.5s')
    expect(formatLag(1)).toBe('0.000001s')
    expect(formatDuration(2 * MIN)).toBe('2m')
    expect(formatDuration(90_000)).toBe('90s')
    expect(formatDuration(0)).toBe('0ms')
  })
})
