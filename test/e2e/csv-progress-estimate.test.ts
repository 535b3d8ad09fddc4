/**
 * `backfill --from csv:` and `normalize csv:` off a terminal (a script, a CI job): their progress
 * lines (every 5 s) gave the records read and a rate, with no total, percentage or ETA
 * (`backfill: 150,000 (30,000/s, 5.0 s), sent 150,000, ...`); backfill counted a csv file's lines
 * only on a terminal. They now give the file's records estimated from its first 64 KiB
 * (estimateCsvRecords, as parity check): "of about N records (~P%, ETA ~T, estimated)", without
 * reading the file twice. A resumed backfill counts the records sent before it.
 */
import {readdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {describe, expect, it} from 'vitest'
import {createTestTopic, runCli, startCli, tempDir, testPool, uniqueName, type CliProcess} from '../helpers.js'

const RECORDS = 30_000
const SPEC = `version: 1
name: csv-progress
source: { topic: t }
fields:
  id:  { type: string, required: true }
  amt: { type: decimal, scale: 2, required: true }
key: id
`

/** `backfill: 12,000 of about 30,000 records (~40.0%, ETA ~4 s, estimated) (2,400/s, 5.0 s), ...` */
const WITH_TOTAL = /^(backfill|normalize): ([\d,]+) of about ([\d,]+) records \((.*?)\) \(([\d,]+)\/s, [\d.]+ s\)/gm
const n = (s: string) => Number(s.replace(/,/g, ''))
function progressLines(stderr: string): {done: number; total: number; note: string; rate: number}[] {
  return [...stderr.matchAll(WITH_TOTAL)].map((m) => ({done: n(m[2]!), total: n(m[3]!), note: m[4]!, rate: n(m[5]!)}))
}

/** The percentage and ETA of an estimated total: `~40.0%, ETA ~4 s, estimated` (the ETA once a rate is known). */
function expectEstimated(l: {done: number; total: number; note: string}): void {
  expect(l.total).toBe(RECORDS)
  const m = /^~(\d+\.\d)%(, ETA ~\d+ (s|min))?, estimated$/.exec(l.note)
  expect(m, l.note).not.toBeNull()
  expect(Number(m![1])).toBeCloseTo(Math.floor((l.done / RECORDS) * 1000) / 10, 5)
}

/** A csv of RECORDS records of one length: its estimate is exact. */
function setup(): string {
  const dir = tempDir('csv-progress-')
  const lines = ['id,amt']
  for (let i = 1; i <= RECORDS; i++) lines.push(`T${String(i).padStart(7, '0')},${String(i % 1000).padStart(4, '0')}.25`)
  writeFileSync(join(dir, 'hist.csv'), lines.join('\n') + '\n')
  writeFileSync(join(dir, 's.yaml'), SPEC)
  return dir
}

/** progress lines every 500 ms (CUTOVER_PROGRESS_EVERY), not every 5 s: runs of a second or two show some */
const FAST = {CUTOVER_PROGRESS_EVERY: '500ms'}

/** normalize to stdout, left unread until its first progress line: the run waits on its output, cheaply, past its first line. */
async function stalledNormalize(dir: string, threads: string): Promise<Awaited<CliProcess['done']>> {
  const run = startCli(['normalize', 'csv:hist.csv', '--spec', 's.yaml'], {cwd: dir, readStdout: false, env: {...FAST, CUTOVER_NORMALIZE_THREADS: threads}})
  let stderr = ''
  run.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  while (!/^normalize: .* \(/m.test(stderr) && run.child.exitCode === null) await sleep(100)
  run.child.stdout!.resume() // now read (and drop) what it writes
  return run.done
}

describe('csv: progress off a terminal with an estimated total', () => {
  it('backfill and normalize: "of about 30,000 records", a percentage and an ETA, estimated', async () => {
    const dir = setup()
    const topic = await createTestTopic({prefix: 'bf-csv-est'})
    // 30,000 records at 20,000/s: a run of 1.5 s, progress lines every 500 ms
    const [backfill, normalize, normalizeThread] = await Promise.all([
      runCli(['backfill', '--from', 'csv:hist.csv', '--to', topic, '--key', 'id', '--rate', '20000'], {cwd: dir, env: FAST}),
      stalledNormalize(dir, '0'),
      stalledNormalize(dir, '1'),
    ])
    expect(backfill.code, backfill.stderr).toBe(0)
    expect(backfill.stdout).toMatch(/read 30,000 = sent 30,000/)
    const lines = progressLines(backfill.stderr)
    for (const l of lines) expectEstimated(l)
    // (a line before the first record was read has no ETA yet; one after the last was read, while
    // its sends are acknowledged, is at the total: "~100.0%, estimated")
    const going = lines.filter((l) => l.done > 0)
    expect(going.length, backfill.stderr).toBeGreaterThan(0)
    for (const l of going) expect(l.done).toBeLessThanOrEqual(RECORDS)
    for (const l of going.filter((x) => x.done === RECORDS)) expect(l.note).toBe('~100.0%, estimated')
    expect(lines.some((l) => /ETA ~/.test(l.note)), backfill.stderr).toBe(true)

    for (const r of [normalize, normalizeThread]) {
      expect(r.code, r.stderr).toBe(0)
      const nl = progressLines(r.stderr)
      expect(nl.length, r.stderr).toBeGreaterThan(0)
      for (const l of nl) expectEstimated(l)
      // the last line, after the read: its exact count, no estimate
      expect(r.stderr).toMatch(/^normalize: 30,000 \([\d,]+\/s, [\d.]+ s\), ok 30,000/m)
      expect(r.stderr).toMatch(/^read 30000, ok 30000, rejected 0/m)
    }
  })

  it('a resumed backfill counts the records sent before it towards the estimate; its rate is its own', async () => {
    const dir = setup()
    const topic = await createTestTopic({prefix: 'bf-csv-est-resume'})
    const id = uniqueName('bf-csv-est-resume')
    const pool = testPool()
    const first = startCli(['backfill', '--from', 'csv:hist.csv', '--to', topic, '--key', 'id', '--rate', '5000', '--id', id, '--json'], {cwd: dir})
    // stopped once a checkpoint covers some records (checkpoints come every 2 s)
    for (;;) {
      const r = await pool.query<{n: number}>(`SELECT (position->>'records')::int AS n FROM cutover.backfills WHERE id = $1`, [id])
      if ((r.rows[0]?.n ?? 0) > 0 || first.child.exitCode !== null) break
      await sleep(50)
    }
    first.child.kill('SIGTERM')
    const stopped = await first.done
    expect(stopped.code, stopped.stderr).toBe(143)
    const before = stopped.json.read as number
    expect(before).toBeGreaterThan(0)
    expect(before).toBeLessThan(RECORDS - 7000)

    // the rest in about 2 s: progress lines every 500 ms
    const rate = Math.max(1000, Math.floor((RECORDS - before) / 2))
    const resumed = await runCli(['backfill', '--resume', id, '--rate', String(rate)], {cwd: dir, env: FAST})
    expect(resumed.code, resumed.stderr).toBe(0)
    expect(resumed.stdout).toMatch(/read 30,000 = sent 30,000/)
    const lines = progressLines(resumed.stderr).filter((l) => l.done > before)
    expect(lines.length, resumed.stderr).toBeGreaterThan(0)
    const l = lines[0]!
    expectEstimated(l)
    expect(l.done).toBeGreaterThan(before)
    expect(l.rate).toBeLessThanOrEqual(rate * 1.1)
  })

  it('CUTOVER_PROGRESS_EVERY that is no duration: exit 2 naming it, before any output file is made', async () => {
    const dir = setup()
    const r = await runCli(['normalize', 'csv:hist.csv', '--spec', 's.yaml', '--out', 'clean.ndjson'], {cwd: dir, env: {CUTOVER_PROGRESS_EVERY: 'fast'}})
    expect(r.code, r.stderr).toBe(2)
    expect(r.stderr).toMatch(/CUTOVER_PROGRESS_EVERY="fast" is not a duration of 100ms or more/)
    expect(r.stderr).toMatch(/500ms, 30s or 2m/)
    expect(readdirSync(dir).sort()).toEqual(['hist.csv', 's.yaml'])
  })
})
