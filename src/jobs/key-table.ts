/**
 * A set of keys, each with a 53-bit payload hash, kept off the JavaScript heap: what
 * `normalize` needs to tell identical repeats from conflicting ones over millions of rows.
 *
 * A Map of a million strings costs twice: its own entries, and every major GC marking them
 * again while the file streams. Here the keys live as UTF-8 bytes in one growable arena and
 * the table is an open-addressing array of slots (Float64Array): no objects per key, nothing
 * for the GC to trace. Keys are compared byte for byte on a hash hit, so two different keys
 * never collide; only the payload hash is a hash (53 bits, see normalize.ts).
 *
 * Slot layout (4 doubles): key hash (53 bits, 0 = empty), payload hash, arena offset, key length.
 */
const EMPTY = 0
const SLOT = 4

/** cyrb53: a fast, well-mixed 53-bit string hash (public domain, bryc). Not cryptographic. */
export function cyrb53(s: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed
  let h2 = 0x41c6ce57 ^ seed
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i)
    h1 = Math.imul(h1 ^ ch, 2654435761)
    h2 = Math.imul(h2 ^ ch, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return 4294967296 * (2097151 & h2) + (h1 >>> 0)
}

/** `buf.write(key, at, 'utf8')`, without the native call for the short ASCII keys that are the rule. */
function writeKey(buf: Buffer, key: string, at: number): number {
  const n = key.length
  if (n > 64) return buf.write(key, at, 'utf8')
  for (let i = 0; i < n; i++) {
    const c = key.charCodeAt(i)
    if (c > 0x7f) return buf.write(key, at, 'utf8')
    buf[at + i] = c
  }
  return n
}

/** Whether buf[a, a+len) and buf[b, b+len) hold the same bytes. */
function sameBytes(buf: Buffer, a: number, b: number, len: number): boolean {
  if (len > 64) return buf.compare(buf, a, a + len, b, b + len) === 0
  for (let i = 0; i < len; i++) if (buf[a + i] !== buf[b + i]) return false
  return true
}

export class KeyTable {
  private slots: Float64Array
  private mask: number
  private arena: Buffer
  private used = 0
  size = 0

  constructor(initialCapacity = 1 << 16) {
    let cap = 1
    while (cap < initialCapacity * 2) cap <<= 1
    this.slots = new Float64Array(cap * SLOT)
    this.mask = cap - 1
    this.arena = Buffer.allocUnsafe(1 << 20)
  }

  /** Bytes held outside the JS heap. */
  get bytes(): number {
    return this.slots.byteLength + this.arena.length
  }

  /**
   * Looks `key` up: returns its stored payload hash, or `undefined` after storing `payload`
   * for a key not seen before.
   */
  getOrAdd(key: string, payload: number): number | undefined {
    const h = cyrb53(key) || 1
    // write the key at the arena's end first: compared there, and kept if it is new
    const maxLen = key.length * 3
    if (this.used + maxLen > this.arena.length) this.growArena(maxLen)
    const len = writeKey(this.arena, key, this.used)
    const slots = this.slots
    let i = h & this.mask
    for (;;) {
      const s = i * SLOT
      const sh = slots[s]!
      if (sh === EMPTY) {
        slots[s] = h
        slots[s + 1] = payload
        slots[s + 2] = this.used
        slots[s + 3] = len
        this.used += len
        if (++this.size * 2 > this.mask + 1) this.rehash()
        return undefined
      }
      if (sh === h && slots[s + 3] === len) {
        const off = slots[s + 2]!
        if (sameBytes(this.arena, this.used, off, len)) return slots[s + 1]
      }
      i = (i + 1) & this.mask
    }
  }

  private growArena(need: number): void {
    const next = Buffer.allocUnsafe(Math.max(this.arena.length * 2, this.used + need))
    this.arena.copy(next, 0, 0, this.used)
    this.arena = next
  }

  private rehash(): void {
    const old = this.slots
    const cap = (this.mask + 1) * 2
    this.slots = new Float64Array(cap * SLOT)
    this.mask = cap - 1
    for (let s = 0; s < old.length; s += SLOT) {
      const h = old[s]!
      if (h === EMPTY) continue
      const slots = this.slots
      let i = h & this.mask
      while (slots[i * SLOT] !== EMPTY) i = (i + 1) & this.mask
      const t = i * SLOT
      slots[t] = h
      slots[t + 1] = old[s + 1]!
      slots[t + 2] = old[s + 2]!
      slots[t + 3] = old[s + 3]!
    }
  }
}
