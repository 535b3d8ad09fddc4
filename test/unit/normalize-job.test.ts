import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'
import {openSource} from '../../legacy-adapters/index.js'
import {parseSpec} from '../../src/config/spec.js'
import {createRecordProcessor, type NormalizeCounts} from '../../src/jobs/record-processor.js'
import {recordSerializer} from '../../src/jobs/normalize.js'
import {KeyTable} from '../../src/jobs/key-table.js'
import {ROOT} from '../helpers.js'

describe('recordSerializer', () => {
  it('is byte-identical to JSON.stringify for any record of strings, booleans and nulls', () => {
    const names = ['a', 'b"q', 'c\\d', 'e']
    const ser = recordSerializer(names)
    const value = fc.oneof(fc.string({unit: 'binary'}), fc.boolean(), fc.constant(null), fc.constant(undefined))
    fc.assert(
      fc.property(fc.tuple(value, value, value, value), (vs) => {
        const record: Record<string, unknown> = {}
        names.forEach((n, i) => (record[n] = vs[i]))
        expect(ser(record)).toBe(JSON.stringify(record))
      }),
      {numRuns: 2000},
    )
  })
})

describe('KeyTable (off-heap dedupe keys)', () => {
  it('behaves like a Map of key -> first payload, through rehashes and arena growth, for any keys', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({unit: 'grapheme', maxLength: 40}), fc.integer({min: 0, max: 2 ** 53 - 1})), {maxLength: 3000}), (ops) => {
        const table = new KeyTable(4)
        const map = new Map<string, number>()
        for (const [k, v] of ops) {
          expect(table.getOrAdd(k, v)).toBe(map.get(k))
          if (!map.has(k)) map.set(k, v)
        }
        expect(table.size).toBe(map.size)
      }),
      {numRuns: 200},
    )
  })

  it('never confuses two keys, even a million of them', () => {
    const table = new KeyTable()
    let wrong = 0
    for (let i = 0; i < 1_000_000; i++) if (table.getOrAdd(`T${i}`, i) !== undefined) wrong++
    for (let i = 0; i < 1_000_000; i++) if (table.getOrAdd(`T${i}`, -1) !== i) wrong++
    expect(wrong).toBe(0)
    expect(table.size).toBe(1_000_000)
  })
})

describe('rejects of records the reader could not read', () => {
  const SPEC = `version: 1
name: rejects
source: {topic: t}
fields:
  txn_id: {type: string, required: true}
  amt: {from: amount, type: decimal, scale: 2, required: true}
  merchant: {type: string}
key: txn_id
sinks: [{table: t}]
`
  const rejectsOf = async (spec: string, uri: string) => {
    const {fields} = parseSpec(spec, 'rejects.yaml').spec
    const counts: NormalizeCounts = {read: 0, ok: 0, rejected: {}, duplicates: 0}
    const process = createRecordProcessor({fields}, true, counts)
    let bad = ''
    for await (const r of openSource(uri)) bad += process([r]).bad
    return {counts, rejects: bad.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)}
  }
  const TXN = `fixed:${join(ROOT, 'fixtures/legacy/TXN.DAT')}?copybook=${join(ROOT, 'fixtures/legacy/txn.cpy')}&encoding=cp037`

  it('carry the field (the spec field that reads it) and the value as read', async () => {
    const {counts, rejects} = await rejectsOf(SPEC, TXN)
    expect(counts).toMatchObject({read: 8, rejected: {DECODE_ERROR: 1}})
    expect(rejects).toEqual([
      {
        code: 'DECODE_ERROR',
        field: 'amt',
        value: "X'00003A30000C'",
        message: expect.stringContaining('field amount (AMOUNT PIC S9(9)V99 packed): bad packed-decimal byte 0x3A'),
        position: expect.objectContaining({scheme: 'fixed', record: 6, byteOffset: 500}),
        // the record's bytes as they are in the file (EBCDIC, packed fields), and their encoding
        original_base64: readFileSync(join(ROOT, 'fixtures/legacy/TXN.DAT')).subarray(500, 600).toString('base64'),
        original_encoding: 'cp037',
      },
    ])
  })

  it('mask the value when the spec marks the field sensitive, as other rejects do', async () => {
    const {rejects} = await rejectsOf(SPEC.replace('scale: 2, required: true}', 'scale: 2, required: true, sensitive: true}'), TXN)
    expect(rejects).toMatchObject([{code: 'DECODE_ERROR', field: 'amt', value: '***'}])
    expect(JSON.stringify(rejects)).not.toContain('3A30')
  })

  it("keep the reader's name, without the value, for a field the spec does not read; the CSV reader's text as it is", () => {
    const {fields} = parseSpec(SPEC, 'rejects.yaml').spec
    const process = createRecordProcessor({fields}, true, {read: 0, ok: 0, rejected: {}, duplicates: 0})
    const position = {scheme: 'csv', source: 'a.csv', line: 2}
    const {bad} = process([
      {ok: false, code: 'DECODE_ERROR', message: 'a.csv:2: field note holds bytes that are not valid windows-1251', position, field: 'note', value: 'x\uFFFDy'},
      {ok: false, code: 'DECODE_ERROR', message: 'a.csv:3: field merchant holds bytes that are not valid windows-1251', position, field: 'merchant', value: 'x\uFFFDy'},
      {ok: false, code: 'SCHEMA_VIOLATION', message: 'a.csv:4: expected 3 fields', position},
    ])
    expect(bad.split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown)).toEqual([
      {code: 'DECODE_ERROR', field: 'note', value: null, message: 'a.csv:2: field note holds bytes that are not valid windows-1251', position},
      {code: 'DECODE_ERROR', field: 'merchant', value: 'x\uFFFDy', message: 'a.csv:3: field merchant holds bytes that are not valid windows-1251', position},
      {code: 'SCHEMA_VIOLATION', field: null, value: null, message: 'a.csv:4: expected 3 fields', position},
    ])
  })
})

describe('dedupe by a field without a value', () => {
  it('refuses the record as the stream does (SCHEMA_VIOLATION), never keys it as "null"', () => {
    const {fields, dedupe} = parseSpec(
      `version: 1
name: nullkey
source: {topic: t}
fields:
  ref: {type: string}
  amt: {type: decimal, scale: 2, required: true}
key: ref
dedupe: {by: ref}
sinks: [{table: t}]
`,
      'nullkey.yaml',
    ).spec
    const counts: NormalizeCounts = {read: 0, ok: 0, rejected: {}, duplicates: 0}
    const process = createRecordProcessor({fields, dedupe}, true, counts)
    const position = {scheme: 'csv', source: 'a.csv', line: 2}
    // before: the empty ref became the key "null", and the text "null" two rows on was its DUPLICATE_CONFLICT
    const out = process([
      {ok: true, fields: {ref: '', amt: '1'}, position},
      {ok: true, fields: {ref: 'null', amt: '2'}, position},
      {ok: true, fields: {ref: '', amt: '3'}, position},
    ])
    expect(counts).toMatchObject({read: 3, ok: 1, duplicates: 0, rejected: {SCHEMA_VIOLATION: 2}})
    expect(out.clean).toBe('{"ref":"null","amt":"2.00"}\n')
    expect(JSON.parse(out.bad.split('\n')[0]!)).toMatchObject({code: 'SCHEMA_VIOLATION', field: 'ref', message: 'field ref has no value, and the pipeline needs it (dedupe)'})
  })
})
