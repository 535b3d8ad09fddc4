import {createHash} from 'node:crypto'
import {mkdtemp, readFile, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {checkSpec, loadSpec, parseAggregate, parseDuration, parseFieldSpec, parseSpec} from '../../src/config/spec.js'
import {specReferenceMarkdown} from '../../src/config/spec-reference.js'
import {ExitCode, SpecError} from '../../src/errors.js'
import {ROOT} from '../helpers.js'

const EXAMPLE = join(ROOT, 'fixtures/specs/card-transactions.yaml')

/** A small valid spec; `extra` lines are appended, `fields` replaces the fields block. */
function spec(fields = '  id: {type: string, required: true}\n', extra = ''): string {
  return `version: 1\nname: t\nsource:\n  topic: t.raw\nfields:\n${fields}key: id\n${extra}`
}

function problems(text: string) {
  return checkSpec(text, 'p.yaml').problems
}

describe('pipeline spec: the DESIGN.md example', () => {
  it('validates, with defaults and derived defaults filled in one place', async () => {
    const loaded = await loadSpec(EXAMPLE)
    const s = loaded.spec
    expect(s.name).toBe('card-transactions')
    expect(Object.keys(s.fields)).toEqual(['txn_id', 'account_id', 'amount', 'currency', 'event_time', 'merchant'])
    expect(s.fields.amount).toMatchObject({from: 'amt', type: 'decimal', scale: 2, precision: 18, required: true})
    expect(s.fields.currency!.from).toBe('currency') // `from` defaults to the field name
    expect(s.fields.event_time!.timezone).toBe('Europe/Moscow')
    expect(s.source).toEqual({topic: 'txn.raw', group: 'cutover-txn', format: 'json', encoding: 'utf-8'})
    expect(s.retry).toEqual({max_attempts: 5, initial: 100, max: 10_000}) // durations in ms
    expect(s.enrich[0]!.cache).toEqual({max_entries: 100_000, ttl: 300_000})
    expect(s.enrich[0]!.missing).toBe('dlq')
    expect(s.windows[0]).toMatchObject({size: 600_000, slide: 60_000, allowed_lateness: 120_000})
    expect(s.dlq).toEqual({topic: 'txn.dlq'})
    expect(s.sinks[1]!.group_by).toEqual(['account_id', 'business_date'])
  })

  it('sha256 is of the file bytes', async () => {
    const loaded = await loadSpec(EXAMPLE)
    expect(loaded.sha256).toBe(createHash('sha256').update(await readFile(EXAMPLE)).digest('hex'))
    expect(loaded.file).toBe(EXAMPLE)
  })

  it('derives group and dlq topic from the name when absent', () => {
    const {spec: s} = parseSpec(spec(), 'x.yaml')
    expect(s.source.group).toBe('cutover-t')
    expect(s.dlq.topic).toBe('t.dlq')
    expect(s.enrich).toEqual([])
    expect(s.retry).toEqual({max_attempts: 5, initial: 100, max: 10_000})
  })

  it('reads `missing: null` (YAML null) as the null policy', () => {
    const s = parseSpec(spec('  id: {type: string}\n', 'enrich:\n  - {name: a, table: accounts, on: id, select: [x], missing: null}\n'), 'x.yaml').spec
    expect(s.enrich[0]!.missing).toBe('null')
  })
})

describe('pipeline spec: structural errors with file:line:column', () => {
  it('an unknown key names the allowed keys, suggests the near one and points at the key', () => {
    const ps = problems(spec('  id: {type: string, required: true}\n  amount: {type: decimal, scal: 2}\n'))
    const p = ps.find((x) => x.path === 'fields.amount.scal')!
    expect(p).toMatchObject({file: 'p.yaml', line: 7})
    expect(p.column).toBe(27)
    expect(p.message).toContain('unknown key "scal"')
    expect(p.message).toContain('did you mean "scale"?')
    expect(p.message).toContain('allowed keys: from, type, required, trim, empty_as_null, default, pattern, max_length, sensitive, scale')
  })

  it('a bad enum value lists the allowed values at the value position', () => {
    const ps = problems(`version: 1\nname: t\nsource:\n  topic: t.raw\n  format: xml\nfields:\n  id: {type: strin}\n`)
    expect(ps).toContainEqual(expect.objectContaining({line: 5, column: 11, path: 'source.format', message: '"xml" is not allowed; allowed: json, csv, fixed'}))
    expect(ps).toContainEqual(
      expect.objectContaining({line: 7, column: 14, path: 'fields.id.type', message: '"strin" is not allowed; allowed: string, integer, decimal, timestamp, date, boolean'}),
    )
  })

  it('reports every problem, not only the first', () => {
    const text = `version: 2\nname: Bad Name\nsource:\n  topic: t.raw\n  encodng: utf-8\n  encoding: koi8\nfields:\n  id: {type: string, required: yes}\nretry: {initial: 10 seconds}\n`
    const ps = problems(text)
    expect(ps.map((p) => p.path)).toEqual(['version', 'name', 'source.encodng', 'source.encoding', 'fields.id.required', 'retry.initial'])
    expect(ps.every((p) => p.line !== undefined && p.column !== undefined)).toBe(true)
    expect(ps.find((p) => p.path === 'fields.id.required')!.message).toBe('expected true or false, got "yes"')
    expect(ps.find((p) => p.path === 'retry.initial')!.message).toContain('expected a duration such as 100ms, 10s, 5m')
  })

  it('a missing required key points at its parent', () => {
    const ps = problems(`version: 1\nname: t\nsource:\n  group: g\nfields: {}\n`)
    expect(ps).toEqual([expect.objectContaining({path: 'source.topic', line: 4, column: 3, message: 'missing required key "topic"'})])
  })

  it('a YAML syntax error has its position', () => {
    const ps = problems('version: 1\nname: [t\n')
    expect(ps[0]!.message).toMatch(/^YAML: /)
    expect(ps[0]!.line).toBeGreaterThanOrEqual(2)
  })

  it('duplicate keys are errors', () => {
    const ps = problems(spec('  id: {type: string}\n  id: {type: integer}\n'))
    expect(ps[0]!.message).toMatch(/unique/i)
    expect(ps[0]!.line).toBe(7)
  })

  it('a spec that is not a mapping says what a spec is', () => {
    expect(problems('- a\n- b\n')[0]!.message).toContain('a pipeline spec is a YAML mapping')
  })

  it('parseSpec throws one SpecError (exit 2) listing all problems with file:line:column', async () => {
    const text = `version: 1\nname: t\nsource:\n  topic: t.raw\n  format: xml\nfields:\n  id: {type: strin}\n`
    let err: unknown
    try {
      parseSpec(text, 'bad.yaml')
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(SpecError)
    const e = err as SpecError
    expect(e.exitCode).toBe(ExitCode.USAGE)
    expect(e.location).toEqual({file: 'bad.yaml', line: 5, column: 11})
    expect(e.message.split('\n')).toEqual([
      'bad.yaml:5:11: source.format: "xml" is not allowed; allowed: json, csv, fixed',
      'bad.yaml:7:14: fields.id.type: "strin" is not allowed; allowed: string, integer, decimal, timestamp, date, boolean',
    ])
    expect((e.details.errors as unknown[]).length).toBe(2)
    expect(e.hint).toContain('docs/spec-reference.md')
    // the file the hint names ships with the package
    const files = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {files: string[]}).files
    expect(files).toContain('docs/spec-reference.md')
  })

  it('loadSpec of a missing file is a SpecError naming the file', async () => {
    await expect(loadSpec('/nonexistent/spec.yaml')).rejects.toThrow(/\/nonexistent\/spec.yaml: cannot read the spec/)
  })

  it('loadSpec reports positions in the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spec-'))
    const file = join(dir, 'p.yaml')
    await writeFile(file, spec('  id: {type: decimal}\n'))
    await expect(loadSpec(file)).rejects.toThrow(`${file}:6:14: fields.id.type: decimal field "id" needs \`scale\``)
  })
})

