/**
 * PromQL for the tests of ops/ (the Grafana dashboard and the Prometheus alert rules): each
 * expression is parsed by Prometheus's own grammar (@prometheus-io/lezer-promql, in strict mode:
 * a syntax error throws) and its tree turned into the small `Node` type below, then checked
 * against the series the runtime exports: metric names, label names, literal label values, the
 * function that reads each series (rate() on counters, deriv() on gauges, histogram_quantile()
 * on buckets kept by `le`), the labels an expression's result carries (for legends and alert
 * annotations) and its unit.
 *
 * What the checks do not know (a function outside FUNCTIONS, a node kind without a case here)
 * is an error, so that the tests fail rather than pass over an expression.
 */
import {parser} from '@prometheus-io/lezer-promql'

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

/** functions the checks know, with the kind of series they must read */
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

type SyntaxNode = ReturnType<typeof parser.parse>['topNode']
const strict = parser.configure({strict: true})
/** a string literal (kept as it is), or one of Grafana's `$var`, `${var}`, `${var:format}` outside strings */
const GRAFANA_VARIABLE = /("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)|\$\{[^}]*\}|\$\w+/g

/**
 * Parses `src` as Prometheus does. Grafana's variables outside strings are not PromQL: each
 * becomes a duration of its own length (`$__rate_interval` → `999999999999999s`) before parsing,
 * so that the tree's positions are the source's and a range reads `$__rate_interval`; in strings
 * (`pipeline=~"$pipeline"`) they are kept.
 */
export function parsePromQL(src: string): Node {
  const promql = src.replace(GRAFANA_VARIABLE, (m, literal?: string) => literal ?? `${'9'.repeat(m.length - 1)}s`)
  let top: SyntaxNode
  try {
    top = strict.parse(promql).topNode
  } catch (e) {
    throw new Error(`${(e as Error).message} in: ${src}`)
  }
  const text = (n: SyntaxNode) => src.slice(n.from, n.to)
  const kids = (n: SyntaxNode | null | undefined): SyntaxNode[] => {
    const out: SyntaxNode[] = []
    for (let c = n?.firstChild; c; c = c.nextSibling) if (c.name !== 'LineComment') out.push(c)
    return out
  }
  const unquote = (n: SyntaxNode): string => {
    const s = text(n)
    // the grammar's string token also takes one without its closing quote
    if (!/^"(?:[^"\\\n]|\\.)*"$|^'(?:[^'\\\n]|\\.)*'$|^`[^`]*`$/.test(s)) throw new Error(`unterminated string ${s} in: ${src}`)
    return s[0] === '`' ? s.slice(1, -1) : s.slice(1, -1).replace(/\\(.)/g, (_, c: string) => ({n: '\n', t: '\t', r: '\r'})[c] ?? c)
  }
  const label = (n: SyntaxNode) => (n.name === 'QuotedLabelName' ? unquote(n.firstChild!) : text(n))
  const labels = (n: SyntaxNode | undefined) => kids(n).map(label)
  const convert = (n: SyntaxNode): Node => {
    const children = kids(n)
    const [a, b, c] = children
    switch (n.name) {
      case 'PromQL':
      case 'ParenExpr':
      case 'OffsetExpr': // `x offset 5m` and `x @ t` read the same series as x
      case 'StepInvariantExpr':
        return convert(a!)
      case 'NumberDurationLiteral':
        return {kind: 'number', value: Number(text(n).replace(/_/g, '').replace(/^([+-]?)inf$/i, '$1Infinity'))}
      case 'StringLiteral':
        return {kind: 'string', value: unquote(n)}
      case 'UnaryExpr':
        return {kind: 'unary', op: text(a!), expr: convert(b!)}
      case 'MatrixSelector':
        return {kind: 'matrix', expr: convert(a!), range: text(b!)}
      case 'SubqueryExpr':
        return {kind: 'matrix', expr: convert(a!), range: text(b!), step: c ? text(c) : ''}
      case 'VectorSelector': {
        const name = n.getChild('Identifier')
        const matchers = kids(n.getChild('LabelMatchers')).map((m): Matcher => {
          if (m.name === 'QuotedLabelName') throw new Error(`a metric name in braces (${text(m)}) unknown to this reader: ${src}`)
          const [l, op, value] = kids(m)
          return {label: label(l!), op: text(op!) as Matcher['op'], value: unquote(value!)}
        })
        return {kind: 'selector', name: name ? text(name) : '', matchers}
      }
      case 'FunctionCall': {
        const func = text(a!)
        if (!(func in FUNCTIONS)) throw new Error(`function ${func}() unknown to this reader: ${src}`)
        return {kind: 'call', func, args: kids(b).map(convert)}
      }
      case 'AggregateExpr': {
        const args = kids(n.getChild('FunctionCallBody')).map(convert)
        const modifier = kids(n.getChild('AggregateModifier'))
        if (args.length < 1 || args.length > 2) throw new Error(`${text(a!)}() takes one or two arguments: ${src}`)
        const grouping = modifier.length ? {without: modifier[0]!.name === 'Without', labels: labels(modifier[1])} : undefined
        return {kind: 'aggregate', op: text(a!).toLowerCase(), grouping, param: args.length > 1 ? args[0] : undefined, expr: args.at(-1)!}
      }
      case 'BinaryExpr': {
        const m = kids(n.getChild('MatchingModifierClause'))
        const group = m[2] && (m[2].name === 'GroupLeft' ? ('left' as const) : ('right' as const))
        const matching = m.length ? {on: m[0]!.name === 'On', labels: labels(m[1]), group, include: labels(m[3])} : undefined
        return {kind: 'binary', op: text(b!).toLowerCase(), lhs: convert(a!), rhs: convert(children.at(-1)!), bool: !!n.getChild('BoolModifier'), matching}
      }
      default:
        throw new Error(`${n.name} (${text(n)}) unknown to this reader: ${src}`)
    }
  }
  return convert(top)
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

/** The context of a cutover process scraped by Prometheus under one of `jobs` (prometheus.yml's job_name values). */
export function cutoverCheckContext(exported: Exported, jobs: string[]): CheckContext {
  return {
    exported,
    targetLabels: ['job', 'instance'],
    prometheusSeries: {up: []},
    freeLabels: ['pipeline', 'instance', 'topic', 'partition'],
    allowedValues: {job: jobs},
  }
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
