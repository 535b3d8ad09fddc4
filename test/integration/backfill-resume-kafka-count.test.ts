/**
 * `backfill --resume` of a kafka: source (a topic replayed into another topic), stopped part way
 * (SIGINT) three times, against the real broker and PostgreSQL; the target read back with kcat.
 *
 * Was: the checkpoint's position.records of a kafka: source was the ordinal of the last
 * acknowledged record in this run's read order. A resume reads the topic from its start again and
 * skips what the checkpoint's partition offsets cover, and the reader interleaves partitions
 * differently each time, so that ordinal counted the skipped records that happened to come first:
 * "resuming after record N" (and --json resumed_from.records) went backwards between two resumes,
 * or past what was sent (the resume itself was right: it skips by partition offset). Now N is the
 * number of source records the checkpoint covers (sent, or rejected to the DLQ), over all runs:
 * for a raw replay, the records on the target.
 */
import {describe, expect, it, onTestFinished} from 'vitest'
import {createTestTopic, kafka, kcatConsume, runCli, startCli, testPool, uniqueName} from '../helpers.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const PARTITIONS = 4
const PER_PARTITION = 1000
const N = PARTITIONS * PER_PARTITION

describe('backfill --resume of a kafka: source', () => {
  it('"resuming after record N" and resumed_from.records never go backwards and equal the records on the target', async () => {
    const pool = testPool()
    const source = await createTestTopic({partitions: PARTITIONS, prefix: 'bf-kcount-src'})
    const target = await createTestTopic({partitions: 2, prefix: 'bf-kcount-tgt'})
    const dlq = await createTestTopic({partitions: 1, prefix: 'bf-kcount-dlq'})
    const id = uniqueName('bf-kcount')
    onTestFinished(async () => {
      await pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])
    })
    const producer = kafka().producer()
    await producer.connect()
    for (let p = 0; p < PARTITIONS; p++) {
      await producer.send({topic: source, messages: Array.from({length: PER_PARTITION}, (_, i) => ({partition: p, key: `K${p}-${i}`, value: `{"id":"K${p}-${i}"}`}))})
    }
    await producer.disconnect()

    const sentInRow = async () => {
      const r = await pool.query<{n: number}>(`SELECT (counts->>'sent')::int AS n FROM cutover.backfills WHERE id = $1`, [id])
      return r.rows[0]?.n ?? 0
    }
    /** a run stopped with SIGINT once its checkpoint covers more than `after` records */
    const stoppedRun = async (args: string[], after: number) => {
      const run = startCli([...args, '--rate', '500', '--batch-size', '25'])
      while ((await sentInRow()) <= after && run.child.exitCode === null) await sleep(20)
      expect(run.child.exitCode, 'the run ended before it was stopped').toBeNull()
      run.child.kill('SIGINT')
      const r = await run.done
      expect(r.code, r.stdout + r.stderr).toBe(130)
      return r
    }

    const onTarget = () => kcatConsume(target).length
    const seen: number[] = []

    const first = await stoppedRun(['backfill', '--from', `kafka:${source}`, '--to', target, '--dlq', dlq, '--id', id, '--json'], 0)
    expect(first.json).toMatchObject({id, status: 'stopped', rejected: 0})
    expect(first.json.read).toBe(first.json.sent)
    let there = onTarget()
    expect(there).toBe(first.json.sent)

    // resumed in text mode: the line on stderr, and the result's line on stdout
    const second = await stoppedRun(['backfill', '--resume', id], there + 100)
    const started = /resuming after record (\d+)\)/.exec(second.stderr)
    expect(started, second.stderr).not.toBeNull()
    seen.push(Number(started![1]))
    expect(Number(started![1])).toBe(there)
    expect(second.stdout).toContain(`resumed after record ${there}`)
    const sentSecond = Number(/read ([\d,]+) = sent ([\d,]+)/.exec(second.stdout)![2]!.replace(/,/g, ''))
    there = onTarget()
    expect(sentSecond).toBe(there)

    // resumed with --json, stopped again
    const third = await stoppedRun(['backfill', '--resume', id, '--json'], there + 100)
    seen.push(third.json.resumed_from.records)
    expect(third.json.resumed_from.records).toBe(there)
    there = onTarget()
    expect(third.json.sent).toBe(there)

    // and to its end
    const last = await runCli(['backfill', '--resume', id, '--rate', '100000', '--json'])
    expect(last.code, last.stderr).toBe(0)
    seen.push(last.json.resumed_from.records)
    expect(last.json.resumed_from.records).toBe(there)
    expect(last.json).toMatchObject({status: 'completed', read: N, sent: N, rejected: 0, runs: 4})
    // a resume of the completed backfill sends nothing and says so: after all N
    const again = await runCli(['backfill', '--resume', id, '--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json).toMatchObject({status: 'completed', read: N, sent: N, resumed_from: {records: N}})
    const row = await pool.query<{records: number}>(`SELECT (position->>'records')::int AS records FROM cutover.backfills WHERE id = $1`, [id])
    expect(row.rows[0]!.records).toBe(N)

    // monotonic, and each checkpoint was after more records than the one before
    expect(seen).toEqual([...seen].sort((a, b) => a - b))
    expect(new Set(seen).size).toBe(seen.length)
    // every source record on the target exactly once (a stop checkpoints everything acknowledged)
    const got = kcatConsume(target)
    expect(got).toHaveLength(N)
    expect(new Set(got.map((m) => m.headers['cutover.backfill.position'])).size).toBe(N)
  })
})
