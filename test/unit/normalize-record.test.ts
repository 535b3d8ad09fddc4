import {describe, expect, it} from 'vitest'
import type {Position} from '../../legacy-adapters/types.js'
import {parseFieldSpec, parseSpec, type FieldSpec, type FieldSpecInput} from '../../src/config/spec.js'
import {createNormalizer, maskValue, parseBoolean, parseInteger, Fail, type NormalizeResult} from '../../src/normalize/index.js'

const position: Position = {scheme: 'csv', source: 'txn.csv', line: 7, record: 6}

function fields(input: Record<string, FieldSpecInput>): Record<string, FieldSpec> {
  return Object.fromEntries(Object.entries(input).map(([k, v]) => [k, parseFieldSpec(k, v)]))
}

function run(spec: Record<string, FieldSpecInput>, raw: Record<string, unknown>): NormalizeResult {
  return createNormalizer(fields(spec))({ok: true, fields: raw, position})
}

const CARD = `version: 1
name: cards
source: {topic: t}
fields:
  txn_id:   { from: id, type: string, required: true, trim: true }
  card:     { from: pan, type: string, sensitive: true, pattern: "^[0-9]{16}$" }
  amount:   { from: amt, type: decimal, scale: 2, required: true }
  currency: { type: string, default: RUB, pattern: "^[A-Z]{3}$" }
  at:       { from: ts, type: timestamp, timezone: Europe/Moscow, formats: ["dd.MM.yyyy HH:mm:ss"] }
  merchant: { type: string, empty_as_null: true, max_length: 5 }
  qty:      { type: integer }
  ok:       { type: boolean, default: true }
  day:      { type: date, formats: ["dd.MM.yyyy"] }
`

