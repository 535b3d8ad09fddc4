/**
 * `profile` shows its source back (the human header line, `source` in --json): a pg:query= that
 * holds a connection string (a dblink() or postgres_fdw conninfo in the legacy extract) showed its
 * password. Run as a role with a password in DATABASE_URL, with debug logs: neither shows.
 */
import {randomUUID} from 'node:crypto'
import {mkdtempSync, readFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {databaseUrl, runCli, testPool} from '../helpers.js'

describe('profile does not show the passwords of its source or of DATABASE_URL', () => {
  it('pg:query= holding password=..., DATABASE_URL with a password, CUTOVER_LOG_LEVEL=debug', async () => {
    const pool = testPool()
    const role = `rv_${randomUUID().replace(/-/g, '').slice(0, 10)}`
    await pool.query(`CREATE ROLE ${role} LOGIN PASSWORD 'Dbpw-9k2m'`)
    onTestFinished(async () => {
      await pool.query(`DROP ROLE IF EXISTS ${role}`)
    })
    const url = new URL(databaseUrl(undefined, role))
    url.password = 'Dbpw-9k2m'
    const env = {DATABASE_URL: url.toString(), CUTOVER_LOG_LEVEL: 'debug'}
    const source = "pg:query=SELECT 1 AS id WHERE 'host=legacy password=Fdw-s3cr3t' <> ''"
    const json = await runCli(['profile', source, '--json'], {env})
    expect(json.code, json.stderr).toBe(0)
    expect(json.json).toMatchObject({rows: 1, source: "pg:query=SELECT 1 AS id WHERE 'host=legacy password=***' <> ''"})
    const human = await runCli(['profile', source], {env})
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toContain('password=***')
    for (const out of [json.stdout, json.stderr, human.stdout, human.stderr]) {
      expect(out).not.toContain('Fdw-s3cr3t')
      expect(out).not.toContain('Dbpw-9k2m')
    }
  })

  it('backfill --dry-run shows its source without the password of a pg:query= conninfo', async () => {
    const source = "pg:query=SELECT 1 AS id WHERE 'host=legacy password=Fdw-s3cr3t' <> ''"
    const json = await runCli(['backfill', '--from', source, '--to', `rv-${randomUUID().slice(0, 8)}.raw`, '--dry-run', '--json'], {env: {CUTOVER_LOG_LEVEL: 'debug'}})
    expect(json.code, json.stderr).toBe(0)
    expect(json.json).toMatchObject({dry_run: true, read: 1, source: "pg:query=SELECT 1 AS id WHERE 'host=legacy password=***' <> ''"})
    const human = await runCli(['backfill', '--from', source, '--to', `rv-${randomUUID().slice(0, 8)}.raw`, '--dry-run'], {env: {CUTOVER_LOG_LEVEL: 'debug'}})
    expect(human.code, human.stderr).toBe(0)
    for (const out of [json.stdout, json.stderr, human.stdout, human.stderr]) expect(out).not.toContain('Fdw-s3cr3t')
  })
})

describe('parity does not keep the password of a pg:query= side', () => {
  it('not in --json, the evidence file, the ledger or parity report', async () => {
    const source = "pg:query=SELECT 1 AS id, 'a' AS v, date '2031-02-03' AS d WHERE 'host=legacy password=Fdw-s3cr3t' <> ''"
    const dir = mkdtempSync(join(tmpdir(), 'cutover-secrets-parity-'))
    const out = join(dir, 'evidence.html')
    const date = '2031-02-03'
    const pool = testPool()
    onTestFinished(async () => {
      await pool.query(`DELETE FROM cutover.parity_runs WHERE business_date = $1 AND left_source LIKE 'pg:query=SELECT 1 AS id, ''a'' AS v%'`, [date])
    })
    const check = await runCli(['parity', 'check', '--left', source, '--right', source, '--key', 'id', '--columns', 'v', '--date', date, '--date-column', 'd', '--out', out, '--json'])
    expect(check.code, check.stderr).toBe(0)
    expect(check.json).toMatchObject({matched: 1, parity_pct: 100})
    const stored = await pool.query<{left_source: string; right_source: string}>('SELECT left_source, right_source FROM cutover.parity_runs WHERE id = $1', [check.json.run_id])
    const shown = "pg:query=SELECT 1 AS id, 'a' AS v, date '2031-02-03' AS d WHERE 'host=legacy password=***' <> ''"
    expect(stored.rows).toEqual([{left_source: shown, right_source: shown}])
    const report = await runCli(['parity', 'report', '--days', '1', '--until', date, '--json'])
    for (const text of [check.stdout, check.stderr, readFileSync(out, 'utf8'), report.stdout, report.stderr]) expect(text).not.toContain('Fdw-s3cr3t')
    expect(readFileSync(out, 'utf8')).toContain('password=***')
  })
})