describe('pipeline spec: meaning', () => {
  const msg = (text: string) => problems(text).map((p) => `${p.path}: ${p.message}`)

  it('key, event_time, dedupe.by, enrich.on, windows.by and group_by must name defined fields', () => {
    const text = `version: 1
name: t
source: {topic: t.raw}
fields:
  id: {type: string}
  ts: {type: timestamp, formats: [iso]}
  amount: {type: decimal, scale: 2}
key: idx
event_time: tss
dedupe: {by: [id, nope]}
enrich:
  - {name: acc, table: accounts, on: acct, select: [segment]}
windows:
  - {name: w, by: who, size: 10m, aggregates: {n: count}}
sinks:
  - {table: daily, group_by: [segment, business_date, zzz], aggregates: {n: count}}
`
    const m = msg(text)
    expect(m).toContain('key: key "idx" is not a defined field; defined fields: id, ts, amount')
    expect(m).toContain('event_time: event_time "tss" is not a defined field; defined fields: id, ts, amount')
    expect(m).toContain('dedupe.by.1: dedupe.by "nope" is not a defined field; defined fields: id, ts, amount')
    expect(m).toContain('enrich.0.on: enrich.on "acct" is not a defined field; defined fields: id, ts, amount')
    expect(m.some((x) => x.startsWith('windows.0.by: windows.by "who" is not a defined field'))).toBe(true)
    // business_date and enriched columns are allowed in group_by; zzz is not
    expect(m.filter((x) => x.startsWith('sinks.0.group_by'))).toEqual([
      'sinks.0.group_by.2: group_by "zzz" is not a defined field; defined fields: id, ts, amount, business_date, segment',
    ])
  })

  it('event_time must be a timestamp field; windows need event_time', () => {
    expect(msg(spec('  id: {type: string}\n', 'event_time: id\n'))).toContain('event_time: event_time "id" must be a timestamp field (it is string)')
    expect(msg(spec('  id: {type: string}\n', 'windows:\n  - {name: w, by: id, size: 1m, aggregates: {n: count}}\n'))).toContain(
      'windows.0: windows need `event_time: <timestamp field>`',
    )
  })

  it('decimal needs scale; scale only on decimals', () => {
    expect(msg(spec('  id: {type: decimal}\n'))).toEqual(['fields.id.type: decimal field "id" needs `scale` (digits after the point, e.g. scale: 2)'])
    expect(msg(spec('  id: {type: string, scale: 2}\n'))).toEqual(['fields.id.scale: scale applies only to decimal fields ("id" is string)'])
  })

  it('timestamp needs formats that compile, and a real IANA timezone', () => {
    expect(msg(spec('  id: {type: timestamp}\n'))[0]).toContain('timestamp field "id" needs `formats`')
    const m = msg(spec('  id: {type: timestamp, timezone: Mars/Olympus, formats: [iso, "dd.MM.yy", "dd.QQ.yyyy"]}\n'))
    expect(m).toContain('fields.id.formats.1: "yy" in "dd.MM.yy": use yyyy (a two-digit year needs a century guess)')
    expect(m.some((x) => x.startsWith('fields.id.formats.2: unknown token "QQ"'))).toBe(true)
    expect(m).toContain('fields.id.timezone: unknown timezone "Mars/Olympus" (expected an IANA name such as Europe/Moscow or UTC)')
  })

  it('patterns must be valid regular expressions; defaults valid values', () => {
    expect(msg(spec('  id: {type: string, pattern: "^[A-Z"}\n'))[0]).toMatch(/^fields\.id\.pattern: not a valid regular expression/)
    expect(msg(spec('  id: {type: string, default: rub, pattern: "^[A-Z]{3}$"}\n'))).toEqual(['fields.id.default: default "rub" does not match the pattern ^[A-Z]{3}$'])
    expect(msg(spec('  id: {type: decimal, scale: 2, default: "1.234"}\n'))[0]).toMatch(/^fields\.id\.default: default "1\.234" is ambiguous/)
    expect(msg(spec('  id: {type: boolean, default: maybe}\n'))[0]).toMatch(/^fields\.id\.default: default "maybe" is not a boolean/)
    expect(msg(spec('  id: {type: decimal, scale: 2, default: 0}\n'))).toEqual([])
  })

  it('sum(x) needs a decimal or integer field', () => {
    const text = spec(
      '  id: {type: string}\n  amount: {type: decimal, scale: 2}\n  ts: {type: timestamp, formats: [iso]}\n',
      'event_time: ts\nsinks:\n  - {table: d, group_by: [business_date], aggregates: {a: sum(amount), b: sum(id), c: max(nope)}}\n',
    )
    expect(msg(text)).toEqual([
      'sinks.0.aggregates.b: sum(id): sum needs a decimal or integer field ("id" is string)',
      'sinks.0.aggregates.c: max(nope): "nope" is not a defined field; defined fields: id, amount, ts',
    ])
  })

  it('source options match the format', () => {
    expect(msg(`version: 1\nname: t\nsource: {topic: t, format: csv}\nfields: {a: {type: string}}\n`)).toEqual(['source: format csv needs `columns: [...]`: each message is one line, without a header'])
    // header: true validated, then refused by stream run (the only reader of source.*): refused here, at its line
    expect(msg(`version: 1\nname: t\nsource: {topic: t, format: csv, header: true, columns: [a]}\nfields: {a: {type: string}}\n`)).toEqual([
      'source.header: a message is one line, without a header line: list the columns instead (columns: [...])',
    ])
    expect(msg(`version: 1\nname: t\nsource: {topic: t, format: json, delimiter: ";"}\nfields: {a: {type: string}}\n`)).toEqual([
      'source.delimiter: delimiter applies only to format csv (format is json)',
    ])
    expect(msg(`version: 1\nname: t\nsource: {topic: t, format: fixed}\nfields: {a: {type: string}}\n`)).toEqual([
      'source: format fixed needs `copybook: <path of the COBOL copybook>`',
    ])
  })

  it('rules refer to window aggregates and lookup columns that exist', () => {
    const text = spec(
      '  id: {type: string}\n  ts: {type: timestamp, formats: [iso]}\n',
      'event_time: ts\nenrich:\n  - {name: account, table: accounts, on: id, select: [segment]}\nwindows:\n  - {name: velocity, by: id, size: 10m, aggregates: {txn_count: count}}\nrules:\n' +
        '  - {name: ok, when: "velocity.txn_count > 5 and account.segment == \'a.b\'", emit: alerts}\n' +
        '  - {name: bad, when: "velocity.count > 5 or speed.x > 1", emit: alerts}\n',
    )
    expect(msg(text)).toEqual([
      'rules.1.when: "velocity.count": "velocity" has no "count" (it has txn_count) (at character 1 of the condition)',
      'rules.1.when: "speed.x": "speed" is not a window or a lookup (windows: velocity) (at character 23 of the condition)',
    ])
  })

  it('at least one field; lookup columns do not overwrite fields', () => {
    expect(msg(`version: 1\nname: t\nsource: {topic: t}\nfields: {}\n`)).toEqual(['fields: define at least one field (name: {type: ..., from: ...})'])
    expect(msg(spec('  id: {type: string}\n', 'enrich:\n  - {name: a, table: accounts, on: id, select: [segment, id]}\n'))).toEqual([
      'enrich.0.select.1: "id" is already a field; a lookup column would overwrite it',
    ])
    // a column two lookups select (or one twice): the later would overwrite the earlier on the record
    expect(msg(spec('  id: {type: string}\n', 'enrich:\n  - {name: a, table: accounts, on: id, select: [segment]}\n  - {name: b, table: cards, on: id, select: [limit, segment, limit]}\n'))).toEqual([
      'enrich.1.select.1: "segment" is already selected by lookup a; one would overwrite the other on the record (select it once, or through a view that renames it)',
      'enrich.1.select.2: "limit" is already selected by lookup b; one would overwrite the other on the record (select it once, or through a view that renames it)',
    ])
  })

  it('sinks: upsert needs a key; aggregates need group_by; retry initial <= max', () => {
    const noKey = `version: 1\nname: t\nsource: {topic: t}\nfields: {a: {type: string}}\nsinks: [{table: x}]\nretry: {initial: 1m, max: 10s}\n`
    expect(msg(noKey)).toEqual([
      'sinks.0: a sink without group_by upserts by key: set `key: <field>`',
      'retry.initial: initial backoff (60000 ms) is more than max (10000 ms)',
    ])
    expect(msg(spec('  id: {type: integer}\n', 'sinks: [{table: x, aggregates: {n: count}}]\n'))).toEqual(['sinks.0.aggregates: aggregates need group_by'])
  })

  it('a table in two sinks, a csv column, key, dedupe or group_by field named twice, an aggregate column named like a group_by column (each wrote twice, read the wrong column or hinted a wrong fix)', () => {
    const agg = '{table: t, group_by: [id], aggregates: {n: count}}'
    expect(msg(spec(undefined, `sinks: [${agg}, {table: x}, ${agg}]\n`))).toEqual([
      "sinks.2.table: table t is already written by sinks[0]: a second sink of one table writes every record into it again (an aggregate's counts and sums twice); list all its aggregates in one sink",
    ])
    expect(msg(spec(undefined, 'sinks: [{table: x}, {table: x}]\n'))).toEqual([
      "sinks.1.table: table x is already written by sinks[0]: a second sink of one table writes every record into it again (an aggregate's counts and sums twice); give each sink a table of its own",
    ])
    // names as written: s.t and t may be one table, which only --schema tells (the runtime compares them)
    expect(msg(spec(undefined, `sinks: [${agg}, ${agg.replace('table: t', 'table: s.t')}]\n`))).toEqual([])
    expect(msg(`version: 1\nname: t\nsource: {topic: t, format: csv, columns: [id, amt, amt]}\nfields: {id: {type: string}}\n`)).toEqual([
      'source.columns.2: column "amt" is listed twice (positions 2 and 3): a field reading it would get the later one\'s value only; give each column a name of its own',
    ])
    const two = 'fields: {id: {type: string}, a: {type: string}}\nkey: [id, a, id]\ndedupe: {by: [a, a]}\nsinks: [{table: t, group_by: [a, id, a], aggregates: {id: count, n: count}}]\n'
    expect(msg(`version: 1\nname: t\nsource: {topic: t}\n${two}`)).toEqual([
      'key.2: key names "id" twice: list each field once',
      'dedupe.by.1: dedupe.by names "a" twice: list each field once',
      'sinks.0.group_by.2: group_by names "a" twice: list each field once',
      'sinks.0.aggregates.id: "id" is a group_by column: an aggregate needs a column of its own (e.g. id_count)',
    ])
  })
})

