/**
 * Test helpers against the real services (after platformatic/kafka's test/helpers.ts):
 * every test gets its own topic and its own PostgreSQL schema, removed when it finishes.
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {randomUUID} from 'node:crypto'
import {chownSync, existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import pg from 'pg'
import {onTestFinished} from 'vitest'
import {connectionSettingsFromEnv, type KafkaSettings} from '../src/config/env.js'
import {defaultStateDir, KAFKA_VERSION} from '../src/dev/broker.js'
import {createKafka, createTopicsReady, type KafkaClient} from '../src/kafka/client.js'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
export const BIN = join(ROOT, 'bin', 'run.js')

export function settings() {
  return connectionSettingsFromEnv()
}

export function kafkaSettings(): KafkaSettings {
  return settings().kafka
}

export function kafka(): KafkaClient {
  return createKafka(kafkaSettings(), {mode: 'resilient', clientId: 'cutover-test'})
}

export function uniqueName(prefix = 'test'): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`
}

/** A fresh topic for this test, deleted when the test finishes. */
export async function createTestTopic(options: {partitions?: number; prefix?: string; cleanup?: boolean; config?: Record<string, string>} = {}): Promise<string> {
  const topic = uniqueName(options.prefix ?? 'test-topic')
  const admin = kafka().admin()
  await admin.connect()
  try {
    const configEntries = Object.entries(options.config ?? {}).map(([name, value]) => ({name, value}))
    await createTopicsReady(admin, [{topic, numPartitions: options.partitions ?? 1, replicationFactor: 1, ...(configEntries.length > 0 ? {configEntries} : {})}])
  } finally {
    await admin.disconnect()
  }
  if (options.cleanup !== false) {
    onTestFinished(async () => {
      const a = kafka().admin()
      await a.connect()
      await a.deleteTopics({topics: [topic]}).catch(() => {})
      await a.disconnect()
    })
  }
  return topic
}

/**
 * Ends `pool` and waits until each of its connections is closed. pg-pool's `end()` resolves once
 * it has asked its idle clients to end, before their sockets close: a session ended right after it
 * (DROP DATABASE ... WITH (FORCE), pg_terminate_backend) can still send its FATAL message to such a
 * client, which the pool emits as an 'error' no one listens to (an uncaught exception; failed CI once).
 */
export async function endPool(pool: pg.Pool): Promise<void> {
  const open = pool.totalCount
  let closed = 0
  const allClosed = new Promise<void>((resolve) => {
    if (open === 0) resolve()
    pool.on('remove', () => {
      if (++closed === open) resolve()
    })
  })
  await pool.end()
  await allClosed
}

/** A pool on the test database. Closed when the test finishes. */
export function testPool(): pg.Pool {
  const pool = new pg.Pool({connectionString: settings().databaseUrl, max: 2})
  onTestFinished(() => pool.end())
  return pool
}

/** A fresh PostgreSQL schema for this test, dropped (CASCADE) when the test finishes. */
export async function createTestSchema(pool: pg.Pool = testPool()): Promise<string> {
  const schema = `t_${randomUUID().replace(/-/g, '').slice(0, 12)}`
  await pool.query(`CREATE SCHEMA "${schema}"`)
  onTestFinished(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  })
  return schema
}

export interface KcatRecord {
  topic: string
  partition: number
  offset: number
  key: string | null
  payload: string | null
  headers: Record<string, string>
  ts?: number
}

/**
 * Reads a topic from the beginning to its end with kcat, an independent client (librdkafka),
 * so that tests do not only check kafkajs against kafkajs.
 */
export function kcatConsume(topic: string, options: {readUncommitted?: boolean} = {}): KcatRecord[] {
  const brokers = kafkaSettings().brokers.join(',')
  const r = spawnSync('kcat', ['-b', brokers, '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-J', ...(options.readUncommitted ? ['-X', 'isolation.level=read_uncommitted'] : [])], {encoding: 'utf8', maxBuffer: 512 * 1024 * 1024})
  if (r.status !== 0) throw new Error(`kcat failed (${r.status}): ${r.stderr}`)
  return r.stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => {
      const j = JSON.parse(l) as {topic: string; partition: number; offset: number; key: string | null; payload: string | null; headers?: string[]; ts?: number}
      const headers: Record<string, string> = {}
      const h = j.headers ?? []
      for (let i = 0; i + 1 < h.length; i += 2) headers[h[i]!] = h[i + 1]!
      return {topic: j.topic, partition: j.partition, offset: j.offset, key: j.key, payload: j.payload, headers, ...(j.ts === undefined ? {} : {ts: j.ts})}
    })
}

