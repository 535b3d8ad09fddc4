/**
 * The condition language of `rules[].when` (src/config/rule-expression.ts): precedence, exact
 * decimal comparisons, texts, dates and instants, SQL's null, and errors with their position.
 */
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'
import {compareDecimals, compileCondition, ConditionError, conditionProblems, describeProblem, ruleScopeOf, type RuleScope} from '../../src/config/rule-expression.js'
import {checkSpec} from '../../src/config/spec.js'

const SCOPE: RuleScope = {
  fields: {amount: 'number', n: 'number', currency: 'string', merchant: 'string', event_time: 'timestamp', day: 'date', flagged: 'boolean'},
  windows: {velocity: {txn_count: 'number', amount_sum: 'number', first_at: 'timestamp'}},
  lookups: {account: ['segment', 'daily_limit']},
}

function run(when: string, record: Record<string, unknown>, windows?: Record<string, {values: Record<string, string | null>}>): boolean | null {
  return compileCondition(when, SCOPE).evaluate({record, windows})
}

function problemsOf(when: string): string[] {
  return conditionProblems(when, SCOPE).map((p) => describeProblem(p, when))
}

describe('rule conditions: evaluation', () => {
  it('compares amounts as exact decimals of their texts, never as doubles', () => {
    expect(run('amount > 1000.005', {amount: '1000.01'})).toBe(true)
    expect(run('amount > 1000.005', {amount: '1000.00'})).toBe(false)
    expect(run('amount = 1000.1', {amount: '1000.10'})).toBe(true)
    expect(run('amount == 1000.10', {amount: '1000.1'})).toBe(true)
    // doubles would call these equal (both round to the same double)
    expect(run('amount > 9007199254740992', {amount: '9007199254740993'})).toBe(true)
    expect(run('amount < 0.30000000000000001', {amount: '0.3'})).toBe(true)
    expect(run('amount >= -12.5', {amount: '-12.50'})).toBe(true)
    expect(run('amount < -12.5', {amount: '-12.51'})).toBe(true)
    expect(run('amount <> .5', {amount: '0.50'})).toBe(false)
  })

  it('exact decimal order agrees with BigInt arithmetic (property)', () => {
    const dec = fc.tuple(fc.bigInt({min: -(10n ** 30n), max: 10n ** 30n}), fc.integer({min: 0, max: 12})).map(([v, scale]) => {
      const neg = v < 0n
      const digits = (neg ? -v : v).toString().padStart(scale + 1, '0')
      const text = scale === 0 ? digits : `${digits.slice(0, digits.length - scale)}.${digits.slice(digits.length - scale)}`
      return {text: (neg ? '-' : '') + text, value: v * 10n ** BigInt(12 - scale)}
    })
    fc.assert(
      fc.property(dec, dec, (a, b) => {
        expect(compareDecimals(a.text, b.text)).toBe(a.value < b.value ? -1 : a.value > b.value ? 1 : 0)
        expect(run(`amount > ${b.text}`, {amount: a.text})).toBe(a.value > b.value)
      }),
    )
  })

  it('precedence: not over and over or; parentheses; word and symbol operators alike', () => {
    const r = {amount: '5', currency: 'RUB', flagged: false}
    expect(run("amount > 10 or currency = 'RUB' and not flagged", r)).toBe(true)
    expect(run("(amount > 10 or currency = 'RUB') and flagged", r)).toBe(false)
    expect(run("amount > 10 || currency == 'RUB' && !flagged", r)).toBe(true)
    expect(run("NOT (amount > 10) AND currency IN ('USD', 'RUB')", r)).toBe(true)
    expect(run("currency not in ('USD', 'EUR')", r)).toBe(true)
    expect(run('flagged = false', r)).toBe(true)
    expect(run('true and not false', r)).toBe(true)
  })

  it('texts compare as texts; a quote inside is written twice; dates as yyyy-MM-dd', () => {
    expect(run("merchant = 'O''Brien'", {merchant: "O'Brien"})).toBe(true)
    expect(run('merchant = "say ""hi"""', {merchant: 'say "hi"'})).toBe(true)
    expect(run("currency < 'USD'", {currency: 'RUB'})).toBe(true)
    expect(run("day >= '2026-11-20'", {day: '2026-11-20'})).toBe(true)
    expect(run("day > '2026-11-20'", {day: '2026-11-19'})).toBe(false)
  })

  it('timestamps compare as instants, to the microsecond, whatever the offset written', () => {
    const r = {event_time: '2026-11-20T09:15:00.000Z'}
    expect(run("event_time = '2026-11-20T12:15:00+03:00'", r)).toBe(true)
    expect(run("event_time < '2026-11-20T12:15:00.000001+03:00'", r)).toBe(true)
    expect(run("event_time > '2026-11-20T09:14:59.999999Z'", r)).toBe(true)
    expect(run("event_time < '2026-11-20T09:15:00Z'", {event_time: '2026-11-20T09:14:59.999999Z'})).toBe(true)
    expect(run('velocity.first_at < event_time', r, {velocity: {values: {first_at: '2026-11-20T09:10:00.000Z'}}})).toBe(true)
  })

  it('a comparison with null is unknown (SQL): never true, not even under not', () => {
    expect(run('amount > 5', {amount: null})).toBe(null)
    expect(run('not (amount > 5)', {amount: null})).toBe(null)
    expect(run('amount = null', {amount: '1'})).toBe(null)
    expect(run('amount != null', {amount: '1'})).toBe(null)
    expect(run("merchant in ('A', 'B')", {merchant: null})).toBe(null)
    expect(run("merchant in ('A', null)", {merchant: 'C'})).toBe(null)
    expect(run("merchant in ('A', null)", {merchant: 'A'})).toBe(true)
    // three-valued and / or
    expect(run('amount > 5 and n > 1', {amount: null, n: '0'})).toBe(false)
    expect(run('amount > 5 or n > 1', {amount: null, n: '2'})).toBe(true)
    expect(run('amount > 5 or n > 1', {amount: null, n: '0'})).toBe(null)
    // a window the record was not counted in
    expect(run('velocity.txn_count > 5', {})).toBe(null)
  })

  it('window aggregates and lookup columns', () => {
    const w = {velocity: {values: {txn_count: '6', amount_sum: '100000.00', first_at: null}}}
    expect(run('velocity.txn_count > 5', {}, w)).toBe(true)
    expect(run('velocity.amount_sum >= 100000', {}, w)).toBe(true)
    expect(compileCondition('velocity.txn_count > 5 and amount > 1', SCOPE).windows).toEqual(['velocity'])
    expect(compileCondition('amount > 1', SCOPE).windows).toEqual([])
    // a lookup column is the record's plain name, text or null
    expect(run("account.segment = 'vip'", {segment: 'vip'})).toBe(true)
    expect(run('amount > account.daily_limit', {amount: '10.00', daily_limit: '9.99'})).toBe(true)
    expect(run('amount > account.daily_limit', {amount: '10.00', daily_limit: 'n/a'})).toBe(null)
    expect(run('amount > account.daily_limit', {amount: '10.00', daily_limit: null})).toBe(null)
  })
})

