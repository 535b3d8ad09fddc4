/**
 * The pipeline spec, version 1 (DESIGN.md): ONE zod schema, with every default in it, that
 * `pipeline validate`, `normalize`, `stream run`, backfill and parity all load through
 * `loadSpec`. The spec reference (docs/spec-reference.md) is generated from this schema by
 * `specReferenceMarkdown()` in ./spec-reference.ts.
 *
 * Loading is two passes, and every problem found is reported, not only the first:
 *  1. structure: YAML syntax, then the zod schema (strict objects: an unknown key is an error
 *     that names the allowed keys; an enum says which values are allowed);
 *  2. meaning: names used by key/event_time/dedupe/enrich/windows/sinks are defined fields,
 *     a decimal has a scale, a timestamp has formats and a valid IANA timezone, patterns and
 *     date formats compile, defaults are valid values of their field, sum(x) sums a number.
 * Each problem is mapped back to file:line:column through the YAML document's nodes.
 *
 * Durations ("100ms", "10s", "5m", "1h", "1d", or a number of milliseconds) are given to
 * the runtime as milliseconds.
 */
import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {isMap, isSeq, LineCounter, parseDocument, visit, type Alias, type Document, type Node as YamlNode} from 'yaml'
import {z} from 'zod'
import {SpecError} from '../errors.js'
import {checkFieldSpec} from '../normalize/check.js'
import {nearestWord} from './nearest-word.js'
import {conditionProblems, describeProblem, ruleScopeOf} from './rule-expression.js'

export const SPEC_VERSION = 1

export const FIELD_TYPES = ['string', 'integer', 'decimal', 'timestamp', 'date', 'boolean'] as const
export type FieldType = (typeof FIELD_TYPES)[number]
export const SOURCE_FORMATS = ['json', 'csv', 'fixed'] as const
export const ENCODINGS = ['utf-8', 'windows-1251', 'ibm866', 'cp037', 'cp1047', 'latin1'] as const
export type SpecEncoding = (typeof ENCODINGS)[number]

const DURATION = /^(\d+)(ms|s|m|h|d)$/
const DURATION_MS: Record<string, number> = {ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000}

/** "100ms" -> 100, "5m" -> 300000; a number is already milliseconds. */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') return value
  const m = DURATION.exec(value)
  if (!m) throw new Error(`not a duration: ${value}`)
  return Number(m[1]) * DURATION_MS[m[2]!]!
}

/** The allowed keys of every strict object, kept for messages ("allowed keys: ..."). */
function strict<T extends z.ZodRawShape>(shape: T, description: string) {
  const allowed = Object.keys(shape).join(', ')
  return z
    .strictObject(shape, {
      error: (iss) => (iss.code === 'unrecognized_keys' ? `allowed keys: ${allowed}` : iss.code === 'invalid_type' ? 'expected a mapping (key: value)' : undefined),
    })
    .describe(description)
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, {error: () => `allowed: ${values.join(', ')}`})
}

const DURATION_HELP = 'expected a duration such as 100ms, 10s, 5m, 1h or 1d'
const duration = z
  .union([z.string().regex(DURATION, {error: () => DURATION_HELP}), z.number().int().nonnegative({error: () => DURATION_HELP})], {error: () => DURATION_HELP})
  .transform(parseDuration)

/** A default shown in the generated reference as written ("5m"), since zod's JSON Schema drops defaults of transformed values. */
function shownDefault<T extends z.ZodType>(schema: T, text: string): T {
  return schema.meta({'x-default': text}) as T
}

// at most 63 characters: PostgreSQL cuts a longer name (NAMEDATALEN - 1 bytes) wherever it is
// written, so a field's column would have another name than the field, and a fix (ADD COLUMN
// "<the long name>") would create the cut name again; two names alike in their first 63 would be one
const identifier = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {error: () => 'expected a name of letters, digits and _ (not starting with a digit)'})
  .max(63, {error: (i) => `a name of at most 63 characters: PostgreSQL cuts longer ones (this one to ${String(i.input).slice(0, 63)})`})
const nameList = z.union([identifier, z.array(identifier).min(1)], {error: () => 'expected a field name or a list of field names'})
const topic = z.string().regex(/^[A-Za-z0-9._-]{1,249}$/, {error: () => 'expected a Kafka topic name (letters, digits, . _ -)'})
const table = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/, {error: () => 'expected a table name, optionally schema-qualified (schema.table)'})

export const AGGREGATE = /^(count|sum|min|max)(?:\(([A-Za-z_][A-Za-z0-9_]*)\))?$/
const aggregate = z
  .string()
  .regex(/^(count|(sum|min|max)\([A-Za-z_][A-Za-z0-9_]*\))$/, {error: () => 'expected count, sum(field), min(field) or max(field)'})
const aggregates = z.record(identifier, aggregate)

