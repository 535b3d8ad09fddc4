/**
 * `parity check` compares timestamps to the microsecond, PostgreSQL's precision and the
 * normalizer's (`stream run` writes .123456 into timestamptz): a legacy .123456 against the
 * stream's .123457 is a mismatch of 0.000001 s in every strategy (merge, sql-pushdown, bisect),
 * where it was a match (fractions were truncated to the ms: a false 100%). The same instant
 * written two ways (.123456+03:00, 06:15:00.123456Z, a Moscow local time) is equal, and
 * `--tolerance ts=0.000001s` takes a 1 µs difference and not a 2 µs one. Values with no fraction
 * or ms only compare as before.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestSchema, runCli, tempDir, testPool} from '../helpers.js'

/** Both sides timestamptz: key, left, right. */
const TZ_ROWS: [string, string, string][] = [
  ['k1', '2026-11-20T06:15:00.123456Z', '2026-11-20T06:15:00.123457Z'], // 1 µs
  ['k2', '2026-11-20T06:15:00.5Z', '2026-11-20T06:15:00.5Z'], // equal, ms only
  ['k3', '2026-11-20T06:15:00Z', '2026-11-20T06:15:00.000002Z'], // 2 µs
  ['k4', '2026-11-20T06:15:00.123Z', '2026-11-20T06:15:00.125Z'], // 2 ms, as before
  ['k5', '2026-11-20T06:15:00.999999Z', '2026-11-20T06:15:01Z'], // 1 µs across a second
]

/** The left side as text (a legacy column), the right timestamptz: the same instants written otherwise. */
const TEXT_ROWS: [string, string, string][] = [
  ['t1', '2026-11-20 09:15:00.123456+03:00', '2026-11-20T06:15:00.123456Z'], // equal
  ['t2', '2026-11-20 09:15:00.123456+03:00', '2026-11-20T06:15:00.123457Z'], // 1 µs
  ['t3', '2026-11-20T09:15:00.123456000+0300', '2026-11-20T06:15:00.123456Z'], // zeros beyond the µs: equal
  ['t4', '2026-11-20 09:15:00.123456', '2026-11-20T06:15:00.123456Z'], // Moscow local time (the normalizer's path): equal
  ['t5', '2026-11-20 09:15:00.123455', '2026-11-20T06:15:00.123456Z'], // Moscow local time: 1 µs
]

async function tables() {
  const pool = testPool()
  const schema = await createTestSchema(pool)
  await pool.query(`CREATE TABLE "${schema}".l (k text PRIMARY KEY, ts timestamptz)`)
  await pool.query(`CREATE TABLE "${schema}".r (k text PRIMARY KEY, ts timestamptz)`)
  await pool.query(`CREATE TABLE "${schema}".lt (k text PRIMARY KEY, ts text)`)
  await pool.query(`CREATE TABLE "${schema}".rt (k text PRIMARY KEY, ts timestamptz)`)
  const insert = (t: string, type: string, rows: [string, string][]) =>
    pool.query(`INSERT INTO "${schema}".${t} SELECT * FROM unnest($1::text[], $2::${type}[])`, [rows.map((r) => r[0]), rows.map((r) => r[1])])
  await insert('l', 'timestamptz', TZ_ROWS.map(([k, l]) => [k, l]))
  await insert('r', 'timestamptz', TZ_ROWS.map(([k, , r]) => [k, r]))
  await insert('lt', 'text', TEXT_ROWS.map(([k, l]) => [k, l]))
  await insert('rt', 'timestamptz', TEXT_ROWS.map(([k, , r]) => [k, r]))
  return schema
}

type Sample = {key: Record<string, string>; kind: string; column: string; explanation: string | null}

async function check(left: string, right: string, extra: string[]) {
  const out = await runCli(['parity', 'check', '--left', left, '--right', right, '--key', 'k', '--samples', '50', '--json', '--no-ledger', ...extra])
  expect(out.code, out.stdout + out.stderr).toBe(0)
  expect(out.stderr).toBe('')
  const j = out.json as Record<string, unknown> & {samples: Sample[]}
  return {
    strategy: j.strategy,
    counts: {matched: j.matched, mismatched: j.mismatched, explained: j.explained, unexplained: j.unexplained, parity_pct: j.parity_pct},
    columns: j.columns,
    mismatches: j.samples.map((s) => `${s.key.k} ${s.kind} ${s.column} ${s.explanation ?? '-'}`).sort(),
  }
}

