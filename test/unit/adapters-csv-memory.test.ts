import {spawnSync} from 'node:child_process'
import {closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {describe, expect, it} from 'vitest'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

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
      // in a process of its own: the test runner's worker runs other files before this one
      // (isolate: false), and the heap they grew would be this test's RSS growth
      const script = `
        const {openSource} = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'legacy-adapters', 'index.ts')).href)})
        const {recordBatches} = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'legacy-adapters', 'source.ts')).href)})
        const before = process.memoryUsage().rss
        let peak = before, read = 0, bad = 0
        for await (const batch of recordBatches(openSource(process.argv[1]))) {
          for (const r of batch) { if (!r.ok) bad++; read++ }
          peak = Math.max(peak, process.memoryUsage().rss)
        }
        peak = Math.max(peak, process.memoryUsage().rss)
        console.log(JSON.stringify({read, bad, before, peak}))`
      const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, `csv:${path}?delimiter=;`], {cwd: ROOT, encoding: 'utf8'})
      expect(child.status, child.stderr).toBe(0)
      const {read, bad, before, peak} = JSON.parse(child.stdout) as {read: number; bad: number; before: number; peak: number}
      console.log(`csv memory: ${read} rows, RSS ${Math.round(before / MB)} -> ${Math.round(peak / MB)} MB`)
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
