/**
 * The condition language of `rules[].when`: parsed and type-checked once per rule when the spec
 * is loaded (`pipeline validate` and `stream run` alike), then evaluated per record by the rules
 * stage (src/runtime/stages/rules.ts). Spec text is never given to `eval` or `new Function`: a
 * small recursive-descent parser builds a tree whose nodes keep their position, and the tree is
 * compiled into closures. (Not jsep: its nodes carry no position, so an unknown name or a type
 * error deep in a condition could not say where it is.)
 *
 *   condition  := or
 *   or         := and (("or" | "||") and)*
 *   and        := not (("and" | "&&") not)*
 *   not        := ("not" | "!") not | comparison
 *   comparison := operand [op operand | ["not"] "in" "(" literal ("," literal)* ")"]
 *   op         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
 *   operand    := number | 'text' | "text" | true | false | null | name | name "." name | "(" condition ")"
 *
 * Keywords in any case. A quote inside a text is written twice ('O''Brien'). Numbers are plain
 * decimals (`1000`, `-12.50`, `.5`; no exponent). Names: a field of the record (`amount`), a
 * window aggregate (`velocity.txn_count`), a lookup column (`account.segment`, which is the
 * record's `segment` once enriched).
 *
 * Types and comparisons (decided at compile time, from the spec):
 * - decimal and integer fields, count and sum aggregates, number literals: numbers, compared as
 *   EXACT decimals of their texts (`amount > 1000.005` is true for "1000.01"), never as doubles;
 * - timestamp fields (and min/max of one): instants, against another instant or a quoted ISO-8601
 *   text with an offset (`event_time >= '2026-11-20T00:00:00+03:00'`), to the microsecond;
 * - date fields: against a quoted yyyy-MM-dd; string fields: as texts (UTF-16 code units);
 * - boolean fields: `=`/`!=` against true/false, or alone as a condition (`is_test`);
 * - lookup columns are text or null (enrich): compared as numbers against a number (a text that
 *   is not a plain decimal is then unknown), as instants against a timestamp, else as texts.
 * A comparison with null (a missing value, a window the record was not counted in, the literal
 * null) is unknown, as in SQL: not true, and `not` of it is not true either; `and`/`or` follow
 * SQL's three-valued logic. A rule fires only when its condition is true.
 */
import {fracDigits, isoInstant, toScaled} from '../parity/tolerances.js'
import {parseAggregate, type FieldType, type PipelineSpec} from './spec.js'

/** The type of an operand, as the compiler sees it. `text`: a lookup column (text or null, of any shape). */
export type OperandType = 'number' | 'string' | 'timestamp' | 'date' | 'boolean' | 'text' | 'null'

/** What a condition may name: the spec's fields, windows' aggregates and lookups' columns, with their types. */
export interface RuleScope {
  fields: Readonly<Record<string, OperandType>>
  windows: Readonly<Record<string, Readonly<Record<string, OperandType>>>>
  lookups: Readonly<Record<string, readonly string[]>>
}

const OPERAND_OF: Record<FieldType, OperandType> = {string: 'string', integer: 'number', decimal: 'number', timestamp: 'timestamp', date: 'date', boolean: 'boolean'}

/** What the conditions of `spec` may name, with types: its fields, its windows' aggregates (count and sum are numbers, min and max of the field's type), its lookups' columns. */
export function ruleScopeOf(spec: Pick<PipelineSpec, 'fields' | 'windows' | 'enrich'>): RuleScope {
  const fields: Record<string, OperandType> = {}
  for (const [name, f] of Object.entries(spec.fields)) fields[name] = OPERAND_OF[f.type]
  const windows: Record<string, Record<string, OperandType>> = {}
  for (const w of spec.windows) {
    const aggs: Record<string, OperandType> = {}
    for (const [name, expr] of Object.entries(w.aggregates)) {
      const a = parseAggregate(expr)
      const of = a.field === undefined ? undefined : spec.fields[a.field]?.type
      aggs[name] = a.fn === 'min' || a.fn === 'max' ? (of === undefined ? 'text' : OPERAND_OF[of]) : 'number'
    }
    windows[w.name] = aggs
  }
  const lookups: Record<string, readonly string[]> = {}
  for (const e of spec.enrich) lookups[e.name] = e.select
  return {fields, windows, lookups}
}

