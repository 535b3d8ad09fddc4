/**
 * A check holds no side in memory: an unsorted CSV (so the external sort spills runs to
 * disk and merges them FAN_IN at a time) against a PostgreSQL table read in key order. The
 * check of PARITY_MEMORY_ROWS rows (default 200,000; the bench runs 1,000,000) runs under a
 * 64 MB V8 heap cap (per thread), in one thread and with the readers in worker threads; the
 * one-thread peak RSS is compared with the same check on 1/4 of the rows:
 * the growth must stay far below what holding one side would take. Nothing here measures time.
 */
import {spawnSync} from 'node:child_process'
import {createWriteStream} from 'node:fs'
import {once} from 'node:events'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {createTestSchema, ROOT, settings, tempDir, testPool} from '../helpers.js'

const ROWS = Number(process.env.PARITY_MEMORY_ROWS ?? 200_000)
// (ROWS and ROWS / 4 must not be multiples of 7919: the CSV is a permutation by that step)

/** Runs one check in a fresh process (the built library) and returns its result and peak RSS. */
function checkIn(left: string, right: string, runRows: number, threads: boolean): {result: Record<string, number>; maxRssMb: number} {
  const script = `
    const {runParityCheck} = await import(${JSON.stringify(join(ROOT, 'dist/src/parity/check.js'))})
    const r = await runParityCheck(
      {left: process.argv[1], right: process.argv[2], key: ['id'], types: {amount: 'decimal'}, sortRunRows: Number(process.argv[3]), threads: process.argv[4] === 'true'},
      {ctx: {}, databaseUrl: process.env.DATABASE_URL, record: false, runBy: 'test'},
    )
    process.stdout.write(JSON.stringify({result: r, maxRssMb: process.resourceUsage().maxRSS / 1024}))
  `
  const out = spawnSync(process.execPath, ['--max-old-space-size=64', '--input-type=module', '-e', script, left, right, String(runRows), String(threads)], {
    cwd: ROOT,
    encoding: 'utf8',
    env: {...process.env, DATABASE_URL: settings().databaseUrl},
    maxBuffer: 16 << 20,
  })
  if (out.status !== 0) throw new Error(`check failed (${out.status}): ${out.stderr}`)
  return JSON.parse(out.stdout) as {result: Record<string, number>; maxRssMb: number}
}

async function writeCsv(path: string, n: number): Promise<void> {
  const ws = createWriteStream(path)
  ws.write('id,account_id,amount,merchant\n')
  let buf = ''
  // a permutation of 1..n (n and 7919 coprime): far from key order
  for (let i = 0; i < n; i++) {
    const g = ((i * 7919) % n) + 1
    buf += `K${String(g).padStart(9, '0')},A${g % 5000},${g % 100000}.${String(g % 100).padStart(2, '0')},SHOP NUMBER ${g % 997} OF A CHAIN WITH A LONG NAME\n`
    if (buf.length > 1 << 20) {
      if (!ws.write(buf)) await once(ws, 'drain')
      buf = ''
    }
  }
  ws.end(buf)
  await once(ws, 'finish')
}

describe('parity check memory', () => {
  it(`compares ${ROWS.toLocaleString('en-US')} unsorted CSV rows with a table with bounded memory`, async () => {
    expect(ROWS % 7919).not.toBe(0)
    expect(Math.floor(ROWS / 4) % 7919).not.toBe(0)
    const pool = testPool()
    const schema = await createTestSchema(pool)
    const dir = tempDir('parity-mem-')
    const small = Math.floor(ROWS / 4)
    const runRows = 5000 // the same bound for both sizes: the big one spills more runs, merged 16 at a time
    for (const n of [small, ROWS]) {
      await pool.query(`CREATE TABLE "${schema}".t${n} (id text PRIMARY KEY, account_id text, amount numeric(14,2), merchant text)`)
      await pool.query(
        `INSERT INTO "${schema}".t${n} SELECT 'K' || lpad(g::text, 9, '0'), 'A' || (g % 5000), ((g % 100000) || '.' || lpad((g % 100)::text, 2, '0'))::numeric,
                'SHOP NUMBER ' || (g % 997) || ' OF A CHAIN WITH A LONG NAME' FROM generate_series(1, $1::int) AS g WHERE g % 1000 <> 17`,
        [n],
      )
      await writeCsv(join(dir, `left-${n}.csv`), n)
    }
    // in one thread: the cleanest RSS figure
    const a = checkIn(`csv:${join(dir, `left-${small}.csv`)}`, `pg:${schema}.t${small}`, runRows, false)
    const b = checkIn(`csv:${join(dir, `left-${ROWS}.csv`)}`, `pg:${schema}.t${ROWS}`, runRows, false)
    // with the readers in worker threads (what the CLI does for large files), each under the same cap
    const c = checkIn(`csv:${join(dir, `left-${ROWS}.csv`)}`, `pg:${schema}.t${ROWS}`, runRows, true)
    expect(c.result).toMatchObject({left_rows: ROWS, matched: b.result.matched, missing_in_right: b.result.missing_in_right})
    expect(c.result.digests).toEqual(b.result.digests)
    expect(b.result.left_rows).toBe(ROWS)
    const missing = Math.floor((ROWS - 17) / 1000) + 1
    expect(b.result.missing_in_right).toBe(missing)
    expect(b.result.matched).toBe(ROWS - missing)
    expect(b.result.strategy).toBe('merge')
    // Holding one side as JS rows takes ~300 bytes a row (60 MB at 200,000, 300 MB at a
    // million: past the 64 MB heap cap). From 1/4 to all of the rows the peak must not grow
    // with the rows: runs of runRows rows and 16 read chunks are the only buffers (measured:
    // the same peak at 200,000 and 600,000 rows).
    const growthMb = b.maxRssMb - a.maxRssMb
    const holdAllMb = (ROWS * 300) / (1 << 20)
    expect(growthMb).toBeLessThan(32)
    process.stderr.write(`parity memory: ${ROWS} rows peak RSS ${b.maxRssMb.toFixed(0)} MB, ${small} rows ${a.maxRssMb.toFixed(0)} MB (growth ${growthMb.toFixed(0)} MB; holding a side ~${holdAllMb.toFixed(0)}+ MB); threaded ${c.maxRssMb.toFixed(0)} MB\n`)
  })
})
