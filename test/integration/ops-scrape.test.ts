/**
 * ops/ against a real `stream run --metrics-port` (the real broker and PostgreSQL): every
 * series that a dashboard panel or an alert rule reads is in the process's /metrics, with the
 * label values the runtime really uses (stage="decode", direction="in", ...), and each is read
 * by the right function for its type. Scraped after a run that dead-lettered and deduplicated
 * records, so every counter has moved.
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {parse} from 'yaml'
import {freePort} from '../../fixtures/generator/stream-harness.js'
import {expectedState, generateTransactions} from '../../fixtures/generator/transactions.js'
import {ROOT} from '../helpers.js'
import {checkExpression, readExposition, selectorsWithoutData, type CheckContext} from '../ops-promql.js'
import {committedOffsets, fromGenerated, produce, sleep, startStream, streamFixture} from './stream-support.js'

const dashboard = JSON.parse(readFileSync(join(ROOT, 'ops', 'grafana', 'cutover-dashboard.json'), 'utf8')) as {panels: {title: string; targets?: {refId: string; expr: string}[]}[]}
const alerts = parse(readFileSync(join(ROOT, 'ops', 'prometheus', 'alerts.yml'), 'utf8')) as {groups: {rules: {alert: string; expr: string}[]}[]}
const prometheusConfig = parse(readFileSync(join(ROOT, 'ops', 'prometheus', 'prometheus.yml'), 'utf8')) as {scrape_configs: {job_name: string}[]}

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
    const ctx: CheckContext = {
      exported,
      targetLabels: ['job', 'instance'],
      prometheusSeries: {up: []},
      freeLabels: ['pipeline', 'instance', 'topic', 'partition'],
      allowedValues: {job: prometheusConfig.scrape_configs.map((c) => c.job_name)},
    }
    const vars = {pipeline: f.name}
    const skip = ['job', 'instance'] // added by Prometheus, not in the process's own text
    const exprs = [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({where: `${p.title} ${t.refId}`, expr: t.expr}))),
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
    const value = (name: string, labels: Record<string, string>) =>
      body
        .split('\n')
        .filter((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
        .reduce((a, l) => a + Number(l.split(' ').at(-1)), 0)
    expect(value('cutover_records_total', {pipeline: f.name, stage: 'decode', direction: 'in'})).toBe(n)
    expect(value('cutover_dead_lettered_total', {pipeline: f.name})).toBe(Object.values(expected.deadLettered).reduce((a, b) => a + b, 0))

    s.child.kill('SIGTERM')
    const exit = await s.exited
    expect(exit.code, exit.stderr).toBe(0)
  })
})
