/**
 * `--date D --date-column C` is a business day: with `--spec`, the day of a timestamp is its
 * date in the timezone of the spec's field for C (Europe/Moscow here), in every strategy (merge,
 * sql-pushdown, bisect, auto) and on a CSV side; without --spec (or with a UTC field) it is the
 * UTC date, as before. A pg: `timestamp` (without zone) column is its own day either way.
 *
 * Rows (instant UTC -> Moscow), around midnight in Moscow:
 *   a 2026-11-20 20:30Z  MSK 20th 23:30   UTC day 20, MSK day 20
 *   b 2026-11-20 21:30Z  MSK 21st 00:30   UTC day 20, MSK day 21
 *   c 2026-11-20 23:30Z  MSK 21st 02:30   UTC day 20, MSK day 21   (missing on the right)
 *   d 2026-11-19 22:00Z  MSK 20th 01:00   UTC day 19, MSK day 20
 *   e 2026-11-21 20:59:59Z MSK 21st 23:59:59 UTC day 21, MSK day 21
 *   f 2026-11-21 21:00Z  MSK 22nd 00:00   UTC day 21, MSK day 22
 *   g 2026-11-20 01:00Z  MSK 20th 04:00   UTC day 20, MSK day 20
 *   h 2026-11-19 20:45Z  MSK 19th 23:45   UTC day 19, MSK day 19
 * The right side's v of b differs.
 *
 * g and h are there for the readings that go wrong the other way. In a `timestamp` (without
 * zone) column, g is written 01:00 on the 20th. Read as Moscow time, that is the 19th in UTC,
 * so g would move to the 19th (every other row is written 20:30 or later, and keeps its day when
 * read 3 hours earlier). In the CSV, g and h carry no offset: they are Moscow wall times, and h
 * (23:45) is read in the spec's zone. Read as UTC and then dated in Moscow, h would move to the
 * 20th.
 */
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestSchema, mapConcurrent, runCli, testPool} from '../helpers.js'

const ROWS: [string, string, string][] = [
  ['a', '2026-11-20T20:30:00Z', 'x'],
  ['b', '2026-11-20T21:30:00Z', 'y'],
  ['c', '2026-11-20T23:30:00Z', 'z'],
  ['d', '2026-11-19T22:00:00Z', 'w'],
  ['e', '2026-11-21T20:59:59Z', 'u'],
  ['f', '2026-11-21T21:00:00Z', 't'],
  ['g', '2026-11-20T01:00:00Z', 's'],
  ['h', '2026-11-19T20:45:00Z', 'r'],
]
/** the same instants as a legacy file writes them: Moscow offsets, one in UTC, two without an offset (Moscow wall time) */
const CSV_TS: Record<string, string> = {
  a: '2026-11-20T23:30:00+03:00',
  b: '2026-11-21T00:30:00+03:00',
  c: '2026-11-21T02:30:00+03:00',
  d: '2026-11-20T01:00:00+03:00',
  e: '2026-11-21T20:59:59Z',
  f: '2026-11-22T00:00:00+03:00',
  g: '2026-11-20T04:00:00',
  h: '2026-11-19T23:45:00',
}

const FIELDS = ['left_rows', 'right_rows', 'matched', 'mismatched', 'missing_in_right', 'extra_in_right'] as const
const count = (l: number, r: number, matched: number, mismatched: number, missing: number) => ({left_rows: l, right_rows: r, matched, mismatched, missing_in_right: missing, extra_in_right: 0})

/** per day, in Moscow (with the spec) and in UTC (without) */
const MSK = {'2026-11-19': count(1, 1, 1, 0, 0), '2026-11-20': count(3, 3, 3, 0, 0), '2026-11-21': count(3, 2, 1, 1, 1), '2026-11-22': count(1, 1, 1, 0, 0)}
const UTC = {'2026-11-19': count(2, 2, 2, 0, 0), '2026-11-20': count(4, 3, 2, 1, 1), '2026-11-21': count(2, 2, 2, 0, 0), '2026-11-22': count(0, 0, 0, 0, 0)}

function specFile(dir: string, zone: string | undefined): string {
  const path = join(dir, `pipeline-${zone ? zone.replace('/', '-') : 'nozone'}.yaml`)
  writeFileSync(
    path,
    `version: 1\nname: business-day\nsource: { topic: txn.raw, format: json }\nfields:\n  k: { type: string, required: true }\n  v: { type: string }\n` +
      `  event_time: { from: ts, type: timestamp, ${zone ? `timezone: ${zone}, ` : ''}formats: [iso] }\nkey: k\nsinks:\n  - table: txn_clean\ndlq: { topic: txn.dlq }\n`,
  )
  return path
}

