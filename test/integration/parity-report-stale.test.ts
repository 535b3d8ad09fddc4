/**
 * `parity report` without --until ends its window on the latest day in the ledger: when the
 * nightly checks stopped, it stayed READY for a window that ended days ago. Now such a report is
 * `stale` (the last day and the business days since, a line at the top) and not READY.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {businessDaysSince} from '../../src/parity/evidence.js'
import {createdFreshDatabase, runCli, tempDir} from '../helpers.js'

const addDays = (d: string, n: number) => new Date(Date.parse(`${d}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10)

describe('parity report: a ledger whose checks stopped', () => {
  it('counts business days since the last checked day, days off not counted', () => {
    // Friday 2026-11-27 -> Monday 2026-11-30: one business day with sat,sun off, three without
    const weekend = {weekdays: ['sat', 'sun'] as ('sat' | 'sun')[], holidays: [], holidays_file: null, holidays_sha256: null}
    expect(businessDaysSince('2026-11-27', '2026-11-30', weekend)).toBe(1)
    expect(businessDaysSince('2026-11-27', '2026-11-30')).toBe(3)
    expect(businessDaysSince('2026-11-27', '2026-12-01', {...weekend, holidays: ['2026-11-30']})).toBe(1)
    expect(businessDaysSince('2026-11-30', '2026-11-30')).toBe(0)
  })

  it('is stale and NOT READY without --until; READY for the same window with --until; current checks are not stale', async () => {
    const url = await createdFreshDatabase()
    const env = {DATABASE_URL: url}
    const dir = tempDir('parity-report-stale-')
    const today = new Date().toISOString().slice(0, 10)
    const last = addDays(today, -5)
    writeFileSync(join(dir, 'l.csv'), `id,day,amt\n1,${last},10\n`)
    const check = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:l.csv', '--key', 'id', '--date', last, '--date-column', 'day', '--json'], {env, cwd: dir})
    expect(check.code, check.stderr).toBe(0)
    const out = join(dir, 'evidence.md')
    const r = await runCli(['parity', 'report', '--days', '1', '--json', '--fail-not-ready', '--out', out], {env, cwd: dir})
    expect(r.code, r.stderr).toBe(1)
    expect(r.json).toMatchObject({to: last, stale: {last_day: last, today, business_days_since: 5}, verdict: {ready: false}})
    expect(r.json.verdict.summary).toMatch(/^NOT READY: .*stale: no check since/)
    expect(r.json.stale.message).toContain(`pass --until ${last}`)
    expect(readFileSync(out, 'utf8').split('\n')[2]).toMatch(/^\*\*STALE: the latest checked day in the ledger is/)
    const text = await runCli(['parity', 'report', '--days', '1'], {env, cwd: dir})
    expect(text.stdout.split('\n')[0]).toMatch(new RegExp(`^STALE: .* ${last}, 5 business day\\(s\\) before today .*Run today's parity check, or pass --until ${last}`))
    // weekdays off between the last day and today are not business days: 5 calendar days, fewer business days
    const off = await runCli(['parity', 'report', '--days', '1', '--json', '--days-off', 'mon,tue,wed,thu,fri,sat'], {env, cwd: dir})
    expect(off.json.stale?.business_days_since ?? 0).toBeLessThan(5)
    const past = await runCli(['parity', 'report', '--days', '1', '--until', last, '--json', '--fail-not-ready'], {env, cwd: dir})
    expect(past.code, past.stderr).toBe(0)
    expect(past.json).toMatchObject({stale: null, verdict: {ready: true}})
    // a check of today: current again
    writeFileSync(join(dir, 'l.csv'), `id,day,amt\n1,${today},10\n`)
    await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:l.csv', '--key', 'id', '--date', today, '--date-column', 'day', '--json'], {env, cwd: dir})
    const now = await runCli(['parity', 'report', '--days', '1', '--json', '--fail-not-ready'], {env, cwd: dir})
    expect(now.code, now.stderr).toBe(0)
    expect(now.json).toMatchObject({to: today, stale: null, verdict: {ready: true}})
  })
})
