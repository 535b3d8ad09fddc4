/**
 * `cutover status --fail-on LEVEL` through the built CLI, against the real broker: any status is
 * data (exit 0) unless asked; with --fail-on, a status at or past LEVEL (OK < STARTING < WARN <
 * STALL < STOP < ERR) is exit 1, the result printed all the same.
 */
import {describe, expect, it} from 'vitest'
import {createTestTopic, kafka, runCli, uniqueName} from '../helpers.js'

/** A group with committed offsets behind the topic's end and no member: STOP. */
async function stoppedGroup(): Promise<{topic: string; group: string}> {
  const topic = await createTestTopic({prefix: 'status-failon'})
  const group = uniqueName('status-failon')
  const producer = kafka().producer()
  await producer.connect()
  await producer.send({topic, messages: Array.from({length: 5}, () => ({value: 'a'}))})
  await producer.disconnect()
  const admin = kafka().admin()
  await admin.connect()
  await admin.setOffsets({groupId: group, topic, partitions: [{partition: 0, offset: '2'}]})
  await admin.disconnect()
  return {topic, group}
}

describe('cutover status --fail-on', () => {
  it('a STOP: exit 0 without the flag and with --fail-on err; exit 1 with --fail-on warn, stall or stop, the result printed all the same', async () => {
    const {topic, group} = await stoppedGroup()
    const status = (...more: string[]) => runCli(['status', '--group', group, '--topic', topic, '--window', '0', ...more])

    const plain = await status('--json')
    expect(plain.code, plain.stdout + plain.stderr).toBe(0)
    expect(plain.json).toMatchObject({group, status: 'STOP', total_lag: 3})

    for (const level of ['warn', 'stall', 'stop']) {
      const r = await status('--fail-on', level, '--json')
      expect(r.code, `--fail-on ${level}: ${r.stdout}${r.stderr}`).toBe(1)
      expect(r.json).toMatchObject({group, status: 'STOP', total_lag: 3})
    }
    const err = await status('--fail-on', 'err', '--json')
    expect(err.code, err.stdout + err.stderr).toBe(0)

    const human = await status('--fail-on', 'stall')
    expect(human.code).toBe(1)
    expect(human.stdout).toContain(`group ${group}: STOP (`)
    expect(human.stderr).toContain(`check failed: group ${group} is STOP (`)
    expect(human.stderr).toContain('at or past --fail-on stall')
  })

  it('an OK group passes --fail-on warn; an unknown level is exit 2', async () => {
    const topic = await createTestTopic({prefix: 'status-failon-ok'})
    const r = await runCli(['status', '--group', uniqueName('status-failon-ok'), '--topic', topic, '--window', '0', '--fail-on', 'warn', '--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json).toMatchObject({status: 'OK'})

    const bad = await runCli(['status', '--group', 'g', '--fail-on', 'late', '--json'])
    expect(bad.code).toBe(2)
    expect(bad.json.error.code).toBe('USAGE')
  })
})
