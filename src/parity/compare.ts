/**
 * The pure core of parity (after data-diff's `diff_sets`): it is told, key by key, what each
 * side holds, and counts. It knows nothing of files, SQL or order of arrival; the strategies
 * (./merge.ts streams two sorted sources, ./sql-pushdown.ts lets PostgreSQL join and sends
 * only the differences) feed it, and `finish()` returns frozen stats.
 *
 * Per key:
 *   pair(key, l, r)        once on each side: every column compared (./tolerances.ts)
 *   leftOnly / rightOnly   missing_in_right / extra_in_right
 *   duplicate(key, ls, rs) more than one row on a side: reported, never collapsed; with no
 *                          row on the other side, missing_in_right / extra_in_right as well;
 *                          with one, a mismatch too when it pairs equal with none of them
 *   addMatched(n)          n keys known equal without their values (push-down)
 * Every difference is offered to the known-difference rules (./rules.ts); a key is explained
 * when all of its differences are.
 *
 * Samples are the N smallest differences by (key, kind, column), so that every strategy,
 * whatever order its rows arrive in, reports the same ones.
 */
import {isFail, maskValue, parseDecimal} from '../normalize/index.js'
import type {CompiledRule, DifferenceFacts} from './rules.js'
import {compareValues, DEFAULT_DECIMAL_SCALE, fracDigits, isNumericType, notANumber, toScaled, type ColumnPlan} from './tolerances.js'
import {DIFFERENCE_KINDS, type ColumnStats, type DifferenceKind, type ParityCheckResult, type ParitySample, type RowValues, type Strategy} from './types.js'

export interface ComparePlan {
  /** key columns, left names */
  keyColumns: string[]
  /** key columns, right names */
  rightKeyColumns: string[]
  columns: ColumnPlan[]
  rules: CompiledRule[]
  /** how many samples to keep */
  samples: number
  /** the business day of the check (--date), for rules on times */
  date?: string | null
  /** keep up to this many unexplained missing keys for root-cause lookup (0: none) */
  collectMissing?: number
  /** per key column: the spec's field is `sensitive` (its values masked in samples) */
  sensitiveKeys?: boolean[]
  /** without --columns: columns of a side with no column of that name on the other, not compared (plan.ts unpairedColumns) */
  notCompared?: {left: string[]; right: string[]}
  /** per side: its values write decimals with a "." (pg:, kafka:), so rules read "1.500" as 1.5, not as ambiguous grouping */
  decimalPoint?: {left: boolean; right: boolean}
  /** per key column: `--normalize <key>=trim` (merge only: plan.ts, check.ts); present when one is */
  trimKeys?: boolean[]
  /** with --spec: the string columns (left names) the spec's `trim` / `empty_as_null` normalize (plan.ts); present when any */
  specNormalized?: Record<string, string[]>
}

/** A sensitive value as samples show it (maskValue: a card number keeps its first and last four digits). */
function masked(v: string | null): string | null {
  return v === null ? null : maskValue(v)
}

/** Code-point order of two strings (= UTF-8 byte order = PostgreSQL's COLLATE "C"). */
export function compareText(a: string, b: string): number {
  if (a === b) return 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) {
      // surrogates (U+10000..) sort after U+E000..U+FFFF in code-point order
      const xs = x >= 0xd800 && x <= 0xdfff
      const ys = y >= 0xd800 && y <= 0xdfff
      if (xs !== ys && (x >= 0xe000 || y >= 0xe000)) return xs ? 1 : -1
      return x - y
    }
  }
  return a.length - b.length
}

/** compareText of a.slice(as, ae) and b.slice(bs, be), without the slices. */
export function compareTextRange(a: string, as: number, ae: number, b: string, bs: number, be: number): number {
  const la = ae - as
  const lb = be - bs
  const n = la < lb ? la : lb
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(as + i)
    const y = b.charCodeAt(bs + i)
    if (x !== y) {
      const xs = x >= 0xd800 && x <= 0xdfff
      const ys = y >= 0xd800 && y <= 0xdfff
      if (xs !== ys && (x >= 0xe000 || y >= 0xe000)) return xs ? 1 : -1
      return x - y
    }
  }
  return la - lb
}

/** a.slice(as, ae) === b.slice(bs, be), without the slices. */
export function equalTextRange(a: string, as: number, ae: number, b: string, bs: number, be: number): boolean {
  const n = ae - as
  if (n !== be - bs) return false
  for (let i = 0; i < n; i++) if (a.charCodeAt(as + i) !== b.charCodeAt(bs + i)) return false
  return true
}

