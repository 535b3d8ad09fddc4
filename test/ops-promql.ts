/**
 * A small PromQL reader for the tests of ops/ (the Grafana dashboard and the Prometheus alert
 * rules): parses the expressions the way Prometheus does (operator precedence, aggregations with
 * by/without, vector matching with on/ignoring/group_left, ranges and subqueries, Grafana's
 * `$variables` in strings and ranges), and checks them against the series the runtime exports:
 * metric names, label names, literal label values, the function that reads each series (rate()
 * on counters, deriv() on gauges, histogram_quantile() on buckets kept by `le`), the labels an
 * expression's result carries (for legends and alert annotations) and its unit.
 *
 * Not a full PromQL implementation: what it does not know (an unknown function, a syntax it
 * cannot read) is an error, so that the tests fail rather than pass over an expression.
 */

export type Node =
  | {kind: 'number'; value: number}
  | {kind: 'string'; value: string}
  | {kind: 'selector'; name: string; matchers: Matcher[]}
  | {kind: 'matrix'; expr: Node; range: string; step?: string}
  | {kind: 'call'; func: string; args: Node[]}
  | {kind: 'aggregate'; op: string; grouping?: {without: boolean; labels: string[]}; param?: Node; expr: Node}
  | {kind: 'binary'; op: string; lhs: Node; rhs: Node; bool: boolean; matching?: {on: boolean; labels: string[]; group?: 'left' | 'right'; include: string[]}}
  | {kind: 'unary'; op: string; expr: Node}

export interface Matcher {
  label: string
  op: '=' | '!=' | '=~' | '!~'
  value: string
}

const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile'])
/** functions this reader knows, with the kind of series they must read */
const FUNCTIONS: Record<string, 'counter' | 'gauge' | 'any'> = {
  rate: 'counter',
  irate: 'counter',
  increase: 'counter',
  resets: 'counter',
  deriv: 'gauge',
  delta: 'gauge',
  idelta: 'gauge',
  predict_linear: 'gauge',
  avg_over_time: 'gauge',
  min_over_time: 'gauge',
  max_over_time: 'gauge',
  last_over_time: 'any',
  changes: 'any',
  histogram_quantile: 'any',
  clamp_min: 'any',
  clamp_max: 'any',
  abs: 'any',
  time: 'any',
  vector: 'any',
  scalar: 'any',
  absent: 'any',
  label_replace: 'any',
}
const SET_OPS = new Set(['and', 'or', 'unless'])
const COMPARISONS = new Set(['==', '!=', '<', '<=', '>', '>='])

type Token = {t: 'ident' | 'number' | 'string' | 'op' | 'range'; v: string}

function tokenize(src: string): Token[] {
  const out: Token[] = []
  let i = 0
  while (i < src.length) {
    const c = src[i]!
    if (/\s/.test(c)) {
      i++
    } else if (c === '#') {
      while (i < src.length && src[i] !== '\n') i++
    } else if (c === '"' || c === "'") {
      let j = i + 1
      let v = ''
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\') {
          v += src[j + 1]
          j += 2
        } else v += src[j++]
      }
      if (j >= src.length) throw new Error(`unterminated string in: ${src}`)
      out.push({t: 'string', v})
      i = j + 1
    } else if (c === '[') {
      // a range or subquery: [5m], [$__rate_interval], [10m:1m]
      const j = src.indexOf(']', i)
      if (j < 0) throw new Error(`unterminated [ in: ${src}`)
      out.push({t: 'range', v: src.slice(i + 1, j).trim()})
      i = j + 1
    } else if (/[0-9.]/.test(c)) {
      const m = /^(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?)/i.exec(src.slice(i))
      if (!m) throw new Error(`bad number at ${i} in: ${src}`)
      out.push({t: 'number', v: m[0]})
      i += m[0].length
    } else if (/[a-zA-Z_:]/.test(c)) {
      const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(src.slice(i))!
      out.push({t: 'ident', v: m[0]})
      i += m[0].length
    } else {
      const two = src.slice(i, i + 2)
      if (['==', '!=', '<=', '>=', '=~', '!~'].includes(two)) {
        out.push({t: 'op', v: two})
        i += 2
      } else if ('+-*/%^<>(){},='.includes(c)) {
        out.push({t: 'op', v: c})
        i++
      } else throw new Error(`unexpected ${JSON.stringify(c)} at ${i} in: ${src}`)
    }
  }
  return out
}

