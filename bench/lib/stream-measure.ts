/**
 * What bench/stream and bench/stream-ab share: the runtime tables made ready before a measured
 * `stream run`, and the CPU of a process and of PostgreSQL's backends (Linux /proc).
 */
import {spawnSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
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
function processCpu(pid: number): number | null {
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
 * CPU of a `stream run` child (sampled every 50 ms until it exits; the last ~50 ms are missed)
 * and of PostgreSQL's backends over the same run. `stop()` after the child exited: it waits
 * 500 ms for the postmaster to reap the backends, then gives both in seconds (null when unknown).
 */
export async function measureCpu(pool: pg.Pool, child: ChildProcess): Promise<{stop(): Promise<{node: number | null; postgres: number | null}>}> {
  const pgCpu = await postgresChildrenCpu(pool)
  const pg0 = pgCpu?.() ?? null
  let node: number | null = null
  const sampler = setInterval(() => {
    const c = child.pid === undefined ? null : processCpu(child.pid)
    if (c !== null) node = c
  }, 50)
  return {
    async stop() {
      clearInterval(sampler)
      await new Promise((r) => setTimeout(r, 500)) // the backends exit with the process's connections
      const pg1 = pgCpu?.() ?? null
      return {node, postgres: pg0 !== null && pg1 !== null ? pg1 - pg0 : null}
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