/** Produces lines with kcat (`key<TAB>value` when `keyed`). */
export function kcatProduce(topic: string, lines: string[], options: {keyed?: boolean} = {}): void {
  const brokers = kafkaSettings().brokers.join(',')
  const args = ['-b', brokers, '-P', '-t', topic, ...(options.keyed ? ['-K', '\t'] : [])]
  const r = spawnSync('kcat', args, {input: lines.join('\n') + '\n', encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`kcat produce failed (${r.status}): ${r.stderr}`)
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
  /** stdout parsed as JSON, when it is JSON */
  json: any
}

/**
 * V8 flags of the CLI processes the tests start: `--no-opt` (no TurboFan). A test's command runs for
 * well under a second of JavaScript, most of it loading modules, while the optimizing compiler's
 * background work is spent on code that has finished by then: a `stream run` that stops at a
 * missing spec took 0.65 s of CPU against 0.90 s (2 × AMD EPYC, 5 runs each), and the suite starts
 * ~1,200 of them on 2 cores. It changes no behaviour; long runs (the stream harness,
 * fixtures/generator/stream-harness.ts, and the benches) keep the shebang's flags.
 */
const CLI_NODE_FLAGS = ['--no-opt']

/** Runs `bin/run.js` (the built CLI, as a user would) and collects its output. */
export function runCli(args: string[], options: {env?: Record<string, string>; input?: string; cwd?: string} = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI_NODE_FLAGS, BIN, ...args], {
      cwd: options.cwd ?? ROOT,
      env: {...process.env, NODE_ENV: 'production', ...options.env},
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      let json: unknown
      try {
        json = JSON.parse(stdout)
      } catch {
        json = undefined
      }
      resolve({code, stdout, stderr, json})
    })
    if (options.input !== undefined) child.stdin.end(options.input)
    else child.stdin.end()
  })
}

/**
 * A second, private broker for tests that stop and start one (`dev up --port P --state-dir
 * <tmp>`; the shared broker is never touched), reusing the jars `dev up` fetched for the shared
 * broker. It is stopped and wiped when the test finishes. `up` starts it (again).
 */
export function privateBroker(port: number, prefix: string): {brokers: string; stateDir: string; up: string[]} {
  const stateDir = mkdtempSync(join(tmpdir(), prefix))
  const jars = join(defaultStateDir(), `lib-${KAFKA_VERSION}`)
  if (existsSync(join(jars, '.complete'))) symlinkSync(jars, join(stateDir, `lib-${KAFKA_VERSION}`))
  onTestFinished(async () => {
    await runCli(['dev', 'down', '--state-dir', stateDir, '--wipe', '--json'])
    rmSync(stateDir, {recursive: true, force: true})
  })
  return {brokers: `127.0.0.1:${port}`, stateDir, up: ['dev', 'up', '--port', String(port), '--controller-port', String(port + 1), '--state-dir', stateDir, '--heap', '512m', '--json']}
}

/**
 * A second, private PostgreSQL server for tests that stop and restart one (the shared server is
 * never touched): `initdb` into a temporary directory and `pg_ctl start` on `port`, with the
 * binaries of the newest installed major (/usr/lib/postgresql/<major>/bin, or pg_config's
 * bindir). Run as root, the server runs as the `postgres` user. `restart` stops it (`fast`: every
 * connection is terminated; `immediate`: killed, as in a crash, WAL replayed at start) and, after
 * `downMs`, starts it again on the same data. Stopped and
 * removed when the test finishes. Throws, never skips, when no server binaries are installed.
 */
