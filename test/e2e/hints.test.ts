/**
 * Hints that must work as written (the day-one audit): through the built CLI, against the real
 * broker and PostgreSQL.
 *
 * - A topic to create: one kafka-topics.sh command aimed at the KAFKA_BROKERS in use, with the
 *   partitions and replication factor to give (stream run's source topic, backfill's target and
 *   its dead-letter topic: as many partitions as the target, as stream run would create it).
 * - Sink tables that do not exist: every one in one error, the hint creating each, and the schema
 *   first when it does not exist either (the hint is run here, and creates them).
 * - parity check with a side's database unreachable: the variable it came from is named
 *   (CUTOVER_LEFT_DATABASE_URL, CUTOVER_RIGHT_DATABASE_URL), not DATABASE_URL.
 */
import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, describe, expect, it, onTestFinished} from 'vitest'
import {forgetReplays, sendDeadLetters} from '../../fixtures/dlq/cleanup.js'
import {createTopicCommand, createTopicsReady} from '../../src/kafka/client.js'
import {createTestSchema, createTestTopic, kafka, kafkaSettings, kcatConsume, runCli, settings, testPool, uniqueName} from '../helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'cutover-hints-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))

function specFile(name: string, topic: string, extra: string[]): string {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(
    file,
    ['version: 1', `name: ${name}`, 'source:', `  topic: ${topic}`, 'fields:', '  txn_id: { from: id, type: string, required: true }', '  acct: { type: string, required: true }', '  amount: { from: amt, type: decimal, scale: 2, required: true }', 'key: txn_id', ...extra, ''].join('\n'),
  )
  return file
}

/** The flags of a `kafka-topics.sh ... --create` command, checked to be exactly that shape. */
function topicsCommand(hint: string): {bootstrap: string; topic: string; partitions: number; replicationFactor: number} {
  const m = /kafka-topics\.sh --bootstrap-server (\S+) --create --topic (\S+) --partitions (\d+) --replication-factor (\d+)/.exec(hint)
  expect(m, hint).not.toBeNull()
  return {bootstrap: m![1]!, topic: m![2]!, partitions: Number(m![3]), replicationFactor: Number(m![4])}
}

/** Creates a topic as the hint's command says (kafka-topics.sh is not installed here), deleted when the test finishes. */
async function createAsTold(c: ReturnType<typeof topicsCommand>): Promise<void> {
  const admin = kafka().admin()
  await admin.connect()
  onTestFinished(async () => {
    const a = kafka().admin()
    await a.connect()
    await a.deleteTopics({topics: [c.topic]}).catch(() => {})
    await a.disconnect()
  })
  try {
    expect(await createTopicsReady(admin, [{topic: c.topic, numPartitions: c.partitions, replicationFactor: c.replicationFactor}])).toBe(true)
  } finally {
    await admin.disconnect()
  }
}

/** Partitions of `topic` as kcat (an independent client) lists them; 0 when it does not exist. */
function kcatPartitions(topic: string): number {
  const r = spawnSync('kcat', ['-b', kafkaSettings().brokers.join(','), '-L', '-J', '-t', topic], {encoding: 'utf8'})
  const t = (JSON.parse(r.stdout) as {topics: {topic: string; partitions: unknown[]; error?: string}[]}).topics.find((x) => x.topic === topic)
  return t && !t.error ? t.partitions.length : 0
}

