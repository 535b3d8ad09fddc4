/**
 * A csv: file's records, estimated from its first 64 KiB (legacy-adapters/csv.ts
 * estimateCsvRecords): the total of backfill's and normalize's progress lines off a terminal
 * ("of about N records") and of parity check's ETA (src/parity/sources.ts estimateRows), one
 * function for all three. Never a count of the whole file, never an open of a FIFO.
 */
import {execFileSync} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {csvRecordsFromSample, ESTIMATE_SAMPLE_BYTES, estimateCsvRecords} from '../../legacy-adapters/csv.js'
import {parseSourceUri} from '../../legacy-adapters/uri.js'
import {formatProgress, ProgressTracker} from '../../src/jobs/progress.js'
import {estimateRows} from '../../src/parity/sources.js'

const dir = mkdtempSync(join(tmpdir(), 'cutover-csv-estimate-'))
/** `n` records of one length after a header of another: `T0000001,0000123.45` */
function uniform(n: number, header = 'txn_id,amount_with_a_long_header_name\n'): string {
  let s = header
  for (let i = 1; i <= n; i++) s += `T${String(i).padStart(7, '0')},${String(i % 100000).padStart(7, '0')}.45\n`
  return s
}
const csv = (name: string, text: string | Buffer, params = ''): string => {
  writeFileSync(join(dir, name), text)
  return `csv:${name}${params}`
}
const estimate = (uri: string) => estimateCsvRecords(parseSourceUri(uri), {cwd: dir})

describe('estimateCsvRecords', () => {
  it('a file larger than the sample: its size over the mean record line, the header kept out', async () => {
    const uri = csv('big.csv', uniform(100_000))
    expect(uniform(100_000).length).toBeGreaterThan(20 * ESTIMATE_SAMPLE_BYTES)
    expect(await estimate(uri)).toBe(100_000)
    // parity check's estimate is the same function
    expect(await estimateRows(parseSourceUri(uri), {cwd: dir})).toBe(100_000)
  })

  it('header=false: every line is a record', async () => {
    const body = uniform(50_000, '')
    expect(await estimate(csv('nohead.csv', body, '?header=false&columns=id,amt'))).toBe(50_000)
  })

  it('a file the sample holds whole: its lines, a last one without a line end too; CRLF counted once', async () => {
    expect(await estimate(csv('small.csv', 'id,amt\n1,2\n3,4\n5,6\n'))).toBe(3)
    expect(await estimate(csv('noend.csv', 'id,amt\n1,2\n3,4\n5,6'))).toBe(3)
    expect(await estimate(csv('crlf.csv', 'id,amt\r\n1,2\r\n3,4\r\n'))).toBe(2)
    expect(await estimate(csv('cr.csv', 'id,amt\r1,2\r3,4\r5,6\r'))).toBe(3)
    expect(await estimate(csv('header-only.csv', 'id,amt\n'))).toBe(0)
  })

  it('EBCDIC line ends (NL 0x15 in cp037), not 0x0A', () => {
    const line = Buffer.from([0xc1, 0xc2, 0x6b, 0xf1, 0x15]) // "AB,1" NL
    const sample = Buffer.concat(Array.from({length: 1000}, () => line))
    expect(csvRecordsFromSample(sample, sample.length * 10, 'cp037', false)).toBe(10_000)
    expect(csvRecordsFromSample(sample, sample.length * 10, 'cp037', true)).toBe(9_999)
  })

  it('nothing to measure: an empty file, no line end in the sample, a missing file, a FIFO (never opened)', async () => {
    expect(await estimate(csv('empty.csv', ''))).toBeUndefined()
    expect(csvRecordsFromSample(Buffer.alloc(1000, 0x41), 5000, 'utf-8', true)).toBeUndefined()
    expect(await estimate('csv:missing.csv')).toBeUndefined()
    execFileSync('mkfifo', [join(dir, 'pipe.csv')])
    // an open(2) of a FIFO without a writer would wait for ever: undefined at once
    expect(await estimate('csv:pipe.csv')).toBeUndefined()
  })

  it('the progress line it gives: "of about N records", a percentage and an ETA, estimated', () => {
    const t = new ProgressTracker('backfill')
    t.total = {value: 300_000, estimate: true, unit: 'records'}
    t.done = 120_000
    const line = formatProgress({...t.snapshot(), elapsedMs: 5000, ratePerSec: 24_000})
    expect(line).toBe('backfill: 120,000 of about 300,000 records (~40.0%, ETA ~8 s, estimated) (24,000/s, 5.0 s)')
  })
})
