/**
 * JSON numbers whose exponent takes them out of a double's range: JSON.parse reads `1e-400` as 0,
 * so an amount sent as 1e-400 became "0.00" (and an integer "0") with nothing left to tell. The
 * exact path (src/normalize/json.ts) now also takes numbers with a three-digit exponent, and the
 * normalizer refuses them from their text as written.
 */
import {mkdtemp, mkdir, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import type {FieldSpec} from '../../src/config/spec.js'
import {createNormalizer, JsonNumberText, parseJsonExact} from '../../src/normalize/index.js'
import {hasLongNumber} from '../../src/normalize/json.js'
import {runCli} from '../helpers.js'

const field = (f: Partial<FieldSpec> & Pick<FieldSpec, 'type'>, from: string): FieldSpec =>
  ({from, required: false, trim: false, empty_as_null: false, sensitive: false, precision: 18, ...f}) as FieldSpec

const normalize = createNormalizer({
  amount: field({type: 'decimal', scale: 2}, 'amt'),
  qty: field({type: 'integer'}, 'qty'),
  note: field({type: 'string'}, 'note'),
})
const position = {scheme: 'kafka', source: 't', partition: 0, offset: '1'} as never
const fromText = (text: string) => normalize({ok: true, fields: parseJsonExact(text) as Record<string, unknown>, position, raw: Buffer.alloc(0)})

describe('JSON numbers beyond the range of a double', () => {
  it('an amount of 1e-400 (0 to JSON.parse) is refused from its text, never read as 0.00', () => {
    const r = fromText('{"amt": 1e-400}')
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.rejections).toEqual([expect.objectContaining({code: 'UNPARSEABLE_AMOUNT', field: 'amount', value: '1e-400'})])
    const neg = fromText('{"amt": -2.5E-999}')
    expect(neg.ok).toBe(false)
    if (!neg.ok) expect(neg.rejections[0]).toMatchObject({code: 'UNPARSEABLE_AMOUNT', value: '-2.5E-999'})
  })

  it('an integer or a string field gets the text as written, not 0', () => {
    const r = fromText('{"amt": "1.00", "qty": 1e-400}')
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.rejections).toEqual([expect.objectContaining({code: 'SCHEMA_VIOLATION', field: 'qty', value: '1e-400'})])
    const s = fromText('{"amt": "1.00", "note": 3e-500}')
    expect(s).toMatchObject({ok: true, record: {amount: '1.00', qty: null, note: '3e-500'}})
    expect(parseJsonExact('{"a": [1e-400, 1e400, 2.5e-324]}')).toEqual({a: [new JsonNumberText('1e-400'), new JsonNumberText('1e400'), new JsonNumberText('2.5e-324')]})
  })

  it('numbers a double holds exactly stay numbers: two-digit exponents, and exponents a double gives back', () => {
    expect(fromText('{"amt": 1.5e2, "qty": 12E+1}')).toMatchObject({ok: true, record: {amount: '150.00', qty: '120'}})
    // 2.5E-99 is kept with its text (a string field reads it as sent); its value is the number
    expect(parseJsonExact('{"a": 1e-300, "b": 2.5E-99, "c": 12.5}')).toEqual({a: 1e-300, b: new JsonNumberText('2.5E-99', 2.5e-99), c: 12.5})
  })

  it('finds a three-digit exponent only in numbers, not in strings', () => {
    expect(hasLongNumber('{"a": 1e-400}')).toBe(true)
    expect(hasLongNumber('{"a": 1.25E+308}')).toBe(true)
    expect(hasLongNumber('{"a": 1e-40, "b": 2.5e+99, "c": true, "d": false}')).toBe(false)
    expect(hasLongNumber('{"id": "3fe123-7e-400", "a": 12.5}')).toBe(false)
    expect(hasLongNumber('{"id": "x\\"1e-400", "a": 1}')).toBe(false)
  })

  it('cutover pipeline test: a case sending 1e-400 as the amount expects a rejection, and passes (exit 0)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'review-money-json-'))
    await mkdir(join(dir, 'underflow'))
    await writeFile(
      join(dir, 'underflow', 'input.ndjson'),
      '{"id": "T1", "acct": "A-1", "amt": 1e-400, "ts": "2026-11-20T09:15:00Z"}\n{"id": "T2", "acct": "A-1", "amt": 12.5e1, "ts": "2026-11-20T09:15:00Z"}\n',
    )
    await writeFile(
      join(dir, 'underflow', 'expected.ndjson'),
      '{"txn_id": "T2", "account_id": "A-1", "amount": "125.00", "currency": "RUB", "event_time": "2026-11-20T09:15:00.000Z", "merchant": null}\n',
    )
    await writeFile(join(dir, 'underflow', 'rejects.ndjson'), '{"code": "UNPARSEABLE_AMOUNT", "field": "amount", "line": 1}\n')
    const r = await runCli(['pipeline', 'test', 'fixtures/specs/card-transactions.yaml', dir, '--json'])
    expect(r.json.cases[0], r.stderr).toMatchObject({name: 'underflow', passed: true, accepted: 1, rejected: 1})
    expect(r.code).toBe(0)
  })
})