/** The values a condition reads: the normalized (and enriched) record, and the window stage's `item.windows`. */
export interface ConditionInput {
  record: Readonly<Record<string, unknown>>
  windows?: Readonly<Record<string, {values: Readonly<Record<string, string | null>>}>>
}

export interface CompiledCondition {
  readonly text: string
  /** the windows it names, in order of first mention (a rule naming one fires once per window instance) */
  readonly windows: readonly string[]
  /** true, false, or null (unknown: a comparison with null); the rule fires on true only */
  evaluate(input: ConditionInput): boolean | null
}

/** One problem of a condition: `at` is the 0-based index in its text. */
export interface ConditionProblem {
  at: number
  message: string
}

/** The problem as one sentence with its position: "... (at character 12 of the condition)". */
export function describeProblem(p: ConditionProblem, text: string): string {
  return `${p.message} (at character ${p.at + 1} of the condition${p.at >= text.length ? ', its end' : ''})`
}

export class ConditionError extends Error {
  constructor(
    readonly problems: readonly ConditionProblem[],
    readonly text: string,
  ) {
    super(problems.map((p) => describeProblem(p, text)).join('; '))
  }
}

// ---------------------------------------------------------------- tokens

type TokenKind = 'number' | 'string' | 'name' | 'op' | 'punct' | 'end'
interface Token {
  kind: TokenKind
  /** the text as written (a string's value for kind string; a keyword lower-cased) */
  value: string
  at: number
}

const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'true', 'false', 'null'])
const OPS = ['==', '!=', '<>', '<=', '>=', '&&', '||', '=', '<', '>', '!']

class Syntax extends Error {
  constructor(
    readonly at: number,
    message: string,
  ) {
    super(message)
  }
}

function tokenize(text: string): Token[] {
  const out: Token[] = []
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (/\s/.test(c)) {
      i++
      continue
    }
    const at = i
    if (c === "'" || c === '"') {
      let value = ''
      i++
      for (;;) {
        if (i >= text.length) throw new Syntax(at, `the text opened by ${c} is not closed (write a ${c} inside it twice)`)
        if (text[i] === c) {
          if (text[i + 1] === c) {
            value += c
            i += 2
            continue
          }
          i++
          break
        }
        value += text[i++]
      }
      out.push({kind: 'string', value, at})
      continue
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(text[i + 1] ?? ''))) {
      const m = /^(?:\d+(?:\.\d+)?|\.\d+)/.exec(text.slice(i))!
      i += m[0].length
      if (/^[A-Za-z_.]/.test(text.slice(i))) throw new Syntax(at, `"${text.slice(at, i + 1)}" is not a number: write plain decimals such as 1000 or 12.50 (no exponent, no thousands separators)`)
      out.push({kind: 'number', value: m[0], at})
      continue
    }
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))!
      i += m[0].length
      const lower = m[0].toLowerCase()
      out.push(KEYWORDS.has(lower) ? {kind: 'op', value: lower, at} : {kind: 'name', value: m[0], at})
      continue
    }
    const op = OPS.find((o) => text.startsWith(o, i))
    if (op) {
      i += op.length
      out.push({kind: 'op', value: op, at})
      continue
    }
    if (c === '(' || c === ')' || c === ',' || c === '.' || c === '-') {
      i++
      out.push({kind: 'punct', value: c, at})
      continue
    }
    throw new Syntax(at, `unexpected character "${c}"`)
  }
  out.push({kind: 'end', value: '', at: text.length})
  return out
}

// ---------------------------------------------------------------- tree

type CompareOp = '=' | '!=' | '<' | '<=' | '>' | '>='

type Node =
  | {kind: 'literal'; at: number; type: 'number' | 'string' | 'boolean' | 'null'; value: string | boolean | null}
  | {kind: 'ref'; at: number; owner?: string; name: string}
  | {kind: 'compare'; at: number; op: CompareOp; left: Node; right: Node}
  | {kind: 'in'; at: number; negated: boolean; left: Node; list: Node[]}
  | {kind: 'not'; at: number; operand: Node}
  | {kind: 'logic'; at: number; op: 'and' | 'or'; left: Node; right: Node}

