/**
 * bench/parity: `cutover parity check` on two 1,000,000-row tables with 0.1% planted
 * differences, beside its baselines, in the same run:
 *
 *   floor     PostgreSQL's own FULL OUTER JOIN diff query through psql (output discarded):
 *             the differing rows with every column of both sides, as the check fetches them
 *   PG vs PG  `cutover parity check` (strategy sql-pushdown)          target <= 1.25x floor
 *   CSV vs PG `cutover parity check` with the left table as a CSV file (strategy merge)
 *   baseline  bare csv-parse of that file + `COPY right TO STDOUT` (pg-copy-streams) of the
 *             right table, one after the other                      target <= 1.5x baseline
 *
 *   npx tsx bench/parity.ts          # PARITY_BENCH_ROWS (default 1000000), PARITY_BENCH_ROUNDS (default 3)
 *
 * Every side runs as a child process (the CLI through bin/run.js, as a user runs it; wall
 * time, process start included); rounds alternate and the median counts. Results go to
 * bench/out/parity.json. Tables live in the schema `parity_bench` of DATABASE_URL.
 */
import {spawnSync} from 'node:child_process'
import {mkdirSync, statSync, writeFileSync} from 'node:fs'
import {loadavg} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import pg from 'pg'
import {connectionSettingsFromEnv} from '../src/config/env.js'
import {ensureDatabase} from '../src/pg/pool.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const OUT = join(ROOT, 'bench', 'out')
const ROWS = Number(process.env.PARITY_BENCH_ROWS ?? 1_000_000)
const ROUNDS = Number(process.env.PARITY_BENCH_ROUNDS ?? 3)
const DB = connectionSettingsFromEnv().databaseUrl
const S = 'parity_bench'

async function setup(client: pg.Client): Promise<{planted: Record<string, number>}> {
  const diff = Math.max(1, Math.round(ROWS * 0.001)) // 0.1%
  const per = Math.max(1, Math.floor(diff / 4))
  await client.query(`DROP SCHEMA IF EXISTS ${S} CASCADE; CREATE SCHEMA ${S}`)
  const cols = `id text PRIMARY KEY, account_id text NOT NULL, amount numeric(14,2) NOT NULL, currency text NOT NULL, event_time timestamptz NOT NULL, merchant text`
  await client.query(`CREATE TABLE ${S}.legacy (${cols}); CREATE TABLE ${S}.stream (${cols})`)
  await client.query(
    `INSERT INTO ${S}.legacy
     SELECT 'T' || lpad(g::text, 9, '0'), 'A' || lpad((g % 50000)::text, 6, '0'), ((g::bigint * 7919) % 1000000) / 100.0,
            CASE WHEN g % 7 = 0 THEN 'USD' ELSE 'RUB' END,
            timestamptz '2026-11-20 00:00:00+00' + (g % 86400) * interval '1 second', 'SHOP ' || (g % 997)
       FROM generate_series(1, $1::int) AS g`,
    [ROWS],
  )
  // the stream's copy with 0.1% differences: missing, extra, amount and time mismatches
  await client.query(`INSERT INTO ${S}.stream SELECT * FROM ${S}.legacy WHERE NOT (id IN (SELECT id FROM ${S}.legacy ORDER BY id OFFSET 100 LIMIT $1))`, [per])
  await client.query(`UPDATE ${S}.stream SET amount = amount + 1 WHERE id IN (SELECT id FROM ${S}.stream ORDER BY id OFFSET 5000 LIMIT $1)`, [per])
  await client.query(`UPDATE ${S}.stream SET event_time = event_time + interval '30 seconds' WHERE id IN (SELECT id FROM ${S}.stream ORDER BY id OFFSET 9000 LIMIT $1)`, [per])
  await client.query(
    `INSERT INTO ${S}.stream SELECT 'X' || lpad(g::text, 9, '0'), 'A000001', 1.00, 'RUB', timestamptz '2026-11-20 12:00:00+00', 'EXTRA' FROM generate_series(1, $1::int) AS g`,
    [per],
  )
  await client.query(`VACUUM ANALYZE ${S}.legacy`)
  await client.query(`VACUUM ANALYZE ${S}.stream`)
  return {planted: {missing_in_right: per, amount: per, event_time: per, extra_in_right: per}}
}

