/**
 * From the options of a check (flags, as plain data) and the column names of both sides to
 * the plan the core runs: key columns on each side, compared columns with their types,
 * tolerances, string normalization and null handling, and the rules.
 *
 * Which columns are compared: `--columns` (left names), else every left column that is not
 * a key and exists on the right (under its `--map` name). Types come from `--type`, else from
 * the pipeline spec's field of that name (`--spec`: the same normalizers as the pipeline),
 * else `decimal` when both sides are pg: columns of exact numbers and one of them is `numeric`
 * or `money` (numeric(12,2) 10.50 against numeric(18,4) 10.5000 is one amount, not a mismatch;
 * money is read as numeric, whatever lc_monetary prints), `decimal`
 * when the column has a numeric tolerance, `timestamp` with a seconds tolerance, and `string`
 * otherwise.
 */
import {UsageError} from '../errors.js'
import type {FieldSpec, PipelineSpec} from '../config/spec.js'
import type {ComparePlan} from './compare.js'
import type {CompiledRule} from './rules.js'
import {columnConverter, parseNormalization, parseTolerance, parseTypeSpec, type ColumnPlan, type ColumnTypeSpec, type StringNormalization} from './tolerances.js'

const NUMERIC_OID = 1700
/** money: every pg: read path reads it as numeric (legacy-adapters/pg.ts MONEY_CASTS) */
const MONEY_OID = 790
/** int2, int4, int8 */
const INTEGER_OIDS = new Set([21, 23, 20])

/**
 * Two pg: columns of exact numbers, one of them `numeric` or `money`: their values are amounts
 * whatever their scales, compared as decimals (money 10.50 against numeric(18,4) 10.5000). Two
 * integer columns print alike as text already; floats (real, double precision) are not exact and
 * stay text unless --type says otherwise.
 */
function exactNumbers(left: number | undefined, right: number | undefined): boolean {
  if (left === undefined || right === undefined) return false
  const decimal = (oid: number) => oid === NUMERIC_OID || oid === MONEY_OID
  const exact = (oid: number) => decimal(oid) || INTEGER_OIDS.has(oid)
  return exact(left) && exact(right) && (decimal(left) || decimal(right))
}

export interface ParityOptions {
  left: string
  right: string
  /** key columns, left names */
  key: string[]
  /** compared columns, left names (default: all common ones) */
  columns?: string[]
  /** left name -> right name */
  map?: Record<string, string>
  /** column -> "0.01" | "0.5%" | "2s" */
  tolerance?: Record<string, string>
  /** column -> "decimal" | "decimal:," | "integer" | "timestamp[:zone]" | "date" | "boolean" | "string" */
  types?: Record<string, string>
  /** column (or "*") -> "trim,lower,nfc" */
  normalize?: Record<string, string>
  /** columns where null equals "" (or ["*"]) */
  nullEqualsEmpty?: string[]
  rulesFile?: string
  /** yyyy-MM-dd: limit both sides to this business day (needs dateColumn) */
  date?: string
  /** left name of the date column */
  dateColumn?: string
  specFile?: string
  samples?: number
  failUnder?: number
  strict?: boolean
  /** auto (default), merge, sql-pushdown or bisect */
  strategy?: 'auto' | 'merge' | 'sql-pushdown' | 'bisect'
  /** rows per sorted run of the external sort (default 100000) */
  sortRunRows?: number
  /** directory for sorted runs (default the OS temp dir) */
  tmpDir?: string
  /** merge: read the sides in worker threads (default: when a file side is 8 MB or more) */
  threads?: boolean
  /** bisect: rows per leaf range (default 1000) */
  bisectLeafRows?: number
}

function converterFor(type: ColumnTypeSpec, field: FieldSpec | undefined, name: string, scheme: string, side: 'left' | 'right', pgType: number | undefined) {
  const f = field?.type === type.type ? field : undefined
  if (side === 'right' && type.type === 'decimal' && type.rightDecimalSeparator) type = {...type, decimalSeparator: type.rightDecimalSeparator}
  // a pg: text column holds whatever text was loaded into it ("1 234,56" of a staging table):
  // it is read as declared (--type x=decimal:,), as a file's value is; numbers print a "."
  const dot = DOT_DECIMAL_SCHEMES.has(scheme) && !(scheme === 'pg' && pgType !== undefined && PG_TEXT_TYPES.has(pgType))
  if (type.type === 'decimal' && dot) {
    return columnConverter({...type, decimalSeparator: '.'}, f ? {...f, decimal_separator: '.'} : undefined, name)
  }
  return columnConverter(type, f, name)
}

export function rightName(opts: ParityOptions, left: string): string {
  return opts.map?.[left] ?? left
}

function fieldFor(spec: PipelineSpec | undefined, left: string, right: string) {
  if (!spec) return undefined
  return spec.fields[right] ?? spec.fields[left]
}