const COMPARE: Record<string, CompareOp> = {'=': '=', '==': '=', '!=': '!=', '<>': '!=', '<': '<', '<=': '<=', '>': '>', '>=': '>='}

function shown(t: Token): string {
  return t.kind === 'end' ? 'the end of the condition' : t.kind === 'string' ? 'a quoted text' : `"${t.value}"`
}

function parse(text: string): Node {
  const tokens = tokenize(text)
  let p = 0
  const peek = () => tokens[p]!
  const isOp = (...values: string[]) => peek().kind === 'op' && values.includes(peek().value)
  const expect = (value: string, what: string) => {
    const t = peek()
    if ((t.kind === 'punct' || t.kind === 'op') && t.value === value) {
      p++
      return t
    }
    throw new Syntax(t.at, `expected ${what}, found ${shown(t)}`)
  }

  const or = (): Node => {
    let left = and()
    while (isOp('or', '||')) {
      const at = tokens[p++]!.at
      left = {kind: 'logic', at, op: 'or', left, right: and()}
    }
    return left
  }
  const and = (): Node => {
    let left = not()
    while (isOp('and', '&&')) {
      const at = tokens[p++]!.at
      left = {kind: 'logic', at, op: 'and', left, right: not()}
    }
    return left
  }
  const not = (): Node => {
    if (isOp('not', '!')) {
      const at = tokens[p++]!.at
      return {kind: 'not', at, operand: not()}
    }
    return comparison()
  }
  const comparison = (): Node => {
    const left = operand()
    const t = peek()
    if (t.kind === 'op' && COMPARE[t.value] !== undefined) {
      p++
      const right = operand()
      const next = peek()
      if (next.kind === 'op' && COMPARE[next.value] !== undefined) throw new Syntax(next.at, `comparisons do not chain: write a ${t.value} b and b ${next.value} c`)
      return {kind: 'compare', at: t.at, op: COMPARE[t.value]!, left, right}
    }
    if (isOp('in') || (isOp('not') && tokens[p + 1]?.kind === 'op' && tokens[p + 1]!.value === 'in')) {
      const negated = peek().value === 'not'
      if (negated) p++
      const at = tokens[p++]!.at
      expect('(', '"(" opening the list of values after in')
      const list: Node[] = []
      for (;;) {
        const v = operand()
        if (v.kind !== 'literal') throw new Syntax(v.at, 'the list of in holds values (numbers, quoted texts, true, false, null), not names')
        list.push(v)
        if (peek().kind === 'punct' && peek().value === ',') {
          p++
          continue
        }
        expect(')', '"," or ")" closing the list of in')
        break
      }
      return {kind: 'in', at, negated, left, list}
    }
    return left
  }
  const operand = (): Node => {
    const t = peek()
    if (t.kind === 'punct' && t.value === '(') {
      p++
      const inner = or()
      expect(')', '")"')
      return inner
    }
    if (t.kind === 'punct' && t.value === '-' && tokens[p + 1]?.kind === 'number' && tokens[p + 1]!.at === t.at + 1) {
      p += 2
      return {kind: 'literal', at: t.at, type: 'number', value: canonicalNumber('-' + tokens[p - 1]!.value)}
    }
    if (t.kind === 'number') {
      p++
      return {kind: 'literal', at: t.at, type: 'number', value: canonicalNumber(t.value)}
    }
    if (t.kind === 'string') {
      p++
      return {kind: 'literal', at: t.at, type: 'string', value: t.value}
    }
    if (t.kind === 'op' && (t.value === 'true' || t.value === 'false')) {
      p++
      return {kind: 'literal', at: t.at, type: 'boolean', value: t.value === 'true'}
    }
    if (t.kind === 'op' && t.value === 'null') {
      p++
      return {kind: 'literal', at: t.at, type: 'null', value: null}
    }
    if (t.kind === 'name') {
      p++
      if (peek().kind === 'punct' && peek().value === '.') {
        p++
        const member = peek()
        if (member.kind !== 'name') throw new Syntax(member.at, `expected a name after "${t.value}.", found ${shown(member)}`)
        p++
        return {kind: 'ref', at: t.at, owner: t.value, name: member.value}
      }
      return {kind: 'ref', at: t.at, name: t.value}
    }
    throw new Syntax(t.at, `expected a value (a field, window.aggregate, lookup.column, number, quoted text, true, false or null), found ${shown(t)}`)
  }

  const tree = or()
  const rest = peek()
  if (rest.kind !== 'end') {
    throw new Syntax(rest.at, rest.kind === 'punct' && rest.value === ')' ? 'this ")" closes no "("' : `expected and, or, or the end of the condition, found ${shown(rest)}`)
  }
  return tree
}