describe('spec helpers', () => {
  it('parseDuration', () => {
    expect([parseDuration('100ms'), parseDuration('10s'), parseDuration('5m'), parseDuration('1h'), parseDuration('2d'), parseDuration(250)]).toEqual([
      100, 10_000, 300_000, 3_600_000, 172_800_000, 250,
    ])
    expect(() => parseDuration('5 min')).toThrow()
  })

  it('parseAggregate', () => {
    expect(parseAggregate('count')).toEqual({fn: 'count'})
    expect(parseAggregate('sum(amount)')).toEqual({fn: 'sum', field: 'amount'})
    expect(() => parseAggregate('avg(x)')).toThrow()
  })

  it('parseFieldSpec fills the defaults', () => {
    expect(parseFieldSpec('amount', {type: 'decimal', scale: 2})).toMatchObject({from: 'amount', required: false, trim: false, precision: 18, timezone: 'UTC'})
  })
})

describe('docs/spec-reference.md', () => {
  it('is generated from the schema (regenerate: see src/config/spec-reference.ts)', async () => {
    const committed = await readFile(join(ROOT, 'docs/spec-reference.md'), 'utf8')
    expect(committed).toBe(specReferenceMarkdown())
  })

  it('documents every key of a field with its allowed values and defaults', () => {
    const md = specReferenceMarkdown()
    expect(md).toContain('| `type` | `string` \\| `integer` \\| `decimal` \\| `timestamp` \\| `date` \\| `boolean` | **required** |')
    expect(md).toContain('| `ttl` | duration (`100ms`, `10s`, `5m`, `1h`, `1d`) | `5m` |')
    expect(md).toContain('## `fields.<name>`')
  })
})

