/**
 * Columns of one side with no column of that name on the other (a legacy `amt` against the
 * stream's `amount`, without `--map amt=amount`) were left out of the comparison without a word:
 * a check that compared nothing but the keys said "parity 100%", and one that compared some
 * columns never said which it had left out. Now no compared column besides the key is refused
 * (exit 2, with the --map fix), and the columns left out are named in the result, the check's
 * report and the evidence of `parity report`.
 */
import {describe, expect, it} from 'vitest'
import {UsageError} from '../../src/errors.js'
import {ParityCore} from '../../src/parity/compare.js'
import {renderEvidenceMarkdown, summarize} from '../../src/parity/evidence.js'
import type {LedgerRun} from '../../src/parity/ledger.js'
import {buildPlan, type ParityOptions} from '../../src/parity/plan.js'
import {renderCheckHtml, renderCheckMarkdown} from '../../src/parity/report.js'

const opts = (o: Partial<ParityOptions> = {}): ParityOptions => ({left: 'csv:l.csv', right: 'pg:txn_clean', key: ['id'], ...o})
const result = (o: ParityOptions, left: string[], right: string[]) =>
  new ParityCore(buildPlan(o, left, right, [])).finish({digests: {left: '', right: ''}, strategy: 'merge', elapsedMs: 0, date: null})

describe('columns without a counterpart on the other side', () => {
  it('nothing compared but the key while the left side has other columns: exit 2 naming them and the --map fix', () => {
    let err: unknown
    try {
      buildPlan(opts(), ['id', 'amt'], ['id', 'amount'], [])
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(UsageError)
    expect((err as UsageError).message).toBe("no column is compared besides the key: the left side's amt has no column of the same name on the right side (the right side has amount besides the key)")
    expect((err as UsageError).hint).toBe('pair the columns with --map amt=<right column> (repeatable), or give --columns id to compare the keys only')
    // what the hint says works: mapped, or the keys only on purpose
    expect(result(opts({map: {amt: 'amount'}}), ['id', 'amt'], ['id', 'amount']).not_compared).toBeUndefined()
    expect(Object.keys(result(opts({columns: ['id']}), ['id', 'amt'], ['id', 'amount']).columns)).toEqual([])
    // a left side of keys only against a wider right side is a key check, not a mistake
    expect(result(opts(), ['id'], ['id', 'amount']).not_compared).toEqual({left: [], right: ['amount']})
  })

  it('some compared, some left out: named in the result and in both report formats', () => {
    const r = result(opts({map: {id: 'txn_id'}}), ['id', 'amt', 'cur'], ['txn_id', 'amount', 'cur', 'ingested_at'])
    expect(Object.keys(r.columns)).toEqual(['cur'])
    expect(r.not_compared).toEqual({left: ['amt'], right: ['amount', 'ingested_at']})
    const ctx = {left: 'csv:l.csv', right: 'pg:txn_clean', key: ['id'], generatedAt: '2026-11-21T00:00:00Z', runBy: 'auditor'}
    const line = 'compared cur; not compared (no column of that name on the other side): left amt; right amount, ingested_at'
    expect(renderCheckMarkdown(r, ctx)).toContain(`- columns: ${line}`)
    expect(renderCheckHtml(r, ctx)).toContain(line)
    // every column paired: nothing to name
    expect(result(opts(), ['id', 'amt'], ['id', 'amt']).not_compared).toBeUndefined()
  })

  it('parity report: the deciding run says which columns it did not compare', () => {
    const run: LedgerRun = {
      id: 7, date: '2026-11-20', left: 'csv:l.csv', right: 'pg:txn_clean', strategy: 'merge', left_rows: 2, right_rows: 2, matched: 2, mismatched: 0,
      missing_in_right: 0, extra_in_right: 0, duplicate_keys_left: 0, duplicate_keys_right: 0, explained: 0, unexplained: 0, parity_pct: '100.0000',
      digests: {left: 'a', right: 'b'}, report_sha256: 'f'.repeat(64), report_path: null, run_by: 'ops', started_at: '2026-11-21T01:00:00Z', finished_at: '2026-11-21T01:00:01Z',
      columns: {cur: {mismatches: 0, explained: 0, max_abs_diff: null}}, key_columns: ['id'], date_column: null, tolerances: {}, rules_file: null, rules: {},
      unreadable: {left: 0, right: 0}, not_compared: {left: ['amt'], right: ['amount']},
    }
    const report = summarize([run], {from: '2026-11-20', to: '2026-11-20', days: 1, threshold: 99.99})
    expect(report.per_day[0]!.decided_by[0]!.not_compared).toEqual({left: ['amt'], right: ['amount']})
    expect(renderEvidenceMarkdown(report, '2026-11-21T02:00:00Z')).toContain('columns cur (not compared (no column of that name on the other side): left amt; right amount)')
  })
})