export type AggregateFn = 'count' | 'sum' | 'min' | 'max'
export interface Aggregate {
  fn: AggregateFn
  /** the summed / compared field; undefined for count */
  field?: string
}

/** "sum(amount)" -> {fn: 'sum', field: 'amount'}; "count" -> {fn: 'count'}. */
export function parseAggregate(expr: string): Aggregate {
  const m = AGGREGATE.exec(expr)
  if (!m) throw new Error(`not an aggregate: ${expr}`)
  return m[2] === undefined ? {fn: m[1] as AggregateFn} : {fn: m[1] as AggregateFn, field: m[2]}
}

export const FieldSchema = strict(
  {
    from: z.string().min(1).optional().describe('input field (JSON key, CSV column, copybook name) to read, or a dotted path into nested JSON (card.number); default: the field name'),
    type: oneOf(FIELD_TYPES).describe('output type'),
    required: z.boolean().default(false).describe('a missing or empty value is REQUIRED_FIELD_EMPTY (unless `default` is set)'),
    trim: z.boolean().default(false).describe('strip surrounding whitespace from strings (non-string types always ignore it)'),
    empty_as_null: z.boolean().default(false).describe('an empty string becomes null'),
    default: z.union([z.string(), z.number(), z.boolean()]).optional().describe('value used when the input is missing or empty; must be a valid value of the field'),
    pattern: z.string().optional().describe('JavaScript regular expression the text must match (trimmed first only with `trim`; anchor it with ^ and $); else PATTERN_MISMATCH'),
    max_length: z.number().int().positive().optional().describe('maximum length in characters; longer is SCHEMA_VIOLATION'),
    sensitive: z.boolean().default(false).describe('mask the value wherever it is shown (errors, DLQ headers, logs): 4111********1111 or ***'),
    scale: z.number().int().min(0).max(30).optional().describe('decimal: digits after the point (required for decimal); more is UNPARSEABLE_AMOUNT, never rounded'),
    precision: z.number().int().min(1).max(38).default(18).describe('decimal: total significant digits, as numeric(precision, scale); more is UNPARSEABLE_AMOUNT'),
    decimal_separator: z.enum(['.', ',']).optional().describe('decimal: the decimal separator, when a lone "1,234" or "1.234" must not be ambiguous (see src/normalize/decimal.ts)'),
    timezone: z.string().default('UTC').describe('timestamp/date: IANA zone of values without an offset (DST-correct)'),
    formats: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe('timestamp/date: accepted formats, Unicode tokens (yyyy MM dd HH mm ss SSS XXX) or iso, epoch_s, epoch_ms; required for timestamp; date defaults to ["yyyy-MM-dd"]'),
  },
  'one output field',
)

export const SourceSchema = strict(
  {
    topic: topic.describe('Kafka topic read by `stream run`'),
    group: z.string().min(1).optional().describe('consumer group; default cutover-<name>'),
    format: oneOf(SOURCE_FORMATS).default('json').describe('json | csv (one line per message) | fixed (one record per message)'),
    encoding: oneOf(ENCODINGS).default('utf-8').describe('text encoding of the message values'),
    delimiter: z.string().length(1).optional().describe('csv: field delimiter (default ",")'),
    columns: z.array(z.string().min(1)).min(1).optional().describe('csv: column names, in order (required: a message has no header line)'),
    header: z.boolean().optional().describe('csv: the first line names the columns (default false)'),
    copybook: z.string().min(1).optional().describe('fixed: path of the COBOL copybook, relative to the spec file'),
  },
  'where records come from',
)

export const EnrichSchema = strict(
  {
    name: identifier.describe('name of the lookup (its columns are added to the record)'),
    table: table.describe('PostgreSQL table or view'),
    on: nameList.describe('field(s) matched against the same-named column(s) of the table'),
    select: z.array(identifier).min(1).describe('columns added to the record'),
    cache: strict(
      {
        max_entries: z.number().int().positive().default(100_000).describe('entries kept (LRU)'),
        ttl: shownDefault(duration.default(300_000).describe('how long an entry is trusted'), '5m'),
      },
      'lookup cache',
    )
      .default({max_entries: 100_000, ttl: 300_000})
      .describe('lookup cache')
      .meta({'x-default': 'see below'}),
    missing: z
      .union([z.enum(['dlq', 'null']), z.null()], {error: () => 'allowed: dlq, null'})
      .default('dlq')
      .transform((v) => v ?? 'null')
      .describe('no row found: dlq (ENRICHMENT_MISSING) | null (select columns are null)'),
  },
  'a PostgreSQL lookup, batched per poll and cached',
)

export const WindowSchema = strict(
  {
    name: identifier.describe('window name; rules read <name>.<aggregate>'),
    by: nameList.describe('field(s) the window is kept per'),
    size: duration.describe('window length'),
    slide: duration.optional().describe('hop; default: size (tumbling)'),
    allowed_lateness: shownDefault(duration.default(0).describe('events later than this past the watermark are LATE_EVENT'), '0ms'),
    aggregates: aggregates.describe('output name -> count | sum(field) | min(field) | max(field)'),
  },
  'an event-time window',
)

