/**
 * `enrich:` in `cutover stream run` (src/runtime/stages/enrich.ts), against the real broker and
 * PostgreSQL: records enriched from a lookup table into an upsert sink (exact text of each
 * column: a numeric 150000.00, a bigint cast back into the sink's bigint, SQL NULL as null) and
 * an aggregate grouped by a lookup column; an unknown account and a null account dead-lettered
 * as ENRICHMENT_MISSING and an account with two rows as ENRICHMENT_UNAVAILABLE (read back from
 * the DLQ with kcat), or written with null columns under `missing: null`; the cache (a row
 * changed in the table is seen once its entry is older than the ttl, a row added after a miss at
 * once: misses are not cached); the start checks (exit 2 with the fix); and a lookup table
 * locked or renamed away while running (the batch waits or is retried, nothing dead-lettered).
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {describe, expect, it, onTestFinished} from 'vitest'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {createTestSchema, createTestTopic, databaseUrl, endPool, kafka, kcatConsume, runCli, settings, startCli, tempDir, testPool, uniqueName} from '../helpers.js'
import {produce, sleep, type ProducedMessage} from './stream-support.js'
import type {KafkaMessage} from 'kafkajs'
import {parseSpec} from '../../src/config/spec.js'
import {silentLogger} from '../../src/log.js'
import {copyIn} from '../../src/pg/copy.js'
import {buildSinks} from '../../src/runtime/sinks/index.js'
import type {PipelineContext, WorkItem} from '../../src/runtime/types.js'

interface EnrichFixture {
  name: string
  topic: string
  dlqTopic: string
  schema: string
  specFile: string
  pool: pg.Pool
  /** `schema.table`, quoted */
  t(table: string): string
  /** (re)writes the spec file: `body` is everything after `source:` and before `dlq:` */
  writeSpec(body: string): void
}

/** A topic, a schema with `tables` (given the quoted schema), a spec file: one of each per test. */
async function enrichFixture(prefix: string, tables: (s: string) => string[], options: {partitions?: number} = {}): Promise<EnrichFixture> {
  const name = uniqueName(prefix)
  const topic = await createTestTopic({prefix: `${name}.raw`, partitions: options.partitions ?? 2})
  const dlqTopic = `${name}.dlq`
  const pool = testPool()
  const schema = await createTestSchema(pool)
  for (const sql of tables(`"${schema}"`)) await pool.query(sql)
  const specFile = join(tempDir('cutover-enrich-'), 'pipeline.yaml')
  onTestFinished(async () => {
    const a = kafka().admin()
    await a.connect()
    if ((await a.listTopics()).includes(dlqTopic)) await a.deleteTopics({topics: [dlqTopic]}).catch(() => {})
    await a.disconnect()
    for (const table of ['stream_offsets', 'stream_dedupe', 'outbox']) await pool.query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [name]).catch(() => {})
  })
  const f: EnrichFixture = {
    name,
    topic,
    dlqTopic,
    schema,
    specFile,
    pool,
    t: (table) => `"${schema}".${table}`,
    writeSpec: (body) => writeFileSync(specFile, `version: 1\nname: ${name}\nsource: {topic: ${topic}, group: ${name}-group}\n${body}dlq: {topic: ${dlqTopic}}\nretry: {initial: 50ms, max: 500ms}\n`),
  }
  return f
}

const FIELDS = `fields:
  txn_id: {from: id, type: string, required: true}
  account_id: {from: acct, type: string, trim: true}
  amount: {from: amt, type: decimal, scale: 2, required: true}
key: txn_id
dedupe: {by: txn_id}
`

/** The accounts table, A-3 (no daily limit: NULL), and A-17 twice (no unique key). */
const ACCOUNTS = (s: string) => [
  `CREATE TABLE ${s}.accounts (account_id text NOT NULL, customer_id bigint, segment text, daily_limit numeric(14, 2))`,
  `CREATE INDEX ON ${s}.accounts (account_id)`,
  `INSERT INTO ${s}.accounts VALUES ('A-1', 1001, 'retail', 150000.00), ('A-2', 1002, 'corporate', 5000000.50), ('A-3', 1003, 'retail', NULL),
     ('A-17', 1017, 'retail', 1.00), ('A-17', 1018, 'private', 2.00)`,
]

type Rec = {id: string; acct?: string | null; amt: string}

function messages(recs: Rec[]): ProducedMessage[] {
  return recs.map((r) => ({key: r.id, value: Buffer.from(JSON.stringify(r)), headers: {'x-trace': `trace-${r.id}`}}))
}

