/**
 * How `dlq inspect` shows a dead letter whose value is a file's bytes in another encoding than
 * UTF-8 (its cutover.source.encoding header): decoded with that encoding, a byte with no character
 * in it written \x98 (never U+FFFD, which hides which byte it was), and said so; shown or not by
 * the same rules as any text value. Was: the bytes read as UTF-8, U+FFFD for every Cyrillic letter.
 */
import {describe, expect, it} from 'vitest'
import {SOURCE_ENCODING_HEADER, showDeadLetterValue, valueEncodingOf} from '../../src/dlq/mask.js'
import {decodeMarked, encodeString} from '../../src/normalize/encoding.js'
import {formatInspect} from '../../src/ui/dlq-text.js'
import type {DlqInspectResult, DlqSample} from '../../src/dlq/inspect.js'

const line = Buffer.concat([encodeString('T2;Щука', 'windows-1251'), Buffer.from([0xd0, 0x98]), encodeString(';2,00', 'windows-1251')])

describe('decodeMarked', () => {
  it('marks each byte with no character in the encoding, and only those', () => {
    expect(decodeMarked(line, 'windows-1251')).toEqual({text: 'T2;ЩукаР\\x98;2,00', marked: 1})
    expect(decodeMarked(Buffer.from([0x41, 0xc3, 0xa9, 0xff]), 'ascii')).toEqual({text: 'A\\xc3\\xa9\\xff', marked: 3})
    expect(decodeMarked(Buffer.from([0x41, 0xc3, 0xa9, 0xff, 0xe2, 0x82]), 'utf-8')).toEqual({text: 'Aé\\xff\\xe2\\x82', marked: 3})
    expect(decodeMarked(encodeString('T001 Ёлка', 'ibm866'), 'ibm866')).toEqual({text: 'T001 Ёлка', marked: 0})
    expect(decodeMarked(encodeString('T001[Acc]', 'cp037'), 'cp037')).toEqual({text: 'T001[Acc]', marked: 0})
    expect(decodeMarked(encodeString('T001[Acc]', 'cp1047'), 'cp1047')).toEqual({text: 'T001[Acc]', marked: 0})
  })
})

describe('a dead letter value with cutover.source.encoding', () => {
  it('is decoded with it when text may be shown (a spec without sensitive fields), and says so', () => {
    const encoding = valueEncodingOf({[SOURCE_ENCODING_HEADER]: Buffer.from('windows-1251')})
    expect(encoding).toBe('windows-1251')
    expect(showDeadLetterValue(line, [], encoding)).toEqual({
      value: 'T2;ЩукаР\\x98;2,00',
      masking: 'sensitive-fields',
      encoding: 'windows-1251',
      note: 'decoded from windows-1251, as its cutover.source.encoding header says; 1 byte with no character in windows-1251 shown as \\xNN',
    })
    // read as UTF-8 it was U+FFFD for every letter
    expect(showDeadLetterValue(line, [], undefined).value).toContain('\uFFFD')
  })

  it('is not shown without a spec or with sensitive fields, as any text value', () => {
    expect(showDeadLetterValue(line, undefined, 'windows-1251')).toMatchObject({value: null, encoding: 'windows-1251', note: expect.stringContaining('no --spec')})
    expect(showDeadLetterValue(line, [['acct']], 'windows-1251')).toMatchObject({value: null, note: expect.stringContaining('sensitive')})
  })

  it('an encoding cutover does not read is ignored (the value read as before)', () => {
    expect(valueEncodingOf({[SOURCE_ENCODING_HEADER]: 'klingon'})).toBeUndefined()
    expect(valueEncodingOf({})).toBeUndefined()
    expect(valueEncodingOf({[SOURCE_ENCODING_HEADER]: [Buffer.from('cp037'), 'cp866']})).toBe('ibm866')
  })

  it('the text view shows the marked byte as \\x98, not as JSON escapes it, and how it was decoded', () => {
    const shown = showDeadLetterValue(line, [], 'windows-1251')
    const sample = {source: {topic: 't', partition: 0, offset: '3', timestamp: null}, key: null, message: 'bad.csv:3: field acct holds bytes that are not valid windows-1251', value: shown.value, value_masking: shown.masking, value_note: shown.note, value_encoding: shown.encoding} as unknown as DlqSample
    const result = {topic: 'd', total: 1, repeats: 0, since: null, until: null, first: null, last: null, by_code: {DECODE_ERROR: 1}, by_source: [], by_pipeline_version: [], by_hour: [], samples: {DECODE_ERROR: [sample]}} as unknown as DlqInspectResult
    expect(formatInspect(result)).toContain('    value "T2;ЩукаР\\x98;2,00" (decoded from windows-1251, as its cutover.source.encoding header says; 1 byte with no character in windows-1251 shown as \\xNN)')
  })
})
