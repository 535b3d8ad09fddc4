/**
 * Sink table, schema and column names that differ from the database's only in letter case
 * (src/runtime/sinks/table.ts missingTable, missingColumn), through `stream run` on the real
 * PostgreSQL: names are matched exactly (quoted), so `table: Txn_Clean` is not the txn_clean a
 * DBA's unquoted `CREATE TABLE Txn_Clean` made. Never taken silently, never guessed: exit 2 at
 * start naming what exists, why its case differs, and the spec's fix; when several differ only
 * in case, all of them, and no one chosen.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {describe, expect, it} from 'vitest'
import {runCli, type CliResult} from '../helpers.js'
import {produce, streamFixture, type StreamFixture} from './stream-support.js'

type JsonError = {code: string; message: string; hint: string; other_case?: string[]; other_case_schemas?: string[]}

let variants = 0

/** A copy of the fixture's spec (a file of its own, beside it) edited by `edit`. */
function variant(f: StreamFixture, edit: (text: string) => string): string {
  const file = f.specFile.replace(/\.yaml$/, `-${++variants}.yaml`)
  writeFileSync(file, edit(readFileSync(f.specFile, 'utf8')))
  return file
}

/** A copy of the fixture's spec whose sinks' `table:` are these. */
function withTables(f: StreamFixture, txnClean: string, totals = 'account_daily_totals'): string {
  return variant(f, (text) => text.replace('- table: txn_clean\n', `- table: ${txnClean}\n`).replace('- table: account_daily_totals\n', `- table: ${totals}\n`))
}

function run(f: StreamFixture, spec: string, options: {schema?: string | null; json?: boolean} = {}): Promise<CliResult> {
  const schema = options.schema === null ? [] : ['--schema', options.schema ?? f.schema]
  return runCli(['stream', 'run', '--spec', spec, ...schema, '--until-idle', '--idle-ms', '500', ...(options.json === false ? [] : ['--json'])])
}

/** The --json refusal: exit 2, SPEC_INVALID, at the sink's `table:` line. */
function refusal(r: CliResult): JsonError {
  expect(r.code, r.stderr).toBe(2)
  const err = (r.json as {error: JsonError & {line?: number}}).error
  expect(err.code).toBe('SPEC_INVALID')
  expect(err.message).toMatch(/pipeline-\d+\.yaml:\d+:\d+: /)
  return err
}