/** 30 records: A-1 x10, A-2 x8, A-3 x6, A-99 (unknown) x2, A-17 (two rows) x2, no account x1, and one identical repeat. */
function thirtyRecords(): Rec[] {
  const recs: Rec[] = []
  const add = (acct: string | null, n: number) => {
    for (let i = 0; i < n; i++) recs.push({id: `T${String(recs.length).padStart(3, '0')}`, acct, amt: `${recs.length + 1}.25`})
  }
  add('A-1', 10)
  add('A-2', 8)
  add('A-3', 6)
  add('A-99', 2)
  add('A-17', 2)
  add(null, 1)
  recs.push({...recs[3]!}) // an identical repeat of T003: a duplicate, counted
  return recs
}

/** cents -> "12.34" */
function money(cents: bigint): string {
  return `${cents / 100n}.${String(cents % 100n).padStart(2, '0')}`
}
const cents = (amt: string) => BigInt(amt.replace('.', ''))

async function runUntilIdle(f: EnrichFixture, env: Record<string, string> = {}) {
  const r = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '1500', '--json'], {env})
  expect(r.code, r.stderr).toBe(0)
  const out = r.json as StreamRunResult
  expect(out.read).toBe(out.written + Object.values(out.dead_lettered).reduce((a, b) => a + (b ?? 0), 0) + out.duplicates)
  return {out, stderr: r.stderr}
}

