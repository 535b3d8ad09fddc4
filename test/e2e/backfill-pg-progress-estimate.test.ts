/**
 * `backfill --from pg:<table>` off a terminal: its periodic progress lines (every 5 s by default) gave the
 * rows read and a rate, with no total, percentage or ETA (`backfill: 98,000 (19,510/s, 5.0 s),
 * sent 97,000, ...`). They now give PostgreSQL's estimate (pg_class.reltuples) as "of about N
 * rows", with a percentage and an ETA marked estimated; --json gives it as total_estimate (a
 * where= read: EXPLAIN's estimate; query=: none). A table never analyzed has no total (and no
 * crash); an estimate the read goes past never shows more than 100% nor a negative ETA; a
 * resumed run counts the rows sent before it, and its rate (so its ETA) is its own.
 */
import {describe, expect, it} from 'vitest'
import {createTestSchema, createTestTopic, runCli, startCli, testPool, uniqueName} from '../helpers.js'

/** `backfill: 48,500 of about 100,000 rows (~48.5%, ETA ~6 s, estimated) (9,700/s, 5.0 s), ...` */
const WITH_TOTAL = /^backfill: ([\d,]+) of about ([\d,]+) rows \((.*?)\) \(([\d,]+)\/s, [\d.]+ s\)/gm
const n = (s: string) => Number(s.replace(/,/g, ''))
/** progress lines every 500 ms (CUTOVER_PROGRESS_EVERY), not every 5 s: runs of a second or two show some */
const FAST = {env: {CUTOVER_PROGRESS_EVERY: '500ms'}}
function progressLines(stderr: string): {done: number; total: number; note: string; rate: number}[] {
  return [...stderr.matchAll(WITH_TOTAL)].map((m) => ({done: n(m[1]!), total: n(m[2]!), note: m[3]!, rate: n(m[4]!)}))
}