function time(cmd: string, args: string[], opts: {input?: string} = {}): {ms: number; stdout: string} {
  const t0 = performance.now()
  const r = spawnSync(cmd, args, {cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20, env: {...process.env, DATABASE_URL: DB}, ...(opts.input ? {input: opts.input} : {})})
  const ms = performance.now() - t0
  if (r.status !== 0 && r.status !== 1) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  return {ms, stdout: r.stdout}
}

// every column of both sides of each differing row: what the check itself fetches (it needs
// them for the samples and the rules), so that the floor sends back the same rows and fields
const FLOOR_SQL = `SELECT l.*, r.*
  FROM ${S}.legacy l FULL OUTER JOIN ${S}.stream r ON l.id = r.id
 WHERE l.id IS NULL OR r.id IS NULL OR l.account_id IS DISTINCT FROM r.account_id OR l.amount IS DISTINCT FROM r.amount
    OR l.currency IS DISTINCT FROM r.currency OR l.event_time IS DISTINCT FROM r.event_time OR l.merchant IS DISTINCT FROM r.merchant`

const BASELINE = `
import {createReadStream} from 'node:fs'
import {parse} from 'csv-parse'
import pg from 'pg'
import {to as copyTo} from 'pg-copy-streams'
const t0 = performance.now()
let rows = 0
for await (const _ of createReadStream(process.argv[1]).pipe(parse({columns: true}))) rows++
const client = new pg.Client({connectionString: process.env.DATABASE_URL})
await client.connect()
let bytes = 0
for await (const chunk of client.query(copyTo('COPY ${S}.stream TO STDOUT'))) bytes += chunk.length
await client.end()
process.stdout.write(JSON.stringify({rows, bytes, ms: performance.now() - t0}))
`

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

