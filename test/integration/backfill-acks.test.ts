/**
 * When the backfill takes a batch for acknowledged, against the real broker and PostgreSQL.
 *
 * Was: the producer's acknowledgement of a batch was only looked at when the next batch was
 * handed over (or at the end), so whenever the backfill waited between two batches the last one
 * counted as unacknowledged although the broker held it:
 *   - a kafka: source's reader takes up to 5 s to close once the topic is read (its consumer's
 *     fetch wait), and the last batch's acknowledgement was taken only after that: `rate_achieved`
 *     of a kafka: replay of 3,000 records at --rate 1500/s said 537/s (the wait counted as sending time);
 *   - paused by --max-lag, the checkpoint (and the progress line's `sent`) stayed one batch behind
 *     what was on the topic for the whole pause: a kill then sent that batch again.
 * Now each acknowledgement is taken when it comes (still in the order the batches were sent).
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestTopic, kafka, kcatConsume, runCli, setGroupOffsets, startCli, tempDir, testPool, uniqueName} from '../helpers.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('backfill: acknowledgements taken when they come', () => {
  it('a kafka: replay at --rate R reports rate_achieved ~R (not the reader closing counted as sending)', async () => {
    const RATE = 1500
    const N = 3000
    const source = await createTestTopic({partitions: 2, prefix: 'bf-ack-src'})
    const target = await createTestTopic({partitions: 2, prefix: 'bf-ack-tgt'})
    const producer = kafka().producer()
    await producer.connect()
    await producer.send({topic: source, messages: Array.from({length: N}, (_, i) => ({key: `K${i}`, value: `{"id":"K${i}"}`}))})
    await producer.disconnect()
    const r = await runCli(['backfill', '--from', `kafka:${source}`, '--to', target, '--rate', String(RATE), '--json'])
    expect(r.code, r.stderr).toBe(0)
    await testPool().query('DELETE FROM cutover.backfills WHERE id = $1', [r.json.id])
    expect(r.json).toMatchObject({status: 'completed', read: N, sent: N})
    expect(kcatConsume(target)).toHaveLength(N)
    // the reader's ~5 s close counted as sending gave 537/s; 0.6 x leaves room for a loaded machine
    expect(r.json.rate_achieved).toBeGreaterThan(RATE * 0.6)
    expect(r.json.rate_achieved).toBeLessThan(RATE * 1.1)
  })

  it('paused by --max-lag: the checkpoint covers every record on the topic, and a stop there says so', async () => {
    const MAX_LAG = 1000
    const topic = await createTestTopic({partitions: 1, prefix: 'bf-ack-lag'})
    const group = uniqueName('bf-ack-group')
    await setGroupOffsets(group, topic, [{partition: 0, offset: '0'}]) // a group that consumes nothing: lag = all sent
    const dir = tempDir('cutover-bf-ack-')
    writeFileSync(join(dir, 'src.csv'), ['id,amt', ...Array.from({length: 3 * MAX_LAG}, (_, i) => `R${i},${i}.00`)].join('\n') + '\n')
    const id = uniqueName('bf-ack-lag')
    const pool = testPool()
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
    })
    const run = startCli(['backfill', '--from', 'csv:src.csv', '--to', topic, '--key', 'id', '--max-lag', String(MAX_LAG), '--group', group, '--id', id, '--json'], {cwd: dir, env: {CUTOVER_LOG_LEVEL: 'info'}})
    let stderr = ''
    run.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    while (!stderr.includes('"pace":"paused"') && run.child.exitCode === null) await sleep(100)
    expect(run.child.exitCode, stderr).toBeNull()
    // paused: two checkpoints (every 2 s) since
    const pausedAt = Date.now()
    let row: {sent: number; records: number; updated: number} | undefined
    while (!row || row.updated < pausedAt + 2500) {
      await sleep(200)
      row = (await pool.query<{sent: number; records: number; updated: number}>(`SELECT (counts->>'sent')::int AS sent, (position->>'records')::int AS records, (extract(epoch FROM updated_at) * 1000)::float8 AS updated FROM cutover.backfills WHERE id = $1`, [id])).rows[0]
    }
    const onTopic = kcatConsume(topic).length
    expect(onTopic).toBe(MAX_LAG) // batches of --max-lag / 5, sent while they fit under it
    expect({sent: row!.sent, records: row!.records}).toEqual({sent: onTopic, records: onTopic})

    run.child.kill('SIGINT')
    const stopped = await run.done
    expect(stopped.code, stderr.slice(-2000)).toBe(130)
    expect(stopped.json).toMatchObject({id, status: 'stopped', read: onTopic, sent: onTopic})
    expect(kcatConsume(topic)).toHaveLength(onTopic)
  })
})