describe('checkSpec never throws', () => {
  it('on arbitrary text and arbitrary YAML values: problems with positions instead', async () => {
    const fc = (await import('fast-check')).default
    const {stringify} = await import('yaml')
    const base = {version: 1, name: 't', source: {topic: 't'}, fields: {id: {type: 'string'}}, key: 'id'}
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.jsonValue().map((v) => stringify(v)), fc.jsonValue().map((v) => stringify({...base, fields: {id: v}})), fc.jsonValue().map((v) => stringify({...base, source: v, windows: [v]}))), (text) => {
        const r = checkSpec(text, 'fuzz.yaml')
        if (!r.spec) {
          expect(r.problems.length).toBeGreaterThan(0)
          for (const p of r.problems) expect(p, p.message).toMatchObject({file: 'fuzz.yaml', line: expect.any(Number), column: expect.any(Number)})
        }
      }),
      {numRuns: 1500},
    )
  })
})

describe('pipeline spec: names PostgreSQL would cut', () => {
  it('a field or aggregate name over 63 characters is refused where it stands, with the name it would be cut to', () => {
    const long = `f_${'y'.repeat(70)}`
    const ps = problems(spec(`  id: {type: string, required: true}\n  ${long}: {type: string}\n`, `sinks:\n  - {table: totals, group_by: [id], aggregates: {${long}: count}}\n`))
    expect(ps.map((p) => [p.path, p.line, p.column])).toEqual([
      [`fields.${long}`, 7, 3],
      [`sinks.0.aggregates.${long}`, 10, 50],
    ])
    expect(ps[0]!.message).toContain(`a name of at most 63 characters: PostgreSQL cuts longer ones (this one to ${long.slice(0, 63)})`)
    expect(problems(spec(`  id: {type: string, required: true}\n  ${long.slice(0, 63)}: {type: string}\n`))).toEqual([])
  })
})
