import fc from 'fast-check'
import {describe, expect, it} from 'vitest'
import {recordSerializer} from '../../src/jobs/normalize.js'
import {KeyTable} from '../../src/jobs/key-table.js'

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
