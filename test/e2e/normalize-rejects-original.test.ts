/**
 * `cutover normalize --rejects`: a record the csv reader could not read (a wrong field count, a
 * malformed quote, a byte invalid in the encoding, a quote never closed: its lines up to the quote's, the
 * lines after it read on as records) keeps its original lines
 * in its rejects line: `original` (UTF-8 text, a windows-1251 line decoded) when the reader's
 * `raw` is valid UTF-8, else `original_base64` (the file's bytes, the bad byte included). A spec
 * with `sensitive` fields gets `original_withheld` instead: no value of the record in the clear.
 * The single-threaded path (CUTOVER_NORMALIZE_THREADS=0), the default and the worker thread
 * (=1) write the same bytes.
 */
import {existsSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {runCli} from '../helpers.js'

const cp1251 = new TextDecoder('windows-1251')

/** windows-1251 bytes of a text holding only characters of that encoding */
function enc(text: string): Buffer {
  const out: number[] = []
  for (const ch of text) {
    const c = ch.codePointAt(0)!
    if (c < 0x80) out.push(c)
    else if (c >= 0x410 && c <= 0x44f) out.push(c - 0x410 + 0xc0)
    else if (c === 0x401) out.push(0xa8) // Ё
    else if (c === 0x451) out.push(0xb8) // ё
    else throw new Error(`no windows-1251 byte for ${ch} in this test`)
  }
  return Buffer.from(out)
}

const SPEC = (sensitive: boolean) => `version: 1
name: rejects-original
source: {topic: unused, group: unused, format: json}
fields:
  txn_id: {from: id, type: string, required: true}
  account: {from: acct, type: string${sensitive ? ', sensitive: true' : ''}}
  amount: {from: amt, type: decimal, scale: 2}
key: txn_id
dlq: {topic: unused.dlq}
`

interface Run {
  code: number | null
  stderr: string
  summary: unknown
  clean: string | null
  rejects: string | null
}

async function normalize(dir: string, csv: string, spec: string, threads: '0' | '1' | 'default'): Promise<Run> {
  const clean = join(dir, `clean-${threads}.ndjson`)
  const rejects = join(dir, `rejects-${threads}.ndjson`)
  const r = await runCli(['normalize', `csv:${csv}?delimiter=;&encoding=windows-1251`, '--spec', spec, '--out', clean, '--rejects', rejects, '--json'], {
    env: threads === 'default' ? {} : {CUTOVER_NORMALIZE_THREADS: threads},
  })
  const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : null)
  const summary = r.json === undefined ? undefined : {...(r.json as Record<string, unknown>), elapsed_ms: 0}
  return {code: r.code, stderr: r.stderr, summary, clean: read(clean), rejects: read(rejects)}
}

function rejectsOf(run: Run): Record<string, unknown>[] {
  expect(run.code, run.stderr).toBe(0)
  return run.rejects!.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
}

describe('normalize --rejects: the original of a record the reader could not read', () => {
  it('writes the lines as text (windows-1251 decoded) or, with an invalid byte, as the file bytes in base64; all paths alike', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-rejects-original-'))
    const lines = {
      header: enc('id;acct;amt'),
      good1: enc('T1;Счёт-1;12,50'),
      ragged: enc('T2;Счёт;1,00;лишнее'), // 4 fields for 3: SCHEMA_VIOLATION
      quote: enc('T3;"Магазин "Ёлка""x;3,00'), // a closing quote followed by other characters: DECODE_ERROR
      badByte: Buffer.concat([enc('T4;Иван'), Buffer.from([0x98]), enc('ов;4,00')]), // 0x98 is no windows-1251 character
      good2: enc('T5;Пётр;5,00'),
      open1: enc('T6;"не закрыта;6,00'), // a quote never closed: this line alone (was: to the end of the file)
      open2: enc('T7;A7;7,00'), // read on after it: a record
      open3: enc('T8;A8;8,00'),
    }
    const csv = join(dir, 'txn.csv')
    writeFileSync(csv, Buffer.concat([...Object.values(lines).flatMap((l) => [l, Buffer.from('\r\n')])]))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, SPEC(false))

    const single = await normalize(dir, csv, spec, '0')
    const byDefault = await normalize(dir, csv, spec, 'default')
    const worker = await normalize(dir, csv, spec, '1')
    const rejects = rejectsOf(single)

    expect(rejects.map((r) => [r.code, (r.position as {line: number}).line])).toEqual([
      ['SCHEMA_VIOLATION', 3],
      ['DECODE_ERROR', 4],
      ['DECODE_ERROR', 5],
      ['DECODE_ERROR', 7],
    ])
    // the lines as they are in the file, without the last line end, as UTF-8 text
    expect(rejects[0]!.original).toBe('T2;Счёт;1,00;лишнее')
    expect(rejects[0]!.original).toBe(cp1251.decode(lines.ragged))
    expect(rejects[1]!.original).toBe('T3;"Магазин "Ёлка""x;3,00')
    expect(rejects[3]!.original).toBe(cp1251.decode(lines.open1))
    expect(rejects[3]!.message).toContain('a quote opened on line 7 (byte')
    expect(rejects[3]!.message).toContain('the lines after it were read on as records, from line 8')
    // the invalid byte: the file's bytes themselves, 0x98 included
    expect(rejects[2]!.original).toBeUndefined()
    expect(Buffer.from(rejects[2]!.original_base64 as string, 'base64').equals(lines.badByte)).toBe(true)
    for (const i of [0, 1, 3]) expect(rejects[i]!.original_base64).toBeUndefined()
    for (const r of rejects) expect(r.original_withheld).toBeUndefined()
    expect(single.clean!.trimEnd().split('\n').map((l) => (JSON.parse(l) as {txn_id: string}).txn_id)).toEqual(['T1', 'T5', 'T7', 'T8'])
    expect(single.summary).toMatchObject({read: 8, ok: 4, rejected: {SCHEMA_VIOLATION: 1, DECODE_ERROR: 3}, duplicates: 0})

    // the worker thread (the default on two cores or more) writes the same bytes
    for (const other of [byDefault, worker]) {
      expect(other.code, other.stderr).toBe(0)
      expect(other.summary).toEqual(single.summary)
      expect(other.clean === single.clean).toBe(true)
      expect(other.rejects === single.rejects).toBe(true)
    }
  })

  it('withholds the original when the spec has sensitive fields, and says so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-rejects-original-'))
    const csv = join(dir, 'txn.csv')
    const pan = '4111111111111111'
    writeFileSync(
      csv,
      Buffer.concat([
        enc(`id;acct;amt\r\nT1;${pan};1,00;extra\r\nT2;"${pan}"x;2,00\r\n`),
        Buffer.from(`T3;${pan}`, 'latin1'),
        Buffer.from([0x98]),
        enc(';3,00\r\n'),
      ]),
    )
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, SPEC(true))
    const single = await normalize(dir, csv, spec, '0')
    const worker = await normalize(dir, csv, spec, '1')
    const rejects = rejectsOf(single)
    expect(rejects.map((r) => r.code)).toEqual(['SCHEMA_VIOLATION', 'DECODE_ERROR', 'DECODE_ERROR'])
    for (const r of rejects) {
      expect(r.original).toBeUndefined()
      expect(r.original_base64).toBeUndefined()
      expect(r.original_withheld).toMatch(/sensitive/)
      expect(r.original_withheld).toContain('account')
    }
    expect(single.rejects).not.toContain(pan)
    expect(worker.rejects === single.rejects).toBe(true)
  })
})