/** Schemes whose values carry decimals with a "." (database text, JSON numbers): never ambiguous. */
const DOT_DECIMAL_SCHEMES = new Set(['pg', 'kafka'])

/** PostgreSQL text types (text, varchar, char, name): their values are not numbers printed by the database. */
const PG_TEXT_TYPES = new Set([25, 1043, 1042, 19])

/**
 * Without --columns: the columns of each side that have no column of that name on the other
 * (after --map), which the default selection leaves out; undefined when there are none, when
 * --columns names the compared columns, or when a side's columns are unknown (an empty file).
 * A legacy `amt` against the stream's `amount` without `--map amt=amount` was left out without
 * a word, and a check that compared nothing but the keys said "parity 100%": so no column
 * compared while the left side has columns left out is refused (UsageError), and any column
 * left out is named in the result (`not_compared`), the warning and the reports.
 */
function unpairedColumns(opts: ParityOptions, names: string[], rightKeys: string[], leftCols: string[] | undefined, rightCols: string[] | undefined): {left: string[]; right: string[]} | undefined {
  if ((opts.columns && opts.columns.length > 0) || !leftCols || !rightCols) return undefined
  const compared = new Set(names)
  const rightUsed = new Set([...rightKeys, ...names.map((n) => rightName(opts, n))])
  const left = leftCols.filter((c) => !opts.key.includes(c) && !compared.has(c))
  const right = rightCols.filter((c) => !rightUsed.has(c))
  if (names.length === 0 && left.length > 0) {
    const also = right.length > 0 ? ` (the right side has ${right.join(', ')} besides the key)` : ''
    throw new UsageError(`no column is compared besides the key: the left side's ${left.join(', ')} ${left.length === 1 ? 'has' : 'have'} no column of the same name on the right side${also}`, {
      hint: `pair the columns with --map ${left[0]}=<right column> (repeatable), or give --columns ${opts.key.join(',')} to compare the keys only`,
    })
  }
  return left.length + right.length > 0 ? {left, right} : undefined
}

