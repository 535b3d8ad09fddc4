/**
 * `cutover status` while real `stream run` processes (a consumer group of several members)
 * consume at a capped rate (--max-rate): `stream run` commits a partition a second's worth of
 * records at a time, each slice first waiting for its tokens, shared by the process's partitions. The verdict
 * must not call a group that is Stable and consuming STOP (nothing committed yet) or STALL (a
 * batch waiting for its tokens longer than the sampling window), and must still call STALL a
 * member that is stuck.
 *
 * The stuck member's `status` samples for 30 s (STALL_MIN_MS) before it may say STALL: that run
 * is started with the file (beforeAll) and samples, idle, while the other tests run; its test
 * awaits it and judges what it printed.
 */
import kafkajs from 'kafkajs'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {generateTransactions} from '../../fixtures/generator/transactions.js'
import {produceTransactions} from '../../fixtures/generator/stream-harness.js'
import {createTestTopic, kafka, runCli, setGroupOffsets, startCli, uniqueName, type CliProcess} from '../helpers.js'
import {groupAssignments, holdPipelineLock, sleep, startStream, streamFixture, type StreamFixture} from './stream-support.js'

interface StatusPartition {
  partition: number
  committed: number | null
  lag: number
  status: string
  member: string | null
  reason: string
}

/** Waits until the group is Stable with `members` members, each assigned partitions of the topic. */
async function stableGroup(group: string, members: number): Promise<void> {
  for (;;) {
    const g = await groupAssignments(group)
    if (g.length >= members && g.every((a) => a.length > 0)) return
    await sleep(200)
  }
}

/** The group's committed offsets on the topic (partition -> offset, -1 when never committed). */
async function committed(f: StreamFixture, group: string): Promise<Map<number, number>> {
  const admin = kafka().admin()
  await admin.connect()
  try {
    const [t] = await admin.fetchOffsets({groupId: group, topics: [f.topic]})
    return new Map((t?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]))
  } finally {
    await admin.disconnect()
  }
}

/** The members' ids as kafka-consumer-groups shows them (memberId@host). */
async function memberIds(group: string): Promise<string[]> {
  const admin = kafka().admin()
  await admin.connect()
  try {
    const {groups} = await admin.describeGroups([group])
    return groups[0]!.members.filter((m) => Object.keys(kafkajs.AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment ?? {}).length > 0).map((m) => `${m.memberId}@${m.clientHost.replace(/^\//, '')}`)
  } finally {
    await admin.disconnect()
  }
}

/** A member stuck on its partition, and `status` of its group started (not awaited). */
interface StuckRun {
  topic: string
  stuck: {member: string; stop(): Promise<void>}
  status: CliProcess
}

async function startStuckRun(): Promise<StuckRun> {
  // outside a test: removed by afterAll, not onTestFinished
  const topic = await createTestTopic({prefix: 'status-stuck', cleanup: false})
  const group = uniqueName('status-stuck')
  await produce(topic, 20)
  const stuck = await stuckConsumer(group, topic)
  const status = startCli(['status', '--group', group, '--topic', topic, '--window', '2', '--json'], {kill: false})
  return {topic, stuck, status}
}

let stuckRun: Promise<StuckRun>
beforeAll(() => {
  stuckRun = startStuckRun()
  stuckRun.catch(() => {}) // a failure is its test's, thrown there
})
afterAll(async () => {
  const run = await stuckRun.catch(() => undefined)
  if (!run) return
  if (run.status.child.exitCode === null && run.status.child.signalCode === null) run.status.child.kill('SIGKILL')
  await run.stuck.stop()
  const admin = kafka().admin()
  await admin.connect()
  await admin.deleteTopics({topics: [run.topic]}).catch(() => {})
  await admin.disconnect()
})

