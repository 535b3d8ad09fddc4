/**
 * `backfill --max-lag 5000 --group G` against a deliberately slow consumer (kafkajs, about
 * 2000 records/s, committing after every fetch): the group's lag, sampled by the test with the
 * admin API every 200 ms, never exceeds 5000 by more than one batch; the backfill pauses (counted
 * in paused_ms, each change of pace logged with its reason) and completes once the consumer has
 * caught up; `status --group` then says OK with no lag.
 */
import {spawn} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {BIN, ROOT, createTestTopic, kafka, runCli, testPool, uniqueName} from '../helpers.js'

const MAX_LAG = 5000
const N = Number(process.env.CUTOVER_BACKFILL_LAG_RECORDS ?? 12_000)
const CONSUMER_RATE = 2000

function csvOf(n: number): string {
  const lines = ['id;acct;amt']
  for (let i = 0; i < n; i++) lines.push(`T${String(i).padStart(8, '0')};A${String(i % 500).padStart(5, '0')};${(i % 9999) + 1},00`)
  return lines.join('\n') + '\n'
}

describe('backfill --max-lag', () => {
  it('keeps the lag of a slow consumer within max-lag + one batch, pauses and completes after catch-up', async () => {
    const topic = await createTestTopic({partitions: 3, prefix: 'bf-lag'})
    const group = uniqueName('bf-lag-group')
    const dir = mkdtempSync(join(tmpdir(), 'cutover-bf-lag-'))
    writeFileSync(join(dir, 'src.csv'), csvOf(N))

    // the slow consumer
    let consumed = 0
    const consumer = kafka().consumer({groupId: group, maxBytesPerPartition: 16 * 1024, sessionTimeout: 10_000, heartbeatInterval: 1000})
    onTestFinished(() => consumer.disconnect().catch(() => {}))
    await consumer.connect()
    await consumer.subscribe({topic, fromBeginning: true})
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()))
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({batch, heartbeat}) => {
        if (batch.messages.length === 0) return
        consumed += batch.messages.length
        await new Promise((r) => setTimeout(r, (batch.messages.length / CONSUMER_RATE) * 1000))
        await consumer.commitOffsets([{topic: batch.topic, partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString()}])
        await heartbeat()
      },
    })
    await joined

    // the lag as an outsider sees it
    const admin = kafka().admin()
    await admin.connect()
    onTestFinished(() => admin.disconnect())
    const lagNow = async () => {
      const [ends, committed] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({groupId: group, topics: [topic]})])
      const c = new Map(committed[0]!.partitions.map((p) => [p.partition, Number(p.offset)]))
      return ends.reduce((a, e) => a + Number(e.high) - Math.max(0, c.get(e.partition) ?? 0), 0)
    }

    const child = spawn(process.execPath, [BIN, 'backfill', '--from', `csv:${join(dir, 'src.csv')}?delimiter=;`, '--to', topic, '--key', 'id', '--max-lag', String(MAX_LAG), '--group', group, '--json'], {
      cwd: ROOT,
      env: {...process.env, CUTOVER_LOG_LEVEL: 'info'},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    let running = true
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => ((running = false), resolve(code))))
    let maxLag = 0
    let samples = 0
    while (running) {
      maxLag = Math.max(maxLag, await lagNow())
      samples++
      await new Promise((r) => setTimeout(r, 200))
    }
    const code = await exited
    expect(code, stderr.slice(-3000)).toBe(0)
    const out = JSON.parse(stdout) as {id: string; sent: number; read: number; paused_ms: number; pace_changes: number; status: string}
    await testPool().query('DELETE FROM cutover.backfills WHERE id = $1', [out.id])
    const batch = Math.floor(MAX_LAG / 5) // the batch size backfill uses under --max-lag
    console.info(`backfill-maxlag: max lag seen ${maxLag} over ${samples} samples (limit ${MAX_LAG} + ${batch}); paused ${out.paused_ms} ms, ${out.pace_changes} changes of pace`)
    expect(out).toMatchObject({status: 'completed', read: N, sent: N})
    expect(maxLag).toBeLessThanOrEqual(MAX_LAG + batch)
    expect(maxLag).toBeGreaterThan(MAX_LAG / 2) // it did push the consumer
    expect(out.paused_ms).toBeGreaterThan(0)
    expect(out.pace_changes).toBeGreaterThan(0)
    const paces = stderr
      .split('\n')
      .filter((l) => l.includes('"backfill.pace"'))
      .map((l) => JSON.parse(l) as {pace: string; reason: string})
    // each change of pace logged once (the wait above, paused_ms, may be the lag gate holding a
    // batch back before the pace itself turns 'paused': that is not a change of pace)
    expect(paces).toHaveLength(out.pace_changes)
    expect(stderr).not.toContain('backfill.group_unknown') // the group has a member
    for (const p of paces) expect(p.reason).toMatch(/lag \d+/)
    if (process.env.CUTOVER_BACKFILL_SHOW_PACE) console.info(paces.map((p) => `${p.pace}: ${p.reason}`).join('\n'))

    // the consumer catches up; status agrees
    while ((await lagNow()) > 0) await new Promise((r) => setTimeout(r, 200))
    expect(consumed).toBeGreaterThanOrEqual(N)
    const st = await runCli(['status', '--group', group, '--topic', topic, '--window', '2', '--json'])
    expect(st.code, st.stderr).toBe(0)
    expect(st.json).toMatchObject({group, status: 'OK', total_lag: 0, members: 1})
    expect(st.json.partitions).toHaveLength(3)
    expect(st.json.throughput.produced_last_minute).toBe(N)
  })
})
