/**
 * PostgreSQL `money` in pg: sources. Its text form follows the session's lc_monetary
 * ("$1,234.56", "-$0.01", "1.234,56 €"), which the decimal normalizer rejects; every pg: read
 * path reads it as `money::numeric` instead (exact, at lc_monetary's scale): `normalize` from a
 * table and from a query, under each lc_monetary this machine has, and `parity check` of a money
 * table against a numeric one by each strategy (sql-pushdown, merge, bisect).
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import pg from 'pg'
import {describe, expect, it} from 'vitest'
import {createTestSchema, mapConcurrent, runCli, settings, testPool} from '../helpers.js'

const SPEC = `version: 1
name: pg-money
source: { topic: pg-money }
fields:
  id:  { type: string, required: true }
  amt: { type: decimal, scale: 2, precision: 20 }
`

/** id -> amount (numeric text; null for NULL): money's maximum among them */
const AMOUNTS: [string, string | null][] = [
  ['A', '1234.56'],
  ['B', '-0.01'],
  ['C', '0.00'],
  ['D', '92233720368547758.07'],
  ['E', null],
]

/** The test database's URL with the session's lc_monetary set at connection (`options=-c lc_monetary=...`). */
function urlWithMonetary(locale: string): string {
  const u = new URL(settings().databaseUrl)
  const options = `options=${encodeURIComponent(`-c lc_monetary=${locale}`)}`
  u.search = u.search ? `${u.search}&${options}` : `?${options}`
  return u.toString()
}

/** The lc_monetary settings PostgreSQL accepts here (C always; C.UTF-8 on glibc; en_US/de_DE when installed), with the text it prints for 1234.56. */
async function monetaryLocales(): Promise<{locale: string; url: string; text: string}[]> {
  const found: {locale: string; url: string; text: string}[] = []
  for (const locale of ['C', 'C.UTF-8', 'en_US.UTF-8', 'de_DE.UTF-8']) {
    const url = urlWithMonetary(locale)
    const c = new pg.Client({connectionString: url})
    try {
      await c.connect()
      const r = await c.query<{lc: string; text: string}>("SELECT current_setting('lc_monetary') AS lc, '1234.56'::numeric::money::text AS text")
      expect(r.rows[0]!.lc).toBe(locale)
      found.push({locale, url, text: r.rows[0]!.text})
    } catch (e) {
      if ((e as {code?: string}).code !== '22023') throw e // invalid value for lc_monetary: not installed
    } finally {
      await c.end().catch(() => {})
    }
  }
  return found
}

describe('pg: money columns', () => {
  it('normalize reads them as exact amounts from a table and from a query, whatever lc_monetary is', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".amounts (id text PRIMARY KEY, amt money)`)
    // numeric -> money at lc_monetary's scale (2 in every locale tried)
    await pool.query(`INSERT INTO "${schema}".amounts SELECT * FROM unnest($1::text[], $2::numeric[]::money[])`, [AMOUNTS.map((a) => a[0]), AMOUNTS.map((a) => a[1])])
    const locales = await monetaryLocales()
    expect(locales.map((l) => l.locale)).toEqual(expect.arrayContaining(['C', 'C.UTF-8']))
    // the text form is not a plain number: read as text, the normalizer would reject it
    for (const l of locales) expect(l.text).not.toBe('1234.56')

    const dir = mkdtempSync(join(tmpdir(), 'cutover-pg-money-'))
    writeFileSync(join(dir, 'spec.yaml'), SPEC)
    const sources = [
      {name: 'table', uri: `pg:${schema}.amounts?order_by=id`, order: AMOUNTS},
      // no ORDER BY is added around the query: its own order (descending) is kept
      {name: 'query', uri: `pg:query=SELECT id, amt FROM ${schema}.amounts ORDER BY id DESC`, order: [...AMOUNTS].reverse()},
    ]
    const runs = locales.flatMap((l) => sources.map((s) => ({...s, locale: l.locale, url: l.url, out: `${s.name}-${l.locale}.ndjson`})))
    const results = await mapConcurrent(runs, 2, (r) => runCli(['normalize', r.uri, '--spec', 'spec.yaml', '--out', r.out, '--json'], {cwd: dir, env: {DATABASE_URL: r.url}}))
    runs.forEach((r, i) => {
      const res = results[i]!
      expect(res.code, `${r.name} ${r.locale}: ${res.stdout}${res.stderr}`).toBe(0)
      expect(res.json).toMatchObject({read: 5, ok: 5, rejected: {}})
      const rows = readFileSync(join(dir, r.out), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown)
      expect(rows, `${r.name} ${r.locale}`).toEqual(r.order.map(([id, amt]) => ({id, amt})))
    })
  })

  it('parity check compares a money column with a numeric one as amounts, by every strategy', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".legacy (id text PRIMARY KEY, amt money)`)
    // another scale on the right (1234.5600): equal only as amounts, not as text
    await pool.query(`CREATE TABLE "${schema}".stream_same (id text PRIMARY KEY, amt numeric(24,4))`)
    await pool.query(`CREATE TABLE "${schema}".stream_off (id text PRIMARY KEY, amt numeric(24,4))`)
    const ids = AMOUNTS.map((a) => a[0])
    const amts = AMOUNTS.map((a) => a[1])
    await pool.query(`INSERT INTO "${schema}".legacy SELECT * FROM unnest($1::text[], $2::numeric[]::money[])`, [ids, amts])
    await pool.query(`INSERT INTO "${schema}".stream_same SELECT * FROM unnest($1::text[], $2::numeric[])`, [ids, amts])
    // B: -0.01 on the left, 0 on the right: one cent apart
    await pool.query(`INSERT INTO "${schema}".stream_off SELECT * FROM unnest($1::text[], $2::numeric[])`, [ids, amts.map((a, i) => (ids[i] === 'B' ? '0' : a))])

    const env = {DATABASE_URL: urlWithMonetary('C')}
    const runs = (['sql-pushdown', 'merge', 'bisect'] as const).flatMap((strategy) => (['stream_same', 'stream_off'] as const).map((right) => ({strategy, right})))
    const results = await mapConcurrent(runs, 2, (r) =>
      runCli(['parity', 'check', '--left', `pg:${schema}.legacy`, '--right', `pg:${schema}.${r.right}`, '--key', 'id', '--strategy', r.strategy, '--strict', '--json'], {env}),
    )
    runs.forEach((r, i) => {
      const res = results[i]!
      const what = `${r.strategy} ${r.right}: ${res.stdout}${res.stderr}`
      expect(res.json?.strategy, what).toBe(r.strategy)
      if (r.right === 'stream_same') {
        expect(res.code, what).toBe(0)
        expect(res.json, what).toMatchObject({left_rows: 5, right_rows: 5, matched: 5, mismatched: 0, missing_in_right: 0, extra_in_right: 0, unexplained: 0, parity_pct: 100, samples: []})
        expect(res.json.unreadable, what).toBeUndefined()
        expect(res.json.columns.amt, what).toEqual({mismatches: 0, explained: 0, max_abs_diff: null})
      } else {
        expect(res.code, what).toBe(1) // --strict: an unexplained difference
        expect(res.json, what).toMatchObject({left_rows: 5, right_rows: 5, matched: 4, mismatched: 1, unexplained: 1, parity_pct: 80})
        expect(res.json.columns.amt, what).toEqual({mismatches: 1, explained: 0, max_abs_diff: '0.01'})
        expect(res.json.samples, what).toEqual([{key: {id: 'B'}, kind: 'mismatch', column: 'amt', left: '-0.01', right: '0.0000', explanation: null}])
      }
    })
  })
})