export const RuleSchema = strict(
  {
    name: identifier.describe('rule name'),
    when: z.string().min(1).describe('condition, e.g. "velocity.txn_count > 5" or "amount >= 10000 and currency = \'RUB\'" (see Rule conditions below)'),
    emit: topic.describe('Kafka topic the alert is published to (through the PostgreSQL outbox)'),
  },
  'an alert rule',
)

export const SinkSchema = strict(
  {
    table: table.describe('PostgreSQL table written (upsert by key, or by group_by when aggregating)'),
    group_by: z.array(identifier).min(1).optional().describe('aggregate per these fields (business_date: the date of event_time in its timezone, unless a field has that name)'),
    aggregates: aggregates.optional().describe('output column -> count | sum(field) | min(field) | max(field)'),
    reject_sqlstates: z
      .array(
        z.union(
          // an all-digit code written without quotes (23514) is a YAML number: its five digits (resolve)
          [z.string().regex(/^[0-9A-Z]{5}$/, {error: () => 'expected a 5-character SQLSTATE, e.g. P0001'}), z.number().int().min(0).max(99999)],
          {error: () => 'expected a 5-character SQLSTATE, e.g. P0001'},
        ),
      )
      .optional()
      .describe(
        "more SQLSTATEs by which this table refuses one row, e.g. P0001 (a trigger's RAISE EXCEPTION): that row goes to the DLQ as SINK_REJECTED and the rest of its batch commits; other errors are retried. Always taken so without being listed: classes 22 and 23 (a bad value, a constraint), a row-level security policy refusing the row (42501 raised by the policy; a missing privilege is retried) a view's WITH CHECK OPTION (44000) and a value too large for an index of the table or a row too big for a page (54000 from the index or the heap)",
      ),
  },
  'a PostgreSQL projection, written effectively-once',
)

export const PipelineSpecSchema = strict(
  {
    version: z.literal(SPEC_VERSION, {error: () => `allowed: ${SPEC_VERSION}`}).describe('spec format version'),
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]*$/, {error: () => 'expected lower-case letters, digits, . _ - (it names consumer groups and DLQ headers)'})
      .describe('pipeline name'),
    source: SourceSchema,
    fields: z.record(identifier, FieldSchema).describe('the output record: field name -> field spec'),
    key: nameList.optional().describe('field(s) used as Kafka key and sink primary key'),
    event_time: identifier.optional().describe('timestamp field that drives windows and business_date'),
    dedupe: strict(
      {
        by: nameList.describe('field(s) identifying a record'),
        conflicting: z.enum(['dlq'], {error: () => 'allowed: dlq'}).default('dlq').describe('same key, different payload: dlq (DUPLICATE_CONFLICT)'),
      },
      'identical repeats are dropped and counted; a differing payload goes to the DLQ. Identical means the same normalized record (the spec\'s fields after normalization): JSON key order, spacing, members the spec does not read, another accepted date format or decimal notation of the same value do not count. Keys are kept 7 days and pruned hourly; a repeat after that is written again (an upsert). The fields are part of what is compared: after a field is added to or removed from the spec, a record seen before the change and sent again identical is a DUPLICATE_CONFLICT',
    ).optional(),
    enrich: shownDefault(z.array(EnrichSchema).default([]).describe('lookups'), '[]'),
    windows: shownDefault(z.array(WindowSchema).default([]).describe('event-time windows'), '[]'),
    rules: z.array(RuleSchema).default([]).describe('alert rules'),
    sinks: z.array(SinkSchema).default([]).describe('PostgreSQL projections'),
    dlq: strict({topic: topic.describe('dead-letter topic')}, 'dead-letter topic')
      .optional()
      .describe('dead-letter topic; default <name>.dlq'),
    retry: strict(
      {
        max_attempts: z.number().int().min(1).default(5).describe('retries of a batch after which an outage is logged as an error; the run keeps retrying (an outage never stops the pipeline or dead-letters a good record)'),
        initial: shownDefault(duration.default(100).describe('first backoff'), '100ms'),
        max: shownDefault(duration.default(10_000).describe('backoff cap'), '10s'),
      },
      'retry of retriable failures (exponential backoff)',
    )
      .default({max_attempts: 5, initial: 100, max: 10_000})
      .describe('retry of retriable failures (exponential backoff)')
      .meta({'x-default': 'see below'}),
  },
  'pipeline spec, version 1',
)

