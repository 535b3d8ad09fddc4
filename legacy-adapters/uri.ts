/**
 * Source URIs: one syntax for normalize, backfill, parity and profile (DESIGN.md).
 *
 *   csv:data/txn-2026-11-20.csv?delimiter=;&encoding=windows-1251
 *   fixed:data/TXN.DAT?copybook=fixtures/txn.cpy&encoding=cp037
 *   pg:legacy.daily_totals?where=business_date='2026-11-20'
 *   pg:query=SELECT id, amount FROM legacy.txn WHERE amount > 0
 *   kafka:txn.raw?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z
 *
 * Grammar: `scheme:target[?name=value[&name=value...]]`. The scheme is everything before the
 * first `:`; the target is everything up to the first `?`. Parameters are split on `&`, then
 * on the first `=`; `%XX` escapes are decoded where they form valid UTF-8 (write `%26` for a
 * literal `&`, `%3F` for `?` and `%25` for `%`), anything else is kept as written, so
 * `where=name LIKE '%ab'` survives. `pg:query=...` is special: everything after `query=` is
 * the SQL text, taken verbatim (it may contain `?`, `&` and `=`); other pg parameters go
 * before it: `pg:?key=id&query=SELECT ...`.
 *
 * Every scheme declares its parameters here, with a description and a check, so that an
 * unknown parameter (with the nearest known one: `delimter` -> did you mean `delimiter`) or a bad
 * value is a UsageError naming the fix, before any file is opened.
 */
import {nearestWord} from '../src/config/nearest-word.js'
import {UsageError} from '../src/errors.js'
import {SUPPORTED_ENCODINGS, lookupEncoding} from '../src/normalize/encoding.js'
import type {SourceUri} from './types.js'

export interface ParamSpec {
  description: string
  /** returns a problem ("must be true or false") or undefined when the value is fine */
  check?: (value: string) => string | undefined
}

export interface SchemeSpec {
  scheme: string
  description: string
  example: string
  /** what the target names */
  target: string
  params: Record<string, ParamSpec>
}

const bool = (v: string) => (v === 'true' || v === 'false' ? undefined : 'must be true or false')
const positiveInt = (v: string) => (/^[1-9]\d*$/.test(v) ? undefined : 'must be a positive integer')
const nonEmpty = (v: string) => (v.length > 0 ? undefined : 'must not be empty')
const encoding = (allowed: readonly string[]) => (v: string) => {
  const enc = lookupEncoding(v)
  return enc && allowed.includes(enc) ? undefined : `must be one of ${allowed.join(', ')}`
}
const isoTime = (v: string) =>
  /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(v) && !Number.isNaN(Date.parse(v))
    ? undefined
    : 'must be an ISO-8601 time with a zone, e.g. 2026-11-01T00:00:00Z'
const singleChar = (v: string) => {
  const c = unescapeChar(v)
  return c.length === 1 ? undefined : 'must be one character (or tab, \\t)'
}
const columnList = (v: string) => (v.split(',').every((c) => c.trim().length > 0) ? undefined : 'must be a comma-separated list of names, e.g. id,acct,amt')

/** `tab`, `\t`, `semicolon`... to the character. */
export function unescapeChar(v: string): string {
  const named: Record<string, string> = {tab: '\t', '\\t': '\t', semicolon: ';', comma: ',', pipe: '|', space: ' ', none: ''}
  return named[v] ?? v
}

export const CSV_TEXT_ENCODINGS = ['utf-8', 'windows-1251', 'ibm866', 'latin1', 'ascii', 'cp037', 'cp1047'] as const