const DURATION = /^(\d+(ms|s|m|h|d|w|y))+$|^\$\{?\w+\}?$/

export function parsePromQL(src: string): Node {
  const toks = tokenize(src)
  let p = 0
  const peek = (k = 0): Token | undefined => toks[p + k]
  const isOp = (v: string, k = 0) => peek(k)?.t === 'op' && peek(k)?.v === v
  const isIdent = (v: string, k = 0) => peek(k)?.t === 'ident' && peek(k)?.v === v
  const expect = (v: string) => {
    if (!isOp(v)) throw new Error(`expected ${v} at token ${p} (${peek()?.v ?? 'end'}) in: ${src}`)
    p++
  }
  const labelList = (): string[] => {
    expect('(')
    const labels: string[] = []
    while (!isOp(')')) {
      const t = peek()
      if (t?.t !== 'ident') throw new Error(`expected a label name in: ${src}`)
      labels.push(t.v)
      p++
      if (isOp(',')) p++
    }
    expect(')')
    return labels
  }
  const modifiers = (): {bool: boolean; matching?: {on: boolean; labels: string[]; group?: 'left' | 'right'; include: string[]}} => {
    let bool = false
    if (isIdent('bool')) {
      bool = true
      p++
    }
    if (!isIdent('on') && !isIdent('ignoring')) return {bool}
    const on = peek()!.v === 'on'
    p++
    const labels = labelList()
    let group: 'left' | 'right' | undefined
    let include: string[] = []
    if (isIdent('group_left') || isIdent('group_right')) {
      group = peek()!.v === 'group_left' ? 'left' : 'right'
      p++
      if (isOp('(')) include = labelList()
    }
    return {bool, matching: {on, labels, group, include}}
  }
  const levels: {ops: string[]; right?: boolean}[] = [{ops: ['or']}, {ops: ['and', 'unless']}, {ops: ['==', '!=', '<=', '<', '>=', '>']}, {ops: ['+', '-']}, {ops: ['*', '/', '%', 'atan2']}, {ops: ['^'], right: true}]
  const binary = (level: number): Node => {
    if (level >= levels.length) return unary()
    const {ops, right} = levels[level]!
    let lhs = binary(level + 1)
    for (;;) {
      const t = peek()
      if (!t || !((t.t === 'op' || t.t === 'ident') && ops.includes(t.v))) return lhs
      p++
      const {bool, matching} = modifiers()
      const rhs = right ? binary(level) : binary(level + 1)
      lhs = {kind: 'binary', op: t.v, lhs, rhs, bool, matching}
      if (right) return lhs
    }
  }
  const unary = (): Node => {
    if (isOp('-') || isOp('+')) {
      const op = peek()!.v
      p++
      return {kind: 'unary', op, expr: unary()}
    }
    let node = primary()
    for (;;) {
      if (peek()?.t === 'range') {
        const [range, step] = peek()!.v.split(':').map((s) => s.trim())
        if (!DURATION.test(range!) || (step !== undefined && step !== '' && !DURATION.test(step))) throw new Error(`bad range [${peek()!.v}] in: ${src}`)
        p++
        node = {kind: 'matrix', expr: node, range: range!, step}
      } else if (isIdent('offset')) {
        p += 2
      } else return node
    }
  }
  const selector = (name: string): Node => {
    const matchers: Matcher[] = []
    if (isOp('{')) {
      p++
      while (!isOp('}')) {
        const l = peek()
        const op = peek(1)
        const v = peek(2)
        if (l?.t !== 'ident' || op?.t !== 'op' || !['=', '!=', '=~', '!~'].includes(op.v) || v?.t !== 'string') throw new Error(`bad label matcher in: ${src}`)
        matchers.push({label: l.v, op: op.v as Matcher['op'], value: v.v})
        p += 3
        if (isOp(',')) p++
      }
      expect('}')
    }
    if (!name && matchers.length === 0) throw new Error(`empty selector in: ${src}`)
    return {kind: 'selector', name, matchers}
  }
  const primary = (): Node => {
    const t = peek()
    if (!t) throw new Error(`unexpected end of: ${src}`)
    if (t.t === 'number') {
      p++
      return {kind: 'number', value: Number(t.v)}
    }
    if (t.t === 'string') {
      p++
      return {kind: 'string', value: t.v}
    }
    if (isOp('(')) {
      p++
      const e = binary(0)
      expect(')')
      return e
    }
    if (isOp('{')) return selector('')
    if (t.t !== 'ident') throw new Error(`unexpected ${t.v} in: ${src}`)
    p++
    if (AGGREGATIONS.has(t.v) && (isOp('(') || isIdent('by') || isIdent('without'))) {
      let grouping: {without: boolean; labels: string[]} | undefined
      if (isIdent('by') || isIdent('without')) {
        const without = peek()!.v === 'without'
        p++
        grouping = {without, labels: labelList()}
      }
      expect('(')
      let param: Node | undefined
      let expr = binary(0)
      if (isOp(',')) {
        p++
        param = expr
        expr = binary(0)
      }
      expect(')')
      if (!grouping && (isIdent('by') || isIdent('without'))) {
        const without = peek()!.v === 'without'
        p++
        grouping = {without, labels: labelList()}
      }
      return {kind: 'aggregate', op: t.v, grouping, param, expr}
    }
    if (isOp('(')) {
      if (!(t.v in FUNCTIONS)) throw new Error(`function ${t.v}() unknown to this reader: ${src}`)
      p++
      const args: Node[] = []
      while (!isOp(')')) {
        args.push(binary(0))
        if (isOp(',')) p++
        else if (!isOp(')')) throw new Error(`expected , or ) in: ${src}`)
      }
      expect(')')
      return {kind: 'call', func: t.v, args}
    }
    return selector(t.v)
  }
  const node = binary(0)
  if (p !== toks.length) throw new Error(`unexpected ${toks[p]!.v} at token ${p} in: ${src}`)
  return node
}

