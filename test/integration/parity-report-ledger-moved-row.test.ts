/**
 * `parity report` over a ledger whose failing row was moved to another day afterwards: the hash
 * chain sees the row changed, and because its business date may be what changed, a row no day of
 * the window holds now blocks the verdict (it passed READY: the row's new day was outside the
 * window, and only the window's rows were checked against the chain's findings).
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createdFreshDatabase, runCli, sqlOnce, tempDir} from '../helpers.js'

describe('parity report: a chained ledger row moved out of the window', () => {
  it('blocks the verdict, says which run and where it is filed now, in --json, text and the evidence', async () => {
    const url = await createdFreshDatabase()
    const env = {DATABASE_URL: url}
    await sqlOnce(
      url,
      `CREATE TABLE legacy(id int primary key, business_date date, amount numeric(12,2));
       INSERT INTO legacy SELECT g, date '2026-11-01' + (g % 2), g FROM generate_series(1, 20) g;
       CREATE TABLE stream AS SELECT * FROM legacy;
       UPDATE stream SET amount = amount + 0.01 WHERE id = 4;
       CREATE TABLE other AS SELECT * FROM legacy;`,
    )
    // each day: legacy against stream (2026-11-01 fails: id 4 is off by a cent) and against other (passes)
    const ids: number[] = []
    for (const d of ['2026-11-01', '2026-11-02']) {
      for (const right of ['pg:stream', 'pg:other']) {
        const c = await runCli(['parity', 'check', '--left', 'pg:legacy', '--right', right, '--key', 'id', '--date', d, '--date-column', 'business_date', '--json'], {env})
        expect(c.code, c.stderr).toBe(0)
        ids.push(c.json.run_id as number)
      }
    }
    const failing = ids[0]!
    const before = await runCli(['parity', 'report', '--days', '2', '--until', '2026-11-02', '--json'], {env})
    expect(before.json.per_day.map((d: {status: string}) => d.status)).toEqual(['blocked', 'ok'])

    // the failing run filed under a day long gone: 2026-11-01 keeps only its passing run
    await sqlOnce(url, `UPDATE cutover.parity_runs SET business_date = '2020-01-01' WHERE id = ${failing}`)
    const out = join(tempDir('report-moved-'), 'evidence.html')
    const r = await runCli(['parity', 'report', '--days', '2', '--until', '2026-11-02', '--json', '--fail-not-ready', '--out', out], {env})
    expect(r.code, r.stderr).toBe(1)
    const j = r.json
    expect(j.per_day.map((d: {status: string}) => d.status)).toEqual(['ok', 'ok'])
    expect(j.ledger).toEqual({unchained_before: 0, verified: 3, head: {run: ids[3], row_hash: expect.any(String)}, gaps: [], changed_elsewhere: [{run: failing, filed_under: '2020-01-01'}]})
    const why = `run ${failing} was changed after the run and is filed under 2020-01-01 now, outside the window: the day it was recorded for may be what was changed`
    expect(j.verdict.ready).toBe(false)
    expect(j.verdict.blockers).toEqual([`ledger: ${why}`])
    expect(j.verdict.summary).toMatch(/^NOT READY: 2 of 2 day\(s\) .*1 ledger row\(s\) changed after their run and filed outside the window now/)
    expect(readFileSync(out, 'utf8')).toContain(`Broken: ${why}.`)
    const text = await runCli(['parity', 'report', '--days', '2', '--until', '2026-11-02'], {env})
    expect(text.stdout).toContain(`ledger: Broken: ${why}.`)
    expect(text.stdout).toContain('NOT READY')
  })
})
