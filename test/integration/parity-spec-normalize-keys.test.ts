/**
 * `parity check` compares the raw legacy side as the pipeline writes it: with --spec, a string
 * field's `trim` and `empty_as_null` normalize its values before comparing (a legacy "" against
 * the stream's NULL, "ABC  " against "ABC" are not differences), in every strategy, and the
 * result and the ledger say so; and `--normalize <key>=trim` trims a padded key of a csv: or pg:
 * side under merge (sorted after trimming), where it was refused with a pg:query= hint.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {describe, expect, it} from 'vitest'
import {createTestSchema, freshDatabase, runCli, tempDir, testPool} from '../helpers.js'

const SPEC = 'version: 1\nname: cards\nsource: { topic: txn.raw, format: json }\nfields:\n  id: { type: string, required: true }\n  merchant: { type: string, trim: true, empty_as_null: true }\n  amount: { type: decimal, scale: 2 }\nkey: id\nsinks:\n  - table: txn_clean\ndlq: { topic: txn.dlq }\n'

describe('parity check --spec: a string field\'s trim and empty_as_null', () => {
  it('a legacy "" against NULL and "ABC  " against "ABC" are no differences with --spec (merge, sql-pushdown, bisect); without it they are', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".stream (id text PRIMARY KEY, merchant text, amount numeric(12,2))`)
    await pool.query(`INSERT INTO "${schema}".stream VALUES ('1', NULL, 1.00), ('2', 'ABC', 2.00), ('3', 'XYZ', 3.00), ('4', 'Q', 4.00)`)
    await pool.query(`CREATE TABLE "${schema}".legacy (id text PRIMARY KEY, merchant text, amount numeric(12,2))`)
    // 4: a real difference, which the spec's normalizations must not hide
    await pool.query(`INSERT INTO "${schema}".legacy VALUES ('1', '', 1.00), ('2', 'ABC  ', 2.00), ('3', 'XYZ', 3.00), ('4', 'R', 4.00)`)
    const dir = tempDir('parity-spec-normalize-')
    writeFileSync(join(dir, 'legacy.csv'), 'id,merchant,amount\n1,,1.00\n2,ABC  ,2.00\n3,XYZ,3.00\n4,R,4.00\n')
    writeFileSync(join(dir, 'pipeline.yaml'), SPEC)
    const right = `pg:${schema}.stream`
    const run = (left: string, extra: string[]) => runCli(['parity', 'check', '--left', left, '--right', right, '--key', 'id', '--json', '--no-ledger', ...extra], {cwd: dir})

    const plain = await run('csv:legacy.csv', [])
    expect(plain.code, plain.stderr).toBe(0)
    expect(plain.json).toMatchObject({matched: 1, mismatched: 3})
    expect(plain.json.spec_normalized).toBeUndefined()

    for (const [left, strategy] of [
      ['csv:legacy.csv', 'merge'],
      [`pg:${schema}.legacy`, 'merge'],
      [`pg:${schema}.legacy`, 'sql-pushdown'],
      [`pg:${schema}.legacy`, 'bisect'],
    ] as const) {
      const r = await run(left, ['--spec', 'pipeline.yaml', '--strategy', strategy])
      expect(r.code, r.stderr).toBe(0)
      expect(r.json, `${left} ${strategy}`).toMatchObject({strategy, matched: 3, mismatched: 1, unexplained: 1, spec_normalized: {merchant: ['trim', 'empty_as_null']}})
      expect(r.json.columns.merchant.mismatches).toBe(1)
      expect(r.json.samples.map((s: {key: {id: string}}) => s.key.id)).toEqual(['4'])
    }
  })

  it('the ledger row\'s options name the spec\'s normalizations', async () => {
    const url = freshDatabase()
    const dir = tempDir('parity-spec-normalize-')
    writeFileSync(join(dir, 'l.csv'), 'id,merchant\n1,\n2,ABC  \n')
    writeFileSync(join(dir, 'r.csv'), 'id,merchant\n1,\n2,ABC\n')
    writeFileSync(join(dir, 'pipeline.yaml'), SPEC)
    const r = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--spec', 'pipeline.yaml', '--json'], {cwd: dir, env: {DATABASE_URL: url}})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({matched: 2, unexplained: 0})
    const client = new pg.Client({connectionString: url})
    await client.connect()
    try {
      const row = (await client.query('SELECT options, result FROM cutover.parity_runs WHERE id = $1', [r.json.run_id])).rows[0]
      expect(row.options.specNormalized).toEqual({merchant: ['trim', 'empty_as_null']})
      expect(row.result.spec_normalized).toEqual({merchant: ['trim', 'empty_as_null']})
    } finally {
      await client.end()
    }
  })
})

describe('parity check --normalize <key>=trim', () => {
  it('a padded key of a csv: side pairs with the trimmed key of a csv: or pg: side under merge, sorted after trimming', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".stream (id text PRIMARY KEY, amount text)`)
    await pool.query(`INSERT INTO "${schema}".stream VALUES ('00101', '1'), ('00102', '2'), ('00103', '3'), ('00104', '4')`)
    // a padded legacy table too: its keys trimmed in PostgreSQL (btrim, sorted after it)
    await pool.query(`CREATE TABLE "${schema}".legacy (id text PRIMARY KEY, amount text)`)
    await pool.query(`INSERT INTO "${schema}".legacy VALUES (' 00104', '4'), ('00101', '1'), ('00102 ', '2'), ('00103\t', '9')`)
    const dir = tempDir('parity-key-trim-')
    // " 00104" sorts first as read, last once trimmed: the merge must sort the trimmed keys
    writeFileSync(join(dir, 'legacy.csv'), 'id,amount\n 00104,4\n00101,1\n00102 ,2\n00103 ,9\n')
    writeFileSync(join(dir, 'stream.csv'), 'id,amount\n00101,1\n00102,2\n00103,3\n00104,4\n')
    const run = (left: string, right: string, extra: string[] = []) =>
      runCli(['parity', 'check', '--left', left, '--right', right, '--key', 'id', '--normalize', 'id=trim', '--json', '--no-ledger', ...extra], {cwd: dir})
    for (const [left, right] of [
      ['csv:legacy.csv', 'csv:stream.csv'],
      ['csv:legacy.csv', `pg:${schema}.stream`],
      [`pg:${schema}.legacy`, 'csv:legacy.csv'],
      [`pg:${schema}.legacy`, `pg:${schema}.stream`],
    ] as const) {
      const r = await run(left, right)
      expect(r.code, r.stderr).toBe(0)
      const want = left.startsWith('pg:') && right === 'csv:legacy.csv' ? {matched: 4, mismatched: 0} : {matched: 3, mismatched: 1}
      expect(r.json, `${left} ${right}`).toMatchObject({strategy: 'merge', missing_in_right: 0, extra_in_right: 0, ...want})
    }
    // without the flag the padded keys are missing and extra, as before
    const raw = await runCli(['parity', 'check', '--left', 'csv:legacy.csv', '--right', 'csv:stream.csv', '--key', 'id', '--json', '--no-ledger'], {cwd: dir})
    expect(raw.json).toMatchObject({matched: 1, missing_in_right: 3, extra_in_right: 3})
    // the push-down and bisect compare raw keys in PostgreSQL: refused, not silently different
    const pushed = await run(`pg:${schema}.legacy`, `pg:${schema}.stream`, ['--strategy', 'sql-pushdown'])
    expect(pushed.code).toBe(2)
    expect(pushed.json.error.hint).toMatch(/--strategy merge/)
    // a key takes trim only
    const lower = await run('csv:legacy.csv', 'csv:stream.csv', ['--normalize', 'id=trim,lower'])
    expect(lower.code).toBe(2)
    expect(lower.json.error.message).toContain('a key column takes trim only')
  })
})
