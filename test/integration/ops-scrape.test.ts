/**
 * ops/ against a real `stream run --metrics-port` (the real broker and PostgreSQL): every
 * series that a dashboard panel or an alert rule reads is in the process's /metrics, with the
 * label values the runtime really uses (stage="decode", direction="in", ...), and each is read
 * by the right function for its type. Scraped after a run that dead-lettered and deduplicated
 * records, so every counter has moved.
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {parse} from 'yaml'
import {freePort} from '../../fixtures/generator/stream-harness.js'
import {expectedState, generateTransactions} from '../../fixtures/generator/transactions.js'
import {createTestSchema, kafka, ROOT, testPool, uniqueName} from '../helpers.js'
import {createTopicsReady} from '../../src/kafka/client.js'
import {checkExpression, cutoverCheckContext, readExposition, selectorsWithoutData, type CheckContext} from '../ops-promql.js'
import {committedOffsets, fromGenerated, produce, sleep, startStream, streamFixture} from './stream-support.js'

const dashboard = JSON.parse(readFileSync(join(ROOT, 'ops', 'grafana', 'cutover-dashboard.json'), 'utf8')) as {panels: {title: string; type?: string; targets?: {refId: string; expr: string}[]}[]}
const alerts = parse(readFileSync(join(ROOT, 'ops', 'prometheus', 'alerts.yml'), 'utf8')) as {groups: {rules: {alert: string; expr: string}[]}[]}
/** The panels under the row `title` (Grafana lists a row's panels after it), and the others. */
const STAGES_ROW = 'Enrichment, windows and rules'
function panelsByRow(): {row: typeof dashboard.panels; others: typeof dashboard.panels} {
  const start = dashboard.panels.findIndex((p) => p.title === STAGES_ROW)
  if (start < 0) throw new Error(`no row ${STAGES_ROW} in the dashboard`)
  const next = dashboard.panels.findIndex((p, i) => i > start && (p as {type?: string}).type === 'row')
  const end = next < 0 ? dashboard.panels.length : next
  return {row: dashboard.panels.slice(start + 1, end), others: [...dashboard.panels.slice(0, start), ...dashboard.panels.slice(end)]}
}

const prometheusConfig = parse(readFileSync(join(ROOT, 'ops', 'prometheus', 'prometheus.yml'), 'utf8')) as {scrape_configs: {job_name: string}[]}

function checkContext(exported: CheckContext['exported']): CheckContext {
  return cutoverCheckContext(exported, prometheusConfig.scrape_configs.map((c) => c.job_name))
}

