/**
 * `cutover status --group G` (no --topic) for a pipeline on its first batch: the group is Stable,
 * its member is assigned the topic's partitions, and nothing is committed yet. The topics are the
 * ones its members are assigned, judged STARTING, as with --topic; the group is not refused
 * (exit 2, "has committed no offsets: check the group name") as if it did not exist.
 */
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestTopic, kafka, kcatProduce, runCli, uniqueName} from '../helpers.js'

describe('cutover status: a group that consumes and has not committed yet', () => {
  it('without --topic: the members\' assigned topic, STARTING, exit 0', async () => {
    const topic = await createTestTopic({partitions: 2})
    kcatProduce(topic, ['a\t1', 'b\t2', 'c\t3', 'd\t4'], {keyed: true})
    const group = uniqueName('status-first-batch')
    const consumer = kafka().consumer({groupId: group, sessionTimeout: 60_000, heartbeatInterval: 1000})
    let release: () => void = () => {}
    const held = new Promise<void>((r) => (release = r))
    onTestFinished(async () => {
      release()
      await consumer.disconnect()
    })
    await consumer.connect()
    await consumer.subscribe({topic, fromBeginning: true})
    let started: () => void = () => {}
    const inFirstBatch = new Promise<void>((r) => (started = r))
    // its first message is being processed (a batch waiting for its tokens): no commit yet
    void consumer.run({autoCommit: false, eachMessage: async () => (started(), held)})
    await inFirstBatch

    const r = await runCli(['status', '--group', group, '--window', '0', '--json'])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    expect(r.json.state).toBe('Stable')
    expect(r.json.status).toBe('STARTING')
    expect(r.json.total_lag).toBe(4)
    expect(r.json.partitions.map((p: {topic: string; partition: number; committed: number | null; status: string}) => [p.topic, p.partition, p.committed, p.status])).toEqual([
      [topic, 0, null, 'STARTING'],
      [topic, 1, null, 'STARTING'],
    ])
  })
})
