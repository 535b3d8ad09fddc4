/**
 * `cutover normalize` on a worker thread (src/jobs/normalize-thread.ts) must write exactly
 * what the single-threaded path writes: the same clean bytes, the same rejects bytes, the same
 * summary, for a generated dirty file with reader-level dirt too (wrong field counts, quoted
 * line breaks, malformed quotes, NUL characters, Cyrillic), over many reader batches, and the
 * same output and exit code when the reader stops on an error.
 * CUTOVER_NORMALIZE_THREADS=0 forces the single-threaded path, =1 the worker.
 */
import {existsSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'
import {cardTransactionSpec} from '../../fixtures/generator/pipeline.js'
import {CSV_HEADER, toCsvLine, transactionStream} from '../../fixtures/generator/transactions.js'
import {csvOptionsFromUri, parseCsvChunks, parseCsvChunksRows} from '../../legacy-adapters/csv.js'
import {parseSourceUri} from '../../legacy-adapters/uri.js'
import {PackingSink} from '../../src/jobs/normalize-thread.js'
import {recordSerializer} from '../../src/jobs/record-processor.js'
import {unpackBatch} from '../../src/jobs/normalize-worker.js'
import type {RawRecord} from '../../legacy-adapters/types.js'
import {runCli} from '../helpers.js'

const tmp = () => mkdtempSync(join(tmpdir(), 'cutover-normalize-threads-'))

/** A dirty legacy CSV: the generator's defects plus lines the reader itself rejects or must join. */
function dirtyCsv(rows: number): string {
  const out = [CSV_HEADER]
  let n = 0
  for (const t of transactionStream(rows * 1.05, {seed: 7, dirty: 0.1})) {
    if (t.record === null) continue
    n++
    let line = toCsvLine(t.record)
    if (n % 997 === 0) line += ';extra' // SCHEMA_VIOLATION
    else if (n % 1009 === 0) line = line.replace(/;([^;]*)$/, ';"multi\nline ""quoted""\r\nmerchant $1"') // record spanning lines
    else if (n % 1013 === 0) line = line.replace(/;([^;]*)$/, ';"bad"quote $1') // malformed quote: DECODE_ERROR
    else if (n % 1019 === 0) line = line.replace(/;([^;]*)$/, ';nul\u0000char $1')
    else if (n % 1021 === 0) line = line.replace(/;([^;]*)$/, ';Магазин «Ёлка» $1')
    else if (n % 1031 === 0) line = line.replace(/;([^;]*)$/, ';37.8"N $1') // a literal quote
    else if (n % 1033 === 0) out.push('') // a blank line before the record
    out.push(line)
    if (n >= rows) break
  }
  return out.join('\n') + '\n'
}

interface Run {
  code: number | null
  summary: Record<string, unknown> | undefined
  clean: string | null
  rejects: string | null
  stderr: string
  stdout: string
}

async function run(dir: string, uri: string, spec: string, threads: '0' | '1'): Promise<Run> {
  const clean = join(dir, `clean-${threads}.ndjson`)
  const rejects = join(dir, `rejects-${threads}.ndjson`)
  const r = await runCli(['normalize', uri, '--spec', spec, '--out', clean, '--rejects', rejects, '--json'], {env: {CUTOVER_NORMALIZE_THREADS: threads}})
  const summary = r.json === undefined ? undefined : {...(r.json as Record<string, unknown>), elapsed_ms: 0}
  // a run that fails leaves no output (the files are renamed into place only when it completes)
  const read = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : null)
  return {code: r.code, summary, clean: read(clean), rejects: read(rejects), stderr: r.stderr, stdout: r.stdout}
}