async function setup(tsType: 'timestamptz' | 'timestamp') {
  const pool = testPool()
  const schema = await createTestSchema(pool)
  const values = (rows: typeof ROWS) => rows.map(([k, ts, v]) => `('${k}', '${ts}'::timestamptz${tsType === 'timestamp' ? ' AT TIME ZONE \'UTC\'' : ''}, '${v}')`).join(', ')
  await pool.query(`CREATE TABLE "${schema}".l (k text PRIMARY KEY, ts ${tsType} NOT NULL, v text)`)
  await pool.query(`INSERT INTO "${schema}".l VALUES ${values(ROWS)}`)
  await pool.query(`CREATE TABLE "${schema}".r (k text PRIMARY KEY, ts ${tsType} NOT NULL, v text)`)
  await pool.query(`INSERT INTO "${schema}".r VALUES ${values(ROWS.filter(([k]) => k !== 'c').map(([k, ts, v]) => [k, ts, k === 'b' ? 'Y' : v] as [string, string, string]))}`)
  const dir = mkdtempSync(join(tmpdir(), 'parity-day-'))
  const csv = join(dir, 'legacy.csv')
  writeFileSync(csv, 'k,ts,v\n' + ROWS.map(([k, , v]) => `${k},${CSV_TS[k]},${v}`).join('\n') + '\n')
  return {schema, dir, csv}
}

async function check(left: string, right: string, day: string, extra: string[]) {
  const r = await runCli(['parity', 'check', '--left', left, '--right', right, '--key', 'k', '--columns', 'v', '--date', day, '--date-column', 'ts', ...extra, '--json', '--no-ledger'])
  expect(r.code, `${left} ${day} ${extra.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0)
  return Object.fromEntries(FIELDS.map((f) => [f, (r.json as Record<string, unknown>)[f]]))
}

interface Case {
  label: string
  left: string
  day: string
  extra: string[]
  want: ReturnType<typeof count>
}

/**
 * Every case's check, each its own `parity check` process, a few at once (they share nothing:
 * --no-ledger, read-only sides), each result held to what its case wants.
 */
async function checkAll(right: string, cases: Case[]): Promise<void> {
  const got = await mapConcurrent(cases, 4, (c) => check(c.left, right, c.day, c.extra))
  cases.forEach((c, i) => expect(got[i], c.label).toEqual(c.want))
}

const STRATEGIES = ['merge', 'sql-pushdown', 'bisect', 'auto'] as const
const strategy = (s: (typeof STRATEGIES)[number]) => (s === 'auto' ? [] : ['--strategy', s])

describe('parity check --date: the business day in the spec field\'s timezone', () => {
  it('timestamptz pg: sides (every strategy) and a CSV side: the Moscow day with --spec, the UTC day without', async () => {
    const {schema, dir, csv} = await setup('timestamptz')
    const moscow = specFile(dir, 'Europe/Moscow')
    const utcSpec = specFile(dir, undefined)
    const cases: Case[] = []
    for (const [day, want] of Object.entries(MSK)) {
      for (const s of STRATEGIES) cases.push({label: `MSK ${day} ${s}`, left: `pg:${schema}.l`, day, extra: ['--spec', moscow, ...strategy(s)], want})
      cases.push({label: `MSK ${day} csv`, left: `csv:${csv}`, day, extra: ['--spec', moscow], want})
    }
    for (const [day, want] of Object.entries(UTC)) {
      for (const spec of [[], ['--spec', utcSpec]]) {
        for (const s of STRATEGIES) cases.push({label: `UTC ${day} ${s} ${spec.join(' ')}`, left: `pg:${schema}.l`, day, extra: [...spec, ...strategy(s)], want})
        cases.push({label: `UTC ${day} csv ${spec.join(' ')}`, left: `csv:${csv}`, day, extra: spec, want})
      }
    }
    expect(cases).toHaveLength(60)
    await checkAll(`pg:${schema}.r`, cases)
  }, 240_000)

  it('a pg: timestamp (without zone) column keeps its own day, with or without the zone in the spec', async () => {
    const {schema, dir} = await setup('timestamp')
    const moscow = specFile(dir, 'Europe/Moscow')
    const cases: Case[] = []
    for (const [day, want] of Object.entries(UTC)) {
      for (const s of ['merge', 'sql-pushdown', 'bisect'] as const) cases.push({label: `${day} ${s}`, left: `pg:${schema}.l`, day, extra: ['--spec', moscow, '--strategy', s], want})
    }
    await checkAll(`pg:${schema}.r`, cases)
  }, 120_000)
})
