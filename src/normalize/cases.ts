/**
 * Golden cases for a spec (`cutover pipeline test <spec> <cases-dir>`), so a team can test its
 * spec like code (after Benthos' YAML tests with input and expected output batches).
 *
 * Layout: `<cases-dir>/<case>/` (or `<cases-dir>` itself when it holds input.ndjson):
 *   input.ndjson     one raw record per line: a JSON object of input field -> text (or JSON value)
 *   expected.ndjson  the normalized records of the accepted input lines, in order
 *   rejects.ndjson   optional; every rejection, in input order and field order within a record:
 *                    {"code": "UNPARSEABLE_AMOUNT", "field": "amount"} and optionally
 *                    "line": n (1-based line of input.ndjson); absent means no rejection.
 * Blank lines are ignored; a case whose input.ndjson has no records fails (it would test nothing).
 * Values compare as the output writes them, JSON type and all (a decimal is the string "7.50"; an
 * expected JSON number 7.50 is a difference that names both types). Each record goes through the
 * spec's normalizer (the one path), then, when the spec has `dedupe`, through the same dedupe as
 * `normalize` (../jobs/record-processor.ts), over the case's inputs in order: the first record of a key is accepted; an identical repeat is
 * dropped (counted in `duplicates`, in neither expected.ndjson nor rejects.ndjson); a repeat with
 * a different payload is rejected as {"code": "DUPLICATE_CONFLICT", "field": "<dedupe.by>"}
 * (several fields joined with ","). So what passes here is what `normalize` and `stream run` do.
 * Values of `sensitive` fields are masked (maskValue) in every difference shown.
 */
import {readdir, readFile, stat} from 'node:fs/promises'
import {basename, join} from 'node:path'
import type {Position} from '../../legacy-adapters/types.js'
import {loadSpec, namesOf, type PipelineSpec} from '../config/spec.js'
import {UsageError} from '../errors.js'
import {JsonNumberText, parseJsonExact} from './json.js'
import {createNormalizer, type Normalizer} from './record.js'
import {fieldWithoutValue, maskedKeyOf, maskValue} from './text.js'
import type {NormalizedValue, Rejection} from './types.js'

export interface CaseResult {
  name: string
  dir: string
  passed: boolean
  /** input records read */
  inputs: number
  accepted: number
  rejected: number
  /** identical repeats of a dedupe key dropped (the spec's `dedupe`), as `normalize` counts them */
  duplicates: number
  /** the first difference, for a person: where, expected, got */
  difference?: string
}

export interface PipelineTestResult {
  spec: string
  name: string
  sha256: string
  cases: CaseResult[]
  passed: number
  failed: number
}

interface Line<T> {
  line: number
  value: T
}

async function readNdjson<T>(file: string, optional = false): Promise<Line<T>[] | string> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    if (optional && (e as NodeJS.ErrnoException).code === 'ENOENT') return []
    return `cannot read ${file}: ${(e as Error).message}`
  }
  const out: Line<T>[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.trim()
    if (l === '') continue
    try {
      out.push({line: i + 1, value: parseJsonExact(l) as T})
    } catch (e) {
      // V8 quotes the start of the text ("Unexpected token 'x', "{"card": "4111..." is not valid
      // JSON"): it may hold a sensitive value, and the line number says where to look
      return `${file}:${i + 1}: not JSON (${(e as Error).message.replace(/, (\.\.\.)?".*"(\.\.\.)? is not valid JSON$/s, ' (not valid JSON)')})`
    }
  }
  return out
}

/**
 * How values are shown in differences: a `sensitive` field's value masked (maskValue, as in
 * rejections and dead letters), whether it came from the output or from expected.ndjson.
 */
class Shown {
  constructor(private readonly sensitive: ReadonlySet<string>) {}

  value(field: string, v: unknown): string {
    if (v === undefined) return '(absent)'
    // a number of expected.ndjson kept as written (7.50): shown as written, a number, not as the string JSON.stringify makes of it
    if (v === null || !this.sensitive.has(field)) return v instanceof JsonNumberText ? v.text : JSON.stringify(v)
    return JSON.stringify(maskValue(typeof v === 'string' ? v : v instanceof JsonNumberText ? v.text : JSON.stringify(v)))
  }

  /** said after a difference in a sensitive field, whose two masked values may look alike */
  note(field: string): string {
    return this.sensitive.has(field) ? ` (${field} is sensitive: values masked)` : ''
  }

  record(r: Record<string, unknown>): string {
    if (this.sensitive.size === 0) return JSON.stringify(r)
    return JSON.stringify(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null || !this.sensitive.has(k) ? v : maskValue(typeof v === 'string' ? v : JSON.stringify(v))])))
  }
}

