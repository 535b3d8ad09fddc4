/**
 * Every PromQL expression of ops/ (the alert rules, the dashboard's panels and its variable)
 * read as Prometheus reads it, against the series the runtime's registry exports (names, label
 * names, label values, types): rate() on counters only, deriv() on gauges, histogram_quantile()
 * on buckets kept by `le`, each legend's {{label}} and alert's $labels.x on the result, each
 * panel's unit the unit of its query, and what the alerts read there from a process's start.
 * A renamed metric, label or value in src/runtime/metrics.ts or in ops/ fails here.
 * (ops/prometheus/alerts.test.yml tests the alerts' firing with promtool, outside the suite.)
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {parse} from 'yaml'
import {RECORD_ERROR_CODES} from '../../src/errors.js'
import {RuntimeMetrics} from '../../src/runtime/metrics.js'
import {STAGES} from '../../src/runtime/stages/index.js'
import {ROOT} from '../helpers.js'
import {checkExpression, cutoverCheckContext, measure, parsePromQL, readExposition, resultLabels, unitsFor, walk, type CheckContext, type Exported} from '../ops-promql.js'

interface Target {
  refId: string
  expr: string
  legendFormat?: string
}
interface Panel {
  title: string
  type: string
  targets?: Target[]
  fieldConfig?: {defaults?: {unit?: string}; overrides?: {matcher: {id: string; options: string}; properties: {id: string; value: unknown}[]}[]}
}
interface Rule {
  alert: string
  expr: string
  annotations?: Record<string, string>
}

const dashboard = JSON.parse(readFileSync(join(ROOT, 'ops', 'grafana', 'cutover-dashboard.json'), 'utf8')) as {panels: Panel[]; templating: {list: {name: string; definition?: string; query?: {query?: string}}[]}}
const alerts = parse(readFileSync(join(ROOT, 'ops', 'prometheus', 'alerts.yml'), 'utf8')) as {groups: {rules: Rule[]}[]}
const prometheusConfig = parse(readFileSync(join(ROOT, 'ops', 'prometheus', 'prometheus.yml'), 'utf8')) as {global: {scrape_interval: string}; scrape_configs: {job_name: string}[]}
const rules = alerts.groups.flatMap((g) => g.rules)

/** What a fresh RuntimeMetrics exports: the series there from a process's start. */
async function fresh(): Promise<Exported> {
  return readExposition(await new RuntimeMetrics('ops-fresh').registry.metrics())
}

/** What a RuntimeMetrics exports once every kind of event happened, with every stage name the runtime has. */
async function exercised(): Promise<Exported> {
  const m = new RuntimeMetrics('ops-exercised')
  for (const stage of [...STAGES.keys(), 'sink']) {
    m.stageRecords(stage as Parameters<RuntimeMetrics['stageRecords']>[0], 'in', 2)
    m.stageRecords(stage as Parameters<RuntimeMetrics['stageRecords']>[0], 'out', 1)
  }
  for (const code of RECORD_ERROR_CODES) m.deadLettered(code)
  m.duplicates(1)
  m.batchCommitted(10, 0.01)
  m.endToEnd(0.02)
  m.lag('t', 0, 5)
  m.outboxBacklog(1)
  m.upsertRerun()
  m.isolating(false)
  m.isolating(true)
  // the enrich, windows and rules stages' series (a spec with those sections)
  m.enrichLookups('accounts', 'found', 1)
  m.enrichQuery('accounts', 0.01)
  m.alerts('big_rub', 1)
  m.watermark('t', 0, 1_795_000_000)
  return readExposition(await m.registry.metrics())
}

function context(exported: Exported): CheckContext {
  return cutoverCheckContext(exported, prometheusConfig.scrape_configs.map((s) => s.job_name))
}

function seconds(duration: string): number {
  let total = 0
  for (const m of duration.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)) total += Number(m[1]) * {ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000}[m[2] as 'ms']!
  return total
}

/** The unit Grafana shows a target's values in: an override for its refId or its legend, else the panel's. */
function unitOf(panel: Panel, target: Target): string | undefined {
  for (const o of panel.fieldConfig?.overrides ?? []) {
    const unit = o.properties.find((p) => p.id === 'unit')?.value as string | undefined
    if (!unit) continue
    if (o.matcher.id === 'byFrameRefID' && o.matcher.options === target.refId) return unit
    if (o.matcher.id === 'byName' && o.matcher.options === target.legendFormat) return unit
  }
  return panel.fieldConfig?.defaults?.unit
}

