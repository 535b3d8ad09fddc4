/**
 * summarize's looser re-runs and the --rules / --spec files' SHA-256: a file of the same path
 * with another SHA-256 is an edit (named with both digests, short); the same SHA-256, or a run
 * recorded before the SHA-256 was kept (an old ledger row), is no edit.
 */
import {describe, expect, it} from 'vitest'
import {summarize} from '../../src/parity/evidence.js'
import type {ComparisonOptions, LedgerRun} from '../../src/parity/ledger.js'

const A = 'a'.repeat(64)
const B = 'b'.repeat(64)
const NONE: ComparisonOptions = {map: {}, types: {}, normalize: {}, null_equals_empty: [], spec_file: null}

const run = (id: number, unexplained: number, o: {rules?: string | null; spec?: string}): LedgerRun => ({
  id, date: '2026-11-02', left: 'csv:l', right: 'pg:r', strategy: 'merge', left_rows: 10, right_rows: 10, matched: 10 - unexplained, mismatched: unexplained, missing_in_right: 0, extra_in_right: 0,
  duplicate_keys_left: 0, duplicate_keys_right: 0, explained: 0, unexplained, parity_pct: unexplained > 0 ? '90.0000' : '100.0000', digests: {left: 'a', right: 'b'}, report_sha256: 'f'.repeat(64),
  report_path: null, run_by: 'ops', started_at: '2026-11-02T01:00:00Z', finished_at: '2026-11-02T01:00:05Z', columns: {amount: {mismatches: unexplained, explained: 0, max_abs_diff: null}},
  key_columns: ['id'], date_column: 'day', tolerances: {}, rules: {}, unreadable: {left: 0, right: 0},
  rules_file: 'rules.yaml', ...(o.rules !== undefined ? {rules_sha256: o.rules} : {}),
  comparison_options: {...NONE, spec_file: 'p.yaml', ...(o.spec !== undefined ? {spec_sha256: o.spec} : {})},
})
const w = {from: '2026-11-02', to: '2026-11-02', days: 1, threshold: 99.99}
const looser = (earlier: LedgerRun, later: LedgerRun) => summarize([earlier, later], w).per_day[0]!.decided_by[0]!.looser_than.map((l) => l.added)

describe('a re-run with an edited --rules or --spec file', () => {
  it('is named with both SHA-256s (short) when the same path held other bytes', () => {
    expect(looser(run(1, 1, {rules: A, spec: A}), run(2, 0, {rules: B, spec: B}))).toEqual([
      ['--spec p.yaml (edited: SHA-256 bbbbbbbbbbbb… instead of aaaaaaaaaaaa…)', '--rules rules.yaml (edited: SHA-256 bbbbbbbbbbbb… instead of aaaaaaaaaaaa…)'],
    ])
    const day = summarize([run(1, 1, {rules: A}), run(2, 0, {rules: B})], w).per_day[0]!
    expect(day.notes).toEqual(['decided by a re-run with --rules rules.yaml (edited: SHA-256 bbbbbbbbbbbb… instead of aaaaaaaaaaaa…) (run 2); an earlier run with the stricter options failed: run 1 (90.0000%, 1 unexplained)'])
    expect(day.ok).toBe(true)
  })

  it('is no looser re-run when the file is unchanged, or either run has no SHA-256 (an old ledger row)', () => {
    expect(looser(run(1, 1, {rules: A, spec: A}), run(2, 0, {rules: A, spec: A}))).toEqual([])
    expect(looser(run(1, 1, {}), run(2, 0, {rules: B, spec: B}))).toEqual([])
    expect(looser(run(1, 1, {rules: null}), run(2, 0, {rules: B}))).toEqual([])
    expect(looser(run(1, 1, {rules: A, spec: A}), run(2, 0, {}))).toEqual([])
  })

  it('another path is named as before (instead of), whatever the SHA-256', () => {
    const moved = {...run(2, 0, {rules: A}), rules_file: 'other.yaml'}
    expect(looser(run(1, 1, {rules: A}), moved)).toEqual([['--rules other.yaml (instead of --rules rules.yaml)']])
  })
})
