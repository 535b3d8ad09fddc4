/**
 * Known-difference rules (`--rules known-differences.yaml`): differences the team has
 * understood are counted as explained, with the rule's name.
 *
 *   rules:                                   # or the list at the top level
 *     - name: legacy-rounds-half-down
 *       reason: the legacy system rounds half down, the stream half even
 *       when:
 *         kind: mismatch                     # mismatch | missing_in_right | extra_in_right |
 *                                            # duplicate_left | duplicate_right (or a list)
 *         column: amount                     # mismatch: the differing column;
 *                                            # missing/extra: the column the predicates read
 *         abs_diff: "<= 0.01"                # numbers: |left - right|; timestamps: seconds
 *         left: "> 0"                        # = != < <= > >= on numbers, or {equals, in, matches, is_null}
 *         right: {is_null: true}
 *     - name: legacy-drops-after-midnight
 *       reason: the legacy batch cuts at 23:59:59 Moscow time
 *       when:
 *         kind: extra_in_right
 *         column: event_time
 *         right_time_after: "23:59:59"       # time of day of the value, in `timezone`
 *         timezone: Europe/Moscow
 *
 * A difference is explained by the first rule (in file order) whose every condition holds.
 * `column` alone (no `kind`) limits a rule to the mismatches of that column: it never explains a
 * missing, extra or duplicate row unless `kind` names that kind. A `when` without any condition
 * (`when: {}`, or only `timezone`) is refused: it would explain every difference.
 * Values in predicates are compared as exact decimals (never floats), a side's value read as the
 * check reads that column (a pg: side's `1.500` is 1.5; a `--type x=decimal:,` column's `1,500` too),
 * else in any of the normalizer's styles. A key counts in `rules` once per rule that explained
 * one of its differences, when all of them were explained. Problems in the file are
 * SpecError with file:line:column.
 */
import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {isMap, isSeq, LineCounter, parseDocument} from 'yaml'
import {z} from 'zod'
import {SpecError} from '../errors.js'
import {isFail, parseDecimal, ZoneOffsets, type Fail} from '../normalize/index.js'
import {canonicalMicros, declaredDateReader, DEFAULT_DECIMAL_SCALE, toScaled, TIMESTAMP_FORMATS} from './tolerances.js'
import {DIFFERENCE_KINDS, type DifferenceKind} from './types.js'

