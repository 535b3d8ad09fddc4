/**
 * How `dlq inspect` shows a dead letter whose value is a file's bytes in another encoding than
 * UTF-8 (its cutover.source.encoding header): decoded with that encoding, a byte with no character
 * in it written \x98 (never U+FFFD, which hides which byte it was), and said so; shown or not by
 * the same rules as any text value. Was: the bytes read as UTF-8, U+FFFD for every Cyrillic letter.
 */
import {describe, expect, it} from 'vitest'
import {parseSpec} from '../../src/config/spec.js'
import {deadLetterView} from '../../src/dlq/headers.js'
import {DlqAggregator, type DlqInspectResult, type DlqSample} from '../../src/dlq/inspect.js'
import {SOURCE_ENCODING_HEADER, sensitivePaths, showDeadLetterValue, valueDecodingOf, valueEncodingOf} from '../../src/dlq/mask.js'
import type {DlqRecord} from '../../src/dlq/reader.js'
import {decodeMarked, encodeString} from '../../src/normalize/encoding.js'
import {formatInspect} from '../../src/ui/dlq-text.js'

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
    const result = {topic: 'd', total: 1, repeats: 0, since: null, until: null, first: null, last: null, by_code: {DECODE_ERROR: 1}, by_source: [], by_pipeline_version: [], by_hour: [], samples: {DECODE_ERROR: [sample]}, next_steps: {}} as unknown as DlqInspectResult
    expect(formatInspect(result)).toContain('    value "T2;ЩукаР\\x98;2,00" (decoded from windows-1251, as its cutover.source.encoding header says; 1 byte with no character in windows-1251 shown as \\xNN)')
  })
})

/**
 * `stream run`'s dead letters have no cutover.source.encoding header: the value is the message as
 * the pipeline's topic held it, in the spec's source.encoding. `dlq inspect --spec` of that
 * pipeline reads it so. Was: a windows-1251 CSV line shown as UTF-8, U+FFFD for every letter.
 */
