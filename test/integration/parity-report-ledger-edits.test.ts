/**
 * `parity report` over a ledger edited after its runs: a row whose counts no longer agree with
 * the result document the same INSERT wrote blocks its day and is named in --json and the
 * evidence; text from the ledger (a report SHA-256 edited into markup) is escaped in the HTML.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {describe, expect, it} from 'vitest'
import {freshDatabase, runCli, tempDir} from '../helpers.js'

async function sql(url: string, text: string): Promise<pg.QueryResult> {
  const c = new pg.Client({connectionString: url})
  await c.connect()
  try {
    return await c.query(text)
  } finally {
    await c.end()
  }
}

describe('parity report: a ledger row edited after the run', () => {
  it('blocks its day, names the fields that differ, and ledger text cannot inject markup into evidence.html', async () => {
    const url = freshDatabase()
    const admin = new URL(url)
    const name = admin.pathname.slice(1)
    admin.pathname = '/postgres'
    await sql(admin.toString(), `CREATE DATABASE "${name}"`)
    const env = {DATABASE_URL: url}
    const dir = tempDir('review-report-ledger-')
    await sql(
      url,
      `CREATE TABLE legacy(id int primary key, business_date date, amount numeric(12,2));
       CREATE TABLE stream(id int primary key, business_date date, amount numeric(12,2));
       INSERT INTO legacy SELECT g, date '2026-11-01' + (g % 2), g FROM generate_series(1, 10) g;
       INSERT INTO stream SELECT * FROM legacy;
       UPDATE stream SET amount = amount + 0.01 WHERE id = 2;`,
    )
    const ids: number[] = []
    for (const d of ['2026-11-01', '2026-11-02']) {
      const r = await runCli(['parity', 'check', '--left', 'pg:legacy', '--right', 'pg:stream', '--key', 'id', '--date', d, '--date-column', 'business_date', '--json'], {env})
      expect(r.code, r.stderr).toBe(0)
      ids.push(r.json.run_id as number)
    }
    // id 2 is filed under 2026-11-01 (even ids): the 1st fails (4 of 5 match), the 2nd passes
    const [failingRun, otherRun] = [ids[0]!, ids[1]!]
    const before = await runCli(['parity', 'report', '--days', '2', '--json'], {env})
    expect(before.json.per_day.map((d: {date: string; status: string}) => [d.date, d.status])).toEqual([
      ['2026-11-01', 'blocked'],
      ['2026-11-02', 'ok'],
    ])
    // the failing run's row made to pass, and markup in another row's report SHA-256
    await sql(url, `UPDATE cutover.parity_runs SET unexplained = 0, mismatched = 0, matched = matched + 1, parity_pct = 100 WHERE id = ${failingRun}`)
    await sql(url, `UPDATE cutover.parity_runs SET report_sha256 = '<script>alert(1)</script>' WHERE id = ${otherRun}`)
    const out = join(dir, 'evidence.html')
    const r = await runCli(['parity', 'report', '--days', '2', '--json', '--out', out, '--fail-not-ready'], {env})
    expect(r.code, r.stdout + r.stderr).toBe(1)
    expect(r.json.verdict.ready).toBe(false)
    const day = r.json.per_day[0]
    expect(day.status).toBe('blocked')
    expect(day.blockers).toEqual([`ledger row of run ${failingRun} (pg:stream) was edited after the run: matched 5 (result 4), mismatched 0 (result 1), unexplained 0 (result 1), parity_pct 100.0000 (result 80)`])
    expect(r.json.runs.find((x: {id: number}) => x.id === failingRun).edited).toEqual(['matched 5 (result 4)', 'mismatched 0 (result 1)', 'unexplained 0 (result 1)', 'parity_pct 100.0000 (result 80)'])
    expect(r.json.runs.find((x: {id: number}) => x.id === otherRun).edited).toEqual([])
    const html = readFileSync(out, 'utf8')
    expect(html).not.toContain('<script')
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;')
    expect(html).toContain(`edited after the run: matched 5 (result 4), mismatched 0 (result 1), unexplained 0 (result 1), parity_pct 100.0000 (result 80)`)
  })
})

describe('parity report: --days out of range', () => {
  it('--days 3000000 is bad usage (exit 2 naming the flag), not an internal error from PostgreSQL', async () => {
    const url = freshDatabase()
    const env = {DATABASE_URL: url}
    // a ledger: one check of a CSV file against itself creates it
    const dir = tempDir('review-report-days-')
    writeFileSync(join(dir, 'l.csv'), 'id,amount\n1,1.00\n')
    const c = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:l.csv', '--key', 'id', '--json'], {cwd: dir, env})
    expect(c.code, c.stderr).toBe(0)
    const r = await runCli(['parity', 'report', '--days', '3000000', '--json'], {env})
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.json.error).toMatchObject({code: 'USAGE', message: '--days 3000000 is more than 36600 days (a century)'})
    const ok = await runCli(['parity', 'report', '--days', '1000', '--json'], {env})
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.json.per_day).toHaveLength(1000)
  })
})
