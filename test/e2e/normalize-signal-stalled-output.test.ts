/**
 * `cutover normalize` stopped by SIGINT/SIGTERM while its output does not take more: a FIFO
 * nobody opened yet, or a reader that opened it and stopped reading. The run waited for a
 * 'drain' that never came (the signal was checked only between batches) and, for a FIFO without
 * a reader, the open(2) of the output held the process: it never ended. It now stops with its
 * counts, exit 130/143, and --rejects as it was. Through the built CLI, on both normalize paths.
 */
import {execFileSync} from 'node:child_process'
import {closeSync, constants, mkdtempSync, openSync, readdirSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {describe, expect, it, onTestFinished} from 'vitest'
import {startCli} from '../helpers.js'

const SPEC = `version: 1
name: stalled
source: { topic: t }
fields:
  id:   { type: string, required: true }
  amt:  { type: decimal, scale: 2, required: true }
key: id
`

/** 200,000 records (every 10th amount rejected): several MB of clean NDJSON, far more than a pipe holds. */
function bigCsv(): string {
  const out = ['id,amt']
  for (let i = 1; i <= 200_000; i++) out.push(`${i},${i % 10 === 0 ? 'x' : '1.00'}`)
  return out.join('\n') + '\n'
}

function setup(): {dir: string; csv: string; spec: string; fifo: string; rejects: string} {
  const dir = mkdtempSync(join(tmpdir(), 'cutover-normalize-stalled-'))
  writeFileSync(join(dir, 'a.csv'), bigCsv())
  writeFileSync(join(dir, 'spec.yaml'), SPEC)
  execFileSync('mkfifo', [join(dir, 'out.fifo')])
  writeFileSync(join(dir, 'keep.rejects'), '{"y":2}\n')
  return {dir, csv: join(dir, 'a.csv'), spec: join(dir, 'spec.yaml'), fifo: join(dir, 'out.fifo'), rejects: join(dir, 'keep.rejects')}
}

const partials = (dir: string) => readdirSync(dir).filter((f) => f.includes('.partial-'))

/** Under way: the first batch's rejects are in the partial file beside --rejects. */
async function underWay(dir: string): Promise<void> {
  while (!partials(dir).some((f) => statSync(join(dir, f)).size > 0)) await sleep(20)
}

describe('normalize stopped while its --out takes nothing more', () => {
  for (const [threads, signal, code, reader] of [
    ['0', 'SIGINT', 130, 'none'],
    ['1', 'SIGTERM', 143, 'none'],
    ['0', 'SIGTERM', 143, 'stalled'],
    ['1', 'SIGINT', 130, 'stalled'],
  ] as const) {
    it(`${signal} ends the run (exit ${code}) with --out a FIFO ${reader === 'none' ? 'nobody opened' : 'whose reader stopped reading'} (CUTOVER_NORMALIZE_THREADS=${threads})`, async () => {
      const {dir, csv, spec, fifo, rejects} = setup()
      // a reader that opened the FIFO and never reads from it
      if (reader === 'stalled') {
        const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
        onTestFinished(() => closeSync(fd))
      }
      const {child, done} = startCli(['normalize', `csv:${csv}`, '--spec', spec, '--out', fifo, '--rejects', rejects, '--json'], {env: {CUTOVER_NORMALIZE_THREADS: threads}})
      await underWay(dir)
      child.kill(signal)
      const r = await done
      expect(r.code, r.stderr).toBe(code)
      expect(r.json).toMatchObject({interrupted: true, signal})
      const doc = r.json as {read: number; ok: number; rejected: Record<string, number>; duplicates: number}
      expect(doc.read).toBeLessThan(200_000)
      expect(doc.read).toBe(doc.ok + (doc.rejected.UNPARSEABLE_AMOUNT ?? 0) + doc.duplicates)
      expect(readFileSync(rejects, 'utf8')).toBe('{"y":2}\n')
      expect(partials(dir)).toEqual([])
    })
  }
})