export function compareKeys(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) {
    const c = compareText(a[i]!, b[i]!)
    if (c !== 0) return c
  }
  return 0
}

/** A sample's explanation: `rule <name>: <reason>`, or null. */
function explanationOf(r: CompiledRule | undefined): string | null {
  return r === undefined ? null : `rule ${r.name}: ${r.reason}`
}

/** Code-point order of two rows' values (null first), for a choice that does not depend on arrival order. */
function compareValuesText(a: RowValues, b: RowValues): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? null
    const y = b[i] ?? null
    if (x === y) continue
    if (x === null) return -1
    if (y === null) return 1
    const c = compareText(x, y)
    if (c !== 0) return c
  }
  return 0
}

/** A mismatch sample's `unreadable` fields: a decimal/integer value that is not a number (no numeric difference was computed); none otherwise. */
function unreadableSample(c: ColumnPlan, lv: string | null, rv: string | null, absDiffRank: bigint | undefined): Pick<ParitySample, 'unreadable' | 'unreadable_reason'> {
  const n = absDiffRank === undefined ? notANumber(c, lv, rv) : undefined
  return n ? {unreadable: n.side, unreadable_reason: n.reason} : {}
}

interface SampleEntry {
  key: string[]
  kindIx: number
  colIx: number
  sample: ParitySample
}

export class ParityCore {
  private leftRows = 0
  private rightRows = 0
  private matched = 0
  private mismatched = 0
  private missing = 0
  private extra = 0
  private dupLeft = 0
  private dupRight = 0
  private explained = 0
  private unexplained = 0
  /** records a side's reader could not read (broken line, unreadable business day): unexplained differences */
  private readonly unreadable = {left: 0, right: 0}
  private readonly columnStats: {mismatches: number; explained: number; max: bigint; maxScale: number; maxText: string | null}[]
  private readonly ruleCounts = new Map<string, number>()
  private samplesKept: SampleEntry[] = []
  /** unexplained keys missing on the right, for root-cause attribution */
  readonly missingKeys: string[][] = []
  missingKeysDropped = 0

  /** whether the plan has sensitive columns or keys: samples are masked */
  private readonly masks: boolean

  constructor(readonly plan: ComparePlan) {
    this.columnStats = plan.columns.map(() => ({mismatches: 0, explained: 0, max: -1n, maxScale: DEFAULT_DECIMAL_SCALE, maxText: null}))
    this.masks = plan.columns.some((c) => c.sensitive) || (plan.sensitiveKeys?.some((s) => s) ?? false)
    for (const c of plan.columns) if (isNumericType(c.type)) this.numericColumns.set(c.name, c)
  }

  get keysSeen(): number {
    // a repeated key the other side lacks is counted in missing (extra) as well: once here
    return this.matched + this.mismatched + this.missing + this.extra + this.dupKeys - this.dupAbsent - this.dupMismatched
  }
  private dupKeys = 0
  /** repeated keys the other side has no row of (also counted in missing or extra) */
  private dupAbsent = 0
  /** repeated keys whose single row on the other side pairs equal with none of them (also counted in mismatched) */
  private dupMismatched = 0

  private rowObject(values: RowValues, key: string[]): Record<string, string | null> {
    const o: Record<string, string | null> = {}
    this.plan.keyColumns.forEach((k, i) => (o[k] = key[i]!))
    this.plan.columns.forEach((c, i) => (o[c.name] = values[i] ?? null))
    return o
  }

  /** A row as a sample shows it: the spec's sensitive values masked (rules saw them as they are). */
  private shownRow(row: Record<string, string | null>): Record<string, string | null> {
    if (!this.masks) return row
    const o = {...row}
    this.plan.keyColumns.forEach((k, i) => {
      if (this.plan.sensitiveKeys?.[i]) o[k] = masked(o[k] ?? null)
    })
    for (const c of this.plan.columns) if (c.sensitive) o[c.name] = masked(o[c.name] ?? null)
    return o
  }

  private keyObject(key: string[]): Record<string, string | null> {
    const o: Record<string, string | null> = {}
    this.plan.keyColumns.forEach((k, i) => (o[k] = this.plan.sensitiveKeys?.[i] ? masked(key[i]!) : key[i]!))
    return o
  }

  /** numeric compared columns by (left) name: rules read their values as the comparison does */
  private readonly numericColumns = new Map<string, ColumnPlan>()