describe('sink names that differ from the database only in case', () => {
  it('a table the DBA created unquoted: exit 2 naming it, with the fix, after which the run writes', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'snc-table'})
    const spec = withTables(f, 'Txn_Clean')
    const [human, json] = await Promise.all([run(f, spec, {json: false}), run(f, spec)])
    expect(human.code, human.stderr).toBe(2)
    expect(human.stderr).toMatch(new RegExp(`sink table ${f.schema}\\.Txn_Clean does not exist, but txn_clean does: PostgreSQL has ${f.schema}\\.txn_clean \\(table txn_clean created unquoted, so folded to lower case\\)`))
    expect(human.stderr).toMatch(/fix: write table: txn_clean in the spec's sinks/)
    const err = refusal(json)
    expect(err.hint).toBe("write table: txn_clean in the spec's sinks")
    expect(err.other_case).toEqual([`${f.schema}.txn_clean`])
    // the fix, as the hint says: the run writes into the table the DBA made
    const value = Buffer.from(JSON.stringify({id: 'T1', acct: 'ACC-1', amt: '10.50', ts: '2026-11-20T10:00:00+03:00'}))
    await produce(f.topic, [{key: 'T1', value}])
    const ok = await run(f, withTables(f, 'txn_clean'))
    expect(ok.code, ok.stderr).toBe(0)
    expect((await f.pool.query(`SELECT txn_id, amount::text FROM "${f.schema}".txn_clean`)).rows).toEqual([{txn_id: 'T1', amount: '10.50'}])
  })

  it('tables that differ from the spec only in case: two are both named, none chosen (the first in sort order was offered); the schema part', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'snc-two'})
    await f.pool.query(`CREATE TABLE "${f.schema}"."ACCOUNT_DAILY_TOTALS" (LIKE "${f.schema}".account_daily_totals INCLUDING ALL)`)
    const upper = f.schema.toUpperCase()
    const [two, qualified, schema, flag] = await Promise.all([
      run(f, withTables(f, 'txn_clean', 'Account_Daily_Totals')),
      // qualified in the spec, run with the default schema (public): the fix must stay qualified (it said txn_clean: public's)
      run(f, withTables(f, `${f.schema}.Txn_Clean`, `${f.schema}.account_daily_totals`), {schema: null}),
      // the schema in capitals (the DBA's CREATE SCHEMA was unquoted)
      run(f, withTables(f, `${upper}.txn_clean`, `${upper}.account_daily_totals`), {schema: null}),
      // the same schema by --schema: the flag is a fix too
      run(f, withTables(f, 'txn_clean'), {schema: upper}),
    ])
    const t = f.schema
    const e2 = refusal(two)
    expect(e2.message).toMatch(
      new RegExp(`sink table ${t}\\.Account_Daily_Totals does not exist, but 2 whose names differ from it only in case do: ${t}\\.account_daily_totals and ${t}\\.ACCOUNT_DAILY_TOTALS .*${t}\\.account_daily_totals is the one an unquoted Account_Daily_Totals names`),
    )
    expect(e2.hint).toBe("write the one meant in the spec's sinks: table: account_daily_totals or table: ACCOUNT_DAILY_TOTALS")
    expect(e2.other_case).toEqual([`${t}.account_daily_totals`, `${t}.ACCOUNT_DAILY_TOTALS`])
    expect(refusal(qualified).hint).toBe(`write table: ${t}.txn_clean in the spec's sinks`)
    const es = refusal(schema)
    expect(es.message).toMatch(new RegExp(`sink table ${upper}\\.txn_clean does not exist, but ${t}\\.txn_clean does: .*\\(schema ${t} created unquoted, so folded to lower case\\)`))
    expect(es.hint).toBe(`write table: ${t}.txn_clean in the spec's sinks`)
    expect(refusal(flag).hint).toBe(`write table: ${t}.txn_clean in the spec's sinks (or run with --schema ${t})`)
  })

  it('a table that exists nowhere, in a schema that exists only in another case: created where that schema is, not in a second schema beside it', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'snc-noschema'})
    const upper = f.schema.toUpperCase()
    await f.pool.query(`DROP TABLE "${f.schema}".txn_clean`)
    const err = refusal(await run(f, withTables(f, `${upper}.txn_clean`, `${f.schema}.account_daily_totals`), {schema: null}))
    expect(err.message).toMatch(new RegExp(`sink table ${upper}\\.txn_clean does not exist, nor does its schema ${upper}, but schema ${f.schema} does \\(created unquoted, so folded to lower case\\)`))
    expect(err.hint).toMatch(new RegExp(`^write table: ${f.schema}\\.txn_clean in the spec's sinks, and create the table there: CREATE TABLE "${f.schema}"\\."txn_clean" \\(`))
    expect(err.hint).not.toMatch(/CREATE SCHEMA/)
    expect(err.other_case_schemas).toEqual([f.schema])
    // the CREATE it gives makes the table in the schema that exists, and no other schema
    await f.pool.query(err.hint.slice(err.hint.indexOf('CREATE TABLE')))
    const where = await f.pool.query(`SELECT n.nspname::text AS schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'txn_clean' AND lower(n.nspname) = $1`, [f.schema])
    expect(where.rows).toEqual([{schema: f.schema}])
  })

  it('columns: a field named as an unquoted column was, a field two columns differ from only in case (none chosen), an aggregate column', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'snc-col'})
    await f.pool.query(`ALTER TABLE "${f.schema}".txn_clean ADD COLUMN "CURRENCY" text`)
    const [one, two, agg] = await Promise.all([
      run(f, variant(f, (text) => text.replace('\n  merchant: ', '\n  Merchant: '))),
      run(f, variant(f, (text) => text.replace('\n  currency: ', '\n  Currency: '))),
      run(f, variant(f, (text) => text.replace('txn_count: count', 'Txn_Count: count'))),
    ])
    const e1 = refusal(one)
    expect(e1.message).toMatch(/has no column Merchant for field Merchant \(string\), but has merchant \(columns are matched by their exact name\): merchant was created unquoted, so folded to lower case/)
    expect(e1.hint).toBe(`name it merchant in the spec, or ALTER TABLE "${f.schema}"."txn_clean" RENAME COLUMN "merchant" TO "Merchant";`)
    expect(e1.other_case).toEqual(['merchant'])
    const e2 = refusal(two)
    expect(e2.message).toMatch(/has no column Currency for field Currency \(string\), but has 2 whose names differ from it only in case: currency and CURRENCY \(columns are matched by their exact name; currency is the one an unquoted Currency names\)/)
    expect(e2.hint).toBe('name it in the spec as the column it is meant to fill: currency or CURRENCY')
    expect(e2.other_case).toEqual(['currency', 'CURRENCY'])
    const e3 = refusal(agg)
    expect(e3.message).toMatch(/account_daily_totals has no column Txn_Count for aggregate Txn_Count: count, but has txn_count \(columns are matched by their exact name\): txn_count was created unquoted/)
  })
})