const STRATEGIES = [['--strategy', 'sql-pushdown'], ['--strategy', 'merge'], ['--strategy', 'bisect', '--bisect-leaf-rows', '2']]

describe('parity check compares timestamps to the microsecond', () => {
  it('timestamptz against timestamptz: a 1 µs difference is a mismatch of 0.000001 s in merge, sql-pushdown and bisect alike', async () => {
    const schema = await tables()
    const [l, r] = [`pg:${schema}.l`, `pg:${schema}.r`]
    const exact = await Promise.all(STRATEGIES.map((s) => check(l, r, ['--type', 'ts=timestamp', ...s])))
    expect(exact.map((x) => x.strategy)).toEqual(['sql-pushdown', 'merge', 'bisect'])
    for (const x of exact) {
      expect(x.counts).toEqual({matched: 1, mismatched: 4, explained: 0, unexplained: 4, parity_pct: 20})
      expect(x.columns).toEqual({ts: {mismatches: 4, explained: 0, max_abs_diff: '0.002'}})
      expect(x.mismatches).toEqual(['k1 mismatch ts -', 'k3 mismatch ts -', 'k4 mismatch ts -', 'k5 mismatch ts -'])
    }

    // a tolerance of one microsecond: k1 and k5 are within it, k3 (2 µs) and k4 (2 ms) are not;
    // with 0.002s all are; a rule on abs_diff in seconds reads the µs digits
    const rules = join(tempDir('parity-us-'), 'rules.yaml')
    writeFileSync(rules, 'rules:\n  - name: two-micros\n    reason: legacy clock\n    when: {kind: mismatch, column: ts, abs_diff: "<= 0.000002"}\n')
    const tol = await Promise.all(STRATEGIES.map((s) => check(l, r, ['--type', 'ts=timestamp', '--tolerance', 'ts=0.000001s', '--rules', rules, ...s])))
    for (const x of tol) {
      expect(x.counts).toEqual({matched: 3, mismatched: 2, explained: 1, unexplained: 1, parity_pct: 80})
      expect(x.columns).toEqual({ts: {mismatches: 2, explained: 1, max_abs_diff: '0.002'}})
      expect(x.mismatches).toEqual(['k3 mismatch ts rule two-micros: legacy clock', 'k4 mismatch ts -'])
    }
    const loose = await Promise.all(STRATEGIES.map((s) => check(l, r, ['--type', 'ts=timestamp', '--tolerance', 'ts=0.002s', ...s])))
    for (const x of loose) expect(x.counts).toEqual({matched: 5, mismatched: 0, explained: 0, unexplained: 0, parity_pct: 100})
    const under = await Promise.all(STRATEGIES.map((s) => check(l, r, ['--type', 'ts=timestamp', '--tolerance', 'ts=0.001999s', ...s])))
    for (const x of under) expect(x.mismatches).toEqual(['k4 mismatch ts -'])
  })

  it('the same instant written otherwise is equal, a microsecond apart is not (text against timestamptz, CSV against timestamptz)', async () => {
    const schema = await tables()
    const dir = tempDir('parity-us-')
    const csv = join(dir, 'legacy.csv')
    writeFileSync(csv, ['k,ts', ...TEXT_ROWS.map(([k, v]) => `${k},${v}`)].join('\n') + '\n')
    const right = `pg:${schema}.rt`
    const flags = ['--type', 'ts=timestamp:Europe/Moscow']
    const runs = [
      ...(await Promise.all(STRATEGIES.map((s) => check(`pg:${schema}.lt`, right, [...flags, ...s])))),
      await check(`csv:${csv}`, right, flags),
    ]
    expect(runs.map((x) => x.strategy)).toEqual(['sql-pushdown', 'merge', 'bisect', 'merge'])
    for (const x of runs) {
      expect(x.counts).toEqual({matched: 3, mismatched: 2, explained: 0, unexplained: 2, parity_pct: 60})
      expect(x.columns).toEqual({ts: {mismatches: 2, explained: 0, max_abs_diff: '0.000001'}})
      expect(x.mismatches).toEqual(['t2 mismatch ts -', 't5 mismatch ts -'])
    }
  })
})