type RawSpec = z.output<typeof PipelineSpecSchema>
export type FieldSpec = Omit<z.output<typeof FieldSchema>, 'from'> & {from: string}
export type FieldSpecInput = z.input<typeof FieldSchema>
export type SourceSpec = Omit<RawSpec['source'], 'group'> & {group: string}
export type EnrichSpec = z.output<typeof EnrichSchema>
export type WindowSpec = z.output<typeof WindowSchema>
export type RuleSpec = z.output<typeof RuleSchema>
export type SinkSpec = Omit<z.output<typeof SinkSchema>, 'reject_sqlstates'> & {reject_sqlstates?: string[]}
export type DedupeSpec = NonNullable<RawSpec['dedupe']>
export type RetrySpec = RawSpec['retry']
export type PipelineSpec = Omit<RawSpec, 'fields' | 'source' | 'dlq' | 'sinks'> & {
  source: SourceSpec
  fields: Record<string, FieldSpec>
  sinks: SinkSpec[]
  dlq: {topic: string}
}

export interface LoadedSpec {
  spec: PipelineSpec
  /** the path given */
  file: string
  /** SHA-256 (hex) of the file bytes: `cutover.pipeline.version` */
  sha256: string
  text: string
}

export interface SpecProblem {
  file: string
  line?: number
  column?: number
  /** dotted path in the spec, e.g. fields.amount.scale */
  path: string
  message: string
}

/** A field spec from a partial one, with the schema's defaults (tests, `profile`). */
export function parseFieldSpec(name: string, input: FieldSpecInput): FieldSpec {
  const f = FieldSchema.parse(input)
  return {...f, from: f.from ?? name}
}

/** Derived defaults (they depend on other keys, so they cannot live in the schema itself). */
function resolve(raw: RawSpec): PipelineSpec {
  const fields: Record<string, FieldSpec> = {}
  for (const [name, f] of Object.entries(raw.fields)) {
    fields[name] = {...f, from: f.from ?? name, ...(f.type === 'date' && f.formats === undefined ? {formats: ['yyyy-MM-dd']} : {})}
  }
  return {
    ...raw,
    source: {...raw.source, group: raw.source.group ?? `cutover-${raw.name}`},
    fields,
    sinks: raw.sinks.map(({reject_sqlstates, ...sink}) =>
      reject_sqlstates === undefined ? sink : {...sink, reject_sqlstates: reject_sqlstates.map((c) => (typeof c === 'number' ? String(c).padStart(5, '0') : c))},
    ),
    dlq: raw.dlq ?? {topic: `${raw.name}.dlq`},
  }
}

/** `key: a` or `key: [a, b]` -> ['a', 'b']. */
export function namesOf(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : typeof value === 'string' ? [value] : value
}

/**
 * Whether `group_by` name `name` is the derived business_date (the date of event_time in its
 * field's timezone): only when the spec has no field of that name. A field named business_date
 * (the legacy system's own business day, which after a cut-off is not the date of event_time) is
 * grouped as the field it is.
 */
export function derivesBusinessDate(fields: Readonly<Record<string, unknown>>, name: string): boolean {
  return name === 'business_date' && !Object.hasOwn(fields, name)
}

/** The input names (`from`, dotted paths as written) of the `sensitive` fields: what readers keep out of positions. */
export function sensitiveInputs(fields: Readonly<Record<string, FieldSpec>>): string[] {
  return Object.values(fields)
    .filter((f) => f.sensitive)
    .map((f) => f.from)
}

type Path = (string | number)[]

