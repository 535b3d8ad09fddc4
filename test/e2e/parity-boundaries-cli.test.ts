/**
 * `parity check` at its boundaries, through bin/run.js on CSV files (--no-ledger):
 *   - a time rule (`right_time_after: "23:59:59"`) under --date explains a row at 23:59:59.500,
 *     as it does without --date (with --date it wanted 00:00:00 of the next day);
 *   - --fail-under is met by the exact parity, not by parity_pct truncated to 4 decimals;
 *   - the report shows a NULL against "" and "B " against "B" as different cells;
 *   - --date takes the day of a timestamp in the zone of its `--type x=timestamp:<zone>`.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {runCli, tempDir} from '../helpers.js'

describe('parity check boundaries on the command line', () => {
  it('a time rule under --date explains a row a fraction of a second after its time, as without --date', async () => {
    const dir = tempDir('parity-time-rule-')
    writeFileSync(join(dir, 'l.csv'), 'id;amt;ts\n1;10,00;20.11.2026 10:00:00\n')
    writeFileSync(join(dir, 'r.csv'), 'id;amt;ts\n1;10.00;2026-11-20T07:00:00Z\n6;5.00;2026-11-20T20:59:59.500Z\n7;5.00;2026-11-20T20:59:59Z\n')
    writeFileSync(join(dir, 'rules.yaml'), 'rules:\n  - name: late\n    reason: the legacy batch cuts at 23:59:59\n    when: {kind: extra_in_right, column: ts, right_time_after: "23:59:59", timezone: Europe/Moscow}\n')
    const base = ['parity', 'check', '--left', 'csv:l.csv?delimiter=;', '--right', 'csv:r.csv?delimiter=;', '--key', 'id', '--type', 'amt=decimal:,/.', '--type', 'ts=timestamp:Europe/Moscow', '--rules', 'rules.yaml', '--no-ledger', '--json']
    for (const extra of [[], ['--date', '2026-11-20', '--date-column', 'ts']]) {
      const r = await runCli([...base, ...extra], {cwd: dir})
      expect(r.code, r.stderr).toBe(0)
      // 6 (23:59:59.500 Moscow) is after 23:59:59; 7 (23:59:59.000) is not
      expect(r.json, extra.join(' ')).toMatchObject({matched: 1, extra_in_right: 2, explained: 1, unexplained: 1, rules: {late: 1}})
      const samples = r.json.samples as {key: {id: string}; explanation: string | null}[]
      expect(samples.map((s) => [s.key.id, s.explanation])).toEqual([
        ['6', 'rule late: the legacy batch cuts at 23:59:59'],
        ['7', null],
      ])
    }
  })

  it('--fail-under compares the exact parity: 6 of 7 keys (85.714285...%) meets 85.71428 and fails 85.71429', async () => {
    const dir = tempDir('parity-fail-under-')
    writeFileSync(join(dir, 'l.csv'), 'id,v\n1,a\n2,b\n3,c\n4,d\n5,e\n6,f\n7,g\n')
    writeFileSync(join(dir, 'r.csv'), 'id,v\n1,a\n2,b\n3,c\n4,d\n5,e\n6,f\n7,X\n')
    const run = (threshold: string) => runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--no-ledger', '--fail-under', threshold], {cwd: dir})
    for (const ok of ['85.7142', '85.71428', '85.714285']) {
      const r = await run(ok)
      expect(r.code, `${ok}: ${r.stderr}`).toBe(0)
      expect(r.stdout).toContain('parity 85.7142%')
    }
    for (const bad of ['85.71429', '85.7143']) {
      const r = await run(bad)
      expect(r.code, bad).toBe(1)
      expect(r.stderr).toContain(`check failed: parity 85.7142% is under --fail-under ${bad}%`)
    }
  })

  it('the report tells a NULL from "", and a key or value with trailing spaces from the one without', async () => {
    const dir = tempDir('parity-report-cells-')
    // the CSV's empty field is "", the pg: side's NULL is NULL (no --null-equals-empty): a mismatch
    writeFileSync(join(dir, 'l.csv'), 'id,name\nB ,z\nE,\nF,ivan \n')
    const right = "pg:query=SELECT * FROM (VALUES ('B', 'z'), ('E', NULL), ('F', 'ivan')) AS t(id, name)"
    const args = ['parity', 'check', '--left', 'csv:l.csv', '--right', right, '--key', 'id', '--no-ledger']
    const r = await runCli([...args, '--out', 'report.md', '--json'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({matched: 0, mismatched: 2, missing_in_right: 1, extra_in_right: 1})
    const md = readFileSync(join(dir, 'report.md'), 'utf8')
    expect(md).toContain('| B | extra_in_right |')
    expect(md).toContain('| "B " | missing_in_right |')
    expect(md).toContain('| E | mismatch | name | "" | (null) |')
    expect(md).toContain('| F | mismatch | name | "ivan " | ivan |')
    const h = await runCli([...args, '--out', 'report.html'], {cwd: dir})
    expect(h.code, h.stderr).toBe(0)
    const html = readFileSync(join(dir, 'report.html'), 'utf8')
    expect(html).toContain('<td>&quot;B &quot;</td><td>missing_in_right</td>')
    expect(html).toContain('<td>E</td><td>mismatch</td><td>name</td><td>&quot;&quot;</td><td>(null)</td>')
    expect(html).toContain('<td>F</td><td>mismatch</td><td>name</td><td>&quot;ivan &quot;</td><td>ivan</td>')
  })

  it('--date: the day of a timestamp is its date in the zone of --type x=timestamp:<zone> (was UTC: identical rows after midnight Moscow were missing and extra)', async () => {
    const dir = tempDir('parity-typed-zone-day-')
    writeFileSync(join(dir, 'l.csv'), 'id;ts\n1;20.11.2026 00:30:00\n2;20.11.2026 23:30:00\n3;21.11.2026 00:30:00\n4;19.11.2026 23:30:00\n')
    const right = "pg:query=SELECT * FROM (VALUES ('1', timestamptz '2026-11-20 00:30:00+03'), ('2', '2026-11-20 23:30:00+03'), ('3', '2026-11-21 00:30:00+03'), ('4', '2026-11-19 23:30:00+03')) AS t(id, ts)"
    const r = await runCli(['parity', 'check', '--left', 'csv:l.csv?delimiter=;', '--right', right, '--key', 'id', '--type', 'ts=timestamp:Europe/Moscow', '--date', '2026-11-20', '--date-column', 'ts', '--no-ledger', '--json'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({left_rows: 2, right_rows: 2, matched: 2, missing_in_right: 0, extra_in_right: 0, parity_pct: 100, date: '2026-11-20'})
  })
})
