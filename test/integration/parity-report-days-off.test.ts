/**
 * `parity report --days N` counts business days: with --days-off and --holidays, the days
 * without a legacy batch are listed as "day off", need no check, and the window reaches back
 * over N business days; the evidence names what was declared off. A day off on which a run
 * found a difference still blocks. Bad weekday names and bad holiday lines are exit 2 with the
 * fix. Through bin/run.js, with a database of its own (the ledger is per database).
 */
import {createHash} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {freshDatabase, runCli, tempDir} from '../helpers.js'

// Tue 17 .. Tue 24 November 2026: Fri 20 a holiday, Sat 21 and Sun 22 weekend
const BUSINESS = ['2026-11-17', '2026-11-18', '2026-11-19', '2026-11-23', '2026-11-24']
const HOLIDAYS = '# bank holidays\n\n2026-11-20   # a holiday on a Friday\n2026-12-31\n'

describe('parity report: business days', () => {
  it('--days-off sat,sun and --holidays: days off need no check, the window counts N business days, and the evidence lists the days off', async () => {
    const env = {DATABASE_URL: freshDatabase()}
    const dir = tempDir('parity-days-off-')
    const rows = BUSINESS.map((d, i) => `${i + 1},${d},${i + 1}.00`)
    writeFileSync(join(dir, 'l.csv'), `id,business_date,amount\n${rows.join('\n')}\n9,2026-11-22,9.00\n`)
    // the streaming side differs on Sunday the 22nd only (a row the legacy batch also has)
    writeFileSync(join(dir, 'r.csv'), `id,business_date,amount\n${rows.join('\n')}\n9,2026-11-22,9.50\n`)
    writeFileSync(join(dir, 'holidays.txt'), HOLIDAYS)
    const check = async (date: string) => {
      const r = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--date', date, '--date-column', 'business_date', '--type', 'amount=decimal', '--json'], {cwd: dir, env})
      expect(r.code, r.stderr).toBe(0)
      return r.json as {run_id: number; empty?: boolean}
    }
    for (const d of BUSINESS) await check(d)
    // the nightly job also ran on Saturday: no legacy batch, both sides empty
    const saturday = await check('2026-11-21')
    expect(saturday.empty).toBe(true)

    // calendar days: the holiday and the weekend have "no check" / "no data", and block
    const calendar = await runCli(['parity', 'report', '--days', '5', '--until', '2026-11-24', '--json'], {env})
    expect(calendar.json).toMatchObject({from: '2026-11-20', to: '2026-11-24', days: 5, verdict: {ready: false}})
    expect(calendar.json.verdict.summary).toBe('NOT READY: 2 of 5 day(s) from 2026-11-20 to 2026-11-24 pass; 3 block the cutover (no data on 2026-11-21; no check on 2026-11-20, 2026-11-22)')

    const report = (extra: string[] = []) =>
      runCli(['parity', 'report', '--days', '5', '--until', '2026-11-24', '--days-off', 'Sat,sunday', '--holidays', 'holidays.txt', '--json', '--fail-not-ready', ...extra], {cwd: dir, env})
    const r = await report(['--out', 'ev.md'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({from: '2026-11-17', to: '2026-11-24', days: 5, verdict: {ready: true, blockers: []}})
    const sha = createHash('sha256').update(HOLIDAYS).digest('hex')
    expect(r.json.days_off).toEqual({weekdays: ['sat', 'sun'], holidays: ['2026-11-20', '2026-12-31'], holidays_file: 'holidays.txt', holidays_sha256: sha, in_window: ['2026-11-20', '2026-11-21', '2026-11-22']})
    expect(r.json.per_day.map((d: {date: string; status: string; ok: boolean; day_off: boolean; runs: number}) => [d.date, d.status, d.ok, d.day_off, d.runs])).toEqual([
      ['2026-11-17', 'ok', true, false, 1],
      ['2026-11-18', 'ok', true, false, 1],
      ['2026-11-19', 'ok', true, false, 1],
      ['2026-11-20', 'day off', true, true, 0],
      ['2026-11-21', 'day off', true, true, 1],
      ['2026-11-22', 'day off', true, true, 0],
      ['2026-11-23', 'ok', true, false, 1],
      ['2026-11-24', 'ok', true, false, 1],
    ])
    expect(r.json.verdict.summary).toBe(
      'READY to cut over: all 5 business day(s) from 2026-11-17 to 2026-11-24 are at or above 99.99% with no unexplained difference; 3 day(s) off not counted (2026-11-20, 2026-11-21, 2026-11-22)',
    )
    expect(r.json.verdict.criteria).toContain(`Days declared without a legacy batch (weekdays sat, sun; 2 holiday(s) from holidays.txt (SHA-256 ${sha})) are not business days`)
    const md = readFileSync(join(dir, 'ev.md'), 'utf8')
    expect(md).toContain('Threshold 99.99%, window 5 business day(s)')
    expect(md).toContain(`## Days off\n\n- Declared without a legacy batch: weekdays sat, sun; 2 holiday(s) from holidays.txt (SHA-256 ${sha}).\n- Days off in this window (not counted among the 5 business days): 2026-11-20 (holiday), 2026-11-21 (sat), 2026-11-22 (sun).`)
    expect(md).toContain('| 2026-11-20 | 0 | — | 0 | 0 | 0 | day off |')
    expect(md).toContain('| 2026-11-22 | no run (day off) |')
    const html = await report(['--out', 'ev.html'])
    expect(html.code).toBe(0)
    const page = readFileSync(join(dir, 'ev.html'), 'utf8')
    expect(page).toContain('<title>2026-11-21: day off</title>')
    expect(page).toContain('<h2>Days off</h2>\n<ul><li>Declared without a legacy batch: weekdays sat, sun; 2 holiday(s) from holidays.txt')
    expect(page).toContain('<td><span class="muted">day off</span></td>')
    const text = await runCli(['parity', 'report', '--days', '5', '--until', '2026-11-24', '--days-off', 'sat,sun', '--holidays', 'holidays.txt'], {cwd: dir, env})
    expect(text.stdout).toMatch(/^ {2}2026-11-22 +— +runs 0 +unexplained 0 +day off$/m)

    // a day off is not a hiding place: a run on Sunday that finds a difference blocks
    const sunday = await check('2026-11-22')
    const blocked = await report()
    expect(blocked.code).toBe(1)
    expect(blocked.json.per_day[5]).toMatchObject({date: '2026-11-22', status: 'blocked', ok: false, day_off: true})
    expect(blocked.json.verdict.blockers).toEqual([`2026-11-22: parity 0.0000% < 99.99% (run ${sunday.run_id}: csv:r.csv)`, `2026-11-22: 1 unexplained difference(s) (run ${sunday.run_id}: csv:r.csv)`])
    expect(blocked.json.verdict.summary).toBe(
      'NOT READY: 5 of 5 business day(s) from 2026-11-17 to 2026-11-24 pass; 1 block the cutover (failing on 2026-11-22); 3 day(s) off not counted (2026-11-20, 2026-11-21, 2026-11-22)',
    )
  })

  it('bad weekday names, a week without business days, bad holiday lines and a missing file: exit 2 with the fix', async () => {
    const dir = tempDir('parity-days-off-bad-')
    writeFileSync(join(dir, 'bad.txt'), '2026-11-20\n# ok\n  2026-02-30\n')
    writeFileSync(join(dir, 'words.txt'), '2026-11-20 Unity Day\n')
    // a database that does not exist: the flags are refused before it is looked for
    const env = {DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/cutover_days_off_never_created'}
    const report = (args: string[]) => runCli(['parity', 'report', '--json', ...args], {cwd: dir, env})
    const funday = await report(['--days-off', 'sat,funday'])
    expect(funday.code).toBe(2)
    expect(funday.json.error).toMatchObject({code: 'USAGE', message: '--days-off "sat,funday": "funday" is not a day of the week', hint: expect.stringContaining('e.g. --days-off sat,sun')})
    expect((await report(['--days-off', 'sat,'])).json.error.message).toBe('--days-off "sat,": an empty name is not a day of the week')
    const all = await report(['--days-off', 'mon,tue,wed,thu,fri,sat,sun'])
    expect(all.code).toBe(2)
    expect(all.json.error.message).toBe('--days-off "mon,tue,wed,thu,fri,sat,sun" leaves no business day')
    const bad = await report(['--holidays', 'bad.txt'])
    expect(bad.code).toBe(2)
    expect(bad.json.error).toMatchObject({message: 'bad.txt:3:3: "2026-02-30" is not a day (yyyy-MM-dd)', hint: expect.stringContaining('one day off per line as yyyy-MM-dd'), line: 3, column: 3})
    expect((await report(['--holidays', 'words.txt'])).json.error.message).toBe('words.txt:1:1: "2026-11-20 Unity Day" is not a day (yyyy-MM-dd)')
    const missing = await report(['--holidays', 'nope.txt'])
    expect(missing.code).toBe(2)
    expect(missing.json.error).toMatchObject({code: 'USAGE', message: '--holidays nope.txt: no such file', hint: expect.stringContaining('one day off per line')})
    const help = await runCli(['parity', 'report', '--help'])
    expect(help.stdout.replace(/\s+/g, ' ')).toContain('business days in the window: calendar days, but for those declared off by --days-off and --holidays')
  })
})
