/**
 * The pure parts of parity: value comparison (tolerances, normalization, exact decimals),
 * the core's counting and samples, rules, the external sort, the key order, the verdict.
 */
import {existsSync, readdirSync} from 'node:fs'
import {describe, expect, it} from 'vitest'
import {SpecError} from '../../src/errors.js'
import {businessDayZone, failureOf, percentage} from '../../src/parity/check.js'
import {compareKeys, compareText, ParityCore, type ComparePlan} from '../../src/parity/compare.js'
import {dayStatus, renderEvidenceMarkdown, summarize} from '../../src/parity/evidence.js'
import type {LedgerRun} from '../../src/parity/ledger.js'
import {canonicalRow} from '../../src/parity/merge.js'
import {buildPlan, type ParityOptions} from '../../src/parity/plan.js'
import {parseRules} from '../../src/parity/rules.js'
import {renderCheckMarkdown} from '../../src/parity/report.js'
import {sortedPgSql, sqlDateCondition} from '../../src/parity/sources.js'
import {externalSort} from '../../src/parity/sort.js'
import {compareValues, parseTolerance} from '../../src/parity/tolerances.js'
import type {KeyedRow} from '../../src/parity/types.js'
import {tempDir} from '../helpers.js'

function plan(o: Partial<ParityOptions> & {cols: string[]}, rulesText?: string, schemes = {left: 'csv', right: 'csv'}): ComparePlan {
  const rules = rulesText ? parseRules(rulesText, 'rules.yaml') : []
  return buildPlan({left: 'l', right: 'r', key: ['id'], ...o}, ['id', ...o.cols], ['id', ...o.cols.map((c) => o.map?.[c] ?? c)], rules, undefined, schemes)
}

const col = (p: ComparePlan, name: string) => p.columns.find((c) => c.name === name)!

describe('compareValues', () => {
  it('absolute tolerance on exact decimals, never floats', () => {
    const p = plan({cols: ['amount'], tolerance: {amount: '0.01'}})
    const c = col(p, 'amount')
    expect(c.type).toBe('decimal')
    expect(compareValues(c, '10.00', '10.01').equal).toBe(true)
    expect(compareValues(c, '10.00', '10.0110')).toEqual({equal: false, absDiff: '0.011', absDiffRank: 11_000_000_000n})
    // "10.011" in a file is ambiguous (thousands or decimal?): never guessed, compared as text
    expect(compareValues(c, '10.011', '10.011').equal).toBe(true)
    expect(compareValues(c, '10.00', '10.011')).toEqual({equal: false})
    // 0.1 + 0.2 is 0.3 here: no binary floating point anywhere
    expect(compareValues(c, '0.3', '0.30').equal).toBe(true)
    expect(compareValues(c, '9999999999999999.99', '9999999999999999.98').equal).toBe(true)
    expect(compareValues(c, '9999999999999999.99', '9999999999999999.97').equal).toBe(false)
  })

  it('relative tolerance is relative to the left value, inclusive, exact', () => {
    const c = col(plan({cols: ['b'], tolerance: {b: '0.5%'}}), 'b')
    expect(compareValues(c, '2000.00', '2010.00').equal).toBe(true) // exactly 0.5%
    expect(compareValues(c, '2000.00', '2010.01').equal).toBe(false)
    expect(compareValues(c, '-2000', '-1990').equal).toBe(true)
    expect(compareValues(c, '0', '0.000001').equal).toBe(false)
  })

  it('decimals through the normalizers: "1 234,56" equals 1234.56; pg sides read "." as the decimal point', () => {
    const p = plan({cols: ['amount'], types: {amount: 'decimal'}})
    expect(compareValues(col(p, 'amount'), '1 234,56', '1234.56').equal).toBe(true)
    expect(compareValues(col(p, 'amount'), '(12,50)', '-12.5').equal).toBe(true)
    // "5.004" alone is ambiguous for a file (thousands or decimal?) but not for a database column
    const csv = plan({cols: ['amount'], types: {amount: 'decimal:,/.'}})
    expect(compareValues(col(csv, 'amount'), '5,00', '5.004')).toMatchObject({equal: false, absDiff: '0.004'})
    const pg = plan({cols: ['amount'], types: {amount: 'decimal'}}, undefined, {left: 'csv', right: 'pg'})
    expect(compareValues(col(pg, 'amount'), '5,00', '5.004')).toMatchObject({equal: false, absDiff: '0.004'})
  })

  it('unparseable values are compared as text', () => {
    const c = col(plan({cols: ['amount'], types: {amount: 'decimal'}}), 'amount')
    expect(compareValues(c, 'n/a', 'n/a').equal).toBe(true)
    expect(compareValues(c, 'n/a', '0.00').equal).toBe(false)
  })

  it('timestamps across formats and zones, with a seconds tolerance', () => {
    const c = col(plan({cols: ['ts'], types: {ts: 'timestamp:Europe/Moscow'}, tolerance: {ts: '2s'}}), 'ts')
    expect(compareValues(c, '20.11.2026 09:15:00', '2026-11-20T06:15:02Z').equal).toBe(true)
    expect(compareValues(c, '20.11.2026 09:15:00', '2026-11-20T06:15:02.001Z')).toMatchObject({equal: false, absDiff: '2.001'})
    expect(compareValues(c, '20261120091500', '2026-11-20 06:15:00+00').equal).toBe(true)
    // +03:99 is no offset: not the instant 4:39 before
    expect(compareValues(c, '2026-11-20 09:15:00+03:99', '2026-11-20T04:36:00Z').equal).toBe(false)
    // the year 1 is not 1901 (Date.UTC's reading of years 0-99)
    expect(compareValues(c, '0001-01-01 00:00:00+00', '1901-01-01 00:00:00+00').equal).toBe(false)
    expect(compareValues(c, '0001-01-01 00:00:00+00', '0001-01-01T00:00:00Z').equal).toBe(true)
  })

  it('string normalization per column: trim, case, NFC', () => {
    const p = plan({cols: ['a', 'b', 'c', 'd'], normalize: {a: 'trim', b: 'lower', c: 'nfc'}})
    expect(compareValues(col(p, 'a'), '  x ', 'x').equal).toBe(true)
    expect(compareValues(col(p, 'b'), 'MOSCOW', 'moscow').equal).toBe(true)
    expect(compareValues(col(p, 'c'), 'Cafe\u0301', 'Café').equal).toBe(true)
    expect(compareValues(col(p, 'd'), 'Cafe\u0301', 'Café').equal).toBe(false)
    expect(compareValues(col(p, 'd'), 'x ', 'x').equal).toBe(false)
  })

  it('null equals the empty string only when asked', () => {
    const p = plan({cols: ['m', 'n'], nullEqualsEmpty: ['m']})
    expect(compareValues(col(p, 'm'), null, '').equal).toBe(true)
    expect(compareValues(col(p, 'n'), null, '').equal).toBe(false)
    expect(compareValues(col(p, 'n'), null, null).equal).toBe(true)
  })

  it('rejects tolerances it cannot honour', () => {
    expect(() => parseTolerance('a', 'abc')).toThrow(/not a tolerance/)
    expect(() => plan({cols: ['a'], tolerance: {a: '2s'}, types: {a: 'decimal'}})).toThrow(/seconds apply to timestamp/)
    expect(() => plan({cols: ['a'], tolerance: {zz: '1'}})).toThrow(/not a compared column/)
  })
})