describe('cutover status of a group that stream run consumes with --max-rate', () => {
  it('partitions not committed yet, each assigned to a member of the Stable group: STARTING, naming the member, not STOP', async () => {
    const f = await streamFixture({partitions: 6, prefix: 'status-starting'})
    await produceTransactions(kafka(), f.topic, generateTransactions(6000, {seed: 11, idPrefix: 'SS', dirty: 0}))
    const group = `${f.name}-group`
    // 20 records/s, each second's worth its own transaction: held back by another session holding
    // the pipeline's batch lock (every batch transaction begins by taking it shared) until status
    // has looked, so that no partition has committed yet
    const hold = await holdPipelineLock(f.name, true)
    const args = ['--max-rate', '20', '--max-bytes-per-partition', '65536']
    startStream(f, args)
    startStream(f, args)
    await stableGroup(group, 4)
    const r = await runCli(['status', '--group', group, '--topic', f.topic, '--window', '1', '--json'])
    await hold.release()
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const parts = r.json.partitions as StatusPartition[]
    const pending = parts.filter((p) => p.committed === null)
    expect(pending.length, JSON.stringify(parts)).toBeGreaterThan(0)
    const members = await memberIds(group)
    for (const p of pending) {
      // before the fix: STOP, "lag N and the group never committed here"
      expect(p.status, p.reason).toBe('STARTING')
      expect(p.lag).toBeGreaterThan(0)
      expect(members).toContain(p.member)
    }
    expect(parts.every((p) => p.status !== 'STOP')).toBe(true)
    expect(r.json).toMatchObject({state: 'Stable', status: 'STARTING'})
    expect(r.json.reason).toMatch(/nothing committed yet, assigned to /)
  })

  it('committed offsets that move once per rate-limited batch, slower than the window: OK, not STALL', async () => {
    const f = await streamFixture({partitions: 6, prefix: 'status-slow'})
    await produceTransactions(kafka(), f.topic, generateTransactions(12_000, {seed: 12, idPrefix: 'SL', dirty: 0}))
    const group = `${f.name}-group`
    // 200 records/s per process: a ~300-record batch (64 KiB) every ~1.5 s, its partitions' batches
    // in turn, so each partition commits only every few seconds: longer than the 1 s window
    const args = ['--max-rate', '200', '--max-bytes-per-partition', '65536']
    startStream(f, args)
    startStream(f, args)
    await stableGroup(group, 4)
    // every partition committed once: the group is consuming at its capped rate
    for (;;) {
      const c = await committed(f, group)
      if (c.size === 6 && [...c.values()].every((o) => o >= 0)) break
      await sleep(200)
    }
    const r = await runCli(['status', '--group', group, '--topic', f.topic, '--window', '1', '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const parts = r.json.partitions as StatusPartition[]
    // before the fix: STALL, "the committed offset stayed at N for 1 s", for the partitions waiting their turn
    expect(parts.filter((p) => p.status !== 'OK'), JSON.stringify(parts)).toEqual([])
    expect(r.json.status).toBe('OK')
    // it watched past the 1 s window until the still partitions moved
    expect(r.json.window_ms).toBeGreaterThan(1000)
    expect(r.json.total_lag).toBeGreaterThan(0)
  })

  it('a member that holds its partition, heartbeating, and commits nothing more is still STALL, once still for 30 s', async () => {
    // started by beforeAll: `status --window 2` of the stuck member's group, sampling since
    const {stuck, status} = await stuckRun
    const r = await status.done
    await stuck.stop()
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json.partitions).toEqual([expect.objectContaining({partition: 0, committed: 5, lag: 15, status: 'STALL', member: stuck.member})])
    expect(r.json.status).toBe('STALL')
    expect(r.json.window_ms).toBeGreaterThanOrEqual(30_000)
  })

  it('a member of the group that is assigned other topics only: the partition with lag is STOP', async () => {
    const topic = await createTestTopic({prefix: 'status-unheld'})
    const other = await createTestTopic({prefix: 'status-other'})
    const group = uniqueName('status-unheld')
    await produce(topic, 20)
    await setGroupOffsets(group, topic, [{partition: 0, offset: '5'}])
    const member = await stuckConsumer(group, other, false)
    const r = await runCli(['status', '--group', group, '--topic', topic, '--window', '2', '--json'])
    await member.stop()
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json).toMatchObject({members: 1, status: 'STOP'})
    // before the fix: STALL (the group has a member), though nobody consumes the partition
    expect(r.json.partitions).toEqual([expect.objectContaining({partition: 0, committed: 5, lag: 15, status: 'STOP', member: null, reason: 'lag 15 and no member of the group is assigned this partition'})])
  })
})

async function produce(topic: string, n: number): Promise<void> {
  const producer = kafka().producer()
  await producer.connect()
  await producer.send({topic, messages: Array.from({length: n}, (_, i) => ({key: `k${i}`, value: `v${i}`}))})
  await producer.disconnect()
}

/**
 * A kafkajs member of `group` on `topic`: (with `commit`) it commits offset 5 of its first batch,
 * then holds the batch, heartbeating, until stopped. Resolves once it has (committed and) joined.
 */
async function stuckConsumer(group: string, topic: string, commit = true): Promise<{member: string; stop(): Promise<void>}> {
  const consumer = kafka().consumer({groupId: group, sessionTimeout: 10_000, heartbeatInterval: 1000})
  await consumer.connect()
  await consumer.subscribe({topics: [topic], fromBeginning: true})
  let release: () => void = () => {}
  const held = new Promise<void>((r) => (release = r))
  let ready: () => void = () => {}
  const started = new Promise<void>((r) => (ready = r))
  const {GROUP_JOIN} = consumer.events
  let memberId = ''
  consumer.on(GROUP_JOIN, (e) => {
    memberId = e.payload.memberId
    if (!commit) ready()
  })
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({batch, heartbeat, isRunning}) => {
      if (!commit) return
      await consumer.commitOffsets([{topic: batch.topic, partition: batch.partition, offset: '5'}])
      ready()
      const beat = setInterval(() => void heartbeat().catch(() => {}), 1000)
      await Promise.race([held, new Promise<void>((r) => {
        const t = setInterval(() => {
          if (!isRunning()) {
            clearInterval(t)
            r()
          }
        }, 200)
      })])
      clearInterval(beat)
    },
  })
  await started
  // the group Stable with this member assigned
  await stableGroup(group, 1)
  let stopped: Promise<void> | undefined
  return {
    member: `${memberId}@127.0.0.1`,
    // once, however often called (by its test, then afterAll)
    stop: () =>
      (stopped ??= (async () => {
        release()
        await consumer.disconnect()
      })()),
  }
}
