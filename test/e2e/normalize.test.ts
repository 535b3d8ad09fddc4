/**
 * Golden tests for every legacy fixture (fixtures/golden/<case>/: source.uri, spec.yaml,
 * expected.ndjson, rejects.ndjson, summary.json) through the built CLI, plus the
 * behaviour of `normalize` and `profile` a user relies on: exit codes, --json fields,
 * conservation (read = ok + rejected + duplicates).
 */
import {existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestTopic, kafka, ROOT, runCli} from '../helpers.js'

const GOLDEN = join(ROOT, 'fixtures', 'golden')
const lines = (text: string) => text.split('\n').filter((l) => l.length > 0)
const tmp = () => mkdtempSync(join(tmpdir(), 'cutover-normalize-'))

describe('golden fixtures through `cutover normalize`', () => {
  for (const name of readdirSync(GOLDEN)) {
    it(name, async () => {
      const dir = join(GOLDEN, name)
      const out = tmp()
      const uri = readFileSync(join(dir, 'source.uri'), 'utf8').trim()
      const r = await runCli(['normalize', uri, '--spec', join(dir, 'spec.yaml'), '--out', join(out, 'clean.ndjson'), '--rejects', join(out, 'rejects.ndjson'), '--json'])
      expect(r.code, r.stderr).toBe(0)
      const expected = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'))
      expect({...r.json, elapsed_ms: 0, spec: ''}).toEqual({...expected, elapsed_ms: 0, spec: ''})
      expect(lines(readFileSync(join(out, 'clean.ndjson'), 'utf8')).map((l) => JSON.parse(l))).toEqual(lines(readFileSync(join(dir, 'expected.ndjson'), 'utf8')).map((l) => JSON.parse(l)))
      expect(lines(readFileSync(join(out, 'rejects.ndjson'), 'utf8')).map((l) => JSON.parse(l))).toEqual(lines(readFileSync(join(dir, 'rejects.ndjson'), 'utf8')).map((l) => JSON.parse(l)))
      const rejected = Object.values(r.json.rejected as Record<string, number>).reduce((a, b) => a + b, 0)
      expect(r.json.read).toBe(r.json.ok + rejected + r.json.duplicates)
    })
  }
})

