/**
 * Specs that wrote a value twice or took the wrong one, without a word, on day one:
 *
 * - one table in two sinks (a sink copied, or an aggregate sink split in two): every record was
 *   written into it twice, `txn_count` 4 and `amount_sum` 6.00 for two records of 1.00 and 2.00,
 *   exit 0 and read 2 written 2. Now exit 2 naming both sinks, before anything is read: the spec
 *   check for names as written (also `pipeline validate`), the runtime's for names that
 *   `--schema` makes one (`totals` and `<schema>.totals`);
 * - a csv source whose `columns` names one column twice (`[id, amt, amt]`): the field read the
 *   later column, 99.99 written for a line whose amount was 10,00. Now exit 2 at the column;
 * - key or group_by naming a field twice, and an aggregate column named like a group_by column:
 *   exit 2 already, but the hint was a wrong fix (a unique index on (acct, acct); ALTER the group
 *   column to bigint). Now the spec check names the mistake.
 *
 * Each run is checked by its exit code and --json error, and by the sink tables (empty) and the
 * offsets (none stored): nothing was read.
 */
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestSchema, createTestTopic, runCli, testPool, uniqueName} from '../helpers.js'
import {produce} from './stream-support.js'

async function fixture(prefix: string) {
  const pool = testPool()
  const schema = await createTestSchema(pool)
  await pool.query(`CREATE TABLE "${schema}".txn (txn_id text PRIMARY KEY, acct text, amount numeric(18,2) NOT NULL)`)
  await pool.query(`CREATE TABLE "${schema}".totals (acct text PRIMARY KEY, txn_count bigint NOT NULL DEFAULT 0, amount_sum numeric(20,2) NOT NULL DEFAULT 0)`)
  const name = uniqueName(prefix)
  const topic = await createTestTopic({partitions: 1, prefix: `${name}-raw`})
  onTestFinished(async () => {
    for (const table of ['stream_offsets', 'stream_dedupe', 'outbox']) await pool.query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [name])
  })
  const dir = mkdtempSync(join(tmpdir(), `cutover-${prefix}-`))
  const specFile = (source: string, rest: string) => {
    const file = join(dir, 'pipeline.yaml')
    writeFileSync(file, [`version: 1`, `name: ${name}`, `source: { topic: ${topic}, group: ${name}-g, ${source} }`, rest, `dlq: { topic: ${name}.dlq }`, ''].join('\n'))
    return file
  }
  const run = (spec: string) => runCli(['stream', 'run', '--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', '300', '--json'])
  const state = async () => ({
    txn: (await pool.query(`SELECT txn_id, amount::text FROM "${schema}".txn ORDER BY 1`)).rows,
    totals: (await pool.query(`SELECT acct, txn_count::int, amount_sum::text FROM "${schema}".totals ORDER BY 1`)).rows,
    offsets: Number((await pool.query<{n: string}>('SELECT count(*)::text AS n FROM cutover.stream_offsets WHERE pipeline = $1', [name])).rows[0]!.n),
  })
  return {schema, topic, specFile, run, state}
}

const JSON_FIELDS = `fields:
  txn_id: { from: id, type: string, required: true }
  acct: { type: string, required: true }
  amount: { from: amt, type: decimal, scale: 2, required: true }
key: txn_id
dedupe: { by: txn_id }`

