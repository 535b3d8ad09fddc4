import {createRequire} from 'node:module'
import {describe, expect, it} from 'vitest'
import {keyFunction, murmur2, partitionOfKey} from '../../src/backfill/records.js'

// kafkajs' own murmur2 (Long arithmetic), which its default partitioner uses
const kafkajsMurmur2 = createRequire(import.meta.url)('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer) => number

describe('backfill records', () => {
  it('murmur2 in int32 arithmetic equals kafkajs murmur2, at any offset into a buffer', () => {
    let seed = 7
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32)
    const keys = ['', 'a', 'ab', 'abc', 'abcd', 'T00000001', 'Пётр Иванов', '€𝄞']
    for (let i = 0; i < 2000; i++) {
      let s = ''
      const n = Math.floor(random() * 40)
      for (let j = 0; j < n; j++) s += String.fromCodePoint(Math.floor(random() * (random() < 0.5 ? 128 : 0xd7ff)))
      keys.push(s, `T${String(i).padStart(8, '0')}`)
    }
    for (const key of keys) {
      const b = Buffer.from(key)
      const padded = Buffer.concat([Buffer.from('xyz'), b, Buffer.from('tail')])
      expect(murmur2(b)).toBe(kafkajsMurmur2(b))
      expect(murmur2(padded, 3, b.length)).toBe(kafkajsMurmur2(b))
      expect(partitionOfKey(padded, 3, b.length, 6)).toBe((kafkajsMurmur2(b) & 0x7fffffff) % 6)
    }
  })

  it('keys: one field as text, several as a JSON array, null when one is missing or empty', () => {
    expect(keyFunction(['id'])({id: 'T1'})).toBe('T1')
    expect(keyFunction(['id'])({id: 12})).toBe('12')
    expect(keyFunction(['id'])({id: ''})).toBeNull()
    expect(keyFunction(['a', 'b'])({a: 'x', b: 1})).toBe('["x",1]')
    expect(keyFunction(['a', 'b'])({a: 'x'})).toBeNull()
  })
})
