/**
 * Alert rules in `stream run` (src/runtime/stages/rules.ts), end to end through `bin/run.js`
 * against the real broker and PostgreSQL: alerts are written to the outbox in the batch
 * transaction and published by the relay to each rule's `emit` topic (created at start), read
 * back with kcat (an independent client). A rule on fields fires for each record it is true for;
 * a rule on a window aggregate once per window instance; a second run over the same input emits
 * nothing more; kill -9 mid-run and a restart leave every alert exactly once in the outbox (and on
 * the topic, once the relay's repeats are dropped by their headers).
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {onTestFinished, describe, expect, it} from 'vitest'
import {createTopicsReady} from '../../src/kafka/client.js'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {createTestSchema, kafka, kcatConsume, runCli, testPool, uniqueName} from '../helpers.js'
import {freePort, until} from '../../fixtures/generator/stream-harness.js'
import {committedOffsets, produce, sleep, startStream, type ProducedMessage, type StreamFixture} from './stream-support.js'

interface Txn {
  id: string
  acct: string
  amt: string
  currency?: string
  ts: string
  card: string
}

/** A topic, a schema with the sink table, the spec (two rules: one on fields, one on a window) and its emit topics. */
async function rulesFixture(partitions: number): Promise<StreamFixture & {bigTopic: string; velocityTopic: string; sha: () => Promise<string>}> {
  const name = uniqueName('rules')
  const topic = `${name}.raw`
  const bigTopic = `${name}.big`
  const velocityTopic = `${name}.velocity`
  const admin = kafka().admin()
  await admin.connect()
  try {
    await createTopicsReady(admin, [{topic, numPartitions: partitions, replicationFactor: 1}])
  } finally {
    await admin.disconnect()
  }
  const pool = testPool()
  const schema = await createTestSchema(pool)
  await pool.query(`CREATE TABLE "${schema}".t (id text PRIMARY KEY, acct text NOT NULL, amount numeric(14,2) NOT NULL, currency text, ts timestamptz NOT NULL, card text)`)
  const dir = mkdtempSync(join(tmpdir(), 'cutover-rules-'))
  const specFile = join(dir, 'pipeline.yaml')
  writeFileSync(
    specFile,
    `version: 1
name: ${name}
source: {topic: ${topic}, group: ${name}-group}
fields:
  id: {type: string, required: true}
  acct: {type: string, required: true}
  amount: {from: amt, type: decimal, scale: 2, required: true}
  currency: {type: string, default: RUB}
  ts: {type: timestamp, formats: [iso], required: true}
  card: {type: string, sensitive: true}
key: id
event_time: ts
dedupe: {by: id}
windows:
  - {name: velocity, by: acct, size: 10m, aggregates: {txn_count: count, amount_sum: sum(amount)}}
rules:
  - name: big_rub
    when: "amount >= 10000 and currency == 'RUB'"
    emit: ${bigTopic}
  - name: high_velocity
    when: "velocity.txn_count > 5"
    emit: ${velocityTopic}
sinks: [{table: t}]
retry: {initial: 50ms, max: 2s}
`,
  )
  onTestFinished(async () => {
    const a = kafka().admin()
    await a.connect()
    const existing = new Set(await a.listTopics())
    await a.deleteTopics({topics: [topic, `${name}.dlq`, bigTopic, velocityTopic].filter((t) => existing.has(t))}).catch(() => {})
    await a.disconnect()
    for (const table of ['stream_offsets', 'stream_dedupe', 'outbox', 'rule_firings', 'window_state', 'window_watermarks']) {
      await pool.query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [name]).catch(() => {})
    }
  })
  const {createHash} = await import('node:crypto')
  const {readFile} = await import('node:fs/promises')
  const sha = async () => createHash('sha256').update(await readFile(specFile)).digest('hex')
  return {name, topic, dlqTopic: `${name}.dlq`, schema, specFile, pool, bigTopic, velocityTopic, sha}
}

