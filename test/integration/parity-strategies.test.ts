/**
 * The same data as PostgreSQL tables, CSV files and an EBCDIC fixed-width file: PG vs PG
 * (sql-pushdown), CSV vs PG, fixed-width vs PG and CSV vs CSV (merge), PG vs PG by merge
 * and by bisect, and PG vs PG across two databases (bisect) must give the same result: every count, every column's stats, the rules and the samples (key, kind, column,
 * explanation). Only what identifies the inputs may differ: the raw text of sample values
 * ("1 234,56" in a CSV, 1234.56 in a numeric column), the digests, the strategy, the time.
 */
import {writeFileSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {createHash, randomUUID} from 'node:crypto'
import pg from 'pg'
import {describe, expect, it, onTestFinished} from 'vitest'
import {parseCopybook} from '../../legacy-adapters/copybook.js'
import {encodeDatRecord, type DatRecord} from '../../fixtures/legacy/make-fixtures.js'
import {createTestSchema, ROOT, runCli, settings, tempDir, testPool} from '../helpers.js'

interface Txn {
  txn_id: string
  acct_id: string
  /** yyyyMMddHHmmss, Moscow time */
  txn_ts: string
  /** decimal string, scale 2 */
  amount: string
  currency: string
  merchant: string
}

/** "2026-11-20T06:15:00Z" from a Moscow yyyyMMddHHmmss (UTC+3, no DST since 2014). */
function utcOf(ts: string, plusSeconds = 0): string {
  const ms = Date.UTC(+ts.slice(0, 4), +ts.slice(4, 6) - 1, +ts.slice(6, 8), +ts.slice(8, 10) - 3, +ts.slice(10, 12), +ts.slice(12, 14)) + plusSeconds * 1000
  return new Date(ms).toISOString().replace('.000Z', 'Z')
}

function addCents(amount: string, cents: number): string {
  const v = Math.round(Number(amount) * 100) + cents // test data only: small exact values
  const s = (Math.abs(v) / 100).toFixed(2)
  return v < 0 ? `-${s}` : s
}

function commaDecimal(a: string): string {
  const neg = a.startsWith('-')
  const [i, f] = (neg ? a.slice(1) : a).split('.')
  const grouped = i!.replace(/\B(?=(\d{3})+(?!\d))/g, ' ')
  return `${neg ? '-' : ''}${grouped},${f}`
}

function makeData() {
  const left: Txn[] = []
  for (let i = 1; i <= 300; i++) {
    const h = String(8 + (i % 12)).padStart(2, '0')
    const m = String(i % 60).padStart(2, '0')
    left.push({
      txn_id: `T${String(i).padStart(6, '0')}`,
      acct_id: `A${String(i % 17).padStart(4, '0')}`,
      txn_ts: `20261120${h}${m}${String((i * 7) % 60).padStart(2, '0')}`,
      amount: `${(i * 137) % 5000}.${String(i % 100).padStart(2, '0')}`,
      currency: i % 5 === 0 ? 'USD' : 'RUB',
      merchant: i % 41 === 0 ? '' : `SHOP ${i % 23}`,
    })
  }
  left.push({...left[9]!}) // duplicate key on the left: T000010
  left.sort((a, b) => (a.txn_id < b.txn_id ? -1 : a.txn_id > b.txn_id ? 1 : 0))
  // right: the stream's output, with every kind of difference
  const right: {txn_id: string; account_id: string; event_time: string; amount: string; currency: string; merchant: string | null}[] = []
  const missing = new Set([3, 50, 120, 121, 299])
  const seen = new Set<string>()
  for (const t of left) {
    if (seen.has(t.txn_id)) continue
    seen.add(t.txn_id)
    const i = Number(t.txn_id.slice(1))
    if (missing.has(i)) continue
    let amount = t.amount
    let shift = 0
    let currency = t.currency
    let merchant: string | null = t.merchant
    if ([7, 77, 177].includes(i)) amount = addCents(amount, 1) // within the rule
    if ([8, 88, 188].includes(i)) amount = addCents(amount, 100) // unexplained
    if ([9, 99].includes(i)) shift = 1 // within the 2 s tolerance
    if ([11, 111].includes(i)) shift = 10 // beyond it
    if ([12, 112].includes(i)) currency = currency.toLowerCase() // normalized away
    if (i === 13) merchant = `  ${merchant}  ` // trimmed away
    if (merchant === '') merchant = null // null == empty
    right.push({txn_id: t.txn_id, account_id: t.acct_id, event_time: utcOf(t.txn_ts, shift), amount, currency, merchant})
    if (i === 20) right.push({...right[right.length - 1]!}) // duplicate key on the right
  }
  for (const i of [301, 302, 303, 304]) right.push({txn_id: `T${String(i).padStart(6, '0')}`, account_id: 'A0001', event_time: '2026-11-20T09:00:00Z', amount: '1.00', currency: 'RUB', merchant: 'EXTRA'})
  return {left, right}
}

const FLAGS = [
  '--key', 'txn_id',
  '--columns', 'acct_id,txn_ts,amount,currency,merchant',
  '--map', 'acct_id=account_id',
  '--map', 'txn_ts=event_time',
  '--type', 'txn_ts=timestamp:Europe/Moscow',
  '--type', 'amount=decimal',
  '--tolerance', 'txn_ts=2s',
  '--normalize', 'currency=upper',
  '--normalize', 'merchant=trim',
  '--null-equals-empty', 'merchant',
  '--samples', '100',
  '--json', '--no-ledger',
]

function comparable(r: Record<string, unknown>) {
  const {samples, digests: _d, strategy: _s, elapsed_ms: _e, ...rest} = r as {samples: {key: unknown; kind: string; column: string | null; explanation: string | null}[]} & Record<string, unknown>
  return {...rest, samples: samples.map((s) => ({key: s.key, kind: s.kind, column: s.column, explanation: s.explanation}))}
}

describe('parity strategies agree', () => {
  it('PG vs PG, CSV vs PG, fixed-width vs PG and CSV vs CSV give the same result', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    const {left, right} = makeData()
    const dir = tempDir('parity-agree-')
    const rules = join(dir, 'rules.yaml')
    writeFileSync(rules, 'rules:\n  - name: rounding\n    reason: legacy rounds half down\n    when: {kind: mismatch, column: amount, abs_diff: "<= 0.01"}\n')

    // PostgreSQL: the legacy table (no key constraint, so it may hold the duplicate) and the stream's table
    await pool.query(`CREATE TABLE "${schema}".legacy_txn (txn_id text, acct_id text, txn_ts text, amount numeric(12,2), currency text, merchant text)`)
    await pool.query(`CREATE TABLE "${schema}".txn_clean (txn_id text, account_id text, event_time timestamptz, amount numeric(12,2), currency text, merchant text)`)
    await pool.query(
      `INSERT INTO "${schema}".legacy_txn SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::text[], $6::text[])`,
      [left.map((t) => t.txn_id), left.map((t) => t.acct_id), left.map((t) => t.txn_ts), left.map((t) => t.amount), left.map((t) => t.currency), left.map((t) => t.merchant)],
    )
    await pool.query(
      `INSERT INTO "${schema}".txn_clean SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::numeric[], $5::text[], $6::text[])`,
      [right.map((t) => t.txn_id), right.map((t) => t.account_id), right.map((t) => t.event_time), right.map((t) => t.amount), right.map((t) => t.currency), right.map((t) => t.merchant)],
    )

    // CSV files: the legacy one with ";" and decimal commas, in reverse order (so it goes through the external sort)
    const leftCsv = join(dir, 'legacy.csv')
    writeFileSync(leftCsv, ['txn_id;acct_id;txn_ts;amount;currency;merchant', ...[...left].reverse().map((t) => [t.txn_id, t.acct_id, t.txn_ts, commaDecimal(t.amount), t.currency, t.merchant].join(';'))].join('\n') + '\n')
    const rightCsv = join(dir, 'stream.csv')
    writeFileSync(rightCsv, ['txn_id,account_id,event_time,amount,currency,merchant', ...right.map((t) => [t.txn_id, t.account_id, t.event_time, t.amount, t.currency, t.merchant === null ? '' : `"${t.merchant}"`].join(','))].join('\n') + '\n')

    // the EBCDIC fixed-width file through the copybook
    const cb = parseCopybook(readFileSync(join(ROOT, 'fixtures/legacy/txn.cpy'), 'utf8'), 'txn.cpy')
    const dat = join(dir, 'TXN.DAT')
    writeFileSync(
      dat,
      Buffer.concat(
        left.map((t) => {
          const r: DatRecord = {
            txn_id: t.txn_id, acct_id: t.acct_id, txn_date: t.txn_ts.slice(0, 8), txn_time: t.txn_ts.slice(8), amount: t.amount, currency: t.currency,
            merchant: t.merchant === '' ? null : t.merchant, mcc: '5411', fee: '0.00', status_code: 'A', auth_count: '1', last_amt_1: '0.00', last_amt_2: '0.00', last_amt_3: '0.00',
          }
          return encodeDatRecord(cb, r)
        }),
      ),
    )

    const pgLeft = `pg:${schema}.legacy_txn`
    const pgRight = `pg:${schema}.txn_clean`
    const csvLeft = `csv:${leftCsv}?delimiter=;`
    const fixedLeft = `fixed:${dat}?copybook=${join(ROOT, 'fixtures/legacy/txn.cpy')}&encoding=cp037`
    const run = async (l: string, r: string, extra: string[] = [], env: Record<string, string> = {}) => {
      const out = await runCli(['parity', 'check', '--left', l, '--right', r, ...FLAGS, '--rules', rules, '--sort-run-rows', '50', ...extra], {env})
      expect(out.stderr).toBe('')
      expect(out.code).toBe(0)
      return out.json as Record<string, unknown>
    }
    const pgpg = await run(pgLeft, pgRight)
    const csvpg = await run(csvLeft, pgRight)
    const fixedpg = await run(fixedLeft, pgRight)
    const csvcsv = await run(csvLeft, `csv:${rightCsv}`)
    const pgpgMerge = await run(pgLeft, pgRight, ['--strategy', 'merge'])
    const pgpgBisect = await run(pgLeft, pgRight, ['--strategy', 'bisect', '--bisect-leaf-rows', '7'])

    // the stream's table in another database: checksum-and-bisect, chosen automatically
    const u = new URL(settings().databaseUrl)
    const otherDb = `parity_${randomUUID().replace(/-/g, '').slice(0, 10)}`
    const admin = new pg.Client({connectionString: settings().databaseUrl})
    await admin.connect()
    await admin.query(`CREATE DATABASE "${otherDb}"`)
    await admin.end()
    onTestFinished(async () => {
      const a = new pg.Client({connectionString: settings().databaseUrl})
      await a.connect()
      await a.query(`DROP DATABASE IF EXISTS "${otherDb}" WITH (FORCE)`)
      await a.end()
    })
    u.pathname = `/${otherDb}`
    const other = new pg.Client({connectionString: u.toString()})
    await other.connect()
    await other.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".txn_clean (txn_id text, account_id text, event_time timestamptz, amount numeric(12,2), currency text, merchant text)`)
    await other.query(
      `INSERT INTO "${schema}".txn_clean SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::numeric[], $5::text[], $6::text[])`,
      [right.map((t) => t.txn_id), right.map((t) => t.account_id), right.map((t) => t.event_time), right.map((t) => t.amount), right.map((t) => t.currency), right.map((t) => t.merchant)],
    )
    await other.end()
    const bisect = await run(pgLeft, pgRight, ['--bisect-leaf-rows', '5'], {CUTOVER_RIGHT_DATABASE_URL: u.toString()})

    expect(pgpg.strategy).toBe('sql-pushdown')
    for (const r of [csvpg, fixedpg, csvcsv, pgpgMerge]) expect(r.strategy).toBe('merge')
    expect(pgpgBisect.strategy).toBe('bisect')
    expect(bisect.strategy).toBe('bisect')

    // the expected numbers, from the planted differences
    expect(pgpg).toMatchObject({
      left_rows: 301,
      right_rows: 300,
      duplicate_keys_left: 1, // T000010
      duplicate_keys_right: 1, // T000020
      missing_in_right: 5,
      extra_in_right: 4,
      mismatched: 3 + 3 + 2, // amounts within the rule, amounts off by 1.00, timestamps 10 s off
      explained: 3,
      unexplained: 2 + 5 + 4 + 3 + 2,
      matched: 300 - 2 - 5 - 8,
      rules: {rounding: 3},
    })
    expect((pgpg.columns as Record<string, unknown>).amount).toEqual({mismatches: 6, explained: 3, max_abs_diff: '1'})
    expect((pgpg.columns as Record<string, unknown>).txn_ts).toEqual({mismatches: 2, explained: 0, max_abs_diff: '10'})
    expect((pgpg.columns as Record<string, unknown>).currency).toEqual({mismatches: 0, explained: 0, max_abs_diff: null})
    expect(pgpg.parity_pct).toBe(Math.floor(((285 + 3) / 304) * 100 * 10_000) / 10_000)

    const expected = comparable(pgpg)
    expect(comparable(csvpg)).toEqual(expected)
    expect(comparable(fixedpg)).toEqual(expected)
    expect(comparable(csvcsv)).toEqual(expected)
    expect(comparable(pgpgMerge)).toEqual(expected)
    expect(comparable(pgpgBisect)).toEqual(expected)
    expect(comparable(bisect)).toEqual(expected)
    // the same tables give the same checksum digests, wherever they live
    expect(bisect.digests).toEqual(pgpgBisect.digests)
    // The legacy table's txn_ts is text and the stream's a timestamptz, so every range hashes
    // differently above and all rows were read. Two copies of the stream's table, two amounts
    // apart: only the ranges that differ are read row by row.
    const copy = new pg.Client({connectionString: u.toString()})
    await copy.connect()
    await copy.query(`UPDATE "${schema}".txn_clean SET amount = amount + 5 WHERE txn_id IN ('T000100', 'T000250')`)
    await copy.end()
    const logged = await runCli(
      ['parity', 'check', '--left', pgRight, '--right', pgRight, '--key', 'txn_id', '--type', 'amount=decimal', '--bisect-leaf-rows', '5', '--json', '--no-ledger', '--log-level', 'info'],
      {env: {CUTOVER_RIGHT_DATABASE_URL: u.toString()}},
    )
    expect(logged.code).toBe(0)
    expect(logged.json).toMatchObject({strategy: 'bisect', mismatched: 2, duplicate_keys_left: 1, duplicate_keys_right: 1, missing_in_right: 0, extra_in_right: 0, matched: 299 - 2 - 1})
    const done = logged.stderr.split('\n').filter((l) => l.includes('parity.bisect.done')).map((l) => JSON.parse(l) as {rows_read: number; ranges: {differing: number; compared: number}[]})[0]!
    expect(done.rows_read).toBeGreaterThan(0)
    expect(done.rows_read).toBeLessThan(60) // of 600: the two changed ranges and the one with the duplicate key
    expect(done.ranges.at(-1)!.differing).toBeGreaterThan(0)
    expect(done.ranges.at(-1)!.differing).toBeLessThanOrEqual(3)
    // same pg inputs read by the merge: same digests as each other run of the merge on them, and a
    // digest of rows (a SHA-256, not the one of no input)
    const mergeDigest = (pgpgMerge.digests as {right: string}).right
    expect(mergeDigest).toBe((csvpg.digests as {right: string}).right)
    expect(mergeDigest).toMatch(/^[0-9a-f]{64}$/)
    expect(mergeDigest).not.toBe(createHash('sha256').digest('hex'))
  })
})
