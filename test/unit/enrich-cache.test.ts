/**
 * The enrich stage's lookup cache (src/runtime/stages/enrich.ts LookupCache), with a fake clock:
 * at most `maxEntries` entries, the least recently used (set or read) evicted first; each entry
 * trusted for `ttlMs` from when it was set, however often it is read (a read refreshes its
 * recency, not its age); an expired entry is gone (it frees its place).
 */
import {describe, expect, it} from 'vitest'
import {LookupCache} from '../../src/runtime/stages/enrich.js'

function clock() {
  let now = 1_000_000
  return {now: () => now, advance: (ms: number) => (now += ms)}
}

describe('LookupCache', () => {
  it('evicts the least recently used entry, a read counting as a use', () => {
    const c = clock()
    const cache = new LookupCache<string>(3, 60_000, c.now)
    cache.set('a', 'A')
    cache.set('b', 'B')
    cache.set('c', 'C')
    expect(cache.get('a')).toBe('A') // a is now the most recent: b is the oldest
    cache.set('d', 'D')
    expect(cache.keys()).toEqual(['c', 'a', 'd'])
    expect(cache.get('b')).toBeUndefined()
    cache.set('c', 'C2') // set again: the most recent, with the new value
    cache.set('e', 'E')
    expect(cache.keys()).toEqual(['d', 'c', 'e'])
    expect(cache.get('c')).toBe('C2')
    expect(cache.size).toBe(3)
  })

  it('trusts an entry for ttl from when it was set, however often it is read', () => {
    const c = clock()
    const cache = new LookupCache<string>(10, 1000, c.now)
    cache.set('a', 'A')
    c.advance(600)
    cache.set('b', 'B')
    expect(cache.get('a')).toBe('A')
    c.advance(399)
    expect(cache.get('a')).toBe('A') // 999 ms old
    c.advance(1)
    expect(cache.get('a')).toBeUndefined() // 1000 ms: expired, and gone
    expect(cache.keys()).toEqual(['b'])
    expect(cache.get('b')).toBe('B') // 400 ms old
    cache.set('a', 'A2') // fetched again: trusted for another ttl
    c.advance(999)
    expect(cache.get('a')).toBe('A2')
    expect(cache.get('b')).toBeUndefined()
  })

  it('holds one entry when max_entries is 1', () => {
    const cache = new LookupCache<number>(1, 1000, clock().now)
    cache.set('a', 1)
    cache.set('b', 2)
    expect(cache.keys()).toEqual(['b'])
    expect(cache.get('a')).toBeUndefined()
    expect(cache.get('b')).toBe(2)
  })
})