describe('rule conditions: errors, with their position', () => {
  it('syntax errors say what was expected and where', () => {
    expect(problemsOf('velocity.txn_count >')).toEqual(['expected a value (a field, window.aggregate, lookup.column, number, quoted text, true, false or null), found the end of the condition (at character 21 of the condition, its end)'])
    expect(problemsOf("currency = 'RUB")).toEqual(['the text opened by \' is not closed (write a \' inside it twice) (at character 12 of the condition)'])
    expect(problemsOf('amount > 5 amount')).toEqual(['expected and, or, or the end of the condition, found "amount" (at character 12 of the condition)'])
    expect(problemsOf('(amount > 5')).toEqual(['expected ")", found the end of the condition (at character 12 of the condition, its end)'])
    expect(problemsOf('amount > 5)')).toEqual(['this ")" closes no "(" (at character 11 of the condition)'])
    expect(problemsOf('amount > 1e3')).toEqual(['"1e" is not a number: write plain decimals such as 1000 or 12.50 (no exponent, no thousands separators) (at character 10 of the condition)'])
    expect(problemsOf('1 < amount < 5')).toEqual(['comparisons do not chain: write a < b and b < c (at character 12 of the condition)'])
    expect(problemsOf('amount ; 5')).toEqual(['unexpected character ";" (at character 8 of the condition)'])
  })

  it('every unknown name, each at its position', () => {
    expect(problemsOf('amout > 5 or velocity.count > 1 or speed.x > 1 or account.tier = 1 or segment = 1')).toEqual([
      '"amout" is not a defined field (fields: amount, n, currency, merchant, event_time, day, flagged; a window aggregate or a lookup column is written <name>.<member>) (at character 1 of the condition)',
      '"velocity.count": "velocity" has no "count" (it has txn_count, amount_sum, first_at) (at character 14 of the condition)',
      '"speed.x": "speed" is not a window or a lookup (windows: velocity) (at character 36 of the condition)',
      '"account.tier": "account" has no "tier" (it has segment, daily_limit) (at character 51 of the condition)',
      '"segment" is a column of lookup account: write account.segment (at character 71 of the condition)',
    ])
  })

  it('type errors: a number against a text, order of booleans, a value as a condition, a bad instant or date', () => {
    expect(problemsOf("amount > '1000'")).toEqual(["amount is a number and '1000' is a text: they do not compare; write the number without quotes (at character 8 of the condition)"])
    expect(problemsOf('currency = 643')).toEqual(["currency is a text and 643 is a number: they do not compare; quote it ('643') (at character 10 of the condition)"])
    expect(problemsOf('flagged > true')).toEqual(['true and false have no order: compare a boolean with = or != only (at character 9 of the condition)'])
    expect(problemsOf('amount')).toEqual(['amount is a number, not a condition: compare it (e.g. amount > 0) (at character 1 of the condition)'])
    expect(problemsOf("event_time > '20.11.2026'")).toEqual([
      "'20.11.2026' is not an instant: write an ISO-8601 timestamp with its offset, e.g. '2026-11-20T09:15:00Z' or '2026-11-20T12:15:00+03:00' (at character 14 of the condition)",
    ])
    expect(problemsOf("day = '20.11.2026'")).toEqual(["'20.11.2026' is not a date: write yyyy-MM-dd, e.g. '2026-11-20' (at character 7 of the condition)"])
    expect(() => compileCondition('amount >', SCOPE)).toThrow(ConditionError)
  })

  it('the spec check reports them at the file:line:column of `when`, with the position in the condition', () => {
    const text = [
      'version: 1',
      'name: t',
      'source: {topic: t.raw}',
      'fields:',
      '  id: {type: string}',
      '  amount: {type: decimal, scale: 2}',
      'key: id',
      'rules:',
      '  - name: big',
      '    when: "amount >> 5"',
      '    emit: alerts',
      '',
    ].join('\n')
    const r = checkSpec(text, 'p.yaml')
    expect(r.problems).toEqual([
      {
        file: 'p.yaml',
        line: 10,
        column: 11,
        path: 'rules.0.when',
        message: 'expected a value (a field, window.aggregate, lookup.column, number, quoted text, true, false or null), found ">" (at character 9 of the condition)',
      },
    ])
  })

  it('an alert goes to a topic of its own: not the source topic, not the DLQ topic', () => {
    const text = (emit: string) =>
      ['version: 1', 'name: t', 'source: {topic: t.raw}', 'fields:', '  id: {type: string}', 'key: id', 'rules:', `  - {name: a, when: "id = 'x'", emit: ${emit}}`, ''].join('\n')
    expect(checkSpec(text('t.raw'), 'p.yaml').problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      'rules.0.emit: t.raw is the source topic: stream run would read its alerts back as records; give the alerts a topic of their own',
    ])
    expect(checkSpec(text('t.dlq'), 'p.yaml').problems.map((p) => p.path)).toEqual(['rules.0.emit'])
    expect(checkSpec(text('t.alerts'), 'p.yaml').problems).toEqual([])
  })

  it('scope from a spec: count and sum are numbers, min/max take their field\'s type, lookups their columns', () => {
    const text = [
      'version: 1',
      'name: t',
      'source: {topic: t.raw}',
      'fields:',
      '  id: {type: string}',
      '  amount: {type: decimal, scale: 2}',
      '  ts: {type: timestamp, formats: [iso]}',
      'key: id',
      'event_time: ts',
      'enrich: [{name: account, table: accounts, on: id, select: [segment]}]',
      'windows: [{name: w, by: id, size: 10m, aggregates: {c: count, s: sum(amount), first: min(ts)}}]',
      '',
    ].join('\n')
    const spec = checkSpec(text, 'p.yaml').spec!
    expect(ruleScopeOf(spec)).toEqual({
      fields: {id: 'string', amount: 'number', ts: 'timestamp'},
      windows: {w: {c: 'number', s: 'number', first: 'timestamp'}},
      lookups: {account: ['segment']},
    })
  })
})
