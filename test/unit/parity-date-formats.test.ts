/**
 * How parity reads dates: the --date filter of a file side and time rules read a column in the
 * --spec field's formats (as the normalizer does), and otherwise in defaults that hold the
 * design's legacy formats (MM/dd/yyyy HH:mm, yyyyMMddHHmmss); an ISO offset beyond ±18:00 is no
 * instant on parity's fast path, as the normalizer refuses it.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {parseSourceUri} from '../../legacy-adapters/index.js'
import {DateMatcher, isFail} from '../../src/normalize/index.js'
import {businessDayZone, specDateFormats} from '../../src/parity/check.js'
import {buildPlan} from '../../src/parity/plan.js'
import {parseRules, type DifferenceFacts} from '../../src/parity/rules.js'
import {canonicalSide, sortedSide, type SideCounters, type SideSpec} from '../../src/parity/sources.js'
import {compareValues, equalInPlace, isoInstant} from '../../src/parity/tolerances.js'
import {tempDir} from '../helpers.js'

const TIME_RULE = `rules:
  - name: legacy-late
    reason: the legacy batch keeps the rows after 23:00
    when: {kind: missing_in_right, column: ts, left_time_after: "23:00", timezone: Europe/Moscow}
`

const missing = (ts: string, date: string | null = null): DifferenceFacts => ({kind: 'missing_in_right', column: null, left: {ts}, right: undefined, absDiff: undefined, date})

describe('time rules read the formats the check reads the column in', () => {
  it('without a spec: a legacy MM/dd/yyyy HH:mm value (a default format) is read', () => {
    const [rule] = parseRules(TIME_RULE, 'rules.yaml')
    expect(rule!.matches(missing('11/20/2026 23:30'))).toBe(true)
    expect(rule!.matches(missing('11/20/2026 22:30'))).toBe(false)
    expect(rule!.matches(missing('20261120233000'))).toBe(true)
  })

  it("with the spec field's formats: its reading wins over the defaults, an impossible value in its shape is not read another way", () => {
    const [rule] = parseRules(TIME_RULE, 'rules.yaml', {formatsOf: (c) => (c === 'ts' ? ['dd/MM/yyyy HH:mm'] : undefined)})
    // 1 February in dd/MM (2 January in the default MM/dd): after 23:00 of 2026-02-01
    expect(rule!.matches(missing('01/02/2026 23:30', '2026-02-01'))).toBe(true)
    const [plain] = parseRules(TIME_RULE, 'rules.yaml')
    expect(plain!.matches(missing('01/02/2026 23:30', '2026-02-01'))).toBe(false)
    // month 13 in dd/MM: not read as MM/dd's 13 February
    expect(rule!.matches(missing('02/13/2026 23:30'))).toBe(false)
    // the streaming side's ISO is in no declared shape: the defaults read it
    expect(rule!.matches(missing('2026-11-20T23:30:00'))).toBe(true)
  })
})

describe('ISO offsets beyond ±18:00', () => {
  it('are no instant on the fast path, as the normalizer refuses them', () => {
    expect(isFail(new DateMatcher(['iso']).parse('2026-11-20T10:00:00+18:30', 'timestamp'))).toBe(true)
    expect(isFail(new DateMatcher(['iso']).parse('2026-11-20T10:00:00+18:00', 'timestamp'))).toBe(false)
    expect(isoInstant('2026-11-20T10:00:00+18:00')).toBe(Date.parse('2026-11-19T16:00:00Z'))
    for (const v of ['2026-11-20T10:00:00+18:30', '2026-11-20T10:00:00-18:01', '2026-11-20T10:00:00+1859']) expect(isoInstant(v), v).toBeUndefined()
  })

  it('a +18:30 value does not match the instant it would name: the verdict is a mismatch, as through the normalizer', () => {
    const p = buildPlan({left: 'l', right: 'r', key: ['id'], types: {ts: 'timestamp'}}, ['id', 'ts'], ['id', 'ts'], [], undefined, {left: 'csv', right: 'csv'})
    const c = p.columns.find((x) => x.name === 'ts')!
    const l = '2026-11-20T10:00:00+18:30'
    const r = '2026-11-19T15:30:00Z'
    expect(compareValues(c, l, r).equal).toBe(false)
    expect(equalInPlace(c, l, 0, l.length, r, 0, r.length)).toBe(false)
    // within the range the same pair of instants matches
    expect(compareValues(c, '2026-11-20T09:30:00+18:00', r).equal).toBe(true)
  })
})

describe("compared timestamps with a spec field that lists only legacy formats", () => {
  it("read the legacy side in the field's formats and the stream's ISO in the defaults: the same instant matches", () => {
    const spec = {fields: {ts: {from: 'ts', type: 'timestamp', timezone: 'Europe/Moscow', formats: ['dd.MM.yyyy HH:mm:ss'], required: false, trim: false, empty_as_null: false, sensitive: false}}} as never
    const p = buildPlan({left: 'l', right: 'r', key: ['id']}, ['id', 'ts'], ['id', 'ts'], [], spec, {left: 'csv', right: 'pg'})
    const c = p.columns.find((x) => x.name === 'ts')!
    expect(c.type).toBe('timestamp')
    expect(compareValues(c, '20.11.2026 23:30:00', '2026-11-20T20:30:00Z').equal).toBe(true)
    expect(compareValues(c, '20.11.2026 23:30:00', '2026-11-20T20:30:01Z')).toMatchObject({equal: false, absDiff: '1'})
    // 31 November in the declared shape is no date: compared as text, never read another way
    expect(compareValues(c, '31.11.2026 23:30:00', '2026-12-01T20:30:00Z').equal).toBe(false)
  })
})

describe("--date on a file side: the spec field's formats", () => {
  const field = (f: Record<string, unknown>) => f as never
  const spec = (fields: Record<string, unknown>) => ({fields}) as never

  it('come from the field for the column also when its zone is UTC (or absent), and from date fields', () => {
    const utc = spec({ts: field({from: 'ts', type: 'timestamp', timezone: 'UTC', formats: ['yyyyMMddHHmmss']})})
    expect(businessDayZone(utc, 'ts', 'ts')).toBeUndefined()
    expect(specDateFormats(utc, 'ts', 'ts')).toEqual(['yyyyMMddHHmmss'])
    expect(specDateFormats(spec({at: field({from: 'legacy_ts', type: 'timestamp', formats: ['MM/dd/yyyy HH:mm']})}), 'legacy_ts', 'at')).toEqual(['MM/dd/yyyy HH:mm'])
    expect(specDateFormats(spec({d: field({from: 'd', type: 'date', formats: ['dd/MM/yyyy']})}), 'd', 'd')).toEqual(['dd/MM/yyyy'])
    expect(specDateFormats(spec({ts: field({from: 'ts', type: 'string'})}), 'ts', 'ts')).toBeUndefined()
    expect(specDateFormats(undefined, 'ts', 'ts')).toBeUndefined()
  })

  it('filter the rows in the declared formats, the ISO of a streaming side in the defaults, in both read paths', async () => {
    const dir = tempDir('parity-date-formats-')
    const csv = join(dir, 'legacy.csv')
    // a: 20 Nov 23:30 Moscow; b: dd/MM shape, month 20 (unreadable, never re-read as MM/dd);
    // c: 21 Nov; d: ISO (the defaults read it); e: 20 Nov in the defaults' yyyyMMddHHmmss
    writeFileSync(csv, 'k,ts,v\na,20/11/2026 23:30,x\nb,11/20/2026 10:00,y\nc,21/11/2026 01:00,z\nd,2026-11-20T10:00:00Z,w\ne,20261120090000,u\n')
    const side: SideSpec = {
      side: 'left',
      uri: parseSourceUri(`csv:${csv}`),
      keyColumns: ['k'],
      columns: ['v'],
      date: {column: 'ts', value: '2026-11-20', timezone: 'Europe/Moscow', formats: ['dd/MM/yyyy HH:mm']},
    }
    const counters: SideCounters = {unreadable: 0, filtered: 0}
    const keys: string[] = []
    for await (const batch of sortedSide(side, 'presorted', {}, counters)) for (const r of batch) keys.push(r.key[0]!)
    expect(keys).toEqual(['a', 'd', 'e'])
    expect(counters).toEqual({unreadable: 1, filtered: 1})

    const counters2: SideCounters = {unreadable: 0, filtered: 0}
    let text = ''
    for await (const t of canonicalSide(side, 'presorted', {}, counters2)) text += t
    expect(text.split('\n').filter(Boolean).map((l) => l.slice(2, 3))).toEqual(['a', 'd', 'e'])
    expect(counters2).toEqual({unreadable: 1, filtered: 1})

    // without the spec's formats (the defaults), the dd/MM values cannot be read
    const plain: SideSpec = {...side, date: {column: 'ts', value: '2026-11-20', timezone: 'Europe/Moscow'}}
    const counters3: SideCounters = {unreadable: 0, filtered: 0}
    const plainKeys: string[] = []
    for await (const batch of sortedSide(plain, 'presorted', {}, counters3)) for (const r of batch) plainKeys.push(r.key[0]!)
    expect(plainKeys).toEqual(['b', 'd', 'e'])
    expect(counters3).toEqual({unreadable: 2, filtered: 0})
  })
})
