/**
 * `parity check` reads a legacy file's dates in the formats the spec declares for the field (as
 * the pipeline does): `--date` filters a CSV of `MM/dd/yyyy HH:mm` (Moscow) or `yyyyMMddHHmmss`
 * (a UTC field) values against the stream's PostgreSQL table, instead of counting every left
 * row unreadable (parity 0%); a time rule reads those values too. An ISO offset beyond ±18:00,
 * which the normalizer refuses, is not matched to the instant it would name.
 *
 * Rows (instant UTC; Moscow is UTC+3):
 *   a 2026-11-20 20:30Z  MSK 20th 23:30
 *   b 2026-11-20 07:00Z  MSK 20th 10:00
 *   c 2026-11-20 22:00Z  MSK 21st 01:00   (another day in Moscow, the 20th in UTC)
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestSchema, runCli, tempDir, testPool} from '../helpers.js'

/** The stream's table of the three rows, in a schema of its own; its name. */
async function streamTable(): Promise<string> {
  const pool = testPool()
  const schema = await createTestSchema(pool)
  await pool.query(`CREATE TABLE "${schema}".r (k text PRIMARY KEY, ts timestamptz NOT NULL, v text)`)
  await pool.query(`INSERT INTO "${schema}".r VALUES ('a', '2026-11-20T20:30:00Z', 'x'), ('b', '2026-11-20T07:00:00Z', 'y'), ('c', '2026-11-20T22:00:00Z', 'z')`)
  return `pg:${schema}.r`
}

function spec(dir: string, name: string, tsField: string): string {
  const path = join(dir, `${name}.yaml`)
  writeFileSync(path, `version: 1\nname: ${name}\nsource: { topic: txn.raw, format: json }\nfields:\n  k: { type: string, required: true }\n  v: { type: string }\n  ts: ${tsField}\nkey: k\nsinks:\n  - table: txn_clean\ndlq: { topic: txn.dlq }\n`)
  return path
}

const COUNTS = ['left_rows', 'right_rows', 'matched', 'missing_in_right', 'extra_in_right', 'unexplained', 'parity_pct'] as const
const counts = (json: Record<string, unknown>) => Object.fromEntries([...COUNTS.map((f) => [f, json[f]]), ['unreadable', json.unreadable ?? null]])

async function check(args: string[]) {
  const r = await runCli(['parity', 'check', '--key', 'k', '--json', '--no-ledger', ...args])
  expect(r.code, r.stdout + r.stderr).toBe(0)
  return r.json as Record<string, unknown>
}

