/**
 * `cutover stream run` end to end, against the real broker and PostgreSQL, through the built
 * CLI (`bin/run.js ... --json`): conservation of every record (sink rows, aggregates, dead
 * letters read back with kcat and their DESIGN.md headers), SIGTERM, and the exit-2 check of
 * the sink tables. CUTOVER_STREAM_TEST_RECORDS scales the run (default 20,000; 100,000 works).
 */
import {createHash} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {describe, expect, it} from 'vitest'
import {compareWithExpected, readSinkState} from '../../fixtures/generator/pipeline.js'
import {expectedState, generateTransactions} from '../../fixtures/generator/transactions.js'
import {DLQ_HEADERS} from '../../src/runtime/outbox.js'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {kafka, kcatConsume, runCli} from '../helpers.js'
import {committedOffsets, fromGenerated, produce, sleep, startStream, streamFixture, testRecords, type ProducedMessage} from './stream-support.js'

const total = (d: Record<string, number | undefined>) => Object.values(d).reduce<number>((a, b) => a + (b ?? 0), 0)

describe('stream run: conservation', () => {
  it('every record is written once, dead-lettered with its code and headers, or counted as a duplicate', async () => {
    const n = testRecords()
    const f = await streamFixture({partitions: 6, prefix: 'stream-cons'})
    // two ways a row can be refused by the database itself (not by the normalizer)
    await f.pool.query(`ALTER TABLE "${f.schema}".txn_clean ALTER COLUMN amount TYPE numeric(12,2)`)
    await f.pool.query(`ALTER TABLE "${f.schema}".txn_clean ADD CONSTRAINT merchant_not_blocked CHECK (merchant IS DISTINCT FROM 'BLOCKED MERCHANT')`)

    const txns = generateTransactions(n, {seed: 20261122, dirty: 0.05})
    const expected = expectedState(txns)
    const json = (o: unknown) => Buffer.from(JSON.stringify(o))
    const extras: (ProducedMessage & {code: string})[] = [
      {key: 'BIG-1', value: json({id: 'BIG-1', acct: 'A00001', amt: '1.00', ts: '2026-11-20T10:00:00+03:00', memo: 'x'.repeat(1536 * 1024)}), headers: {'x-trace': 'big'}, code: 'RECORD_TOO_LARGE'},
      {key: 'ARR-1', value: json([1, 2, 3]), headers: {'x-trace': 'array'}, code: 'SCHEMA_VIOLATION'},
      {key: 'OVF-1', value: json({id: 'OVF-1', acct: 'A00001', amt: '99999999999999.99', ts: '2026-11-20T10:00:00+03:00', merchant: 'X'}), headers: {'x-trace': 'overflow'}, code: 'SINK_REJECTED'},
      {key: 'CHK-1', value: json({id: 'CHK-1', acct: 'A00002', amt: '10.00', ts: '2026-11-20T10:00:00+03:00', merchant: 'BLOCKED MERCHANT'}), headers: {'x-trace': 'check'}, code: 'SINK_REJECTED'},
    ]
    const messages = fromGenerated(txns)
    extras.forEach((e, i) => messages.splice(Math.floor(((i + 1) * messages.length) / (extras.length + 1)), 0, e))
    await produce(f.topic, messages)

    const r = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '1000', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const out = r.json as StreamRunResult
    const wantDead: Record<string, number> = {...expected.deadLettered}
    for (const e of extras) wantDead[e.code] = (wantDead[e.code] ?? 0) + 1

    // the --json document: read = written + dead_lettered + duplicates, and each matches
    expect(Object.keys(out).sort()).toEqual(['batches', 'dead_lettered', 'duplicates', 'elapsed_ms', 'lag_end', 'read', 'written'])
    expect(out.read).toBe(n + extras.length)
    expect(out.read).toBe(out.written + total(out.dead_lettered) + out.duplicates)
    expect(out.written).toBe(expected.written)
    expect(out.duplicates).toBe(expected.duplicates)
    expect(out.dead_lettered).toEqual(wantDead)
    expect(out.lag_end).toBe(0)
    expect(out.batches).toBeGreaterThan(0)

    // the consumer group's offsets in Kafka (what lag tools read) reached the end of every partition
    const admin = kafka().admin()
    await admin.connect()
    try {
      const [ends, group] = await Promise.all([admin.fetchTopicOffsets(f.topic), admin.fetchOffsets({groupId: `${f.name}-group`, topics: [f.topic]})])
      const committed = new Map(group[0]!.partitions.map((p) => [p.partition, p.offset]))
      expect(ends.map((e) => [e.partition, committed.get(e.partition)])).toEqual(ends.map((e) => [e.partition, e.high]))
    } finally {
      await admin.disconnect()
    }

    // PostgreSQL: one row per distinct valid key, and aggregates equal to the sums computed here
    const state = await readSinkState(f.pool, f.schema)
    expect(compareWithExpected(state, expected)).toEqual([])
    const sums = await f.pool.query<{n: string; s: string}>(`SELECT sum(txn_count)::text AS n, sum(amount_sum)::text AS s FROM "${f.schema}".account_daily_totals`)
    let minor = 0n
    for (const row of expected.rows.values()) minor += BigInt(row.amount.replace('.', ''))
    expect(sums.rows[0]).toEqual({n: String(expected.written), s: `${minor / 100n}.${String(minor % 100n).padStart(2, '0')}`})
    // a row the database refused released its dedupe key (a fixed record can be replayed)
    const keys = await f.pool.query(`SELECT key FROM cutover.stream_dedupe WHERE pipeline = $1 AND key IN ('OVF-1', 'CHK-1')`, [f.name])
    expect(keys.rows).toEqual([])

    // the dead-letter topic, read back with kcat: the codes, and the headers of DESIGN.md
    const dlq = kcatConsume(f.dlqTopic)
    expect(dlq).toHaveLength(total(wantDead))
    const byCode: Record<string, number> = {}
    for (const d of dlq) byCode[d.headers['cutover.error.code']!] = (byCode[d.headers['cutover.error.code']!] ?? 0) + 1
    expect(byCode).toEqual(wantDead)
    const version = createHash('sha256').update(readFileSync(f.specFile)).digest('hex')
    const expectedCodeByValue = new Map<string, string>()
    for (const t of txns) if (t.outcome.kind === 'dead_letter') expectedCodeByValue.set(t.value.toString('utf8'), t.outcome.code)
    const positions = new Set<string>()
    let matched = 0
    for (const d of dlq) {
      for (const h of DLQ_HEADERS) expect(d.headers[h], h).toBeDefined()
      expect(d.headers['cutover.pipeline']).toBe(f.name)
      expect(d.headers['cutover.pipeline.version']).toBe(version)
      expect(d.headers['cutover.source.topic']).toBe(f.topic)
      expect(d.headers['cutover.attempts']).toBe('1')
      expect(d.headers['cutover.replay.count']).toBe('0')
      expect(Number.isNaN(Date.parse(d.headers['cutover.failed.at']!))).toBe(false)
      expect(['decode', 'normalize', 'validate', 'dedupe', 'sink']).toContain(d.headers['cutover.error.stage'])
      expect(d.headers['cutover.error.message']!.length).toBeGreaterThan(10)
      expect(d.headers['x-trace'], 'original headers are kept').toMatch(/^(trace-\d+|big|array|overflow|check)$/)
      positions.add(`${d.headers['cutover.source.partition']}/${d.headers['cutover.source.offset']}`)
      const want = d.payload === null ? undefined : expectedCodeByValue.get(d.payload)
      if (want) {
        expect(d.headers['cutover.error.code']).toBe(want)
        matched++
      }
    }
    expect(positions.size).toBe(dlq.length)
    // every generated dead letter is found by its value and carries its own code; the invalid
    // UTF-8 ones too (kcat passes their bytes through, and they decode with the same U+FFFD here)
    expect(matched).toBe(txns.filter((t) => t.outcome.kind === 'dead_letter').length)
    const big = dlq.find((d) => d.headers['x-trace'] === 'big')!
    expect(big.headers['cutover.error.code']).toBe('RECORD_TOO_LARGE')
    expect(big.key).toBe('BIG-1')
    expect(big.payload?.length).toBe(extras[0]!.value.length)
    expect(dlq.find((d) => d.headers['x-trace'] === 'overflow')!.headers['cutover.error.message']).toMatch(/numeric field overflow/)
    expect(dlq.find((d) => d.headers['x-trace'] === 'check')!.headers['cutover.error.message']).toMatch(/violates check constraint "merchant_not_blocked"/)
    expect(dlq.find((d) => d.headers['x-trace'] === 'array')!.payload).toBe('[1,2,3]')

    // a second run finds nothing new: effectively-once across runs
    const again = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '500', '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json).toMatchObject({read: 0, written: 0, duplicates: 0, lag_end: 0})
    expect(compareWithExpected(await readSinkState(f.pool, f.schema), expected)).toEqual([])
    expect(kcatConsume(f.dlqTopic)).toHaveLength(total(wantDead))
  })
})

