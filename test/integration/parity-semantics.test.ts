/**
 * What a comparison means, through bin/run.js against the real PostgreSQL and Kafka:
 * known-difference rules reading a pg: side's numbers (and counting keys, not differences),
 * string normalization that leaves typed values alone, flags that would do nothing refused,
 * and the columns of a topic whose records leave out null members.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestSchema, createTestTopic, kcatProduce, runCli, tempDir, testPool} from '../helpers.js'

describe('parity check: rules on pg: values', () => {
  it('a numeric predicate reads a numeric(12,3) value such as 1.500 or -5.000 as the number it is, in every strategy', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".legacy (id text PRIMARY KEY, amount numeric(12,3)); CREATE TABLE "${schema}".stream (id text PRIMARY KEY, amount numeric(12,3))`)
    await pool.query(`INSERT INTO "${schema}".legacy VALUES ('1', 1.500), ('2', -5.000), ('3', 10.000), ('4', 2.500)`)
    await pool.query(`INSERT INTO "${schema}".stream VALUES ('3', 10.000)`)
    const dir = tempDir('parity-semantics-')
    writeFileSync(join(dir, 'kd.yaml'), 'rules:\n  - name: tiny-dropped\n    reason: the stream drops amounts under 2\n    when: {kind: missing_in_right, column: amount, left: "< 2"}\n')
    for (const strategy of ['sql-pushdown', 'merge']) {
      const r = await runCli(['parity', 'check', '--left', `pg:${schema}.legacy`, '--right', `pg:${schema}.stream`, '--key', 'id', '--rules', 'kd.yaml', '--strategy', strategy, '--json', '--no-ledger'], {cwd: dir})
      expect(r.code, r.stderr).toBe(0)
      expect(r.json).toMatchObject({strategy, matched: 1, missing_in_right: 3, explained: 2, unexplained: 1, rules: {'tiny-dropped': 2}})
      expect(r.json.samples.map((s: {key: {id: string}; explanation: string | null}) => [s.key.id, s.explanation !== null])).toEqual([
        ['1', true],
        ['2', true],
        ['4', false],
      ])
    }
  })

  it('pg: numeric columns of different scales (and an integer one against a numeric one) are compared as amounts, not as text, in every strategy', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".legacy (id text PRIMARY KEY, amount numeric(12,2), qty integer, rate double precision, note text)`)
    await pool.query(`CREATE TABLE "${schema}".stream (id text PRIMARY KEY, amount numeric(18,4), qty numeric(10,2), rate double precision, note text)`)
    await pool.query(`INSERT INTO "${schema}".legacy VALUES ('1', 10.50, 5, 0.5, 'a'), ('2', 0.00, 0, 1.5, 'b'), ('3', -3.10, 12, 2.5, 'c'), ('4', 7.25, 1, 3.5, 'd')`)
    await pool.query(`INSERT INTO "${schema}".stream VALUES ('1', 10.5000, 5.00, 0.5, 'a'), ('2', 0, 0.00, 1.5, 'b'), ('3', -3.1000, 12.00, 2.5, 'c'), ('4', 7.2600, 2.00, 3.5, 'd')`)
    for (const strategy of ['merge', 'sql-pushdown', 'bisect']) {
      const r = await runCli(['parity', 'check', '--left', `pg:${schema}.legacy`, '--right', `pg:${schema}.stream`, '--key', 'id', '--strategy', strategy, '--json', '--no-ledger'])
      expect(r.code, `${strategy}: ${r.stderr}`).toBe(0)
      expect(r.json, strategy).toMatchObject({matched: 3, mismatched: 1})
      expect(r.json.columns, strategy).toEqual({amount: {mismatches: 1, explained: 0, max_abs_diff: '0.01'}, qty: {mismatches: 1, explained: 0, max_abs_diff: '1'}, rate: {mismatches: 0, explained: 0, max_abs_diff: null}, note: {mismatches: 0, explained: 0, max_abs_diff: null}})
    }
  })

  it('a pg: side naming a table that exists only in another case: exit 2 with the quoted form to write (was: a generic hint)', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}"."Legacy" (id text PRIMARY KEY, v text)`)
    const r = await runCli(['parity', 'check', '--left', `pg:${schema}.Legacy`, '--right', `pg:${schema}.Legacy`, '--key', 'id', '--json', '--no-ledger'])
    expect(r.code, r.stderr).toBe(2)
    expect(r.json.error.hint).toContain(`write pg:${schema}."Legacy"`)
    const quoted = await runCli(['parity', 'check', '--left', `pg:${schema}."Legacy"`, '--right', `pg:${schema}."Legacy"`, '--key', 'id', '--json', '--no-ledger'])
    expect(quoted.code, quoted.stderr).toBe(0)
  })

  it('`rules` counts keys per rule (each key once, when all of its differences are explained), as documented', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    const cols = 'id text PRIMARY KEY, amount numeric(12,2), fee numeric(12,2)'
    await pool.query(`CREATE TABLE "${schema}".legacy (${cols}); CREATE TABLE "${schema}".stream (${cols})`)
    await pool.query(`INSERT INTO "${schema}".legacy VALUES ('A', 10.00, 1.00), ('B', 20.00, 2.00), ('C', 30.00, 3.00)`)
    // A: both columns off by a cent (one rule explains both); B: amount off by a cent, fee off by 5
    await pool.query(`INSERT INTO "${schema}".stream VALUES ('A', 10.01, 1.01), ('B', 20.01, 7.00), ('C', 30.00, 3.00)`)
    const dir = tempDir('parity-semantics-')
    writeFileSync(join(dir, 'kd.yaml'), 'rules:\n  - name: cent-rounding\n    reason: the legacy system rounds half down\n    when: {kind: mismatch, abs_diff: "<= 0.01"}\n')
    const r = await runCli(['parity', 'check', '--left', `pg:${schema}.legacy`, '--right', `pg:${schema}.stream`, '--key', 'id', '--type', 'amount=decimal,fee=decimal', '--rules', 'kd.yaml', '--json', '--no-ledger'], {cwd: dir})
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({matched: 1, mismatched: 2, explained: 1, unexplained: 1, rules: {'cent-rounding': 1}})
    expect(r.json.columns).toEqual({amount: {mismatches: 2, explained: 2, max_abs_diff: '0.01'}, fee: {mismatches: 2, explained: 1, max_abs_diff: '5'}})
  })

  it('a `matches` pattern on the right side that is not a regular expression is a rules error at its place (exit 2), not an internal error', async () => {
    const dir = tempDir('parity-semantics-')
    writeFileSync(join(dir, 'l.csv'), 'id,amount\n1,10\n')
    writeFileSync(join(dir, 'r.csv'), 'id,amount\n1,11\n')
    writeFileSync(join(dir, 'kd.yaml'), 'rules:\n  - name: x\n    reason: y\n    when: {column: amount, right: {matches: "([a-"}}\n')
    const r = await runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', '--rules', 'kd.yaml', '--json', '--no-ledger'], {cwd: dir})
    expect(r.code).toBe(2)
    expect(r.json.error).toMatchObject({code: 'SPEC_INVALID', file: 'kd.yaml', line: 4})
    expect(r.json.error.message).toContain('when.right.matches')
  })
})

describe('parity check: decimals in a pg: text column', () => {
  it('a staging table\'s text amounts ("1 234,56") are read as --type declares them, against a numeric column, in every strategy', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".legacy (id text PRIMARY KEY, amount text); CREATE TABLE "${schema}".stream (id text PRIMARY KEY, amount numeric(14,2))`)
    await pool.query(`INSERT INTO "${schema}".legacy VALUES ('1', '1 234,56'), ('2', '1,50'), ('3', '1.500,00'), ('4', '12,345'), ('5', '7,00')`)
    await pool.query(`INSERT INTO "${schema}".stream VALUES ('1', 1234.56), ('2', 1.50), ('3', 1500.00), ('4', 12.35), ('5', 7.10)`)
    for (const strategy of ['sql-pushdown', 'merge']) {
      const r = await runCli(['parity', 'check', '--left', `pg:${schema}.legacy`, '--right', `pg:${schema}.stream`, '--key', 'id', '--type', 'amount=decimal:,', '--tolerance', 'amount=0.01', '--strategy', strategy, '--json', '--no-ledger'])
      expect(r.code, r.stderr).toBe(0)
      expect(r.json).toMatchObject({strategy, matched: 4, mismatched: 1})
      expect(r.json.columns.amount).toEqual({mismatches: 1, explained: 0, max_abs_diff: '0.1'})
    }
  })
})

describe('parity check: normalization', () => {
  it('`*=trim,lower` folds the case of text columns only: timestamps are still compared as instants', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".stream (id text PRIMARY KEY, name text, event_time timestamptz)`)
    await pool.query(`INSERT INTO "${schema}".stream VALUES ('1', 'ivanov', '2026-11-20 06:15:00+00'), ('2', 'petrov', '2026-11-20 06:16:00+00'), ('3', 'sidorov', '2026-11-20 07:00:00+00')`)
    const dir = tempDir('parity-semantics-')
    // Moscow local time in the file; row 3 is an hour off
    writeFileSync(join(dir, 'legacy.csv'), 'id,name,event_time\n1,IVANOV ,20.11.2026 09:15:00\n2,Petrov,2026-11-20T09:16:00+03:00\n3,SIDOROV,20.11.2026 09:00:00\n')
    const r = await runCli(
      ['parity', 'check', '--left', 'csv:legacy.csv', '--right', `pg:${schema}.stream`, '--key', 'id', '--type', 'event_time=timestamp:Europe/Moscow', '--normalize', '*=trim,lower', '--json', '--no-ledger'],
      {cwd: dir},
    )
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({matched: 2, mismatched: 1, unexplained: 1})
    expect(r.json.columns).toEqual({name: {mismatches: 0, explained: 0, max_abs_diff: null}, event_time: {mismatches: 1, explained: 0, max_abs_diff: '3600'}})
  })

  it('a normalization of a key or of a column that is not compared is refused (exit 2), not ignored', async () => {
    const dir = tempDir('parity-semantics-')
    writeFileSync(join(dir, 'l.csv'), 'id,amount\n 1 ,10\n')
    writeFileSync(join(dir, 'r.csv'), 'id,amount\n1,10\n')
    const run = (flags: string[]) => runCli(['parity', 'check', '--left', 'csv:l.csv', '--right', 'csv:r.csv', '--key', 'id', ...flags, '--json', '--no-ledger'], {cwd: dir})
    // a key takes trim only (--normalize id=trim: parity-spec-normalize-keys.test.ts), and no type or tolerance
    const key = await run(['--type', 'id=integer'])
    expect(key.code).toBe(2)
    expect(key.json.error.code).toBe('USAGE')
    expect(key.json.error.message).toContain('"id", a key column')
    const lower = await run(['--normalize', 'id=lower'])
    expect(lower.code).toBe(2)
    expect(lower.json.error.message).toContain('a key column takes trim only')
    const typo = await run(['--null-equals-empty', 'amout'])
    expect(typo.code).toBe(2)
    expect(typo.json.error.message).toContain('"amout", which is not a compared column')
    const all = await run(['--normalize', '*=trim', '--null-equals-empty', '*'])
    expect(all.code, all.stderr).toBe(0)
  })
})

describe('parity check: the columns of a kafka: side', () => {
  it('a member the first records leave out (null) is still a column, compared and nameable in --columns', async () => {
    const topic = await createTestTopic()
    kcatProduce(topic, [JSON.stringify({id: '1', amount: '10.00'}), JSON.stringify({id: '2', amount: '5.00', merchant: 'SHOP-B'}), JSON.stringify({id: '3', amount: '7.00', merchant: 'WRONG'})])
    const dir = tempDir('parity-semantics-')
    writeFileSync(join(dir, 'legacy.csv'), 'id,amount,merchant\n1,10.00,\n2,5.00,SHOP-B\n3,7.00,SHOP-C\n')
    const all = await runCli(['parity', 'check', '--left', 'csv:legacy.csv', '--right', `kafka:${topic}`, '--key', 'id', '--null-equals-empty', 'merchant', '--json', '--no-ledger'], {cwd: dir})
    expect(all.code, all.stderr).toBe(0)
    expect(all.json).toMatchObject({matched: 2, mismatched: 1, unexplained: 1})
    expect(all.json.columns.merchant).toEqual({mismatches: 1, explained: 0, max_abs_diff: null})
    expect(all.json.samples).toEqual([{key: {id: '3'}, kind: 'mismatch', column: 'merchant', left: 'SHOP-C', right: 'WRONG', explanation: null}])
    const named = await runCli(['parity', 'check', '--left', 'csv:legacy.csv', '--right', `kafka:${topic}`, '--key', 'id', '--columns', 'merchant', '--json', '--no-ledger'], {cwd: dir})
    expect(named.code, named.stderr).toBe(0)
    expect(named.json).toMatchObject({matched: 1, mismatched: 2})
  })
})
