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
 * Blank lines are ignored. Each record goes through the spec's normalizer (the one path), so
 * what passes here is what `normalize` and `stream run` do.
 */
import {readdir, readFile, stat} from 'node:fs/promises'
import {basename, join} from 'node:path'
import type {Position} from '../../legacy-adapters/types.js'
import {loadSpec} from '../config/spec.js'
import {UsageError} from '../errors.js'
import {parseJsonExact} from './json.js'
import {createNormalizer, type Normalizer} from './record.js'
import type {NormalizedValue, Rejection} from './types.js'

export interface CaseResult {
  name: string
  dir: string
  passed: boolean
  /** input records read */
  inputs: number
  accepted: number
  rejected: number
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
      return `${file}:${i + 1}: not JSON (${(e as Error).message})`
    }
  }
  return out
}

function show(v: unknown): string {
  return v === undefined ? '(absent)' : JSON.stringify(v)
}

/** The first difference between an expected and an actual record, or undefined. */
function recordDifference(expected: Record<string, unknown>, actual: Record<string, NormalizedValue>): string | undefined {
  for (const k of Object.keys(expected)) {
    if (expected[k] !== actual[k]) return `${k}: expected ${show(expected[k])}, got ${show(actual[k])}`
  }
  for (const k of Object.keys(actual)) {
    if (!(k in expected)) return `${k}: expected (absent), got ${show(actual[k])}`
  }
  return undefined
}

interface ExpectedReject {
  code: string
  field: string | null
  line?: number
}

function describeRejection(r: Rejection): string {
  return `${r.code} ${r.field ?? ''}: ${r.message}`
}

async function runCase(name: string, dir: string, normalize: Normalizer): Promise<CaseResult> {
  const result: CaseResult = {name, dir, passed: false, inputs: 0, accepted: 0, rejected: 0}
  const fail = (difference: string) => ({...result, difference})
  const inputs = await readNdjson<Record<string, unknown>>(join(dir, 'input.ndjson'))
  if (typeof inputs === 'string') return fail(inputs)
  const expected = await readNdjson<Record<string, unknown>>(join(dir, 'expected.ndjson'))
  if (typeof expected === 'string') return fail(expected)
  const rejects = await readNdjson<ExpectedReject>(join(dir, 'rejects.ndjson'), true)
  if (typeof rejects === 'string') return fail(rejects)
  result.inputs = inputs.length

  const inputFile = join(dir, 'input.ndjson')
  let e = 0
  let r = 0
  let first: string | undefined
  for (const input of inputs) {
    if (input.value === null || typeof input.value !== 'object' || Array.isArray(input.value)) {
      first ??= `input.ndjson:${input.line}: expected a JSON object of field -> value`
      continue
    }
    const position: Position = {scheme: 'case', source: inputFile, line: input.line, record: input.line}
    const out = normalize({ok: true, fields: input.value, position})
    if (out.ok) {
      result.accepted++
      const exp = expected[e++]
      if (first !== undefined) continue
      if (!exp) first = `input.ndjson:${input.line} was accepted as ${JSON.stringify(out.record)}, but expected.ndjson has no more records`
      else {
        const d = recordDifference(exp.value, out.record)
        if (d) first = `expected.ndjson:${exp.line} (input.ndjson:${input.line}): ${d}`
      }
    } else {
      result.rejected++
      for (const rej of out.rejections) {
        const exp = rejects[r++]
        if (first !== undefined) continue
        if (!exp) first = `input.ndjson:${input.line} was rejected (${describeRejection(rej)}), but rejects.ndjson has no more rejections`
        else if (exp.value.code !== rej.code || (exp.value.field ?? null) !== rej.field || (exp.value.line !== undefined && exp.value.line !== input.line)) {
          first = `rejects.ndjson:${exp.line}: expected ${JSON.stringify(exp.value)}, got ${JSON.stringify({code: rej.code, field: rej.field, line: input.line})} (${rej.message})`
        }
      }
    }
  }
  if (first === undefined && e < expected.length) first = `expected.ndjson:${expected[e]!.line}: expected ${JSON.stringify(expected[e]!.value)}, but no more input records were accepted`
  if (first === undefined && r < rejects.length) first = `rejects.ndjson:${rejects[r]!.line}: expected ${JSON.stringify(rejects[r]!.value)}, but no more input records were rejected`
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
  const normalize = createNormalizer(loaded.spec.fields)
  const cases: CaseResult[] = []
  for (const c of await findCases(casesDir)) cases.push(await runCase(c.name, c.dir, normalize))
  const passed = cases.filter((c) => c.passed).length
  return {spec: specPath, name: loaded.spec.name, sha256: loaded.sha256, cases, passed, failed: cases.length - passed}
}
