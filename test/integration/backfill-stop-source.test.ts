/**
 * SIGINT while the source is being read. A reader given the stop signal gives up the read it is
 * in (pg: destroys its cursor stream, csv:/fixed: their file stream) and throws from it; that
 * throw is the stop, not a failure of the source. Was: a pg: backfill stopped with Ctrl-C (or a
 * scheduler's SIGTERM) ended as `failed`, exit 70, "PostgreSQL at ...: aborted", with no --json
 * result and no resume hint. Now it stops as a stop does anywhere else: exit 130, status stopped,
 * its checkpoint covering everything the broker acknowledged, so that --resume sends each
 * remaining row once and none again.
 */
import {describe, expect, it} from 'vitest'
import {createTestSchema, createTestTopic, kcatConsume, runCli, startCli, testPool, uniqueName} from '../helpers.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('backfill: stopped while reading a pg: source', () => {
  it('SIGINT mid-read is exit 130, status stopped (not failed, exit 70); --resume sends the rest, no row twice', async () => {
    const pool = testPool()
    const schema = await createTestSchema(pool)
    const n = 200_000
    await pool.query(`CREATE TABLE "${schema}".txn AS SELECT 'T' || lpad(g::text, 9, '0') AS id, 'A' || (g % 500) AS acct, (g % 10000)::numeric(18, 2) AS amt FROM generate_series(1, $1::int) g`, [n])
    const topic = await createTestTopic({partitions: 3, prefix: 'bf-stop-src'})
    const id = uniqueName('bf-stop-src-id')
    const from = `pg:${schema}.txn?order_by=id`
    pool.on('error', () => {})
    const cleanup = () => pool.query('DELETE FROM cutover.backfills WHERE id = $1', [id])

    try {
      // no --rate: the run spends its time reading and sending, so the signal lands inside a read
      const first = startCli(['backfill', '--from', from, '--to', topic, '--key', 'id', '--id', id, '--json'])
      let checkpointed = 0
      while (checkpointed === 0 && first.child.exitCode === null) {
        const r = await pool.query<{n: number}>(`SELECT (position->>'records')::int AS n FROM cutover.backfills WHERE id = $1`, [id])
        checkpointed = r.rows[0]?.n ?? 0
        await sleep(20)
      }
      expect(first.child.exitCode, 'the backfill ended before its first checkpoint: make the table larger').toBeNull()
      first.child.kill('SIGINT')
      const stopped = await first.done
      expect(stopped.code, stopped.stdout + stopped.stderr).toBe(130)
      expect(stopped.json, stopped.stdout).toMatchObject({id, status: 'stopped'})
      const row = await pool.query<{status: string; error: string | null; records: number}>(`SELECT status, error, (position->>'records')::int AS records FROM cutover.backfills WHERE id = $1`, [id])
      expect(row.rows[0]).toMatchObject({status: 'stopped', error: null, records: stopped.json.read})
      expect(stopped.json.read).toBeLessThan(n)
      const onTopicAtStop = kcatConsume(topic).length
      // a stop (unlike a kill) checkpoints everything acknowledged
      expect(onTopicAtStop).toBe(stopped.json.sent)

      const resumed = await runCli(['backfill', '--resume', id, '--json'])
      expect(resumed.code, resumed.stderr).toBe(0)
      expect(resumed.json).toMatchObject({id, status: 'completed', read: n, sent: n, rejected: 0, runs: 2})
      expect(resumed.json.resumed_from.records).toBe(stopped.json.read)

      const got = kcatConsume(topic)
      const ids = new Set<string>()
      for (const m of got) {
        const fields = JSON.parse(m.payload!) as {id: string}
        expect(m.key).toBe(fields.id)
        ids.add(fields.id)
      }
      expect(ids.size).toBe(n)
      expect(got).toHaveLength(n) // nothing sent twice
    } finally {
      await cleanup()
    }
  })
})