/** The checks the schema cannot express: cross references and values of each field. */
function semanticProblems(spec: PipelineSpec): {path: Path; message: string}[] {
  const out: {path: Path; message: string}[] = []
  const fieldNames = Object.keys(spec.fields)
  const known = `defined fields: ${fieldNames.join(', ') || '(none)'}`
  const needField = (name: string, path: Path, what: string, extra: string[] = []) => {
    if (!(name in spec.fields) && !extra.includes(name)) out.push({path, message: `${what} "${name}" is not a defined field; ${known}${extra.length ? `, ${extra.join(', ')}` : ''}`})
  }
  const needFields = (v: string | string[] | undefined, path: Path, what: string, extra: string[] = []) => {
    namesOf(v).forEach((n, i) => needField(n, typeof v === 'string' ? path : [...path, i], what, extra))
  }

  if (fieldNames.length === 0) out.push({path: ['fields'], message: 'define at least one field (name: {type: ..., from: ...})'})
  for (const [name, f] of Object.entries(spec.fields)) {
    for (const p of checkFieldSpec(name, f)) out.push({path: ['fields', name, ...p.key], message: p.message})
  }
  const s = spec.source
  if (s.format === 'csv' && !s.columns) out.push({path: ['source'], message: 'format csv needs `columns: [...]`: each message is one line, without a header'})
  if (s.header === true) out.push({path: ['source', 'header'], message: 'a message is one line, without a header line: list the columns instead (columns: [...])'})
  if (s.format === 'fixed' && !s.copybook) out.push({path: ['source'], message: 'format fixed needs `copybook: <path of the COBOL copybook>`'})
  for (const k of ['delimiter', 'columns', 'header'] as const) {
    if (s[k] !== undefined && s.format !== 'csv') out.push({path: ['source', k], message: `${k} applies only to format csv (format is ${s.format})`})
  }
  if (s.copybook !== undefined && s.format !== 'fixed') out.push({path: ['source', 'copybook'], message: `copybook applies only to format fixed (format is ${s.format})`})
  // a column named twice: the record would hold the later column's value under the name, the
  // earlier one's lost without a word (columns: [id, amt, amt] wrote the third column as amt)
  s.columns?.forEach((c, j) => {
    const first = s.columns!.indexOf(c)
    if (first !== j) out.push({path: ['source', 'columns', j], message: `column "${c}" is listed twice (positions ${first + 1} and ${j + 1}): a field reading it would get the later one's value only; give each column a name of its own`})
  })

  // a name listed twice in a list of fields: no key, group or dedupe needs it twice, and the start
  // checks then asked for a unique index on (acct, acct) as the fix
  const onceEach = (v: string | string[] | undefined, path: Path, what: string) => {
    if (typeof v === 'string' || v === undefined) return
    v.forEach((n, j) => {
      if (v.indexOf(n) !== j) out.push({path: [...path, j], message: `${what} names "${n}" twice: list each field once`})
    })
  }
  needFields(spec.key, ['key'], 'key')
  onceEach(spec.key, ['key'], 'key')
  if (spec.dedupe) onceEach(spec.dedupe.by, ['dedupe', 'by'], 'dedupe.by')
  if (spec.event_time !== undefined) {
    needField(spec.event_time, ['event_time'], 'event_time')
    const t = spec.fields[spec.event_time]?.type
    if (t !== undefined && t !== 'timestamp') out.push({path: ['event_time'], message: `event_time "${spec.event_time}" must be a timestamp field (it is ${t})`})
  }
  if (spec.dedupe) needFields(spec.dedupe.by, ['dedupe', 'by'], 'dedupe.by')

  const enriched: string[] = []
  const seen = new Map<string, string>()
  const unique = (name: string, path: Path, kind: string) => {
    const prev = seen.get(name)
    if (prev) out.push({path, message: `${kind} name "${name}" is already used by a ${prev}`})
    else seen.set(name, kind)
  }
  spec.enrich.forEach((e, i) => {
    unique(e.name, ['enrich', i, 'name'], 'lookup')
    needFields(e.on, ['enrich', i, 'on'], 'enrich.on')
    e.select.forEach((col, j) => {
      if (col in spec.fields) out.push({path: ['enrich', i, 'select', j], message: `"${col}" is already a field; a lookup column would overwrite it`})
      else if (enriched.includes(col) || e.select.indexOf(col) !== j) {
        const by = spec.enrich.slice(0, i + 1).find((x) => x.select.includes(col))!.name
        out.push({path: ['enrich', i, 'select', j], message: `"${col}" is already selected by lookup ${by}; one would overwrite the other on the record (select it once, or through a view that renames it)`})
      }
    })
    enriched.push(...e.select)
  })
  const checkAggregates = (aggs: Record<string, string> | undefined, path: Path) => {
    for (const [out_, expr] of Object.entries(aggs ?? {})) {
      const a = parseAggregate(expr)
      if (a.field === undefined) continue
      const f = spec.fields[a.field]
      if (!f) out.push({path: [...path, out_], message: `${expr}: "${a.field}" is not a defined field; ${known}`})
      else if (a.fn === 'sum' && f.type !== 'decimal' && f.type !== 'integer')
        out.push({path: [...path, out_], message: `${expr}: sum needs a decimal or integer field ("${a.field}" is ${f.type})`})
      else if ((a.fn === 'min' || a.fn === 'max') && f.type === 'boolean') out.push({path: [...path, out_], message: `${expr}: ${a.fn} of a boolean field is not defined`})
    }
  }
  spec.windows.forEach((w, i) => {
    unique(w.name, ['windows', i, 'name'], 'window')
    needFields(w.by, ['windows', i, 'by'], 'windows.by', enriched)
    if (spec.event_time === undefined) out.push({path: ['windows', i], message: 'windows need `event_time: <timestamp field>`'})
    if (w.slide !== undefined && (w.slide <= 0 || w.slide > w.size)) out.push({path: ['windows', i, 'slide'], message: 'slide must be more than 0 and at most size'})
    if (w.size <= 0) out.push({path: ['windows', i, 'size'], message: 'size must be more than 0'})
    checkAggregates(w.aggregates, ['windows', i, 'aggregates'])
  })
  // each condition parsed and type-checked once (config/rule-expression.ts): a syntax error, an
  // unknown name (a field, <window>.<aggregate>, <lookup>.<column>) or a type error, with its position
  const scope = spec.rules.length > 0 ? ruleScopeOf(spec) : undefined
  spec.rules.forEach((r, i) => {
    unique(r.name, ['rules', i, 'name'], 'rule')
    for (const p of conditionProblems(r.when, scope!)) out.push({path: ['rules', i, 'when'], message: describeProblem(p, r.when)})
    // an alert on the source topic would be read back as a record, one on the DLQ topic taken for a dead letter
    if (r.emit === spec.source.topic) out.push({path: ['rules', i, 'emit'], message: `${r.emit} is the source topic: stream run would read its alerts back as records; give the alerts a topic of their own`})
    else if (r.emit === spec.dlq.topic) out.push({path: ['rules', i, 'emit'], message: `${r.emit} is the dead-letter topic: dlq inspect and replay would take the alerts for dead letters; give the alerts a topic of their own`})
  })
  const groupExtra = spec.event_time !== undefined ? ['business_date', ...enriched] : enriched
  // a table written by two sinks: two aggregate sinks of one table counted and summed every record
  // twice (a spec's sink copied, or split in two); names as written (sinks/index.ts compares them
  // again once `--schema` has qualified them)
  const tables = new Map<string, number>()
  spec.sinks.forEach((k, i) => {
    const prev = tables.get(k.table)
    if (prev === undefined) tables.set(k.table, i)
    else out.push({path: ['sinks', i, 'table'], message: sameTableMessage(k.table, prev, spec.sinks[prev]!, k)})
  })
  spec.sinks.forEach((k, i) => {
    if (k.group_by) k.group_by.forEach((g, j) => needField(g, ['sinks', i, 'group_by', j], 'group_by', groupExtra))
    onceEach(k.group_by, ['sinks', i, 'group_by'], 'group_by')
    for (const column of Object.keys(k.aggregates ?? {})) {
      if (k.group_by?.includes(column)) {
        out.push({path: ['sinks', i, 'aggregates', column], message: `"${column}" is a group_by column: an aggregate needs a column of its own (e.g. ${column}_count)`})
      }
    }
    if (k.aggregates && !k.group_by) out.push({path: ['sinks', i, 'aggregates'], message: 'aggregates need group_by'})
    if (k.group_by && !k.aggregates) out.push({path: ['sinks', i, 'group_by'], message: 'group_by needs aggregates'})
    if (!k.group_by && namesOf(spec.key).length === 0) out.push({path: ['sinks', i], message: 'a sink without group_by upserts by key: set `key: <field>`'})
    checkAggregates(k.aggregates, ['sinks', i, 'aggregates'])
    k.reject_sqlstates?.forEach((code, j) => {
      const why = notARowRefusal(code)
      if (why) out.push({path: ['sinks', i, 'reject_sqlstates', j], message: `${code} ${why}: it cannot mean that the table refuses one row`})
    })
  })
  if (spec.retry.initial > spec.retry.max) out.push({path: ['retry', 'initial'], message: `initial backoff (${spec.retry.initial} ms) is more than max (${spec.retry.max} ms)`})
  return out
}

