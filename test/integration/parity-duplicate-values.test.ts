/**
 * A key repeated on the left (legacy double postings, a `duplicate_left` rule) with one row on
 * the right whose value differs: the repetition is explained, the value is not. It passed with
 * 100% and exit 0 under --strict, in every strategy (they all hand such keys to the core's
 * duplicate()); now the key has the mismatch of its closest row, the same in each.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestSchema, runCli, tempDir, testPool} from '../helpers.js'

const RULES = `- name: legacy-double-posts
  reason: legacy double postings
  when: {kind: duplicate_left}
`
const EXPECTED = {left_rows: 5, right_rows: 3, matched: 1, mismatched: 1, duplicate_keys_left: 2, explained: 1, unexplained: 1, parity_pct: 66.6666}

describe('parity check: a duplicate rule does not hide the values of a repeated key', () => {
  it('csv: exit 1 under --strict, the mismatch sampled', async () => {
    const dir = tempDir('parity-dupvals-')
    writeFileSync(join(dir, 'd3.csv'), 'id,amt\n1,10\n2,20\n2,20\n')
    writeFileSync(join(dir, 'd4.csv'), 'id,amt\n1,10\n2,999\n')
    writeFileSync(join(dir, 'dr.yaml'), RULES)
    const r = await runCli(['parity', 'check', '--left', 'csv:d3.csv', '--right', 'csv:d4.csv', '--key', 'id', '--rules', 'dr.yaml', '--strict', '--json', '--no-ledger'], {cwd: dir})
    expect(r.code, r.stderr).toBe(1)
    expect(r.json).toMatchObject({matched: 1, mismatched: 1, duplicate_keys_left: 1, unexplained: 1, parity_pct: 50})
    expect(r.json.samples).toContainEqual(expect.objectContaining({key: {id: '2'}, kind: 'mismatch', column: 'amt', left: '20', right: '999', explanation: null}))
  })

  it.each(['merge', 'sql-pushdown', 'bisect'])('pg: tables, --strategy %s', async (strategy) => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".l (k text, v numeric(9,2)); INSERT INTO "${schema}".l VALUES ('1', 10), ('2', 20), ('2', 20), ('3', 30), ('3', 30.00);
      CREATE TABLE "${schema}".r (k text PRIMARY KEY, v numeric(9,2)); INSERT INTO "${schema}".r VALUES ('1', 10), ('2', 999), ('3', 30)`)
    const dir = tempDir('parity-dupvals-')
    writeFileSync(join(dir, 'dr.yaml'), RULES)
    // key 2: repeated (explained) and a mismatch (not); key 3: repeated (explained), its values equal
    const r = await runCli(['parity', 'check', '--left', `pg:${schema}.l`, '--right', `pg:${schema}.r`, '--key', 'k', '--rules', join(dir, 'dr.yaml'), '--strategy', strategy, '--strict', '--json', '--no-ledger'])
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(1)
    expect(r.json).toMatchObject({...EXPECTED, columns: {v: {mismatches: 1}}})
    expect(r.json.samples).toContainEqual(expect.objectContaining({key: {k: '2'}, kind: 'mismatch', column: 'v', left: '20.00', right: '999.00', explanation: null}))
  })
})
