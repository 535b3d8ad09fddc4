/**
 * bench/normalize: rows/s of `cutover normalize` (read + normalize + write NDJSON) beside the
 * rows/s of bare csv-parse over the same file, in the same run, and their ratio.
 * Target (issue 3): ours / bare csv-parse >= 0.6.
 *
 *   npx tsx bench/normalize.ts            # 1,000,000 rows (BENCH_ROWS to change), 3 rounds
 *
 * The file is the legacy nightly layout (`;`, decimal commas, dates in four formats, ~5% dirty)
 * from fixtures/generator. Both sides run as child processes of this script, alternately, so
 * that process start-up and the other core's load are shared fairly; the median round counts.
 */
import {spawnSync} from 'node:child_process'
import {createWriteStream, existsSync, mkdirSync, statSync, writeFileSync} from 'node:fs'
import {once} from 'node:events'
import {cpus} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {CSV_HEADER, toCsvLine, transactionStream} from '../fixtures/generator/transactions.js'
import {cardTransactionSpec} from '../fixtures/generator/pipeline.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const OUT = join(ROOT, 'bench', 'out')
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)

async function makeCsv(path: string): Promise<void> {
  const ws = createWriteStream(path)
  ws.write(CSV_HEADER + '\n')
  let buf = ''
  let n = 0
  for (const t of transactionStream(ROWS * 1.02, {seed: 42})) {
    if (t.record === null) continue // not_json / invalid_utf8 have no CSV form
    buf += toCsvLine(t.record) + '\n'
    if (++n % 10_000 === 0) {
      if (!ws.write(buf)) await once(ws, 'drain')
      buf = ''
    }
    if (n >= ROWS) break
  }
  ws.write(buf)
  ws.end()
  await once(ws, 'finish')
}

const BARE = `
import {createReadStream} from 'node:fs'
import {parse} from 'csv-parse'
const t0 = performance.now()
let rows = 0
const parser = createReadStream(process.argv[1]).pipe(parse({delimiter: ';', columns: true}))
for await (const batch of parser) rows++
process.stdout.write(JSON.stringify({rows, ms: performance.now() - t0}))
`

function runBare(csv: string): {rows: number; ms: number} {
  const t0 = performance.now()
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', BARE, csv], {cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 20})
  if (r.status !== 0) throw new Error(`bare csv-parse failed: ${r.stderr}`)
  return {rows: (JSON.parse(r.stdout) as {rows: number}).rows, ms: performance.now() - t0}
}

function runOurs(csv: string, spec: string): {rows: number; ms: number; summary: unknown} {
  const t0 = performance.now()
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'bin', 'run.js'), 'normalize', `csv:${csv}?delimiter=;`, '--spec', spec, '--out', join(OUT, 'normalize-clean.ndjson'), '--rejects', join(OUT, 'normalize-rejects.ndjson'), '--json'],
    {cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 20, env: {...process.env, NODE_ENV: 'production'}},
  )
  if (r.status !== 0) throw new Error(`cutover normalize failed (${r.status}): ${r.stderr}${r.stdout}`)
  const summary = JSON.parse(r.stdout) as {read: number}
  return {rows: summary.read, ms: performance.now() - t0, summary}
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

async function main(): Promise<void> {
  mkdirSync(OUT, {recursive: true})
  const csv = join(OUT, `normalize-${ROWS}.csv`)
  if (!existsSync(csv)) {
    process.stderr.write(`writing ${ROWS.toLocaleString('en-US')} rows to ${csv}…\n`)
    await makeCsv(csv)
  }
  const spec = join(OUT, 'normalize-spec.yaml')
  writeFileSync(spec, cardTransactionSpec({name: 'bench-normalize', topic: 'unused', group: 'unused', dlqTopic: 'unused'}))
  if (!existsSync(join(ROOT, 'dist', 'src', 'commands', 'normalize.js'))) throw new Error('build first: npm run build')

  const bare: number[] = []
  const ours: number[] = []
  let summary: unknown
  for (let i = 0; i < ROUNDS; i++) {
    const b = runBare(csv)
    const o = runOurs(csv, spec)
    if (b.rows !== o.rows) throw new Error(`row counts differ: bare ${b.rows}, ours ${o.rows}`)
    bare.push((b.rows * 1000) / b.ms)
    ours.push((o.rows * 1000) / o.ms)
    summary = o.summary
    process.stderr.write(`round ${i + 1}: bare ${Math.round(bare[i]!)} rows/s, cutover normalize ${Math.round(ours[i]!)} rows/s\n`)
  }
  const result = {
    rows: ROWS,
    file_mb: +(statSync(csv).size / 1e6).toFixed(1),
    bare_csv_parse_rows_per_s: Math.round(median(bare)),
    cutover_normalize_rows_per_s: Math.round(median(ours)),
    ratio: +(median(ours) / median(bare)).toFixed(3),
    target_ratio: 0.6,
    machine: {cpus: cpus().length, model: cpus()[0]?.model, node: process.version},
    summary,
  }
  writeFileSync(join(OUT, 'normalize.json'), JSON.stringify(result, null, 2))
  console.log(`rows                         ${result.rows.toLocaleString('en-US')} (${result.file_mb} MB)`)
  console.log(`bare csv-parse (baseline)    ${result.bare_csv_parse_rows_per_s.toLocaleString('en-US')} rows/s`)
  console.log(`cutover normalize            ${result.cutover_normalize_rows_per_s.toLocaleString('en-US')} rows/s`)
  console.log(`ratio ours/baseline          ${result.ratio} (target >= ${result.target_ratio})`)
}

await main()