describe('cutover normalize', () => {
  const csv = ['id;acct;amt;ts', 'T1;A1;1 234,56;20.11.2026 09:15:00', 'T2;A1;(12,50);11/20/2026 10:02', 'T3;;5,00;20.11.2026 09:15:00', 'T4;A2;1,2,3;20.11.2026 09:15:00', 'T5;A2;7,00;31.02.2026 10:00:00', 'T1;A1;1 234,56;20.11.2026 09:15:00', 'T1;A1;9,99;20.11.2026 09:15:00', 'T6;A3;1;x;extra'].join('\n')
  const spec = `version: 1
name: t
source: { topic: t, group: g, format: json, encoding: utf-8 }
fields:
  txn_id:     { from: id, type: string, required: true }
  account_id: { from: acct, type: string, required: true }
  amount:     { from: amt, type: decimal, scale: 2, required: true }
  event_time: { from: ts, type: timestamp, required: true, timezone: Europe/Moscow, formats: ["dd.MM.yyyy HH:mm:ss", "MM/dd/yyyy HH:mm"] }
  card:       { from: id, type: string, sensitive: true, pattern: "^X" }
key: txn_id
dedupe: { by: txn_id, conflicting: dlq }
sinks: [{ table: t }]
dlq: { topic: t.dlq }
`
  it('writes clean records to stdout, counts every record, and exits 0 although records were rejected', async () => {
    const dir = tmp()
    writeFileSync(join(dir, 'a.csv'), csv)
    writeFileSync(join(dir, 'spec.yaml'), spec.replace(/\n {2}card:.*\n/, '\n'))
    const r = await runCli(['normalize', `csv:${join(dir, 'a.csv')}?delimiter=;`, '--spec', join(dir, 'spec.yaml'), '--rejects', join(dir, 'rej.ndjson')])
    expect(r.code, r.stderr).toBe(0)
    const clean = lines(r.stdout).map((l) => JSON.parse(l))
    expect(clean).toEqual([
      {txn_id: 'T1', account_id: 'A1', amount: '1234.56', event_time: '2026-11-20T06:15:00.000Z'},
      {txn_id: 'T2', account_id: 'A1', amount: '-12.50', event_time: '2026-11-20T07:02:00.000Z'},
    ])
    const rejects = lines(readFileSync(join(dir, 'rej.ndjson'), 'utf8')).map((l) => JSON.parse(l))
    expect(rejects.map((x) => [x.code, x.field, x.position.line])).toEqual([
      ['REQUIRED_FIELD_EMPTY', 'account_id', 4],
      ['UNPARSEABLE_AMOUNT', 'amount', 5],
      ['UNPARSEABLE_DATE', 'event_time', 6],
      ['DUPLICATE_CONFLICT', 'txn_id', 8],
      ['SCHEMA_VIOLATION', null, 9],
    ])
    expect(r.stderr).toMatch(/read 8, ok 2, rejected 5 .*duplicates 1/)
  })

  it('--json prints only the summary: {read, ok, rejected: {CODE: n}, duplicates}', async () => {
    const dir = tmp()
    writeFileSync(join(dir, 'a.csv'), csv)
    writeFileSync(join(dir, 'spec.yaml'), spec.replace(/\n {2}card:.*\n/, '\n'))
    const r = await runCli(['normalize', `csv:${join(dir, 'a.csv')}?delimiter=;`, '--spec', join(dir, 'spec.yaml'), '--out', join(dir, 'c.ndjson'), '--json'])
    expect(r.code).toBe(0)
    expect(r.json).toMatchObject({read: 8, ok: 2, duplicates: 1, rejected: {REQUIRED_FIELD_EMPTY: 1, UNPARSEABLE_AMOUNT: 1, UNPARSEABLE_DATE: 1, DUPLICATE_CONFLICT: 1, SCHEMA_VIOLATION: 1}})
    expect(lines(readFileSync(join(dir, 'c.ndjson'), 'utf8'))).toHaveLength(2)
  })

  it('an error under --json masks the credentials its message quotes, as the text error does', async () => {
    const dir = tmp()
    writeFileSync(join(dir, 'spec.yaml'), spec)
    const source = `csv:${join(dir, 'a.csv')}?bogus=postgres://app:s3cret@db/core`
    const j = await runCli(['normalize', source, '--spec', join(dir, 'spec.yaml'), '--out', join(dir, 'c.ndjson'), '--json'])
    expect(j.code).toBe(2)
    expect(j.json.error).toMatchObject({code: 'USAGE', message: expect.stringContaining('unknown parameter "bogus"')})
    expect(j.json.error.message).toContain('postgres://app:***@db/core')
    const t = await runCli(['normalize', source, '--spec', join(dir, 'spec.yaml')])
    expect(t.code).toBe(2)
    expect(t.stderr).toContain('postgres://app:***@db/core')
    expect(j.stdout + j.stderr + t.stdout + t.stderr).not.toContain('s3cret')
  })

  it('masks sensitive values in rejects', async () => {
    const dir = tmp()
    writeFileSync(join(dir, 'a.csv'), 'id;acct;amt;ts\n4111111111111111;A1;1,00;20.11.2026 09:15:00\n')
    writeFileSync(join(dir, 'spec.yaml'), spec)
    const r = await runCli(['normalize', `csv:${join(dir, 'a.csv')}?delimiter=;`, '--spec', join(dir, 'spec.yaml'), '--out', '/dev/null', '--rejects', join(dir, 'rej.ndjson'), '--json'])
    expect(r.code).toBe(0)
    const text = readFileSync(join(dir, 'rej.ndjson'), 'utf8')
    expect(JSON.parse(lines(text)[0]!)).toMatchObject({code: 'PATTERN_MISMATCH', field: 'card'})
    expect(text).not.toContain('4111111111111111')
  })

  it('masks a sensitive dedupe key in DUPLICATE_CONFLICT rejects', async () => {
    const dir = tmp()
    // the card number is the dedupe key: the second record repeats it with another amount
    writeFileSync(join(dir, 'a.csv'), 'id;acct;amt;ts\n4111111111111111;A1;1,00;20.11.2026 09:15:00\n4111111111111111;A1;2,00;20.11.2026 09:15:00\n')
    writeFileSync(join(dir, 'spec.yaml'), spec.replace(/\n {2}card:.*\n/, '\n').replace('txn_id:     { from: id, type: string, required: true }', 'txn_id:     { from: id, type: string, required: true, sensitive: true }'))
    const r = await runCli(['normalize', `csv:${join(dir, 'a.csv')}?delimiter=;`, '--spec', join(dir, 'spec.yaml'), '--out', '/dev/null', '--rejects', join(dir, 'rej.ndjson'), '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json).toMatchObject({read: 2, ok: 1, rejected: {DUPLICATE_CONFLICT: 1}})
    const text = readFileSync(join(dir, 'rej.ndjson'), 'utf8')
    expect(JSON.parse(lines(text)[0]!)).toMatchObject({code: 'DUPLICATE_CONFLICT', field: 'txn_id', value: '4111********1111', message: 'txn_id "4111********1111" was seen before with a different payload'})
    expect(text).not.toContain('4111111111111111')
  })

  it('a bad spec exits 2 with file:line:column', async () => {
    const dir = tmp()
    writeFileSync(join(dir, 'a.csv'), csv)
    writeFileSync(join(dir, 'spec.yaml'), spec.replace('type: decimal', 'type: money'))
    const r = await runCli(['normalize', `csv:${join(dir, 'a.csv')}?delimiter=;`, '--spec', join(dir, 'spec.yaml'), '--out', '/dev/null', '--json'])
    expect(r.code).toBe(2)
    expect(r.json.error.message).toMatch(/spec\.yaml:7:\d+: fields\.amount\.type: "money" is not allowed; allowed: .*decimal/)
  })

  it('a field whose column the source lacks exits 2 naming the columns, before anything is written (was null in every record)', async () => {
    const dir = tmp()
    writeFileSync(join(dir, 'a.csv'), csv)
    // an optional field reading a column that is not there: every record got null, silently
    writeFileSync(join(dir, 'spec.yaml'), spec.replace('card:       { from: id, type: string, sensitive: true, pattern: "^X" }', 'merchant:   { from: merchant_name, type: string }'))
    const out = join(dir, 'clean.ndjson')
    const r = await runCli(['normalize', `csv:${join(dir, 'a.csv')}?delimiter=;`, '--spec', join(dir, 'spec.yaml'), '--out', out, '--json'])
    expect(r.code, r.stdout).toBe(2)
    expect(r.json.error).toMatchObject({code: 'SPEC_INVALID', message: expect.stringContaining('has no column merchant_name (field merchant); its columns: id, acct, amt, ts')})
    expect(existsSync(out)).toBe(false)
  })

  it('--json without --out is a usage error (stdout carries the summary only)', async () => {
    const dir = tmp()
    writeFileSync(join(dir, 'a.csv'), csv)
    writeFileSync(join(dir, 'spec.yaml'), spec)
    const r = await runCli(['normalize', `csv:${join(dir, 'a.csv')}?delimiter=;`, '--spec', join(dir, 'spec.yaml'), '--json'])
    expect(r.code).toBe(2)
    expect(r.json.error.hint).toMatch(/--out/)
  })
})

describe('cutover profile', () => {
  it('infers types, date formats and ambiguity, duplicate keys, and suggests fields that validate', async () => {
    const dir = tmp()
    const rows = ['txn_id;d_ambiguous;d_settled;amt;flag;note']
    for (let i = 1; i <= 40; i++) {
      const m = String((i % 12) + 1).padStart(2, '0')
      const day = String((i % 12) + 1).padStart(2, '0')
      const settled = i === 40 ? '25/03/2026' : `${day}/${m}/2026`
      rows.push(`T${i === 40 ? 1 : i};${day}/${m === day ? '01' : m}/2026;${settled};${i},50;${i % 2 ? 'Y' : 'N'};${i % 4 ? 'x' : ''}`)
    }
    writeFileSync(join(dir, 'p.csv'), rows.join('\n'))
    const r = await runCli(['profile', `csv:${join(dir, 'p.csv')}?delimiter=;`, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json.rows).toBe(40)
    const col = (n: string) => r.json.columns.find((c: {name: string}) => c.name === n)
    expect(col('txn_id')).toMatchObject({inferred_type: 'string', duplicate_keys: {count: 1, examples: ['T1']}})
    expect(col('d_ambiguous')).toMatchObject({inferred_type: 'date', ambiguous: true})
    expect(col('d_settled')).toMatchObject({inferred_type: 'date', ambiguous: false})
    expect(col('d_settled').date_formats[0]).toEqual({format: 'dd/MM/yyyy', matches: 40})
    expect(col('amt')).toMatchObject({inferred_type: 'decimal', scale: 2, decimal_comma: true})
    expect(col('flag')).toMatchObject({inferred_type: 'boolean'})
    expect(col('note')).toMatchObject({inferred_type: 'string', empty_rate: 0.25})
    expect(r.json.suggested_fields).toMatch(/d_settled:\n\s+type: date\n\s+required: true\n\s+formats:\n\s+- dd\/MM\/yyyy\n/)
    expect(r.json.suggested_fields).toMatch(/# d_ambiguous: AMBIGUOUS/)

    // The suggestion is a valid `fields` section.
    const specText = `version: 1\nname: p\nsource: { topic: t, group: g }\n${r.json.suggested_fields}key: txn_id\nsinks: [{ table: t }]\ndlq: { topic: t.dlq }\n`
    writeFileSync(join(dir, 'spec.yaml'), specText)
    const v = await runCli(['pipeline', 'validate', join(dir, 'spec.yaml'), '--json'])
    expect(v.code, v.stdout + v.stderr).toBe(0)
  })

  it('masks card numbers in every example and suggests their column as sensitive', async () => {
    const dir = tmp()
    // valid card numbers (Luhn), one repeated (a duplicate key), and one that is not a number at all
    const cards = ['4111111111111111', '5500000000000004', '4012888888881881', '4111111111111111', '378282246310005', 'n/a']
    const rows = ['card_no;acct;amt', ...cards.map((c, i) => `${c};A${i};${i},00`)]
    writeFileSync(join(dir, 'p.csv'), rows.join('\n'))
    const r = await runCli(['profile', `csv:${join(dir, 'p.csv')}?delimiter=;`, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const pan = r.json.columns.find((c: {name: string}) => c.name === 'card_no')
    expect(pan).toMatchObject({card_numbers: 5, duplicate_keys: {count: 1, examples: ['4111********1111']}})
    expect(pan.examples).toEqual(['4111********1111', '5500********0004', '4012********1881', '3782*******0005', 'n/a'])
    expect(r.json.suggested_fields).toMatch(/card_no:\n(\s+\w+: .*\n)*\s+sensitive: true\n/)
    const acct = r.json.columns.find((c: {name: string}) => c.name === 'acct')
    expect(acct.card_numbers).toBeUndefined()
    const text = await runCli(['profile', `csv:${join(dir, 'p.csv')}?delimiter=;`])
    expect(text.code, text.stderr).toBe(0)
    for (const card of cards.slice(0, 5)) expect(r.stdout + text.stdout + text.stderr).not.toContain(card)
  })

  it('profiles a kafka: topic whose JSON holds a 20-digit account number: the digits as sent, not a rounded double', async () => {
    const topic = await createTestTopic({partitions: 1, prefix: 'profile-long-number'})
    const producer = kafka().producer()
    await producer.connect()
    await producer.send({topic, messages: ['40817810099910004312', '40817810099910004313'].map((acct, i) => ({value: `{"id": "T${i}", "acct": ${acct}, "amt": 1234567890123456.7}`}))})
    await producer.disconnect()
    const r = await runCli(['profile', `kafka:${topic}`, '--json'])
    expect(r.code, r.stderr).toBe(0)
    const col = (n: string) => r.json.columns.find((c: {name: string}) => c.name === n)
    expect(col('acct').examples).toEqual(['40817810099910004312', '40817810099910004313'])
    expect(col('amt').examples).toEqual(['1234567890123456.7'])
  })

  it('profiles the EBCDIC fixture: COMP-3 amounts as decimals, yyyyMMddHHmmss as a timestamp, the corrupt record counted', async () => {
    const r = await runCli(['profile', 'fixed:fixtures/legacy/TXN.DAT?copybook=fixtures/legacy/txn.cpy&encoding=cp037', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const col = (n: string) => r.json.columns.find((c: {name: string}) => c.name === n)
    expect(col('amount')).toMatchObject({inferred_type: 'decimal', scale: 2})
    expect(col('txn_ts').inferred_type).toBe('timestamp')
    expect(col('txn_ts').date_formats[0].format).toBe('yyyyMMddHHmmss')
    expect(r.json.errors).toEqual([expect.objectContaining({code: 'DECODE_ERROR', count: 1})])
  })
})
