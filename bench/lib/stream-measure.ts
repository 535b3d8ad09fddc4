/**
 * What bench/stream and bench/stream-ab share: the runtime tables made ready before a measured
 * `stream run`, and the CPU of a process and of PostgreSQL's backends (Linux /proc).
 */
import {spawnSync} from 'node:child_process'
import {readdirSync, readFileSync} from 'node:fs'
import type {ChildProcess} from 'node:child_process'
import type pg from 'pg'
import type {StreamRunJson} from '../../fixtures/generator/stream-harness.js'
import type {expectedState} from '../../fixtures/generator/transactions.js'
import {migrate} from '../../src/pg/migrations.js'

/**
 * Earlier bench runs leave dead rows in cutover.stream_dedupe and cutover.outbox (their
 * pipelines are deleted at the end). A production PostgreSQL's autovacuum removes them; on a
 * machine where it is off (the bench machine has autovacuum = off) they pile up: the dedupe
 * index was found at 291 MB for 452 live keys, every probe and insert walking pages of dead
 * entries, a state a production database does not stay in. VACUUM first, so that each run
 * starts from what autovacuum would leave, and compact the tables when they hold only leftovers,
 * so that every run starts from the state of the first (an empty key table). The migrations run
 * first: on a fresh database the tables do not exist yet (bench/stream's steady-rate probe reads
 * cutover.stream_offsets from the moment the stream starts, before its own migration ran).
 */
export async function prepareRuntimeTables(pool: pg.Pool): Promise<void> {
  await migrate(pool)
  const c = await pool.connect()
  try {
    // Leftovers of earlier runs only (each run forgets its pipeline at the end): rewrite the tables
    // compactly. Plain VACUUM leaves the free space of the deleted keys scattered through the heap
    // and the index, new keys then land on random pages all over them, and once those outgrow
    // shared_buffers the stream's PostgreSQL CPU per record doubles (measured: 15 -> 30 µs after a
    // dozen 1M runs, a 104 MB heap and 163 MB primary key holding 20 live keys; back to 15 µs after
    // VACUUM FULL). A database that holds real keys (100,000 or more) is only vacuumed.
    const live = await c.query<{n: string}>('SELECT count(*) AS n FROM (SELECT 1 FROM cutover.stream_dedupe LIMIT 100000) AS x')
    const full = Number(live.rows[0]!.n) < 100_000
    await c.query(`VACUUM (${full ? 'FULL, ' : ''}ANALYZE) cutover.stream_dedupe, cutover.outbox, cutover.stream_offsets`)
  } finally {
    c.release()
  }
}

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], {encoding: 'utf8'})
  const n = Number(r.stdout?.trim())
  return Number.isFinite(n) && n > 0 ? n : 100
})()

/** Fields of /proc/<pid>/stat after the command name (index 11 utime, 12 stime, 13 cutime, 14 cstime), or null. */
function procStat(pid: number): number[] | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return text.slice(text.lastIndexOf(')') + 2).split(' ').map(Number)
  } catch {
    return null
  }
}

/** CPU seconds of a live process. */
export function processCpu(pid: number): number | null {
  const f = procStat(pid)
  return f ? (f[11]! + f[12]!) / CLK_TCK : null
}

/** CPU seconds of the postmaster's exited children (backends, counted once they exit), or null when PostgreSQL is not on this machine. */
async function postgresChildrenCpu(pool: pg.Pool): Promise<(() => number | null) | null> {
  try {
    const backend = (await pool.query<{pid: number}>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
    const status = readFileSync(`/proc/${backend}/status`, 'utf8')
    const pm = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1])
    if (!pm || !/postgres|postmaster/.test(readFileSync(`/proc/${pm}/comm`, 'utf8'))) return null
    return () => {
      const f = procStat(pm)
      return f ? (f[13]! + f[14]!) / CLK_TCK : null
    }
  } catch {
    return null // not local, or /proc not readable
  }
}

/**
 * The pid of the Kafka broker when it runs on this machine (a java process whose command line
 * names kafka.Kafka: what `cutover dev up` starts), or null.
 */