/** Every node of `node`, depth first, with the chain of its ancestors. */
export function* walk(node: Node, parents: Node[] = []): Generator<{node: Node; parents: Node[]}> {
  yield {node, parents}
  const inner = [...parents, node]
  switch (node.kind) {
    case 'matrix':
    case 'unary':
      yield* walk(node.expr, inner)
      break
    case 'aggregate':
      if (node.param) yield* walk(node.param, inner)
      yield* walk(node.expr, inner)
      break
    case 'call':
      for (const a of node.args) yield* walk(a, inner)
      break
    case 'binary':
      yield* walk(node.lhs, inner)
      yield* walk(node.rhs, inner)
      break
    default:
  }
}

export type SeriesType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'

/** What a /metrics text exports: each series name (histograms as _bucket/_sum/_count), its type, label names and values. */
export interface Exported {
  series: Map<string, {type: SeriesType; labels: Map<string, Set<string>>}>
  /** every sample line: its series name and labels */
  samples: {name: string; labels: Record<string, string>}[]
}

/** Reads the Prometheus text format. */
export function readExposition(text: string): Exported {
  const types = new Map<string, SeriesType>()
  const series: Exported['series'] = new Map()
  const samples: Exported['samples'] = []
  for (const line of text.split('\n')) {
    const typeLine = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (typeLine) {
      types.set(typeLine[1]!, typeLine[2] as SeriesType)
      continue
    }
    if (line.startsWith('#') || !line.trim()) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+(\s+\d+)?$/.exec(line)
    if (!m) throw new Error(`unreadable exposition line: ${line}`)
    const name = m[1]!
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '')
    const type = types.get(family) ?? 'untyped'
    const entry = series.get(name) ?? {type, labels: new Map<string, Set<string>>()}
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      const values = entry.labels.get(l[1]!) ?? new Set<string>()
      values.add(l[2]!)
      entry.labels.set(l[1]!, values)
      labels[l[1]!] = l[2]!
    }
    series.set(name, entry)
    samples.push({name, labels})
  }
  return {series, samples}
}

