/**
 * `backfill --from fixed:` off a terminal: its progress lines (every 5 s) gave the records read and
 * `bytes_done`/`bytes_total`, with no percentage or ETA. A fixed-length file holds exactly its size
 * over the record length in records: the lines now say "N of M records (P%, ETA T)", an exact
 * total (no "about", nothing estimated). With rdw=true the records are of their own lengths: no total.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestTopic, runCli, tempDir} from '../helpers.js'

describe('backfill fixed: progress with the file\'s record count', () => {
  it('"of 600 records", a percentage and an ETA, exact; rdw=true: no total', async () => {
    const dir = tempDir('bf-fixed-total-')
    writeFileSync(join(dir, 'r.cpy'), '       01 R.\n          05 ID  PIC X(6).\n          05 AMT PIC 9(4)V99.\n')
    const records = Array.from({length: 600}, (_, i) => `${String(i + 1).padStart(6, '0')}${String(i * 7).padStart(6, '0')}`)
    writeFileSync(join(dir, 'r.dat'), records.join(''))
    // the same records with record descriptor words: 4 bytes (length incl. the RDW, 0, 0) before each
    writeFileSync(join(dir, 'rdw.dat'), Buffer.concat(records.map((r) => Buffer.concat([Buffer.from([0, 16, 0, 0]), Buffer.from(r, 'latin1')]))))
    const [topic, topic2] = await Promise.all([createTestTopic({prefix: 'bf-fixed-total'}), createTestTopic({prefix: 'bf-fixed-rdw'})])
    // 600 records at 400/s: a run of 1.5 s, progress lines every 500 ms (CUTOVER_PROGRESS_EVERY)
    const env = {CUTOVER_PROGRESS_EVERY: '500ms'}
    const [plain, rdw] = await Promise.all([
      runCli(['backfill', '--from', 'fixed:r.dat?copybook=r.cpy&encoding=latin1', '--to', topic, '--key', 'id', '--rate', '400'], {cwd: dir, env}),
      runCli(['backfill', '--from', 'fixed:rdw.dat?copybook=r.cpy&encoding=latin1&rdw=true', '--to', topic2, '--key', 'id', '--rate', '400'], {cwd: dir, env}),
    ])
    expect(plain.code, plain.stderr).toBe(0)
    expect(plain.stdout).toMatch(/read 600 = sent 600/)
    const lines = [...plain.stderr.matchAll(/^backfill: ([\d,]+) of 600 records \((\d+\.\d)%, ETA (\d+) s\) \(/gm)]
    expect(lines.length, plain.stderr).toBeGreaterThan(0)
    for (const [, done, pct, eta] of lines) {
      expect(Number(pct)).toBeCloseTo(Math.floor((Number(done) / 600) * 1000) / 10, 5)
      expect(Number(eta)).toBeGreaterThanOrEqual(0)
    }
    expect(plain.stderr).not.toMatch(/about|estimated|~/)

    expect(rdw.code, rdw.stderr).toBe(0)
    expect(rdw.stdout).toMatch(/read 600 = sent 600/)
    expect(rdw.stderr).toMatch(/^backfill: [\d,]+ \(/m)
    expect(rdw.stderr).not.toMatch(/ of [\d,]+ records/)
  })
})