async function main(): Promise<void> {
  mkdirSync(OUT, {recursive: true})
  await ensureDatabase(DB) // a fresh machine has no `cutover` database yet; the CLI creates it the same way
  const client = new pg.Client({connectionString: DB})
  await client.connect()
  process.stderr.write(`building ${ROWS.toLocaleString('en-US')}-row tables in ${S}...\n`)
  const {planted} = await setup(client)
  const csv = join(OUT, `parity-legacy-${ROWS}.csv`)
  // the legacy table as a file, in key order (a sorted nightly extract)
  const psqlCopy = spawnSync('psql', [DB, '-X', '-q', '-c', `\\copy (SELECT * FROM ${S}.legacy ORDER BY id COLLATE "C") TO '${csv}' WITH (FORMAT csv, HEADER)`], {encoding: 'utf8'})
  if (psqlCopy.status !== 0) throw new Error(psqlCopy.stderr)
  await client.end()
  const check = (left: string) => ['bin/run.js', 'parity', 'check', '--left', left, '--right', `pg:${S}.stream`, '--key', 'id', '--type', 'amount=decimal', '--type', 'event_time=timestamp', '--samples', '5', '--json', '--no-ledger']

  const rounds: Record<string, number[]> = {floor: [], pgpg: [], csvpg: [], baseline: [], pgpg_in: [], csvpg_in: [], startup: []}
  let pgResult: Record<string, unknown> = {}
  let csvResult: Record<string, unknown> = {}
  for (let i = 0; i < ROUNDS; i++) {
    rounds.floor!.push(time('psql', [DB, '-X', '-q', '-o', '/dev/null', '-c', FLOOR_SQL]).ms)
    const a = time(process.execPath, check(`pg:${S}.legacy`))
    rounds.pgpg!.push(a.ms)
    pgResult = JSON.parse(a.stdout) as Record<string, unknown>
    rounds.pgpg_in!.push(pgResult.elapsed_ms as number)
    rounds.startup!.push(time(process.execPath, ['bin/run.js', '--version']).ms)
    rounds.baseline!.push(time(process.execPath, ['--input-type=module', '-e', BASELINE, csv]).ms)
    const b = time(process.execPath, check(`csv:${csv}`))
    rounds.csvpg!.push(b.ms)
    csvResult = JSON.parse(b.stdout) as Record<string, unknown>
    rounds.csvpg_in!.push(csvResult.elapsed_ms as number)
    process.stderr.write(`round ${i + 1} (load ${loadavg()[0]!.toFixed(1)}): floor ${rounds.floor!.at(-1)!.toFixed(0)} ms, pg-vs-pg ${rounds.pgpg!.at(-1)!.toFixed(0)} ms, csv+copy ${rounds.baseline!.at(-1)!.toFixed(0)} ms, csv-vs-pg ${rounds.csvpg!.at(-1)!.toFixed(0)} ms\n`)
  }
  const m = Object.fromEntries(Object.entries(rounds).map(([k, v]) => [k, median(v)])) as Record<string, number>
  const same = ['matched', 'mismatched', 'missing_in_right', 'extra_in_right', 'unexplained'].every((k) => pgResult[k] === csvResult[k])
  const report = {
    rows: ROWS,
    csv_bytes: statSync(csv).size,
    planted,
    rounds: ROUNDS,
    median_ms: m,
    ratios: {
      pg_vs_pg_over_floor: m.pgpg! / m.floor!,
      csv_vs_pg_over_csvparse_plus_copy: m.csvpg! / m.baseline!,
      in_command: {pg_vs_pg_over_floor: m.pgpg_in! / m.floor!, csv_vs_pg_over_csvparse_plus_copy: m.csvpg_in! / m.baseline!},
    },
    load_average: loadavg(),
    targets: {pg_vs_pg_over_floor: 1.25, csv_vs_pg_over_csvparse_plus_copy: 1.5},
    results_agree: same,
    pg_vs_pg: {strategy: pgResult.strategy, elapsed_ms: pgResult.elapsed_ms, matched: pgResult.matched, mismatched: pgResult.mismatched, missing_in_right: pgResult.missing_in_right, extra_in_right: pgResult.extra_in_right, parity_pct: pgResult.parity_pct},
    csv_vs_pg: {strategy: csvResult.strategy, elapsed_ms: csvResult.elapsed_ms, parity_pct: csvResult.parity_pct},
    rss_note: 'see test/integration/parity-memory.test.ts for the bounded-memory check',
  }
  writeFileSync(join(OUT, 'parity.json'), JSON.stringify(report, null, 2) + '\n')
  const f = (n: number) => `${(n / 1000).toFixed(2)} s`
  process.stdout.write(
    [
      `parity bench, ${ROWS.toLocaleString('en-US')} rows per side, 0.1% planted differences, median of ${ROUNDS}`,
      `  SQL floor (psql FULL OUTER JOIN diff)      ${f(m.floor!)}`,
      `  cutover parity check PG vs PG (${String(pgResult.strategy)})  ${f(m.pgpg!)}   ratio ${(m.pgpg! / m.floor!).toFixed(2)}x (target <= 1.25x)`,
      `  csv-parse + COPY TO STDOUT                 ${f(m.baseline!)}`,
      `  cutover parity check CSV vs PG (${String(csvResult.strategy)})      ${f(m.csvpg!)}   ratio ${(m.csvpg! / m.baseline!).toFixed(2)}x (target <= 1.5x)`,
      `  in-command (elapsed_ms of --json, without the ${f(m.startup!)} CLI start-up): PG vs PG ${f(m.pgpg_in!)} = ${(m.pgpg_in! / m.floor!).toFixed(2)}x floor, CSV vs PG ${f(m.csvpg_in!)} = ${(m.csvpg_in! / m.baseline!).toFixed(2)}x baseline`,
      `  results agree: ${same}; parity ${String(pgResult.parity_pct)}%; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`,
      '',
    ].join('\n'),
  )
}

await main()
