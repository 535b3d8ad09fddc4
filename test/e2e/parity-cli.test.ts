/**
 * `parity check` through bin/run.js: exit codes 2 (usage, rules) and 3 (PostgreSQL
 * unreachable), the report file, and the human output.
 */
import {createHash} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import pg from 'pg'
import {runCli, settings, tempDir} from '../helpers.js'

function files(): string {
  const dir = tempDir('parity-cli-')
  writeFileSync(join(dir, 'l.csv'), 'id,amount,note\n1,1.00,a\n2,2.00,b\n3,3.00,c\n')
  writeFileSync(join(dir, 'r.csv'), 'id,amount,note\n1,1.00,a\n2,2.50,b\n4,4.00,d\n')
  return dir
}

describe('parity check on the command line', () => {
  it('exit 2 naming the fix: unknown key column, bad tolerance, broken rules file', async () => {
    const dir = files()
    const a = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'txn_id', '--json', '--no-ledger'], {cwd: dir})
    expect(a.code).toBe(2)
    expect(a.json.error).toMatchObject({code: 'USAGE', message: 'key column "txn_id" is not a column of the left side', hint: 'the left side has: id, amount, note'})
    const b = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--tolerance', 'amount=about 1', '--json', '--no-ledger'], {cwd: dir})
    expect(b.code).toBe(2)
    expect(b.json.error.message).toMatch(/not a tolerance/)
    writeFileSync(join(dir, 'rules.yaml'), 'rules:\n  - name: x\n    reason: y\n    when:\n      kind: mismatched\n')
    const c = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--rules', 'rules.yaml', '--no-ledger'], {cwd: dir})
    expect(c.code).toBe(2)
    expect(c.stderr).toMatch(/rules\.yaml:5:13: rules\.0\.when\.kind/)
  })

  it('exit 3 when PostgreSQL is unreachable, without the password', async () => {
    const dir = files()
    const r = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--json'], {cwd: dir, env: {DATABASE_URL: 'postgres://postgres:s3cret@127.0.0.1:1/cutover'}})
    expect(r.code).toBe(3)
    expect(r.json.error).toMatchObject({code: 'SERVICE_UNAVAILABLE', service: 'postgresql'})
    expect(r.stdout + r.stderr).not.toContain('s3cret')
  })

  it.each([
    ['a login the server refuses', {DATABASE_URL: 'postgres://nouser:s3cret@127.0.0.1:5432/cutover'}, '28000', /check the user and password/],
    ['a database that does not exist', {CUTOVER_LEFT_DATABASE_URL: 'postgres://postgres:s3cret@127.0.0.1:5432/no_such_db_e2e'}, '3D000', /create the database/],
  ])('exit 2 with the fix for %s, without the password', async (_, env, sqlstate, hint) => {
    const dir = files()
    const left = 'CUTOVER_LEFT_DATABASE_URL' in env ? 'pg:public.t' : 'csv:l.csv'
    const r = await runCli(['parity', 'check', '--left', left, '--right', 'csv:r.csv', '--key', 'id', '--json'], {cwd: dir, env})
    expect(r.code, r.stdout).toBe(2)
    expect(r.json.error).toMatchObject({code: 'USAGE', sqlstate, hint: expect.stringMatching(hint) as unknown})
    expect(r.stdout + r.stderr).not.toContain('s3cret')
  })

  it.each([
    [['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--no-ledger', '--out', 'no-such-folder/report.html'], /--out no-such-folder\/report\.html: the folder .*no-such-folder does not exist/],
    [['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--no-ledger', '--date', '2026-13-45', '--date-column', 'id'], /--date 2026-13-45 is not a day/],
    [['parity', 'report', '--until', '2026-02-30'], /--until 2026-02-30 is not a day/],
    [['parity', 'report', '--out', 'no-such-folder/evidence.html'], /the folder .*no-such-folder does not exist/],
  ])('refuses an --out it cannot write and a date that is not a day before any work: exit 2 (%j)', async (args, message) => {
    const r = await runCli([...args, '--json'], {cwd: files()})
    expect(r.code, r.stdout).toBe(2)
    expect(r.json.error).toMatchObject({code: 'USAGE', message: expect.stringMatching(message) as unknown})
  })

  it('--date on files: a right side without the date column is exit 2; a row whose date cannot be read is counted unreadable and warned of, not taken for another day', async () => {
    const dir = tempDir('parity-date-')
    writeFileSync(join(dir, 'l.csv'), 'id,d,amount\n1,2026-11-20,1.00\n2,2026-11-20,2.00\n3,2026-11-21,3.00\n')
    writeFileSync(join(dir, 'r.csv'), 'id,d,amount\n1,2026-11-20,1.00\n2,20/11/2026,2.00\n')
    writeFileSync(join(dir, 'nodate.csv'), 'id,amount\n1,1.00\n2,2.00\n')
    const args = ['parity', 'check', '--left', 'csv:l.csv', '--key', 'id', '--date', '2026-11-20', '--date-column', 'd', '--json', '--no-ledger']
    const missing = await runCli([...args, '--right', 'csv:nodate.csv'], {cwd: dir})
    expect(missing.code, missing.stdout).toBe(2)
    expect(missing.json.error.message).toBe('--date-column d is not a column of the right side')
    const r = await runCli([...args, '--right', 'csv:r.csv', '--log-level', 'warn'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    // the unreadable record is counted (per side) and unexplained: 1 matched of 3 (2 keys + 1 unreadable)
    expect(r.json).toMatchObject({left_rows: 2, right_rows: 1, matched: 1, missing_in_right: 1, unreadable: {left: 0, right: 1}, unexplained: 2, parity_pct: 33.3333})
    expect(r.stderr.split('\n').filter((l) => l.includes('parity.source.unreadable')).map((l) => JSON.parse(l) as {side: string; records: number}).map((e) => [e.side, e.records])).toEqual([['right', 1]])
  })

  it("masks the spec's sensitive values in samples: stdout, --json, the report and the ledger", async () => {
    const dir = tempDir('parity-mask-')
    writeFileSync(join(dir, 'l.csv'), 'id,card,amount\n1,4111111111111111,1.00\n2,5500000000000004,2.00\n')
    writeFileSync(join(dir, 'r.csv'), 'id,card,amount\n1,4111111111111111,1.50\n2,5500000000000012,2.00\n4,4012888888881881,4.00\n')
    writeFileSync(
      join(dir, 'spec.yaml'),
      'version: 1\nname: parity-mask\nsource: { topic: parity.mask }\nfields:\n  id: { type: string, required: true }\n  card: { type: string, sensitive: true }\n  amount: { type: decimal, scale: 2 }\nkey: id\nsinks:\n  - table: t\n',
    )
    const args = ['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--spec', 'spec.yaml', '--samples', '10']
    const j = await runCli([...args, '--out', 'report.html', '--json'], {cwd: dir})
    expect(j.code, j.stderr).toBe(0)
    expect(j.json).toMatchObject({matched: 0, mismatched: 2, extra_in_right: 1, missing_in_right: 0})
    const samples = j.json.samples as {key: {id: string}; kind: string; column: string | null; left: unknown; right: unknown}[]
    // the card mismatch is shown masked (first and last four digits), the amount one as it is
    expect(samples.find((x) => x.column === 'card')).toMatchObject({key: {id: '2'}, left: '5500********0004', right: '5500********0012'})
    expect(samples.find((x) => x.column === 'amount')).toMatchObject({key: {id: '1'}, left: '1.00', right: '1.50'})
    expect(samples.find((x) => x.kind === 'extra_in_right')).toMatchObject({key: {id: '4'}, right: {id: '4', card: '4012********1881', amount: '4.00'}})
    const text = await runCli([...args, '--no-ledger'], {cwd: dir})
    expect(text.code, text.stderr).toBe(0)
    const ledger = new pg.Client({connectionString: settings().databaseUrl})
    await ledger.connect()
    const stored = await ledger.query<{result: unknown}>('SELECT result FROM cutover.parity_runs WHERE id = $1', [j.json.run_id])
    await ledger.end()
    expect(stored.rows).toHaveLength(1)
    const everything = [j.stdout, j.stderr, text.stdout, text.stderr, readFileSync(join(dir, 'report.html'), 'utf8'), JSON.stringify(stored.rows[0]!.result)].join('\n')
    expect(everything).toContain('5500********0012')
    for (const card of ['4111111111111111', '5500000000000004', '5500000000000012', '4012888888881881']) expect(everything).not.toContain(card)
  })

  it('prints a summary and the samples, writes the report, and exits 1 under --fail-under', async () => {
    const dir = files()
    const r = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--type', 'amount=decimal', '--out', 'report.md', '--fail-under', '90', '--no-ledger'], {cwd: dir})
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('parity 25% (merge')
    expect(r.stdout).toContain('matched 1, mismatched 1, missing in right 1, extra in right 1')
    expect(r.stdout).toContain('amount: 1 mismatches (0 explained), max |diff| 0.5')
    expect(r.stderr).toMatch(/^parity check: rows read: 6 /m)
    expect(r.stderr).toContain('check failed: parity 25% is under --fail-under 90%')
    const md = readFileSync(join(dir, 'report.md'), 'utf8')
    expect(md).toContain('| mismatched | 1 |')
    expect(r.stdout).toContain(`report report.md sha256 ${createHash('sha256').update(md).digest('hex')}`)
  })
})
