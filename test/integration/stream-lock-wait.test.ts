/**
 * `stream run` while its sink table is locked for longer than the group's session timeout (10 s):
 * a batch transaction waits on the lock (an ALTER TABLE, a long report holding it), and its
 * consumer must keep heartbeating meanwhile, or the coordinator expels the member and the
 * whole group rebalances, every partition moving, when the lock goes.
 *
 * The two consumers of the process do not join at once: the first is often assigned both
 * partitions and the second joins about a second later, a normal rebalance. The test waits
 * for that (the group Stable with one partition for each consumer, as the broker and the
 * run's log both see it) before it takes the lock, and compares the group before the lock
 * with the group after it, before the stop (a stop rebalances too: one consumer leaves first).
 */
import kafkajs, {type Admin} from 'kafkajs'
import {describe, expect, it, onTestFinished} from 'vitest'
import {generateTransactions} from '../../fixtures/generator/transactions.js'
import type {StreamRunResult} from '../../src/runtime/run.js'
import {kafka} from '../helpers.js'
import {committedOffsets, fromGenerated, produce, sleep, startStream, streamFixture} from './stream-support.js'

interface Assigned {
  consumer: number
  member: string
  partitions: number[]
}

/** The run's `consumer.assigned` log entries so far, in order (a line still being written left out). */
function assignedEntries(stderr: string): Assigned[] {
  return stderr
    .split('\n')
    .slice(0, -1)
    .filter((l) => l.includes('"event":"consumer.assigned"'))
    .map((l) => JSON.parse(l) as Assigned)
}

/**
 * The group's members as `member -> partitions`, once it is settled with `consumers` members of
 * one partition each: Stable for the broker (describeGroups from an independent admin client),
 * and each consumer's latest `consumer.assigned` in the log naming the same member and partitions
 * (the log lags the broker a moment: kafkajs logs after its SyncGroup); undefined until then.
 */
async function settledGroup(admin: Admin, group: string, topic: string, log: Assigned[], consumers: number): Promise<Record<string, number[]> | undefined> {
  const {groups} = await admin.describeGroups([group])
  const g = groups[0]
  if (!g || g.state !== 'Stable' || g.members.length !== consumers) return undefined
  const broker: Record<string, number[]> = {}
  for (const m of g.members) broker[m.memberId] = (kafkajs.AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment[topic] ?? []).slice().sort((a, b) => a - b)
  if (Object.values(broker).some((p) => p.length !== 1)) return undefined
  const latest = new Map<number, Assigned>()
  for (const e of log) latest.set(e.consumer, e)
  const logged: Record<string, number[]> = {}
  for (const e of latest.values()) logged[e.member] = e.partitions
  return JSON.stringify(Object.entries(logged).sort()) === JSON.stringify(Object.entries(broker).sort()) ? broker : undefined
}

describe('stream run: a sink table locked longer than the session timeout', () => {
  it('keeps the group (no member expelled, no new assignment) and writes every record once the lock goes', async () => {
    const f = await streamFixture({partitions: 2, prefix: 'stream-lockwait'})
    const group = `${f.name}-group`
    const admin = kafka().admin()
    await admin.connect()
    onTestFinished(() => admin.disconnect())
    const txns = generateTransactions(400, {seed: 4242, dirty: 0})
    await produce(f.topic, fromGenerated(txns.slice(0, 200)))
    const s = startStream(f, ['--json'], {CUTOVER_LOG_LEVEL: 'info'})
    let stderr = ''
    s.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    const assignmentLines = () =>
      stderr
        .split('\n')
        .filter((l) => /consumer\.(assigned|crash)|rebalanc/i.test(l))
        .join('\n')

    // the first records committed and both consumers members of the group, one partition each
    let before: Record<string, number[]> | undefined
    while (s.child.exitCode === null) {
      if ((await committedOffsets(f)) >= 200 && (before = await settledGroup(admin, group, f.topic, assignedEntries(stderr), 2))) break
      await sleep(100)
    }
    expect(before, assignmentLines()).toBeDefined()
    const assignedBefore = assignedEntries(stderr).length

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
    // the group as it is now, before the stop: the same members with the same partitions, and no
    // assignment logged since (each rebalance logs one per consumer; an expelled member rejoins
    // under a new member id). A group that is rebalancing is waited for.
    let after: Record<string, number[]> | undefined
    while (s.child.exitCode === null && !(after = await settledGroup(admin, group, f.topic, assignedEntries(stderr), 2))) await sleep(100)
    const assignedAfter = assignedEntries(stderr).length
    const seen = assignmentLines()
    s.child.kill('SIGTERM')
    const r = await s.exited
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as StreamRunResult
    expect(out.read).toBe(400)
    const rows = await f.pool.query<{n: number}>(`SELECT count(*)::int AS n FROM "${f.schema}".txn_clean`)
    expect(rows.rows[0]!.n).toBe(new Set(txns.map((t) => t.key)).size)
    // the consumers stayed members: no assignment after the first ones
    expect({group: after, assigned: assignedAfter}, seen).toEqual({group: before, assigned: assignedBefore})
  })
})
