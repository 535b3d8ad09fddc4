/**
 * The ledger keeps the rules a run was explained by: the --rules file's SHA-256 and text, in the
 * row's options (which its hash covers). It kept the path only, so the file could be edited after
 * the run under evidence that says "explained N by <rule>". `parity report` shows the SHA-256 for
 * the run that decided each day.
 */
import {createHash} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createdFreshDatabase, runCli, sqlOnce, tempDir} from '../helpers.js'

const RULES = `- name: rounding
  reason: the legacy batch rounds amounts to whole units
  when: {kind: mismatch, column: amt}
`

describe('parity ledger: the rules of a run', () => {
  it('are stored with the run (SHA-256 and text, inside the hash chain) and named in the evidence, whatever the file says later', async () => {
    const url = await createdFreshDatabase()
    const env = {DATABASE_URL: url}
    const dir = tempDir('parity-ledger-rules-')
    writeFileSync(join(dir, 'l.csv'), 'id,day,amt\n1,2026-11-02,10\n2,2026-11-02,20\n')
    writeFileSync(join(dir, 'r.csv'), 'id,day,amt\n1,2026-11-02,10\n2,2026-11-02,20.4\n')
    writeFileSync(join(dir, 'rules.yaml'), RULES)
    const sha = createHash('sha256').update(RULES).digest('hex')
    const check = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--date', '2026-11-02', '--date-column', 'day', '--rules', 'rules.yaml', '--json'], {env, cwd: dir})
    expect(check.code, check.stderr).toBe(0)
    expect(check.json).toMatchObject({explained: 1, unexplained: 0, rules: {rounding: 1}})
    // edited afterwards: the run's rules stay what they were
    writeFileSync(join(dir, 'rules.yaml'), RULES.replace('kind: mismatch', 'kind: missing_in_right'))
    const row = await sqlOnce(url, `SELECT options->>'rulesSha256' AS sha, options->>'rulesText' AS text FROM cutover.parity_runs WHERE id = ${check.json.run_id}`)
    expect(row.rows[0]).toEqual({sha, text: RULES})
    const out = join(dir, 'evidence.md')
    const r = await runCli(['parity', 'report', '--days', '1', '--until', '2026-11-02', '--json', '--out', out], {env, cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.ledger).toMatchObject({verified: 1, gaps: []})
    expect(r.json.per_day[0].decided_by[0]).toMatchObject({run: check.json.run_id, rules_file: 'rules.yaml', rules_sha256: sha, rules: {rounding: 1}})
    expect(readFileSync(out, 'utf8')).toContain(`(rules rules.yaml, SHA-256 ${sha})`)
    // the stored rules are covered by the row's hash: an edit of them is seen
    await sqlOnce(url, `UPDATE cutover.parity_runs SET options = jsonb_set(options, '{rulesText}', '"- name: anything"') WHERE id = ${check.json.run_id}`)
    const edited = await runCli(['parity', 'report', '--days', '1', '--until', '2026-11-02', '--json'], {env, cwd: dir})
    expect(edited.json.runs[0].edited).toEqual(['changed after the run: its content no longer matches its hash'])
    expect(edited.json.verdict.ready).toBe(false)
  })
})