/** A number literal as a canonical decimal: "-0012.50" -> "-12.50", ".5" -> "0.5", "-0" -> "0". */
function canonicalNumber(text: string): string {
  const neg = text.startsWith('-')
  let s = neg ? text.slice(1) : text
  if (s.startsWith('.')) s = '0' + s
  s = s.replace(/^0+(?=\d)/, '')
  return neg && /[1-9]/.test(s) ? '-' + s : s
}

// ---------------------------------------------------------------- values

const PLAIN_DECIMAL = /^-?\d+(?:\.\d+)?$/

/** Exact comparison of two plain decimal texts ("1000.01" vs "1000.005"): -1, 0, 1. */
export function compareDecimals(a: string, b: string): number {
  const scale = Math.max(fracDigits(a), fracDigits(b))
  const x = toScaled(a, scale)
  const y = toScaled(b, scale)
  return x < y ? -1 : x > y ? 1 : 0
}

/**
 * An ISO-8601 instant with an offset ("2026-11-20T09:15:00.123456Z", "...+03:00") as microseconds
 * since 1970, exactly (a BigInt); undefined for any other text.
 */
export function instantMicros(text: string): bigint | undefined {
  const ms = isoInstant(text)
  if (ms === undefined) return undefined
  // the digits after the millisecond, up to the microsecond (isoInstant refuses more that are not zeros)
  const m = /[T ]\d{2}:\d{2}(?::\d{2})?(?:[.,](\d+))?/.exec(text)
  const frac = m?.[1] ?? ''
  const us = frac.length > 3 ? Number((frac.slice(3) + '000').slice(0, 3)) : 0
  return BigInt(ms) * 1000n + BigInt(us)
}

const DATE_TEXT = /^\d{4}-\d{2}-\d{2}$/

type Read = (input: ConditionInput) => unknown
type Test = (input: ConditionInput) => boolean | null

function holds(op: CompareOp, c: number): boolean {
  switch (op) {
    case '=':
      return c === 0
    case '!=':
      return c !== 0
    case '<':
      return c < 0
    case '<=':
      return c <= 0
    case '>':
      return c > 0
    case '>=':
      return c >= 0
  }
}

/** How two operands of these types compare, or why they cannot. */
type Mode = 'decimal' | 'instant' | 'text' | 'boolean' | 'null'

function modeOf(a: OperandType, b: OperandType, op: CompareOp): Mode | string {
  if (a === 'null' || b === 'null') return 'null'
  const pair = new Set([a, b])
  const only = (...ts: OperandType[]) => [...pair].every((t) => ts.includes(t))
  if (only('number', 'text') && pair.has('number')) return 'decimal'
  if (only('timestamp', 'string', 'text') && pair.has('timestamp')) return 'instant'
  if (only('date', 'string', 'text')) return 'text'
  if (only('string', 'text')) return 'text'
  if (only('boolean')) return op === '=' || op === '!=' ? 'boolean' : 'true and false have no order: compare a boolean with = or != only'
  return 'mismatch'
}

const TYPE_WORDS: Record<OperandType, string> = {
  number: 'a number',
  string: 'a text',
  timestamp: 'a timestamp',
  date: 'a date',
  boolean: 'a boolean',
  text: 'a lookup column (text)',
  null: 'null',
}

// ---------------------------------------------------------------- compile

interface Typed {
  type: OperandType
  read: Read
  /** the literal's value, for checks and for constant folding */
  literal?: string | boolean | null
  at: number
  /** how it is written, for messages */
  label: string
}

/**
 * Every problem of `text` against `scope`: one for a syntax error, else every unknown name and
 * every type error. Empty when it compiles.
 */