describe('stream run: SIGTERM', () => {
  it('finishes the batch in hand, commits, exits 0; a restart completes the run', async () => {
    const n = testRecords()
    const f = await streamFixture({partitions: 3, prefix: 'stream-term'})
    const txns = generateTransactions(n, {seed: 4242})
    await produce(f.topic, fromGenerated(txns))
    // small fetches, so that the run has many batches and SIGTERM lands in the middle
    const s = startStream(f, ['--json', '--max-bytes-per-partition', '16384'])
    while ((await committedOffsets(f)) < n / 10) {
      if (s.child.exitCode !== null) break
      await sleep(20)
    }
    s.child.kill('SIGTERM')
    const r = await s.exited
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    // what it reports is exactly what PostgreSQL holds: the offsets and rows of every batch it read
    expect(out.read).toBeGreaterThan(0)
    expect(out.read).toBeLessThan(n)
    expect(await committedOffsets(f)).toBe(out.read)
    const rows = await f.pool.query<{n: number}>(`SELECT count(*)::int AS n FROM "${f.schema}".txn_clean`)
    expect(rows.rows[0]!.n).toBe(out.written)
    const agg = await f.pool.query<{n: string}>(`SELECT COALESCE(sum(txn_count), 0)::text AS n FROM "${f.schema}".account_daily_totals`)
    expect(Number(agg.rows[0]!.n)).toBe(out.written)

    const rest = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '500', '--json'])
    expect(rest.code, rest.stderr).toBe(0)
    expect((rest.json as StreamRunResult).read + out.read).toBe(n)
    expect(compareWithExpected(await readSinkState(f.pool, f.schema), expectedState(txns))).toEqual([])
  })
})