/**
 * Why two sinks may not write table `table` (sinks[`prev`] and a later one): every record would be
 * written twice, an aggregate's counts and sums doubled. Exported for the runtime's check of the
 * names as `--schema` qualifies them (sinks/index.ts).
 */
export function sameTableMessage(table: string, prev: number, a: SinkSpec, b: SinkSpec): string {
  const merge =
    a.group_by && b.group_by && a.group_by.join(',') === b.group_by.join(',')
      ? 'list all its aggregates in one sink'
      : 'give each sink a table of its own'
  return `table ${table} is already written by sinks[${prev}]: a second sink of one table writes every record into it again (an aggregate's counts and sums twice); ${merge}`
}

/**
 * SQLSTATE classes that are never about one row, so never `reject_sqlstates`: dead-lettering on
 * them would send every record of a batch to the DLQ during an outage, a failover or a missing
 * grant (the runtime retries them instead).
 */
const NOT_ROW_CLASSES: Record<string, string> = {
  '08': 'is a connection failure (class 08)',
  '25': 'is an invalid transaction state (class 25)',
  '28': 'is an authorization failure (class 28)',
  '40': 'is a rollback: a serialization failure or a deadlock (class 40), retried',
  '42': 'is a syntax error or a missing privilege (class 42): a problem of the spec or of the grants',
  '53': 'is a lack of resources (class 53), retried',
  '55': 'is an object not in the required state, e.g. a lock not available (class 55), retried',
  '57': 'is an operator intervention, e.g. a shutdown or a cancel (class 57), retried',
  '58': 'is a system error (class 58)',
  XX: 'is an internal error (class XX)',
}

/** Why `code` may not be listed in `reject_sqlstates`; undefined when it may. */
export function notARowRefusal(code: string): string | undefined {
  return NOT_ROW_CLASSES[code.slice(0, 2)]
}