describe('hints: a topic to create is one runnable kafka-topics.sh command', () => {
  const brokers = kafkaSettings().brokers.join(',')

  it('stream run: the source topic, with --bootstrap-server, partitions and replication factor', async () => {
    const topic = uniqueName('hints-src')
    const spec = specFile('hints-src', topic, ['sinks:', '  - table: t'])
    const r = await runCli(['stream', 'run', '--spec', spec, '--schema', 'hints_unused', '--until-idle', '--json'])
    expect(r.code, r.stderr).toBe(2)
    // at the spec's source.topic (line 4: `  topic: <topic>`)
    expect(r.json.error).toMatchObject({code: 'SPEC_INVALID', message: `${spec}:4:10: source topic ${topic} does not exist on ${brokers}`, line: 4, column: 10})
    expect(r.json.error.hint).toBe(`create it (kafka-topics.sh --bootstrap-server ${brokers} --create --topic ${topic} --partitions 6 --replication-factor 1), or fix source.topic`)
    const text = await runCli(['stream', 'run', '--spec', spec, '--schema', 'hints_unused', '--until-idle'])
    expect(text.code).toBe(2)
    expect(text.stderr).toContain(`kafka-topics.sh --bootstrap-server ${brokers} --create --topic ${topic}`)
  })

  it('backfill: the target, then its dead-letter topic with as many partitions as the target; created as told, the backfill goes on', async () => {
    const target = uniqueName('hints-bf')
    const dlq = uniqueName('hints-bf-dlq')
    const id = uniqueName('hints-bf')
    const pool = testPool()
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = ANY($1)', [[id, `${id}-2`]])
    })
    writeFileSync(join(dir, 'bf.csv'), 'id,acct,amt\nA1,ACC1,10.00\nA2,ACC2,not-a-number\nA3,ACC3,3.50\n')
    const spec = specFile('hints-bf', target, [`dlq: { topic: ${dlq} }`])
    const args = ['backfill', '--from', 'csv:bf.csv', '--to', target, '--spec', spec, '--id', id, '--json']
    const r = await runCli(args, {cwd: dir})
    expect(r.code, r.stderr).toBe(2)
    expect(r.json.error).toMatchObject({code: 'USAGE', message: `topic ${target} does not exist on ${brokers}`})
    // the failed start leaves its row failed, with the reason (it stayed 'running')
    const row = await pool.query<{status: string; error: string}>('SELECT status, error FROM cutover.backfills WHERE id = $1', [id])
    expect(row.rows).toEqual([{status: 'failed', error: `topic ${target} does not exist on ${brokers}`}])
    const told = topicsCommand(r.json.error.hint)
    expect(told).toEqual({bootstrap: brokers, topic: target, partitions: 6, replicationFactor: 1})
    await createAsTold(told)
    expect(kcatPartitions(target)).toBe(6)

    // (the failed start recorded the backfill: it goes on with --resume, as \`exists already\` says)
    // the second record is rejected, and the DLQ does not exist: its command, 6 partitions as the target's
    const rejected = await runCli(['backfill', '--resume', id, '--json'], {cwd: dir})
    expect(rejected.code, rejected.stderr).toBe(2)
    expect(rejected.json.error.message).toMatch(new RegExp(`was rejected \\(UNPARSEABLE_AMOUNT\\) and its dead-letter topic ${dlq} does not exist$`))
    expect(rejected.json.error.hint).toBe(
      `create ${dlq} (kafka-topics.sh --bootstrap-server ${brokers} --create --topic ${dlq} --partitions 6 --replication-factor 1), or name another with --dlq or the spec's dlq.topic; then continue with --resume ${id}`,
    )
    await createAsTold(topicsCommand(rejected.json.error.hint))
    const resumed = await runCli(['backfill', '--resume', id, '--json'], {cwd: dir})
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.json).toMatchObject({id, status: 'completed', read: 3, rejected: 1})
    expect(kcatConsume(dlq).map((m) => m.headers['cutover.error.code'])).toEqual(['UNPARSEABLE_AMOUNT'])

    // a target of 2 partitions: its DLQ is told 2 too
    const two = await createTestTopic({partitions: 2, prefix: 'hints-bf2'})
    const dlq2 = uniqueName('hints-bf2-dlq')
    const r2 = await runCli(['backfill', '--from', 'csv:bf.csv', '--to', two, '--spec', spec, '--dlq', dlq2, '--id', `${id}-2`, '--json'], {cwd: dir})
    expect(r2.code, r2.stderr).toBe(2)
    expect(topicsCommand(r2.json.error.hint)).toEqual({bootstrap: brokers, topic: dlq2, partitions: 2, replicationFactor: 1})
  })

  it('dlq replay: the source topic the dead letters name, with as many partitions as the DLQ; created as told, the replay sends them', async () => {
    const source = uniqueName('hints-rp-src')
    const dlq = await createTestTopic({partitions: 3, prefix: 'hints-rp-dlq'})
    const spec = specFile('hints-rp', source, [`dlq: { topic: ${dlq} }`])
    const pool = testPool()
    onTestFinished(() => forgetReplays(pool, dlq))
    await sendDeadLetters(dlq, source, 2, 'hints-rp')
    const r = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', spec, '--json'])
    expect(r.code, r.stderr).toBe(2)
    expect(r.json.error).toMatchObject({code: 'USAGE', message: `topic ${source} does not exist on ${brokers}`})
    expect(r.json.error.hint).toMatch(/^the dead letters name it as their source topic: create it \(kafka-topics\.sh .*\), or send them elsewhere with --to <topic>$/)
    const told = topicsCommand(r.json.error.hint)
    expect(told).toEqual({bootstrap: brokers, topic: source, partitions: 3, replicationFactor: 1})
    await createAsTold(told)
    const sent = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', spec, '--json'])
    expect(sent.code, sent.stderr).toBe(0)
    expect(kcatConsume(source).map((m) => m.key).sort()).toEqual(['k0', 'k1'])

    // --to a topic that does not exist: its command, "or fix --to"
    const to = uniqueName('hints-rp-to')
    const t = await runCli(['dlq', 'replay', '--topic', dlq, '--spec', spec, '--to', to, '--json'])
    expect(t.code, t.stderr).toBe(2)
    expect(t.json.error.hint).toMatch(/^create it \(kafka-topics\.sh .*\), or fix --to$/)
    expect(topicsCommand(t.json.error.hint)).toEqual({bootstrap: brokers, topic: to, partitions: 3, replicationFactor: 1})
  })

  it('the command names KAFKA_BROKERS as given, quotes what the shell would split, and says when SASL/TLS settings are needed', () => {
    expect(createTopicCommand({brokers: ['k1:9092', 'k2:9092'], clientId: 'x'}, 'txn.raw', {brokerCount: 5})).toBe('kafka-topics.sh --bootstrap-server k1:9092,k2:9092 --create --topic txn.raw --partitions 6 --replication-factor 3')
    expect(createTopicCommand({brokers: ['k1:9093'], clientId: 'x', sasl: {mechanism: 'scram-sha-256', username: 'u', password: 'p'}}, "it's", {brokerCount: 2, partitions: 3})).toBe(
      `kafka-topics.sh --bootstrap-server k1:9093 --command-config <a file with the SASL/TLS client settings> --create --topic 'it'\\''s' --partitions 3 --replication-factor 2`,
    )
  })
})