const CMP = /^\s*(<=|>=|!=|=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/
const TIME = /^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$/

const comparison = z.string().regex(CMP, 'write an operator and a number, e.g. "<= 0.01" or "> 0"')
const valuePredicate = z.union([
  comparison,
  z
    .object({
      equals: z.string().optional(),
      in: z.array(z.string()).optional(),
      matches: z.string().optional(),
      is_null: z.boolean().optional(),
    })
    .strict(),
])
const kind = z.enum(DIFFERENCE_KINDS as [DifferenceKind, ...DifferenceKind[]])

export const RuleSchema = z
  .object({
    name: z.string().min(1),
    reason: z.string().min(1),
    when: z
      .object({
        kind: z.union([kind, z.array(kind).min(1)]).optional(),
        column: z.string().min(1).optional(),
        abs_diff: comparison.optional(),
        left: valuePredicate.optional(),
        right: valuePredicate.optional(),
        left_time_after: z.string().regex(TIME, 'write HH:mm or HH:mm:ss').optional(),
        left_time_before: z.string().regex(TIME, 'write HH:mm or HH:mm:ss').optional(),
        right_time_after: z.string().regex(TIME, 'write HH:mm or HH:mm:ss').optional(),
        right_time_before: z.string().regex(TIME, 'write HH:mm or HH:mm:ss').optional(),
        timezone: z.string().optional(),
      })
      .strict(),
  })
  .strict()

/** The conditions a rule's `when` can hold (timezone only qualifies the time conditions). */
const CONDITIONS = ['kind', 'column', 'abs_diff', 'left', 'right', 'left_time_after', 'left_time_before', 'right_time_after', 'right_time_before'] as const

export type RuleSpec = z.output<typeof RuleSchema>

/** What a rule looks at: one difference. */
export interface DifferenceFacts {
  kind: DifferenceKind
  /** the differing column (mismatch) */
  column: string | null
  /** column (left name) -> left value, right value (raw text), for the present side(s) */
  left: Record<string, string | null> | undefined
  right: Record<string, string | null> | undefined
  /** |l - r| of the differing column, decimal string, when numeric/timestamp */
  absDiff: string | undefined
  /** the business day of the check (--date), or null */
  date: string | null
  /**
   * A side's value of a column as an exact number (at DEFAULT_DECIMAL_SCALE), read as the check
   * reads that side (a pg: side's "1.500" is 1.5, a `--type x=decimal:,` column's "1,500" too);
   * undefined when the check has no reading of it (the predicate then reads it in any style)
   */
  number?: (side: 'left' | 'right', column: string, text: string) => bigint | undefined
}

export interface CompiledRule {
  name: string
  reason: string
  matches(f: DifferenceFacts): boolean
}

function compareNumber(op: string, a: bigint, b: bigint): boolean {
  switch (op) {
    case '<':
      return a < b
    case '<=':
      return a <= b
    case '>':
      return a > b
    case '>=':
      return a >= b
    case '=':
      return a === b
    default:
      return a !== b
  }
}

/**
 * A decimal text as an integer at DEFAULT_DECIMAL_SCALE. `separator` '.' for texts written with a
 * decimal point (a rule's bound, the difference parity computed): without it `1.000` and `1.234`
 * would be read as ambiguous grouping (one thousand?) and match nothing. A side's value as the
 * source gave it is read in any of the normalizer's styles.
 */
function scaled(text: string, separator?: '.'): bigint | undefined {
  const d = parseDecimal(text, {scale: DEFAULT_DECIMAL_SCALE, precision: 38, ...(separator ? {decimalSeparator: separator} : {})})
  return isFail(d) ? undefined : toScaled(d)
}

/** The bound of a comparison (`<= 0.01`) that cannot be read; parseRules reports it at its place. */
class BadBound extends Error {}

/** How a side's value is read as a number: the check's own reading of it (DifferenceFacts.number), if any. */
type NumberReader = ((text: string) => bigint | undefined) | undefined

function compileCmp(text: string, values: 'computed' | 'source'): (v: string | null | undefined, read?: NumberReader) => boolean {
  const m = CMP.exec(text)!
  const op = m[1]!
  const bound = scaled(m[2]!, '.')
  if (bound === undefined) throw new BadBound(`${m[2]!} has more than ${DEFAULT_DECIMAL_SCALE} decimals`)
  return (v, read) => {
    if (v === null || v === undefined) return false
    const x = values === 'computed' ? scaled(v, '.') : (read?.(v) ?? scaled(v))
    return x !== undefined && compareNumber(op, x, bound)
  }
}

function compileValue(p: z.output<typeof valuePredicate>): (v: string | null | undefined, read?: NumberReader) => boolean {
  if (typeof p === 'string') return compileCmp(p, 'source')
  const re = p.matches !== undefined ? new RegExp(p.matches) : undefined
  return (v) => {
    if (v === undefined) return false
    if (p.is_null !== undefined && (v === null || v === '') !== p.is_null) return false
    if (p.equals !== undefined && v !== p.equals) return false
    if (p.in !== undefined && (v === null || !p.in.includes(v))) return false
    if (re !== undefined && (v === null || !re.test(v))) return false
    return true
  }
}

function secondsOfDay(hhmmss: string): number {
  const [h, m, s = '0'] = hhmmss.split(':')
  return Number(h) * 3600 + Number(m) * 60 + Number(s)
}

/**
 * `*_time_after: "23:59:59"`: with a business day (--date), the value's local date-time in
 * `timezone` is after that time of the business day (so the next day's records match); without
 * one, its local time of day is after it. `*_time_before` likewise (strictly before).
 */
function compileTime(
  after: string | undefined,
  before: string | undefined,
  timezone: string,
  formatsOf: RuleOptions['formatsOf'],
): ((v: string | null | undefined, date: string | null, column: string) => boolean) | undefined {
  if (after === undefined && before === undefined) return undefined
  // a value without an offset (a pg: timestamp without zone, a legacy file's local time) is a
  // wall-clock reading in the rule's zone; one with an offset is its instant either way. It is
  // read in the formats the check reads its column in (the --spec field's), else TIMESTAMP_FORMATS
  const readers = new Map<string, (text: string, kind: 'timestamp') => string | Fail>()
  const readerOf = (column: string) => {
    let r = readers.get(column)
    if (r === undefined) readers.set(column, (r = declaredDateReader(formatsOf?.(column), TIMESTAMP_FORMATS, timezone)))
    return r
  }
  const zone = new ZoneOffsets(timezone)
  const a = after === undefined ? undefined : secondsOfDay(after)
  const b = before === undefined ? undefined : secondsOfDay(before)
  return (v, date, column) => {
    if (v === null || v === undefined) return false
    const iso = readerOf(column)(v.trim(), 'timestamp')
    if (isFail(iso)) return false
    const ms = Date.parse(iso)
    // the microseconds within that ms: 23:59:59.000001 is after 23:59:59
    const us = canonicalMicros(iso)
    const local = ms + zone.offsetAt(ms) * 60_000
    if (date !== null) {
      const day = Date.parse(`${date}T00:00:00Z`)
      // strictly after that time, fractions of a second included (23:59:59.500 is after 23:59:59), as without a day
      if (a !== undefined && !(local > day + a * 1000 || (local === day + a * 1000 && us > 0))) return false
      if (b !== undefined && !(local < day + b * 1000)) return false
      return true
    }
    const sod = Math.floor((((local % 86_400_000) + 86_400_000) % 86_400_000) / 1000)
    const fracMs = ((local % 1000) + 1000) % 1000
    if (a !== undefined && !(sod > a || (sod === a && (fracMs > 0 || us > 0)))) return false
    if (b !== undefined && !(sod < b)) return false
    return true
  }
}

/** What a rule knows of the check it runs in. */
export interface RuleOptions {
  /**
   * The date formats the check reads a column (left name) in: the --spec field's `formats`, so
   * that a time rule reads a legacy `MM/dd/yyyy HH:mm` as the pipeline does; undefined: the
   * default TIMESTAMP_FORMATS.
   */
  formatsOf?: (column: string) => readonly string[] | undefined
}

export function compileRule(r: RuleSpec, options: RuleOptions = {}): CompiledRule {
  const w = r.when
  const kinds = w.kind === undefined ? undefined : Array.isArray(w.kind) ? w.kind : [w.kind]
  const absDiff = w.abs_diff !== undefined ? compileCmp(w.abs_diff, 'computed') : undefined
  const left = w.left !== undefined ? compileValue(w.left) : undefined
  const right = w.right !== undefined ? compileValue(w.right) : undefined
  const tz = w.timezone ?? 'UTC'
  const leftTime = compileTime(w.left_time_after, w.left_time_before, tz, options.formatsOf)
  const rightTime = compileTime(w.right_time_after, w.right_time_before, tz, options.formatsOf)
  const col = w.column
  return {
    name: r.name,
    reason: r.reason,
    matches(f) {
      if (kinds && !kinds.includes(f.kind)) return false
      if (col !== undefined) {
        // the column's mismatches; other kinds only when the rule names them (`column` then names what the predicates read)
        if (f.kind === 'mismatch' ? f.column !== col : kinds === undefined) return false
      }
      if (absDiff && !absDiff(f.absDiff)) return false
      const valueOf = (side: Record<string, string | null> | undefined): string | null | undefined => {
        const c = col ?? f.column
        return side === undefined || c === null ? undefined : side[c]
      }
      const reader = (side: 'left' | 'right'): NumberReader => {
        const c = col ?? f.column
        return f.number === undefined || c === null ? undefined : (t) => f.number!(side, c, t)
      }
      if (left && !left(valueOf(f.left), reader('left'))) return false
      if (right && !right(valueOf(f.right), reader('right'))) return false
      // valueOf is undefined (no match) without a column, so `col ?? f.column` is one when a time is read
      if (leftTime && !leftTime(valueOf(f.left), f.date, (col ?? f.column)!)) return false
      if (rightTime && !rightTime(valueOf(f.right), f.date, (col ?? f.column)!)) return false
      return true
    },
  }
}

/** Parses and checks rules text; SpecError (file:line:column) for anything wrong. */
export function parseRules(text: string, file: string, options: RuleOptions = {}): CompiledRule[] {
  const lc = new LineCounter()
  const doc = parseDocument(text, {lineCounter: lc})
  const at = (path: (string | number)[], message: string): SpecError => {
    let node: unknown = doc.getIn(path, true)
    for (let p = path.slice(); node === undefined && p.length > 0; p = p.slice(0, -1)) node = doc.getIn(p.slice(0, -1), true)
    const range = (node as {range?: [number, number]} | undefined)?.range
    const pos = range ? lc.linePos(range[0]) : undefined
    return new SpecError({file, ...(pos ? {line: pos.line, column: pos.col} : {})}, `${path.join('.') || 'rules'}: ${message}`, {
      hint: 'each rule is {name, reason, when: {kind, column, abs_diff, left, right, left_time_after, right_time_after, timezone}}; see src/parity/rules.ts',
    })
  }
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    const pos = lc.linePos(e.pos[0])
    throw new SpecError({file, line: pos.line, column: pos.col}, e.message.split('\n')[0]!, {hint: 'fix the YAML syntax'})
  }
  const data: unknown = doc.toJS()
  const root = doc.contents
  const prefix: (string | number)[] = isMap(root) ? ['rules'] : []
  const list = isMap(root) ? (data as {rules?: unknown}).rules : data
  if (!Array.isArray(list) || (!isSeq(root) && !isSeq(doc.getIn(['rules'], true)))) throw at([], 'expected a list of rules (or `rules:` with a list)')
  const names = new Set<string>()
  return list.map((item, i) => {
    const parsed = RuleSchema.safeParse(item)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!
      const path = [...prefix, i, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))]
      throw at(path, issue.message)
    }
    if (names.has(parsed.data.name)) throw at([...prefix, i, 'name'], `rule name "${parsed.data.name}" is used twice`)
    names.add(parsed.data.name)
    const conditions = Object.entries(parsed.data.when).filter(([k, v]) => k !== 'timezone' && v !== undefined)
    if (conditions.length === 0) throw at([...prefix, i, 'when'], `a rule needs at least one condition (${CONDITIONS.join(', ')}): without one it would explain every difference`)
    if (parsed.data.when.timezone !== undefined) {
      try {
        new ZoneOffsets(parsed.data.when.timezone)
      } catch (e) {
        throw at([...prefix, i, 'when', 'timezone'], (e as Error).message)
      }
    }
    for (const side of ['left', 'right'] as const) {
      const p = parsed.data.when[side]
      if (p === undefined || typeof p !== 'object' || p.matches === undefined) continue
      try {
        new RegExp(p.matches)
      } catch (e) {
        throw at([...prefix, i, 'when', side, 'matches'], (e as Error).message)
      }
    }
    try {
      return compileRule(parsed.data, options)
    } catch (e) {
      if (e instanceof BadBound) throw at([...prefix, i, 'when'], e.message)
      throw e
    }
  })
}

export async function loadRules(path: string, options: RuleOptions = {}): Promise<CompiledRule[]> {
  return (await loadRulesFile(path, options)).rules
}

/**
 * A rules file read once: its rules, and its bytes' SHA-256 and text, which the ledger keeps with
 * the run (the file may be edited after the run; the evidence must say which rules explained what).
 */
export async function loadRulesFile(path: string, options: RuleOptions = {}): Promise<{rules: CompiledRule[]; sha256: string; text: string}> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (e) {
    throw new SpecError({file: path}, `cannot read the rules: ${(e as Error).message}`, {cause: e, hint: 'check the path given to --rules'})
  }
  const text = bytes.toString('utf8')
  return {rules: parseRules(text, path, options), sha256: createHash('sha256').update(bytes).digest('hex'), text}
}