const targets = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({panel, target})))

describe('the PromQL reader of test/ops-promql.ts', () => {
  it('reads precedence, matching and subqueries as Prometheus does', () => {
    const n = parsePromQL('(time() - max by (pipeline) (a) or b) > 120 and on (pipeline) sum by (pipeline) (c) > 0')
    expect(n).toMatchObject({kind: 'binary', op: 'and', lhs: {kind: 'binary', op: '>'}, rhs: {kind: 'binary', op: '>'}, matching: {on: true, labels: ['pipeline']}})
    expect(parsePromQL('deriv(sum by (p) (x)[10m:1m])')).toMatchObject({kind: 'call', func: 'deriv', args: [{kind: 'matrix', range: '10m', step: '1m', expr: {kind: 'aggregate', op: 'sum'}}]})
    expect(parsePromQL('100 * a / b')).toMatchObject({op: '/', lhs: {op: '*'}})
    expect(parsePromQL('x * on (job, instance) group_left y')).toMatchObject({matching: {on: true, labels: ['job', 'instance'], group: 'left', include: []}})
    expect(() => parsePromQL('sum(rate(x[5m])')).toThrow()
    expect(() => parsePromQL('rate(x[5 m])')).toThrow()
    expect(() => parsePromQL('x{a="1"')).toThrow()
  })

  it('finds each kind of mistake it checks for', async () => {
    const ctx = context(await exercised())
    const bad: [string, RegExp][] = [
      ['sum(rate(cutover_record_total[5m]))', /not exported/],
      ['sum(rate(cutover_records_total{stage="decoded"}[5m]))', /matches no value/],
      ['sum(rate(cutover_records_total{direction=~"input|output"}[5m]))', /matches no value/],
      ['sum(rate(cutover_dead_lettered_total{reason="DECODE_ERROR"}[5m]))', /no such label/],
      ['sum(rate(cutover_dead_lettered_total{code="DECODE_FAILED"}[5m]))', /matches no value/],
      ['rate(cutover_consumer_lag_records[5m])', /not a counter/],
      ['deriv(cutover_records_total[10m])', /of a counter/],
      ['sum(cutover_records_total)', /without rate/],
      ['histogram_quantile(0.95, sum(rate(cutover_commit_latency_seconds_bucket[5m])))', /drops le/],
      ['histogram_quantile(0.95, rate(cutover_commit_latency_seconds_sum[5m]))', /not a _bucket/],
      ['sum(rate(cutover_commit_latency_seconds_bucket[5m]))', /outside histogram_quantile/],
      ['up{job="cutover-stream"} == 0', /matches no value/],
      ['sum(rate(cutover_records_total[5m])', /does not parse/],
    ]
    for (const [expr, problem] of bad) expect(checkExpression(expr, ctx).join('\n'), expr).toMatch(problem)
    expect(checkExpression('sum by (code) (rate(cutover_dead_lettered_total{code=~"DECODE_ERROR|SINK_REJECTED"}[5m]))', ctx)).toEqual([])
    // labels of a result, units of a value
    expect([...resultLabels(parsePromQL('sum by (code) (rate(cutover_dead_lettered_total[5m]))'), ctx)!]).toEqual(['code'])
    expect(resultLabels(parsePromQL('time() - cutover_last_commit_timestamp_seconds'), ctx)).toContain('instance')
    expect(resultLabels(parsePromQL('time() - max by (pipeline) (cutover_last_commit_timestamp_seconds)'), ctx)).not.toContain('instance')
    expect(unitsFor(measure(parsePromQL('100 * sum(rate(a_total[5m])) / sum(rate(b_total[5m]))')))).toEqual(['percent'])
    expect(unitsFor(measure(parsePromQL('1000 * histogram_quantile(0.5, sum by (le) (rate(x_seconds_bucket[5m])))')))).toEqual(['ms'])
    expect(unitsFor(measure(parsePromQL('sum(rate(x_total[5m]))')))).toContain('ops')
    expect(unitsFor(measure(parsePromQL('time() - x_timestamp_seconds')))).toContain('s')
  })
})