describe('a dead letter of the --spec pipeline, without the header', () => {
  const spec = (source: string, fields = '  acct: {type: string}\n') =>
    parseSpec(`version: 1\nname: txn-1251\nsource: {topic: txn.raw, ${source}}\nfields:\n  txn_id: {from: id, type: string, required: true}\n${fields}  amount: {from: amt, type: decimal, scale: 2}\nkey: txn_id\n`, 'p.yaml').spec
  const csv1251 = spec('format: csv, encoding: windows-1251, delimiter: ";", columns: [id, acct, amt]')
  const stream = (over: Record<string, string> = {}): Record<string, Buffer> =>
    Object.fromEntries(
      Object.entries({
        'cutover.error.code': 'UNPARSEABLE_AMOUNT',
        'cutover.error.message': 'Field amount value "сто" is not a number',
        'cutover.error.stage': 'normalize',
        'cutover.source.topic': 'txn.raw',
        'cutover.source.partition': '0',
        'cutover.source.offset': '1',
        'cutover.pipeline': 'txn-1251',
        ...over,
      }).map(([k, v]) => [k, Buffer.from(v)]),
    )
  const record = (value: Buffer, headers = stream()): DlqRecord => ({partition: 0, offset: '0', timestamp: '1795414500000', key: Buffer.from('T2'), value, headers, view: deadLetterView(headers, '1795414500000')})
  const cyrillic = encodeString('T2;Щука;сто', 'windows-1251')

  it('is decoded with the spec source.encoding, and says so (inspect, --json and text)', () => {
    expect(valueDecodingOf(stream(), cyrillic, csv1251)).toEqual({encoding: 'windows-1251', from: 'spec', json: false})
    const agg = new DlqAggregator({filter: {}, limit: 3, sensitive: sensitivePaths(csv1251), spec: csv1251})
    agg.add(record(cyrillic))
    const r = agg.result({topic: 'txn.dlq', since: null, until: null, filter: {codes: [], key: null}, partitions: []})
    expect(r.samples.UNPARSEABLE_AMOUNT).toEqual([
      expect.objectContaining({value: 'T2;Щука;сто', value_encoding: 'windows-1251', value_note: "decoded from windows-1251, the --spec's source.encoding: the dead letter is of its pipeline"}),
    ])
    expect(formatInspect(r)).toContain(`    value "T2;Щука;сто" (decoded from windows-1251, the --spec's source.encoding: the dead letter is of its pipeline)`)
    // without the spec's encoding, as before: U+FFFD
    const before = new DlqAggregator({filter: {}, limit: 3, sensitive: sensitivePaths(csv1251)})
    before.add(record(cyrillic))
    expect(before.result({topic: 'txn.dlq', since: null, until: null, filter: {codes: [], key: null}, partitions: []}).samples.UNPARSEABLE_AMOUNT![0]!.value).toContain('\uFFFD')
  })

  it('an EBCDIC record of a fixed spec, valid UTF-8 or not, is decoded with it', () => {
    const fixed = spec('format: fixed, encoding: cp037, copybook: rec.cpy', '  acct: {type: string, pattern: "^Acc[0-9]$"}\n')
    const rec = Buffer.concat([encodeString('T003Ac$3', 'cp037'), Buffer.from([0x00, 0x00, 0x10, 0x0c])])
    expect(showDeadLetterValue(rec, sensitivePaths(fixed), valueDecodingOf(stream(), rec, fixed))).toMatchObject({value: 'T003Ac$3\u0000\u0000\u0010\f', encoding: 'cp037'})
    // bytes that are also UTF-8 text (C3 93, "Cl" in cp037, is "Ó"): the spec says they are cp037
    const utf8Too = encodeString('Cl', 'cp037')
    expect(utf8Too.toString('utf8')).toBe('Ó')
    expect(showDeadLetterValue(utf8Too, [], valueDecodingOf(stream(), utf8Too, fixed)).value).toBe('Cl')
  })

  it('the header wins; another pipeline, a backfill dead letter or a valid UTF-8 value of a utf-8 spec are read as before', () => {
    expect(valueDecodingOf(stream({[SOURCE_ENCODING_HEADER]: 'cp037'}), cyrillic, csv1251)).toEqual({encoding: 'cp037', from: 'header'})
    expect(valueDecodingOf(stream({'cutover.pipeline': 'other'}), cyrillic, csv1251)).toBeUndefined()
    expect(valueDecodingOf(stream(), cyrillic, undefined)).toBeUndefined()
    expect(valueDecodingOf(stream(), null, csv1251)).toBeUndefined()
    // backfill's own dead letter (a record it read, partition -1): UTF-8 unless its header says otherwise
    const utf8Line = Buffer.from('T3;Щука;3,00;лишнее')
    const backfilled = stream({'cutover.source.partition': '-1', 'cutover.backfill.id': 'bf-1', 'cutover.error.code': 'SCHEMA_VIOLATION'})
    expect(valueDecodingOf(backfilled, utf8Line, csv1251)).toBeUndefined()
    expect(showDeadLetterValue(utf8Line, [], valueDecodingOf(backfilled, utf8Line, csv1251)).value).toBe('T3;Щука;3,00;лишнее')
    // stream run's dead letter of a record backfill sent keeps cutover.backfill.id, on a real partition
    expect(valueDecodingOf(stream({'cutover.backfill.id': 'bf-1'}), cyrillic, csv1251)).toMatchObject({encoding: 'windows-1251'})
    const utf8Spec = spec('format: json')
    expect(valueDecodingOf(stream(), Buffer.from('{"id":"T2","acct":"Щука"}'), utf8Spec)).toBeUndefined()
    const bad = Buffer.from([0x7b, 0xff, 0x7d])
    expect(valueDecodingOf(stream(), bad, utf8Spec)).toEqual({encoding: 'utf-8', from: 'spec', json: true})
    expect(showDeadLetterValue(bad, [], valueDecodingOf(stream(), bad, utf8Spec))).toMatchObject({value: '{\\xff}', encoding: 'utf-8'})
  })

  it('shows no more than before: text only with a spec without sensitive fields; a json source as JSON, masked', () => {
    const sensitive = spec('format: csv, encoding: windows-1251, delimiter: ";", columns: [id, acct, amt]', '  acct: {type: string, sensitive: true}\n')
    expect(showDeadLetterValue(cyrillic, sensitivePaths(sensitive), valueDecodingOf(stream(), cyrillic, sensitive))).toEqual({
      value: null,
      masking: 'sensitive-fields',
      encoding: 'windows-1251',
      note: "11 bytes of windows-1251 text (the --spec's source.encoding), not a JSON object: not shown (the spec has sensitive fields)",
    })
    const json = spec('format: json, encoding: windows-1251', '  acct: {type: string, sensitive: true}\n  memo: {type: string}\n')
    const value = encodeString('{"id":"T2","acct":"4111111111111111","memo":"Щука","amt":"сто"}', 'windows-1251')
    expect(showDeadLetterValue(value, sensitivePaths(json), valueDecodingOf(stream(), value, json))).toEqual({
      value: {id: 'T2', acct: '4111********1111', memo: 'Щука', amt: 'сто'},
      masking: 'sensitive-fields',
      encoding: 'windows-1251',
      note: "decoded from windows-1251, the --spec's source.encoding: the dead letter is of its pipeline",
    })
    // a byte with no character in windows-1251 (stream run read no JSON): text, not shown. Here,
    // after a backslash, marked as \x98 it would read as JSON, a member "ac\\x98ct" no mask covers
    const unmapped = Buffer.concat([encodeString('{"id":"T2","ac\\', 'windows-1251'), Buffer.from([0x98]), encodeString('ct":"4111111111111111"}', 'windows-1251')])
    expect(showDeadLetterValue(unmapped, sensitivePaths(json), valueDecodingOf(stream(), unmapped, json))).toMatchObject({value: null, encoding: 'windows-1251'})
    const shown = showDeadLetterValue(value, sensitivePaths(json), valueDecodingOf(stream(), value, json))
    const sample = {source: {topic: 't', partition: 0, offset: '1', timestamp: null}, key: 'T2', message: 'm', value: shown.value, value_masking: shown.masking, value_note: shown.note, value_encoding: shown.encoding} as unknown as DlqSample
    const result = {topic: 'd', total: 1, repeats: 0, since: null, until: null, first: null, last: null, by_code: {X: 1}, by_source: [], by_pipeline_version: [], by_hour: [], samples: {X: [sample]}, next_steps: {}} as unknown as DlqInspectResult
    expect(formatInspect(result)).toContain(`    value {"id":"T2","acct":"4111********1111","memo":"Щука","amt":"сто"} (decoded from windows-1251, the --spec's source.encoding: the dead letter is of its pipeline)`)
  })
})