describe('parity check reads a legacy file in the spec field\'s date formats', () => {
  it('--date on a MM/dd/yyyy HH:mm CSV (Moscow field) against the stream table: the Moscow day, nothing unreadable', async () => {
    const right = await streamTable()
    const dir = tempDir('parity-date-formats-')
    const csv = join(dir, 'legacy.csv')
    writeFileSync(csv, 'k,ts,v\na,11/20/2026 23:30,x\nb,11/20/2026 10:00,y\nc,11/21/2026 01:00,z\n')
    const moscow = spec(dir, 'moscow', '{ type: timestamp, timezone: Europe/Moscow, formats: ["iso", "MM/dd/yyyy HH:mm"] }')
    const json = await check(['--left', `csv:${csv}`, '--right', right, '--columns', 'v', '--date', '2026-11-20', '--date-column', 'ts', '--spec', moscow])
    expect(counts(json)).toEqual({left_rows: 2, right_rows: 2, matched: 2, missing_in_right: 0, extra_in_right: 0, unexplained: 0, parity_pct: 100, unreadable: null})
    const next = await check(['--left', `csv:${csv}`, '--right', right, '--columns', 'v', '--date', '2026-11-21', '--date-column', 'ts', '--spec', moscow])
    expect(counts(next)).toEqual({left_rows: 1, right_rows: 1, matched: 1, missing_in_right: 0, extra_in_right: 0, unexplained: 0, parity_pct: 100, unreadable: null})
  })

  it('--date on a yyyyMMddHHmmss CSV whose field is in UTC (no business-day zone): the formats are used all the same', async () => {
    const right = await streamTable()
    const dir = tempDir('parity-date-formats-')
    const csv = join(dir, 'legacy.csv')
    writeFileSync(csv, 'k,ts,v\na,20261120203000,x\nb,20261120070000,y\nc,20261120220000,z\n')
    const utc = spec(dir, 'utc', '{ type: timestamp, timezone: UTC, formats: ["yyyyMMddHHmmss"] }')
    const json = await check(['--left', `csv:${csv}`, '--right', right, '--columns', 'v', '--date', '2026-11-20', '--date-column', 'ts', '--spec', utc])
    expect(counts(json)).toEqual({left_rows: 3, right_rows: 3, matched: 3, missing_in_right: 0, extra_in_right: 0, unexplained: 0, parity_pct: 100, unreadable: null})
  })

  it("a time rule reads the spec field's format (dd/MM/yyyy HH:mm), and the compared timestamps match", async () => {
    const right = await streamTable()
    const dir = tempDir('parity-date-formats-')
    const csv = join(dir, 'legacy.csv')
    // d: a legacy row after 23:00 Moscow that the stream does not have (the rule explains it)
    writeFileSync(csv, 'k,ts,v\na,20/11/2026 23:30,x\nb,20/11/2026 10:00,y\nc,21/11/2026 01:00,z\nd,21/11/2026 23:45,q\n')
    const ddmm = spec(dir, 'ddmm', '{ type: timestamp, timezone: Europe/Moscow, formats: ["dd/MM/yyyy HH:mm"] }')
    const rules = join(dir, 'rules.yaml')
    writeFileSync(rules, 'rules:\n  - name: legacy-late\n    reason: the legacy batch keeps rows after 23:00\n    when: {kind: missing_in_right, column: ts, left_time_after: "23:00", timezone: Europe/Moscow}\n')
    const json = await check(['--left', `csv:${csv}`, '--right', right, '--columns', 'v,ts', '--spec', ddmm, '--rules', rules, '--strict'])
    expect(counts(json)).toEqual({left_rows: 4, right_rows: 3, matched: 3, missing_in_right: 1, extra_in_right: 0, unexplained: 0, parity_pct: 100, unreadable: null})
    expect(json.rules).toEqual({'legacy-late': 1})
    // the Moscow day 2026-11-21 in the same format: c and d on the left, c on the right
    const day = await check(['--left', `csv:${csv}`, '--right', right, '--columns', 'v,ts', '--date', '2026-11-21', '--date-column', 'ts', '--spec', ddmm, '--rules', rules, '--strict'])
    expect(counts(day)).toEqual({left_rows: 2, right_rows: 1, matched: 1, missing_in_right: 1, extra_in_right: 0, unexplained: 0, parity_pct: 100, unreadable: null})
  })

  it('an ISO offset beyond +18:00 is not the instant it would name: a mismatch, as the normalizer refuses it', async () => {
    const dir = tempDir('parity-date-formats-')
    const left = join(dir, 'left.csv')
    const right = join(dir, 'right.csv')
    writeFileSync(left, 'k,ts\na,2026-11-20T10:00:00+18:30\nb,2026-11-20T10:00:00+18:00\n')
    writeFileSync(right, 'k,ts\na,2026-11-19T15:30:00Z\nb,2026-11-19T16:00:00Z\n')
    const json = await check(['--left', `csv:${left}`, '--right', `csv:${right}`, '--columns', 'ts', '--type', 'ts=timestamp'])
    expect({matched: json.matched, mismatched: json.mismatched}).toEqual({matched: 1, mismatched: 1})
    expect((json.samples as {key: {k: string}; kind: string}[]).map((s) => [s.key.k, s.kind])).toEqual([['a', 'mismatch']])
  })
})