/**
 * The selectors of `expr` that match no sample of `exported` (Grafana's `$variables` in matcher
 * values replaced by `vars`; matchers on labels that Prometheus adds, `skip`, ignored).
 */
export function selectorsWithoutData(expr: string, exported: Exported, vars: Record<string, string>, skip: string[]): string[] {
  const missing: string[] = []
  for (const {node} of walk(parsePromQL(expr))) {
    if (node.kind !== 'selector') continue
    const matchers = node.matchers
      .filter((m) => !skip.includes(m.label))
      .map((m) => ({...m, value: m.value.replace(/\$\{?(\w+)\}?/g, (_, v: string) => vars[v] ?? `$${v}`)}))
    const hit = exported.samples.some(
      (s) =>
        s.name === node.name &&
        matchers.every((m) => {
          const v = s.labels[m.label] ?? ''
          if (m.op === '=') return v === m.value
          if (m.op === '!=') return v !== m.value
          const re = new RegExp(`^(?:${m.value})$`)
          return m.op === '=~' ? re.test(v) : !re.test(v)
        }),
    )
    if (!hit) missing.push(`${node.name}{${node.matchers.map((m) => `${m.label}${m.op}"${m.value}"`).join(',')}}`)
  }
  return missing
}

/** Monotonic series: counters and the parts of histograms and summaries. */
function isCounterLike(name: string, ex: Exported): boolean {
  const s = ex.series.get(name)
  if (!s) return false
  if (s.type === 'counter') return true
  return (s.type === 'histogram' || s.type === 'summary') && /_(bucket|sum|count)$/.test(name)
}

export interface CheckContext {
  exported: Exported
  /** labels Prometheus adds to every scraped series (job, instance) */
  targetLabels: string[]
  /** series that Prometheus itself makes (up, scrape_*), with their labels */
  prometheusSeries: Record<string, string[]>
  /** label values not decided by the runtime (the pipeline's name): any literal is accepted */
  freeLabels: string[]
  /** for a label of `prometheusSeries` or `targetLabels`, the literal values allowed (job: the job_name of prometheus.yml) */
  allowedValues?: Record<string, string[]>
}

function seriesLabels(name: string, ctx: CheckContext): Set<string> | undefined {
  const p = ctx.prometheusSeries[name]
  if (p) return new Set([...p, ...ctx.targetLabels])
  const s = ctx.exported.series.get(name)
  if (!s) return undefined
  return new Set([...s.labels.keys(), ...ctx.targetLabels])
}