export function buildPlan(
  opts: ParityOptions,
  leftCols: string[] | undefined,
  rightCols: string[] | undefined,
  rules: CompiledRule[],
  spec?: PipelineSpec,
  schemes: {left: string; right: string} = {left: 'csv', right: 'csv'},
  /** pg: sides: column -> type OID (sources.peekSide) */
  pgTypes: {left?: Record<string, number>; right?: Record<string, number>} = {},
): ComparePlan {
  if (opts.key.length === 0) throw new UsageError('--key is required', {hint: 'give the key column(s): --key txn_id or --key account_id,business_date'})
  const rightKeys = opts.key.map((k) => rightName(opts, k))
  const check = (cols: string[] | undefined, names: string[], side: 'left' | 'right', what: string) => {
    if (!cols) return
    for (const n of names) {
      if (!cols.includes(n)) {
        throw new UsageError(`${what} "${n}" is not a column of the ${side} side`, {hint: `the ${side} side has: ${cols.join(', ')}${side === 'right' ? ' (use --map left=right when names differ)' : ''}`})
      }
    }
  }
  check(leftCols, opts.key, 'left', 'key column')
  check(rightCols, rightKeys, 'right', 'key column')
  let names: string[]
  if (opts.columns && opts.columns.length > 0) {
    names = opts.columns.filter((c) => !opts.key.includes(c))
    check(leftCols, names, 'left', 'column')
    check(
      rightCols,
      names.map((n) => rightName(opts, n)),
      'right',
      'column',
    )
  } else {
    const base = leftCols ?? (rightCols ? rightCols.map((r) => Object.entries(opts.map ?? {}).find(([, v]) => v === r)?.[0] ?? r) : [])
    names = base.filter((c) => !opts.key.includes(c) && (!rightCols || rightCols.includes(rightName(opts, c))))
  }
  const notCompared = unpairedColumns(opts, names, rightKeys, leftCols, rightCols)
  // --normalize <key>=trim: trimmed keys (merge only, check.ts); any other key normalization is refused below
  const trimKeys = opts.key.map((k) => {
    const n = opts.normalize?.[k]
    if (n === undefined) return false
    const p = parseNormalization(n)
    if (!p.trim || p.nfc || p.fold !== undefined) {
      throw new UsageError(`--normalize ${k}=${n}: a key column takes trim only`, {hint: `write --normalize ${k}=trim, or normalize the key where it is read, e.g. --left "pg:query=SELECT lower(${k}) AS ${k}, ... FROM ..."`})
    }
    return true
  })
  for (const [name, what] of [
    ...Object.keys(opts.tolerance ?? {}).map((n) => [n, '--tolerance'] as const),
    ...Object.keys(opts.types ?? {}).map((n) => [n, '--type'] as const),
    // a normalization of a column that is not compared (a key, a typo) would be ignored without a word
    ...Object.keys(opts.normalize ?? {})
      .filter((n) => n !== '*' && !opts.key.includes(n))
      .map((n) => [n, '--normalize'] as const),
    ...(opts.nullEqualsEmpty ?? []).filter((n) => n !== '*').map((n) => [n, '--null-equals-empty'] as const),
  ]) {
    if (names.includes(name)) continue
    if (opts.key.includes(name)) {
      throw new UsageError(`${what} names "${name}", a key column: keys are compared exactly as text, without tolerances or types (--normalize ${name}=trim is the one normalization a key takes)`, {
        hint: `give --normalize ${name}=trim for padded keys (a csv: or pg: side), or convert the key where it is read, e.g. --left "pg:query=SELECT ${name}::text AS ${name}, ... FROM ..."`,
      })
    }
    throw new UsageError(`${what} names "${name}", which is not a compared column`, {hint: `compared columns: ${names.join(', ') || '(none)'}`})
  }
  const norm = (name: string): StringNormalization => {
    const spec = opts.normalize?.[name] ?? opts.normalize?.['*']
    return spec === undefined ? {trim: false, nfc: false, fold: undefined} : parseNormalization(spec)
  }
  const nullAll = opts.nullEqualsEmpty?.includes('*') ?? false
  const specNormalized: Record<string, string[]> = {}
  const columns: ColumnPlan[] = names.map((name) => {
    const right = rightName(opts, name)
    const tolerance = opts.tolerance?.[name] !== undefined ? parseTolerance(name, opts.tolerance[name]) : undefined
    const field = fieldFor(spec, name, right)
    let type: ColumnTypeSpec
    if (opts.types?.[name] !== undefined) type = parseTypeSpec(name, opts.types[name])
    else if (field) type = {type: field.type, ...(field.timezone ? {timezone: field.timezone} : {}), ...(field.formats ? {formats: field.formats} : {})}
    else if (exactNumbers(pgTypes.left?.[name], pgTypes.right?.[right])) type = {type: 'decimal'}
    else if (tolerance?.kind === 'seconds') type = {type: 'timestamp'}
    else if (tolerance) type = {type: 'decimal'}
    else type = {type: 'string'}
    if (tolerance?.kind === 'seconds' && type.type !== 'timestamp') throw new UsageError(`--tolerance ${name}=${tolerance.text}: seconds apply to timestamp columns only`, {hint: `give --type ${name}=timestamp or a numeric tolerance`})
    if (tolerance && tolerance.kind !== 'seconds' && type.type !== 'decimal' && type.type !== 'integer') {
      throw new UsageError(`--tolerance ${name}=${tolerance.text}: numeric tolerances apply to decimal or integer columns`, {hint: `give --type ${name}=decimal`})
    }
    // a --spec string field's `trim` and `empty_as_null`: the pipeline trims the legacy value and
    // stores an empty one as NULL, so the raw legacy side is compared as the pipeline wrote it,
    // through the --normalize and --null-equals-empty path (both sides: the core's, the merge's
    // and the push-down's shortcuts take equal raw text as equal, which a one-sided
    // normalization would break; the stream's values are trimmed and never "" there already)
    const fromSpec = type.type === 'string' && field?.type === 'string' ? {trim: field.trim === true, nullEqualsEmpty: field.empty_as_null === true} : {trim: false, nullEqualsEmpty: false}
    if (fromSpec.trim || fromSpec.nullEqualsEmpty) specNormalized[name] = [...(fromSpec.trim ? ['trim'] : []), ...(fromSpec.nullEqualsEmpty ? ['empty_as_null'] : [])]
    const n = norm(name)
    return {
      name,
      right,
      type: type.type,
      tolerance,
      // case folding is for text: a folded timestamp ("...t06:15:00z") no longer reads as one
      normalize: type.type === 'string' ? {...n, trim: n.trim || fromSpec.trim} : {...n, fold: undefined},
      nullEqualsEmpty: nullAll || (opts.nullEqualsEmpty?.includes(name) ?? false) || fromSpec.nullEqualsEmpty,
      convert: converterFor(type, field, name, schemes.left, 'left', pgTypes.left?.[name]),
      convertRight: converterFor(type, field, name, schemes.right, 'right', pgTypes.right?.[right]),
      ...(field?.sensitive ? {sensitive: true} : {}),
    }
  })
  const sensitiveKeys = opts.key.map((k, i) => fieldFor(spec, k, rightKeys[i]!)?.sensitive === true)
  return {
    keyColumns: opts.key,
    rightKeyColumns: rightKeys,
    columns,
    rules,
    samples: opts.samples ?? 20,
    ...(sensitiveKeys.some((s) => s) ? {sensitiveKeys} : {}),
    ...(notCompared ? {notCompared} : {}),
    decimalPoint: {left: DOT_DECIMAL_SCHEMES.has(schemes.left), right: DOT_DECIMAL_SCHEMES.has(schemes.right)},
    ...(trimKeys.some(Boolean) ? {trimKeys} : {}),
    ...(Object.keys(specNormalized).length > 0 ? {specNormalized} : {}),
  }
}