/** A value's JSON type, as said in a difference. */
function jsonType(v: unknown): string {
  if (v === null) return 'null'
  if (typeof v === 'number' || v instanceof JsonNumberText) return 'a JSON number'
  if (typeof v === 'string') return 'a string'
  if (typeof v === 'boolean') return 'a boolean'
  return Array.isArray(v) ? 'a JSON array' : 'a JSON object'
}

/**
 * The first difference between an expected and an actual record, or undefined. Values compare as
 * they are written in the output, type and all: a decimal (or integer, or timestamp) is normalized
 * to a JSON string ("7.50", exact), and a golden case holds the output as it is, so an expected
 * JSON number 7.50 is a difference, not a match. Where the two differ in type the difference says
 * so: `expected 7.50 (a JSON number), got "7.50" (a string)`, not two values that look alike.
 */
function recordDifference(expected: Record<string, unknown>, actual: Record<string, NormalizedValue>, shown: Shown): string | undefined {
  for (const k of Object.keys(expected)) {
    const e = expected[k]
    const a = actual[k]
    if (e === a) continue
    if (e === undefined || a === undefined || jsonType(e) === jsonType(a)) return `${k}: expected ${shown.value(k, e)}, got ${shown.value(k, a)}${shown.note(k)}`
    const quote = jsonType(e) === 'a JSON number' && typeof a === 'string' ? ': the output holds decimals and integers as JSON strings, exact; quote the value in expected.ndjson' : ''
    return `${k}: expected ${shown.value(k, e)} (${jsonType(e)}), got ${shown.value(k, a)} (${jsonType(a)})${shown.note(k)}${quote}`
  }
  for (const k of Object.keys(actual)) {
    if (!(k in expected)) return `${k}: expected (absent), got ${shown.value(k, actual[k])}${shown.note(k)}`
  }
  return undefined
}

/**
 * The spec's dedupe over one case's inputs, in order, as `normalize` does it
 * (../jobs/record-processor.ts): the key is the `by` field's value as text, or the values of
 * several as a JSON array; a repeat is identical when its normalized record is.
 */
class CaseDedupe {
  private readonly seen = new Map<string, {line: number; payload: string}>()
  private readonly maskedKey: ((record: Readonly<Record<string, unknown>>) => string) | undefined

  constructor(
    readonly by: readonly string[],
    fields: PipelineSpec['fields'],
  ) {
    this.maskedKey = maskedKeyOf(by, fields)
  }

  /** undefined for a first occurrence; else the line it repeats, whether identical, and the key as shown */
  check(record: Record<string, NormalizedValue>, line: number): {first: number; identical: boolean; shown: string} | undefined {
    const by = this.by
    const key = by.length === 1 ? String(record[by[0]!]) : JSON.stringify(by.map((f) => record[f] ?? null))
    const payload = JSON.stringify(record)
    const before = this.seen.get(key)
    if (before === undefined) {
      this.seen.set(key, {line, payload})
      return undefined
    }
    return {first: before.line, identical: before.payload === payload, shown: this.maskedKey ? this.maskedKey(record) : key}
  }
}

interface ExpectedReject {
  code: string
  field: string | null
  line?: number
}

function describeRejection(r: Rejection): string {
  return `${r.code} ${r.field ?? ''}: ${r.message}`
}

interface CaseSpec {
  normalize: Normalizer
  fields: PipelineSpec['fields']
  dedupeBy: string[]
  shown: Shown
}