describe('cutover normalize on a worker thread', () => {
  it('writes byte for byte what the single-threaded path writes, and counts every record', async () => {
    const dir = tmp()
    const csv = join(dir, 'txn.csv')
    writeFileSync(csv, dirtyCsv(60_000))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, cardTransactionSpec({name: 'threads', topic: 'unused', group: 'unused', dlqTopic: 'unused'}))
    const uri = `csv:${csv}?delimiter=;`
    const one = await run(dir, uri, spec, '0')
    const two = await run(dir, uri, spec, '1')
    expect(one.code, one.stderr).toBe(0)
    expect(two.code, two.stderr).toBe(0)
    expect(two.summary).toEqual(one.summary)
    expect(two.clean === one.clean).toBe(true)
    expect(two.rejects === one.rejects).toBe(true)

    const s = one.summary as {read: number; ok: number; rejected: Record<string, number>; duplicates: number}
    const rejected = Object.values(s.rejected).reduce((a, b) => a + b, 0)
    expect(s.read).toBe(s.ok + rejected + s.duplicates)
    expect(s.read).toBe(60_000)
    expect(s.duplicates).toBeGreaterThan(0)
    for (const code of ['SCHEMA_VIOLATION', 'DECODE_ERROR', 'DUPLICATE_CONFLICT', 'UNPARSEABLE_DATE', 'UNPARSEABLE_AMOUNT', 'REQUIRED_FIELD_EMPTY']) {
      expect(s.rejected[code], code).toBeGreaterThan(0)
    }
    expect(one.clean!.split('\n').length - 1).toBe(s.ok)
    expect(one.clean).toContain('nul\\u0000char')
    expect(one.clean).toContain('Магазин «Ёлка»')
    expect(one.clean).toContain('multi\\nline \\"quoted\\"\\r\\nmerchant')
  })

  it('writes the same output and exits the same way when the reader stops on a runaway quote', async () => {
    const dir = tmp()
    const csv = join(dir, 'txn.csv')
    const text = dirtyCsv(20_000).split('\n')
    text.splice(15_000, 0, 'T9;A9;1,00;"20.11.2026 09:15:00') // a quote never closed
    writeFileSync(csv, text.join('\n'))
    const spec = join(dir, 'spec.yaml')
    writeFileSync(spec, cardTransactionSpec({name: 'threads', topic: 'unused', group: 'unused', dlqTopic: 'unused'}))
    const uri = `csv:${csv}?delimiter=;&max_record_bytes=4096`
    const one = await run(dir, uri, spec, '0')
    const two = await run(dir, uri, spec, '1')
    expect(one.code).toBe(2)
    expect(two.code).toBe(one.code)
    expect(two.stderr).toBe(one.stderr)
    expect(two.stdout).toBe(one.stdout)
    expect(JSON.parse(one.stdout).error).toMatchObject({code: 'SPEC_INVALID', message: expect.stringMatching(/record larger than 4096 bytes/)})
    // nothing half-written under the names asked for, on either path
    expect([one.clean, one.rejects, two.clean, two.rejects]).toEqual([null, null, null, null])
  })
})

describe('packing the csv reader batches for the worker', () => {
  const csv = [
    'id;acct;note',
    'T1;A1;plain',
    'T2;A1',
    'T3;;"multi\nline ""quoted""\r\nvalue"',
    '',
    'T4;A2;nul\u0000and\u0001',
    'T5;A2;"bad"quote',
    'T6;Ёлка;\ud83d\ude00 37.8"N',
    'T7;A3;x;extra',
    'T8;A4;last',
  ].join('\r\n')

  async function* chunks(text: string, size: number): AsyncGenerator<Buffer> {
    const bytes = Buffer.from(text)
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size)
  }

  it('gives the worker the very records, positions and errors the reader yields, whatever the chunks', async () => {
    const opts = csvOptionsFromUri(parseSourceUri('csv:a.csv?delimiter=;'))
    for (const size of [1, 3, 7, 64, 1 << 20]) {
      const expected: RawRecord[] = []
      for await (const batch of parseCsvChunks(chunks(csv, size), opts).batches()) expected.push(...batch)
      const got: RawRecord[] = []
      for await (const packed of parseCsvChunksRows(chunks(csv, size), opts, new PackingSink('a.csv'))) got.push(...unpackBatch(structuredClone(packed), new Map()))
      expect(got, `chunks of ${size}`).toEqual(expected)
      expect(got.length).toBe(8)
      expect(got.filter((r) => !r.ok).length).toBe(3)
    }
  })
})

describe('the generated record serializer', () => {
  it('is byte-identical to JSON.stringify for values short and long, every field present or not', () => {
    const names = ['txn_id', 'a"b', 'c\\d', 'e\u2028', 'f']
    const ser = recordSerializer(names)
    const text = fc.oneof(fc.string({unit: 'binary', maxLength: 40}), fc.string({unit: 'binary', minLength: 30, maxLength: 80}), fc.string({unit: 'grapheme', maxLength: 40}))
    const value = fc.oneof(text, text, fc.boolean(), fc.constant(null), fc.constant(undefined))
    fc.assert(
      fc.property(fc.tuple(value, value, value, value, value), (vs) => {
        const record: Record<string, unknown> = {}
        names.forEach((n, i) => (record[n] = vs[i]))
        expect(ser(record)).toBe(JSON.stringify(record))
      }),
      {numRuns: 5000},
    )
  })
})