export function privatePostgres(port: number): {url: string; restart(downMs: number, mode?: 'fast' | 'immediate'): Promise<void>; stop(mode?: 'fast' | 'immediate'): void; start(): void} {
  const majors = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a)) : []
  const configBin = spawnSync('pg_config', ['--bindir'], {encoding: 'utf8'}).stdout?.trim()
  const bin = [...majors.map((m) => `/usr/lib/postgresql/${m}/bin`), configBin].find((d) => d && existsSync(join(d, 'initdb')))
  if (!bin) throw new Error('privatePostgres: no PostgreSQL server binaries (initdb) found: install the postgresql package')
  const dir = mkdtempSync(join(tmpdir(), 'cutover-pg-'))
  const data = join(dir, 'data')
  const asRoot = process.getuid?.() === 0
  if (asRoot) chownSync(dir, Number(spawnSync('id', ['-u', 'postgres'], {encoding: 'utf8'}).stdout.trim()), Number(spawnSync('id', ['-g', 'postgres'], {encoding: 'utf8'}).stdout.trim()))
  const sh = (cmd: string, args: string[]) => {
    const r = asRoot ? spawnSync('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], {encoding: 'utf8'}) : spawnSync(join(bin, cmd), args, {encoding: 'utf8'})
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`)
  }
  sh('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync'])
  const start = () => sh('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start'])
  const stop = (mode: 'fast' | 'immediate' = 'fast') => sh('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop'])
  start()
  onTestFinished(() => {
    spawnSync(asRoot ? 'runuser' : join(bin, 'pg_ctl'), asRoot ? ['-u', 'postgres', '--', join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', 'stop'] : ['-D', data, '-m', 'immediate', 'stop'])
    rmSync(dir, {recursive: true, force: true})
  })
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop,
    start,
    async restart(downMs: number, mode: 'fast' | 'immediate' = 'fast') {
      stop(mode)
      await new Promise((r) => setTimeout(r, downMs))
      start()
    },
  }
}

/** A temp directory removed when the test finishes. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  onTestFinished(() => rmSync(dir, {recursive: true, force: true}))
  return dir
}

/** The test server's URL for `database` (default: the tests' own), as `user` (trust auth: no password; default: the URL's). */
export function databaseUrl(database?: string, user?: string): string {
  const u = new URL(settings().databaseUrl)
  if (database !== undefined) u.pathname = `/${database}`
  if (user !== undefined) {
    u.username = user
    u.password = ''
  }
  return u.toString()
}

/** Runs `text` (one statement or several) on `url` over a connection of its own. */
export async function sqlOnce(url: string, text: string): Promise<pg.QueryResult> {
  const c = new pg.Client({connectionString: url})
  await c.connect()
  try {
    return await c.query(text)
  } finally {
    await c.end()
  }
}

/** freshDatabase, created now (for tables made before the first command that would create it). */
export async function createdFreshDatabase(): Promise<string> {
  const url = freshDatabase()
  const admin = new URL(url)
  const name = admin.pathname.slice(1)
  admin.pathname = '/postgres'
  await sqlOnce(admin.toString(), `CREATE DATABASE "${name}"`)
  return url
}

/** The URL of a database of its own (created by the CLI on first use), dropped when the test finishes. */
export function freshDatabase(): string {
  const name = `parity_${randomUUID().replace(/-/g, '').slice(0, 10)}`
  onTestFinished(async () => {
    const admin = new pg.Client({connectionString: settings().databaseUrl})
    await admin.connect()
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    await admin.end()
  })
  return databaseUrl(name)
}

/**
 * `fn` over `items` with at most `limit` calls under way at once (independent CLI runs, say),
 * the results in the order of `items`. After an error no further call is started, and the
 * calls under way settle before the first error is thrown: nothing is left running behind it.
 */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  const errors: unknown[] = []
  let next = 0
  const lane = async () => {
    while (next < items.length && errors.length === 0) {
      const i = next++
      try {
        results[i] = await fn(items[i]!, i)
      } catch (e) {
        errors.push(e)
      }
    }
  }
  await Promise.all(Array.from({length: Math.max(1, Math.min(limit, items.length))}, lane))
  if (errors.length > 0) throw errors[0]
  return results
}

export interface CliProcess {
  child: ChildProcess
  /** resolves when the process has exited and its output is closed (never rejects on a non-zero code) */
  done: Promise<CliResult & {signal: NodeJS.Signals | null}>
}

/**
 * Starts `bin/run.js args` as `runCli` does (NODE_ENV=production, `env` added), without waiting
 * for it: for a run the test signals, reads while it goes, or lets run beside other work. stdin
 * is closed; with `readStdout: false` the test reads (or leaves unread) stdout itself, and
 * `done.stdout` is ''. Killed (SIGKILL) when the test finishes, unless `kill: false` (set up
 * outside a test: the caller ends it).
 */
export function startCli(args: string[], options: {env?: Record<string, string>; cwd?: string; readStdout?: boolean; kill?: boolean} = {}): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: {...process.env, NODE_ENV: 'production', ...options.env},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  if (options.readStdout !== false) child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const done = new Promise<CliResult & {signal: NodeJS.Signals | null}>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => {
      let json: unknown
      try {
        json = JSON.parse(stdout)
      } catch {
        json = undefined
      }
      resolve({code, signal, stdout, stderr, json})
    })
  })
  if (options.kill !== false) {
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
  }
  return {child, done}
}

/**
 * As `privateBroker`, for set-up shared by the tests of a file (beforeAll, where no test is
 * running): nothing is registered with a test, and `remove()` (afterAll) stops and wipes it.
 */
export function sharedPrivateBroker(port: number, prefix: string): {brokers: string; stateDir: string; up: string[]; remove(): Promise<void>} {
  const stateDir = mkdtempSync(join(tmpdir(), prefix))
  const jars = join(defaultStateDir(), `lib-${KAFKA_VERSION}`)
  if (existsSync(join(jars, '.complete'))) symlinkSync(jars, join(stateDir, `lib-${KAFKA_VERSION}`))
  return {
    brokers: `127.0.0.1:${port}`,
    stateDir,
    up: ['dev', 'up', '--port', String(port), '--controller-port', String(port + 1), '--state-dir', stateDir, '--heap', '512m', '--json'],
    async remove() {
      await runCli(['dev', 'down', '--state-dir', stateDir, '--wipe', '--json'])
      rmSync(stateDir, {recursive: true, force: true})
    },
  }
}

/**
 * The committed offsets of a group with no running member, as kafkajs' admin.setOffsets sets them
 * (a member joins, seeks, leaves once it has fetched) but with a short fetch wait: kafkajs' own
 * member waits its default maxWaitTimeInMs (5 s) for that fetch, on a paused topic. Checked with
 * fetchOffsets afterwards: an offset not committed throws.
 */
export async function setGroupOffsets(groupId: string, topic: string, partitions: {partition: number; offset: string}[]): Promise<void> {
  const k = kafka()
  const admin = k.admin()
  await admin.connect()
  try {
    const {groups} = await admin.describeGroups([groupId])
    const state = groups[0]?.state ?? 'Dead'
    if (state !== 'Empty' && state !== 'Dead') throw new Error(`setGroupOffsets: group ${groupId} has running members (${state})`)
    const consumer = k.consumer({groupId, maxWaitTimeInMs: 100})
    await consumer.connect()
    try {
      await consumer.subscribe({topics: [topic], fromBeginning: true})
      await new Promise<void>((resolve, reject) => {
        consumer.on(consumer.events.FETCH, () => resolve())
        consumer.run({eachBatchAutoResolve: false, eachBatch: async () => {}}).catch(reject)
        consumer.pause([{topic}])
        for (const p of partitions) consumer.seek({topic, ...p})
      })
    } finally {
      await consumer.disconnect()
    }
    const [committed] = await admin.fetchOffsets({groupId, topics: [topic]})
    for (const p of partitions) {
      const got = committed?.partitions.find((c) => c.partition === p.partition)?.offset
      if (got !== p.offset) throw new Error(`setGroupOffsets: ${groupId} ${topic}/${p.partition} committed ${got}, not ${p.offset}`)
    }
  } finally {
    await admin.disconnect()
  }
}

/**
 * A pipeline spec for backfill tests of a `;` csv of transactions (id;acct;amt;<text column>):
 * txn_id, acct and amount required, the text column a plain string, keyed by txn_id, its DLQ
 * `dlq`. Written in `dir`; returns its path.
 */
export function writeBackfillSpec(dir: string, o: {prefix: string; topic: string; dlq: string; text: string}): string {
  const spec = join(dir, `${uniqueName(o.prefix)}.yaml`)
  writeFileSync(
    spec,
    [
      'version: 1',
      `name: ${uniqueName(o.prefix)}`,
      `source: { topic: ${o.topic}, group: ${uniqueName('g')}, format: json, encoding: utf-8 }`,
      'fields:',
      '  txn_id:  { from: id, type: string, required: true }',
      '  acct:    { type: string, required: true }',
      '  amount:  { from: amt, type: decimal, scale: 2, required: true }',
      `  ${o.text}:    { type: string }`,
      'key: txn_id',
      'sinks:',
      '  - table: txn_clean',
      `dlq: { topic: ${o.dlq} }`,
      '',
    ].join('\n'),
  )
  return spec
}

