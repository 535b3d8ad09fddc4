/**
 * What `backfill --json` reports about its pace when --max-lag held it back: `rate_achieved` is
 * the records per second while sending, so a pause before the first record went (the group
 * already behind when the backfill starts) is not taken out of the sending time. The group has
 * no members; its committed offsets are set with the admin API: at 0 on a topic that already
 * holds more than --max-lag records (the backfill pauses at once), then far past the end (no lag).
 */
import {spawn} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'
import {BIN, ROOT, createTestTopic, kafka, testPool, uniqueName} from '../helpers.js'

const RATE = 2000
const N = 4000
const MAX_LAG = 1000

describe('backfill --json pace report', () => {
  it('rate_achieved leaves out a pause before the first send (was: 0/s, the pause taken out of the sending time)', async () => {
    const topic = await createTestTopic({partitions: 2, prefix: 'bf-pace'})
    const group = uniqueName('bf-pace-group')
    const admin = kafka().admin()
    await admin.connect()
    const producer = kafka().producer()
    await producer.connect()
    await producer.send({topic, messages: Array.from({length: 3 * MAX_LAG}, (_, i) => ({key: `old-${i}`, value: '{}'}))})
    await producer.disconnect()
    const commitAt = (offset: string) => admin.setOffsets({groupId: group, topic, partitions: [0, 1].map((partition) => ({partition, offset}))})
    await commitAt('0') // lag 3000 > --max-lag
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-pace-'))
    writeFileSync(join(dir, 'src.csv'), ['id;amt', ...Array.from({length: N}, (_, i) => `R${i};${i}.00`)].join('\n') + '\n')

    const child = spawn(process.execPath, [BIN, 'backfill', '--from', `csv:${join(dir, 'src.csv')}?delimiter=;`, '--to', topic, '--key', 'id', '--rate', String(RATE), '--max-lag', String(MAX_LAG), '--group', group, '--json'], {
      cwd: ROOT,
      env: {...process.env, CUTOVER_LOG_LEVEL: 'info'},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
    // paused from the start, for a while (longer than sending N at RATE takes)
    while (!stderr.includes('"pace":"paused"') && child.exitCode === null) await new Promise((r) => setTimeout(r, 100))
    await new Promise((r) => setTimeout(r, (N / RATE) * 1000 + 1500))
    const ends = await admin.fetchTopicOffsets(topic)
    expect(ends.reduce((a, e) => a + Number(e.high), 0)).toBe(3 * MAX_LAG) // nothing sent while paused
    await commitAt('1000000000') // the group is far ahead: no lag
    const code = await exited
    await admin.disconnect()
    expect(code, stderr.slice(-3000)).toBe(0)
    const out = JSON.parse(stdout) as {id: string; status: string; sent: number; paused_ms: number; rate_achieved: number}
    await testPool().query('DELETE FROM cutover.backfills WHERE id = $1', [out.id])
    expect(out).toMatchObject({status: 'completed', sent: N})
    expect(out.paused_ms).toBeGreaterThan((N / RATE) * 1000)
    // sent at --rate once the lag allowed it
    expect(out.rate_achieved).toBeGreaterThan(RATE * 0.8)
    expect(out.rate_achieved).toBeLessThan(RATE * 1.2)
  })
})