describe('createNormalizer: a whole record', () => {
  const normalize = createNormalizer(parseSpec(CARD, 'cards.yaml').spec.fields)

  it('normalizes every field, keeps originals of converted values, passes the position through', () => {
    const r = normalize({
      ok: true,
      position,
      fields: {id: ' T1 ', pan: '4111111111111111', amt: '1 234,56', ts: '20.11.2026 12:15:00', merchant: '', qty: '1 000', ok: 'нет', day: '20.11.2026'},
    })
    expect(r).toEqual({
      ok: true,
      record: {txn_id: 'T1', card: '4111111111111111', amount: '1234.56', currency: 'RUB', at: '2026-11-20T09:15:00.000Z', merchant: null, qty: '1000', ok: false, day: '2026-11-20'},
      original: {amount: '1 234,56', at: '20.11.2026 12:15:00', day: '20.11.2026'},
      position,
    })
  })

  it('collects every rejection of a record, each with code, field, value, message and position', () => {
    const r = normalize({ok: true, position, fields: {id: '   ', pan: '4111-1111-1111-1111', amt: '12,345', ts: '31.02.2026 10:00:00', currency: 'rub', merchant: 'Too long', qty: '1.5', ok: 'maybe'}})
    expect(r.ok).toBe(false)
    if (r.ok) return
    expect(r.position).toBe(position)
    expect(r.rejections).toEqual([
      {code: 'REQUIRED_FIELD_EMPTY', field: 'txn_id', value: null, message: 'Field txn_id is required but empty.', position},
      {
        code: 'PATTERN_MISMATCH',
        field: 'card',
        value: '4111********1111',
        message: 'Field card value "4111********1111" does not match the pattern ^[0-9]{16}$.',
        position,
      },
      {
        code: 'UNPARSEABLE_AMOUNT',
        field: 'amount',
        value: '12,345',
        message: 'Field amount value "12,345" is ambiguous: "," may be a thousands or a decimal separator (set decimal_separator on the field to decide).',
        position,
      },
      {code: 'PATTERN_MISMATCH', field: 'currency', value: 'rub', message: 'Field currency value "rub" does not match the pattern ^[A-Z]{3}$.', position},
      {
        code: 'UNPARSEABLE_DATE',
        field: 'at',
        value: '31.02.2026 10:00:00',
        message: 'Field at value "31.02.2026 10:00:00" is not a valid date: day 31 does not exist in 2026-02 (format dd.MM.yyyy HH:mm:ss).',
        position,
      },
      {code: 'SCHEMA_VIOLATION', field: 'merchant', value: 'Too long', message: 'Field merchant value "Too long" is longer than max_length 5.', position},
      {code: 'SCHEMA_VIOLATION', field: 'qty', value: '1.5', message: 'Field qty value "1.5" is not an integer.', position},
      {code: 'SCHEMA_VIOLATION', field: 'ok', value: 'maybe', message: expect.stringMatching(/^Field ok value "maybe" is not a boolean \(expected one of true, false/), position},
    ])
  })

  it('a missing required field says missing; a missing optional one is null', () => {
    const r = normalize({ok: true, position, fields: {id: 'T1', ts: '20.11.2026 12:15:00'}})
    expect(r).toMatchObject({ok: false, rejections: [{code: 'REQUIRED_FIELD_EMPTY', field: 'amount', message: 'Field amount is required but missing.'}]})
    const ok = normalize({ok: true, position, fields: {id: 'T1', amt: '1'}})
    expect(ok).toMatchObject({ok: true, record: {card: null, at: null, merchant: null, qty: null, ok: true, day: null, currency: 'RUB'}, original: {amount: '1'}})
  })

  it('never shows a sensitive value, even when it is not card-like, nor keeps it as original', () => {
    const r = run({pin: {type: 'integer', sensitive: true}, secret: {type: 'decimal', scale: 2, sensitive: true}}, {pin: '12a4', secret: 'x'})
    expect(r).toMatchObject({ok: false, rejections: [{value: '***', message: 'Field pin value "***" is not an integer.'}, {value: '***'}]})
    expect(JSON.stringify(r)).not.toContain('12a4')
    const ok = run({secret: {type: 'decimal', scale: 2, sensitive: true}}, {secret: '10'})
    expect(ok).toMatchObject({ok: true, record: {secret: '10.00'}})
    expect(ok.ok && ok.original).toEqual({}) // exactly empty: toMatchObject takes any object for {}
  })
})

describe('strings', () => {
  it('trim only when asked; empty_as_null; default replaces missing and empty', () => {
    expect(run({a: {type: 'string'}}, {a: '  x '})).toMatchObject({record: {a: '  x '}})
    expect(run({a: {type: 'string', trim: true}}, {a: '  x '})).toMatchObject({record: {a: 'x'}})
    expect(run({a: {type: 'string'}}, {a: ''})).toMatchObject({record: {a: ''}})
    expect(run({a: {type: 'string', empty_as_null: true}}, {a: ''})).toMatchObject({record: {a: null}})
    expect(run({a: {type: 'string', trim: true, empty_as_null: true}}, {a: '   '})).toMatchObject({record: {a: null}})
    expect(run({a: {type: 'string', default: 'RUB'}}, {a: ''})).toMatchObject({record: {a: 'RUB'}})
    expect(run({a: {type: 'string', default: 'RUB'}}, {})).toMatchObject({record: {a: 'RUB'}})
    expect(run({a: {type: 'string', required: true, default: 'RUB'}}, {a: null})).toMatchObject({record: {a: 'RUB'}})
  })

  it('max_length counts characters, not UTF-16 units', () => {
    expect(run({a: {type: 'string', max_length: 3}}, {a: '😀😀😀'})).toMatchObject({ok: true})
    expect(run({a: {type: 'string', max_length: 3}}, {a: 'Ёжик'})).toMatchObject({ok: false, rejections: [{code: 'SCHEMA_VIOLATION'}]})
  })

  it('JSON values: numbers and booleans become text; objects are SCHEMA_VIOLATION', () => {
    expect(run({a: {type: 'string'}, b: {type: 'string'}}, {a: 12345, b: true})).toMatchObject({record: {a: '12345', b: 'true'}})
    expect(run({a: {type: 'string'}}, {a: {x: 1}})).toMatchObject({
      ok: false,
      rejections: [{code: 'SCHEMA_VIOLATION', value: '{"x":1}', message: 'Field a value "{\\"x\\":1}" is a JSON object, not text.'}],
    })
    expect(run({a: {type: 'decimal', scale: 2}}, {a: [1]})).toMatchObject({ok: false, rejections: [{message: expect.stringContaining('is a JSON list, not a decimal')}]})
  })

  it('a dotted `from` reads nested JSON, unless a key with the dots exists', () => {
    const spec = {n: {type: 'string', from: 'card.number'}, a: {type: 'decimal', scale: 2, from: 'payload.amount.value'}} as Record<string, FieldSpecInput>
    expect(run(spec, {card: {number: '4111'}, payload: {amount: {value: '1,5'}}})).toMatchObject({ok: true, record: {n: '4111', a: '1.50'}})
    expect(run(spec, {'card.number': 'flat', card: {number: 'nested'}})).toMatchObject({record: {n: 'flat', a: null}})
    expect(run(spec, {card: 'x', payload: [1]})).toMatchObject({ok: true, record: {n: null, a: null}})
  })

  it('a value much longer than a message allows is cut', () => {
    const r = run({a: {type: 'integer'}}, {a: 'x'.repeat(1000)})
    expect(r.ok ? '' : r.rejections[0]!.value).toBe('x'.repeat(200) + '…')
  })
})

describe('integers, booleans, JSON numbers', () => {
  it('integers are exact decimal strings within int64', () => {
    expect(parseInteger('42')).toBe('42')
    expect(parseInteger('-0')).toBe('0')
    expect(parseInteger('+007')).toBe('7')
    expect(parseInteger("1'234'567")).toBe('1234567')
    expect(parseInteger('-9223372036854775808')).toBe('-9223372036854775808')
    for (const bad of ['9223372036854775808', '1.5', '1,234', '12 34', '1e3', '', '--1']) expect(parseInteger(bad)).toBeInstanceOf(Fail)
  })

  it('booleans in the words legacy systems use', () => {
    for (const t of ['true', 'TRUE', '1', 'Y', 'yes', 'T', 'да', 'ДА']) expect(parseBoolean(t)).toBe(true)
    for (const f of ['false', '0', 'n', 'No', 'F', 'нет', 'Нет']) expect(parseBoolean(f)).toBe(false)
    expect(parseBoolean('2')).toBeInstanceOf(Fail)
  })

  it('JSON numbers and booleans per type', () => {
    const spec: Record<string, FieldSpecInput> = {i: {type: 'integer'}, b: {type: 'boolean'}, d: {type: 'decimal', scale: 2}, t: {type: 'timestamp', formats: ['epoch_ms']}}
    expect(run(spec, {i: 7, b: 1, d: 12.5, t: 1795166100000})).toMatchObject({
      ok: true,
      record: {i: '7', b: true, d: '12.50', t: '2026-11-20T09:15:00.000Z'},
      original: {d: '12.5', t: '1795166100000'},
    })
    expect(run(spec, {i: 1.5, b: false, d: 0.125, t: -1})).toMatchObject({
      ok: false,
      rejections: [
        {field: 'i', code: 'SCHEMA_VIOLATION'},
        {field: 'd', code: 'UNPARSEABLE_AMOUNT'},
        {field: 't', code: 'UNPARSEABLE_DATE'},
      ],
    })
    expect(run({i: {type: 'integer'}}, {i: true})).toMatchObject({ok: false, rejections: [{message: 'Field i value "true" is a JSON boolean, not an integer.'}]})
  })
})

describe('masking', () => {
  it('card-like values keep the first and last 4 digits; anything else is ***', () => {
    expect(maskValue('4111111111111111')).toBe('4111********1111')
    expect(maskValue('4111 1111 1111 1111')).toBe('4111********1111')
    expect(maskValue('5500-0000-0000-0004')).toBe('5500********0004')
    expect(maskValue('1234')).toBe('***')
    expect(maskValue('secret')).toBe('***')
  })
})

describe('createNormalizer refuses field specs that cannot work', () => {
  it('names the field', () => {
    expect(() => createNormalizer({amount: {...parseFieldSpec('amount', {type: 'decimal'})}})).toThrow('field amount: a decimal field needs `scale`')
    expect(() => createNormalizer(fields({t: {type: 'timestamp'}}))).toThrow('field t: a timestamp field needs `formats`')
    expect(() => createNormalizer(fields({t: {type: 'timestamp', formats: ['iso'], timezone: 'Nowhere/City'}}))).toThrow('unknown timezone "Nowhere/City"')
    expect(() => createNormalizer(fields({c: {type: 'string', default: 'rub', pattern: '^[A-Z]{3}$'}}))).toThrow('does not match the pattern')
    // a default is held to max_length, and a YAML number default to the pattern, as an input value is
    expect(() => createNormalizer(fields({c: {type: 'string', default: 'RUBX', max_length: 3}}))).toThrow('default "RUBX" is longer than max_length 3')
    expect(() => createNormalizer(fields({p: {type: 'string', default: 123, pattern: '^[A-Z]+$'}}))).toThrow('default 123 does not match the pattern')
    expect(createNormalizer(fields({c: {type: 'string', default: ' RUB ', trim: true, max_length: 3, pattern: '^[A-Z]{3}$'}}))).toBeTypeOf('function')
  })
})