describe('hints: sink tables that do not exist', () => {
  it('all of them in one error; CREATE SCHEMA first when the schema does not exist either; the hint runs', async () => {
    const topic = await createTestTopic({prefix: 'hints-sinks'})
    const pool = testPool()
    const schema = `hints_${uniqueName('s').slice(2).replace(/-/g, '')}`
    onTestFinished(async () => {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    })
    // refused before its DLQ topic is created (checked below)
    const dlq = uniqueName('hints-sinks-dlq')
    const spec = specFile('hints-sinks', topic, [`dlq: { topic: ${dlq} }`, 'sinks:', '  - table: clean', '  - table: totals', '    group_by: [acct]', '    aggregates: { n: count, total: sum(amount) }'])
    const r = await runCli(['stream', 'run', '--spec', spec, '--schema', schema, '--until-idle', '--json'])
    expect(r.code, r.stderr).toBe(2)
    // at the first missing sink's table (line 12: `  - table: clean`)
    expect(r.json.error).toMatchObject({code: 'SPEC_INVALID', message: `${spec}:12:12: sink tables ${schema}.clean, ${schema}.totals do not exist`, missing_tables: [`${schema}.clean`, `${schema}.totals`], line: 12, column: 12})
    expect(kcatPartitions(dlq)).toBe(0)
    const hint: string = r.json.error.hint
    expect(hint).toBe(
      `CREATE SCHEMA IF NOT EXISTS "${schema}"; ` +
        `CREATE TABLE "${schema}"."clean" ("txn_id" text, "acct" text, "amount" numeric(18, 2), PRIMARY KEY ("txn_id")); ` +
        `CREATE TABLE "${schema}"."totals" ("acct" text, "n" bigint NOT NULL DEFAULT 0, "total" numeric NOT NULL DEFAULT 0, PRIMARY KEY ("acct"));`,
    )
    await pool.query(hint)
    const tables = await pool.query<{t: string}>('SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1', [schema])
    expect(tables.rows.map((x) => x.t)).toEqual(['clean', 'totals'])

    // one missing, in a schema that exists: that one, and no CREATE SCHEMA
    await pool.query(`DROP TABLE "${schema}".totals`)
    const one = await runCli(['stream', 'run', '--spec', spec, '--schema', schema, '--until-idle', '--json'])
    expect(one.code, one.stderr).toBe(2)
    expect(one.json.error).toMatchObject({message: `${spec}:13:12: sink table ${schema}.totals does not exist`, hint: `CREATE TABLE "${schema}"."totals" ("acct" text, "n" bigint NOT NULL DEFAULT 0, "total" numeric NOT NULL DEFAULT 0, PRIMARY KEY ("acct"));`})
  })
})

