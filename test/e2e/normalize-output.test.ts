/**
 * `cutover normalize --out/--rejects` as a user relies on them: an output never overwrites what
 * the run reads, an existing output survives a run that fails or is stopped (each is written
 * beside its name and renamed onto it when the run completes), a failed write is an error that
 * names the file, SIGINT/SIGTERM print the counts so far, and a closed stdout ends quietly.
 * Through the built CLI (bin/run.js), on both normalize paths (CUTOVER_NORMALIZE_THREADS).
 */
import {existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {describe, expect, it} from 'vitest'
import {mapConcurrent, runCli, startCli, testPool} from '../helpers.js'

const tmp = () => mkdtempSync(join(tmpdir(), 'cutover-normalize-output-'))
const SPEC = `version: 1
name: out
source: { topic: t, group: g, format: json, encoding: utf-8 }
fields:
  id:   { type: string, required: true }
  amt:  { type: decimal, scale: 2, required: true }
  card: { type: string, pattern: "^[0-9]{4}$" }
key: id
sinks: [{ table: t }]
dlq: { topic: t.dlq }
`
const SMALL = 'id,amt,card\n1,10.50,1234\n2,abc,9999\n3,1.00,12x4\n'

/** A csv of `rows` records whose clean NDJSON (~40 bytes a record) is far larger than a pipe's buffer; every 10th amount is rejected. */
function bigCsv(rows: number): string {
  const out = ['id,amt,card']
  for (let i = 1; i <= rows; i++) out.push(`${i},${i % 10 === 0 ? 'x' : '1.00'},1234`)
  return out.join('\n') + '\n'
}

function setup(csv = SMALL): {dir: string; csv: string; spec: string} {
  const dir = tmp()
  writeFileSync(join(dir, 'a.csv'), csv)
  writeFileSync(join(dir, 'spec.yaml'), SPEC)
  return {dir, csv: join(dir, 'a.csv'), spec: join(dir, 'spec.yaml')}
}

const partials = (dir: string) => readdirSync(dir).filter((f) => f.includes('.partial-'))

async function until(check: () => boolean): Promise<void> {
  while (!check()) await sleep(20)
}

describe('normalize outputs that name what the run reads', () => {
  it('refuses --out or --rejects naming the source, the spec or each other: exit 2 before anything is opened, the input intact', async () => {
    const {dir, csv, spec} = setup()
    symlinkSync(csv, join(dir, 'link.csv'))
    linkSync(csv, join(dir, 'hard.csv'))
    const cases: [string[], RegExp][] = [
      [['--out', csv], /^--out .*a\.csv is the source/],
      [['--out', '/dev/null', '--rejects', csv], /^--rejects .*a\.csv is the source/],
      [['--out', join(dir, 'link.csv')], /is the source/], // the same file through a symlink
      [['--out', join(dir, 'hard.csv')], /is the source/], // and through a hard link
      [['--out', spec], /is the spec/],
      [['--out', join(dir, 'o.ndjson'), '--rejects', `${dir}/./o.ndjson`], /^--rejects .* is --out /],
    ]
    // each case its own run, a few at once; the files are checked once all have exited
    const results = await mapConcurrent(cases, 3, ([flags]) => runCli(['normalize', `csv:${csv}`, '--spec', spec, ...flags, '--json']))
    cases.forEach(([flags, message], i) => {
      const r = results[i]!
      expect(r.code, flags.join(' ')).toBe(2)
      expect(r.json.error).toMatchObject({code: 'USAGE', message: expect.stringMatching(message), hint: expect.stringMatching(/another file/)})
    })
    expect(readFileSync(csv, 'utf8')).toBe(SMALL)
    expect(readFileSync(spec, 'utf8')).toBe(SPEC)
    expect(existsSync(join(dir, 'o.ndjson'))).toBe(false)
    expect(partials(dir)).toEqual([])
    // a device may take both outputs
    const ok = await runCli(['normalize', `csv:${csv}`, '--spec', spec, '--out', '/dev/null', '--rejects', '/dev/null', '--json'])
    expect(ok.code, ok.stdout + ok.stderr).toBe(0)
    expect(ok.json).toMatchObject({read: 3, ok: 1})
  })

  it('refuses --out or --rejects naming a folder: exit 2 with the fix', async () => {
    const {dir, csv, spec} = setup()
    mkdirSync(join(dir, 'sub'))
    const runs = await Promise.all([['--out', join(dir, 'sub')], ['--out', '/dev/null', '--rejects', join(dir, 'sub')]].map((flags) => runCli(['normalize', `csv:${csv}`, '--spec', spec, ...flags, '--json'])))
    for (const r of runs) {
      expect(r.code, r.stdout + r.stderr).toBe(2)
      expect(r.json.error).toMatchObject({code: 'USAGE', message: expect.stringMatching(/sub is a folder, not a file$/), hint: expect.stringMatching(/sub\/out\.ndjson/)})
    }
    expect(readdirSync(join(dir, 'sub'))).toEqual([])
  })
})

describe('existing outputs survive a run that fails', () => {
  it('keeps --out and --rejects as they were when the source or another output cannot be used', async () => {
    const {dir, csv, spec} = setup()
    const out = join(dir, 'keep.ndjson')
    const rej = join(dir, 'keep-rejects.ndjson')
    writeFileSync(out, '{"x":1}\n')
    writeFileSync(rej, '{"y":2}\n')
    const [missing, badFolder] = await Promise.all([
      runCli(['normalize', `csv:${join(dir, 'nosuch.csv')}`, '--spec', spec, '--out', out, '--rejects', rej, '--json']),
      runCli(['normalize', `csv:${csv}`, '--spec', spec, '--out', out, '--rejects', join(dir, 'nodir', 'r.ndjson'), '--json']),
    ])
    expect(missing.code).toBe(2)
    expect(missing.json.error.message).toMatch(/nosuch\.csv/)
    expect(badFolder.code).toBe(2)
    expect(badFolder.json.error.message).toMatch(/the folder .*nodir does not exist/)
    expect(readFileSync(out, 'utf8')).toBe('{"x":1}\n')
    expect(readFileSync(rej, 'utf8')).toBe('{"y":2}\n')
    expect(partials(dir)).toEqual([])
  })

  for (const threads of ['0', '1']) {
    it(`keeps them when the reader stops half-way (runaway quote), and removes its partial files (CUTOVER_NORMALIZE_THREADS=${threads})`, async () => {
      const lines = bigCsv(60_000).split('\n')
      lines.splice(40_000, 0, '40000x,1.00,"1234') // a quote never closed
      const {dir, csv, spec} = setup(lines.join('\n'))
      const out = join(dir, 'keep.ndjson')
      const rej = join(dir, 'keep-rejects.ndjson')
      writeFileSync(out, '{"x":1}\n')
      writeFileSync(rej, '{"y":2}\n')
      const r = await runCli(['normalize', `csv:${csv}?max_record_bytes=4096`, '--spec', spec, '--out', out, '--rejects', rej, '--json'], {env: {CUTOVER_NORMALIZE_THREADS: threads}})
      expect(r.code).toBe(2)
      expect(r.json.error).toMatchObject({code: 'SPEC_INVALID', message: expect.stringMatching(/record larger than 4096 bytes/)})
      expect(readFileSync(out, 'utf8')).toBe('{"x":1}\n')
      expect(readFileSync(rej, 'utf8')).toBe('{"y":2}\n')
      expect(partials(dir)).toEqual([])
    })
  }

  it('a completed run replaces them, and leaves no partial file', async () => {
    const {dir, csv, spec} = setup()
    const out = join(dir, 'keep.ndjson')
    writeFileSync(out, '{"x":1}\n')
    symlinkSync(out, join(dir, 'link.ndjson'))
    const r = await runCli(['normalize', `csv:${csv}`, '--spec', spec, '--out', join(dir, 'link.ndjson'), '--rejects', join(dir, 'r.ndjson'), '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json).toMatchObject({read: 3, ok: 1, rejected: {UNPARSEABLE_AMOUNT: 1, PATTERN_MISMATCH: 1}})
    expect(r.json.interrupted).toBeUndefined()
    expect(readFileSync(out, 'utf8')).toBe('{"id":"1","amt":"10.50","card":"1234"}\n')
    expect(lstatSync(join(dir, 'link.ndjson')).isSymbolicLink()).toBe(true) // the file it names was replaced, not the link
    expect(readdirSync(dir).sort()).toEqual(['a.csv', 'keep.ndjson', 'link.ndjson', 'r.ndjson', 'spec.yaml'])
    expect(readFileSync(join(dir, 'r.ndjson'), 'utf8').trim().split('\n')).toHaveLength(2)
  })
})

describe('a write that fails', () => {
  for (const threads of ['0', '1']) {
    it(`is an error naming the file and the OS error, never a silent exit (CUTOVER_NORMALIZE_THREADS=${threads})`, async () => {
      const small = setup()
      const big = setup(bigCsv(200_000))
      const env = {CUTOVER_NORMALIZE_THREADS: threads}
      const cases = [
        [small.csv, small.spec, ['--out', '/dev/full']],
        [big.csv, big.spec, ['--out', '/dev/full']],
        [big.csv, big.spec, ['--out', join(big.dir, 'o.ndjson'), '--rejects', '/dev/full']],
      ] as const
      // the runs, and the one without --json, at once: each writes only its own outputs
      const [runs, t] = await Promise.all([
        Promise.all(cases.map(([csv, spec, flags]) => runCli(['normalize', `csv:${csv}`, '--spec', spec, ...flags, '--json'], {env}))),
        runCli(['normalize', `csv:${big.csv}`, '--spec', big.spec, '--out', '/dev/full'], {env}),
      ])
      cases.forEach(([, , flags], i) => {
        const r = runs[i]!
        expect(r.code, r.stdout + r.stderr).toBe(70)
        const flag = flags.at(-2)
        expect(r.json.error).toMatchObject({code: 'INTERNAL', os_error: 'ENOSPC', message: `${flag} /dev/full: cannot write: ENOSPC: no space left on device, write`, hint: expect.stringMatching(/free space/)})
        expect(r.stderr).not.toMatch(/at .*\.js:\d+/)
      })
      expect(existsSync(join(big.dir, 'o.ndjson'))).toBe(false)
      expect(partials(big.dir)).toEqual([])
      // without --json: the same message on stderr
      expect(t.code).toBe(70)
      expect(t.stderr).toContain('Error: --out /dev/full: cannot write: ENOSPC')
    })
  }
})

/** Starts the CLI; `done` has its exit code and output (stdout only when `readStdout`: else the test reads it). */
const spawnCli = (args: string[], env: Record<string, string>, readStdout: boolean) => startCli(args, {env, readStdout})

describe('SIGINT and SIGTERM', () => {
  for (const [threads, signal, code] of [
    ['0', 'SIGINT', 130],
    ['1', 'SIGINT', 130],
    ['1', 'SIGTERM', 143],
  ] as const) {
    it(`stop the run with its counts, exit ${code}, and leave --rejects as it was (${signal}, CUTOVER_NORMALIZE_THREADS=${threads})`, async () => {
      const rows = 300_000
      const {dir, csv, spec} = setup(bigCsv(rows))
      const rej = join(dir, 'keep-rejects.ndjson')
      writeFileSync(rej, '{"y":2}\n')
      // clean records on stdout, not read until the signal is sent: the run cannot finish before it
      const {child, done} = spawnCli(['normalize', `csv:${csv}`, '--spec', spec, '--rejects', rej], {CUTOVER_NORMALIZE_THREADS: threads}, false)
      // under way once the first records arrive; then stdout is left unread until the signal is sent
      let stdout = await new Promise<string>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(d.toString())))
      child.stdout!.pause()
      child.kill(signal)
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
      child.stdout!.resume()
      const r = await done
      expect(r.code, r.stderr).toBe(code)
      const m = new RegExp(`interrupted \\(${signal}\\) after read (\\d+), ok (\\d+), rejected \\d+( \\(UNPARSEABLE_AMOUNT \\d+\\))?, duplicates 0; the records on stdout stop there, --rejects \\S+ left as it was`).exec(r.stderr)
      expect(m, r.stderr).not.toBeNull()
      const [read, ok] = [Number(m![1]), Number(m![2])]
      expect(read).toBeLessThan(rows)
      expect(stdout.split('\n').filter((l) => l).length).toBe(ok)
      expect(readFileSync(rej, 'utf8')).toBe('{"y":2}\n')
      expect(partials(dir)).toEqual([])
    })
  }

  it('under --json print one document with the counts and interrupted: true; --out stays as it was', async () => {
    // a pg: source whose third fetch waits on an advisory lock this test holds: the run is
    // under way and cannot finish until the lock is released, after the signal
    const pool = testPool()
    const lock = await pool.connect()
    const key = Math.floor(Math.random() * 1e9)
    await lock.query('SELECT pg_advisory_lock($1)', [key])
    try {
      const {dir, spec} = setup()
      const out = join(dir, 'keep.ndjson')
      writeFileSync(out, '{"x":1}\n')
      const uri = `pg:query=SELECT g::text AS id, '1.00' AS amt, '1234' || CASE WHEN g = 4001 THEN pg_advisory_lock_shared(${key})::text ELSE '' END AS card FROM generate_series(1, 10000) g`
      const {child, done} = spawnCli(['normalize', uri, '--spec', spec, '--out', out, '--json'], {CUTOVER_NORMALIZE_THREADS: '0'}, true)
      // under way once the first batch is written (to the partial file; straight onto --out would be the old defect)
      await until(() => partials(dir).some((f) => statSync(join(dir, f)).size > 0) || readFileSync(out, 'utf8') !== '{"x":1}\n')
      child.kill('SIGINT')
      await lock.query('SELECT pg_advisory_unlock($1)', [key])
      const r = await done
      expect(r.code, r.stderr).toBe(130)
      const doc = JSON.parse(r.stdout)
      expect(doc).toMatchObject({interrupted: true, signal: 'SIGINT', rejected: {}, duplicates: 0})
      expect(doc.read).toBeGreaterThanOrEqual(2000)
      expect(doc.read).toBeLessThan(10_000)
      expect(doc.ok).toBe(doc.read)
      expect(readFileSync(out, 'utf8')).toBe('{"x":1}\n')
      expect(partials(dir)).toEqual([])
    } finally {
      lock.release()
    }
  })
})

describe('clean records on stdout', () => {
  for (const threads of ['0', '1']) {
    it(`end quietly when the reader goes away (| head -1): exit 141, no stack, --rejects as it was (CUTOVER_NORMALIZE_THREADS=${threads})`, async () => {
      const {dir, csv, spec} = setup(bigCsv(300_000))
      const rej = join(dir, 'keep-rejects.ndjson')
      writeFileSync(rej, '{"y":2}\n')
      const {child, done} = spawnCli(['normalize', `csv:${csv}`, '--spec', spec, '--rejects', rej], {CUTOVER_NORMALIZE_THREADS: threads}, false)
      let first = ''
      child.stdout!.on('data', (d: Buffer) => {
        first ||= d.toString().split('\n')[0]!
        child.stdout!.destroy() // as head does after its first line
      })
      const r = await done
      expect(JSON.parse(first)).toEqual({id: '1', amt: '1.00', card: '1234'})
      expect(r.code, r.stderr).toBe(141)
      expect(r.stderr).not.toMatch(/EPIPE|Error/)
      expect(readFileSync(rej, 'utf8')).toBe('{"y":2}\n')
      expect(partials(dir)).toEqual([])
    })
  }
})
