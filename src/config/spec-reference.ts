/**
 * The spec reference (docs/spec-reference.md) generated from the one schema in ./spec.ts
 * (through zod's JSON Schema export, input side), so the documentation cannot drift from
 * what `pipeline validate` accepts. A unit test checks the committed file equals this output;
 * regenerate with:
 *
 *   npx tsx -e "import('./src/config/spec-reference.ts').then(m => process.stdout.write(m.specReferenceMarkdown()))" > docs/spec-reference.md
 */
import {z} from 'zod'
import {BOOLEAN_WORDS} from '../normalize/boolean.js'
import {DATE_TOKENS} from '../normalize/timestamp.js'
import {PipelineSpecSchema} from './spec.js'

interface JsonSchema {
  type?: string | string[]
  const?: unknown
  enum?: unknown[]
  anyOf?: JsonSchema[]
  properties?: Record<string, JsonSchema>
  additionalProperties?: JsonSchema | boolean
  items?: JsonSchema
  required?: string[]
  default?: unknown
  description?: string
  pattern?: string
  minimum?: number
  maximum?: number
  minItems?: number
  minLength?: number
  maxLength?: number
}

const DURATION_PATTERN = '^(\\d+)(ms|s|m|h|d)$'

function isDuration(s: JsonSchema): boolean {
  return !!s.anyOf?.some((a) => a.pattern === DURATION_PATTERN)
}

function formatMs(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms}ms`
}

function typeOf(s: JsonSchema): string {
  if (isDuration(s)) return 'duration (`100ms`, `10s`, `5m`, `1h`, `1d`)'
  if (s.const !== undefined) return `\`${String(s.const)}\``
  if (s.enum) return s.enum.map((v) => `\`${String(v)}\``).join(' \\| ')
  if (s.anyOf) return s.anyOf.map(typeOf).join(' or ')
  if (s.type === 'array') return `list of ${s.items ? typeOf(s.items) : 'values'}`
  if (s.type === 'object') return s.properties ? 'mapping (below)' : `mapping of name → ${s.additionalProperties && typeof s.additionalProperties === 'object' ? typeOf(s.additionalProperties) : 'value'}`
  if (Array.isArray(s.type)) return s.type.join(' or ')
  if (s.type === 'integer') return s.minimum !== undefined && s.maximum !== undefined && s.maximum < 1e9 ? `integer ${s.minimum}–${s.maximum}` : 'integer'
  if (s.type === 'string' && s.pattern) return `string`
  return s.type ?? 'any'
}

function defaultOf(s: JsonSchema, key: string, required: boolean): string {
  if (s.default !== undefined && (s as {'x-default'?: string})['x-default'] === undefined) {
    if (isDuration(s) && typeof s.default === 'number') return `\`${formatMs(s.default)}\``
    if (Array.isArray(s.default)) return '`[]`'
    if (typeof s.default === 'object') return 'see below'
    return `\`${JSON.stringify(s.default)}\``
  }
  const shown = (s as {'x-default'?: string})['x-default']
  if (shown !== undefined) return shown === 'see below' ? shown : `\`${shown}\``
  return required ? '**required**' : key === '' ? '' : '—'
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ')
}

function table(obj: JsonSchema): string {
  const req = new Set(obj.required ?? [])
  const rows = ['| key | type | default | description |', '| --- | --- | --- | --- |']
  for (const [k, v] of Object.entries(obj.properties ?? {})) {
    const desc = v.description ?? ''
    const t = typeOf(v).replace(/\|/g, '\\|').replace(/\\\\\|/g, '\\|')
    rows.push(`| \`${k}\` | ${t} | ${defaultOf(v, k, req.has(k))} | ${cell(desc)} |`)
  }
  return rows.join('\n')
}

/** Objects to document, in order: [heading, schema]. */
function sections(root: JsonSchema): [string, JsonSchema][] {
  const out: [string, JsonSchema][] = [['top level', root]]
  const walk = (path: string, s: JsonSchema) => {
    for (const [k, v] of Object.entries(s.properties ?? {})) {
      const inner = v.type === 'array' && v.items ? v.items : v
      const name = v.type === 'array' ? `${path}${k}[]` : `${path}${k}`
      if (inner.properties) {
        out.push([name, inner])
        walk(`${name}.`, inner)
      } else if (inner.type === 'object' && inner.additionalProperties && typeof inner.additionalProperties === 'object' && inner.additionalProperties.properties) {
        out.push([`${name}.<name>`, inner.additionalProperties])
        walk(`${name}.<name>.`, inner.additionalProperties)
      }
    }
  }
  walk('', root)
  return out
}