/** The problems of one expression: names, labels, values, functions. Empty when it is right. */
export function checkExpression(expr: string, ctx: CheckContext): string[] {
  const problems: string[] = []
  let root: Node
  try {
    root = parsePromQL(expr)
  } catch (e) {
    return [`does not parse: ${(e as Error).message}`]
  }
  for (const {node, parents} of walk(root)) {
    if (node.kind === 'selector') {
      const labels = seriesLabels(node.name, ctx)
      if (!labels) {
        problems.push(`${node.name}: not exported by the runtime`)
        continue
      }
      for (const m of node.matchers) {
        if (!labels.has(m.label)) {
          problems.push(`${node.name}{${m.label}}: no such label (it has ${[...labels].join(', ')})`)
          continue
        }
        if (m.value.includes('$') || ctx.freeLabels.includes(m.label) || m.op === '!=' || m.op === '!~') continue
        const known = ctx.allowedValues?.[m.label] ?? [...(ctx.exported.series.get(node.name)?.labels.get(m.label) ?? [])]
        const hit = m.op === '=' ? known.includes(m.value) : known.some((v) => new RegExp(`^(?:${m.value})$`).test(v))
        if (!hit) problems.push(`${node.name}{${m.label}${m.op}"${m.value}"}: matches no value the runtime exports (${known.join(', ')})`)
      }
      // the function that reads the series (through ranges, aggregations and subqueries)
      const reader = [...parents].reverse().find((n): n is Extract<Node, {kind: 'call'}> => n.kind === 'call' && FUNCTIONS[n.func] !== 'any')
      const prometheus = node.name in ctx.prometheusSeries
      if (reader && !prometheus) {
        const want = FUNCTIONS[reader.func]!
        const counter = isCounterLike(node.name, ctx.exported)
        if (want === 'counter' && !counter) problems.push(`${reader.func}(${node.name}): ${reader.func}() of a ${ctx.exported.series.get(node.name)!.type}, not a counter`)
        if (want === 'gauge' && counter) problems.push(`${reader.func}(${node.name}): ${reader.func}() of a counter (use rate() or increase())`)
      }
      if (!prometheus && isCounterLike(node.name, ctx.exported) && !reader && !parents.some((n) => n.kind === 'call' && n.func === 'label_replace')) {
        problems.push(`${node.name}: a counter read without rate()/increase() (its raw value depends on when the process started)`)
      }
      if (node.name.endsWith('_bucket') && !parents.some((n) => n.kind === 'call' && n.func === 'histogram_quantile')) problems.push(`${node.name}: buckets outside histogram_quantile()`)
    }
    if (node.kind === 'matrix' && node.expr.kind === 'selector') {
      const parent = parents.at(-1)
      if (!parent || parent.kind !== 'call') problems.push(`${node.expr.name}[${node.range}]: a range outside a function`)
    }
    if (node.kind === 'call' && node.func === 'histogram_quantile') {
      const [phi, inner] = node.args
      if (phi?.kind !== 'number' || phi.value < 0 || phi.value > 1) problems.push('histogram_quantile: the quantile must be a number in 0..1')
      if (!inner) problems.push('histogram_quantile: no histogram')
      else {
        const names = [...walk(inner)].flatMap(({node: n}) => (n.kind === 'selector' ? [n.name] : []))
        for (const n of names) if (!n.endsWith('_bucket')) problems.push(`histogram_quantile over ${n}, not a _bucket series`)
        for (const {node: a} of walk(inner)) {
          if (a.kind !== 'aggregate') continue
          const keeps = a.grouping ? (a.grouping.without ? !a.grouping.labels.includes('le') : a.grouping.labels.includes('le')) : false
          if (!keeps) problems.push(`histogram_quantile: ${a.op}() drops le (add \`by (le)\`)`)
        }
      }
    }
  }
  return problems
}

/**
 * The labels of an expression's result (the ones a legend's {{x}} or an alert's $labels.x can
 * use): undefined for a scalar. `or` keeps the labels both sides have.
 */
export function resultLabels(node: Node, ctx: CheckContext): Set<string> | undefined {
  switch (node.kind) {
    case 'number':
    case 'string':
      return undefined
    case 'selector': {
      const l = seriesLabels(node.name, ctx)
      return new Set(l ?? [])
    }
    case 'matrix':
    case 'unary':
      return resultLabels(node.expr, ctx)
    case 'aggregate': {
      if (!node.grouping) return new Set()
      if (!node.grouping.without) return new Set(node.grouping.labels)
      const inner = resultLabels(node.expr, ctx) ?? new Set<string>()
      return new Set([...inner].filter((l) => !node.grouping!.labels.includes(l)))
    }
    case 'call': {
      if (node.func === 'time' || node.func === 'scalar') return undefined
      if (node.func === 'vector') return new Set()
      if (node.func === 'histogram_quantile') {
        const l = resultLabels(node.args[1]!, ctx) ?? new Set<string>()
        l.delete('le')
        return l
      }
      if (node.func === 'label_replace') {
        const l = resultLabels(node.args[0]!, ctx) ?? new Set<string>()
        const dst = node.args[1]
        if (dst?.kind === 'string') l.add(dst.value)
        return l
      }
      const vectorArg = node.args.find((a) => resultLabels(a, ctx) !== undefined)
      return vectorArg ? resultLabels(vectorArg, ctx) : undefined
    }
    case 'binary': {
      const l = resultLabels(node.lhs, ctx)
      const r = resultLabels(node.rhs, ctx)
      if (!l) return r
      if (!r) return l
      if (node.op === 'or') return new Set([...l].filter((x) => r.has(x)))
      if (SET_OPS.has(node.op)) return l
      const m = node.matching
      if (m?.group === 'left') return new Set([...l, ...m.include])
      if (m?.group === 'right') return new Set([...r, ...m.include])
      // one to one: the labels both sides match on
      if (COMPARISONS.has(node.op) && !node.bool) return l
      if (m?.on) return new Set(m.labels)
      if (m) return new Set([...l].filter((x) => !m.labels.includes(x)))
      return l
    }
  }
}

