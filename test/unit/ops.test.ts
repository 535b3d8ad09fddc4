/**
 * The Grafana dashboard and the Prometheus alert rules in ops/ name only metrics (and labels)
 * that the runtime really exports: a renamed metric breaks this test, not a bank's on-call.
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {parse} from 'yaml'
import {RuntimeMetrics} from '../../src/runtime/metrics.js'
import {ROOT} from '../helpers.js'

interface Exported {
  names: Set<string>
  labels: Map<string, Set<string>>
}

/** Every series name the registry exports (histograms as _bucket/_sum/_count), with its label names. */
async function exported(): Promise<Exported> {
  const m = new RuntimeMetrics('ops-test')
  // one observation of each kind, so that labelled series appear in the output
  m.stageRecords('decode', 'in', 1)
  m.deadLettered('DECODE_ERROR')
  m.duplicates(1)
  m.batchCommitted(10, 0.01)
  m.endToEnd(0.02)
  m.lag('t', 0, 5)
  m.outboxBacklog(1)
  m.upsertRerun()
  m.isolating(false)
  // the enrich, windows and rules stages' series (a spec with those sections)
  m.enrichLookups('accounts', 'found', 1)
  m.enrichQuery('accounts', 0.01)
  m.alerts('big_rub', 1)
  m.watermark('t', 0, 1_795_000_000)
  const text = await m.registry.metrics()
  const names = new Set<string>()
  const labels = new Map<string, Set<string>>()
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s/.exec(line)
    if (!match) continue
    const name = match[1]!
    names.add(name)
    const set = labels.get(name) ?? new Set<string>()
    for (const pair of (match[3] ?? '').split(',')) {
      const k = pair.split('=')[0]?.trim()
      if (k) set.add(k)
    }
    labels.set(name, set)
  }
  return {names, labels}
}

/** `cutover_*` metric names and the label names matched on each, from PromQL expressions. */
function referenced(exprs: string[]): {name: string; labels: string[]; expr: string}[] {
  const out: {name: string; labels: string[]; expr: string}[] = []
  for (const expr of exprs) {
    for (const m of expr.matchAll(/\b(cutover_[a-zA-Z0-9_]+)(\{([^}]*)\})?/g)) {
      const labels = (m[3] ?? '')
        .split(',')
        .map((p) => p.split(/=~|!=|!~|=/)[0]!.trim())
        .filter(Boolean)
      out.push({name: m[1]!, labels, expr})
    }
  }
  return out
}

const dashboard = JSON.parse(readFileSync(join(ROOT, 'ops', 'grafana', 'cutover-dashboard.json'), 'utf8')) as {
  panels: {title: string; type: string; targets?: {expr: string}[]}[]
  templating: {list: {query?: unknown; definition?: string}[]}
}
const alerts = parse(readFileSync(join(ROOT, 'ops', 'prometheus', 'alerts.yml'), 'utf8')) as {
  groups: {name: string; rules: {alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string>}[]}[]
}

function dashboardExprs(): string[] {
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
  for (const v of dashboard.templating.list) if (v.definition) exprs.push(v.definition)
  return exprs
}

/** A cheap PromQL sanity check (no promtool here): brackets balance and no Grafana variable leaks into alerts. */
function balanced(expr: string): boolean {
  const open: string[] = []
  const pairs: Record<string, string> = {')': '(', ']': '[', '}': '{'}
  let quoted = false
  for (const ch of expr) {
    if (ch === '"') quoted = !quoted
    if (quoted) continue
    if (ch === '(' || ch === '[' || ch === '{') open.push(ch)
    else if (pairs[ch] && open.pop() !== pairs[ch]) return false
  }
  return open.length === 0 && !quoted
}