describe('backfill pg: progress with PostgreSQL\'s row estimate', () => {
  it('an analyzed table: "of about 100,000 rows", a percentage and an ETA; --json total_estimate (where=: EXPLAIN; query=: none)', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".hist (id bigint PRIMARY KEY, amt numeric(12,2) NOT NULL) WITH (autovacuum_enabled = false)`)
    await pool.query(`INSERT INTO "${schema}".hist SELECT g, g * 1.01 FROM generate_series(1, 100000) g`)
    await pool.query(`ANALYZE "${schema}".hist`)
    const [topic, topic2, topic3] = await Promise.all([createTestTopic({prefix: 'bf-est'}), createTestTopic({prefix: 'bf-est-where'}), createTestTopic({prefix: 'bf-est-query'})])
    const [plain, json, where, query] = await Promise.all([
      runCli(['backfill', '--from', `pg:${schema}.hist?order_by=id`, '--to', topic, '--key', 'id', '--rate', '50000'], FAST),
      runCli(['backfill', '--from', `pg:${schema}.hist?order_by=id`, '--to', topic, '--key', 'id', '--dry-run', '--json']),
      runCli(['backfill', '--from', `pg:${schema}.hist?where=id <= 30000&order_by=id`, '--to', topic2, '--key', 'id', '--json']),
      runCli(['backfill', '--from', `pg:?key=id&query=SELECT * FROM "${schema}".hist WHERE id <= 20000 ORDER BY id`, '--to', topic3, '--key', 'id', '--json']),
    ])
    expect(plain.code, plain.stderr).toBe(0)
    // (a line before the first row was read, "0 of about 100,000 rows (~0.0%, estimated)", has no ETA
    // yet; one after the last, while its sends are acknowledged, is "~100.0%, estimated")
    const all = progressLines(plain.stderr)
    for (const l of all.filter((x) => x.done === 100000)) expect(l.note).toBe('~100.0%, estimated')
    const lines = all.filter((l) => l.done > 0 && l.done < 100000)
    expect(lines.length, plain.stderr).toBeGreaterThan(0)
    for (const l of lines) {
      expect(l.total).toBe(100000)
      const pct = /^~([\d.]+)%, ETA ~(\d+ s|\d+ min), estimated$/.exec(l.note)
      expect(pct, l.note).not.toBeNull()
      expect(Number(pct![1])).toBeCloseTo(Math.floor((l.done / 1000) * 10) / 10, 5)
      expect(Number(pct![1])).toBeLessThan(100)
    }
    expect(plain.stdout).toMatch(/read 100,000 = sent 100,000/)

    expect(json.code, json.stderr).toBe(0)
    expect(json.json).toMatchObject({read: 100000, total_estimate: 100000, total_estimate_source: 'pg_class.reltuples'})
    expect(where.code, where.stderr).toBe(0)
    expect(where.json).toMatchObject({read: 30000, total_estimate_source: 'explain'})
    expect(where.json.total_estimate).toBeGreaterThan(15000)
    expect(where.json.total_estimate).toBeLessThan(60000)
    expect(query.code, query.stderr).toBe(0)
    expect(query.json).toMatchObject({read: 20000, total_estimate: null, total_estimate_source: null})
  })

  it('a table never analyzed: no total, no crash; an estimate the read goes past: never above 100%, no ETA', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    // autovacuum off: its ANALYZE would give the fresh table a count while the test runs
    await pool.query(`CREATE TABLE "${schema}".fresh (id bigint PRIMARY KEY, amt numeric(12,2) NOT NULL) WITH (autovacuum_enabled = false)`)
    await pool.query(`INSERT INTO "${schema}".fresh SELECT g, g FROM generate_series(1, 30000) g`)
    await pool.query(`CREATE TABLE "${schema}".grown (id bigint PRIMARY KEY, amt numeric(12,2) NOT NULL) WITH (autovacuum_enabled = false)`)
    await pool.query(`INSERT INTO "${schema}".grown SELECT g, g FROM generate_series(1, 5000) g`)
    await pool.query(`ANALYZE "${schema}".grown`)
    await pool.query(`INSERT INTO "${schema}".grown SELECT g, g FROM generate_series(5001, 30000) g`)
    const [reltuples] = (await pool.query<{fresh: number; grown: number}>(`SELECT (SELECT reltuples FROM pg_class WHERE oid = '"${schema}".fresh'::regclass) AS fresh, (SELECT reltuples FROM pg_class WHERE oid = '"${schema}".grown'::regclass) AS grown`)).rows
    expect(reltuples).toEqual({fresh: -1, grown: 5000})
    const [topic, topic2] = await Promise.all([createTestTopic({prefix: 'bf-est-fresh'}), createTestTopic({prefix: 'bf-est-grown'})])
    const [fresh, freshJson, grown] = await Promise.all([
      runCli(['backfill', '--from', `pg:${schema}.fresh?order_by=id`, '--to', topic, '--key', 'id', '--rate', '20000'], FAST),
      runCli(['backfill', '--from', `pg:${schema}.fresh?order_by=id`, '--to', topic, '--key', 'id', '--dry-run', '--json']),
      runCli(['backfill', '--from', `pg:${schema}.grown?order_by=id`, '--to', topic2, '--key', 'id', '--rate', '20000'], FAST),
    ])
    expect(fresh.code, fresh.stderr).toBe(0)
    expect(fresh.stdout).toMatch(/read 30,000 = sent 30,000/)
    const plainLines = fresh.stderr.split('\n').filter((l) => /^backfill: [\d,]+ \(/.test(l))
    expect(plainLines.length, fresh.stderr).toBeGreaterThan(0)
    expect(fresh.stderr).not.toMatch(/of about|%|ETA/)
    expect(freshJson.code, freshJson.stderr).toBe(0)
    expect(freshJson.json).toMatchObject({read: 30000, total_estimate: null, total_estimate_source: null})

    expect(grown.code, grown.stderr).toBe(0)
    const lines = progressLines(grown.stderr)
    for (const l of lines) expect(l.total).toBe(5000)
    const past = lines.filter((l) => l.done > 5000)
    expect(past.length, grown.stderr).toBeGreaterThan(0)
    for (const l of past) expect(l.note).toBe('~100%, past the estimate: ETA unknown')
    expect(grown.stderr).not.toMatch(/ETA ~?-/)
    for (const m of grown.stderr.matchAll(/([\d.]+)%/g)) expect(Number(m[1])).toBeLessThanOrEqual(100)
    expect(grown.stdout).toMatch(/read 30,000 = sent 30,000/)
  })

  it('a resumed run counts the rows sent before it towards the estimate, and its rate is its own', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".hist (id bigint PRIMARY KEY, amt numeric(12,2) NOT NULL) WITH (autovacuum_enabled = false)`)
    await pool.query(`INSERT INTO "${schema}".hist SELECT g, g * 1.01 FROM generate_series(1, 100000) g`)
    await pool.query(`ANALYZE "${schema}".hist`)
    const topic = await createTestTopic({prefix: 'bf-est-resume'})
    const id = uniqueName('bf-est-resume')
    const first = startCli(['backfill', '--from', `pg:${schema}.hist?order_by=id`, '--to', topic, '--key', 'id', '--rate', '10000', '--id', id, '--json'])
    // stopped once its checkpoint covers at least 20,000 rows
    for (;;) {
      const r = await pool.query<{n: number}>(`SELECT (position->>'records')::int AS n FROM cutover.backfills WHERE id = $1`, [id])
      if ((r.rows[0]?.n ?? 0) >= 20000 || first.child.exitCode !== null) break
      await new Promise((res) => setTimeout(res, 50))
    }
    first.child.kill('SIGTERM')
    const stopped = await first.done
    expect(stopped.code, stopped.stderr).toBe(143)
    const before = stopped.json.read as number
    expect(before).toBeGreaterThanOrEqual(20000)
    expect(before).toBeLessThan(60000)

    const resumed = await runCli(['backfill', '--resume', id, '--rate', '40000'], FAST)
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.stdout).toMatch(/read 100,000 = sent 100,000/)
    const lines = progressLines(resumed.stderr).filter((l) => l.done > before)
    expect(lines.length, resumed.stderr).toBeGreaterThan(0)
    const l = lines[0]!
    expect(l.total).toBe(100000)
    // the rows before the resume are counted (done and percentage), not taken for this run's rate
    expect(l.done).toBeGreaterThan(before)
    expect(l.note).toMatch(new RegExp(`^~${(Math.floor((l.done / 1000) * 10) / 10).toFixed(1)}%, `))
    expect(l.rate).toBeLessThanOrEqual(44000)
  })
})