/** `events`: the _count of a histogram (observations, not the unit of what is observed) */
export type Dimension = 'seconds' | 'count' | 'events' | 'ratio' | 'scalar' | 'unknown'

/** What an expression's values measure, whether per second, and by how much they are multiplied (100 for a percentage, 1000 for ms). */
export interface Measure {
  dim: Dimension
  perSecond: boolean
  scale: number
}

/** What an expression's values measure, for the panel's unit. */
export function measure(node: Node): Measure {
  const ofName = (name: string): Dimension => (/_count$/.test(name) ? 'events' : /_seconds(_total|_bucket|_sum)?$/.test(name) ? 'seconds' : 'count')
  const one = (dim: Dimension): Measure => ({dim, perSecond: false, scale: 1})
  switch (node.kind) {
    case 'number':
    case 'string':
      return one('scalar')
    case 'selector':
      return one(ofName(node.name))
    case 'matrix':
    case 'unary':
      return measure(node.expr)
    case 'aggregate':
      return node.op === 'count' || node.op === 'count_values' ? one('count') : measure(node.expr)
    case 'call': {
      switch (node.func) {
        case 'time':
          return one('seconds')
        case 'rate':
        case 'irate':
        case 'deriv':
          return {...measure(node.args[0]!), perSecond: true}
        case 'histogram_quantile':
          return one([...walk(node.args[1]!)].some(({node: n}) => n.kind === 'selector' && ofName(n.name) === 'seconds') ? 'seconds' : 'count')
        default: {
          const vectorArg = node.args.find((a) => a.kind !== 'number' && a.kind !== 'string')
          return vectorArg ? measure(vectorArg) : one('scalar')
        }
      }
    }
    case 'binary': {
      const l = measure(node.lhs)
      const r = measure(node.rhs)
      if (COMPARISONS.has(node.op) || SET_OPS.has(node.op)) return l
      const factor = (n: Node) => (n.kind === 'number' ? n.value : 1)
      if (node.op === '+' || node.op === '-') {
        if (l.dim === 'scalar') return r
        if (r.dim === 'scalar' || (l.dim === r.dim && l.perSecond === r.perSecond && l.scale === r.scale)) return l
        return {...l, dim: 'unknown'}
      }
      if (node.op === '*') {
        if (l.dim === 'scalar') return {...r, scale: r.scale * factor(node.lhs)}
        if (r.dim === 'scalar') return {...l, scale: l.scale * factor(node.rhs)}
        return {...l, dim: 'unknown'}
      }
      if (node.op === '/') {
        if (r.dim === 'scalar') return {...l, scale: l.scale / factor(node.rhs)}
        if (r.perSecond && !l.perSecond) return {...l, dim: 'unknown'}
        const perSecond = l.perSecond && !r.perSecond
        const scale = l.scale / r.scale
        if (r.dim === 'events') return {dim: l.dim, perSecond, scale} // a mean per observation
        if (l.dim === r.dim) return {dim: 'ratio', perSecond, scale}
        return {dim: 'unknown', perSecond, scale}
      }
      return {...l, dim: 'unknown'}
    }
  }
}

/** The Grafana units that show a measure truly. */
export function unitsFor(m: Measure): string[] {
  const key = `${m.dim}${m.perSecond ? '/s' : ''}*${m.scale}`
  const rates = ['ops', 'reqps', 'rps', 'wps', 'rwps', 'cps']
  const units: Record<string, string[]> = {
    'seconds*1': ['s', 'dtdurations', 'dtdhms'],
    'seconds*1000': ['ms'],
    'count*1': ['short', 'none', 'locale'],
    'events*1': ['short', 'none', 'locale'],
    'count/s*1': rates,
    'events/s*1': rates,
    'seconds/s*1': ['percentunit'],
    'ratio*1': ['percentunit'],
    'ratio*100': ['percent'],
    'scalar*1': ['short', 'none'],
  }
  return units[key] ?? []
}