describe('ops/prometheus/alerts.yml', () => {
  it('parses as Prometheus rule groups, each rule with an expression, a duration and a summary', () => {
    expect(alerts.groups.length).toBeGreaterThan(0)
    const rules = alerts.groups.flatMap((g) => g.rules)
    expect(rules.map((r) => r.alert)).toEqual(expect.arrayContaining(['CutoverConsumerLagGrowing', 'CutoverDeadLetterRateHigh', 'CutoverNoCommit', 'CutoverOutboxBacklogGrowing']))
    for (const r of rules) {
      expect(r.expr, r.alert).toBeTypeOf('string')
      expect(balanced(r.expr), `brackets of ${r.alert}`).toBe(true)
      expect(r.expr, r.alert).not.toMatch(/\$\w/)
      expect(r.for, r.alert).toMatch(/^\d+[smh]$/)
      expect(r.labels?.severity, r.alert).toMatch(/^(warning|critical)$/)
      expect(r.annotations?.summary, r.alert).toBeTruthy()
    }
  })

  it('uses the thresholds the issue asks for', () => {
    const byName = new Map(alerts.groups.flatMap((g) => g.rules).map((r) => [r.alert, r]))
    expect(byName.get('CutoverConsumerLagGrowing')!.for).toBe('10m')
    expect(byName.get('CutoverDeadLetterRateHigh')!.expr).toMatch(/>\s*0\.01/)
    expect(byName.get('CutoverDeadLetterRateHigh')!.for).toBe('5m')
    expect(byName.get('CutoverNoCommit')!.expr).toMatch(/cutover_consumer_lag_records\)\s*>\s*0/)
  })

  it('names only metrics and labels the runtime exports', async () => {
    const {names, labels} = await exported()
    const refs = referenced(alerts.groups.flatMap((g) => g.rules.map((r) => r.expr)))
    expect(refs.length).toBeGreaterThan(0)
    for (const r of refs) {
      expect(names, `${r.name} in: ${r.expr}`).toContain(r.name)
      for (const l of r.labels) expect(labels.get(r.name), `label ${l} of ${r.name}`).toContain(l)
    }
  })
})

describe('ops/grafana/cutover-dashboard.json', () => {
  it('every query is well bracketed and uses the datasource and pipeline variables', () => {
    for (const e of dashboardExprs()) expect(balanced(e), e).toBe(true)
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
      expect((p as {datasource?: {uid?: string}}).datasource?.uid, p.title).toBe('${datasource}')
      for (const t of p.targets ?? []) expect(t.expr, p.title).toMatch(/pipeline=~"\$pipeline"/)
    }
  })

  it('has the panels of the runbook', () => {
    const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join('\n')
    for (const want of ['records / s per stage', 'dead letters / s by code', 'duplicates', 'batch size', 'commit latency', 'end-to-end latency', 'lag per partition', 'outbox backlog', 'last commit age']) {
      expect(titles).toContain(want)
    }
  })

  it('names only metrics and labels the runtime exports', async () => {
    const {names, labels} = await exported()
    const refs = referenced(dashboardExprs())
    expect(refs.length).toBeGreaterThan(10)
    for (const r of refs) {
      expect(names, `${r.name} in: ${r.expr}`).toContain(r.name)
      for (const l of r.labels) expect(labels.get(r.name), `label ${l} of ${r.name}`).toContain(l)
    }
    // every metric of the registry (but the process defaults) is on the dashboard
    const used = new Set(refs.map((r) => r.name.replace(/_(bucket|sum|count)$/, '')))
    for (const n of names) {
      if (n.startsWith('cutover_process_') || /_(sum|count)$/.test(n)) continue
      expect(used, `${n} has no panel`).toContain(n.replace(/_bucket$/, ''))
    }
  })
})

describe('RuntimeMetrics: a partition this process no longer consumes', () => {
  it('loses its lag and its watermark series (its new owner reports them); the others keep theirs', async () => {
    const m = new RuntimeMetrics('forget-test', {defaultMetrics: false})
    m.lag('t', 0, 5)
    m.lag('t', 1, 7)
    m.watermark('t', 0, 1763632800)
    m.watermark('t', 1, 1763632860)
    m.forgetLag('t', 0)
    const text = await m.registry.metrics()
    expect(text).not.toMatch(/cutover_watermark_seconds\{[^}]*partition="0"/)
    expect(text).toMatch(/cutover_watermark_seconds\{[^}]*partition="1"[^}]*\} 1763632860/)
    expect(text).not.toMatch(/cutover_consumer_lag[^{]*\{[^}]*partition="0"/)
    expect(text).toMatch(/cutover_consumer_lag_records\{[^}]*partition="1"[^}]*\} 7/)
  })
})