describe('ParityCore', () => {
  const RULES = `
- name: small
  reason: rounding
  when: {kind: mismatch, column: amount, abs_diff: "<= 0.01"}
- name: test-accounts
  reason: test accounts are not migrated
  when: {kind: missing_in_right, column: note, left: {matches: "^TEST"}}
`
  const feed = (core: ParityCore, order: number[]) => {
    const ops: (() => void)[] = [
      () => core.pair(['1'], ['10.00', 'a'], ['10.00', 'a']),
      () => core.pair(['2'], ['10.00', 'a'], ['10.01', 'a']), // explained
      () => core.pair(['3'], ['10.00', 'a'], ['11.00', 'b']), // two columns, one unexplained
      () => core.leftOnly(['4'], ['1.00', 'TEST 1']), // explained
      () => core.leftOnly(['5'], ['1.00', 'x']),
      () => core.rightOnly(['6'], ['1.00', 'x']),
      () => core.duplicate(['7'], [['1', 'x'], ['1', 'x']], [['1', 'x']]),
      () => core.addMatched(3),
    ]
    for (const i of order) ops[i]!()
  }

  it('counts every key once, explains by rule, and computes parity_pct', () => {
    const p = plan({cols: ['amount', 'note'], types: {amount: 'decimal'}}, RULES)
    const core = new ParityCore(p)
    feed(core, [0, 1, 2, 3, 4, 5, 6, 7])
    const r = core.finish({digests: {left: 'l', right: 'r'}, strategy: 'merge', elapsedMs: 1, date: null})
    expect(r).toMatchObject({
      left_rows: 3 + 2 + 2 + 3, // pairs, left-only, duplicate (2), matched (3)
      right_rows: 3 + 1 + 1 + 3,
      matched: 1 + 3,
      mismatched: 2,
      missing_in_right: 2,
      extra_in_right: 1,
      duplicate_keys_left: 1,
      duplicate_keys_right: 0,
      explained: 2,
      unexplained: 4,
      rules: {small: 1, 'test-accounts': 1},
    })
    expect(r.parity_pct).toBe(60) // (4 matched + 2 explained) of 10 keys
    expect(r.columns.amount).toEqual({mismatches: 2, explained: 1, max_abs_diff: '1'})
    expect(r.columns.note).toEqual({mismatches: 1, explained: 0, max_abs_diff: null})
    expect(Object.isFrozen(r)).toBe(true)
    expect(Object.isFrozen(r.columns)).toBe(true)
  })

  it('reports the same samples whatever order the keys arrive in', () => {
    const p = plan({cols: ['amount', 'note'], types: {amount: 'decimal'}, samples: 4}, RULES)
    const a = new ParityCore(p)
    feed(a, [0, 1, 2, 3, 4, 5, 6, 7])
    const b = new ParityCore(p)
    feed(b, [7, 6, 5, 4, 3, 2, 1, 0])
    const ra = a.finish({digests: {left: '', right: ''}, strategy: 'merge', elapsedMs: 0, date: null})
    const rb = b.finish({digests: {left: '', right: ''}, strategy: 'sql-pushdown', elapsedMs: 0, date: null})
    expect(ra.samples).toEqual(rb.samples)
    expect(ra.samples.map((s) => [s.key.id, s.kind, s.column])).toEqual([
      ['2', 'mismatch', 'amount'],
      ['3', 'mismatch', 'amount'],
      ['3', 'mismatch', 'note'],
      ['4', 'missing_in_right', null],
    ])
    expect(ra.samples[0]!.explanation).toBe('rule small: rounding')
  })

  it.each([
    [2476, 2500, 99.04],
    [11, 1000, 1.1],
    [999_999, 1_000_000, 99.9999],
    [2, 3, 66.6666],
  ])('parity_pct of %i matched in %i keys is %d: exact, truncated to 4 decimals (doubles gave 99.0399 for 2476/2500)', (matched, keys, pct) => {
    const core = new ParityCore(plan({cols: ['a']}))
    core.addMatched(matched)
    for (let i = matched; i < keys; i++) core.leftOnly([String(i)], ['x'])
    expect(core.finish({digests: {left: '', right: ''}, strategy: 'merge', elapsedMs: 0, date: null}).parity_pct).toBe(pct)
  })

  it('an empty comparison is 100% but says it is empty, and fails --fail-under and --strict', () => {
    const r = new ParityCore(plan({cols: ['a']})).finish({digests: {left: '', right: ''}, strategy: 'merge', elapsedMs: 0, date: '2026-11-20'})
    expect(r.parity_pct).toBe(100)
    expect(r.empty).toBe(true)
    expect(failureOf(r, {failUnder: 0})).toBe('no row was compared on 2026-11-20 (both sides empty): nothing supports parity')
    expect(failureOf(r, {strict: true})).toMatch(/no row was compared/)
    expect(failureOf(r, {})).toBeUndefined()
    const one = new ParityCore(plan({cols: ['a']}))
    one.pair(['1'], ['x'], ['x'])
    const full = one.finish({digests: {left: '', right: ''}, strategy: 'merge', elapsedMs: 0, date: null})
    expect(full.empty).toBeUndefined()
    expect(failureOf(full, {failUnder: 100, strict: true})).toBeUndefined()
  })

  it('unreadable records are unexplained differences, per side, in the denominator', () => {
    const core = new ParityCore(plan({cols: ['a']}))
    core.pair(['1'], ['x'], ['x'])
    core.addUnreadable('left', 1)
    const r = core.finish({digests: {left: '', right: ''}, strategy: 'merge', elapsedMs: 0, date: null})
    expect(r).toMatchObject({matched: 1, unexplained: 1, unreadable: {left: 1, right: 0}, parity_pct: 50})
    expect(failureOf(r, {strict: true})).toBe('1 unexplained difference(s) with --strict')
    // only unreadable records: not empty, 0%
    const only = new ParityCore(plan({cols: ['a']}))
    only.addUnreadable('right', 2)
    const o = only.finish({digests: {left: '', right: ''}, strategy: 'merge', elapsedMs: 0, date: null})
    expect(o).toMatchObject({parity_pct: 0, unexplained: 2, unreadable: {left: 0, right: 2}})
    expect(o.empty).toBeUndefined()
  })

  it('percentages: plain decimals only; empty or blank is refused, not taken for 0', () => {
    expect(percentage('99.99', '--fail-under')).toBe(99.99)
    expect(percentage(' 100 ', '--fail-under')).toBe(100)
    for (const bad of ['', ' ', '0x10', '1e2', 'abc', '-1']) expect(() => percentage(bad, '--fail-under')).toThrow(/is not a percentage/)
  })
})