export function conditionProblems(text: string, scope: RuleScope): ConditionProblem[] {
  try {
    compile(text, scope)
    return []
  } catch (e) {
    if (e instanceof ConditionError) return [...e.problems]
    throw e
  }
}

/** Parses and type-checks `text` once; throws ConditionError listing its problems (with positions). */
export function compileCondition(text: string, scope: RuleScope): CompiledCondition {
  return compile(text, scope)
}

function compile(text: string, scope: RuleScope): CompiledCondition {
  let tree: Node
  try {
    tree = parse(text)
  } catch (e) {
    if (e instanceof Syntax) throw new ConditionError([{at: e.at, message: e.message}], text)
    throw e
  }
  const problems: ConditionProblem[] = []
  const windows: string[] = []
  const fail = (at: number, message: string): Test => {
    problems.push({at, message})
    return () => null
  }

  const operand = (n: Node): Typed | undefined => {
    if (n.kind === 'literal') {
      const v = n.value
      return {type: n.type, read: () => v, literal: v, at: n.at, label: n.type === 'string' ? `'${String(v)}'` : String(v)}
    }
    if (n.kind !== 'ref') return undefined
    if (n.owner === undefined) {
      const type = scope.fields[n.name]
      if (type === undefined) {
        const lookup = Object.entries(scope.lookups).find(([, cols]) => cols.includes(n.name))
        problems.push({
          at: n.at,
          message: lookup
            ? `"${n.name}" is a column of lookup ${lookup[0]}: write ${lookup[0]}.${n.name}`
            : `"${n.name}" is not a defined field (fields: ${Object.keys(scope.fields).join(', ') || 'none'}; a window aggregate or a lookup column is written <name>.<member>)`,
        })
        return {type: 'null', read: () => null, at: n.at, label: n.name}
      }
      const name = n.name
      return {type, read: (i) => i.record[name] ?? null, at: n.at, label: name}
    }
    const ref = `${n.owner}.${n.name}`
    const aggs = scope.windows[n.owner]
    if (aggs !== undefined) {
      const type = aggs[n.name]
      if (type === undefined) {
        problems.push({at: n.at, message: `"${ref}": "${n.owner}" has no "${n.name}" (it has ${Object.keys(aggs).join(', ')})`})
        return {type: 'null', read: () => null, at: n.at, label: ref}
      }
      if (!windows.includes(n.owner)) windows.push(n.owner)
      const [w, a] = [n.owner, n.name]
      return {type, read: (i) => i.windows?.[w]?.values[a] ?? null, at: n.at, label: ref}
    }
    const cols = scope.lookups[n.owner]
    if (cols !== undefined) {
      if (!cols.includes(n.name)) {
        problems.push({at: n.at, message: `"${ref}": "${n.owner}" has no "${n.name}" (it has ${cols.join(', ')})`})
        return {type: 'null', read: () => null, at: n.at, label: ref}
      }
      // enrich puts a lookup's columns on the record under their plain names (text or null)
      const col = n.name
      return {type: 'text', read: (i) => i.record[col] ?? null, at: n.at, label: ref}
    }
    problems.push({at: n.at, message: `"${ref}": "${n.owner}" is not a window or a lookup (windows: ${Object.keys(scope.windows).join(', ') || 'none'})`})
    return {type: 'null', read: () => null, at: n.at, label: ref}
  }

  /** a comparison of `left` and `right` (operands already typed) */
  const comparison = (op: CompareOp, at: number, l: Typed, r: Typed): Test => {
    const mode = modeOf(l.type, r.type, op)
    if (mode === 'mismatch') {
      const lit = [l, r].find((x) => x.literal !== undefined)
      const other = lit === l ? r : l
      const fix =
        other.type === 'number' && lit?.type === 'string'
          ? `; write the number without quotes`
          : (other.type === 'string' || other.type === 'date') && lit?.type === 'number'
            ? `; quote it ('${String(lit.literal)}')`
            : ''
      return fail(at, `${l.label} is ${TYPE_WORDS[l.type]} and ${r.label} is ${TYPE_WORDS[r.type]}: they do not compare${fix}`)
    }
    if (mode !== 'decimal' && mode !== 'instant' && mode !== 'text' && mode !== 'boolean' && mode !== 'null') return fail(at, mode)
    if (mode === 'null') return () => null
    // literals checked (and converted) once, here
    const convert = (x: Typed): Read | undefined => {
      if (x.literal === undefined) return undefined
      if (mode === 'instant') {
        const us = instantMicros(String(x.literal))
        if (us === undefined) {
          problems.push({at: x.at, message: `${x.label} is not an instant: write an ISO-8601 timestamp with its offset, e.g. '2026-11-20T09:15:00Z' or '2026-11-20T12:15:00+03:00'`})
        }
        return () => us
      }
      if (mode === 'text' && (l.type === 'date' || r.type === 'date') && !DATE_TEXT.test(String(x.literal))) {
        problems.push({at: x.at, message: `${x.label} is not a date: write yyyy-MM-dd, e.g. '2026-11-20'`})
      }
      return undefined
    }
    const lr = convert(l) ?? l.read
    const rr = convert(r) ?? r.read
    switch (mode) {
      case 'decimal':
        return (i) => {
          const a = lr(i)
          const b = rr(i)
          if (typeof a !== 'string' || typeof b !== 'string' || !PLAIN_DECIMAL.test(a) || !PLAIN_DECIMAL.test(b)) return null
          return holds(op, compareDecimals(a, b))
        }
      case 'instant': {
        const us = (v: unknown) => (typeof v === 'bigint' ? v : typeof v === 'string' ? instantMicros(v) : undefined)
        return (i) => {
          const a = us(lr(i))
          const b = us(rr(i))
          if (a === undefined || b === undefined) return null
          return holds(op, a < b ? -1 : a > b ? 1 : 0)
        }
      }
      case 'text':
        return (i) => {
          const a = lr(i)
          const b = rr(i)
          if (typeof a !== 'string' || typeof b !== 'string') return null
          return holds(op, a < b ? -1 : a > b ? 1 : 0)
        }
      case 'boolean':
        return (i) => {
          const a = lr(i)
          const b = rr(i)
          if (typeof a !== 'boolean' || typeof b !== 'boolean') return null
          return op === '=' ? a === b : a !== b
        }
    }
  }

  const condition = (n: Node): Test => {
    switch (n.kind) {
      case 'logic': {
        const a = condition(n.left)
        const b = condition(n.right)
        // SQL's three-valued logic: false and unknown is false, true or unknown is true
        return n.op === 'and'
          ? (i) => {
              const x = a(i)
              if (x === false) return false
              const y = b(i)
              return y === false ? false : x === true && y === true ? true : null
            }
          : (i) => {
              const x = a(i)
              if (x === true) return true
              const y = b(i)
              return y === true ? true : x === false && y === false ? false : null
            }
      }
      case 'not': {
        const a = condition(n.operand)
        return (i) => {
          const x = a(i)
          return x === null ? null : !x
        }
      }
      case 'compare': {
        const l = operand(n.left)
        const r = operand(n.right)
        if (!l || !r) return fail((l ? n.right : n.left).at, 'a comparison takes values, not conditions: put the condition in its own clause (a > 1 and b = 2)')
        return comparison(n.op, n.at, l, r)
      }
      case 'in': {
        const l = operand(n.left)
        if (!l) return fail(n.left.at, 'in takes a value on its left, not a condition')
        const tests = n.list.map((v) => comparison('=', v.at, l, operand(v)!))
        return (i) => {
          let unknown = false
          for (const t of tests) {
            const x = t(i)
            if (x === true) return !n.negated
            if (x === null) unknown = true
          }
          return unknown ? null : n.negated
        }
      }
      case 'literal':
      case 'ref': {
        const x = operand(n)!
        if (x.type === 'boolean') return (i) => (typeof x.read(i) === 'boolean' ? (x.read(i) as boolean) : null)
        if (x.type === 'null' && x.literal === undefined) return () => null // an unknown name: said already
        return fail(n.at, `${x.label} is ${TYPE_WORDS[x.type]}, not a condition: compare it (e.g. ${x.label} ${x.type === 'number' ? '> 0' : "= '...'"})`)
      }
    }
  }

  const test = condition(tree)
  if (problems.length > 0) throw new ConditionError(problems.sort((a, b) => a.at - b.at), text)
  return {text, windows, evaluate: test}
}
