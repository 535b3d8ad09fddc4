/**
 * bench/stream-ab: `stream run` of this checkout against the build of another commit, run in
 * turns on the same topic, so that a change to the runtime is measured against what it changed
 * (bench/stream's baselines are kafkajs and a bare upsert, not the previous runtime).
 *
 *   npm run build && npm run bench:stream-ab                 # against HEAD~1
 *   BENCH_AB_BASE=ba41cb4 BENCH_AB_PAIRS=5 npm run bench:stream-ab
 *
 * BENCH_AB_BASE (HEAD~1) is checked out in a temporary git worktree and built there (its
 * node_modules are this checkout's). One topic of BENCH_RECORDS (1,000,000) generated records
 * (5% dirty, BENCH_PARTITIONS 6) is produced once; then BENCH_AB_PAIRS (3) pairs of runs, the
 * order alternating (base first, then this checkout first) so that a drift of the machine does
 * not favour one side. Each run: the runtime tables prepared as bench/stream does (compacted when
 * they hold only leftovers), a fresh schema with the sink tables, a new pipeline name, `stream run
 * --until-idle --idle-ms BENCH_IDLE_MS (1000) --json`, conservation checked against the
 * generator. Printed per run and as medians, with the ratio this/base:
 *
 *   R_stream   read / elapsed_ms of the run's --json (start-up and idle wait included)
 *   node µs    CPU of the `stream run` process per record (/proc, sampled every 50 ms)
 *   PG µs      CPU of PostgreSQL's backends per record (the postmaster's reaped children)
 *   busy       the share of the machine's cores busy over the run (/proc/stat, every process), per run
 *
 * Both sides share the database: a migration of this checkout applies to the base's runs too.
 * To measure a migration, run one build and change the schema between runs instead.
 *
 * Each side runs `node <its bin/run.js shebang flags> bin/run.js`, as its installed command would.
 * BENCH_AB_ENV_BASE / BENCH_AB_ENV_THIS add environment variables to one side (NAME=value, space
 * separated), to measure a node flag or a setting with one build:
 *
 *   BENCH_AB_BASE=HEAD BENCH_AB_ENV_THIS=NODE_OPTIONS=--max-semi-space-size=128 npm run bench:stream-ab
 *
 * BENCH_AB_ARGS_BASE / BENCH_AB_ARGS_THIS add `stream run` arguments to one side (space
 * separated), to measure a flag with one build:
 *
 *   BENCH_AB_BASE=HEAD BENCH_AB_ARGS_THIS="--consumers 3" npm run bench:stream-ab
 *
 * BENCH_AB_NODE_BASE / BENCH_AB_NODE_THIS run one side with another node binary, to measure a
 * node version with one build:
 *
 *   BENCH_AB_BASE=HEAD BENCH_AB_NODE_THIS=/opt/node22/bin/node npm run bench:stream-ab
 *
 * BENCH_AB_TXN_CHECK adds a CHECK constraint to the sink table txn_clean, to measure both sides
 * while the database refuses rows (a constraint the spec does not know, as on day one):
 * `amount < 24750` refuses ~1% of the generated records (amounts 0.01-25,000.00), `amount <
 * 24975` ~0.1%. Conservation is then checked as read = written + dead-lettered + duplicates.
 *
 *   BENCH_AB_TXN_CHECK="amount < 24750" BENCH_RECORDS=200000 npm run bench:stream-ab
 *
 * BENCH_AB_MISSING_ACCOUNTS=N adds a foreign key from txn_clean.account_id to a table of the
 * generator's 500 accounts without the first N (5: ~1% of the records refused), checked, unlike a
 * CHECK, at the end of each statement.
 *
 * Writes bench/out/stream-ab.json.
 */
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {cpus, loadavg, tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import pg from 'pg'
import {cardTransactionSpec, createSinkTables, forgetPipeline} from '../fixtures/generator/pipeline.js'
import {startStreamRun, type StreamRunJson} from '../fixtures/generator/stream-harness.js'
import {expectedState, transactionStream, type GeneratedTransaction} from '../fixtures/generator/transactions.js'
import {connectionSettingsFromEnv} from '../src/config/env.js'
import {createKafka, createTopicsReady} from '../src/kafka/client.js'
import {ensureDatabase} from '../src/pg/pool.js'
import {conservationProblems, measureCpu, prepareRuntimeTables} from './lib/stream-measure.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const env = process.env
const int = (name: string, fallback: number) => (env[name] ? Number(env[name]) : fallback)
const N = int('BENCH_RECORDS', 1_000_000)
const PARTITIONS = int('BENCH_PARTITIONS', 6)
const PAIRS = int('BENCH_AB_PAIRS', 3)
const IDLE_MS = int('BENCH_IDLE_MS', 1000)
const BASE = env.BENCH_AB_BASE ?? 'HEAD~1'
const TXN_CHECK = env.BENCH_AB_TXN_CHECK ?? ''
const MISSING_ACCOUNTS = int('BENCH_AB_MISSING_ACCOUNTS', 0)

const settings = connectionSettingsFromEnv()
const kafka = createKafka(settings.kafka, {mode: 'resilient', clientId: 'cutover-bench-ab'})
const pool = new pg.Pool({connectionString: settings.databaseUrl, max: 2})
const run = Math.random().toString(36).slice(2, 10)
const log = (...a: unknown[]) => console.error(`[bench:stream-ab ${new Date().toISOString().slice(11, 19)}]`, ...a)
const cleanups: (() => Promise<unknown> | unknown)[] = []
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', {maximumFractionDigits: digits, minimumFractionDigits: digits})

function git(args: string[], cwd = ROOT): string {
  const r = spawnSync('git', args, {cwd, encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr.trim()}`)
  return r.stdout.trim()
}

/** The base commit, checked out and built in a temporary worktree; its bin/run.js. */
function buildBase(dir: string): {bin: string; commit: string} {
  const commit = git(['rev-parse', '--short', BASE])
  const tree = join(dir, `base-${commit}`)
  git(['worktree', 'add', '--detach', tree, commit])
  cleanups.push(() => git(['worktree', 'remove', '--force', tree]))
  symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'))
  log(`building ${commit} in ${tree}`)
  const b = spawnSync('npm', ['run', 'build'], {cwd: tree, encoding: 'utf8'})
  if (b.status !== 0) throw new Error(`npm run build of ${commit} failed: ${b.stderr.slice(-2000)}`)
  return {bin: join(tree, 'bin', 'run.js'), commit}
}

async function produce(topic: string): Promise<ReturnType<typeof expectedState>> {
  const admin = kafka.admin()
  await admin.connect()
  await createTopicsReady(admin, [{topic, numPartitions: PARTITIONS, replicationFactor: 1}])
  await admin.disconnect()
  cleanups.push(async () => {
    const a = kafka.admin()
    await a.connect()
    await a.deleteTopics({topics: [topic, `${topic}.dlq`]}).catch(() => {})
    await a.disconnect()
  })
  const producer = kafka.producer({allowAutoTopicCreation: false})
  await producer.connect()
  const outcomes: GeneratedTransaction[] = []
  let chunk: {key: string; value: Buffer}[] = []
  for (const t of transactionStream(N, {seed: 20261205, dirty: 0.05, targetBytes: 300, idPrefix: `A${run}-`})) {
    chunk.push({key: t.key, value: t.value})
    outcomes.push({...t, value: Buffer.alloc(0), record: null})
    if (chunk.length >= 2000) {
      await producer.send({topic, acks: 1, messages: chunk})
      chunk = []
    }
  }
  if (chunk.length > 0) await producer.send({topic, acks: 1, messages: chunk})
  await producer.disconnect()
  return expectedState(outcomes)
}

/**
 * BENCH_AB_ENV_BASE / BENCH_AB_ENV_THIS: environment variables added to one side's `stream run`,
 * as space-separated NAME=value pairs (a value cannot hold a space), to measure a node flag or a
 * setting with one build.
 */
function sideEnv(side: 'base' | 'this'): Record<string, string> {
  const spec = env[`BENCH_AB_ENV_${side.toUpperCase()}`] ?? ''
  const out: Record<string, string> = {}
  for (const pair of spec.split(/\s+/).filter((p) => p !== '')) {
    const eq = pair.indexOf('=')
    if (eq <= 0) throw new Error(`BENCH_AB_ENV_${side.toUpperCase()}: "${pair}" is not NAME=value`)
    out[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return out
}

/** BENCH_AB_NODE_BASE / BENCH_AB_NODE_THIS: the node binary one side runs (default: the one running this bench). */
function sideNode(side: 'base' | 'this'): string | undefined {
  const path = env[`BENCH_AB_NODE_${side.toUpperCase()}`]
  if (path === undefined || path === '') return undefined
  const r = spawnSync(path, ['--version'], {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`BENCH_AB_NODE_${side.toUpperCase()}: ${path} --version failed: ${r.error?.message ?? r.stderr}`)
  return path
}

/** `node <version>` when a side runs another node binary than this bench, for the printed header. */
function sideNodeLabel(side: 'base' | 'this'): string {
  const path = sideNode(side)
  return path === undefined ? '' : `node ${spawnSync(path, ['--version'], {encoding: 'utf8'}).stdout.trim()}`
}

/** BENCH_AB_ARGS_BASE / BENCH_AB_ARGS_THIS: `stream run` arguments added to one side (space separated). */
function sideArgs(side: 'base' | 'this'): string[] {
  return (env[`BENCH_AB_ARGS_${side.toUpperCase()}`] ?? '').split(/\s+/).filter((a) => a !== '')
}

/** With BENCH_AB_TXN_CHECK: every record read once and accounted for, the rows those written. */
function accountedFor(j: StreamRunJson, rows: number, e: ReturnType<typeof expectedState>): string[] {
  const dead = Object.values(j.dead_lettered ?? {}).reduce((a, b) => a + b, 0)
  const out: string[] = []
  if (j.read !== e.read) out.push(`read ${j.read}, expected ${e.read}`)
  if (j.read !== j.written + dead + j.duplicates) out.push(`read ${j.read} != written ${j.written} + dead-lettered ${dead} + duplicates ${j.duplicates}`)
  if (rows !== j.written) out.push(`txn_clean has ${rows} rows, written ${j.written}`)
  return out
}

interface RunResult {
  side: 'base' | 'this'
  rate: number
  node_us: number | null
  pg_us: number | null
  /** share of the machine's cores busy over the run (every process: 1 = saturated) */
  machine_busy: number | null
  /** batch transactions of the run (its --json `batches`): fewer, larger ones cost PostgreSQL less per record */
  batches: number
  conservation: string[]
}

async function measure(side: RunResult['side'], bin: string, topic: string, dir: string, expected: ReturnType<typeof expectedState>, k: number): Promise<RunResult> {
  await prepareRuntimeTables(pool)
  const name = `bench-ab-${run}-${k}-${side}`
  const schema = `bench_ab_${run}_${k}_${side}`
  await pool.query(`CREATE SCHEMA "${schema}"`)
  const extra: string[] = []
  if (TXN_CHECK) extra.push(`CHECK (${TXN_CHECK})`)
  if (MISSING_ACCOUNTS > 0) {
    // the generator's 500 accounts A00000..A00499, the first MISSING_ACCOUNTS of them missing
    await pool.query(`CREATE TABLE "${schema}".accounts (account_id text PRIMARY KEY); INSERT INTO "${schema}".accounts SELECT 'A' || lpad(i::text, 5, '0') FROM generate_series(${MISSING_ACCOUNTS}, 499) i`)
    extra.push(`FOREIGN KEY (account_id) REFERENCES "${schema}".accounts`)
  }
  await createSinkTables(pool, schema, extra.length ? {extraTxnColumns: extra.join(',\n')} : {})
  const spec = join(dir, `${name}.yaml`)
  writeFileSync(spec, cardTransactionSpec({name, topic, group: `${name}-group`, dlqTopic: `${topic}.dlq`}))
  try {
    const p = startStreamRun(['--spec', spec, '--schema', schema, '--until-idle', '--idle-ms', String(IDLE_MS), '--json', ...sideArgs(side)], {CUTOVER_LOG_LEVEL: 'warn', ...sideEnv(side)}, bin, sideNode(side))
    const cpu = await measureCpu(pool, p.child)
    const done = await p.done
    const {node, postgres, machineBusy} = await cpu.stop()
    if (done.code !== 0 || !done.json) throw new Error(`${side}: stream run exited ${done.code}: ${done.stderr.slice(-2000)}`)
    const j = done.json
    const rows = Number((await pool.query<{n: string}>(`SELECT count(*) AS n FROM "${schema}".txn_clean`)).rows[0]!.n)
    return {
      side,
      rate: j.read / (j.elapsed_ms / 1000),
      node_us: node === null ? null : (node / j.read) * 1e6,
      pg_us: postgres === null ? null : (postgres / j.read) * 1e6,
      machine_busy: machineBusy,
      batches: j.batches,
      conservation: TXN_CHECK || MISSING_ACCOUNTS > 0 ? accountedFor(j, rows, expected) : conservationProblems(j, rows, expected),
    }
  } finally {
    await forgetPipeline(pool, name)
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  }
}

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, 'dist', 'src', 'commands', 'stream', 'run.js'))) throw new Error('this checkout is not built: run `npm run build` first')
  await ensureDatabase(settings.databaseUrl)
  const dir = mkdtempSync(join(tmpdir(), 'cutover-bench-ab-'))
  cleanups.push(() => rmSync(dir, {recursive: true, force: true}))
  const head = git(['rev-parse', '--short', 'HEAD'])
  const dirty = git(['status', '--porcelain', '--untracked-files=no']) !== ''
  const base = buildBase(dir)
  const topic = `bench-ab-${run}`
  log(`producing ${N.toLocaleString()} records to ${topic}`)
  const expected = await produce(topic)
  const runs: RunResult[] = []
  for (let k = 0; k < PAIRS; k++) {
    const order: RunResult['side'][] = k % 2 === 0 ? ['base', 'this'] : ['this', 'base']
    for (const side of order) {
      const r = await measure(side, side === 'base' ? base.bin : join(ROOT, 'bin', 'run.js'), topic, dir, expected, k)
      runs.push(r)
      log(`pair ${k + 1} ${side.padEnd(4)} R_stream ${fmt(r.rate)}/s, node ${r.node_us === null ? 'n/a' : fmt(r.node_us, 1)} µs, PostgreSQL ${r.pg_us === null ? 'n/a' : fmt(r.pg_us, 1)} µs per record, machine busy ${r.machine_busy === null ? 'n/a' : `${fmt(r.machine_busy * 100)}%`}, ${fmt(r.batches)} batches${r.conservation.length ? `; CONSERVATION: ${r.conservation.join('; ')}` : ''}`)
    }
  }
  const of = (side: RunResult['side'], f: (r: RunResult) => number | null) => {
    const xs = runs.filter((r) => r.side === side).map(f).filter((x): x is number => x !== null)
    return xs.length ? median(xs) : NaN
  }
  const rows = [
    {figure: 'R_stream (records/s)', base: of('base', (r) => r.rate), this: of('this', (r) => r.rate), digits: 0},
    {figure: 'node CPU (µs/record)', base: of('base', (r) => r.node_us), this: of('this', (r) => r.node_us), digits: 1},
    {figure: 'PostgreSQL CPU (µs/record)', base: of('base', (r) => r.pg_us), this: of('this', (r) => r.pg_us), digits: 1},
  ]
  const conservation = runs.every((r) => r.conservation.length === 0)
  console.log(`\nbench/stream-ab — ${N.toLocaleString()} records, ${PARTITIONS} partitions, ${PAIRS} pairs, ${cpus().length} × ${cpus()[0]?.model.trim()}, node ${process.version}, load ${loadavg()[0]!.toFixed(2)}`)
  const extras = (['base', 'this'] as const).map((side) => [sideNodeLabel(side), ...Object.entries(sideEnv(side)).map(([k, v]) => `${k}=${v}`), ...sideArgs(side)].filter((x) => x !== '').join(' ')).map((x) => (x ? ` [${x}]` : ''))
  console.log(`base ${base.commit} (${BASE})${extras[0]} against this checkout (${head}${dirty ? ' with uncommitted changes' : ''})${extras[1]}; medians`)
  if (TXN_CHECK) console.log(`txn_clean with CHECK (${TXN_CHECK}): rows the database refuses`)
  if (MISSING_ACCOUNTS > 0) console.log(`txn_clean with a foreign key to accounts, ${MISSING_ACCOUNTS} of the 500 missing: rows the database refuses`)
  console.log(`${''.padEnd(28)}${'base'.padStart(12)}${'this'.padStart(12)}${'this/base'.padStart(12)}`)
  for (const r of rows) console.log(`${r.figure.padEnd(28)}${fmt(r.base, r.digits).padStart(12)}${fmt(r.this, r.digits).padStart(12)}${fmt(r.this / r.base, 2).padStart(12)}`)
  console.log(`conservation ${conservation ? 'ok in every run' : 'FAILED (see above)'}`)
  mkdirSync(join(ROOT, 'bench', 'out'), {recursive: true})
  writeFileSync(join(ROOT, 'bench', 'out', 'stream-ab.json'), JSON.stringify({records: N, partitions: PARTITIONS, pairs: PAIRS, txn_check: TXN_CHECK || null, missing_accounts: MISSING_ACCOUNTS, base: base.commit, this: head, dirty, extra: {base: {node: sideNodeLabel('base') || null, env: sideEnv('base'), args: sideArgs('base')}, this: {node: sideNodeLabel('this') || null, env: sideEnv('this'), args: sideArgs('this')}}, runs, medians: rows, conservation}, null, 2))
  console.log('wrote bench/out/stream-ab.json')
  if (!conservation) process.exitCode = 1
}

try {
  await main()
} finally {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch((e: unknown) => log('cleanup failed:', String(e)))
  await pool.end()
}