  /** DifferenceFacts.number: a side's value of a column as the check reads it, exact, at DEFAULT_DECIMAL_SCALE */
  private readonly numberOf = (side: 'left' | 'right', column: string, text: string): bigint | undefined => {
    const c = this.numericColumns.get(column)
    if (c !== undefined) {
      const v = side === 'left' ? c.convert(text) : c.convertRight(text)
      // a value with more digits than the rules' scale has no reading here (never cut off: 0.0000000000001 is not 0)
      if (typeof v === 'string') return c.type === 'integer' ? BigInt(v) * 10n ** BigInt(DEFAULT_DECIMAL_SCALE) : fracDigits(v) > DEFAULT_DECIMAL_SCALE ? undefined : toScaled(v)
    }
    if (this.plan.decimalPoint?.[side]) {
      const d = parseDecimal(text, {scale: DEFAULT_DECIMAL_SCALE, precision: 38, decimalSeparator: '.'})
      if (!isFail(d)) return toScaled(d)
    }
    return undefined
  }

  /** Offers a difference to the rules; returns the rule that explains it, or undefined. */
  private explain(facts: DifferenceFacts): CompiledRule | undefined {
    facts.number = this.numberOf
    for (const r of this.plan.rules) if (r.matches(facts)) return r
    return undefined
  }

  /** A key is settled: each rule that explained its differences counts the key once, when all of them were explained. */
  private settleKey(explainedBy: CompiledRule[] | CompiledRule | undefined, allExplained: boolean): void {
    if (allExplained) {
      const rs = explainedBy === undefined ? [] : Array.isArray(explainedBy) ? explainedBy : [explainedBy]
      for (const r of new Set(rs)) this.ruleCounts.set(r.name, (this.ruleCounts.get(r.name) ?? 0) + 1)
    }
    this.settle(allExplained)
  }

  private sample(key: string[], kind: DifferenceKind, colIx: number, s: Omit<ParitySample, 'key' | 'kind'>): void {
    const max = this.plan.samples
    if (max <= 0) return
    this.samplesKept.push({key, kindIx: DIFFERENCE_KINDS.indexOf(kind), colIx, sample: {key: this.keyObject(key), kind, ...s}})
    if (this.samplesKept.length >= max * 2 + 64) this.trimSamples()
  }

  private trimSamples(): void {
    this.samplesKept.sort((a, b) => compareKeys(a.key, b.key) || a.kindIx - b.kindIx || a.colIx - b.colIx)
    this.samplesKept.length = Math.min(this.samplesKept.length, this.plan.samples)
  }

  private settle(allExplained: boolean): void {
    if (allExplained) this.explained++
    else this.unexplained++
  }

  pair(key: string[], l: RowValues, r: RowValues): void {
    this.leftRows++
    this.rightRows++
    const d = this.compareRow(key, l, r)
    if (!d.differs) {
      this.matched++
      return
    }
    this.mismatched++
    this.settleKey(d.by, d.allExplained)
  }

  /** How many compared columns of l and r differ (under tolerances and normalizations), nothing counted. */
  private differingColumns(l: RowValues, r: RowValues): number {
    const cols = this.plan.columns
    let n = 0
    for (let i = 0; i < cols.length; i++) {
      const c = cols[i]!
      const lv = l[i] ?? null
      const rv = r[i] ?? null
      if (lv === rv && c.tolerance === undefined) continue
      if (!compareValues(c, lv, rv).equal) n++
    }
    return n
  }

  /** Every column of l and r compared: each difference counted in its column, offered to the rules and sampled. */
  private compareRow(key: string[], l: RowValues, r: RowValues): {differs: boolean; allExplained: boolean; by: CompiledRule[] | undefined} {
    const cols = this.plan.columns
    let differs = false
    let allExplained = true
    let lo: Record<string, string | null> | undefined
    let ro: Record<string, string | null> | undefined
    let by: CompiledRule[] | undefined
    for (let i = 0; i < cols.length; i++) {
      const c = cols[i]!
      const lv = l[i] ?? null
      const rv = r[i] ?? null
      if (lv === rv && c.tolerance === undefined) continue
      const cmp = compareValues(c, lv, rv)
      if (cmp.equal) continue
      differs = true
      const st = this.columnStats[i]!
      st.mismatches++
      if (cmp.absDiffRank !== undefined) {
        // ranks at different scales (a value with more than DEFAULT_DECIMAL_SCALE digits) compared exactly
        const scale = cmp.absDiffScale ?? DEFAULT_DECIMAL_SCALE
        const greater = scale === st.maxScale ? cmp.absDiffRank > st.max : cmp.absDiffRank * 10n ** BigInt(st.maxScale) > st.max * 10n ** BigInt(scale)
        if (greater) {
          st.max = cmp.absDiffRank
          st.maxScale = scale
          st.maxText = cmp.absDiff ?? null
        }
      }
      lo ??= this.rowObject(l, key)
      ro ??= this.rowObject(r, key)
      const rule = this.explain({kind: 'mismatch', column: c.name, left: lo, right: ro, absDiff: cmp.absDiff, date: this.plan.date ?? null})
      if (rule !== undefined) {
        st.explained++
        by ??= []
        by.push(rule)
      } else allExplained = false
      this.sample(key, 'mismatch', i, {
        column: c.name,
        left: c.sensitive ? masked(lv) : lv,
        right: c.sensitive ? masked(rv) : rv,
        explanation: explanationOf(rule),
        // a value that is not a number of the column's type: an auditor must not read it as a numeric difference
        ...unreadableSample(c, lv, rv, cmp.absDiffRank),
      })
    }
    return {differs, allExplained, by}
  }