describe('stream run: lost PostgreSQL connections', () => {
  it('retries the batches whose connections were killed; nothing is dead-lettered because of it', async () => {
    const n = testRecords()
    const f = await streamFixture({partitions: 3, prefix: 'stream-kpg'})
    const txns = generateTransactions(n, {seed: 777})
    const expected = expectedState(txns)
    await produce(f.topic, fromGenerated(txns))
    const s = startStream(f, ['--until-idle', '--idle-ms', '500', '--json', '--max-bytes-per-partition', '32768'])
    let killed = 0
    for (const at of [0.2, 0.4, 0.6]) {
      while ((await committedOffsets(f)) < n * at && s.child.exitCode === null) await sleep(10)
      // every session of the runtime, mid-transaction or idle, as a server restart looks to it;
      // taken when one of them is in a transaction (else, on a loaded machine, all three kills
      // could meet idle sessions only, and nothing would be retried)
      let r: {rows: {n: number}[]} = {rows: [{n: 0}]}
      for (let tries = 0; tries < 500 && s.child.exitCode === null; tries++) {
        r = await f.pool.query<{n: number}>(
          `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
            WHERE application_name = $1
              AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name = $1 AND a.state IN ('active', 'idle in transaction'))`,
          [`cutover stream ${f.name}`],
        )
        if (r.rows[0]!.n > 0) break
        await sleep(2)
      }
      killed += r.rows[0]!.n
    }
    const r = await s.exited
    expect(r.code, r.stderr).toBe(0)
    expect(killed).toBeGreaterThan(0)
    // a kill met a batch in its transaction at least once: it was retried (logged at warn), not dead-lettered
    expect(r.stderr).toMatch(/"event":"batch\.retry"/)
    const out = JSON.parse(r.stdout) as StreamRunResult
    // exact, also for a COMMIT whose answer was lost (the retry finds it committed and counts it)
    expect(out.read).toBe(n)
    expect(out.read).toBe(out.written + total(out.dead_lettered) + out.duplicates)
    expect(out.dead_lettered).toEqual(expected.deadLettered)
    expect(out.duplicates).toBe(expected.duplicates)
    expect(compareWithExpected(await readSinkState(f.pool, f.schema), expected)).toEqual([])
    const dlq = new Map(kcatConsume(f.dlqTopic).map((d) => [`${d.headers['cutover.source.partition']}/${d.headers['cutover.source.offset']}`, d.headers['cutover.error.code']]))
    const byCode: Record<string, number> = {}
    for (const code of dlq.values()) byCode[code!] = (byCode[code!] ?? 0) + 1
    expect(byCode).toEqual(expected.deadLettered)
  })
})

