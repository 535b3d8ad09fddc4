/**
 * `stream run` while its sink table is locked for longer than the group's session timeout (10 s):
 * a batch transaction waits on the lock (an ALTER TABLE, a long report holding it), and its
 * consumer must keep heartbeating meanwhile, or the coordinator expels the member and the
 * whole group rebalances, every partition moving, when the lock goes.
 */
import {describe, expect, it} from 'vitest'
import {generateTransactions} from '../../fixtures/generator/transactions.js'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {committedOffsets, fromGenerated, produce, sleep, startStream, streamFixture} from './stream-support.js'

describe('stream run: a sink table locked longer than the session timeout', () => {
  it('keeps the group (no member expelled, no new assignment) and writes every record once the lock goes', async () => {
    const f = await streamFixture({partitions: 2, prefix: 'stream-lockwait'})
    const txns = generateTransactions(400, {seed: 4242, dirty: 0})
    await produce(f.topic, fromGenerated(txns.slice(0, 200)))
    const s = startStream(f, ['--json'], {CUTOVER_LOG_LEVEL: 'info'})
    let stderr = ''
    s.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    while ((await committedOffsets(f)) < 200 && s.child.exitCode === null) await sleep(50)
    const assignedBefore = stderr.split('\n').filter((l) => l.includes('"event":"consumer.assigned"')).length
    expect(assignedBefore).toBeGreaterThan(0)

    // the sink table locked for 15 s (the session timeout is 10 s) while records arrive
    const locker = await f.pool.connect()
    try {
      await locker.query('BEGIN')
      await locker.query(`LOCK TABLE "${f.schema}".txn_clean IN ACCESS EXCLUSIVE MODE`)
      await produce(f.topic, fromGenerated(txns.slice(200)))
      await sleep(15_000)
      await locker.query('COMMIT')
    } finally {
      locker.release()
    }
    while ((await committedOffsets(f)) < 400 && s.child.exitCode === null) await sleep(50)
    s.child.kill('SIGTERM')
    const r = await s.exited
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out.read).toBe(400)
    const rows = await f.pool.query<{n: number}>(`SELECT count(*)::int AS n FROM "${f.schema}".txn_clean`)
    expect(rows.rows[0]!.n).toBe(new Set(txns.map((t) => t.key)).size)
    // the consumers stayed members: no assignment after the first ones (each rebalance logs them again)
    const assigned = stderr.split('\n').filter((l) => l.includes('"event":"consumer.assigned"')).length
    expect(assigned, stderr.split('\n').filter((l) => /consumer\.(assigned|crash)|rebalanc/i.test(l)).join('\n')).toBe(assignedBefore)
  })
})