  leftOnly(key: string[], l: RowValues): void {
    this.leftRows++
    this.missing++
    const lo = this.rowObject(l, key)
    const rule = this.explain({kind: 'missing_in_right', column: null, left: lo, right: undefined, absDiff: undefined, date: this.plan.date ?? null})
    const explanation = explanationOf(rule)
    this.settleKey(rule, rule !== undefined)
    if (explanation === null && this.plan.collectMissing) {
      if (this.missingKeys.length < this.plan.collectMissing) this.missingKeys.push(key)
      else this.missingKeysDropped++
    }
    this.sample(key, 'missing_in_right', -1, {column: null, left: this.shownRow(lo), right: null, explanation})
  }

  rightOnly(key: string[], r: RowValues): void {
    this.rightRows++
    this.extra++
    const ro = this.rowObject(r, key)
    const rule = this.explain({kind: 'extra_in_right', column: null, left: undefined, right: ro, absDiff: undefined, date: this.plan.date ?? null})
    const explanation = explanationOf(rule)
    this.settleKey(rule, rule !== undefined)
    this.sample(key, 'extra_in_right', -1, {column: null, left: null, right: this.shownRow(ro), explanation})
  }

  /** A key with more than one row on at least one side. */
  duplicate(key: string[], lefts: RowValues[], rights: RowValues[]): void {
    this.leftRows += lefts.length
    this.rightRows += rights.length
    this.dupKeys++
    let allExplained = true
    const by: CompiledRule[] = []
    const lo = lefts[0] ? this.rowObject(lefts[0], key) : undefined
    const ro = rights[0] ? this.rowObject(rights[0], key) : undefined
    for (const [kind, n] of [
      ['duplicate_left', lefts.length],
      ['duplicate_right', rights.length],
    ] as const) {
      if (n < 2) continue
      if (kind === 'duplicate_left') this.dupLeft++
      else this.dupRight++
      const rule = this.explain({kind, column: null, left: lo, right: ro, absDiff: undefined, date: this.plan.date ?? null})
      if (rule === undefined) allExplained = false
      else by.push(rule)
      this.sample(key, kind, -1, {column: null, left: lefts.length, right: rights.length, explanation: explanationOf(rule)})
    }
    // Repeated on one side and absent from the other: the key is missing (or extra) as well, a
    // difference of its own that a rule for the repetition does not explain. It was counted as a
    // duplicate only, so that a rule for legacy double postings passed a key the stream never wrote.
    const absent: DifferenceKind | undefined = rights.length === 0 && lo ? 'missing_in_right' : lefts.length === 0 && ro ? 'extra_in_right' : undefined
    if (absent !== undefined) {
      this.dupAbsent++
      if (absent === 'missing_in_right') this.missing++
      else this.extra++
      const rule = this.explain({kind: absent, column: null, left: lo, right: ro, absDiff: undefined, date: this.plan.date ?? null})
      if (rule === undefined) allExplained = false
      else by.push(rule)
      if (absent === 'missing_in_right' && rule === undefined && this.plan.collectMissing) {
        if (this.missingKeys.length < this.plan.collectMissing) this.missingKeys.push(key)
        else this.missingKeysDropped++
      }
      const row = this.shownRow((absent === 'missing_in_right' ? lo : ro)!)
      this.sample(key, absent, -1, {column: null, left: absent === 'missing_in_right' ? row : null, right: absent === 'extra_in_right' ? row : null, explanation: explanationOf(rule)})
    }
    // One row on one side, several on the other: the repetition is what a duplicate rule
    // explains, not the values. The single row is compared with each row of the other side;
    // when none pairs equal, the key has the differences of the closest row as well (fewest
    // differing columns, ties to the smallest values in code-point order, so that every
    // strategy, whatever order its rows arrive in, picks the same one): counted, sampled and
    // offered to the rules like any mismatch. A duplicate rule hid them: legacy `2,20` twice
    // against the stream's `2,999` was 100%.
    // Several rows on both sides stay unpaired: which row stands for which is not known (n x m
    // pairings, none of them the right one by any rule of the data), so a comparison would
    // report differences of rows that may not correspond; the repetition is reported on both
    // sides, and a rule must explain both for the key to pass.
    if (lefts.length === 1 || rights.length === 1) {
      const one = lefts.length === 1 ? lefts[0]! : rights[0]!
      const many = lefts.length === 1 ? rights : lefts
      let best: RowValues | undefined
      let bestN = Infinity
      for (const row of many) {
        const n = lefts.length === 1 ? this.differingColumns(one, row) : this.differingColumns(row, one)
        if (n < bestN || (n === bestN && best !== undefined && compareValuesText(row, best) < 0)) {
          best = row
          bestN = n
        }
        if (n === 0) break
      }
      if (best !== undefined && bestN > 0) {
        const d = lefts.length === 1 ? this.compareRow(key, one, best) : this.compareRow(key, best, one)
        this.mismatched++
        this.dupMismatched++
        if (!d.allExplained) allExplained = false
        if (d.by) by.push(...d.by)
      }
    }
    this.settleKey(by, allExplained)
  }

