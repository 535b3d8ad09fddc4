/**
 * A key with one row on one side and several on the other: a duplicate rule explains the
 * repetition, not the values. Legacy `2,20` twice against the stream's `2,999` was 100% under
 * --strict with a `duplicate_left` rule: the rows of a repeated key were never compared.
 */
import {describe, expect, it} from 'vitest'
import {failureOf} from '../../src/parity/check.js'
import {ParityCore} from '../../src/parity/compare.js'
import {buildPlan} from '../../src/parity/plan.js'
import {parseRules} from '../../src/parity/rules.js'

const DOUBLE_POSTINGS = `
- name: legacy-double-posts
  reason: the legacy batch writes a reversal as a second row with the same id
  when: {kind: duplicate_left}
- name: stream-retries
  reason: the stream writes a retried event twice
  when: {kind: duplicate_right}
`

function core(rules = DOUBLE_POSTINGS, flags: Record<string, unknown> = {}): ParityCore {
  return new ParityCore(buildPlan({left: 'l', right: 'r', key: ['id'], ...flags}, ['id', 'amt'], ['id', 'amt'], parseRules(rules, 'rules.yaml')))
}

const finish = (c: ParityCore) => c.finish({digests: {left: '', right: ''}, strategy: 'merge', elapsedMs: 0, date: null})

describe('a repeated key with one row on the other side', () => {
  it('has the mismatches of its closest row when none of its rows equals the single one (a duplicate rule does not explain them)', () => {
    const c = core()
    c.pair(['1'], ['10'], ['10'])
    c.duplicate(['2'], [['20'], ['20']], [['999']])
    const r = finish(c)
    expect(r).toMatchObject({matched: 1, mismatched: 1, duplicate_keys_left: 1, explained: 0, unexplained: 1, parity_pct: 50, columns: {amt: {mismatches: 1, explained: 0}}})
    expect(r.samples.map((s) => [s.kind, s.column, s.left, s.right, s.explanation === null])).toEqual([
      ['mismatch', 'amt', '20', '999', true],
      ['duplicate_left', null, 2, 1, false],
    ])
    expect(failureOf(r, {strict: true})).toMatch(/1 unexplained/)
  })

  it('passes when one of the rows equals the single one, on either side; the closest row does not depend on order', () => {
    const c = core()
    c.duplicate(['2'], [['999'], ['20']], [['20']])
    c.duplicate(['3'], [['30']], [['31'], ['30']])
    const r = finish(c)
    expect(r).toMatchObject({mismatched: 0, explained: 2, unexplained: 0, parity_pct: 100, columns: {amt: {mismatches: 0}}})
    for (const rows of [
      [['7'], ['5']],
      [['5'], ['7']],
    ]) {
      const d = core()
      d.duplicate(['4'], [['1']], rows)
      expect(finish(d).samples.find((s) => s.kind === 'mismatch')).toMatchObject({left: '1', right: '5'})
    }
  })

  it('compares under the tolerances in force, and a rule for the values explains them', () => {
    const tol = core(DOUBLE_POSTINGS, {type: {amt: 'decimal'}, tolerance: {amt: '0.01'}})
    tol.duplicate(['2'], [['20.00'], ['20.00']], [['20.01']])
    expect(finish(tol)).toMatchObject({mismatched: 0, explained: 1, parity_pct: 100})
    const ruled = core(`${DOUBLE_POSTINGS}
- name: repriced
  reason: the stream reprices
  when: {kind: mismatch, column: amt}
`)
    ruled.duplicate(['2'], [['20'], ['20']], [['999']])
    expect(finish(ruled)).toMatchObject({mismatched: 1, explained: 1, unexplained: 0, parity_pct: 100, rules: {'legacy-double-posts': 1, repriced: 1}})
  })

  it('several rows on both sides stay unpaired (which row stands for which is not known)', () => {
    const c = core()
    c.duplicate(['2'], [['20'], ['20']], [['999'], ['998']])
    expect(finish(c)).toMatchObject({mismatched: 0, duplicate_keys_left: 1, duplicate_keys_right: 1, explained: 1, parity_pct: 100})
  })
})
