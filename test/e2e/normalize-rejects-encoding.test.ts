/**
 * `cutover normalize --rejects`: the original of a record the reader could not read is the file's
 * bytes (`original_base64`, with `original_encoding`) exactly when the reader says so, never
 * guessed from the bytes. Was: a windows-1251 line holding the invalid byte 0x98 right after 0xD0
 * (Р) is also valid UTF-8 (D0 98 is "И"), and its rejects line showed `original: "…И…"`, a letter
 * the file never held, with no sign of the invalid byte; the same for an ascii file's C3 A9 ("é").
 * A fixed: record the reader could not read (an EBCDIC packed field) had no original at all.
 * Lines whose every byte is a character of the encoding (windows-1251 C8, ibm866) stay `original`
 * text. The single-threaded path and the worker thread write the same bytes.
 */
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {encodeString} from '../../src/normalize/encoding.js'
import {runCli} from '../helpers.js'

const SPEC = `version: 1
name: rejects-encoding
source: {topic: unused, group: unused, format: json}
fields:
  txn_id: {from: id, type: string, required: true}
  account: {from: acct, type: string}
  amount: {from: amt, type: decimal, scale: 2}
key: txn_id
dlq: {topic: unused.dlq}
`

type Reject = Record<string, unknown> & {code: string; position: {line?: number; record?: number}}

async function rejectsOf(dir: string, uri: string, threads: '0' | '1'): Promise<{rejects: Reject[]; text: string}> {
  const spec = join(dir, 'spec.yaml')
  writeFileSync(spec, SPEC)
  const rejects = join(dir, `rejects-${threads}.ndjson`)
  const r = await runCli(['normalize', uri, '--spec', spec, '--out', join(dir, `clean-${threads}.ndjson`), '--rejects', rejects, '--json'], {env: {CUTOVER_NORMALIZE_THREADS: threads}})
  expect(r.code, r.stderr).toBe(0)
  const text = readFileSync(rejects, 'utf8')
  return {rejects: text.trimEnd().split('\n').map((l) => JSON.parse(l) as Reject), text}
}

const bytesOf = (r: Reject) => Buffer.from(r.original_base64 as string, 'base64')

describe('normalize --rejects: the original is the file bytes when the reader says so, not when they look like UTF-8', () => {
  it('windows-1251: D0 98 (Р and the invalid 0x98) is original_base64 with its encoding; C8 (И) is original text; both paths alike', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-rejects-encoding-'))
    const cp = (s: string) => encodeString(s, 'windows-1251')
    const lines = [
      cp('id;acct;amt'),
      cp('T1;Счёт;1,00'),
      Buffer.concat([cp('T2;'), Buffer.from([0xd0, 0x98]), cp(';2,00')]), // line 3: DECODE_ERROR naming acct
      Buffer.concat([cp('T3;'), Buffer.from([0xd0, 0x98]), cp(';3,00;x')]), // line 4: ragged, and the invalid byte (the whole line valid UTF-8)
      cp('T4;И;4,00;лишнее'), // line 5: ragged, every byte a character (И is C8)
    ]
    const csv = join(dir, 'txn.csv')
    writeFileSync(csv, Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\r\n')])))
    const uri = `csv:${csv}?delimiter=;&encoding=windows-1251`
    const single = await rejectsOf(dir, uri, '0')
    const worker = await rejectsOf(dir, uri, '1')
    const rejects = single.rejects
    expect(rejects.map((r) => [r.code, r.position.line])).toEqual([
      ['DECODE_ERROR', 3],
      ['SCHEMA_VIOLATION', 4],
      ['SCHEMA_VIOLATION', 5],
    ])
    for (const i of [0, 1]) {
      expect(Buffer.from(lines[i + 2]!).toString('utf8'), 'the bytes are valid UTF-8').not.toContain('\uFFFD')
      expect(rejects[i]!.original, `line ${i + 3}`).toBeUndefined()
      expect(bytesOf(rejects[i]!).equals(lines[i + 2]!), `line ${i + 3}: the file's bytes exactly`).toBe(true)
      expect(rejects[i]!.original_encoding).toBe('windows-1251')
    }
    expect(rejects[2]).toMatchObject({original: 'T4;И;4,00;лишнее'})
    expect(rejects[2]!.original_base64).toBeUndefined()
    expect(rejects[2]!.original_encoding).toBeUndefined()
    expect(worker.text === single.text).toBe(true)
  })

  it('ascii: C3 A9 (two bytes above 0x7F, "é" in UTF-8) is original_base64; ibm866 (every byte a character) is original text', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-rejects-encoding-'))
    const bad = Buffer.concat([Buffer.from('T2;Caf'), Buffer.from([0xc3, 0xa9]), Buffer.from(';2.00')])
    writeFileSync(join(dir, 'a.csv'), Buffer.concat([Buffer.from('id;acct;amt\nT1;A;1.00\n'), bad, Buffer.from('\n')]))
    const ascii = await rejectsOf(dir, `csv:${join(dir, 'a.csv')}?delimiter=;&encoding=ascii`, '0')
    expect(ascii.rejects).toHaveLength(1)
    expect(ascii.rejects[0]).toMatchObject({code: 'DECODE_ERROR', field: 'account', original_encoding: 'ascii'})
    expect(ascii.rejects[0]!.original).toBeUndefined()
    expect(bytesOf(ascii.rejects[0]!).equals(bad)).toBe(true)

    const dos = (s: string) => encodeString(s, 'ibm866')
    writeFileSync(join(dir, 'd.csv'), Buffer.concat([dos('id;acct;amt\r\nT1;"Ёлка"x;1,00\r\nT2;Щука;2,00;лишнее\r\n')]))
    const ibm866 = await rejectsOf(dir, `csv:${join(dir, 'd.csv')}?delimiter=;&encoding=ibm866`, '1')
    expect(ibm866.rejects.map((r) => [r.code, r.original, r.original_base64, r.original_encoding])).toEqual([
      ['DECODE_ERROR', 'T1;"Ёлка"x;1,00', undefined, undefined],
      ['SCHEMA_VIOLATION', 'T2;Щука;2,00;лишнее', undefined, undefined],
    ])
  })

  it.each(['cp037', 'cp1047'] as const)('fixed %s: a record with a bad packed field keeps its bytes as original_base64, with its encoding', async (encoding) => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-rejects-encoding-'))
    writeFileSync(join(dir, 'rec.cpy'), '       01 REC.\n          05 ID   PIC X(4).\n          05 ACCT PIC X(4).\n          05 AMT  PIC S9(5)V99 COMP-3.\n')
    const good = Buffer.concat([encodeString('T001', encoding), encodeString('Acc1', encoding), Buffer.from([0x00, 0x01, 0x23, 0x4c])])
    const bad = Buffer.concat([encodeString('T002', encoding), encodeString('Acc[', encoding), Buffer.from([0x00, 0x3a, 0x30, 0x0c])]) // 0x3A: no packed digit
    writeFileSync(join(dir, 'TXN.DAT'), Buffer.concat([good, bad]))
    const {rejects} = await rejectsOf(dir, `fixed:${join(dir, 'TXN.DAT')}?copybook=${join(dir, 'rec.cpy')}&encoding=${encoding}`, '0')
    expect(rejects).toHaveLength(1)
    expect(rejects[0]).toMatchObject({code: 'DECODE_ERROR', field: 'amount', value: "X'003A300C'", original_encoding: encoding, position: {record: 2, byteOffset: 12}})
    expect(rejects[0]!.original).toBeUndefined()
    expect(bytesOf(rejects[0]!).equals(bad)).toBe(true)
  })
})
