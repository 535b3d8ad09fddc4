/**
 * A key repeated on one side and absent from the other is missing (or extra) as well as
 * repeated: a known-difference rule for the repetition (legacy double postings) must not pass
 * a key the stream never wrote. It was counted as a duplicate only, "missing in right 0", and
 * such a rule made the check 100% under --strict.
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
`

function core(rules = DOUBLE_POSTINGS): ParityCore {
  return new ParityCore(buildPlan({left: 'l', right: 'r', key: ['id']}, ['id', 'amt'], ['id', 'amt'], parseRules(rules, 'rules.yaml')))
}

const finish = (c: ParityCore) => c.finish({digests: {left: '', right: ''}, strategy: 'merge', elapsedMs: 0, date: null})

describe('a repeated key that the other side lacks', () => {
  it('is missing in right as well, and a rule for the repetition alone does not explain it', () => {
    const c = core()
    c.pair(['1'], ['10'], ['10'])
    c.duplicate(['2'], [['20'], ['20']], [])
    const r = finish(c)
    expect(r).toMatchObject({matched: 1, missing_in_right: 1, extra_in_right: 0, duplicate_keys_left: 1, explained: 0, unexplained: 1, parity_pct: 50})
    expect(r.samples.map((s) => [s.kind, s.explanation === null])).toEqual([
      ['missing_in_right', true],
      ['duplicate_left', false],
    ])
    expect(failureOf(r, {strict: true})).toMatch(/1 unexplained/)
  })

  it('is explained when a rule covers its absence too; a repeated key present on both sides is not missing', () => {
    const c = core(`${DOUBLE_POSTINGS}
- name: reversed-and-cancelled
  reason: both postings of a reversal cancel out, the stream writes none
  when: {kind: missing_in_right}
`)
    c.duplicate(['2'], [['20'], ['20']], [])
    c.duplicate(['3'], [['30'], ['30']], [['30']])
    const r = finish(c)
    expect(r).toMatchObject({missing_in_right: 1, duplicate_keys_left: 2, explained: 2, unexplained: 0, parity_pct: 100, rules: {'legacy-double-posts': 2, 'reversed-and-cancelled': 1}})
  })

  it('repeated on the right only: extra in right as well, each key once in parity_pct', () => {
    const c = core()
    c.duplicate(['9'], [], [['90'], ['91']])
    c.pair(['1'], ['10'], ['10'])
    const r = finish(c)
    expect(r).toMatchObject({matched: 1, extra_in_right: 1, duplicate_keys_right: 1, unexplained: 1, parity_pct: 50})
    expect(r.samples.find((s) => s.kind === 'extra_in_right')).toMatchObject({key: {id: '9'}, left: null, right: {id: '9', amt: '90'}})
  })
})