describe('ops/prometheus/alerts.yml against the runtime', () => {
  it('names only exported series, labels and label values, each read by the right function', async () => {
    const ctx = context(await exercised())
    expect(rules.length).toBeGreaterThanOrEqual(5)
    for (const r of rules) expect(checkExpression(r.expr, ctx), `${r.alert}: ${r.expr}`).toEqual([])
  })

  it('reads series that a process exports from its start, but for the two that appear later', async () => {
    // a commit's timestamp appears at the first commit, a partition's lag once it is assigned:
    // the rules must not need them to be there (CutoverNoCommit falls back to the start time)
    const later = new Set(['cutover_last_commit_timestamp_seconds', 'cutover_consumer_lag_records'])
    const ctx = context(await fresh())
    for (const r of rules) {
      const problems = checkExpression(r.expr, ctx).filter((p) => !later.has(p.split(/[:{(]/)[0]!))
      expect(problems, `${r.alert}: ${r.expr}`).toEqual([])
    }
  })

  it('uses in each annotation only labels that the result of its expression has', async () => {
    const ctx = context(await exercised())
    for (const r of rules) {
      const labels = resultLabels(parsePromQL(r.expr), ctx)
      for (const text of Object.values(r.annotations ?? {})) {
        for (const m of text.matchAll(/\$labels\.(\w+)/g)) expect([...(labels ?? [])], `${r.alert}: $labels.${m[1]} in "${text}"`).toContain(m[1])
      }
    }
  })

  it('rates over at least four scrape intervals of prometheus.yml', () => {
    const scrape = seconds(prometheusConfig.global.scrape_interval)
    for (const r of rules) {
      for (const {node} of walk(parsePromQL(r.expr))) {
        if (node.kind === 'call' && ['rate', 'irate', 'increase', 'deriv'].includes(node.func) && node.args[0]?.kind === 'matrix') {
          expect(seconds(node.args[0].range), `${r.alert}: ${node.func}[${node.args[0].range}]`).toBeGreaterThanOrEqual(4 * scrape)
        }
      }
    }
  })
})

describe('ops/grafana/cutover-dashboard.json against the runtime', () => {
  it('names only exported series, labels and label values, each read by the right function, over $__rate_interval', async () => {
    const ctx = context(await exercised())
    expect(targets.length).toBeGreaterThan(15)
    for (const {panel, target} of targets) {
      expect(checkExpression(target.expr, ctx), `${panel.title} ${target.refId}: ${target.expr}`).toEqual([])
      for (const {node} of walk(parsePromQL(target.expr))) if (node.kind === 'matrix' && !node.step) expect(node.range, `${panel.title} ${target.refId}`).toBe('$__rate_interval')
    }
  })

  it('names in each legend only labels that the result of its query has', async () => {
    const ctx = context(await exercised())
    for (const {panel, target} of targets) {
      const labels = resultLabels(parsePromQL(target.expr), ctx)
      for (const m of (target.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) expect([...(labels ?? [])], `${panel.title} ${target.refId}: {{${m[1]}}}`).toContain(m[1])
    }
  })

  it('shows each query in the unit of its values (s for seconds, ops for rates, percent for 100 * a ratio)', () => {
    for (const {panel, target} of targets) {
      const m = measure(parsePromQL(target.expr))
      expect(unitsFor(m), `${panel.title} ${target.refId} (${target.legendFormat}): ${m.dim}${m.perSecond ? '/s' : ''}*${m.scale}`).toContain(unitOf(panel, target))
    }
  })

  it("lists in the pipeline variable a pipeline from its process's start", async () => {
    const variable = dashboard.templating.list.find((v) => v.name === 'pipeline')!
    expect(variable.query?.query, 'the query Grafana runs is the one it shows').toBe(variable.definition)
    const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(variable.definition ?? '')
    expect(m, variable.definition).not.toBeNull()
    const series = (await fresh()).series.get(m![1]!)
    expect(series, `${m![1]} is not there from the start`).toBeDefined()
    expect([...series!.labels.get(m![2]!)!]).toEqual(['ops-fresh'])
  })
})

describe('src/runtime/metrics.ts', () => {
  it('exports the records read and written at 0 from the start (the dead-letter ratio sees the first batch)', async () => {
    const text = await new RuntimeMetrics('p0').registry.metrics()
    for (const stage of ['decode', 'sink']) {
      for (const direction of ['in', 'out']) expect(text).toContain(`cutover_records_total{pipeline="p0",stage="${stage}",direction="${direction}"} 0\n`)
    }
  })
})