async function runCase(name: string, dir: string, spec: CaseSpec): Promise<CaseResult> {
  const {normalize, shown} = spec
  const result: CaseResult = {name, dir, passed: false, inputs: 0, accepted: 0, rejected: 0, duplicates: 0}
  const fail = (difference: string) => ({...result, difference})
  const inputs = await readNdjson<Record<string, unknown>>(join(dir, 'input.ndjson'))
  if (typeof inputs === 'string') return fail(inputs)
  const expected = await readNdjson<Record<string, unknown>>(join(dir, 'expected.ndjson'))
  if (typeof expected === 'string') return fail(expected)
  const rejects = await readNdjson<ExpectedReject>(join(dir, 'rejects.ndjson'), true)
  if (typeof rejects === 'string') return fail(rejects)
  result.inputs = inputs.length

  const inputFile = join(dir, 'input.ndjson')
  const dedupe = spec.dedupeBy.length > 0 ? new CaseDedupe(spec.dedupeBy, spec.fields) : undefined
  let e = 0
  let r = 0
  let first: string | undefined
  const rejected = (rejections: readonly Rejection[], line: number) => {
    result.rejected++
    for (const rej of rejections) {
      const exp = rejects[r++]
      if (first !== undefined) continue
      if (!exp) first = `input.ndjson:${line} was rejected (${describeRejection(rej)}), but rejects.ndjson has no more rejections`
      else if (exp.value.code !== rej.code || (exp.value.field ?? null) !== rej.field || (exp.value.line !== undefined && exp.value.line !== line)) {
        first = `rejects.ndjson:${exp.line}: expected ${JSON.stringify(exp.value)}, got ${JSON.stringify({code: rej.code, field: rej.field, line})} (${rej.message})`
      }
    }
  }
  for (const input of inputs) {
    if (input.value === null || typeof input.value !== 'object' || Array.isArray(input.value)) {
      first ??= `input.ndjson:${input.line}: expected a JSON object of field -> value`
      continue
    }
    const position: Position = {scheme: 'case', source: inputFile, line: input.line, record: input.line}
    const out = normalize({ok: true, fields: input.value, position})
    if (!out.ok) {
      rejected(out.rejections, input.line)
      continue
    }
    // as normalize and the stream: a record without a dedupe key is refused, not deduplicated
    const missing = dedupe ? fieldWithoutValue(dedupe.by, out.record) : undefined
    if (missing !== undefined) {
      rejected([{code: 'SCHEMA_VIOLATION', field: missing, value: null, message: `field ${missing} has no value, and the pipeline needs it (dedupe)`, position}], input.line)
      continue
    }
    const repeat = dedupe?.check(out.record, input.line)
    if (repeat !== undefined && dedupe !== undefined) {
      const by = dedupe.by.join(',')
      if (repeat.identical) {
        // dropped, as normalize drops it: it is in neither file; say so if expected.ndjson lists it next
        result.duplicates++
        const exp = expected[e]
        if (first === undefined && exp !== undefined && recordDifference(exp.value, out.record, shown) === undefined) {
          first = `expected.ndjson:${exp.line} (input.ndjson:${input.line}): the record is an identical repeat of input.ndjson:${repeat.first} (dedupe by ${by} "${repeat.shown}"), which is dropped, not accepted again`
        }
      } else {
        const message = `${by} "${repeat.shown}" was seen before (input.ndjson:${repeat.first}) with a different payload`
        rejected([{code: 'DUPLICATE_CONFLICT', field: by, value: repeat.shown, message, position}], input.line)
      }
      continue
    }
    result.accepted++
    const exp = expected[e++]
    if (first !== undefined) continue
    if (!exp) first = `input.ndjson:${input.line} was accepted as ${shown.record(out.record)}, but expected.ndjson has no more records`
    else {
      const d = recordDifference(exp.value, out.record, shown)
      if (d) first = `expected.ndjson:${exp.line} (input.ndjson:${input.line}): ${d}`
    }
  }
  if (first === undefined && e < expected.length) first = `expected.ndjson:${expected[e]!.line}: expected ${shown.record(expected[e]!.value)}, but no more input records were accepted`
  if (first === undefined && r < rejects.length) first = `rejects.ndjson:${rejects[r]!.line}: expected ${JSON.stringify(rejects[r]!.value)}, but no more input records were rejected`
  // a case without input (the file empty, or blank lines only) and nothing expected tests nothing:
  // a mistake, never a pass (with records expected, the difference above already says none came)
  if (first === undefined && inputs.length === 0) first = 'input.ndjson has no records: the case tests nothing; add the raw records it is about, one JSON object a line'
  return first === undefined ? {...result, passed: true} : fail(first)
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isFile(),
    () => false,
  )
}

/** Case folders under `dir` (or `dir` itself), sorted by name. */
async function findCases(dir: string): Promise<{name: string; dir: string}[]> {
  if (await isFile(join(dir, 'input.ndjson'))) return [{name: basename(dir), dir}]
  let entries
  try {
    entries = await readdir(dir, {withFileTypes: true})
  } catch (e) {
    throw new UsageError(`cannot read the cases directory ${dir}: ${(e as Error).message}`, {cause: e, hint: 'give a folder of case folders, each with input.ndjson and expected.ndjson'})
  }
  const cases = entries
    .filter((d) => d.isDirectory())
    .map((d) => ({name: d.name, dir: join(dir, d.name)}))
    .sort((a, b) => a.name.localeCompare(b.name))
  if (cases.length === 0) throw new UsageError(`no cases in ${dir}`, {hint: 'each case is a folder with input.ndjson, expected.ndjson and optionally rejects.ndjson'})
  return cases
}

/** Loads the spec (SpecError, exit 2, when bad) and runs every golden case under `casesDir`. */
export async function runPipelineCases(specPath: string, casesDir: string): Promise<PipelineTestResult> {
  const loaded = await loadSpec(specPath)
  const fields = loaded.spec.fields
  const spec: CaseSpec = {
    normalize: createNormalizer(fields),
    fields,
    dedupeBy: namesOf(loaded.spec.dedupe?.by),
    shown: new Shown(new Set(Object.keys(fields).filter((k) => fields[k]!.sensitive === true))),
  }
  const cases: CaseResult[] = []
  for (const c of await findCases(casesDir)) cases.push(await runCase(c.name, c.dir, spec))
  const passed = cases.filter((c) => c.passed).length
  return {spec: specPath, name: loaded.spec.name, sha256: loaded.sha256, cases, passed, failed: cases.length - passed}
}
