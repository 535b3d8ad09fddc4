/**
 * `parity report` over a ledger edited after its runs: a row whose counts no longer agree with
 * the result document the same INSERT wrote blocks its day and is named in --json and the
 * evidence; text from the ledger (a report SHA-256 edited into markup) is escaped in the HTML.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createdFreshDatabase, freshDatabase, runCli, sqlOnce, tempDir} from '../helpers.js'

describe('parity report: a ledger row edited after the run', () => {
  it('blocks its day, names the fields that differ, and ledger text cannot inject markup into evidence.html', async () => {
    const url = await createdFreshDatabase()
    const env = {DATABASE_URL: url}
    const dir = tempDir('review-report-ledger-')
    await sqlOnce(
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
    await sqlOnce(url, `UPDATE cutover.parity_runs SET unexplained = 0, mismatched = 0, matched = matched + 1, parity_pct = 100 WHERE id = ${failingRun}`)
    await sqlOnce(url, `UPDATE cutover.parity_runs SET report_sha256 = '<script>alert(1)</script>' WHERE id = ${otherRun}`)
    const out = join(dir, 'evidence.html')
    const r = await runCli(['parity', 'report', '--days', '2', '--json', '--out', out, '--fail-not-ready'], {env})
    expect(r.code, r.stdout + r.stderr).toBe(1)
    expect(r.json.verdict.ready).toBe(false)
    const day = r.json.per_day[0]
    expect(day.status).toBe('blocked')
    const changed = 'changed after the run: its content no longer matches its hash'
    expect(day.blockers).toEqual([`ledger row of run ${failingRun} (pg:stream) was edited after the run: matched 5 (result 4), mismatched 0 (result 1), unexplained 0 (result 1), parity_pct 100.0000 (result 80), ${changed}`])
    expect(r.json.runs.find((x: {id: number}) => x.id === failingRun).edited).toEqual(['matched 5 (result 4)', 'mismatched 0 (result 1)', 'unexplained 0 (result 1)', 'parity_pct 100.0000 (result 80)', changed])
    // the report SHA-256 is no count of the result document: the hash chain sees its edit
    expect(r.json.runs.find((x: {id: number}) => x.id === otherRun).edited).toEqual([changed])
    expect(r.json.per_day[1].status).toBe('blocked')
    const html = readFileSync(out, 'utf8')
    expect(html).not.toContain('<script')
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;')
    expect(html).toContain(`edited after the run: matched 5 (result 4), mismatched 0 (result 1), unexplained 0 (result 1), parity_pct 100.0000 (result 80), ${changed}`)
  })
})

describe('parity report: the ledger\'s hash chain', () => {
  it('sees an edit that keeps the columns and the result in step, a row added by hand and rows deleted; the head it prints moves with each run', async () => {
    const url = await createdFreshDatabase()
    const env = {DATABASE_URL: url}
    await sqlOnce(
      url,
      `CREATE TABLE legacy(id int primary key, business_date date, amount numeric(12,2));
       INSERT INTO legacy SELECT g, date '2026-11-01' + (g % 4), g FROM generate_series(1, 20) g;
       CREATE TABLE stream AS SELECT * FROM legacy;
       UPDATE stream SET amount = amount + 0.01 WHERE id = 4;`,
    )
    const days = ['2026-11-01', '2026-11-02', '2026-11-03', '2026-11-04']
    const ids: number[] = []
    for (const d of days) {
      const c = await runCli(['parity', 'check', '--left', 'pg:legacy', '--right', 'pg:stream', '--key', 'id', '--date', d, '--date-column', 'business_date', '--json'], {env})
      expect(c.code, c.stderr).toBe(0)
      ids.push(c.json.run_id as number)
    }
    const report = async () => {
      const r = await runCli(['parity', 'report', '--days', '4', '--until', '2026-11-04', '--json'], {env})
      expect(r.code, r.stderr).toBe(0)
      return r.json
    }
    // 2026-11-01 fails (id 4, an amount off by a cent); the others pass; the chain holds the four runs
    const first = await report()
    expect(first.per_day.map((d: {status: string}) => d.status)).toEqual(['blocked', 'ok', 'ok', 'ok'])
    expect(first.ledger).toEqual({unchained_before: 0, verified: 4, head: {run: ids[3], row_hash: expect.stringMatching(/^[0-9a-f]{64}$/)}, gaps: []})
    const head = first.ledger.head.row_hash as string
    // reading does not move it; the next run chains to it
    expect((await report()).ledger.head).toEqual(first.ledger.head)
    const again = await runCli(['parity', 'check', '--left', 'pg:legacy', '--right', 'pg:stream', '--key', 'id', '--date', '2026-11-04', '--date-column', 'business_date', '--json'], {env})
    expect(again.code, again.stderr).toBe(0)
    const stored = await sqlOnce(url, `SELECT prev_hash FROM cutover.parity_runs WHERE id = ${again.json.run_id}`)
    expect(stored.rows[0].prev_hash).toBe(head)

    // the failing run made to pass in every place a reader compares: the columns AND the result document
    await sqlOnce(
      url,
      `UPDATE cutover.parity_runs SET unexplained = 0, mismatched = 0, matched = matched + 1, parity_pct = 100,
         result = result || jsonb_build_object('unexplained', 0, 'mismatched', 0, 'matched', matched + 1, 'parity_pct', 100)
       WHERE id = ${ids[0]}`,
    )
    // a passing row copied by hand onto 2026-11-03, and the row of 2026-11-02 deleted
    await sqlOnce(
      url,
      `INSERT INTO cutover.parity_runs (business_date, left_source, right_source, options, strategy, left_rows, right_rows, matched, mismatched,
         missing_in_right, extra_in_right, duplicate_keys_left, duplicate_keys_right, explained, unexplained, parity_pct, left_digest, right_digest,
         report_sha256, report_path, result, run_by, started_at)
       SELECT business_date, left_source, right_source, options, strategy, left_rows, right_rows, matched, mismatched, missing_in_right, extra_in_right,
         duplicate_keys_left, duplicate_keys_right, explained, unexplained, parity_pct, left_digest, right_digest, report_sha256, report_path, result, run_by, started_at
         FROM cutover.parity_runs WHERE id = ${ids[2]};
       DELETE FROM cutover.parity_runs WHERE id = ${ids[1]};`,
    )
    const r = await runCli(['parity', 'report', '--days', '4', '--until', '2026-11-04', '--json', '--fail-not-ready'], {env})
    expect(r.code, r.stderr).toBe(1)
    const j = r.json
    const added = Math.max(...(j.runs as {id: number}[]).map((x) => x.id))
    expect(j.per_day.map((d: {date: string; status: string}) => [d.date, d.status])).toEqual([
      ['2026-11-01', 'blocked'],
      ['2026-11-02', 'no check'],
      ['2026-11-03', 'blocked'],
      ['2026-11-04', 'ok'],
    ])
    expect(j.per_day[0].blockers).toEqual([`ledger row of run ${ids[0]} (pg:stream) was edited after the run: changed after the run: its content no longer matches its hash`])
    expect(j.per_day[2].blockers).toEqual([`ledger row of run ${added} (pg:stream) was edited after the run: not in the ledger's hash chain: written outside parity check`])
    const gap = `rows between run ${ids[0]} and run ${ids[2]} were deleted from the ledger (run ${ids[2]} follows another row than run ${ids[0]})`
    expect(j.ledger).toEqual({unchained_before: 0, verified: 3, head: {run: again.json.run_id, row_hash: expect.any(String)}, gaps: [gap]})
    expect(j.verdict.blockers[0]).toBe(`ledger: ${gap}`)
    expect(j.verdict.summary).toContain('rows deleted from the ledger: 1 gap(s) in its hash chain')
    // the text output names the head and the gap
    const text = await runCli(['parity', 'report', '--days', '4', '--until', '2026-11-04'], {env})
    expect(text.stdout).toContain(`ledger: Broken: ${gap}.`)
    expect(text.stdout).toContain(`head run ${again.json.run_id}, row hash `)
  })

  it('rows recorded before the chain existed are counted apart and do not block; the chain starts after them', async () => {
    const url = freshDatabase()
    const env = {DATABASE_URL: url}
    const dir = tempDir('report-chain-before-')
    writeFileSync(join(dir, 'l.csv'), 'id,amount\n1,1.00\n')
    const check = async () => {
      const c = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:l.csv', '--key', 'id', '--json'], {cwd: dir, env})
      expect(c.code, c.stderr).toBe(0)
      return c.json.run_id as number
    }
    await check()
    await check()
    // as an earlier version of cutover left them: no hashes
    await sqlOnce(url, 'UPDATE cutover.parity_runs SET prev_hash = NULL, row_hash = NULL')
    const third = await check()
    const r = await runCli(['parity', 'report', '--days', '1', '--json'], {env})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.ledger).toEqual({unchained_before: 2, verified: 1, head: {run: third, row_hash: expect.any(String)}, gaps: []})
    expect(r.json.verdict.ready).toBe(true)
    expect(r.json.runs.every((x: {edited: string[]}) => x.edited.length === 0)).toBe(true)
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
    // the day's one pair passes; two expected: it blocks; none expected is bad usage
    const one = await runCli(['parity', 'report', '--days', '1', '--json'], {env})
    expect(one.json).toMatchObject({expect_pairs: 1, verdict: {ready: true}})
    const two = await runCli(['parity', 'report', '--days', '1', '--expect-pairs', '2', '--json'], {env})
    expect(two.code, two.stderr).toBe(0)
    expect(two.json).toMatchObject({expect_pairs: 2, verdict: {ready: false, blockers: [expect.stringMatching(/: 1 of 2 expected left\/right pairs checked \(--expect-pairs 2\)$/)]}})
    const none = await runCli(['parity', 'report', '--expect-pairs', '0', '--json'], {env})
    expect(none.code, none.stdout).toBe(2)
  })
})