function describeValue(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a mapping'
  if (typeof v === 'string') return `"${v}"`
  return `${typeof v} ${String(v)}`
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v = data
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined
    v = (v as Record<PropertyKey, unknown>)[p]
  }
  return v
}

export {nearestWord} // from ./nearest-word.ts, where the source URI parser takes it without zod and yaml

/** "allowed keys: a, b, c" + the nearest one to `key`, if close. */
function suggestion(key: string, allowedMessage: string): string {
  const best = nearestWord(key, allowedMessage.replace(/^allowed keys: /, '').split(', '))
  return best !== undefined ? ` (did you mean "${best}"?)` : ''
}

const EXPECTED: Record<string, string> = {array: 'a list', object: 'a mapping', record: 'a mapping', number: 'a number', int: 'an integer', boolean: 'true or false', string: 'text'}

function messageOf(issue: z.core.$ZodIssue, data: unknown): {path: Path; message: string}[] {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))
  const value = valueAt(data, issue.path)
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => ({path: [...path, k], message: `unknown key "${k}"${suggestion(k, issue.message)}; ${issue.message}`}))
    case 'invalid_type':
      if (value === undefined) return [{path, message: `missing required key "${String(path[path.length - 1])}"`}]
      if (issue.message.startsWith('expected a')) return [{path, message: `${issue.message}, got ${describeValue(value)}`}]
      return [{path, message: `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${describeValue(value)}`}]
    case 'invalid_value':
    case 'invalid_union':
    case 'invalid_format':
      return [{path, message: value === undefined ? `missing required key "${String(path[path.length - 1])}"` : `${describeValue(value)} is not allowed; ${issue.message}`}]
    case 'too_small':
      return [{path, message: `${describeValue(value)} is too small: ${issue.message.replace(/^Too small: /, '')}`}]
    case 'too_big':
      return [{path, message: `${describeValue(value)} is too big: ${issue.message.replace(/^Too big: /, '')}`}]
    case 'invalid_key':
      // a mapping's key (a field's or an aggregate's name): what its schema says of it
      return [{path, message: `the name "${String(path[path.length - 1])}": ${issue.issues.map((i) => i.message).join('; ')}`}]
    default:
      return [{path, message: issue.message}]
  }
}

/** The node at `path`, or the nearest ancestor present; for a map key, the key itself. */
function locate(doc: Document.Parsed, lc: LineCounter, path: Path): {line: number; column: number} | undefined {
  let node: unknown = doc.contents
  for (let i = 0; i < path.length; i++) {
    const p = path[i]!
    if (isMap(node)) {
      const pair = node.items.find((it) => (it.key as {value?: unknown} | null)?.value === p || String((it.key as {value?: unknown} | null)?.value) === String(p))
      if (!pair) break
      // the last step of an unknown key points at the key; otherwise at the value
      if (i === path.length - 1 && pair.value === null) node = pair.key
      else node = pair.value ?? pair.key
    } else if (isSeq(node) && typeof p === 'number' && node.items[p] !== undefined) {
      node = node.items[p]
    } else break
  }
  const range = (node as YamlNode | null)?.range
  if (!range) return undefined
  const pos = lc.linePos(range[0])
  return {line: pos.line, column: pos.col}
}

/** Unknown keys point at the key text, not at its value. */
function locateKey(doc: Document.Parsed, lc: LineCounter, path: Path): {line: number; column: number} | undefined {
  const parent = doc.getIn(path.slice(0, -1), true)
  if (isMap(parent)) {
    const pair = parent.items.find((it) => String((it.key as {value?: unknown} | null)?.value) === String(path[path.length - 1]))
    const range = (pair?.key as YamlNode | undefined)?.range
    if (range) {
      const pos = lc.linePos(range[0])
      return {line: pos.line, column: pos.col}
    }
  }
  return locate(doc, lc, path)
}

/** file:line:column of the value at `path` in a loaded spec (for a SpecError raised after parsing). */
export function specLocation(loaded: LoadedSpec, path: Path): {file: string; line?: number; column?: number} {
  const lc = new LineCounter()
  const pos = locate(parseDocument(loaded.text, {lineCounter: lc, merge: true}), lc, path)
  return {file: loaded.file, ...(pos ? {line: pos.line, column: pos.column} : {})}
}

export interface SpecCheck {
  spec?: PipelineSpec
  problems: SpecProblem[]
}

/** The first alias of `doc` whose anchor is not set before it: toJS() says so without a position. */
function unresolvedAlias(doc: Document.Parsed): Alias | undefined {
  let found: Alias | undefined
  visit(doc, {
    Alias(_, node) {
      if (node.resolve(doc) !== undefined) return undefined
      found = node
      return visit.BREAK
    },
  })
  return found
}

