/** `cutover status` through the built CLI, against the real broker: a topic that does not exist. */
import {describe, expect, it} from 'vitest'
import {createTestTopic, kafka, runCli, settings, uniqueName} from '../helpers.js'

describe('cutover status --topic', () => {
  it('a topic that does not exist is a usage error (exit 2) naming the brokers, and the process ends', async () => {
    const group = uniqueName('status-nogroup')
    const missing = uniqueName('status-nosuch')
    const brokers = settings().kafka.brokers.join(',')
    const r = await runCli(['status', '--group', group, '--topic', missing, '--window', '0', '--json'])
    // before the fix: KAFKA_ERROR printed, then the process kept retrying metadata and exited 70
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.json.error).toMatchObject({code: 'USAGE', message: `topic ${missing} does not exist on ${brokers}`, hint: expect.stringContaining('--topic')})

    const text = await runCli(['status', '--group', group, '--topic', missing, '--window', '0'])
    expect(text.code).toBe(2)
    expect(text.stderr).toContain(`topic ${missing} does not exist on ${brokers}`)
  })

  it('with one topic that exists and one that does not, names only the missing one', async () => {
    const topic = await createTestTopic({prefix: 'status-exists'})
    const missing = uniqueName('status-nosuch')
    const r = await runCli(['status', '--group', uniqueName('status-nogroup'), '--topic', topic, '--topic', missing, '--window', '0', '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.json.error.message).toMatch(new RegExp(`^topic ${missing} does not exist`))
    expect(r.json.error.message).not.toContain(topic)
  })

  it('a topic that exists: exit 0 with its partitions', async () => {
    const topic = await createTestTopic({partitions: 2, prefix: 'status-exists'})
    const group = uniqueName('status-nogroup')
    const r = await runCli(['status', '--group', group, '--topic', topic, '--window', '0', '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json).toMatchObject({group, samples: 1, total_lag: 0})
    expect(r.json.partitions.map((p: {topic: string; partition: number}) => [p.topic, p.partition])).toEqual([
      [topic, 0],
      [topic, 1],
    ])
  })
})

describe('cutover status flags', () => {
  it('a topic named twice in --topic is judged once: each partition listed once, its lag counted once', async () => {
    const topic = await createTestTopic({partitions: 2, prefix: 'status-twice'})
    const group = uniqueName('status-twice')
    const producer = kafka().producer()
    await producer.connect()
    await producer.send({topic, messages: [...Array.from({length: 7}, () => ({partition: 0, value: 'a'})), ...Array.from({length: 5}, () => ({partition: 1, value: 'b'}))]})
    await producer.disconnect()
    const admin = kafka().admin()
    await admin.connect()
    await admin.setOffsets({groupId: group, topic, partitions: [{partition: 0, offset: '3'}, {partition: 1, offset: '5'}]})
    await admin.disconnect()

    const r = await runCli(['status', '--group', group, '--topic', topic, '--topic', topic, '--window', '0', '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    // before the fix: four partitions (each twice) and total_lag 8
    expect(r.json.total_lag).toBe(4)
    expect(r.json.partitions.map((p: {partition: number; committed: number; lag: number}) => [p.partition, p.committed, p.lag])).toEqual([
      [0, 3, 4],
      [1, 5, 0],
    ])
    expect(r.json.throughput.produced_last_minute).toBe(12)
  })

  it('an empty --group is a usage error (exit 2) with the fix, not a Kafka error (exit 70)', async () => {
    const r = await runCli(['status', '--group=', '--window', '0', '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.json.error).toMatchObject({code: 'USAGE', message: '--group is empty', hint: expect.stringContaining('--group')})
  })
})