describe('stream run: enrich', () => {
  it('enriches records into the upsert and the aggregate sink; unknown, empty and ambiguous accounts are dead-lettered with their codes', async () => {
    const f = await enrichFixture('enrich-dlq', (s) => [
      ...ACCOUNTS(s),
      // a negative amount refused by the table: its transaction runs again (the enrich stage with it)
      `CREATE TABLE ${s}.txn (txn_id text PRIMARY KEY, account_id text, amount numeric(12, 2) NOT NULL CHECK (amount > 0), customer_id bigint, segment text, daily_limit numeric(14, 2))`,
      `CREATE TABLE ${s}.customer_totals (customer_id bigint PRIMARY KEY, n bigint NOT NULL DEFAULT 0, total numeric NOT NULL DEFAULT 0)`,
    ])
    f.writeSpec(`${FIELDS}enrich:
  - name: account
    table: accounts
    on: account_id
    select: [customer_id, segment, daily_limit]
    cache: {max_entries: 1000, ttl: 5m}
    missing: dlq
sinks:
  - table: txn
  - table: customer_totals
    group_by: [customer_id]
    aggregates: {n: count, total: sum(amount)}
`)
    const recs = thirtyRecords()
    // T101: an account with U+0000, which no text column holds: the validate stage refuses it (the sink txn writes account_id)
    await produce(f.topic, messages([...recs, {id: 'T100', acct: 'A-1', amt: '-5.00'}, {id: 'T101', acct: 'A-1\u0000', amt: '1.00'}]))
    const {out, stderr} = await runUntilIdle(f)
    expect(out).toMatchObject({read: 32, written: 24, duplicates: 1, dead_lettered: {ENRICHMENT_MISSING: 3, ENRICHMENT_UNAVAILABLE: 2, SINK_REJECTED: 1, SCHEMA_VIOLATION: 1}})
    // accounts has no unique index on account_id: said once at start
    expect(stderr.split('\n').filter((l) => l.includes('"event":"enrich.not_unique"'))).toHaveLength(1)

    const rows = await f.pool.query(`SELECT txn_id, account_id, amount::text, customer_id::text, segment, daily_limit::text FROM ${f.t('txn')} ORDER BY txn_id`)
    const info: Record<string, {customer_id: string; segment: string; daily_limit: string | null}> = {
      'A-1': {customer_id: '1001', segment: 'retail', daily_limit: '150000.00'},
      'A-2': {customer_id: '1002', segment: 'corporate', daily_limit: '5000000.50'},
      'A-3': {customer_id: '1003', segment: 'retail', daily_limit: null},
    }
    const kept = recs.slice(0, 24)
    expect(rows.rows).toEqual(kept.map((r) => ({txn_id: r.id, account_id: r.acct, amount: r.amt, ...info[r.acct!]})))
    const totals = await f.pool.query(`SELECT customer_id::text, n::text, total::text FROM ${f.t('customer_totals')} ORDER BY customer_id`)
    const expected = ['A-1', 'A-2', 'A-3'].map((a) => {
      const of = kept.filter((r) => r.acct === a)
      return {customer_id: info[a]!.customer_id, n: String(of.length), total: money(of.reduce((s, r) => s + cents(r.amt), 0n))}
    })
    expect(totals.rows).toEqual(expected)

    // the dead letters, read back with an independent client, keep the original message and say why
    const letters = kcatConsume(f.dlqTopic).sort((a, b) => (a.key! < b.key! ? -1 : 1))
    expect(letters.map((l) => [l.key, l.headers['cutover.error.code'], l.headers['cutover.error.stage']])).toEqual([
      ['T024', 'ENRICHMENT_MISSING', 'enrich'],
      ['T025', 'ENRICHMENT_MISSING', 'enrich'],
      ['T026', 'ENRICHMENT_UNAVAILABLE', 'enrich'],
      ['T027', 'ENRICHMENT_UNAVAILABLE', 'enrich'],
      ['T028', 'ENRICHMENT_MISSING', 'enrich'],
      ['T100', 'SINK_REJECTED', 'sink'],
      ['T101', 'SCHEMA_VIOLATION', 'validate'],
    ])
    const byKey = new Map(letters.map((l) => [l.key, l]))
    expect(byKey.get('T024')!.headers['cutover.error.message']).toBe(`lookup account: no row of ${f.schema}.accounts has account_id "A-99"`)
    expect(byKey.get('T026')!.headers['cutover.error.message']).toBe(`lookup account: 2 rows of ${f.schema}.accounts match account_id "A-17": a lookup needs one`)
    expect(byKey.get('T028')!.headers['cutover.error.message']).toBe(`lookup account: account_id is empty, so no row of ${f.schema}.accounts can match it`)
    expect(byKey.get('T101')!.headers['cutover.error.message']).toBe('field account_id contains a NUL character (U+0000), which PostgreSQL text cannot store')
    expect(byKey.get('T024')!.payload).toBe(JSON.stringify(recs[24]))
    expect(byKey.get('T024')!.headers['x-trace']).toBe('trace-T024')
  })

  it('missing: null writes the record with null lookup columns; a lookup column the sink table lacks is not written (said once)', async () => {
    // looked up through a view (it has no unique index: A-17's two rows are no answer)
    const f = await enrichFixture('enrich-null', (s) => [...ACCOUNTS(s), `CREATE VIEW ${s}.accounts_v AS SELECT * FROM ${s}.accounts`, `CREATE TABLE ${s}.txn (txn_id text PRIMARY KEY, account_id text, amount numeric(12, 2) NOT NULL, customer_id bigint, segment text)`], {partitions: 1})
    // account_id sensitive: masked in the dead letter's message, written as it is
    f.writeSpec(`${FIELDS.replace('type: string, trim: true', 'type: string, trim: true, sensitive: true')}enrich:
  - {name: account, table: accounts_v, on: account_id, select: [customer_id, segment, daily_limit], missing: null}
sinks: [{table: txn}]
`)
    const recs = thirtyRecords()
    await produce(f.topic, messages(recs))
    const {out, stderr} = await runUntilIdle(f, {CUTOVER_LOG_LEVEL: 'info'})
    // the unknown and the empty account written; two rows for one account is still no answer
    expect(out).toMatchObject({read: 30, written: 27, duplicates: 1, dead_lettered: {ENRICHMENT_UNAVAILABLE: 2}})
    expect(Object.keys(out.dead_lettered)).toEqual(['ENRICHMENT_UNAVAILABLE'])
    const notWritten = stderr.split('\n').filter((l) => l.includes('"event":"sink.lookup_columns_not_written"'))
    expect(notWritten).toHaveLength(1)
    expect(JSON.parse(notWritten[0]!)).toMatchObject({table: `${f.schema}.txn`, columns: ['daily_limit']})
    const rows = await f.pool.query(`SELECT txn_id, account_id, customer_id::text, segment FROM ${f.t('txn')} WHERE txn_id IN ('T000', 'T024', 'T025', 'T028') ORDER BY txn_id`)
    expect(rows.rows).toEqual([
      {txn_id: 'T000', account_id: 'A-1', customer_id: '1001', segment: 'retail'},
      {txn_id: 'T024', account_id: 'A-99', customer_id: null, segment: null},
      {txn_id: 'T025', account_id: 'A-99', customer_id: null, segment: null},
      {txn_id: 'T028', account_id: null, customer_id: null, segment: null},
    ])
    const letters = kcatConsume(f.dlqTopic)
    expect(letters.map((l) => l.headers['cutover.error.message'])).toEqual([
      `lookup account: 2 rows of ${f.schema}.accounts_v match account_id "***": a lookup needs one`,
      `lookup account: 2 rows of ${f.schema}.accounts_v match account_id "***": a lookup needs one`,
    ])
    const warning = stderr.split('\n').filter((l) => l.includes('"event":"enrich.not_unique"'))
    expect(warning).toHaveLength(1)
    expect(JSON.parse(warning[0]!)).toMatchObject({lookup: 'account', table: `${f.schema}.accounts_v`, note: expect.stringContaining('is a view, which has no unique index on (account_id)')})
  })

  it('missing: null and an aggregate grouped by a lookup column: a null group is refused by its table (SINK_REJECTED), the others counted', async () => {
    const f = await enrichFixture('enrich-nullgroup', (s) => [
      ...ACCOUNTS(s),
      `CREATE TABLE ${s}.segment_totals (segment text PRIMARY KEY, n bigint NOT NULL DEFAULT 0, total numeric NOT NULL DEFAULT 0)`,
    ], {partitions: 1})
    f.writeSpec(`${FIELDS}enrich:
  - {name: account, table: accounts, on: account_id, select: [segment], missing: null}
sinks:
  - {table: segment_totals, group_by: [segment], aggregates: {n: count, total: sum(amount)}}
`)
    await produce(f.topic, messages([
      {id: 'T1', acct: 'A-1', amt: '10.10'},
      {id: 'T2', acct: 'A-99', amt: '20.20'},
      {id: 'T3', acct: 'A-3', amt: '30.30'},
      {id: 'T4', acct: 'A-2', amt: '40.40'},
      // an account with U+0000, which no sink writes here (the validate stage lets it through): the
      // lookup cannot send it (PostgreSQL refuses it as a parameter), so not found: a null group
      {id: 'T5', acct: 'A-1\u0000', amt: '50.50'},
    ]))
    const {out} = await runUntilIdle(f)
    expect(out).toMatchObject({read: 5, written: 3, dead_lettered: {SINK_REJECTED: 2}})
    expect((await f.pool.query(`SELECT segment, n::int, total::text FROM ${f.t('segment_totals')} ORDER BY segment`)).rows).toEqual([
      {segment: 'corporate', n: 1, total: '40.40'},
      {segment: 'retail', n: 2, total: '40.40'},
    ])
    const letters = kcatConsume(f.dlqTopic)
    expect(letters.map((l) => [l.key, l.headers['cutover.error.code'], l.headers['cutover.error.stage']]).sort()).toEqual([
      ['T2', 'SINK_REJECTED', 'sink'],
      ['T5', 'SINK_REJECTED', 'sink'],
    ])
  })

  it('lookup values with a tab, a newline and a backslash reach the sink exactly (600 new rows)', async () => {
    const odd = 'retail\tnorth\nline 2 \\N back\\slash'
    const f = await enrichFixture('enrich-copy', (s) => [
      `CREATE TABLE ${s}.accounts (account_id text PRIMARY KEY, segment text)`,
      `INSERT INTO ${s}.accounts VALUES ('A-1', $odd$${odd}$odd$), ('A-2', NULL)`,
      `CREATE TABLE ${s}.txn (txn_id text PRIMARY KEY, account_id text, amount numeric(12, 2), segment text)`,
    ], {partitions: 1})
    f.writeSpec(`${FIELDS}enrich:\n  - {name: account, table: accounts, on: account_id, select: [segment]}\nsinks: [{table: txn}]\n`)
    const recs: Rec[] = Array.from({length: 600}, (_, i) => ({id: `T${String(i).padStart(4, '0')}`, acct: i % 2 === 0 ? 'A-1' : 'A-2', amt: '1.00'}))
    await produce(f.topic, messages(recs))
    const {out} = await runUntilIdle(f)
    expect(out).toMatchObject({read: recs.length, written: recs.length, dead_lettered: {}})
    const rows = await f.pool.query<{segment: string | null; n: number}>(`SELECT segment, count(*)::int AS n FROM ${f.t('txn')} GROUP BY segment ORDER BY segment NULLS LAST`)
    expect(rows.rows).toEqual([
      {segment: odd, n: 300},
      {segment: null, n: 300},
    ])
  })

  it('cache: a changed row is seen once its entry is older than the ttl; a row added after a miss is found by the next batch', async () => {
    const f = await enrichFixture('enrich-cache', (s) => [
      `CREATE TABLE ${s}.accounts (account_id text PRIMARY KEY, segment text, tier text)`,
      `INSERT INTO ${s}.accounts VALUES ('A-1', 'retail', 'bronze')`,
      `CREATE TABLE ${s}.txn (txn_id text PRIMARY KEY, account_id text, amount numeric(12, 2), segment text, tier text)`,
    ], {partitions: 1})
    // two lookups of one table: segment trusted for an hour, tier for 300 ms
    f.writeSpec(`${FIELDS}enrich:
  - {name: long, table: accounts, on: account_id, select: [segment], cache: {ttl: 1h}, missing: dlq}
  - {name: short, table: accounts, on: account_id, select: [tier], cache: {ttl: 300ms}, missing: dlq}
sinks: [{table: txn}]
`)
    const run = startCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--metrics-port', '0'], {env: {CUTOVER_LOG_LEVEL: 'info'}})
    let log = ''
    run.child.stderr!.on('data', (d: Buffer) => (log += d.toString()))
    const rowsNow = async () => (await f.pool.query<{txn_id: string; segment: string | null; tier: string | null}>(`SELECT txn_id, segment, tier FROM ${f.t('txn')} ORDER BY txn_id`)).rows
    const committed = async (n: number) => {
      for (;;) {
        const r = await f.pool.query<{n: string}>('SELECT coalesce(sum(next_offset), 0)::text AS n FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])
        if (Number(r.rows[0]!.n) >= n) return
        await sleep(100)
      }
    }
    await produce(f.topic, messages([{id: 'T1', acct: 'A-1', amt: '1.00'}, {id: 'T2', acct: 'A-NEW', amt: '2.00'}]))
    await committed(2)
    expect(await rowsNow()).toEqual([{txn_id: 'T1', segment: 'retail', tier: 'bronze'}])
    await f.pool.query(`UPDATE ${f.t('accounts')} SET segment = 'private', tier = 'gold' WHERE account_id = 'A-1'`)
    await f.pool.query(`INSERT INTO ${f.t('accounts')} VALUES ('A-NEW', 'sme', 'silver')`)
    await sleep(400) // past the short ttl
    // T2 again as it was (a replay of its dead letter): it claimed no dedupe key, so it goes through
    await produce(f.topic, messages([{id: 'T3', acct: 'A-1', amt: '3.00'}, {id: 'T4', acct: 'A-NEW', amt: '4.00'}, {id: 'T2', acct: 'A-NEW', amt: '2.00'}]))
    await committed(5)
    expect(await rowsNow()).toEqual([
      {txn_id: 'T1', segment: 'retail', tier: 'bronze'},
      {txn_id: 'T2', segment: 'sme', tier: 'silver'},
      // segment from the hour-long cache, tier fetched again
      {txn_id: 'T3', segment: 'retail', tier: 'gold'},
      // A-NEW missed in the first batch, and the miss was not cached
      {txn_id: 'T4', segment: 'sme', tier: 'silver'},
    ])
    // the lookups counted: A-NEW missed once (the first batch); A-1 answered from the hour-long cache at least once
    const port = (JSON.parse(log.split('\n').find((l) => l.includes('"event":"metrics.listening"'))!) as {port: number}).port
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    const series = (lookup: string, result: string) => Number(new RegExp(`^cutover_enrich_lookups_total\\{pipeline="${f.name}",lookup="${lookup}",result="${result}"\\} (\\d+)$`, 'm').exec(metrics)?.[1])
    expect(series('long', 'missing')).toBe(1)
    expect(series('long', 'cache_hit')).toBeGreaterThanOrEqual(1)
    expect(series('long', 'ambiguous')).toBe(0)
    expect(series('short', 'found')).toBeGreaterThanOrEqual(2)
    expect(metrics).toMatch(new RegExp(`^cutover_enrich_query_seconds_count\\{pipeline="${f.name}",lookup="long"\\} [1-9]`, 'm'))
    run.child.kill('SIGTERM')
    const done = await run.done
    expect(done.code, done.stderr).toBe(0)
    const letters = kcatConsume(f.dlqTopic)
    expect(letters.map((l) => [l.key, l.headers['cutover.error.code']])).toEqual([['T2', 'ENRICHMENT_MISSING']])
  })

  it('a lookup table locked at start, then renamed away while running: the batches wait or are retried, nothing is dead-lettered', async () => {
    const f = await enrichFixture('enrich-outage', (s) => [...ACCOUNTS(s), `CREATE TABLE ${s}.txn (txn_id text PRIMARY KEY, account_id text, amount numeric(12, 2), segment text)`], {partitions: 1})
    f.writeSpec(`${FIELDS}enrich:
  - {name: account, table: accounts, on: account_id, select: [segment], missing: dlq}
sinks: [{table: txn}]
`)
    await produce(f.topic, messages([{id: 'T1', acct: 'A-1', amt: '1.00'}, {id: 'T2', acct: 'A-2', amt: '2.00'}]))
    // another session holds ACCESS EXCLUSIVE on the lookup table for 2 s while the run starts
    const locker = new pg.Client({connectionString: settings().databaseUrl})
    await locker.connect()
    onTestFinished(() => locker.end())
    await locker.query(`BEGIN; LOCK TABLE ${f.t('accounts')} IN ACCESS EXCLUSIVE MODE`)
    const run = startCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema], {env: {CUTOVER_LOG_LEVEL: 'info'}})
    // the first batch's lookup waits for the lock (the start checks read only the catalog)
    for (;;) {
      const waiting = await f.pool.query(
        `SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT l.granted AND n.nspname = $1 AND c.relname = 'accounts'`,
        [f.schema],
      )
      if (waiting.rows.length > 0) break
      await sleep(50)
    }
    await sleep(2000)
    expect((await f.pool.query(`SELECT count(*)::int AS n FROM ${f.t('txn')}`)).rows[0]).toEqual({n: 0})
    await locker.query('COMMIT')
    const rows = async () => (await f.pool.query(`SELECT txn_id, segment FROM ${f.t('txn')} ORDER BY txn_id`)).rows
    while ((await rows()).length < 2) await sleep(100)
    expect(await rows()).toEqual([
      {txn_id: 'T1', segment: 'retail'},
      {txn_id: 'T2', segment: 'corporate'},
    ])
    // the table gone while records come: each try fails (42P01), the batch is retried, not dead-lettered
    await f.pool.query(`ALTER TABLE ${f.t('accounts')} RENAME TO accounts_moved`)
    await produce(f.topic, messages([{id: 'T3', acct: 'A-3', amt: '3.00'}]))
    let stderr = ''
    run.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    while (!stderr.includes('"event":"batch.retry"')) await sleep(100)
    await f.pool.query(`ALTER TABLE ${f.t('accounts_moved')} RENAME TO accounts`)
    while ((await rows()).length < 3) await sleep(100)
    expect((await rows())[2]).toEqual({txn_id: 'T3', segment: 'retail'})
    run.child.kill('SIGTERM')
    expect((await run.done).code).toBe(0)
    const outbox = await f.pool.query('SELECT count(*)::int AS n FROM cutover.outbox WHERE pipeline = $1', [f.name])
    expect(outbox.rows[0]).toEqual({n: 0})
  })
})