describe('rules', () => {
  it('says where a rule is wrong (file:line:column)', () => {
    const text = 'rules:\n  - name: a\n    reason: r\n    when:\n      kind: mismatch\n      abs_diff: "about 1"\n'
    let err: unknown
    try {
      parseRules(text, 'k.yaml')
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(SpecError)
    expect((err as SpecError).message).toMatch(/^k\.yaml:6:17: rules\.0\.when\.abs_diff/)
    expect(() => parseRules('- name: a\n  reason: r\n  when: {kind: nope}\n', 'k.yaml')).toThrow(/k\.yaml:3:/)
    expect(() => parseRules('- {name: a, reason: r, when: {kind: mismatch}}\n- {name: a, reason: r, when: {kind: mismatch}}\n', 'k.yaml')).toThrow(/used twice/)
  })

  it('reads bounds and differences written with a decimal point, three decimals too (not as grouping)', () => {
    const [within, notOne] = parseRules('- {name: within, reason: r, when: {kind: mismatch, column: amount, abs_diff: "<= 1.000"}}\n- {name: not-one, reason: r, when: {kind: mismatch, column: fee, left: "!= 1.000"}}\n', 'k.yaml')
    const facts = (absDiff: string, fee: string) => ({kind: 'mismatch' as const, column: 'amount', left: {amount: '10', fee}, right: {amount: '0', fee: '0'}, absDiff, date: null})
    expect(within!.matches(facts('0.5', '1'))).toBe(true)
    expect(within!.matches(facts('1.000', '1'))).toBe(true)
    expect(within!.matches(facts('1.234', '1'))).toBe(false)
    const [five] = parseRules('- {name: five, reason: r, when: {kind: mismatch, abs_diff: "<= 5"}}\n', 'k.yaml')
    expect(five!.matches(facts('1.234', '1'))).toBe(true)
    // `!=` against a bound it could not read matched every value: it compares with 1 now
    const fee = (v: string) => ({kind: 'mismatch' as const, column: 'fee', left: {fee: v}, right: {fee: '0'}, absDiff: '1', date: null})
    expect(notOne!.matches(fee('1'))).toBe(false)
    expect(notOne!.matches(fee('2.5'))).toBe(true)
    expect(() => parseRules('- {name: tiny, reason: r, when: {kind: mismatch, abs_diff: "<= 0.0000000000001"}}\n', 'k.yaml')).toThrow(/k\.yaml:1:.*more than 12 decimals/)
  })

  it('time rules: after a time of day, or after the end of the business day in a zone', () => {
    const [r] = parseRules('- name: cut\n  reason: legacy cut\n  when: {kind: extra_in_right, column: t, right_time_after: "23:59:59", timezone: Europe/Moscow}\n', 'k.yaml')
    const facts = (t: string, date: string | null) => ({kind: 'extra_in_right' as const, column: null, left: undefined, right: {t}, absDiff: undefined, date})
    expect(r!.matches(facts('2026-11-20T21:00:00Z', '2026-11-20'))).toBe(true) // 00:00 Moscow, the next day
    expect(r!.matches(facts('2026-11-20T20:59:59Z', '2026-11-20'))).toBe(false) // 23:59:59 Moscow
    expect(r!.matches(facts('2026-11-20T20:59:59.500Z', null))).toBe(true) // time of day after 23:59:59
    expect(r!.matches(facts('2026-11-20T21:00:00Z', null))).toBe(false) // 00:00:00 is early in a day
  })

  it('time rules read a value without an offset (a pg: timestamp without zone, a legacy file) as local time in the rule\'s timezone (was: as UTC, 3 hours off in Moscow)', () => {
    const [r] = parseRules('- name: cut\n  reason: legacy cut\n  when: {kind: extra_in_right, column: t, right_time_after: "23:59:59", timezone: Europe/Moscow}\n', 'k.yaml')
    const facts = (t: string, date: string | null) => ({kind: 'extra_in_right' as const, column: null, left: undefined, right: {t}, absDiff: undefined, date})
    expect(r!.matches(facts('2026-11-20 23:30:00', '2026-11-20'))).toBe(false) // 23:30 Moscow: inside the business day
    expect(r!.matches(facts('2026-11-21 00:30:00', '2026-11-20'))).toBe(true) // 00:30 Moscow the next day
    expect(r!.matches(facts('2026-11-20 23:59:59.500', null))).toBe(true)
    expect(r!.matches(facts('2026-11-20 02:30:00', null))).toBe(false) // was: 05:30 local, read as UTC
  })
})

describe('rules: scope and emptiness', () => {
  const facts = (kind: 'mismatch' | 'missing_in_right' | 'extra_in_right' | 'duplicate_left', column: string | null) => ({
    kind,
    column,
    left: kind === 'extra_in_right' ? undefined : {id: '1', amount: '1.00', note: 'a'},
    right: kind === 'missing_in_right' ? undefined : {id: '1', amount: '2.00', note: 'b'},
    absDiff: undefined,
    date: null,
  })

  it('a `column` rule without a kind explains that column\'s mismatches only, never missing, extra or duplicate rows', () => {
    const [r] = parseRules('- name: amount-rounding\n  reason: legacy rounds\n  when: {column: amount}\n', 'rules.yaml')
    expect(r!.matches(facts('mismatch', 'amount'))).toBe(true)
    expect(r!.matches(facts('mismatch', 'note'))).toBe(false)
    expect(r!.matches(facts('missing_in_right', null))).toBe(false)
    expect(r!.matches(facts('extra_in_right', null))).toBe(false)
    expect(r!.matches(facts('duplicate_left', null))).toBe(false)
    // with the kind named, `column` is the column its predicates read
    const [x] = parseRules('- name: late\n  reason: r\n  when: {kind: extra_in_right, column: amount, right: "> 1"}\n', 'rules.yaml')
    expect(x!.matches(facts('extra_in_right', null))).toBe(true)
    expect(x!.matches(facts('missing_in_right', null))).toBe(false)
  })

  it('an empty `when` (or only a timezone) is refused at its place, naming the conditions', () => {
    for (const when of ['{}', '{timezone: Europe/Moscow}']) {
      let err: unknown
      try {
        parseRules(`rules:\n  - name: all\n    reason: r\n    when: ${when}\n`, 'k.yaml')
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(SpecError)
      expect((err as SpecError).exitCode).toBe(2)
      expect((err as SpecError).message).toBe('k.yaml:4:11: rules.0.when: a rule needs at least one condition (kind, column, abs_diff, left, right, left_time_after, left_time_before, right_time_after, right_time_before): without one it would explain every difference')
    }
  })
})

describe('Markdown reports escape the data', () => {
  it('no raw HTML, pipe, backtick or link from values, keys, URIs or rule names', () => {
    const core = new ParityCore(plan({cols: ['note']}))
    core.pair(['<b>1</b>'], ['<img src=x onerror=alert(1)>'], ['a|b`c` & [x](javascript:y)'])
    const r = core.finish({digests: {left: 'l', right: 'r'}, strategy: 'merge', elapsedMs: 0, date: null})
    const md = renderCheckMarkdown(r, {left: 'csv:"><img src=x onerror=alert(1)>.csv', right: 'csv:`r`.csv', key: ['id'], generatedAt: 't', runBy: '<u>ops</u>'})
    expect(md).not.toMatch(/<(img|b|u)\b/)
    expect(md).toContain('&lt;img src=x onerror=alert(1)&gt;')
    expect(md).toContain('| &lt;b&gt;1&lt;/b&gt; | mismatch | note | &lt;img src=x onerror=alert(1)&gt; | a\\|b\\`c\\` &amp; \\[x\\](javascript:y) |')
    expect(md).toContain('- right: csv:\\`r\\`.csv')
  })
})

describe('key order and the external sort', () => {
  it('orders keys by code point, as PostgreSQL COLLATE "C"', () => {
    expect(compareText('B', 'a')).toBeLessThan(0)
    expect(compareText('a', 'ab')).toBeLessThan(0)
    expect(compareText('\uffff', '\u{1F600}')).toBeLessThan(0) // UTF-16 order would say the opposite
    expect(compareKeys(['a', '2'], ['a', '10'])).toBeGreaterThan(0)
  })

  it('sorts with bounded runs on disk, stably, and removes its temp files', async () => {
    const dir = tempDir('parity-sort-')
    const rows: KeyedRow[] = []
    for (let i = 0; i < 5000; i++) rows.push({key: [String((i * 7919) % 1000)], values: [String(i)]})
    const runs: number[] = []
    async function* input() {
      for (let i = 0; i < rows.length; i += 333) yield rows.slice(i, i + 333)
    }
    const out: KeyedRow[] = []
    for await (const b of externalSort(input(), {runRows: 400, tmpDir: dir, onRun: (n) => runs.push(n)})) out.push(...b)
    // a run is spilled once it holds runRows rows: at most runRows + one input batch
    expect(runs.length).toBeGreaterThan(5)
    expect(Math.max(...runs)).toBeLessThan(400 + 333)
    expect(out).toHaveLength(5000)
    const expected = [...rows].sort((a, b) => compareKeys(a.key, b.key)) // Array.prototype.sort is stable
    expect(out).toEqual(expected)
    expect(readdirSync(dir)).toEqual([])
    expect(existsSync(dir)).toBe(true)
  })

  it('canonical rows cannot be confused by separators in values', () => {
    expect(canonicalRow({key: ['a'], values: ['b|c', null]})).not.toBe(canonicalRow({key: ['a'], values: ['b', '|c']}))
    expect(canonicalRow({key: ['a'], values: [null]})).not.toBe(canonicalRow({key: ['a'], values: ['-']}))
  })
})

describe('verdict', () => {
  const run = (id: number, date: string, pct: string, unexplained: number): LedgerRun => ({
    id, date, left: 'csv:l', right: 'pg:r', strategy: 'merge', left_rows: 10, right_rows: 10, matched: 10, mismatched: 0, missing_in_right: 0, extra_in_right: 0,
    duplicate_keys_left: 0, duplicate_keys_right: 0, explained: 0, unexplained, parity_pct: pct, digests: {left: 'a', right: 'b'}, report_sha256: 'f'.repeat(64),
    report_path: null, run_by: 'ops', started_at: `${date}T01:00:00Z`, finished_at: `${date}T01:00:05Z`, columns: {amount: {mismatches: unexplained, explained: 0, max_abs_diff: null}},
    key_columns: ['id'], date_column: 'business_date', tolerances: {}, rules_file: null, rules: {}, unreadable: {left: 0, right: 0},
  })
  const w = {from: '2026-11-01', to: '2026-11-03', days: 3, threshold: 99.99}

  it('ready when every day of the window passes; a re-run supersedes the day', () => {
    const r = summarize([run(1, '2026-11-01', '100.0000', 0), run(2, '2026-11-02', '99.5000', 3), run(3, '2026-11-02', '100.0000', 0), run(4, '2026-11-03', '99.9900', 0)], w)
    expect(r.verdict.ready).toBe(true)
    expect(r.per_day.map((d) => d.runs)).toEqual([1, 2, 1])
    expect(r.runs).toHaveLength(4)
  })

  it('a day whose runs compared no rows is "no data": not a pass, named in the verdict, not in the trend', () => {
    const empty = {...run(2, '2026-11-02', '100.0000', 0), left_rows: 0, right_rows: 0, matched: 0}
    const r = summarize([run(1, '2026-11-01', '100.0000', 0), empty, run(3, '2026-11-03', '100.0000', 0)], w)
    expect(r.verdict.ready).toBe(false)
    expect(r.per_day[1]).toMatchObject({date: '2026-11-02', status: 'no data', ok: false, parity_pct: null})
    expect(r.verdict.blockers).toEqual(['2026-11-02: no data: run 2 compared no rows (pg:r)'])
    expect(r.verdict.summary).toBe('NOT READY: 2 of 3 day(s) from 2026-11-01 to 2026-11-03 pass; 1 block the cutover (no data on 2026-11-02)')
    // the day's status in words says "no data" once (it said "no data: no data: run 2 ...")
    expect(dayStatus(r.per_day[1]!)).toBe('no data: run 2 compared no rows (pg:r)')
  })

  it('a narrower re-run (fewer compared columns) is another comparison: the failing run still blocks; the same comparison supersedes', () => {
    const failing = {...run(2, '2026-11-02', '90.0000', 1), columns: {amount: {mismatches: 1, explained: 0, max_abs_diff: null}, note: {mismatches: 0, explained: 0, max_abs_diff: null}}}
    const narrower = {...run(3, '2026-11-02', '100.0000', 0), columns: {note: {mismatches: 0, explained: 0, max_abs_diff: null}}}
    const r = summarize([run(1, '2026-11-01', '100.0000', 0), failing, narrower, run(4, '2026-11-03', '100.0000', 0)], w)
    expect(r.verdict.ready).toBe(false)
    expect(r.per_day[1]!.decided_by.map((x) => x.run)).toEqual([2, 3])
    expect(r.runs.map((x) => x.superseded_by)).toEqual([null, null, null, null])
    // the same comparison (same columns; rules and tolerances may change) supersedes, and says by which run
    const fixed = {...failing, id: 5, parity_pct: '100.0000', unexplained: 0, explained: 1, rules: {'amount-rounding': 1}, rules_file: 'k.yaml', tolerances: {amount: '0.01'}, columns: {amount: {mismatches: 1, explained: 1, max_abs_diff: null}, note: {mismatches: 0, explained: 0, max_abs_diff: null}}}
    const s = summarize([run(1, '2026-11-01', '100.0000', 0), failing, fixed, run(4, '2026-11-03', '100.0000', 0)], w)
    expect(s.verdict.ready).toBe(true)
    expect(s.runs.find((x) => x.id === 2)!.superseded_by).toBe(5)
    expect(s.per_day[1]!.decided_by).toEqual([
      {run: 5, right: 'pg:r', parity_pct: '100.0000', explained: 1, unexplained: 0, rules: {'amount-rounding': 1}, rules_file: 'k.yaml', columns: ['amount', 'note'], key_columns: ['id'], tolerances: {amount: '0.01'}, unreadable: {left: 0, right: 0}, empty: false,
        options: {map: {}, types: {}, normalize: {}, null_equals_empty: [], spec_file: null},
        looser_than: [{run: 2, parity_pct: '90.0000', unexplained: 1, added: ['--tolerance amount=0.01', '--rules k.yaml']}]},
    ])
    expect(s.verdict.criteria).toMatch(/Differences explained by a known-difference rule count as parity/)
    const md = renderEvidenceMarkdown(s, 'now')
    expect(md).toContain('| 2026-11-02 | run 5 (pg:r): 100.0000%, explained 1 by amount-rounding 1 (rules k.yaml), unexplained 0; key id; columns amount, note; tolerances amount=0.01; options none |')
    expect(md).toMatch(/\| 2 \| 2026-11-02 \|.*\| run 5 \|$/m)
  })

  it('not ready: a missing day, a day under the threshold, an unexplained difference; trend and top columns', () => {
    const r = summarize([run(1, '2026-11-01', '99.0000', 5), run(2, '2026-11-03', '100.0000', 1)], w)
    expect(r.verdict.ready).toBe(false)
    expect(r.verdict.blockers).toEqual([
      '2026-11-01: parity 99.0000% < 99.99% (run 1: pg:r)',
      '2026-11-01: 5 unexplained difference(s) (run 1: pg:r)',
      '2026-11-02: no parity check',
      '2026-11-03: 1 unexplained difference(s) (run 2: pg:r)',
    ])
    expect(r.trend).toBe('improving')
    expect(r.top_unexplained_columns).toEqual([{column: 'amount', unexplained: 6}])
  })

  it('--expect-pairs: a day that checked fewer left/right pairs blocks; a re-run of one pair with more columns is no second pair', () => {
    const accounts = (id: number, date: string): LedgerRun => ({...run(id, date, '100.0000', 0), left: 'csv:accounts', right: 'pg:accounts'})
    const wider = {...run(6, '2026-11-03', '100.0000', 0), columns: {amount: {mismatches: 0, explained: 0, max_abs_diff: null}, note: {mismatches: 0, explained: 0, max_abs_diff: null}}}
    const runs = [run(1, '2026-11-01', '100.0000', 0), accounts(2, '2026-11-01'), run(3, '2026-11-02', '100.0000', 0), accounts(4, '2026-11-02'), run(5, '2026-11-03', '100.0000', 0), wider]
    // one pair expected (the default): every day passes, 2026-11-03 with one pair checked twice
    expect(summarize(runs, w).verdict.ready).toBe(true)
    const r = summarize(runs, {...w, expectPairs: 2})
    expect(r.expect_pairs).toBe(2)
    expect(r.per_day.map((d) => d.status)).toEqual(['ok', 'ok', 'blocked'])
    expect(r.verdict.blockers).toEqual(['2026-11-03: 1 of 2 expected left/right pairs checked (--expect-pairs 2)'])
    expect(r.verdict.criteria).toMatch(/^A day passes when it has parity checks of 2 left\/right pairs that compared rows/)
  })
})

describe('isoInstant (the fast path for timestamps with an offset)', () => {
  it('agrees with the normalizer on every shape it accepts, and declines the rest', async () => {
    const {isoInstant} = await import('../../src/parity/tolerances.js')
    const {DateMatcher} = await import('../../src/normalize/index.js')
    const m = new DateMatcher(['iso'], 'Europe/Moscow')
    for (const t of ['2026-11-20T06:15:00Z', '2026-11-20 06:15:00+00', '2026-11-20 09:15:00.123456+03', '2026-11-20T09:15:00+03:00', '2026-03-29T01:30:00-0230', '2024-02-29T23:59:59.9Z']) {
      expect(isoInstant(t)).toBe(Date.parse(m.parse(t, 'timestamp') as string))
    }
    for (const t of ['2026-11-20T06:15:00', '2026-02-30T00:00:00Z', '20.11.2026 09:15:00', '2026-11-20T24:00:00Z']) expect(isoInstant(t)).toBeUndefined()
  })
})

describe('canonical lines between threads', () => {
  it('parse back to the rows they were made of', async () => {
    const {parseCanonical} = await import('../../src/parity/side-thread.js')
    const rows: KeyedRow[] = [
      {key: ['a', ''], values: [null, '', '12:30|x', '-', 'Пятёрочка\n2']},
      {key: ['10', 'b:c'], values: ['1 234,56', null, null, '0', '']},
    ]
    expect(parseCanonical(rows.map(canonicalRow).join(''), 2, 5)).toEqual(rows)
  })
})

describe('the merge reads canonical lines in place', () => {
  it('indexCanonical gives each field its place (null as -1), the same as parseCanonical', async () => {
    const {indexCanonical} = await import('../../src/parity/merge.js')
    const {parseCanonical} = await import('../../src/parity/side-thread.js')
    const rows: KeyedRow[] = [
      {key: ['a', ''], values: [null, '', '12:30|x', '-', 'Пятёрочка\n2']},
      {key: ['10', 'b:c'], values: ['1 234,56', null, null, '0', '😀']},
      ...Array.from({length: 600}, (_, i) => ({key: [String(i), 'k'], values: ['v' + i, null, '', 'x', 'y']})),
    ]
    const text = rows.map(canonicalRow).join('')
    const f = indexCanonical(text, 2, 5)
    expect(f.rows).toBe(rows.length)
    const back: KeyedRow[] = []
    for (let r = 0; r < f.rows; r++) {
      const field = (i: number) => (f.offs[(r * 7 + i) * 2]! < 0 ? null : text.slice(f.offs[(r * 7 + i) * 2], f.offs[(r * 7 + i) * 2 + 1]))
      back.push({key: [field(0)!, field(1)!], values: [2, 3, 4, 5, 6].map(field)})
    }
    expect(back).toEqual(rows)
    expect(back).toEqual(parseCanonical(text, 2, 5))
  })

  it('compareTextRange and equalTextRange agree with compareText and === on the slices', async () => {
    const {compareTextRange, equalTextRange} = await import('../../src/parity/compare.js')
    const words = ['', 'a', 'ab', 'b', 'B', 'é', '\uE000', '😀', 'a😀', 'a\uFFFF', 'T000000101', 'T0000001010']
    const a = '#' + words.join('#') + '#'
    const places = words.map((w) => [a.indexOf('#' + w + '#') + 1, a.indexOf('#' + w + '#') + 1 + w.length] as const)
    words.forEach((x, i) =>
      words.forEach((y, j) => {
        const [xs, xe] = places[i]!
        const [ys, ye] = places[j]!
        expect(Math.sign(compareTextRange(a, xs, xe, a, ys, ye))).toBe(Math.sign(compareText(x, y)))
        expect(equalTextRange(a, xs, xe, a, ys, ye)).toBe(x === y)
      }),
    )
  })

  it('equalInPlace says equal only where compareValues does', async () => {
    const {equalInPlace, isoInstant, isoInstantAt} = await import('../../src/parity/tolerances.js')
    const values = ['2026-11-20T06:15:00Z', '2026-11-20 06:15:00+00', '2026-11-20 09:15:00+03', '2026-11-20 09:15:00+03:00', '2026-11-20T06:15:00.5Z', '2026-11-20T06:15:01.000+00', '2026-11-20T06:15:00', '2026-13-20 06:15:00+00', '2026-13-20T06:15:00Z', 'x']
    for (const tol of [undefined, '2s']) {
      const p = plan({cols: ['ts'], types: {ts: 'timestamp'}, ...(tol ? {tolerance: {ts: tol}} : {})})
      const col = p.columns[0]!
      for (const x of values) {
        expect(isoInstantAt('ab' + x + 'cd', 2, 2 + x.length)).toBe(isoInstant(x))
        for (const y of values) {
          const text = `${x}|${y}`
          const fast = equalInPlace(col, text, 0, x.length, text, x.length + 1, text.length)
          if (fast) expect(compareValues(col, x, y).equal).toBe(true)
          else if (isoInstant(x) !== undefined && isoInstant(y) !== undefined) expect(compareValues(col, x, y).equal).toBe(false)
        }
      }
    }
  })

  it('timestamptz text forms from COPY, without the regex', async () => {
    const {timestamptzForm} = await import('../../src/parity/pg-copy.js')
    const old = (v: string) => v.replace(' ', 'T').replace(/\+00(?::00)?$/, 'Z')
    for (const v of ['2026-11-20 00:00:01+00', '2026-11-20 00:00:01.123+00:00', '2026-11-20 00:00:01+05:30', '2026-11-20 00:00:01+00:30', '', '+00', '+00:00', '2026-11-20 00:00:01+00 BC', 'a b+00', '1+00:00']) {
      expect(timestamptzForm(v)).toBe(old(v))
    }
  })
})

describe('--date: the business day in the spec field\'s timezone', () => {
  const field = (f: Record<string, unknown>) => f as never
  const spec = (fields: Record<string, unknown>) => ({fields}) as never
  it('takes the zone of the timestamp field named so or read from the column, on either side', () => {
    expect(businessDayZone(undefined, 'ts', 'ts')).toBeUndefined()
    expect(businessDayZone(spec({event_time: field({from: 'ts', type: 'timestamp', timezone: 'Europe/Moscow'})}), 'ts', 'ts')).toBe('Europe/Moscow')
    expect(businessDayZone(spec({ts: field({from: 'ts', type: 'timestamp', timezone: 'Asia/Yekaterinburg'})}), 'legacy_ts', 'ts')).toBe('Asia/Yekaterinburg')
    expect(businessDayZone(spec({ts: field({from: 'ts', type: 'timestamp', timezone: 'UTC'})}), 'ts', 'ts')).toBeUndefined()
    expect(businessDayZone(spec({ts: field({from: 'ts', type: 'date', timezone: 'Europe/Moscow'})}), 'ts', 'ts')).toBeUndefined()
    expect(businessDayZone(spec({other: field({from: 'x', type: 'timestamp', timezone: 'Europe/Moscow'})}), 'ts', 'ts')).toBeUndefined()
  })
  it('builds the same SQL condition for every strategy, the zone a validated literal', () => {
    expect(sqlDateCondition('s', {column: 'ts', value: '2026-11-20'}, '$1::date')).toBe('(s."ts")::date = $1::date')
    expect(sqlDateCondition('s', {column: 'ts', value: '2026-11-20', timezone: 'Europe/Moscow'}, "DATE '2026-11-20'")).toBe(`(s."ts" AT TIME ZONE 'Europe/Moscow')::date = DATE '2026-11-20'`)
    expect(() => sqlDateCondition('s', {column: 'ts', value: '2026-11-20', timezone: "x'; DROP TABLE t; --"}, '$1::date')).toThrow(/not an IANA zone name/)
    const uri = {scheme: 'pg', target: 'public.t', params: {}, text: 'pg:public.t'} as never
    expect(sortedPgSql({side: 'left', uri, keyColumns: ['k'], columns: ['v'], date: {column: 'ts', value: '2026-11-20', timezone: 'Europe/Moscow'}})).toContain(`WHERE (s."ts" AT TIME ZONE 'Europe/Moscow')::date = DATE '2026-11-20'`)
  })
})
