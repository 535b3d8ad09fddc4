import {closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {openSource} from '../../legacy-adapters/index.js'
import {recordBatches} from '../../legacy-adapters/source.js'

const MB = 1024 * 1024

/** Writes a ~`mb` MB windows-1251-free UTF-8 CSV of card transactions, 1 MB at a time. */
function writeBigCsv(path: string, mb: number): number {
  const fd = openSync(path, 'w')
  let rows = 0
  try {
    writeSync(fd, 'id;acct;amt;ts;currency;merchant\n')
    for (let chunk = 0; chunk < mb; chunk++) {
      const lines: string[] = []
      let size = 0
      while (size < MB) {
        const line = `T${chunk}-${rows};A${rows % 9973};${rows % 100000},${String(rows % 100).padStart(2, '0')};20.11.2026 09:${String(rows % 60).padStart(2, '0')}:00;RUB;"Пятёрочка №${rows % 500}"\n`
        lines.push(line)
        size += Buffer.byteLength(line)
        rows++
      }
      writeSync(fd, lines.join(''))
    }
  } finally {
    closeSync(fd)
  }
  return rows
}

describe('csv: bounded memory', () => {
  it('streams a ~200 MB file with RSS growth far below the file size', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-big-'))
    const path = join(dir, 'big.csv')
    try {
      const rows = writeBigCsv(path, 200)
      expect(statSync(path).size).toBeGreaterThan(200 * MB)
      const gc = (globalThis as {gc?: () => void}).gc
      gc?.()
      const before = process.memoryUsage().rss
      let peak = before
      let read = 0
      let bad = 0
      for await (const batch of recordBatches(openSource(`csv:${path}?delimiter=;`))) {
        for (const r of batch) {
          if (!r.ok) bad++
          read++
        }
        peak = Math.max(peak, process.memoryUsage().rss)
      }
      peak = Math.max(peak, process.memoryUsage().rss)
      expect(read).toBe(rows)
      expect(bad).toBe(0)
      // Holding the file would need > 200 MB of bytes (and twice that as strings); streaming
      // needs a few chunks, the parser's state and whatever garbage is not yet collected.
      expect(peak - before).toBeLessThan(120 * MB)
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