describe('stream run: sink tables are checked at start', () => {
  it('exits 2 naming a column whose type does not fit, with the fix', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-mis'})
    await f.pool.query(`ALTER TABLE "${f.schema}".txn_clean ALTER COLUMN amount TYPE text`)
    const r = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/txn_clean: column amount is text, which cannot hold a decimal field/)
    expect(r.stderr).toMatch(/fix: ALTER TABLE .*"txn_clean" ALTER COLUMN "amount" TYPE numeric\(18, 2\)/)
  })

  it('exits 2 naming a missing column, and a missing table, under --json too', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-mis'})
    await f.pool.query(`ALTER TABLE "${f.schema}".txn_clean DROP COLUMN merchant`)
    const r = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--json'])
    expect(r.code).toBe(2)
    expect(r.json.error.code).toBe('SPEC_INVALID')
    expect(r.json.error.message).toMatch(/has no column merchant/)
    expect(r.json.error.hint).toMatch(/ADD COLUMN "merchant" text/)
    await f.pool.query(`DROP TABLE "${f.schema}".account_daily_totals`)
    await f.pool.query(`ALTER TABLE "${f.schema}".txn_clean ADD COLUMN merchant text`)
    const r2 = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema])
    expect(r2.code).toBe(2)
    expect(r2.stderr).toMatch(/account_daily_totals does not exist/)
    expect(r2.stderr).toMatch(/CREATE TABLE/)
  })

  it('exits 2 for what it would not run: a copybook that cannot be read', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-unrun'})
    const text = readFileSync(f.specFile, 'utf8')
    // (enrich, windows and rules, refused here before they ran, run now: stream-enrich, stream-windows, stream-rules tests)
    // before: exit 70 (INTERNAL, ENOENT) at the first message
    writeFileSync(f.specFile, text.replace('  format: json\n', '  format: fixed\n  copybook: nothere.cpy\n'))
    const c = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--json'])
    expect(c.code, c.stdout).toBe(2)
    expect(c.json.error.message).toMatch(/source\.copybook nothere\.cpy: cannot read .*nothere\.cpy/)
  })

  it('exits 3 when PostgreSQL is unreachable at start', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-down'})
    const r = await runCli(['stream', 'run', '--spec', f.specFile], {env: {DATABASE_URL: 'postgres://postgres:secret@127.0.0.1:1/cutover'}})
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/postgresql at 127\.0\.0\.1:1\/cutover is unreachable/)
    expect(r.stderr).not.toMatch(/secret/)
    const k = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema], {env: {KAFKA_BROKERS: '127.0.0.1:1'}})
    expect(k.code).toBe(3)
    expect(k.stderr).toMatch(/kafka at 127\.0\.0\.1:1 is unreachable/)
  })

  it('exits 2 when the source topic does not exist', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-notopic'})
    const a = kafka().admin()
    await a.connect()
    await a.deleteTopics({topics: [f.topic]})
    await a.disconnect()
    const r = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(new RegExp(`source topic ${f.topic.replace(/\./g, '\\.')} does not exist`))
  })
})