  /**
   * `n` records of a side that could not be read (a broken CSV line, a business day that cannot
   * be read under --date): each is an unexplained difference, in the denominator of parity_pct,
   * since nobody knows whether the other side has it.
   */
  addUnreadable(side: 'left' | 'right', n: number): void {
    if (n <= 0) return
    this.unreadable[side] += n
    this.unexplained += n
  }

  /** `n` keys found equal on both sides without their values being sent (push-down). */
  addMatched(n: number): void {
    this.matched += n
    this.leftRows += n
    this.rightRows += n
  }

  /** Samples so far (sorted), for attribution to annotate before finish. */
  currentSamples(): ParitySample[] {
    this.trimSamples()
    return this.samplesKept.map((s) => s.sample)
  }

  finish(meta: {digests: {left: string; right: string}; strategy: Strategy; elapsedMs: number; date: string | null; rootCauses?: Record<string, number>}): ParityCheckResult {
    this.trimSamples()
    const unreadable = this.unreadable.left + this.unreadable.right
    const union = this.keysSeen + unreadable
    const columns: Record<string, ColumnStats> = {}
    this.plan.columns.forEach((c, i) => {
      const s = this.columnStats[i]!
      columns[c.name] = Object.freeze({mismatches: s.mismatches, explained: s.explained, max_abs_diff: s.maxText})
    })
    const rules: Record<string, number> = {}
    for (const r of this.plan.rules) if (this.ruleCounts.has(r.name)) rules[r.name] = this.ruleCounts.get(r.name)!
    // truncated to 4 decimals in integers: in doubles 2476/2500 gave 99.0399, not 99.04
    const pct = union === 0 ? 100 : Number((BigInt(this.matched + this.explained) * 1_000_000n) / BigInt(union)) / 10_000
    const result: ParityCheckResult = {
      left_rows: this.leftRows,
      right_rows: this.rightRows,
      matched: this.matched,
      mismatched: this.mismatched,
      missing_in_right: this.missing,
      extra_in_right: this.extra,
      duplicate_keys_left: this.dupLeft,
      duplicate_keys_right: this.dupRight,
      explained: this.explained,
      unexplained: this.unexplained,
      parity_pct: pct,
      ...(union === 0 ? {empty: true as const} : {}),
      ...(unreadable > 0 ? {unreadable: Object.freeze({...this.unreadable})} : {}),
      columns: Object.freeze(columns),
      ...(this.plan.specNormalized ? {spec_normalized: Object.freeze(Object.fromEntries(Object.entries(this.plan.specNormalized).map(([c, n]) => [c, [...n]])))} : {}),
      ...(this.plan.notCompared ? {not_compared: Object.freeze({left: [...this.plan.notCompared.left], right: [...this.plan.notCompared.right]})} : {}),
      samples: Object.freeze(this.samplesKept.map((s) => Object.freeze(s.sample))) as ParitySample[],
      digests: Object.freeze({...meta.digests}),
      strategy: meta.strategy,
      elapsed_ms: meta.elapsedMs,
      rules: Object.freeze(rules),
      ...(meta.rootCauses ? {root_causes: Object.freeze({...meta.rootCauses})} : {}),
      date: meta.date,
    }
    return Object.freeze(result)
  }
}