/** The sum of the samples of `metric` in a /metrics text whose labels include `labels`. */
function sampleSum(body: string, metric: string, labels: Record<string, string>): number {
  return body
    .split('\n')
    .filter((l) => l.startsWith(`${metric}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
    .reduce((a, l) => a + Number(l.split(' ').at(-1)), 0)
}

describe('ops/ against the /metrics of a real stream run', () => {
  it('every series a panel or an alert reads is exported, with the label values the runtime uses', async () => {
    const n = 300
    const f = await streamFixture({partitions: 2, prefix: 'ops-scrape'})
    const port = await freePort()
    const s = startStream(f, ['--metrics-port', String(port)])
    const txns = generateTransactions(n, {seed: 9090, dirty: 0.1})
    const expected = expectedState(txns)
    await produce(f.topic, fromGenerated(txns))
    for (let i = 0; i < 600 && (await committedOffsets(f)) < n; i++) await sleep(100)
    expect(await committedOffsets(f)).toBe(n)
    // the run dead-lettered and deduplicated: the counters the ratios divide have moved
    expect(Object.values(expected.deadLettered).reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
    expect(expected.duplicates).toBeGreaterThan(0)

    const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    const exported = readExposition(body)
    const ctx = checkContext(exported)
    const vars = {pipeline: f.name}
    const skip = ['job', 'instance'] // added by Prometheus, not in the process's own text
    // (the row of the enrich, windows and rules stages has no series for this spec: the next test)
    const exprs = [
      ...panelsByRow().others.flatMap((p) => (p.targets ?? []).map((t) => ({where: `${p.title} ${t.refId}`, expr: t.expr}))),
      ...alerts.groups.flatMap((g) => g.rules.map((r) => ({where: r.alert, expr: r.expr}))),
    ]
    expect(exprs.length).toBeGreaterThan(20)
    for (const {where, expr} of exprs) {
      expect(checkExpression(expr, ctx), `${where}: ${expr}`).toEqual([])
      // `up` is Prometheus's own series; everything else must have a sample for this pipeline
      const missing = selectorsWithoutData(expr, exported, vars, skip).filter((sel) => !sel.startsWith('up{'))
      expect(missing, `${where}: ${expr}`).toEqual([])
    }
    // and the numbers behind the dead-letter ratio are the run's
    const value = (metric: string, labels: Record<string, string>) => sampleSum(body, metric, labels)
    expect(value('cutover_records_total', {pipeline: f.name, stage: 'decode', direction: 'in'})).toBe(n)
    expect(value('cutover_dead_lettered_total', {pipeline: f.name})).toBe(Object.values(expected.deadLettered).reduce((a, b) => a + b, 0))

    s.child.kill('SIGTERM')
    const exit = await s.exited
    expect(exit.code, exit.stderr).toBe(0)
  })

  it('the panels of the enrich, windows and rules stages read series a run of a spec with those sections exports', async () => {
    const name = uniqueName('ops-stages')
    const topic = `${name}.raw`
    const alertTopic = `${name}.alerts`
    const admin = kafka().admin()
    await admin.connect()
    try {
      await createTopicsReady(admin, [{topic, numPartitions: 2, replicationFactor: 1}])
    } finally {
      await admin.disconnect()
    }
    const pool = testPool()
    const schema = await createTestSchema(pool)
    await pool.query(`CREATE TABLE "${schema}".t (id text PRIMARY KEY, acct text NOT NULL, amount numeric(14,2) NOT NULL, ts timestamptz NOT NULL, segment text)`)
    await pool.query(`CREATE TABLE "${schema}".accounts (acct text PRIMARY KEY, segment text NOT NULL)`)
    await pool.query(`INSERT INTO "${schema}".accounts VALUES ('A1', 'retail'), ('A2', 'sme')`)
    const specFile = join(mkdtempSync(join(tmpdir(), 'cutover-ops-stages-')), 'pipeline.yaml')
    writeFileSync(
      specFile,
      `version: 1
name: ${name}
source: {topic: ${topic}, group: ${name}-group}
fields:
  id: {type: string, required: true}
  acct: {type: string, required: true}
  amount: {from: amt, type: decimal, scale: 2, required: true}
  ts: {type: timestamp, formats: [iso], required: true}
key: id
event_time: ts
enrich:
  - {name: account, table: accounts, on: acct, select: [segment], missing: dlq}
windows:
  - {name: velocity, by: acct, size: 10m, aggregates: {txn_count: count}}
rules:
  - {name: busy, when: "velocity.txn_count > 2", emit: ${alertTopic}}
sinks: [{table: t}]
dlq: {topic: ${name}.dlq}
retry: {initial: 50ms, max: 2s}
`,
    )
    onTestFinished(async () => {
      const a = kafka().admin()
      await a.connect()
      const existing = new Set(await a.listTopics())
      await a.deleteTopics({topics: [topic, `${name}.dlq`, alertTopic].filter((t) => existing.has(t))}).catch(() => {})
      await a.disconnect()
      for (const table of ['stream_offsets', 'outbox', 'rule_firings', 'window_state', 'window_watermarks']) await pool.query(`DELETE FROM cutover.${table} WHERE pipeline = $1`, [name]).catch(() => {})
    })
    const f = {name, topic, dlqTopic: `${name}.dlq`, schema, specFile, pool}
    const port = await freePort()
    const s = startStream(f, ['--metrics-port', String(port)])
    // four records of A1 in one 10-minute window (the rule fires once its count is past 2), two of A2, one of an account accounts lacks
    const at = (m: number) => new Date(Date.parse('2026-11-20T10:00:00Z') + m * 60_000).toISOString()
    const txns = [
      ...[0, 1, 2, 3].map((m) => ({id: `a1-${m}`, acct: 'A1', amt: '10.00', ts: at(m)})),
      ...[0, 4].map((m) => ({id: `a2-${m}`, acct: 'A2', amt: '5.00', ts: at(m)})),
      {id: 'a9-0', acct: 'A9', amt: '1.00', ts: at(5)},
    ]
    await produce(topic, txns.map((t) => ({key: t.acct, value: Buffer.from(JSON.stringify(t))})))
    for (let i = 0; i < 600 && (await committedOffsets(f)) < txns.length; i++) await sleep(100)
    expect(await committedOffsets(f)).toBe(txns.length)

    const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    const exported = readExposition(body)
    const ctx = checkContext(exported)
    const exprs = panelsByRow().row.flatMap((p) => (p.targets ?? []).map((t) => ({where: `${p.title} ${t.refId}`, expr: t.expr})))
    expect(exprs.length).toBe(4)
    for (const {where, expr} of exprs) {
      expect(checkExpression(expr, ctx), `${where}: ${expr}`).toEqual([])
      expect(selectorsWithoutData(expr, exported, {pipeline: name}, ['job', 'instance']), `${where}: ${expr}`).toEqual([])
    }
    // the counts behind them are the run's (distinct values per batch): A1 and A2 each found once by a query (later batches take them from the cache), A9 missing, one alert
    const value = (metric: string, labels: Record<string, string>) => sampleSum(body, metric, labels)
    expect(value('cutover_enrich_lookups_total', {pipeline: name, lookup: 'account', result: 'missing'})).toBe(1)
    expect(value('cutover_enrich_lookups_total', {pipeline: name, lookup: 'account', result: 'found'})).toBe(2)
    expect(value('cutover_alerts_total', {pipeline: name, rule: 'busy'})).toBe(1)
    expect(value('cutover_watermark_seconds', {pipeline: name, topic, partition: '0'}) + value('cutover_watermark_seconds', {pipeline: name, topic, partition: '1'})).toBeGreaterThan(0)

    s.child.kill('SIGTERM')
    const exit = await s.exited
    expect(exit.code, exit.stderr).toBe(0)
  })
})