describe('stream run: a spec that would write a value twice, or the wrong one, is exit 2 before anything is read', () => {
  it('one table in two sinks (was: every record counted and summed twice, exit 0)', async () => {
    const f = await fixture('stream-two-sinks')
    await produce(f.topic, [
      {key: 'A', value: Buffer.from('{"id":"A","acct":"A1","amt":"1,00"}')},
      {key: 'B', value: Buffer.from('{"id":"B","acct":"A1","amt":"2,00"}')},
    ])
    const counts = '{table: totals, group_by: [acct], aggregates: {txn_count: count, amount_sum: sum(amount)}}'

    // as written: the spec check (pipeline validate too)
    const twice = f.specFile('format: json', `${JSON_FIELDS}\nsinks:\n  - {table: txn}\n  - ${counts}\n  - ${counts}`)
    const r = await f.run(twice)
    expect(r.code, r.stderr).toBe(2)
    expect(r.json.error.message).toContain(
      "sinks.2.table: table totals is already written by sinks[1]: a second sink of one table writes every record into it again (an aggregate's counts and sums twice); list all its aggregates in one sink",
    )
    expect(await f.state()).toEqual({txn: [], totals: [], offsets: 0})
    const v = await runCli(['pipeline', 'validate', twice, '--json'])
    expect(v.code).toBe(2)
    expect(v.json.error.errors).toMatchObject([{path: 'sinks.2.table', line: 13}])

    // one table once --schema qualifies the names: the runtime's check
    const qualified = f.specFile('format: json', `${JSON_FIELDS}\nsinks:\n  - {table: txn}\n  - ${counts}\n  - ${counts.replace('table: totals', `table: ${f.schema}.totals`)}`)
    const q = await f.run(qualified)
    expect(q.code, q.stderr).toBe(2)
    expect(q.json.error.message).toContain(`:13:13: table ${f.schema}.totals is already written by sinks[1]`)
    expect(await f.state()).toEqual({txn: [], totals: [], offsets: 0})

    // the spec with one sink of the table: each record once
    const once = await f.run(f.specFile('format: json', `${JSON_FIELDS}\nsinks:\n  - {table: txn}\n  - ${counts}`))
    expect(once.code, once.stdout + once.stderr).toBe(0)
    expect(once.json).toMatchObject({read: 2, written: 2, duplicates: 0, dead_lettered: {}})
    expect(await f.state()).toEqual({txn: [{txn_id: 'A', amount: '1.00'}, {txn_id: 'B', amount: '2.00'}], totals: [{acct: 'A1', txn_count: 2, amount_sum: '3.00'}], offsets: 1})
  })

  it('a csv column listed twice (was: the later column written for the field: 99.99 for 10,00)', async () => {
    const f = await fixture('stream-csv-col-twice')
    await produce(f.topic, [{key: 'D1', value: Buffer.from('D1;A1;10,00;99,99')}])
    const fields = 'fields:\n  txn_id: { from: id, type: string, required: true }\n  amount: { from: amt, type: decimal, scale: 2, required: true }\nkey: txn_id\nsinks: [ {table: txn} ]'
    const r = await f.run(f.specFile('format: csv, encoding: windows-1251, delimiter: ";", columns: [id, acct, amt, amt]', fields))
    expect(r.code, r.stderr).toBe(2)
    expect(r.json.error.message).toContain(
      'source.columns.3: column "amt" is listed twice (positions 3 and 4): a field reading it would get the later one\'s value only; give each column a name of its own',
    )
    expect(await f.state()).toEqual({txn: [], totals: [], offsets: 0})

    const ok = await f.run(f.specFile('format: csv, encoding: windows-1251, delimiter: ";", columns: [id, acct, amt, fee]', fields))
    expect(ok.code, ok.stderr).toBe(0)
    expect((await f.state()).txn).toEqual([{txn_id: 'D1', amount: '10.00'}])
  })

  it('key or group_by naming a field twice, an aggregate column named like a group_by column: the mistake named (was: a wrong fix as the hint)', async () => {
    const f = await fixture('stream-group-twice')
    const twice = await f.run(f.specFile('format: json', `${JSON_FIELDS}\nsinks:\n  - {table: totals, group_by: [acct, acct], aggregates: {txn_count: count}}`))
    expect(twice.code, twice.stderr).toBe(2)
    expect(twice.json.error.message).toContain('sinks.0.group_by.1: group_by names "acct" twice: list each field once')
    expect(twice.json.error.hint).not.toContain('CREATE UNIQUE INDEX')
    const named = await f.run(f.specFile('format: json', `${JSON_FIELDS}\nsinks:\n  - {table: totals, group_by: [acct], aggregates: {acct: count}}`))
    expect(named.code, named.stderr).toBe(2)
    expect(named.json.error.message).toContain('sinks.0.aggregates.acct: "acct" is a group_by column: an aggregate needs a column of its own (e.g. acct_count)')
    expect(named.json.error.hint).not.toContain('ALTER TABLE')
    const key = await f.run(f.specFile('format: json', `${JSON_FIELDS.replace('key: txn_id', 'key: [txn_id, txn_id]')}\nsinks:\n  - {table: txn}`))
    expect(key.code, key.stderr).toBe(2)
    expect(key.json.error.message).toContain('key.1: key names "txn_id" twice: list each field once')
    expect(key.json.error.hint).not.toContain('CREATE UNIQUE INDEX')
    expect(await f.state()).toEqual({txn: [], totals: [], offsets: 0})
  })
})