/** The Markdown reference of the pipeline spec, generated from the schema. */
export function specReferenceMarkdown(): string {
  const root = z.toJSONSchema(PipelineSpecSchema, {io: 'input', unrepresentable: 'any'}) as JsonSchema
  const parts = [
    '# Pipeline spec reference (version 1)',
    '',
    '<!-- Generated from src/config/spec.ts by src/config/spec-reference.ts; do not edit by hand. -->',
    '',
    'A pipeline spec is a YAML file checked by `cutover pipeline validate <spec>`. Every mapping is',
    'strict: an unknown key is an error that lists the allowed keys. Errors point to',
    '`file:line:column`. Durations are written `100ms`, `10s`, `5m`, `1h`, `1d` (or a number of',
    'milliseconds). The example in DESIGN.md is `fixtures/specs/card-transactions.yaml`.',
    '',
    'Besides the shape below, `validate` checks meaning: `key`, `event_time`, `dedupe.by`,',
    '`enrich[].on`, `windows[].by` and `sinks[].group_by` name defined fields (`group_by` may also',
    'use `business_date` and enriched columns); `event_time` is a timestamp field; a decimal field has',
    '`scale`; a timestamp field has `formats` that compile and a valid IANA `timezone`; `pattern` is a',
    'valid regular expression; `default` is a valid value of its field; `sum(x)` sums a decimal or',
    'integer field; `rules[].when` parses and names fields, window aggregates and lookup columns that',
    'exist (`velocity.txn_count`), each compared with a value of its type (see "Rule conditions"); csv',
    'sources have `columns` (a message has no header line) and fixed sources a `copybook`. `stream run`',
    'runs every section, `enrich`, `windows` and `rules` included.',
    '',
    'How values are normalized (decimal separators, date formats, ambiguity) is documented at the top',
    'of each file in `src/normalize/`.',
  ]
  for (const [heading, s] of sections(root)) {
    parts.push('', `## \`${heading}\``, '')
    if (s.description) parts.push(s.description.charAt(0).toUpperCase() + s.description.slice(1) + '.', '')
    parts.push(table(s))
  }
  parts.push(...valueRules(), ...ruleConditions())
  return parts.join('\n') + '\n'
}

/** The condition language of `rules[].when` (config/rule-expression.ts). */
function ruleConditions(): string[] {
  return [
    '',
    '## Rule conditions',
    '',
    '`rules[].when` is a condition in a small language of its own, parsed and type-checked when the',
    'spec is loaded (`pipeline validate` and `stream run` alike: a syntax error, an unknown name or two',
    'values that do not compare is exit 2 at the file:line:column of `when`, with the character of the',
    'condition at fault). It is never evaluated as JavaScript.',
    '',
    '| element | written |',
    '| --- | --- |',
    '| a field of the record | `amount`, `currency` |',
    '| a window aggregate | `velocity.txn_count` (the record\'s window, after the record was counted) |',
    '| a lookup column | `account.segment` (text or null, as `enrich` puts it on the record) |',
    '| numbers | `1000`, `-12.50`, `.5` (no exponent, no separators) |',
    '| texts | `\'RUB\'` or `"RUB"`; a quote inside written twice: `\'O\'\'Brien\'` |',
    '| constants | `true`, `false`, `null` |',
    '| comparisons | `=` `==` `!=` `<>` `<` `<=` `>` `>=`; `x in (\'A\', \'B\')`, `x not in (...)` |',
    '| logic | `and` `or` `not` (or `&&` `\\|\\|` `!`): `not` binds tighter than `and`, `and` than `or`; parentheses |',
    '',
    'Keywords are read in any case. How two values compare is decided by their types: decimal and',
    'integer fields, `count` and `sum` aggregates and numbers compare as exact decimals of their texts',
    '(`amount > 1000.005` is true for 1000.01; never as floating point); timestamps as instants, to the',
    'microsecond, against another timestamp or a quoted ISO-8601 text with its offset',
    '(`event_time >= \'2026-11-20T00:00:00+03:00\'`); dates against a quoted `yyyy-MM-dd`; strings as',
    'texts; booleans with `=` and `!=` only (or alone: `is_test and amount > 0`). A lookup column compares',
    'as a number against a number (a text that is no plain decimal is then unknown), as an instant',
    'against a timestamp, else as text. `min`/`max` aggregates have their field\'s type.',
    '',
    '**A comparison with null is false**, as in SQL: precisely, it is unknown, which is never true, and',
    '`not` of it is unknown too, so a missing value (a null field, a record not counted in the window)',
    'never fires a rule, `not` or not; `and` and `or` follow SQL\'s three-valued logic, and `x in (...)`',
    'with x null is unknown. `x = null` is never true: there is no `is null`.',
    '',
    'A rule fires for a record when its condition is true. One that reads no window fires for every such',
    'record; one that reads a window aggregate fires at most once per window instance (the start and key',
    'of each window it reads), for the first record in offset order that makes it true, across batches',
    'and restarts (kept 8 days in `cutover.rule_firings`). Each alert is a row of `cutover.outbox`, written',
    'in the batch\'s transaction, published by the relay to the `emit` topic (created at start when',
    'missing): key the window key (a window rule) or the record\'s Kafka key; value JSON',
    '`{rule, pipeline, when, record: {key fields, event_time}, windows: {name: {start, end, key, values}},',
    'source: {topic, partition, offset}}` with exact texts (`sensitive` values masked); headers',
    '`cutover.pipeline`, `cutover.pipeline.version`, `cutover.rule`, `cutover.source.topic`, `.partition`,',
    '`.offset`. The relay publishes at least once: a reader drops a repeat by its `cutover.rule` and',
    '`cutover.source.*` headers.',
  ]
}

