import {describe, expect, it} from 'vitest'
import {createStreamDecoder, createUtf8Transcoder, decodeBytes, encodeString, lookupEncoding, resolveEncoding, SUPPORTED_ENCODINGS, unmappedBytes} from '../../src/normalize/encoding.js'

describe('encodings', () => {
  it('decodes each supported encoding, and encodes back', () => {
    const samples: Record<string, string> = {
      'utf-8': 'Пятёрочка 東京 €',
      'windows-1251': 'Пятёрочка №12 «Восток»',
      ibm866: 'Пятёрочка №12',
      latin1: 'Café Müller',
      cp037: 'CAFE MUELLER & SOHN 12.50',
      cp1047: 'A[B]C^ 0123',
      ascii: 'PLAIN 123',
    }
    for (const enc of SUPPORTED_ENCODINGS) {
      const s = samples[enc]!
      const bytes = encodeString(s, enc)
      expect(decodeBytes(bytes, enc), enc).toBe(s)
    }
    // Known bytes: EBCDIC 'A' is C1, '0' is F0, space is 40; cp866 'П' is 8F; cp1251 'П' is CF.
    expect(decodeBytes(Buffer.from([0xc1, 0xf0, 0x40]), 'cp037')).toBe('A0 ')
    expect(decodeBytes(Buffer.from([0x8f]), 'ibm866')).toBe('П')
    expect(decodeBytes(Buffer.from([0xcf]), 'windows-1251')).toBe('П')
    // cp037 and cp1047 differ on brackets
    expect(encodeString('[', 'cp037')).toEqual(Buffer.from([0xba]))
    expect(encodeString('[', 'cp1047')).toEqual(Buffer.from([0xad]))
  })

  it('reports invalid UTF-8 and non-ASCII bytes as DECODE_ERROR, never a silent replacement', () => {
    expect(() => decodeBytes(Buffer.from([0x61, 0xff]), 'utf-8')).toThrow(expect.objectContaining({code: 'DECODE_ERROR'}))
    expect(() => decodeBytes(Buffer.from([0x61, 0xe9]), 'ascii')).toThrow(/0xe9 at offset 1/)
    expect(() => encodeString('Ж', 'cp037')).toThrow(RangeError)
    expect(() => encodeString('€', 'windows-1251')).not.toThrow() // 0x88 in cp1251
    expect(() => encodeString('東', 'windows-1251')).toThrow(RangeError)
  })

  it('reports a byte with no character in a single-byte encoding (windows-1251 0x98) as DECODE_ERROR, not U+FFFD', () => {
    const bytes = Buffer.from([0xc0, 0x98, 0xc1])
    expect(() => decodeBytes(bytes, 'windows-1251')).toThrow(
      expect.objectContaining({code: 'DECODE_ERROR', message: 'no character in windows-1251 for byte 0x98 at offset 1', details: {byteOffset: 1}}),
    )
    // the first of several, also inside a larger buffer's view
    const view = Buffer.from([0x41, 0x41, 0xcf, 0x98, 0x98]).subarray(2)
    expect(() => decodeBytes(view, 'windows-1251')).toThrow(expect.objectContaining({details: {byteOffset: 1}}))
    expect(unmappedBytes('windows-1251')).toEqual([0x98])
    for (const enc of ['cp037', 'cp1047', 'latin1', 'ibm866', 'utf-8', 'ascii'] as const) expect(unmappedBytes(enc), enc).toEqual([])
    // every other byte of windows-1251 is a character, and decodes as before
    const others = Buffer.from(Array.from({length: 256}, (_, i) => i).filter((b) => b !== 0x98))
    expect(decodeBytes(others, 'windows-1251')).toBe(createStreamDecoder('windows-1251').write(others))
    expect(decodeBytes(others, 'windows-1251')).not.toContain('\uFFFD')
    // every byte of the other single-byte encodings is a character
    const all = Buffer.from(Array.from({length: 256}, (_, i) => i))
    for (const enc of ['cp037', 'cp1047', 'latin1', 'ibm866'] as const) expect(decodeBytes(all, enc), enc).toHaveLength(256)
    // U+FFFD written in valid UTF-8 is a character like any other
    expect(decodeBytes(Buffer.from('a\uFFFDb', 'utf8'), 'utf-8')).toBe('a\uFFFDb')
  })

  it('decodes streams split inside characters, and drops a UTF-8 BOM', () => {
    const text = 'Ёлка 🎄 Ж'
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)])
    const d = createStreamDecoder('utf-8')
    let out = ''
    for (const b of bytes) out += d.write(Buffer.from([b]))
    out += d.end()
    expect(out).toBe(text)
    const w = createStreamDecoder('windows-1251')
    expect(w.write(encodeString('Пят', 'windows-1251')) + w.write(encodeString('ёрочка', 'windows-1251')) + w.end()).toBe('Пятёрочка')
  })

  it('knows the usual aliases and names the supported ones otherwise', () => {
    expect(lookupEncoding('CP1251')).toBe('windows-1251')
    expect(lookupEncoding('cp866')).toBe('ibm866')
    expect(lookupEncoding('UTF8')).toBe('utf-8')
    expect(lookupEncoding('IBM037')).toBe('cp037')
    expect(() => resolveEncoding('koi8-r')).toThrow(expect.objectContaining({code: 'USAGE', hint: expect.stringContaining('windows-1251')}))
  })

  it('transcodes every byte of each single-byte encoding to the UTF-8 of its character', () => {
    const all = Buffer.from(Array.from({length: 256}, (_, i) => i))
    for (const enc of SUPPORTED_ENCODINGS) {
      if (enc === 'utf-8') continue
      const t = createUtf8Transcoder(enc)
      const decoded = enc === 'ascii' ? all.toString('latin1').replace(/[\u0080-\u00ff]/g, '\uFFFD') : createStreamDecoder(enc).write(all)
      // (for CSV) EBCDIC's NL is a line end: LF
      const expected = enc === 'cp037' || enc === 'cp1047' ? decoded.replace('\u0085', '\n') : decoded
      expect(t.write(all).toString('utf8'), enc).toBe(expected)
      expect(t.sawInvalid, enc).toBe(expected.includes('\uFFFD'))
      expect(createUtf8Transcoder(enc).write(encodeString('ABC 123', enc)).toString('utf8')).toBe('ABC 123')
    }
    // the expected side above comes from the decoder the transcoder is built from: known bytes, independently
    expect(createUtf8Transcoder('cp037').write(Buffer.from([0xc1, 0xf0, 0xba])).toString('utf8')).toBe('A0[')
    expect(createUtf8Transcoder('cp1047').write(Buffer.from([0xc1, 0xf0, 0xad])).toString('utf8')).toBe('A0[')
    expect(createUtf8Transcoder('cp037').write(Buffer.from([0x15, 0x25])).toString('utf8')).toBe('\n\n')
    expect(createUtf8Transcoder('cp1047').write(Buffer.from([0x15, 0x25])).toString('utf8')).toBe('\n\n')
    expect(createUtf8Transcoder('ibm866').write(Buffer.from([0x8f, 0xe0])).toString('utf8')).toBe('Пр')
    expect(createUtf8Transcoder('windows-1251').write(Buffer.from([0xcf, 0xf0, 0x88])).toString('utf8')).toBe('Пр€')
    expect(createUtf8Transcoder('windows-1251').write(encodeString('Пятёрочка', 'windows-1251')).toString('utf8')).toBe('Пятёрочка')
  })
})