export const SCHEMES: Record<string, SchemeSpec> = {
  csv: {
    scheme: 'csv',
    description: 'a delimited text file, streamed',
    example: 'csv:data/txn-2026-11-20.csv?delimiter=;&encoding=windows-1251',
    target: 'a file path (relative to the working directory)',
    params: {
      delimiter: {description: 'field delimiter, one character (default ","; `tab` or `\\t` for tab)', check: singleChar},
      quote: {description: 'quote character (default "); `none` disables quoting', check: (v) => (unescapeChar(v).length <= 1 ? undefined : 'must be one character or none')},
      escape: {description: 'escape character inside quotes (default: the quote character)', check: singleChar},
      encoding: {description: `file encoding (default utf-8, BOM optional): ${CSV_TEXT_ENCODINGS.join(', ')}`, check: encoding(CSV_TEXT_ENCODINGS)},
      header: {description: 'the first row names the columns (default true)', check: bool},
      columns: {description: 'column names, comma-separated (with header=false, or to rename the header)', check: columnList},
      skip_empty_lines: {description: 'skip blank lines (default true)', check: bool},
      comment: {description: 'lines starting with this character are comments (default: none)', check: singleChar},
      max_record_bytes: {description: 'largest record in bytes before RECORD_TOO_LARGE (default 16777216)', check: positiveInt},
    },
  },
  fixed: {
    scheme: 'fixed',
    description: 'fixed-length records described by a COBOL copybook',
    example: 'fixed:data/TXN.DAT?copybook=fixtures/txn.cpy&encoding=cp037',
    target: 'a file path (relative to the working directory)',
    params: {
      copybook: {description: 'path of the COBOL copybook describing one record (required)', check: nonEmpty},
      encoding: {description: 'character encoding of text and zoned fields: cp037 (default), cp1047 (EBCDIC); ascii, latin1, windows-1251, ibm866, utf-8 (ASCII zoned digits)', check: encoding(SUPPORTED_ENCODINGS)},
      record_length: {description: 'bytes per record when it differs from the copybook (trailing bytes ignored)', check: positiveInt},
      rdw: {description: 'records are variable-length, each preceded by a 4-byte record descriptor word (default false)', check: bool},
    },
  },
  pg: {
    scheme: 'pg',
    description: 'a PostgreSQL table, view or query on DATABASE_URL, streamed',
    example: "pg:legacy.daily_totals?where=business_date='2026-11-20'",
    target: 'schema.table or table, or `query=SELECT ...`',
    params: {
      query: {description: 'a SELECT to stream instead of a table (write it as pg:query=SELECT ...)', check: nonEmpty},
      where: {description: 'SQL condition appended as WHERE (trusted operator input, not escaped)', check: nonEmpty},
      order_by: {description: 'SQL ORDER BY list (trusted operator input), e.g. business_date,id', check: nonEmpty},
      key: {description: 'column whose value is the record position key (default: the row number; the row number too when --spec marks its field sensitive)', check: nonEmpty},
      batch_size: {description: 'rows fetched per round trip (default 2000)', check: positiveInt},
    },
  },
  kafka: {
    scheme: 'kafka',
    description: 'a Kafka topic from its start (or `from`) to its end at the time of reading (or `to`)',
    example: 'kafka:txn.raw?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z',
    target: 'a topic name',
    params: {
      from: {description: 'first record timestamp, inclusive (ISO-8601 with zone)', check: isoTime},
      to: {description: 'end record timestamp, exclusive (ISO-8601 with zone)', check: isoTime},
      format: {description: 'json (default: the value is a JSON object) or text (the value is one field `value`)', check: (v) => (v === 'json' || v === 'text' ? undefined : 'must be json or text')},
      encoding: {description: `encoding of text values (default utf-8): ${SUPPORTED_ENCODINGS.join(', ')}`, check: encoding(SUPPORTED_ENCODINGS)},
    },
  },
}

const PERCENT = /(?:%[0-9A-Fa-f]{2})+/g