/** How the normalizer reads values, from the same constants the code uses. */
function valueRules(): string[] {
  return [
    '',
    '## How values are read',
    '',
    'Every field goes through one normalizer (`src/normalize/`), the same for `normalize`,',
    '`stream run`, backfill, parity and `pipeline test`. A record with problems is rejected with',
    'every field problem listed, each with a code, the field, the value (masked when `sensitive`)',
    'and the record position.',
    '',
    '| type | output | accepted | rejected as |',
    '| --- | --- | --- | --- |',
    '| `string` | text | any text; JSON numbers as text, as written (`1.50` stays `1.50`, `1E2` stays `1E2`) and booleans; send codes as JSON strings | `PATTERN_MISMATCH`, `SCHEMA_VIOLATION` (max_length, JSON object) |',
    '| `decimal` | `"1234.50"`, exactly `scale` digits | `1 234,56` `1.234,56` `1,234.56` `1\'234.56` `(12.50)` `12.50-` `+12` `-0,5`; JSON numbers as written (all their digits, not rounded to a double; no exponent) | `UNPARSEABLE_AMOUNT` (not a number, more digits than `scale`, overflow of `precision`, ambiguous `1,234`) |',
    '| `integer` | `"42"` (int64) | `+42` `-7` `1 234` `1\'234`; safe JSON integers | `SCHEMA_VIOLATION` |',
    '| `timestamp` | `"2026-11-20T09:15:00.000Z"` | `formats` in `timezone` | `UNPARSEABLE_DATE`, `AMBIGUOUS_DATE` |',
    '| `date` | `"2026-11-20"` | `formats` (default `yyyy-MM-dd`) | `UNPARSEABLE_DATE`, `AMBIGUOUS_DATE` |',
    `| \`boolean\` | true / false | ${BOOLEAN_WORDS.map((w) => `\`${w}\``).join(' ')} (any case); JSON true/false, 1/0 | \`SCHEMA_VIOLATION\` |`,
    '',
    'A missing value is `null`, or `default`, or `REQUIRED_FIELD_EMPTY` when `required`; so is an empty',
    'one, except that a `string` field keeps `""` unless `empty_as_null` (or `required`) is set.',
    '',
    '**Decimal separators.** With both `.` and `,` the last one is the decimal separator; one of',
    'them several times is grouping; one of them once is the decimal separator, except the',
    'ambiguous shape `d{1,3}<sep>ddd` (`1,234`, `12.500`), which is rejected unless the field sets',
    '`decimal_separator`. Amounts are never rounded: extra fractional digits are rejected unless',
    'they are zeros.',
    '',
    '**Dates.** Every format is tried. A value that two formats read as different instants is',
    '`AMBIGUOUS_DATE` (never a guess); an impossible date (`31.02.2026`), or a local time skipped by',
    'a DST change, is `UNPARSEABLE_DATE`; a local time that a DST change repeats is `AMBIGUOUS_DATE`.',
    '',
    '| format token | reads |',
    '| --- | --- |',
    ...DATE_TOKENS.map(([t, m]) => `| \`${t}\` | ${cell(m)} |`),
  ]
}