/** Every problem of a spec text, each with file:line:column (no throw). */
export function checkSpec(text: string, file: string): SpecCheck {
  const lc = new LineCounter()
  // merge keys (`<<: *defaults`) as YAML 1.1 and most tools read them: a field that shares its options
  // with others through an anchor; without `merge` the key "<<" is an unknown key of the field
  const doc = parseDocument(text, {lineCounter: lc, prettyErrors: true, uniqueKeys: true, merge: true})
  if (doc.errors.length > 0) {
    return {
      problems: doc.errors.map((e) => ({
        file,
        line: e.linePos?.[0]?.line,
        column: e.linePos?.[0]?.col,
        path: '',
        message: `YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`,
      })),
    }
  }
  let data: unknown
  try {
    data = doc.toJS({maxAliasCount: 100})
  } catch (e) {
    // e.g. an alias whose anchor is not set, or an alias bomb
    const alias = unresolvedAlias(doc)
    if (alias) {
      const pos = alias.range ? lc.linePos(alias.range[0]) : undefined
      return {problems: [{file, line: pos?.line ?? 1, column: pos?.col ?? 1, path: '', message: `YAML: alias *${alias.source} names no anchor set before it (&${alias.source})`}]}
    }
    return {problems: [{file, line: 1, column: 1, path: '', message: `YAML: ${(e as Error).message}`}]}
  }
  if (data === null || data === undefined || typeof data !== 'object' || Array.isArray(data)) {
    return {problems: [{file, line: 1, column: 1, path: '', message: 'a pipeline spec is a YAML mapping (version: 1, name: ..., source: ..., fields: ...)'}]}
  }
  const at = (path: Path, message: string, isKey = false): SpecProblem => {
    const pos = isKey ? locateKey(doc, lc, path) : locate(doc, lc, path)
    return {file, line: pos?.line, column: pos?.column, path: path.join('.'), message}
  }
  const parsed = PipelineSpecSchema.safeParse(data)
  if (!parsed.success) {
    const problems: SpecProblem[] = []
    for (const issue of parsed.error.issues) {
      for (const m of messageOf(issue, data)) problems.push(at(m.path, m.message, issue.code === 'unrecognized_keys' || issue.code === 'invalid_key'))
    }
    return {problems: sortProblems(problems)}
  }
  const spec = resolve(parsed.data)
  const problems = semanticProblems(spec).map((p) => at(p.path, p.message))
  return problems.length > 0 ? {problems: sortProblems(problems)} : {spec, problems: []}
}

function sortProblems(ps: SpecProblem[]): SpecProblem[] {
  return ps.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0))
}

/** One SpecError carrying every problem (first one's location; all of them in `details.errors`). */
export function specErrorOf(problems: SpecProblem[]): SpecError {
  const where = (p: SpecProblem) => [p.file, p.line, p.column].filter((x) => x !== undefined).join(':')
  const label = (p: SpecProblem) => (p.path ? `${p.path}: ${p.message}` : p.message)
  const [first, ...rest] = problems
  const message = [label(first!), ...rest.map((p) => `${where(p)}: ${label(p)}`)].join('\n')
  // a YAML syntax error names no key: the file does not parse, and the fix is in its syntax
  const syntax = problems.every((p) => p.message.startsWith('YAML: '))
  const lines = problems.length === 1 ? 'the line above' : `the ${problems.length} lines above`
  return new SpecError({file: first!.file, line: first!.line, column: first!.column}, message, {
    hint: syntax
      ? `the file is not valid YAML at ${lines}: fix the syntax there (indent with spaces, never tabs; quote a value that holds ": " or " #"; close each [ and {)`
      : problems.length === 1 && first!.path === ''
        ? 'write the spec as a YAML mapping of its keys (version: 1, name, source, fields, ...): docs/spec-reference.md lists them'
        : `${problems.length === 1 ? 'the line above names' : `each of the ${problems.length} lines above names`} the key at fault; docs/spec-reference.md lists every key and its allowed values`,
    details: {errors: problems},
  })
}

function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex')
}

function parseWithHash(text: string, file: string, hash: string): LoadedSpec {
  const r = checkSpec(text, file)
  if (!r.spec) throw specErrorOf(r.problems)
  return {spec: r.spec, file, sha256: hash, text}
}

/** Parses and checks a spec text; throws SpecError (exit 2) listing every problem. */
export function parseSpec(text: string, file: string): LoadedSpec {
  return parseWithHash(text, file, sha256(text))
}

/** Reads, parses and checks a spec file; `sha256` is of the file bytes. */
export async function loadSpec(path: string): Promise<LoadedSpec> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (e) {
    throw new SpecError({file: path}, `cannot read the spec: ${(e as Error).message}`, {cause: e, hint: 'check the path of the spec file'})
  }
  let text = bytes.toString('utf8')
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  return parseWithHash(text, path, sha256(bytes))
}