/** Keyed by account, as a producer of an account's transactions would: one account's records in one partition, in order. */
function messages(txns: readonly Txn[]): ProducedMessage[] {
  return txns.map((t) => ({key: t.acct, value: Buffer.from(JSON.stringify(t))}))
}

const T0 = Date.parse('2026-11-20T10:00:00Z')
const at = (s: number) => new Date(T0 + s * 1000).toISOString()

function parsed(r: {payload: string | null}): {rule: string; pipeline: string; when: string; record: Record<string, unknown>; windows: Record<string, {start: string; end: string; key: string; values: Record<string, string | null>}>; source: {topic: string; partition: number; offset: string}} {
  return JSON.parse(r.payload!) as ReturnType<typeof parsed>
}

describe('stream run: alert rules', () => {
  it('a rule on fields fires for each record it is true for; a window rule once per window instance; a second run emits nothing more', async () => {
    const f = await rulesFixture(3)
    const txns: Txn[] = []
    let s = 0
    const add = (acct: string, amt: string, extra: Partial<Txn> = {}) => txns.push({id: `t${String(txns.length).padStart(3, '0')}`, acct, amt, ts: at(s++), card: '4111 1111 1111 1111', ...extra})
    // A1: 7 records in one 10-minute window: high_velocity fires once, on the 6th (txn_count 6)
    for (let i = 0; i < 7; i++) add('A1', '10.00')
    // A2: 5 records: never more than 5
    for (let i = 0; i < 5; i++) add('A2', '1.00')
    // big_rub: exact decimals at the edge, currency
    add('A3', '10000.00') // fires (RUB by default)
    add('A3', '9999.99') // no
    add('A4', '10000.01', {currency: 'RUB'}) // fires
    add('A4', '250000.00', {currency: 'USD'}) // no
    add('A5', '1 000 000,00') // fires (normalized 1000000.00)
    const big = ['t012', 't014', 't016']
    const produced = messages(txns)
    // an identical repeat of a firing record (a duplicate: dropped, no alert) and a bad record (dead-lettered)
    produced.push({key: 'A3', value: Buffer.from(JSON.stringify(txns[12]))})
    produced.push({key: 'A6', value: Buffer.from(JSON.stringify({id: 'bad', acct: 'A6', amt: 'lots', ts: at(s++)}))})
    await produce(f.topic, produced)

    // a run watched through /metrics until everything is committed and published, then stopped
    const port = await freePort()
    const run = startStream(f, ['--json', '--metrics-port', String(port)])
    const unsent = async () => (await f.pool.query<{n: number}>('SELECT count(*)::int AS n FROM cutover.outbox WHERE pipeline = $1 AND sent_at IS NULL', [f.name])).rows[0]!.n
    await until(async () => (await committedOffsets(f)) === produced.length && (await unsent()) === 0, () => run.child.exitCode === null, 'committed and published')
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    expect(metrics).toContain(`cutover_alerts_total{pipeline="${f.name}",rule="big_rub"} 3`)
    expect(metrics).toContain(`cutover_alerts_total{pipeline="${f.name}",rule="high_velocity"} 1`)
    run.child.kill('SIGTERM')
    const r = await run.exited
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out).toMatchObject({read: 19, written: 17, duplicates: 1, dead_lettered: {UNPARSEABLE_AMOUNT: 1}, alerts: 4, lag_end: 0})

    const sha = await f.sha()
    const bigAlerts = kcatConsume(f.bigTopic)
    expect(bigAlerts.map((a) => parsed(a).record.id).sort()).toEqual(big)
    for (const a of bigAlerts) {
      const v = parsed(a)
      const txn = txns.find((t) => t.id === v.record.id)!
      // the record's Kafka key; the spec's key field and event_time, exact; no other field (the sensitive card is not in it)
      expect(a.key).toBe(txn.acct)
      expect(v).toEqual({
        rule: 'big_rub',
        pipeline: f.name,
        when: "amount >= 10000 and currency == 'RUB'",
        record: {id: txn.id, ts: txn.ts},
        windows: {},
        source: {topic: f.topic, partition: Number(a.headers['cutover.source.partition']), offset: a.headers['cutover.source.offset']},
      })
      expect(a.headers).toEqual({
        'cutover.pipeline': f.name,
        'cutover.pipeline.version': sha,
        'cutover.rule': 'big_rub',
        'cutover.source.topic': f.topic,
        'cutover.source.partition': String(v.source.partition),
        'cutover.source.offset': v.source.offset,
      })
    }
    // the source coordinates are those of the record on the source topic
    const source = kcatConsume(f.topic)
    for (const a of bigAlerts) {
      const v = parsed(a)
      const rec = source.find((m) => m.partition === v.source.partition && String(m.offset) === v.source.offset)!
      expect((JSON.parse(rec.payload!) as Txn).id).toBe(v.record.id)
    }

    const velocity = kcatConsume(f.velocityTopic)
    expect(velocity).toHaveLength(1)
    const v = parsed(velocity[0]!)
    expect(velocity[0]!.key).toBe('A1') // the window key
    expect(v).toMatchObject({
      rule: 'high_velocity',
      record: {id: 't005', ts: at(5)},
      windows: {velocity: {start: '2026-11-20T10:00:00.000Z', end: '2026-11-20T10:10:00.000Z', key: 'A1', values: {txn_count: '6', amount_sum: '60.00'}}},
    })
    const firings = await f.pool.query<{rule: string; instance: string}>('SELECT rule, instance FROM cutover.rule_firings WHERE pipeline = $1', [f.name])
    expect(firings.rows).toEqual([{rule: 'high_velocity', instance: JSON.stringify([['velocity', '2026-11-20T10:00:00.000Z', 'A1']])}])

    // the same input again (the stored offsets removed: every record read again): duplicates, no alert
    await f.pool.query('DELETE FROM cutover.stream_offsets WHERE pipeline = $1', [f.name])
    const again = await runCli(['stream', 'run', '--spec', f.specFile, '--schema', f.schema, '--until-idle', '--idle-ms', '500', '--json'], {env: {CUTOVER_LOG_LEVEL: 'warn'}})
    expect(again.code, again.stderr).toBe(0)
    expect(again.json).toMatchObject({read: 19, written: 0, duplicates: 18, dead_lettered: {UNPARSEABLE_AMOUNT: 1}, alerts: 0})
    expect(kcatConsume(f.bigTopic)).toHaveLength(3)
    expect(kcatConsume(f.velocityTopic)).toHaveLength(1)
    const rows = await f.pool.query<{topic: string; n: number}>('SELECT topic, count(*)::int AS n FROM cutover.outbox WHERE pipeline = $1 GROUP BY topic ORDER BY topic', [f.name])
    expect(rows.rows).toEqual([
      {topic: f.bigTopic, n: 3},
      {topic: f.dlqTopic, n: 2},
      {topic: f.velocityTopic, n: 1},
    ].sort((a, b) => (a.topic < b.topic ? -1 : 1)))
  })

  it('killed with -9 mid-run and restarted: every alert exactly once', async () => {
    const f = await rulesFixture(4)
    const n = 1200
    const txns: Txn[] = []
    // 40 accounts; one record a second, so each account has 15 records per 10-minute window;
    // every 37th record is big
    for (let i = 0; i < n; i++) txns.push({id: `k${String(i).padStart(5, '0')}`, acct: `A${i % 40}`, amt: i % 37 === 0 ? '12000.00' : '3.00', ts: at(i), card: '4111111111111111'})
    const expectedBig = txns.filter((t) => t.amt === '12000.00').map((t) => t.id).sort()
    // per (account, window start): the 6th record fires
    const perWindow = new Map<string, Txn[]>()
    for (const t of txns) {
      const start = new Date(Math.floor(Date.parse(t.ts) / 600_000) * 600_000).toISOString()
      const k = `${t.acct}|${start}`
      perWindow.set(k, [...(perWindow.get(k) ?? []), t])
    }
    const expectedVelocity = new Map([...perWindow].filter(([, ts]) => ts.length > 5).map(([k, ts]) => [k, ts[5]!.id]))
    await produce(f.topic, messages(txns))

    // paced (--max-rate), so that each kill lands mid-run, between and inside transactions
    const args = ['--until-idle', '--idle-ms', '500', '--json', '--max-bytes-per-partition', '4096', '--max-rate', '500']
    const kills: string[] = []
    // each run in a consumer group of its own: the offsets are in PostgreSQL (the group's are not
    // read), and a restart in the killed member's group would wait for its session (10 s) to end
    const inGroup = (group: string) => writeFileSync(f.specFile, readFileSync(f.specFile, 'utf8').replace(/group: [^}\n]+}/, `group: ${group}}`))
    for (let k = 0; k < 2; k++) {
      inGroup(`${f.name}-group-${k}`)
      const run = startStream(f, args)
      const before = await committedOffsets(f)
      const target = before + 150 + k * 250
      while ((await committedOffsets(f)) < target && run.child.exitCode === null) await sleep(5)
      const alive = run.child.exitCode === null
      run.child.kill('SIGKILL')
      const r = await run.exited
      kills.push(`${alive ? 'killed' : `exited ${r.code}`} after ${(await committedOffsets(f)) - before} records`)
    }
    expect(kills.filter((k) => k.startsWith('killed')), kills.join('; ')).toHaveLength(2)
    inGroup(`${f.name}-group-last`)
    const last = startStream(f, args)
    const r = await last.exited
    expect(r.code, r.stderr).toBe(0)
    expect(await committedOffsets(f)).toBe(n)

    // the outbox: each alert exactly once, all published
    const rows = await f.pool.query<{topic: string; n: number; unsent: number}>(
      'SELECT topic, count(*)::int AS n, count(*) FILTER (WHERE sent_at IS NULL)::int AS unsent FROM cutover.outbox WHERE pipeline = $1 GROUP BY topic',
      [f.name],
    )
    const byTopic = Object.fromEntries(rows.rows.map((x) => [x.topic, x]))
    // every record written (none late, none refused)
    expect((await f.pool.query<{n: number}>(`SELECT count(*)::int AS n FROM "${f.schema}".t`)).rows[0]!.n).toBe(n)
    expect(byTopic[f.bigTopic]).toEqual({topic: f.bigTopic, n: expectedBig.length, unsent: 0})
    expect(byTopic[f.velocityTopic]).toEqual({topic: f.velocityTopic, n: expectedVelocity.size, unsent: 0})

    // the topics: after dropping the relay's repeats (a kill between its send and its mark) by their source headers, exactly the expected alerts
    const unique = (records: ReturnType<typeof kcatConsume>) => new Map(records.map((a) => [`${a.headers['cutover.rule']}/${a.headers['cutover.source.partition']}/${a.headers['cutover.source.offset']}`, parsed(a)]))
    const big = unique(kcatConsume(f.bigTopic))
    expect([...big.values()].map((v) => v.record.id).sort(), kills.join('; ')).toEqual(expectedBig)
    const velocity = unique(kcatConsume(f.velocityTopic))
    const got = new Map([...velocity.values()].map((v) => [`${v.windows.velocity!.key}|${v.windows.velocity!.start}`, v]))
    expect(got.size, kills.join('; ')).toBe(expectedVelocity.size)
    for (const [k, id] of expectedVelocity) {
      expect(got.get(k)?.record.id, k).toBe(id)
      expect(got.get(k)?.windows.velocity!.values.txn_count).toBe('6')
    }
  })
})