/** Line and column (1-based) of the first `needle` in the spec file after the line holding `after`. */
function specPosition(f: EnrichFixture, after: string, needle: string): {line: number; column: number} {
  const lines = readFileSync(f.specFile, 'utf8').split('\n')
  const from = lines.findIndex((l) => l.includes(after))
  const line = lines.findIndex((l, i) => i >= from && l.includes(needle))
  return {line: line + 1, column: lines[line]!.indexOf(needle) + 1}
}

/** `stream run --json` of the fixture's spec: its exit-2 error. */
async function startError(f: EnrichFixture, env: Record<string, string> = {}) {
  const r = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--json'], {env})
  expect(r.code, r.stdout + r.stderr).toBe(2)
  return r.json.error as {code: string; message: string; hint: string; line: number; column: number}
}

describe('stream run: enrich start checks (exit 2, at the spec line, with the fix)', () => {
  const spec = (lookup: string) => `${FIELDS}enrich:\n${lookup}sinks: [{table: txn}]\n`
  const tables = (s: string) => [...ACCOUNTS(s), `CREATE TABLE ${s}.txn (txn_id text PRIMARY KEY, account_id text, amount numeric(12, 2))`]

  it('a lookup table that does not exist', async () => {
    const f = await enrichFixture('enrich-notable', tables, {partitions: 1})
    f.writeSpec(spec('  - name: account\n    table: acounts\n    on: account_id\n    select: [segment]\n'))
    const e = await startError(f)
    expect(e).toMatchObject({code: 'SPEC_INVALID', ...specPosition(f, 'enrich:', 'acounts')})
    expect(e.message).toContain(`lookup account: table ${f.schema}.acounts does not exist`)
    expect(e.hint).toBe(`fix enrich[0].table, or create it: CREATE TABLE "${f.schema}"."acounts" ("account_id" text, "segment" text, PRIMARY KEY ("account_id")); (the select columns of the types they hold)`)
    // nothing consumed: no offsets stored
    expect((await f.pool.query('SELECT 1 FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])).rows).toEqual([])
  })

  it('a select column the table does not have, and one in another case', async () => {
    const f = await enrichFixture('enrich-nocol', (s) => [...tables(s), `ALTER TABLE ${s}.accounts ADD COLUMN "Region" text`], {partitions: 1})
    f.writeSpec(spec('  - name: account\n    table: accounts\n    on: account_id\n    select: [segment, tier]\n'))
    const e = await startError(f)
    expect(e).toMatchObject(specPosition(f, 'select:', 'tier'))
    expect(e.message).toContain(`lookup account: table ${f.schema}.accounts has no column tier (select[1])`)
    expect(e.hint).toBe('remove tier from enrich[0].select, or name a column the table has')
    f.writeSpec(spec('  - name: account\n    table: accounts\n    on: account_id\n    select: [region]\n'))
    const c = await startError(f)
    expect(c.message).toContain('has no column region (select[0]), but has Region (columns are matched by their exact name)')
    expect(c.hint).toBe(`ALTER TABLE "${f.schema}"."accounts" RENAME COLUMN "Region" TO "region"; or remove region from enrich[0].select, or name a column the table has`)
  })

  it("an on column whose type the field's values cannot be compared with", async () => {
    const f = await enrichFixture('enrich-type', (s) => [
      `CREATE TABLE ${s}.accounts (account_id bigint PRIMARY KEY, segment text)`,
      `CREATE TABLE ${s}.txn (txn_id text PRIMARY KEY, account_id text, amount numeric(12, 2))`,
    ], {partitions: 1})
    f.writeSpec(spec('  - name: account\n    table: accounts\n    on: account_id\n    select: [segment]\n'))
    const e = await startError(f)
    expect(e).toMatchObject(specPosition(f, 'enrich:', 'account_id'))
    expect(e.message).toContain(`lookup account: column ${f.schema}.accounts.account_id is bigint, which the values of a string field cannot be compared with (field account_id is string)`)
    expect(e.hint).toContain('give field account_id the type of the column in the spec, or look up through a view whose column account_id is text')
  })

  it("a sink column whose type cannot take a lookup column's values (upsert and aggregate); the hint's ALTER fixes it", async () => {
    const f = await enrichFixture('enrich-sinktype', (s) => [
      ...ACCOUNTS(s),
      // segment is text in accounts: an integer column would refuse 'retail' record after record
      `CREATE TABLE ${s}.txn (txn_id text PRIMARY KEY, account_id text, amount numeric(12, 2), segment integer, customer_id bigint)`,
      // daily_limit is numeric(14, 2): an integer group would refuse '150000.00'
      `CREATE TABLE ${s}.limits (daily_limit integer PRIMARY KEY, n bigint NOT NULL DEFAULT 0)`,
    ], {partitions: 1})
    f.writeSpec(spec('  - name: account\n    table: accounts\n    on: account_id\n    select: [customer_id, segment]\n'))
    const e = await startError(f)
    expect(e).toMatchObject(specPosition(f, 'select:', 'segment'))
    expect(e.message).toContain(`sink table ${f.schema}.txn: column segment is integer, which cannot take every value of lookup account's column ${f.schema}.accounts.segment (text)`)
    expect(e.hint).toBe(`ALTER TABLE "${f.schema}"."txn" ALTER COLUMN "segment" TYPE text USING "segment"::text; or select it through a view that casts it to integer, or remove segment from enrich[0].select`)
    // nothing consumed
    expect((await f.pool.query('SELECT 1 FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])).rows).toEqual([])

    // the aggregate sink: a group by a lookup column
    f.writeSpec(`${FIELDS}enrich:\n  - {name: account, table: accounts, on: account_id, select: [daily_limit]}\nsinks:\n  - {table: limits, group_by: [daily_limit], aggregates: {n: count}}\n`)
    const g = await startError(f)
    expect(g).toMatchObject(specPosition(f, 'select:', 'daily_limit'))
    expect(g.message).toContain(`sink table ${f.schema}.limits: column daily_limit is integer, which cannot take every value of lookup account's column ${f.schema}.accounts.daily_limit (numeric(14, 2))`)
    expect(g.hint).toContain(`ALTER TABLE "${f.schema}"."limits" ALTER COLUMN "daily_limit" TYPE numeric(14, 2) USING "daily_limit"::numeric(14, 2);`)

    // the fix as given: the run writes every record, the lookup values exact
    await f.pool.query(g.hint.slice(0, g.hint.indexOf(';') + 1))
    f.writeSpec(spec('  - name: account\n    table: accounts\n    on: account_id\n    select: [customer_id, segment]\n'))
    await f.pool.query(e.hint.slice(0, e.hint.indexOf(';') + 1))
    await produce(f.topic, messages([{id: 'T1', acct: 'A-1', amt: '10.10'}, {id: 'T2', acct: 'A-2', amt: '20.20'}]))
    const {out} = await runUntilIdle(f)
    expect(out).toMatchObject({read: 2, written: 2, dead_lettered: {}})
    expect((await f.pool.query(`SELECT txn_id, segment, customer_id::text FROM ${f.t('txn')} ORDER BY txn_id`)).rows).toEqual([
      {txn_id: 'T1', segment: 'retail', customer_id: '1001'},
      {txn_id: 'T2', segment: 'corporate', customer_id: '1002'},
    ])
  })

  it('a role without SELECT on the lookup table', async () => {
    const f = await enrichFixture('enrich-priv', tables, {partitions: 1})
    const name = uniqueName('enrich_role').replace(/-/g, '_')
    await f.pool.query(`CREATE ROLE "${name}" LOGIN NOSUPERUSER`)
    const pools: pg.Pool[] = []
    onTestFinished(async () => {
      for (const p of pools) await endPool(p).catch(() => {})
      await f.pool.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [name])
      await f.pool.query(`DROP OWNED BY "${name}"`)
      await f.pool.query(`DROP ROLE "${name}"`)
    })
    for (const sql of [
      `GRANT USAGE ON SCHEMA cutover TO "${name}"`,
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA cutover TO "${name}"`,
      `GRANT USAGE ON ALL SEQUENCES IN SCHEMA cutover TO "${name}"`,
      `GRANT USAGE ON SCHEMA "${f.schema}" TO "${name}"`,
      `GRANT SELECT, INSERT, UPDATE ON "${f.schema}".txn TO "${name}"`,
      // a column it may read: the table shows in information_schema, the others are refused
      `GRANT SELECT (account_id) ON "${f.schema}".accounts TO "${name}"`,
    ]) {
      await f.pool.query(sql)
    }
    f.writeSpec(spec('  - name: account\n    table: accounts\n    on: account_id\n    select: [segment]\n'))
    const e = await startError(f, {DATABASE_URL: databaseUrl(undefined, name)})
    expect(e).toMatchObject(specPosition(f, 'enrich:', 'accounts'))
    expect(e.message).toContain(`lookup account: the role ${name} may not SELECT segment of ${f.schema}.accounts`)
    expect(e.hint).toBe(`GRANT SELECT ON "${f.schema}"."accounts" TO "${name}"; (run by the table's owner)`)
  })
})

describe('the upsert sink and lookup columns', () => {
  it("writes the lookup columns its table has by COPY, escaped (a tab, a newline, a backslash, \\N), cast to the column's type", async () => {
    const odd = 'retail\tnorth\nline 2 \\N back\\slash'
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".txn (txn_id text PRIMARY KEY, account_id text, amount numeric(12, 2), segment text, customer_id bigint)`)
    const loaded = parseSpec(
      `version: 1\nname: copy\nsource: {topic: copy.raw}\n${FIELDS}enrich:\n  - {name: account, table: accounts, on: account_id, select: [segment, customer_id, region]}\nsinks: [{table: txn}]\n`,
      'copy.yaml',
    )
    const ctx: PipelineContext = {loaded, pipeline: 'copy', schema, maxRecordBytes: 1 << 20, dedupeRetentionMs: 60_000, logger: silentLogger}
    const [sink] = await buildSinks(ctx, pool)
    const items: WorkItem[] = Array.from({length: 600}, (_, i) => ({
      message: {} as KafkaMessage,
      topic: 'copy.raw',
      partition: 0,
      offset: BigInt(i),
      status: 'ok',
      record: {txn_id: `T${String(i).padStart(4, '0')}`, account_id: 'A-1', amount: '1.00', segment: i % 2 === 0 ? odd : null, customer_id: '1001', region: 'north'},
    }))
    const st = sink!.statement(items, {insertFirst: true})
    expect(st?.copy).toBeDefined()
    const client = await pool.connect()
    try {
      await copyIn(client, st!.text(0), st!.copy!)
    } finally {
      client.release()
    }
    const rows = await pool.query(`SELECT segment, customer_id::text, count(*)::int AS n FROM "${schema}".txn GROUP BY 1, 2 ORDER BY 1 NULLS LAST`)
    expect(rows.rows).toEqual([
      {segment: odd, customer_id: '1001', n: 300},
      {segment: null, customer_id: '1001', n: 300},
    ])
  })
})
