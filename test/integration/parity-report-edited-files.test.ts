/**
 * `parity report` names a re-run whose --rules or --spec file was edited (same path, another
 * SHA-256) since an earlier failing run of the same comparison on the same day, as it names a
 * re-run given an added or changed flag. Was: looseningFlags knew the files by their path only,
 * so a failing run, then the rules file (or the spec) edited to explain the differences, then a
 * passing re-run with the same path, decided the day with no note. The ledger keeps the spec's
 * SHA-256 (options.specSha256), as it keeps the rules file's.
 */
import {createHash} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {freshDatabase, runCli, sqlOnce, tempDir} from '../helpers.js'

const sha = (text: string) => createHash('sha256').update(text).digest('hex')

const UNRELATED = `- name: other
  reason: unrelated
  when: {kind: missing_in_right}
`
const ROUNDING = `- name: rounding
  reason: the legacy batch rounds amounts
  when: {kind: mismatch, column: amt}
`
const spec = (merchant: string) =>
  `version: 1\nname: cards\nsource: { topic: txn.raw, format: json }\nfields:\n  id: { type: string, required: true }\n  day: { type: date }\n  merchant: { type: string${merchant} }\nkey: id\nsinks:\n  - table: txn_clean\ndlq: { topic: txn.dlq }\n`

describe('parity report: a re-run with an edited --rules or --spec file', () => {
  it('is named on the day (--json, text, HTML) with the SHA-256 before and after the edit; the verdict is unchanged', async () => {
    const url = freshDatabase()
    const env = {DATABASE_URL: url}
    const dir = tempDir('parity-edited-files-')
    // 2026-11-02: an amount that differs (explained by the edited rules); 2026-11-03: a padded merchant (trimmed by the edited spec)
    writeFileSync(join(dir, 'l.csv'), 'id,day,amt,merchant\n1,2026-11-02,10,A\n2,2026-11-02,20,B\n3,2026-11-03,30,ABC  \n4,2026-11-03,40,X\n')
    writeFileSync(join(dir, 'r.csv'), 'id,day,amt,merchant\n1,2026-11-02,10,A\n2,2026-11-02,20.4,B\n3,2026-11-03,30,ABC\n4,2026-11-03,40,X\n')
    const check = async (date: string, extra: string[]) => {
      const r = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--date', date, '--date-column', 'day', '--json', ...extra], {cwd: dir, env})
      expect(r.code, r.stderr).toBe(0)
      return r.json as {run_id: number; unexplained: number}
    }
    writeFileSync(join(dir, 'rules.yaml'), UNRELATED)
    const failing2 = await check('2026-11-02', ['--rules', 'rules.yaml'])
    expect(failing2.unexplained).toBe(1)
    writeFileSync(join(dir, 'rules.yaml'), ROUNDING)
    const passing2 = await check('2026-11-02', ['--rules', 'rules.yaml'])
    expect(passing2.unexplained).toBe(0)

    writeFileSync(join(dir, 'p.yaml'), spec(''))
    const failing3 = await check('2026-11-03', ['--spec', 'p.yaml'])
    expect(failing3.unexplained).toBe(1)
    writeFileSync(join(dir, 'p.yaml'), spec(', trim: true'))
    const passing3 = await check('2026-11-03', ['--spec', 'p.yaml'])
    expect(passing3.unexplained).toBe(0)
    // the ledger keeps the spec's SHA-256 as the run read it
    const stored = await sqlOnce(url, `SELECT id, options->>'specSha256' AS spec FROM cutover.parity_runs WHERE id IN (${failing3.run_id}, ${passing3.run_id}) ORDER BY id`)
    expect(stored.rows.map((x: {spec: string}) => x.spec)).toEqual([sha(spec('')), sha(spec(', trim: true'))])

    const short = (text: string) => `${sha(text).slice(0, 12)}…`
    const rulesEdit = `--rules rules.yaml (edited: SHA-256 ${short(ROUNDING)} instead of ${short(UNRELATED)})`
    const specEdit = `--spec p.yaml (edited: SHA-256 ${short(spec(', trim: true'))} instead of ${short(spec(''))})`
    const note2 = `decided by a re-run with ${rulesEdit} (run ${passing2.run_id}); an earlier run with the stricter options failed: run ${failing2.run_id} (50.0000%, 1 unexplained)`
    const note3 = `decided by a re-run with ${specEdit} (run ${passing3.run_id}); an earlier run with the stricter options failed: run ${failing3.run_id} (50.0000%, 1 unexplained)`

    const r = await runCli(['parity', 'report', '--days', '2', '--until', '2026-11-03', '--json'], {env})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.verdict.ready).toBe(true)
    const [d2, d3] = r.json.per_day as {notes: string[]; decided_by: {run: number; rules_sha256?: string; options: Record<string, unknown>; looser_than: unknown[]}[]}[]
    expect(d2!.decided_by[0]).toMatchObject({run: passing2.run_id, rules_sha256: sha(ROUNDING), looser_than: [{run: failing2.run_id, parity_pct: '50.0000', unexplained: 1, added: [rulesEdit]}]})
    expect(d2!.notes).toEqual([note2])
    expect(d3!.decided_by[0]).toMatchObject({run: passing3.run_id, options: {spec_file: 'p.yaml', spec_sha256: sha(spec(', trim: true'))}, looser_than: [{run: failing3.run_id, added: [specEdit]}]})
    expect(d3!.notes).toEqual([note3])
    expect(r.json.verdict.summary).toBe(
      'READY to cut over: all 2 day(s) from 2026-11-02 to 2026-11-03 are at or above 99.99% with no unexplained difference; 2 day(s) decided by a re-run with looser options than an earlier failing run (2026-11-02, 2026-11-03)',
    )

    const text = await runCli(['parity', 'report', '--days', '2', '--until', '2026-11-03', '--out', join(dir, 'ev.html')], {env})
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toContain(`2026-11-02  100.0000%  runs 2  unexplained 0  ok; ${note2}`)
    expect(text.stdout).toContain(`2026-11-03  100.0000%  runs 2  unexplained 0  ok; ${note3}`)
    const page = readFileSync(join(dir, 'ev.html'), 'utf8')
    expect(page).toContain(`<li class="bad">2026-11-02: ${note2}</li>`)
    expect(page).toContain(`<li class="bad">2026-11-03: ${note3}</li>`)
    // the deciding run's options name the spec's full SHA-256
    expect(page).toContain(`options --spec p.yaml (SHA-256 ${sha(spec(', trim: true'))})`)
  })
})