export function brokerPid(): number | null {
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue
      let cmd: string
      try {
        cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8')
      } catch {
        continue // exited meanwhile
      }
      if (cmd.includes('kafka.Kafka') && /java/.test(cmd.split('\0', 1)[0] ?? '')) return Number(d)
    }
  } catch {
    // no /proc
  }
  return null
}

/** CPU seconds the whole machine spent busy (every process and the kernel: /proc/stat's user, nice, system, irq and softirq) and in all (steal included), or null. */
export function machineCpu(): {busy: number; total: number} | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number)
    const total = f.reduce((a, b) => a + b, 0)
    return {busy: (f[0]! + f[1]! + f[2]! + f[5]! + f[6]!) / CLK_TCK, total: total / CLK_TCK}
  } catch {
    return null
  }
}

/** What measureCpu's `stop()` gives, in CPU seconds over the run (null when unknown). */
export interface RunCpu {
  /** the `stream run` process */
  node: number | null
  /** PostgreSQL's backends */
  postgres: number | null
  /** the Kafka broker, when it runs on this machine */
  broker: number | null
  /** the whole machine's busy CPU (every process and the kernel, this bench's own polling too) */
  machine: number | null
  /** that busy CPU as a share of all the machine's cores over the run (0..1) */
  machineBusy: number | null
}

/**
 * CPU of a `stream run` child (sampled every 50 ms until it exits; the last ~50 ms are missed)
 * and of PostgreSQL's backends, the broker and the whole machine over the same run. `stop()`
 * after the child exited: it waits 500 ms for the postmaster to reap the backends, then gives
 * each in seconds (null when unknown); the broker and the machine are read when the child exits.
 */
export async function measureCpu(pool: pg.Pool, child: ChildProcess): Promise<{stop(): Promise<RunCpu>}> {
  const pgCpu = await postgresChildrenCpu(pool)
  const pg0 = pgCpu?.() ?? null
  const broker = brokerPid()
  const broker0 = broker === null ? null : processCpu(broker)
  const machine0 = machineCpu()
  let node: number | null = null
  let end: {broker: number | null; machine: {busy: number; total: number} | null} | null = null
  const sampler = setInterval(() => {
    const c = child.pid === undefined ? null : processCpu(child.pid)
    if (c !== null) node = c
  }, 50)
  child.once('exit', () => {
    end = {broker: broker === null ? null : processCpu(broker), machine: machineCpu()}
  })
  return {
    async stop() {
      clearInterval(sampler)
      end ??= {broker: broker === null ? null : processCpu(broker), machine: machineCpu()}
      await new Promise((r) => setTimeout(r, 500)) // the backends exit with the process's connections
      const pg1 = pgCpu?.() ?? null
      const m = machine0 && end.machine ? {busy: end.machine.busy - machine0.busy, total: end.machine.total - machine0.total} : null
      return {
        node,
        postgres: pg0 !== null && pg1 !== null ? pg1 - pg0 : null,
        broker: broker0 !== null && end.broker !== null ? end.broker - broker0 : null,
        machine: m ? m.busy : null,
        machineBusy: m && m.total > 0 ? m.busy / m.total : null,
      }
    },
  }
}

/** What differs between a run's --json (and the rows of its txn_clean) and the generator's expected outcome: empty when conserved. */
export function conservationProblems(j: StreamRunJson, rows: number, e: ReturnType<typeof expectedState>): string[] {
  const out: string[] = []
  if (j.read !== e.read) out.push(`read ${j.read}, expected ${e.read}`)
  if (rows !== e.written) out.push(`txn_clean has ${rows} rows, expected ${e.written}`)
  if (j.duplicates !== e.duplicates) out.push(`duplicates ${j.duplicates}, expected ${e.duplicates}`)
  const dead = Object.values(j.dead_lettered ?? {}).reduce((a, b) => a + b, 0)
  if (dead !== e.deadLetteredTotal) out.push(`dead-lettered ${dead}, expected ${e.deadLetteredTotal}`)
  return out
}
