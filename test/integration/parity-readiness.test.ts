/**
 * What the cutover-readiness verdict must never pass: a day with no data, records that could
 * not be read, a weaker re-run hiding a failing one, a rule wider than it says, an empty
 * threshold; and what the evidence must show (escaped Markdown, the runs that decided each
 * day). Through bin/run.js, each test with its own database (the ledger is per database).
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {describe, expect, it} from 'vitest'
import {freshDatabase, runCli, tempDir} from '../helpers.js'

const LEFT = 'id,business_date,amount,note\n1,2026-11-19,1.00,a\n2,2026-11-19,2.00,b\n3,2026-11-20,3.00,c\n4,2026-11-20,4.00,d\n'

describe('parity readiness', () => {
  it('a --date that matches no row: empty in --json, a warning, exit 1 under --fail-under, and "no data" blocking READY in the report', async () => {
    const env = {DATABASE_URL: freshDatabase()}
    const dir = tempDir('parity-empty-')
    writeFileSync(join(dir, 'l.csv'), LEFT)
    writeFileSync(join(dir, 'r.csv'), LEFT)
    const check = (date: string, extra: string[] = []) =>
      runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--date', date, '--date-column', 'business_date', '--json', ...extra], {cwd: dir, env})
    expect((await check('2026-11-19')).code).toBe(0)
    // a typo: 2026-11-02 for 2026-11-20
    const typo = await check('2026-11-02', ['--log-level', 'warn'])
    expect(typo.code, typo.stderr).toBe(0)
    expect(typo.json).toMatchObject({left_rows: 0, right_rows: 0, parity_pct: 100, empty: true, date: '2026-11-02'})
    expect(typo.stderr).toContain('"event":"parity.empty"')
    const gated = await check('2026-11-02', ['--fail-under', '99.99', '--no-ledger'])
    expect(gated.code).toBe(1)
    const text = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--date', '2026-11-02', '--date-column', 'business_date', '--strict', '--no-ledger'], {cwd: dir, env})
    expect(text.code).toBe(1)
    expect(text.stderr).toContain('check failed: no row was compared on 2026-11-02 (both sides empty): nothing supports parity')
    expect((await check('2026-11-20')).json.empty).toBeUndefined()

    const report = await runCli(['parity', 'report', '--days', '2', '--until', '2026-11-20', '--json'], {env})
    expect(report.code).toBe(0)
    expect(report.json.verdict.ready).toBe(true) // 19 and 20 have data
    const wide = await runCli(['parity', 'report', '--days', '19', '--until', '2026-11-20', '--json', '--fail-not-ready'], {env})
    expect(wide.code).toBe(1)
    const day = (wide.json.per_day as {date: string; status: string; ok: boolean}[]).find((d) => d.date === '2026-11-02')
    expect(day).toMatchObject({status: 'no data', ok: false})
    expect(wide.json.verdict.summary).toMatch(/^NOT READY: .*\(no data on 2026-11-02; no check on 2026-11-03, /)
    expect(wide.json.verdict.blockers).toContain(`2026-11-02: no data: run ${typo.json.run_id} compared no rows (csv:r.csv)`)
  })

  it('records that cannot be read are counted per side, as unexplained, in --json and the ledger', async () => {
    const url = freshDatabase()
    const dir = tempDir('parity-unreadable-')
    // an unreadable business day, an empty one, and an unclosed quote
    writeFileSync(join(dir, 'l.csv'), 'id,business_date,amount\n1,2026-11-20,10.00\n2,20/11/2026,20.00\n3,,30.00\n4,2026-11-20,"unterminated\n')
    writeFileSync(join(dir, 'r.csv'), 'id,business_date,amount\n1,2026-11-20,10.00\n')
    const args = ['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--date', '2026-11-20', '--date-column', 'business_date', '--json']
    const r = await runCli(args, {cwd: dir, env: {DATABASE_URL: url}})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({left_rows: 1, right_rows: 1, matched: 1, unexplained: 3, unreadable: {left: 3, right: 0}, parity_pct: 25})
    expect((await runCli([...args, '--fail-under', '99.99', '--no-ledger'], {cwd: dir})).code).toBe(1)
    expect((await runCli([...args, '--strict', '--no-ledger'], {cwd: dir})).code).toBe(1)
    const client = new pg.Client({connectionString: url})
    await client.connect()
    const row = (await client.query('SELECT unexplained, parity_pct::text AS pct, result FROM cutover.parity_runs WHERE id = $1', [r.json.run_id])).rows[0]
    await client.end()
    expect([Number(row.unexplained), row.pct, row.result.unreadable]).toEqual([3, '25.0000', {left: 3, right: 0}])
    const report = await runCli(['parity', 'report', '--days', '1', '--json'], {env: {DATABASE_URL: url}})
    expect(report.json.verdict.ready).toBe(false)
    expect(report.json.per_day[0].decided_by[0].unreadable).toEqual({left: 3, right: 0})
  })

  it('a narrower re-run does not hide a failing day; a re-run of the same comparison supersedes it, and the evidence says which and by what', async () => {
    const url = freshDatabase()
    const env = {DATABASE_URL: url}
    const dir = tempDir('parity-rerun-')
    writeFileSync(join(dir, 'l.csv'), LEFT)
    writeFileSync(join(dir, 'r.csv'), LEFT.replace('4,2026-11-20,4.00', '4,2026-11-20,4.01'))
    const check = (extra: string[]) =>
      runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--date', '2026-11-20', '--date-column', 'business_date', '--json', ...extra], {cwd: dir, env})
    const failing = await check(['--type', 'amount=decimal'])
    expect(failing.json.unexplained).toBe(1)
    const narrow = await check(['--columns', 'note'])
    expect(narrow.json.unexplained).toBe(0)
    const r1 = await runCli(['parity', 'report', '--days', '1', '--until', '2026-11-20', '--json'], {env})
    expect(r1.json.verdict.ready).toBe(false)
    expect(r1.json.verdict.blockers).toEqual([
      `2026-11-20: parity 50.0000% < 99.99% (run ${failing.json.run_id}: csv:r.csv)`,
      `2026-11-20: 1 unexplained difference(s) (run ${failing.json.run_id}: csv:r.csv)`,
    ])
    // the same comparison again, with a tolerance: it supersedes the failing run
    const fixed = await check(['--type', 'amount=decimal', '--tolerance', 'amount=0.01'])
    expect(fixed.json.unexplained).toBe(0)
    const r2 = await runCli(['parity', 'report', '--days', '1', '--until', '2026-11-20', '--json', '--out', join(dir, 'ev.md')], {env})
    expect(r2.json.verdict.ready).toBe(true)
    expect(r2.json.runs.map((x: {id: number; superseded_by: number | null}) => [x.id, x.superseded_by])).toEqual([
      [failing.json.run_id, fixed.json.run_id],
      [narrow.json.run_id, null],
      [fixed.json.run_id, null],
    ])
    expect(r2.json.per_day[0].decided_by.map((x: {run: number; columns: string[]; tolerances: Record<string, string>}) => [x.run, x.columns, x.tolerances])).toEqual([
      [narrow.json.run_id, ['note'], {}],
      [fixed.json.run_id, ['amount', 'business_date', 'note'], {amount: '0.01'}],
    ])
    const md = readFileSync(join(dir, 'ev.md'), 'utf8')
    expect(md).toContain('Differences explained by a known-difference rule count as parity')
    expect(md).toContain(`run ${fixed.json.run_id} (csv:r.csv): 100.0000%, explained 0, unexplained 0; key id; columns amount, business_date, note; tolerances amount=0.01`)
    expect(md).toMatch(new RegExp(`^\\| ${failing.json.run_id} \\| 2026-11-20 \\|.*\\| run ${fixed.json.run_id} \\|$`, 'm'))
  })

  it('a day passed by a re-run with looser options (--normalize, --type, --null-equals-empty, --map) says so, and the deciding options are in --json, Markdown and HTML', async () => {
    const url = freshDatabase()
    const env = {DATABASE_URL: url}
    const dir = tempDir('parity-looser-')
    // the 20th differs in case (ABC vs abc); the 19th in the form of an amount (1.0 vs 1.00), with the note renamed and an empty one for null
    writeFileSync(join(dir, 'l.csv'), 'id,business_date,amount,note\n1,2026-11-19,1.0,\n2,2026-11-20,2.00,ABC\n3,2026-11-18,3.00,x\n')
    writeFileSync(join(dir, 'r.csv'), 'id,business_date,amount,remark\n1,2026-11-19,1.00,""\n2,2026-11-20,2.00,abc\n3,2026-11-18,3.00,x\n')
    const check = async (date: string, extra: string[]) => {
      const r = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--date', date, '--date-column', 'business_date', '--map', 'note=remark', '--json', ...extra], {cwd: dir, env})
      expect(r.code, r.stderr).toBe(0)
      return r.json as {run_id: number; unexplained: number}
    }
    const strict20 = await check('2026-11-20', [])
    expect(strict20.unexplained).toBe(1)
    const loose20 = await check('2026-11-20', ['--normalize', 'note=lower'])
    expect(loose20.unexplained).toBe(0)
    const strict19 = await check('2026-11-19', [])
    expect(strict19.unexplained).toBeGreaterThan(0)
    const loose19 = await check('2026-11-19', ['--type', 'amount=decimal', '--null-equals-empty', 'note'])
    expect(loose19.unexplained).toBe(0)
    // the 18th: run twice with the same options, the first passing: nothing to say
    const same18 = [await check('2026-11-18', ['--normalize', 'note=trim']), await check('2026-11-18', ['--normalize', 'note=trim'])]

    const r = await runCli(['parity', 'report', '--days', '3', '--until', '2026-11-20', '--json', '--out', join(dir, 'ev.md')], {env})
    expect(r.code, r.stderr).toBe(0)
    // the verdict rules are unchanged: the re-runs supersede the failing runs
    expect(r.json.verdict.ready).toBe(true)
    const days = r.json.per_day as {date: string; notes: string[]; decided_by: {run: number; options: unknown; looser_than: unknown[]}[]}[]
    const [d18, d19, d20] = days
    expect(d20!.decided_by).toHaveLength(1)
    expect(d20!.decided_by[0]).toMatchObject({
      run: loose20.run_id,
      options: {map: {note: 'remark'}, types: {}, normalize: {note: 'lower'}, null_equals_empty: [], spec_file: null},
      looser_than: [{run: strict20.run_id, parity_pct: '0.0000', unexplained: 1, added: ['--normalize note=lower']}],
    })
    const note20 = `decided by a re-run with --normalize note=lower (run ${loose20.run_id}); an earlier run without it failed: run ${strict20.run_id} (0.0000%, 1 unexplained)`
    expect(d20!.notes).toEqual([note20])
    expect(d19!.decided_by[0]).toMatchObject({
      run: loose19.run_id,
      options: {map: {note: 'remark'}, types: {amount: 'decimal'}, normalize: {}, null_equals_empty: ['note']},
      looser_than: [{run: strict19.run_id, added: ['--type amount=decimal', '--null-equals-empty note']}],
    })
    expect(d19!.notes[0]).toMatch(new RegExp(`^decided by a re-run with --type amount=decimal, --null-equals-empty note \\(run ${loose19.run_id}\\); an earlier run without them failed: run ${strict19.run_id} \\(`))
    expect(d18!.decided_by.map((x) => [x.run, x.looser_than])).toEqual([[same18[1]!.run_id, []]])
    expect(d18!.notes).toEqual([])
    expect(r.json.verdict.summary).toBe(
      'READY to cut over: all 3 day(s) from 2026-11-18 to 2026-11-20 are at or above 99.99% with no unexplained difference; 2 day(s) decided by a re-run with looser options than an earlier failing run (2026-11-19, 2026-11-20)',
    )

    const md = readFileSync(join(dir, 'ev.md'), 'utf8')
    expect(md).toContain(`| 2026-11-20 | run ${loose20.run_id} (csv:r.csv): 100.0000%, explained 0, unexplained 0; key id; columns amount, business_date, note; tolerances none (exact); options --map note=remark, --normalize note=lower |`)
    expect(md).toContain('options --map note=remark, --type amount=decimal, --null-equals-empty note |')
    expect(md).toMatch(new RegExp(`^\\| 2026-11-20 \\| 2 \\| 100% \\| 0 \\| 1 \\| 1 \\| ok; ${note20.replace(/[()]/g, '\\$&')} \\|$`, 'm'))
    expect(md).toContain(`## Days decided by a re-run with looser options\n\n- 2026-11-19: decided by a re-run with --type amount=decimal`)
    expect(md).toContain(`- 2026-11-20: ${note20}`)
    const html = await runCli(['parity', 'report', '--days', '3', '--until', '2026-11-20', '--out', join(dir, 'ev.html')], {env})
    expect(html.code, html.stderr).toBe(0)
    expect(html.stdout).toContain(`2026-11-20  100.0000%  runs 2  unexplained 0  ok; ${note20}`)
    const page = readFileSync(join(dir, 'ev.html'), 'utf8')
    expect(page).toContain('tolerances none (exact); options --map note=remark, --normalize note=lower')
    expect(page).toContain(`<li class="bad">2026-11-20: ${note20}</li>`)
  })

  it('a rule on one column explains only its mismatches; an empty `when` is refused (exit 2, file:line)', async () => {
    const dir = tempDir('parity-rules-')
    writeFileSync(join(dir, 'l.csv'), 'id,amount\n1,1.00\n2,2.00\n3,3.00\n')
    writeFileSync(join(dir, 'r.csv'), 'id,amount\n1,1.50\n2,2.00\n4,4.00\n')
    writeFileSync(join(dir, 'col.yaml'), '- name: amount-rounding\n  reason: legacy rounds amounts differently\n  when: {column: amount}\n')
    writeFileSync(join(dir, 'all.yaml'), 'rules:\n  - name: everything\n    reason: r\n    when: {}\n')
    const args = ['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--json', '--no-ledger']
    const col = await runCli([...args, '--rules', 'col.yaml', '--strict'], {cwd: dir})
    expect(col.code).toBe(1)
    expect(col.json).toMatchObject({mismatched: 1, missing_in_right: 1, extra_in_right: 1, explained: 1, unexplained: 2, rules: {'amount-rounding': 1}})
    const all = await runCli([...args, '--rules', 'all.yaml'], {cwd: dir})
    expect(all.code).toBe(2)
    expect(all.json.error.message).toMatch(/^all\.yaml:4:11: rules\.0\.when: a rule needs at least one condition \(kind, column, abs_diff, left, right, /)
  })

  it("--fail-under '' and report --threshold ' ' are refused (exit 2), not taken for 0", async () => {
    const dir = tempDir('parity-threshold-')
    writeFileSync(join(dir, 'l.csv'), 'id,amount\n1,1.00\n')
    writeFileSync(join(dir, 'r.csv'), 'id,amount\n1,2.00\n')
    for (const v of ['', ' ', '0x10']) {
      const r = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--fail-under', v, '--json', '--no-ledger'], {cwd: dir})
      expect(r.code, v).toBe(2)
      expect(r.json.error).toMatchObject({code: 'USAGE', message: `--fail-under ${JSON.stringify(v)} is not a percentage`})
    }
    for (const v of ['', ' ']) {
      const r = await runCli(['parity', 'report', '--threshold', v, '--json'], {cwd: dir})
      expect(r.code, v).toBe(2)
      expect(r.json.error.message).toBe(`--threshold ${JSON.stringify(v)} is not a percentage`)
    }
  })

  it('Markdown reports escape HTML, pipes and backticks from the data (check --out x.md, report --out ev.md)', async () => {
    const url = freshDatabase()
    const dir = tempDir('parity-md-')
    const name = 'r`<img src=x onerror=alert(1)>`.csv'
    writeFileSync(join(dir, 'l.csv'), 'id,note\n1,<script>alert(1)</script>\n2,ok\n')
    writeFileSync(join(dir, name), 'id,note\n1,a|b & <b>c</b>\n2,ok\n')
    const r = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', `csv:${name}`, '--key', 'id', '--out', 'x.md', '--date', '2026-11-20', '--json'], {cwd: dir, env: {DATABASE_URL: url}})
    // --date without --date-column is refused: record the run without it
    expect(r.code).toBe(2)
    const ok = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', `csv:${name}`, '--key', 'id', '--out', 'x.md', '--json'], {cwd: dir, env: {DATABASE_URL: url}})
    expect(ok.code, ok.stderr).toBe(0)
    const md = readFileSync(join(dir, 'x.md'), 'utf8')
    expect(md).not.toMatch(/<(script|img|b)\b/)
    expect(md).toContain('| 1 | mismatch | note | &lt;script&gt;alert(1)&lt;/script&gt; | a\\|b &amp; &lt;b&gt;c&lt;/b&gt; |')
    expect(md).toContain('- right: csv:r\\`&lt;img src=x onerror=alert(1)&gt;\\`.csv')
    const ev = await runCli(['parity', 'report', '--days', '1', '--out', join(dir, 'ev.md'), '--json'], {env: {DATABASE_URL: url}})
    expect(ev.code).toBe(0)
    const evMd = readFileSync(join(dir, 'ev.md'), 'utf8')
    expect(evMd).not.toMatch(/<img\b/)
    expect(evMd).toContain('csv:r\\`&lt;img src=x onerror=alert(1)&gt;\\`.csv')
  })
})