/** Decodes `%XX` runs that form valid UTF-8; leaves every other `%` as written. */
export function decodePercent(s: string): string {
  if (!s.includes('%')) return s
  return s.replace(PERCENT, (run) => {
    try {
      return decodeURIComponent(run)
    } catch {
      // Not valid UTF-8 as a whole (LIKE '%ab%25'): decode the ASCII escapes one by one and
      // keep the rest as a literal percent sign followed by hex digits.
      return run.replace(/%([0-7][0-9A-Fa-f])/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    }
  })
}

function describeParams(spec: SchemeSpec): string {
  return Object.keys(spec.params).join(', ')
}

/**
 * Parses a source URI. Throws UsageError for an unknown scheme, a missing target, an unknown
 * parameter or a bad value, each with the fix.
 */
export function parseSourceUri(text: string): SourceUri {
  const src = text.trim()
  const colon = src.indexOf(':')
  const known = Object.keys(SCHEMES)
  if (colon <= 0) {
    throw new UsageError(`source "${text}" has no scheme`, {
      hint: `write scheme:target, one of ${known.map((s) => `${s}:`).join(' ')} (e.g. ${SCHEMES.csv!.example})`,
    })
  }
  const scheme = src.slice(0, colon).toLowerCase()
  const spec = SCHEMES[scheme]
  if (!spec) {
    throw new UsageError(`source "${text}": unknown scheme "${scheme}:"`, {
      hint: `use one of ${known.map((s) => `${s}:`).join(', ')}, e.g. ${known.map((s) => SCHEMES[s]!.example).join(' or ')}`,
    })
  }
  let rest = src.slice(colon + 1)
  // pg: names a table on DATABASE_URL, never a server: a connection string here (pg://user:pass@host/db)
  // would be taken as a table name and quoted back in every message, its password with it
  if (scheme === 'pg' && rest.startsWith('//')) {
    throw new UsageError('a pg: source names a table or a query on DATABASE_URL, not a server: it does not take a connection string (not quoted here: it may hold a password)', {
      hint: 'set DATABASE_URL (or CUTOVER_LEFT_DATABASE_URL / CUTOVER_RIGHT_DATABASE_URL for parity) to the server, and write pg:schema.table',
    })
  }
  const params: Record<string, string> = {}
  if (scheme === 'pg' && /^query=/i.test(rest)) rest = '?' + rest // pg:query=SELECT ... (the common form)
  const q = rest.indexOf('?')
  const target = decodePercent(q === -1 ? rest : rest.slice(0, q))
  rest = q === -1 ? '' : rest.slice(q + 1)
  while (rest !== '') {
    // pg's query= takes the rest verbatim, so it comes last: pg:?key=id&query=SELECT ...
    if (scheme === 'pg' && /^query=/i.test(rest)) {
      params.query = rest.slice('query='.length).trim()
      break
    }
    const amp = rest.indexOf('&')
    const part = amp === -1 ? rest : rest.slice(0, amp)
    rest = amp === -1 ? '' : rest.slice(amp + 1)
    if (part === '') continue
    const eq = part.indexOf('=')
    const name = (eq === -1 ? part : part.slice(0, eq)).trim()
    const value = eq === -1 ? '' : decodePercent(part.slice(eq + 1))
    if (!Object.hasOwn(spec.params, name)) {
      // hasOwn, not `in`: toString= or constructor= is no parameter of any scheme
      const near = nearestWord(name.toLowerCase(), Object.keys(spec.params))
      throw new UsageError(`source "${text}": unknown parameter "${name}" for ${scheme}:${near ? ` (did you mean "${near}"?)` : ''}`, {
        hint: `${near ? `write ${near}=, not ${name}=; ` : ''}${scheme}: takes ${describeParams(spec)}`,
        details: {parameter: name, ...(near ? {did_you_mean: near} : {}), known_parameters: Object.keys(spec.params)},
      })
    }
    if (eq === -1) {
      throw new UsageError(`source "${text}": parameter "${name}" has no value`, {hint: `write ${name}=<value>: ${spec.params[name]!.description}`})
    }
    if (name in params) {
      throw new UsageError(`source "${text}": parameter "${name}" is given twice`, {hint: 'give each parameter once'})
    }
    params[name] = value
  }
  for (const [name, value] of Object.entries(params)) {
    const problem = spec.params[name]!.check?.(value)
    if (problem) {
      throw new UsageError(`source "${text}": ${name}="${value}" ${problem}`, {hint: `${name}: ${spec.params[name]!.description}`})
    }
  }
  if (target === '' && !(scheme === 'pg' && params.query !== undefined)) {
    throw new UsageError(`source "${text}" names no ${scheme === 'kafka' ? 'topic' : scheme === 'pg' ? 'table' : 'file'}`, {
      hint: `write ${spec.example}`,
    })
  }
  if (scheme === 'pg' && params.query !== undefined && target !== '') {
    throw new UsageError(`source "${text}" gives both a table and a query`, {hint: 'write pg:schema.table or pg:query=SELECT ..., not both'})
  }
  if (scheme === 'fixed' && params.copybook === undefined) {
    throw new UsageError(`source "${text}" has no copybook`, {hint: `fixed: needs copybook=<path>, e.g. ${spec.example}`})
  }
  if (scheme === 'csv' && params.header === 'false' && params.columns === undefined) {
    throw new UsageError(`source "${text}": header=false needs columns`, {hint: 'add columns=a,b,c naming the fields in order'})
  }
  if (scheme === 'kafka' && params.from && params.to && Date.parse(params.from) >= Date.parse(params.to)) {
    throw new UsageError(`source "${text}": from is not before to`, {hint: 'from is inclusive and to exclusive; give from < to'})
  }
  return {scheme, target, params, text}
}

/** The source URI reference in Markdown, generated from SCHEMES (kept in legacy-adapters/README.md). */
export function renderSchemesReference(): string {
  const out: string[] = []
  for (const spec of Object.values(SCHEMES)) {
    out.push(`### \`${spec.scheme}:\` ${spec.description}`, '', `Target: ${spec.target}. Example: \`${spec.example}\``, '', '| parameter | meaning |', '| --- | --- |')
    for (const [name, p] of Object.entries(spec.params)) out.push(`| \`${name}\` | ${p.description.replace(/\|/g, '\\|')} |`)
    out.push('')
  }
  return out.join('\n')
}
