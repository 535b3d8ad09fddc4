/**
 * Exact distinct and duplicate counts of a key-like column past the point where `profile` stops
 * holding its values in memory: every value of the column goes to a temp file, one JSON string
 * per line (UTF-8), which is then sorted with the parity external sort (runs of 100,000 values in
 * memory, merged from disk) and read once: equal values are adjacent.
 *
 * The caller decides what a value looks like on disk: profile writes a card number as its SHA-256
 * and masked form, never in clear.
 *
 * Memory: a 64 KiB write buffer per spilled column while reading; one sort at a time afterwards.
 * Disk: about the size of the column's values. The folder is removed by `close()`.
 */
import {closeSync, createReadStream, mkdtempSync, openSync, rmSync, writeSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {StringDecoder} from 'node:string_decoder'
import {externalSort} from '../parity/sort.js'
import type {KeyedRow} from '../parity/types.js'

const FLUSH_AT = 1 << 16

export interface SpillCount {
  distinct: number
  /** values beyond the first of each key */
  duplicates: number
  /** the first repeated values, in sorted order */
  examples: string[]
}

export class KeySpills {
  private dir: string | undefined
  private next = 0

  constructor(private readonly tmpDir: string = tmpdir()) {}

  /** A new spill file for one column. */
  open(): KeySpill {
    this.dir ??= mkdtempSync(join(this.tmpDir, 'cutover-profile-spill-'))
    return new KeySpill(join(this.dir, `col-${this.next++}.ndjson`))
  }

  close(): void {
    if (this.dir) rmSync(this.dir, {recursive: true, force: true})
    this.dir = undefined
  }
}

export class KeySpill {
  private fd: number | undefined
  /** lines not yet written, and their length (one join per flush: no rope of many small strings) */
  private lines: string[] = []
  private chars = 0
  values = 0

  constructor(readonly path: string) {
    this.fd = openSync(path, 'w')
  }

  add(value: string, times = 1): void {
    const line = JSON.stringify(value)
    for (let i = 0; i < times; i++) {
      this.lines.push(line)
      this.chars += line.length + 1
      if (this.chars >= FLUSH_AT) this.flush()
    }
    this.values += times
  }

  private flush(): void {
    if (this.fd !== undefined && this.lines.length > 0) writeSync(this.fd, this.lines.join('\n') + '\n')
    this.lines = []
    this.chars = 0
  }

  private finish(): void {
    this.flush()
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
  }

  /** Sorts the spilled values and counts distinct values and repeats. */
  async count(maxExamples: number, options: {runRows?: number; tmpDir?: string} = {}): Promise<SpillCount> {
    this.finish()
    let distinct = 0
    let duplicates = 0
    const examples: string[] = []
    let previous: string | undefined
    let counted = false
    for await (const batch of externalSort(readLines(this.path), {...options})) {
      for (const r of batch) {
        const v = r.key[0]!
        if (v === previous) {
          duplicates++
          if (!counted && examples.length < maxExamples) examples.push(v)
          counted = true
        } else {
          distinct++
          previous = v
          counted = false
        }
      }
    }
    rmSync(this.path, {force: true})
    return {distinct, duplicates, examples}
  }

  /** Drops the file without counting. */
  discard(): void {
    this.finish()
    rmSync(this.path, {force: true})
  }
}

async function* readLines(path: string): AsyncGenerator<KeyedRow[]> {
  const decoder = new StringDecoder('utf8')
  let rest = ''
  for await (const chunk of createReadStream(path, {highWaterMark: 256 * 1024}) as AsyncIterable<Buffer>) {
    const text = rest + decoder.write(chunk)
    const batch: KeyedRow[] = []
    let start = 0
    let nl: number
    while ((nl = text.indexOf('\n', start)) !== -1) {
      batch.push({key: [JSON.parse(text.slice(start, nl)) as string], values: []})
      start = nl + 1
    }
    rest = text.slice(start)
    if (batch.length > 0) yield batch
  }
}