describe('hints: parity check names the variable of the side database it cannot reach', () => {
  it.each(['CUTOVER_LEFT_DATABASE_URL', 'CUTOVER_RIGHT_DATABASE_URL'])('%s at a closed port: exit 3, the message and the fix name it', async (variable) => {
    const schema = await createTestSchema()
    await testPool().query(`CREATE TABLE "${schema}".t (id int PRIMARY KEY, v text)`)
    const r = await runCli(['parity', 'check', '--left', `pg:${schema}.t`, '--right', `pg:${schema}.t`, '--key', 'id', '--no-ledger', '--json'], {
      cwd: dir,
      env: {[variable]: 'postgres://postgres:s3cretHints@127.0.0.1:1/cutover'},
    })
    expect(r.code, r.stderr).toBe(3)
    expect(r.json.error).toMatchObject({code: 'SERVICE_UNAVAILABLE', service: 'postgresql', address: '127.0.0.1:1/cutover', hint: `start PostgreSQL or point ${variable} at a running server`})
    expect(r.json.error.message).toBe(`postgresql at 127.0.0.1:1/cutover is unreachable: connect ECONNREFUSED 127.0.0.1:1 (${variable})`)
    expect(r.stdout + r.stderr).not.toContain('s3cretHints')
  })

  it('bisect: an error of a query on the right side names the right database, not the left', async () => {
    const schema = await createTestSchema()
    const pool = testPool()
    await pool.query(`CREATE TABLE "${schema}".t (id int PRIMARY KEY, v text)`)
    await pool.query(`INSERT INTO "${schema}".t SELECT g, 'x' FROM generate_series(1, 50) AS g`)
    // a view that fails once its rows are read (its shape, LIMIT 0, reads none): 22012
    await pool.query(`CREATE VIEW "${schema}".r AS SELECT id, (1 / (id - id))::text AS v FROM "${schema}".t`)
    const right = new URL(settings().databaseUrl)
    right.hostname = 'localhost' // the same server under another address than the left's 127.0.0.1
    const r = await runCli(['parity', 'check', '--left', `pg:${schema}.t`, '--right', `pg:${schema}.r`, '--key', 'id', '--columns', 'v', '--strategy', 'bisect', '--no-ledger', '--json'], {
      cwd: dir,
      env: {CUTOVER_RIGHT_DATABASE_URL: right.toString()},
    })
    expect(r.code, r.stderr).toBe(2) // a data error of a side's SQL: the query to fix, not a crash
    expect(r.json.error.message).toMatch(/^PostgreSQL at localhost:5432\/\w+: division by zero/)
    expect(r.json.error).toMatchObject({sqlstate: '22012'})
  })

  it('a side database that does not exist: the fix names its variable', async () => {
    const schema = await createTestSchema()
    await testPool().query(`CREATE TABLE "${schema}".t (id int PRIMARY KEY, v text)`)
    const r = await runCli(['parity', 'check', '--left', `pg:${schema}.t`, '--right', `pg:${schema}.t`, '--key', 'id', '--no-ledger', '--json'], {
      cwd: dir,
      env: {CUTOVER_LEFT_DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/no_such_db_hints'},
    })
    expect(r.code, r.stderr).toBe(2)
    expect(r.json.error).toMatchObject({code: 'USAGE', sqlstate: '3D000', hint: 'create the database (createdb), or fix its name in CUTOVER_LEFT_DATABASE_URL'})
  })
})

describe('hints: a setting that would be ignored is refused', () => {
  it('CUTOVER_LOG_LEVEL=verbose is exit 2 with the levels (it fell back to warn silently); --log-level given wins', async () => {
    const bad = await runCli(['dev', 'status', '--json'], {env: {CUTOVER_LOG_LEVEL: 'verbose'}})
    expect(bad.code, bad.stderr).toBe(2)
    expect(bad.json.error).toMatchObject({code: 'USAGE', message: 'CUTOVER_LOG_LEVEL=verbose is not a log level', hint: 'set it to one of debug, info, warn, error, silent (or unset it: warn)'})
    const overridden = await runCli(['dev', 'status', '--json', '--log-level', 'info'], {env: {CUTOVER_LOG_LEVEL: 'verbose'}})
    expect(overridden.code, overridden.stderr).toBe(0)
    const upper = await runCli(['dev', 'status', '--json'], {env: {CUTOVER_LOG_LEVEL: 'INFO'}})
    expect(upper.code, upper.stderr).toBe(0)
  })
})
