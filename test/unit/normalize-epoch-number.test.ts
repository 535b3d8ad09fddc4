/**
 * A JSON number in a timestamp or date field is read as its text would be: `{"ts": 1795166100.5}`
 * with `formats: [epoch_s]` is the instant "1795166100.5" is (ms kept), not UNPARSEABLE_DATE "not
 * an epoch integer"; a number a double cannot hold (16+ digits, a JsonNumberText) is read from its
 * text as written, the fraction kept to the µs as the string path keeps it (finer: rounded to it as
 * PostgreSQL rounds, as the string is).
 */
import {mkdirSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import type {Position} from '../../legacy-adapters/types.js'
import {parseFieldSpec, type FieldSpecInput} from '../../src/config/spec.js'
import {createNormalizer, parseJsonExact, type NormalizeResult} from '../../src/normalize/index.js'
import {runCli} from '../helpers.js'

const position: Position = {scheme: 'kafka', source: 'txn.raw', line: 1, record: 1}

function normalize(spec: FieldSpecInput, ts: unknown): NormalizeResult {
  const fields = {at: parseFieldSpec('at', {from: 'ts', ...spec} as FieldSpecInput)}
  return createNormalizer(fields)({ok: true, fields: {ts}, position})
}

const EPOCH_S: FieldSpecInput = {type: 'timestamp', timezone: 'UTC', formats: ['epoch_s']}

describe('a JSON number in a timestamp field', () => {
  it('with a fraction reads as the same text as a string does (epoch_s, ms kept)', () => {
    const asNumber = normalize(EPOCH_S, 1795166100.5)
    const asString = normalize(EPOCH_S, '1795166100.5')
    expect(asString).toMatchObject({ok: true, record: {at: '2026-11-20T09:15:00.500Z'}})
    expect(asNumber).toMatchObject({ok: true, record: {at: '2026-11-20T09:15:00.500Z'}, original: {at: '1795166100.5'}})
  })

  it('of 16+ digits (lossless JSON) reads from its text as written, the fraction kept to the µs like the string', () => {
    const raw = parseJsonExact('{"ts": 1795166100.123456}') as Record<string, unknown>
    expect(normalize(EPOCH_S, raw.ts)).toMatchObject({ok: true, record: {at: '2026-11-20T09:15:00.123456Z'}})
    expect(normalize(EPOCH_S, '1795166100.123456')).toMatchObject({ok: true, record: {at: '2026-11-20T09:15:00.123456Z'}})
    // the text as written is read, as the string is, and its digits beyond the µs rounded to it as
    // PostgreSQL rounds them (SELECT to_timestamp(1795166100) + interval '0.123999999 s': .124)
    const rounded = parseJsonExact('{"ts": 1795166100.123999999}') as Record<string, unknown>
    for (const v of [rounded.ts, '1795166100.123999999']) expect(normalize(EPOCH_S, v)).toMatchObject({ok: true, record: {at: '2026-11-20T09:15:00.124Z'}})
    const half = parseJsonExact('{"ts": 1795166100.1234565}') as Record<string, unknown>
    expect(normalize(EPOCH_S, half.ts)).toMatchObject({ok: true, record: {at: '2026-11-20T09:15:00.123456Z'}})
    // zeros beyond the µs change nothing: read
    const zeros = parseJsonExact('{"ts": 1795166100.123999000}') as Record<string, unknown>
    expect(normalize(EPOCH_S, zeros.ts)).toMatchObject({ok: true, record: {at: '2026-11-20T09:15:00.123999Z'}})
  })

  it('in exponent form, negative or out of range is still UNPARSEABLE_DATE, as its text is', () => {
    for (const n of [1e21, -1795166100.5, 12.5]) {
      const r = normalize(EPOCH_S, n)
      expect(r.ok, String(n)).toBe(false)
      if (!r.ok) expect(r.rejections[0]!.code, String(n)).toBe('UNPARSEABLE_DATE')
    }
  })

  it('integers keep working (epoch_ms), and a date field reads a yyyyMMdd number', () => {
    expect(normalize({type: 'timestamp', timezone: 'UTC', formats: ['epoch_ms']}, 1795166100500)).toMatchObject({ok: true, record: {at: '2026-11-20T09:15:00.500Z'}})
    expect(normalize({type: 'date', formats: ['yyyyMMdd']}, 20261120)).toMatchObject({ok: true, record: {at: '2026-11-20'}})
  })

  it('`cutover pipeline test`: the number and the string cases both pass (exit 0)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'epoch-number-'))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(
      spec,
      'version: 1\nname: epoch\nsource: { topic: txn.raw, format: json }\nfields:\n  id: { type: string, required: true }\n' +
        '  at: { from: ts, type: timestamp, timezone: UTC, formats: [epoch_s] }\nkey: id\nsinks:\n  - table: txn_clean\ndlq: { topic: txn.dlq }\n',
    )
    const c = join(dir, 'cases', 'epoch')
    mkdirSync(c, {recursive: true})
    writeFileSync(join(c, 'input.ndjson'), '{"id":"n","ts":1795166100.5}\n{"id":"s","ts":"1795166100.5"}\n{"id":"m","ts":1795166100.123456}\n')
    writeFileSync(join(c, 'expected.ndjson'), '{"id":"n","at":"2026-11-20T09:15:00.500Z"}\n{"id":"s","at":"2026-11-20T09:15:00.500Z"}\n{"id":"m","at":"2026-11-20T09:15:00.123456Z"}\n')
    const r = await runCli(['pipeline', 'test', spec, join(dir, 'cases'), '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json).toMatchObject({passed: 1, failed: 0, cases: [{accepted: 3, rejected: 0}]})
  })
})
