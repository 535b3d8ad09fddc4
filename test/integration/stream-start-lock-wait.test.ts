/**
 * `stream run` starting while another session holds an ACCESS EXCLUSIVE lock on a sink table (a
 * long ALTER TABLE, a VACUUM FULL, a migration in an open transaction): the start check that
 * plans the sink's statement (sinks/table.ts checkStatement) waits for it, and says so every
 * ~10 s, in the structured log and in a line for the person at the terminal, naming the blocking
 * backend (pid, application_name, user, lock, how long its transaction is open) and never its
 * query; it starts once the lock is released, and a SIGTERM during the wait ends the run at once
 * (exit 0, nothing consumed), its waiting statement cancelled rather than left in the lock queue.
 */
import pg from 'pg'
import {describe, expect, it, onTestFinished} from 'vitest'
import {generateTransactions} from '../../fixtures/generator/transactions.js'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {settings} from '../helpers.js'
import {fromGenerated, produce, sleep, startStream, streamFixture, type StreamFixture} from './stream-support.js'

/** A value a migration's last statement might carry: never to be printed. */
const SECRET = 'IBAN DE89370400440532013000'

/** Another session, as a migration tool would be, holding ACCESS EXCLUSIVE on txn_clean in an open transaction; its pid. */
async function holdTableLock(f: StreamFixture): Promise<{pid: number; release(): Promise<void>}> {
  const c = new pg.Client({connectionString: settings().databaseUrl, application_name: 'ledger-migration-42'})
  await c.connect()
  onTestFinished(() => c.end())
  const pid = (await c.query<{pid: number}>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  await c.query('BEGIN')
  await c.query(`LOCK TABLE "${f.schema}".txn_clean IN ACCESS EXCLUSIVE MODE`)
  // the session's query in pg_stat_activity from now on
  await c.query(`SELECT '${SECRET}' AS note`)
  return {pid, release: async () => void (await c.query('COMMIT'))}
}

type LogLine = {event: string; namespace: string; level: string; table?: string; sink_table?: string; waited_s?: number; blockers?: Record<string, unknown>[]}

/** The structured log lines of `event` in `stderr`. */
function events(stderr: string, event: string): LogLine[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine)
    .filter((l) => l.event === event)
}

describe('stream run: a sink table locked by another session at start', () => {
  it('says who holds the lock every ~10 s (never the query), then starts and writes every record once it is released', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-startlock'})
    const txns = generateTransactions(200, {seed: 4243, dirty: 0})
    await produce(f.topic, fromGenerated(txns))
    const lock = await holdTableLock(f)
    const s = startStream(f, ['--until-idle', '--idle-ms', '1000'])
    let stderr = ''
    s.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    // the first look, and the one ~10 s after it
    while (events(stderr, 'start.lock.waiting').length < 2 && s.child.exitCode === null) await sleep(100)
    expect(s.child.exitCode, stderr).toBeNull()
    const waiting = events(stderr, 'start.lock.waiting')
    for (const w of waiting) {
      expect(w).toMatchObject({level: 'warn', namespace: 'cutover.stream', table: `${f.schema}.txn_clean`, sink_table: `${f.schema}.txn_clean`})
      expect(w.blockers).toEqual([
        {pid: lock.pid, application_name: 'ledger-migration-42', user: 'postgres', state: 'idle in transaction', holds: 'AccessExclusiveLock', transaction_s: expect.any(Number)},
      ])
    }
    expect(waiting[1]!.waited_s!).toBeGreaterThan(waiting[0]!.waited_s!)
    // the line for the person at the terminal (human mode)
    expect(stderr).toContain(`waiting for a lock on ${f.schema}.txn_clean (`)
    expect(stderr).toContain(`blocked by pid ${lock.pid} (application "ledger-migration-42", user postgres, holding AccessExclusiveLock, in a transaction for `)
    const before = await f.pool.query<{n: number}>(`SELECT count(*)::int AS n FROM cutover.stream_offsets WHERE pipeline = $1`, [f.name])
    expect(before.rows[0]!.n).toBe(0)

    await lock.release()
    const r = await s.exited
    expect(r.code, r.stderr).toBe(0)
    const rows = await f.pool.query<{n: number}>(`SELECT count(*)::int AS n FROM "${f.schema}".txn_clean`)
    expect(rows.rows[0]!.n).toBe(new Set(txns.map((t) => t.key)).size)
    expect(r.stderr).toMatch(new RegExp(`the lock on ${f.schema}\\.txn_clean was released after \\d+ s: the start checks go on`))
    expect(r.stderr).not.toContain(SECRET)
    expect(r.stderr).not.toContain('IBAN')
  })

  it('SIGTERM while waiting: exits 0 at once with nothing consumed, the lock still held, its waiting statement cancelled', async () => {
    const f = await streamFixture({partitions: 1, prefix: 'stream-startlock-term'})
    await produce(f.topic, fromGenerated(generateTransactions(200, {seed: 4244, dirty: 0})))
    const lock = await holdTableLock(f)
    const s = startStream(f, ['--json'], {CUTOVER_LOG_LEVEL: 'info'})
    let stderr = ''
    s.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    while (events(stderr, 'start.lock.waiting').length < 1 && s.child.exitCode === null) await sleep(50)
    expect(events(stderr, 'start.lock.waiting')[0]?.blockers?.[0]).toMatchObject({pid: lock.pid})

    s.child.kill('SIGTERM')
    // the lock is held all along: the run ends without it
    const r = await s.exited
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out).toMatchObject({read: 0, written: 0, duplicates: 0, batches: 0, dead_lettered: {}, lag_end: 200})
    // no session of the run is left waiting in the table's lock queue (a backend waiting for a lock
    // does not notice its client gone): it was cancelled
    const left = await f.pool.query<{n: number}>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, [`cutover stream ${f.name}`])
    expect(left.rows[0]!.n).toBe(0)
    const blocked = await f.pool.query<{n: number}>(`SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND relation = $1::regclass`, [`"${f.schema}".txn_clean`])
    expect(blocked.rows[0]!.n).toBe(0)
    // stopped before consuming: no consumer joined the group (a join and a leave would rebalance its other members)
    expect(events(r.stderr, 'consumer.assigned')).toEqual([])
    expect(events(r.stderr, 'stream.stopped.at_start')).toHaveLength(1)
    // --json: the structured log only, no line for a terminal
    expect(r.stderr).not.toContain('waiting for a lock on')
    expect(r.stderr).not.toContain(SECRET)
    await lock.release()
  })
})
